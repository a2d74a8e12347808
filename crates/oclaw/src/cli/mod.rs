//! The command line's shape: every command, flag and environment variable as clap definitions
//! (`oclaw --help` is generated from them). No behaviour lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod bench;
mod client;
mod cluster;

pub use bench::*;
pub use client::*;
pub use cluster::*;

/// OpenClaw: bots that react to events, run pipelines of skills, and never lose a task.
#[derive(Debug, Parser)]
#[command(name = "oclaw", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log format: auto (human on a terminal, JSON lines otherwise), json, human.
    #[arg(long, global = true, value_enum, env = "OCLAW_LOG_FORMAT")]
    pub log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Auto,
    Json,
    Human,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum ProfileArg {
    #[default]
    Default,
    Production,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Node configuration file. Without it a node reads ./oclaw.yaml, else
    /// /etc/oclaw/oclaw.yaml, else runs on the defaults (the banner says which).
    #[arg(long, short = 'c', env = "OCLAW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Which column of the tuning table supplies defaults: default (10 / 5s / 30s / 600s) or
    /// production (50 / 30s / 120s / 3600s).
    #[arg(long, value_enum, default_value_t = ProfileArg::Default, env = "OCLAW_PROFILE")]
    pub profile: ProfileArg,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the embedded all-in-one node (api-server + scheduler + worker, SQLite by default).
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Address to listen on (overrides api.listen).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run the api-server component (distributed mode, PostgreSQL): REST API, health, metrics.
    /// Any number may run behind a load balancer; each can answer any request.
    ApiServer(ComponentArgs),
    /// Run the scheduler component (distributed mode): triggers, delays, retries, lease expiry.
    /// Run two or more: one leads, the others stand by and take over when it stops.
    Scheduler(ComponentArgs),
    /// Run the worker component (distributed mode): claims tasks from its queues and runs them.
    Worker(ComponentArgs),
    /// Check, show or describe the node configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Measure the engine on this machine.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print reference documents generated from the code.
    #[command(subcommand)]
    Docs(DocsCommand),
    /// Install, list, inspect and remove WebAssembly plugins (the folder `plugins.dir`).
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// List every skill the node would offer: built-in, plugins, MCP tools.
    #[command(subcommand)]
    Skill(SkillCommand),
    /// Submit, inspect, cancel and retry tasks on a running node.
    #[command(subcommand)]
    Task(TaskCommand),
    /// List bots and run them on a running node.
    #[command(subcommand)]
    Bot(BotCommand),
    /// Show queue depths on a running node.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Send events to tasks waiting in `wait` steps.
    #[command(subcommand)]
    Event(EventCommand),
    /// List, approve and reject the approvals tasks wait for.
    #[command(subcommand)]
    Approval(ApprovalCommand),
    /// Knowledge collections: create, add documents, list, search, remove, evaluate.
    #[command(subcommand)]
    Kb(KbCommand),
    /// API tokens with a tenant and a role: create, list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The audit log of changes: list, verify its chain of hashes.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Per-tenant secrets, sealed in the store: set, list, remove.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Show the processes of the cluster (from the node registry of a running api-server).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Initialise a cluster from an OpenClawCluster file: locally its state and supervisor, on
    /// Kubernetes the shared objects (namespace, RBAC, config); --dry-run prints the objects.
    Init(InitArgs),
    /// Deploy components of a cluster (`deploy core --components "[api-server,worker,scheduler]"
    /// --ha-mode true`).
    Deploy {
        #[command(subcommand)]
        what: DeployCommand,
    },
    /// Check an upgrade before making it: version path, store schema, deprecated configuration,
    /// deployed version, cluster health (and locally the target's binary). Exit 0 all pass, 3
    /// warnings, 1 a failure.
    CheckUpgrade {
        #[arg(long)]
        from_version: String,
        #[arg(long)]
        to_version: String,
        #[arg(long, default_value = "oclaw-system")]
        namespace: String,
        /// Where the cluster runs (`OCLAW_DRIVER`).
        #[arg(long, value_enum, env = "OCLAW_DRIVER", default_value_t = DriverArg::Local)]
        driver: DriverArg,
    },
    /// Roll a cluster to a new revision of its file (`--rollout-strategy canary`, then
    /// `all-in --confirm` to promote; or `all-in --confirm` at once), or show its revisions
    /// (`upgrade history`).
    #[command(args_conflicts_with_subcommands = true)]
    Upgrade {
        #[command(subcommand)]
        what: Option<UpgradeCommand>,
        #[command(flatten)]
        args: UpgradeArgs,
    },
    /// Roll a cluster back to an earlier revision (recorded as a new revision).
    Rollback {
        /// The revision to return to (see `oclaw upgrade history`).
        #[arg(long)]
        revision: u64,
        /// Replace every pod at once instead of one at a time: faster, with a gap in service.
        /// For emergencies, when the current revision is down anyway.
        #[arg(long)]
        force: bool,
        #[arg(long, default_value = "oclaw-system")]
        namespace: String,
        /// `json`: progress on stderr, the result as JSON.
        #[arg(short = 'o', long, value_enum)]
        output: Option<OutputArg>,
        /// Where the cluster runs (`OCLAW_DRIVER`).
        #[arg(long, value_enum, env = "OCLAW_DRIVER", default_value_t = DriverArg::Local)]
        driver: DriverArg,
    },
    /// Walk the troubleshooting questions for a cluster: pods not ready (why), pods that
    /// restart (last exit), task latency (what to tune).
    Diagnose {
        #[arg(long, default_value = "oclaw-system")]
        namespace: String,
        /// Where the cluster runs (`OCLAW_DRIVER`).
        #[arg(long, value_enum, env = "OCLAW_DRIVER", default_value_t = DriverArg::Local)]
        driver: DriverArg,
    },
    /// Show a cluster's pods: NAME READY STATUS RESTARTS AGE (`-o json`: also each component's
    /// desired/current/updated/ready replicas and the revision).
    Status {
        #[arg(long, default_value = "oclaw-system")]
        namespace: String,
        #[arg(short = 'o', long, value_enum)]
        output: Option<OutputArg>,
        /// Where the cluster runs (`OCLAW_DRIVER`).
        #[arg(long, value_enum, env = "OCLAW_DRIVER", default_value_t = DriverArg::Local)]
        driver: DriverArg,
    },
    /// Print a pod's log; --previous for the run before its last restart.
    Logs {
        pod: String,
        #[arg(long, default_value = "oclaw-system")]
        namespace: String,
        #[arg(long)]
        previous: bool,
        /// Where the cluster runs (`OCLAW_DRIVER`).
        #[arg(long, value_enum, env = "OCLAW_DRIVER", default_value_t = DriverArg::Local)]
        driver: DriverArg,
    },
    /// Stop a cluster: locally its supervisor stops every pod (workers drain); on Kubernetes every
    /// object of the cluster is deleted.
    Teardown {
        #[arg(long, default_value = "oclaw-system")]
        namespace: String,
        /// Required on Kubernetes: every object of the cluster is deleted (the namespace and the
        /// revision history are kept).
        #[arg(long)]
        confirm: bool,
        /// Locally: also delete the data of the cluster's own database (made by `init` when the
        /// cluster file names no spec.storage.url); without it the data is kept.
        #[arg(long)]
        purge: bool,
        /// Where the cluster runs (`OCLAW_DRIVER`).
        #[arg(long, value_enum, env = "OCLAW_DRIVER", default_value_t = DriverArg::Local)]
        driver: DriverArg,
    },
    /// Keep stepping a Kubernetes canary rollout while no `oclaw upgrade` runs, and abort it
    /// when its timeout passes or its analysis fails (the cluster runs this as the
    /// `oclaw-rollout-guard` Deployment).
    RolloutGuard {
        #[arg(long, default_value = "oclaw-system")]
        namespace: String,
        /// Seconds between steps.
        #[arg(long, default_value_t = 5.0)]
        every: f64,
    },
    /// The local driver's supervisor (started by `init`).
    #[command(hide = true)]
    Supervise {
        #[arg(long)]
        namespace: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the version (`--json`: with the store schemas it writes and the oldest schema
    /// whose binaries run on them, which `rollback` and `check-upgrade` compare).
    Version {
        #[arg(long)]
        json: bool,
    },
}

impl Command {
    /// A command that prints its answer and exits, as opposed to one that serves, supervises or
    /// runs skills (and so writes to sockets and child processes for a long time).
    pub fn prints_and_exits(&self) -> bool {
        !matches!(
            self,
            Command::Serve { .. }
                | Command::ApiServer(_)
                | Command::Scheduler(_)
                | Command::Worker(_)
                | Command::Bench(_)
                | Command::Plugin(_)
                | Command::Skill(_)
                | Command::RolloutGuard { .. }
                | Command::Supervise { .. }
        )
    }
}

/// Options of the single-component commands.
#[derive(Debug, Args)]
pub struct ComponentArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on. The api-server defaults to api.listen; a worker or scheduler serves
    /// only /healthz, /readyz and /metrics, on a free loopback port unless given.
    #[arg(long)]
    pub listen: Option<String>,
    /// This process's id in the node registry and on task leases
    /// (default `<hostname>:<component>:<pid>`). Give a stable id to a worker that restarts in
    /// place so its unfinished tasks are requeued at once on restart.
    #[arg(long, env = "OCLAW_NODE_ID")]
    pub node_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file and the bots it loads, or one bot file (`kind: Bot`); exit 0
    /// when valid, 2 when not.
    Validate {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = ProfileArg::Default)]
        profile: ProfileArg,
    },
    /// Print the effective configuration (defaults, profile, file and environment merged).
    Show {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Print the JSON Schema of oclaw.yaml (for editor completion), or of a bot file.
    Schema {
        /// The schema of a bot file (`kind: Bot`) instead.
        #[arg(long)]
        bot: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DocsCommand {
    /// The error-code catalogue as a Markdown table.
    ErrorCodes,
    /// The built-in skills as a Markdown table.
    Skills,
    /// The OpenAPI 3.1 document of the HTTP API (also served at /openapi.json).
    Openapi,
    /// The Prometheus alert rules (deploy/prometheus/oclaw-rules.yml).
    AlertRules {
        /// Print them as a Prometheus Operator `PrometheusRule` in this namespace instead.
        #[arg(long)]
        prometheus_rule: Option<String>,
    },
    /// The JSON Schema of the OpenClawCluster file (for editors and admission checks).
    ClusterSchema,
    /// Man pages for `oclaw` and each of its commands (`oclaw.1`, `oclaw-serve.1`, …), written
    /// into a folder: `oclaw docs man --dir /usr/local/share/man/man1`.
    Man {
        #[arg(long)]
        dir: std::path::PathBuf,
    },
}

/// Where the plugins folder is: `--dir`, else `plugins.dir` of the configuration.
#[derive(Debug, clap::Args)]
pub struct PluginDirArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The plugins folder (overrides plugins.dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Verify a plugin (manifest, module digest, ABI, imports) and copy it into the plugins
    /// folder; a running node loads it (or the new version) within plugins.reload_interval.
    Install {
        /// A plugin folder holding plugin.yaml, or the plugin.yaml itself.
        path: PathBuf,
        #[command(flatten)]
        dir: PluginDirArgs,
    },
    /// The installed plugins: NAME VERSION SKILLS CAPABILITIES STATUS.
    List {
        #[command(flatten)]
        dir: PluginDirArgs,
        #[arg(short = 'o', long, value_enum)]
        output: Option<OutputArg>,
    },
    /// One installed plugin in full: manifest, digest, limits, host imports, skills and schemas.
    Inspect {
        name: String,
        #[command(flatten)]
        dir: PluginDirArgs,
        #[arg(short = 'o', long, value_enum)]
        output: Option<OutputArg>,
    },
    /// Remove an installed plugin (a running node drops it at its next reload; calls in flight
    /// finish on the version they started with).
    Remove {
        name: String,
        #[command(flatten)]
        dir: PluginDirArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SkillCommand {
    /// NAME ORIGIN SUMMARY for every skill (connects to the configured MCP servers to list
    /// their tools).
    List {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(short = 'o', long, value_enum)]
        output: Option<OutputArg>,
    },
}

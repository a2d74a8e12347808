//! The command line's shape: every command, flag and environment variable as clap definitions
//! (`oclaw --help` is generated from them). No behaviour lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Node configuration file (oclaw.yaml). Without it, defaults apply.
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
    /// Print the version.
    Version,
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

/// How to reach a node (client commands).
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// Base URL of the node.
    #[arg(long, env = "OCLAW_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token, when the node requires one.
    #[arg(long, env = "OCLAW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output: a table for people, JSON for scripts.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct InputArgs {
    /// Task input as JSON (`-` reads it from stdin).
    #[arg(long, short = 'i')]
    pub input: Option<String>,
    /// Read the task input from a JSON file.
    #[arg(long, conflicts_with = "input")]
    pub input_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Submit a task for BOT.
    Submit {
        bot: String,
        #[command(flatten)]
        input: InputArgs,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        priority: Option<i32>,
        /// Run after this long (`30s`, `5m`).
        #[arg(long)]
        delay: Option<String>,
        /// Run at this time (RFC 3339).
        #[arg(long)]
        run_at: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Wait until the task finishes and exit with its outcome.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one task.
    Get {
        id: String,
        /// Wait until the task finishes.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List tasks, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        bot: Option<String>,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue after this cursor (printed by the previous page).
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Cancel a task that has not finished.
    Cancel {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run a dead, failed or cancelled task again.
    Retry {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BotCommand {
    /// List the node's bots.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run BOT and wait for its result (up to --timeout, default api.timeout).
    Run {
        bot: String,
        #[command(flatten)]
        input: InputArgs,
        #[arg(long)]
        timeout: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Depth, running, scheduled, dead and oldest age per queue.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Every registered api-server, scheduler and worker: status, leadership, load, age.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file and the bots it loads; exit 0 when valid, 2 when not.
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
    /// Print the JSON Schema of oclaw.yaml (for editor completion).
    Schema,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Pre-load N no-op tasks, then measure how fast one worker drains them.
    Drain {
        #[arg(long, default_value_t = 200_000)]
        tasks: usize,
        #[arg(long, default_value_t = 10)]
        concurrency: usize,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Claim and complete one task per round trip.
        #[arg(long)]
        no_batch: bool,
        /// Run on this store instead of a temporary SQLite file: `postgres://USER@HOST/DB`
        /// (the bench creates and drops a schema of its own).
        #[arg(long)]
        storage_url: Option<String>,
        /// Drain with N separate `oclaw worker` processes (PostgreSQL only); 0 runs the worker
        /// inside the bench process.
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Write this many finished tasks before the drain (PostgreSQL only): claims must stay
        /// fast however much history the table holds.
        #[arg(long, default_value_t = 0)]
        history: usize,
    },
    /// Load `POST /v1/tasks` (or the batch route) of a node and measure latency and rate.
    Http {
        /// Requests per second (open loop); 0 runs closed loop to find the maximum rate.
        #[arg(long, default_value_t = 2000)]
        rate: u64,
        /// How long to send, e.g. 10s.
        #[arg(long, default_value = "10s")]
        duration: String,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Tasks per request (more than 1 uses POST /v1/tasks/batch).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// A running node to load; without it an embedded node is started in this process.
        #[arg(long)]
        server: Option<String>,
    },
    /// Calls per second and per-call latency of a WebAssembly plugin skill (a trivial echo
    /// plugin by default), next to a built-in skill doing the same work.
    Plugin {
        #[arg(long, default_value_t = 200_000)]
        calls: usize,
        /// Calls in flight at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// A plugin folder (with plugin.yaml) to measure instead of the echo plugin.
        #[arg(long, requires = "skill")]
        plugin: Option<PathBuf>,
        /// The skill of --plugin to call.
        #[arg(long)]
        skill: Option<String>,
        /// The input of every call (JSON).
        #[arg(long, default_value = r#"{"text": "Hello, World!"}"#)]
        input: String,
        /// Keep this many runaway plugin calls (endless loops) in flight while measuring.
        #[arg(long, default_value_t = 0)]
        noisy: usize,
        /// Run plugin calls on the bench's threads (plugins.dedicated_threads: false).
        #[arg(long)]
        shared_threads: bool,
    },
    /// Chat round trips over WebSocket with the faq-bot example on an embedded node: each
    /// session sends its messages one after another and waits for every reply.
    Chat {
        /// Concurrent WebSocket sessions.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Messages each session sends.
        #[arg(long, default_value_t = 20)]
        messages: usize,
        /// A running node to load (its faq-bot); without it an embedded node is started in
        /// this process (concurrency 200).
        #[arg(long)]
        server: Option<String>,
        /// Chat over MQTT through this broker (`mqtt://127.0.0.1:1883`) instead of WebSocket:
        /// each session is a topic, answered on `<topic>/reply`.
        #[arg(long)]
        mqtt: Option<String>,
    },
    /// Enqueue single tasks on an idle node and measure enqueue → start latency.
    Latency {
        #[arg(long, default_value_t = 1000)]
        samples: usize,
        /// Run on this store instead of a temporary SQLite file (`postgres://USER@HOST/DB`).
        #[arg(long)]
        storage_url: Option<String>,
        /// 1 runs the worker as a separate `oclaw worker` process (PostgreSQL only), so the
        /// wake-up crosses processes; 0 runs it inside the bench process.
        #[arg(long, default_value_t = 0)]
        workers: usize,
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
}

/// Where a cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DriverArg {
    /// Processes on this host, kept running by a supervisor (the default).
    Local,
    /// A Kubernetes cluster: server-side apply through the kubeconfig's API server.
    Kubernetes,
    /// A Nomad cluster, for dev/test (a job file; `nomad job run` applies it).
    Nomad,
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

/// Output format of rendered objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputArg {
    Yaml,
    Json,
}

/// Options shared by the cluster commands.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// The OpenClawCluster file.
    #[arg(long, default_value = "config/production.yaml")]
    pub config: std::path::PathBuf,
    /// Where the cluster runs (`OCLAW_DRIVER`).
    #[arg(long, value_enum, env = "OCLAW_DRIVER", default_value_t = DriverArg::Local)]
    pub driver: DriverArg,
    /// Print what would be applied instead of applying it.
    #[arg(long)]
    pub dry_run: bool,
    /// Format of --dry-run output; without --dry-run, `json` puts progress on stderr and the
    /// result (the revision, what was applied and pruned) on stdout as JSON.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputArg::Yaml)]
    pub output: OutputArg,
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Registry and repository of the oclaw image (`registry.example.com/oclaw`).
    #[arg(long)]
    pub image_registry: Option<String>,
    /// Network plugin the cluster uses; `cni` (the only one, recorded for `diagnose`).
    #[arg(long, default_value = "cni")]
    pub network_plugin: String,
}

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// The core components: api-server, scheduler, worker.
    Core {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Components to deploy: `api-server,worker` or, quoted so the shell leaves the
        /// brackets alone, `"[api-server,worker,scheduler]"` (unquoted, zsh refuses it and bash
        /// may replace it with a one-letter file name).
        #[arg(long, default_value = "[api-server,worker,scheduler]")]
        components: String,
        /// High availability: the file's replicas (3 api-servers, leader + standby schedulers,
        /// 3..20 workers); `false` runs one of each.
        #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
        ha_mode: bool,
        /// Registry and repository of the oclaw image.
        #[arg(long)]
        image_registry: Option<String>,
        /// The cluster's namespace (local driver: which initialised cluster).
        #[arg(long, default_value = "oclaw-system")]
        namespace: String,
        /// Wait until every pod runs the new revision and is ready, showing progress; when it
        /// does not within --timeout, the revision before is deployed again.
        #[arg(long)]
        wait: bool,
        /// Seconds --wait waits.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum UpgradeCommand {
    /// Every revision: deploys, upgrades, rollbacks.
    History {
        #[arg(long, default_value = "oclaw-system")]
        namespace: String,
        #[arg(short = 'o', long, value_enum)]
        output: Option<OutputArg>,
        /// Where the cluster runs (`OCLAW_DRIVER`).
        #[arg(long, value_enum, env = "OCLAW_DRIVER", default_value_t = DriverArg::Local)]
        driver: DriverArg,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RolloutArg {
    /// Run a share of the pods on the new revision, analyse their metrics, pause for
    /// `all-in --confirm`; abort and roll back when analysis fails or the timeout passes.
    Canary,
    /// Replace every pod, one at a time.
    AllIn,
}

#[derive(Debug, clap::Args)]
pub struct UpgradeArgs {
    #[arg(long, value_enum)]
    pub rollout_strategy: Option<RolloutArg>,
    /// Share of pods that take the new revision first (canary).
    #[arg(long, default_value_t = 20)]
    pub canary_percent: u8,
    /// Seconds the rollout may take; past it, it is rolled back.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Required by all-in: every pod is replaced (or a paused canary promoted).
    #[arg(long)]
    pub confirm: bool,
    /// Seconds a healthy canary is watched before it pauses for confirmation.
    #[arg(long, default_value_t = 60)]
    pub analysis_window: u64,
    /// The new cluster file (the same cluster: name and namespace).
    #[arg(long, default_value = "config/production.yaml")]
    pub config: std::path::PathBuf,
    #[arg(long, default_value = "oclaw-system")]
    pub namespace: String,
    /// Where the cluster runs (`OCLAW_DRIVER`).
    #[arg(long, value_enum, env = "OCLAW_DRIVER", default_value_t = DriverArg::Local)]
    pub driver: DriverArg,
    /// `json`: progress on stderr, the result (the revision, or the canary's rollout) as JSON.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputArg>,
}

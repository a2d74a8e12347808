//! The cluster commands' arguments: the driver, the cluster file, `init`, `deploy`, `upgrade`.

use clap::Subcommand;

/// Where a cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DriverArg {
    /// Processes on this host, kept running by a supervisor (the default).
    Local,
    /// A Kubernetes cluster: server-side apply through the kubeconfig's API server.
    Kubernetes,
    /// A Nomad cluster, for dev/test (a JSON job file; `nomad job run -json` applies it).
    Nomad,
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

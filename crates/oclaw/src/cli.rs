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
    /// Check, show or describe the node configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Measure the engine on this machine.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print reference documents generated from the code.
    #[command(subcommand)]
    Docs(DocsCommand),
    /// Print the version.
    Version,
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
    },
    /// Enqueue single tasks on an idle node and measure enqueue → start latency.
    Latency {
        #[arg(long, default_value_t = 1000)]
        samples: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum DocsCommand {
    /// The error-code catalogue as a Markdown table.
    ErrorCodes,
    /// The built-in skills as a Markdown table.
    Skills,
}

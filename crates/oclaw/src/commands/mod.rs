//! One module per command group.

mod access;
mod bench;
mod bot;
mod check_upgrade;
mod client;
mod cluster;
mod config;
mod docs;
mod kb;
mod output;
mod plugin;
mod release;
mod schema_facts;
mod serve;
mod task;

use std::process::ExitCode;

use crate::cli::{Cli, Command, LogFormatArg, ProfileArg};
use oclaw_core::config::Profile;

/// Exit codes scripts can rely on.
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_INVALID: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    let style = cli.log_format.map(|f| match f {
        LogFormatArg::Auto => oclaw_telemetry::LogStyle::Auto,
        LogFormatArg::Json => oclaw_telemetry::LogStyle::Json,
        LogFormatArg::Human => oclaw_telemetry::LogStyle::Human,
    });
    match cli.command {
        Command::Serve { config, listen } => serve::run(
            serve::Launch {
                args: config,
                listen,
                node_id: None,
                components: oclaw_node::Components::ALL,
            },
            style,
        ),
        Command::ApiServer(c) => serve::run_component(c, oclaw_node::Components::API_SERVER, style),
        Command::Scheduler(c) => serve::run_component(c, oclaw_node::Components::SCHEDULER, style),
        Command::Worker(c) => serve::run_component(c, oclaw_node::Components::WORKER, style),
        Command::Config(c) => config::run(c),
        Command::Bench(b) => bench::run(b),
        Command::Docs(d) => docs::run(d),
        Command::Plugin(p) => plugin::run(p),
        Command::Skill(s) => plugin::skills(s),
        Command::Init(args) => cluster::init(args),
        Command::Deploy { what } => cluster::deploy(what),
        Command::Status {
            namespace,
            output,
            driver,
        } => release::status(
            driver,
            &namespace,
            output == Some(crate::cli::OutputArg::Json),
        ),
        Command::Logs {
            pod,
            namespace,
            previous,
            driver,
        } => release::logs(driver, &namespace, &pod, previous),
        Command::Teardown {
            namespace,
            confirm,
            purge,
            driver,
        } => release::teardown(driver, &namespace, confirm, purge),
        Command::Upgrade { what, args } => match what {
            Some(crate::cli::UpgradeCommand::History {
                namespace,
                output,
                driver,
            }) => release::history(
                driver,
                &namespace,
                output == Some(crate::cli::OutputArg::Json),
            ),
            None => {
                let out = output::Output {
                    json: args.output == Some(crate::cli::OutputArg::Json),
                };
                release::upgrade(args, out)
            }
        },
        Command::Diagnose { namespace, driver } => release::diagnose(driver, &namespace),
        Command::CheckUpgrade {
            from_version,
            to_version,
            namespace,
            driver,
        } => check_upgrade::run(&from_version, &to_version, &namespace, driver),
        Command::Rollback {
            revision,
            force,
            namespace,
            driver,
            output,
        } => release::rollback(
            driver,
            &namespace,
            revision,
            force,
            output::Output {
                json: output == Some(crate::cli::OutputArg::Json),
            },
        ),
        Command::Supervise { namespace } => release::supervise(&namespace),
        Command::RolloutGuard { namespace, every } => release::rollout_guard(&namespace, every),
        Command::Task(t) => run_client(task::run_task(t)),
        Command::Bot(b) => run_client(bot::run_bot(b)),
        Command::Queue(q) => run_client(bot::run_queue(q)),
        Command::Event(e) => run_client(task::run_event(e)),
        Command::Approval(a) => run_client(task::run_approval(a)),
        Command::Kb(k) => run_client(kb::run(k)),
        Command::Token(t) => run_client(access::run_token(t)),
        Command::Audit(a) => run_client(access::run_audit(a)),
        Command::Secret(c) => run_client(access::run_secret(c)),
        Command::Node(n) => run_client(bot::run_node(n)),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = crate::cli::Cli::command();
            clap_complete::generate(shell, &mut cmd, "oclaw", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Version { json } => {
            if json {
                println!("{}", schema_facts::this());
            } else {
                println!("oclaw {}", env!("CARGO_PKG_VERSION"));
            }
            ExitCode::SUCCESS
        }
    }
}

pub fn profile(p: ProfileArg) -> Profile {
    match p {
        ProfileArg::Default => Profile::Default,
        ProfileArg::Production => Profile::Production,
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_FAILURE)
        })
}

/// Runs a client command on a fresh runtime and turns its error into a message and exit code.
fn run_client(
    command: impl std::future::Future<Output = Result<ExitCode, client::ClientError>>,
) -> ExitCode {
    match runtime() {
        Ok(rt) => rt.block_on(command).unwrap_or_else(|e| e.report()),
        Err(code) => code,
    }
}

//! `oclaw docs`: the generated reference documents — the OpenAPI document, the error-code table,
//! the shipped alert rules (as a rule file or a PrometheusRule).

use std::process::ExitCode;

use crate::cli::DocsCommand;

/// Writes a page for the command and, recursively, each of its subcommands (`oclaw-task-list.1`).
fn man_pages(dir: &std::path::Path) -> std::io::Result<usize> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let root = crate::cli::Cli::command().version(env!("CARGO_PKG_VERSION"));
    fn write(cmd: clap::Command, name: String, dir: &std::path::Path) -> std::io::Result<usize> {
        let cmd = cmd.name(name.clone()).bin_name(name.replace('-', " "));
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        std::fs::write(dir.join(format!("{name}.1")), page)?;
        let mut n = 1;
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            n += write(sub.clone(), format!("{name}-{}", sub.get_name()), dir)?;
        }
        Ok(n)
    }
    write(root, "oclaw".into(), dir)
}

pub fn run(cmd: DocsCommand) -> ExitCode {
    match cmd {
        DocsCommand::ErrorCodes => print!("{}", oclaw_core::error_code::catalogue_markdown()),
        DocsCommand::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&oclaw_api::openapi::document()).unwrap_or_default()
            )
        }
        DocsCommand::AlertRules { prometheus_rule } => match prometheus_rule {
            None => print!("{}", oclaw_telemetry::alert_rules::ALERT_RULES),
            Some(namespace) => match oclaw_telemetry::alert_rules::prometheus_rule(&namespace) {
                Ok(text) => print!("{text}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(super::EXIT_FAILURE);
                }
            },
        },
        DocsCommand::ClusterSchema => {
            let schema = schemars::schema_for!(oclaw_cluster::OpenClawCluster);
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
        }
        DocsCommand::Man { dir } => match man_pages(&dir) {
            Ok(n) => println!("{n} man pages written to {}", dir.display()),
            Err(e) => {
                eprintln!("error: {}: {e}", dir.display());
                return ExitCode::from(super::EXIT_FAILURE);
            }
        },
        DocsCommand::Skills => {
            println!("| skill | origin | what it does |\n|---|---|---|");
            for (name, origin, summary) in oclaw_skills::SkillRegistry::builtin().list() {
                println!("| `{name}` | {origin} | {summary} |");
            }
        }
    }
    ExitCode::SUCCESS
}

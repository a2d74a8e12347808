//! `oclaw docs`: the generated reference documents — the OpenAPI document, the error-code table,
//! the shipped alert rules (as a rule file or a PrometheusRule).

use std::process::ExitCode;

use crate::cli::DocsCommand;

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
        DocsCommand::Skills => {
            println!("| skill | origin | what it does |\n|---|---|---|");
            for (name, origin, summary) in oclaw_skills::SkillRegistry::builtin().list() {
                println!("| `{name}` | {origin} | {summary} |");
            }
        }
    }
    ExitCode::SUCCESS
}

//! `oclaw config validate|show|schema`: a node configuration checked (file:line errors with
//! codes), printed with its defaults, or described as a JSON Schema.

use std::process::ExitCode;

use oclaw_bots::templates::TemplateEngine;
use oclaw_core::config_load::load_node_config;

use super::{profile, EXIT_INVALID};
use crate::cli::ConfigCommand;

pub fn run(cmd: ConfigCommand) -> ExitCode {
    match cmd {
        ConfigCommand::Validate { file, profile: p } => {
            let name = file.display().to_string();
            let config = match load_node_config(Some(&file), profile(p), std::env::vars()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_INVALID);
                }
            };
            // Plugins and MCP tools are skills too: a bot that uses them validates only
            // against the installed plugins and the reachable servers.
            let rt = match super::runtime() {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let skills = match rt.block_on(oclaw_node::build_skills(&config)) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_INVALID);
                }
            };
            let checked = oclaw_node::build_catalog(
                &config,
                &name,
                &skills.registry,
                &TemplateEngine::default(),
            );
            drop(skills);
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            match checked {
                Ok((catalog, source)) => {
                    let names: Vec<&str> = catalog.bots().map(|b| b.name()).collect();
                    let from = match source {
                        oclaw_node::CatalogSource::Configured => "configured",
                        oclaw_node::CatalogSource::Examples => {
                            "built-in examples (no bots configured)"
                        }
                    };
                    println!(
                        "{name}: valid; {} ({from}): {}",
                        oclaw_core::suggest::counted(names.len() as u64, "bot"),
                        names.join(", ")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_INVALID)
                }
            }
        }
        ConfigCommand::Show { config } => match load_node_config(
            config.config.as_deref(),
            profile(config.profile),
            std::env::vars(),
        ) {
            Ok(mut c) => {
                // Tokens are secrets: show how many, not what they are.
                c.api.tokens = c.api.tokens.iter().map(|_| "***".to_string()).collect();
                match serde_yaml::to_string(&c) {
                    Ok(text) => {
                        print!("{text}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_INVALID)
            }
        },
        ConfigCommand::Schema => {
            let schema = oclaw_core::config::node_config_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
    }
}

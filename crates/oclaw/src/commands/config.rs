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
            let text = std::fs::read_to_string(&file).ok();
            let bot_file = text.as_deref().is_some_and(is_bot_file);
            // A bot file is checked against the default node (its skills and plugins).
            let config_file = (!bot_file).then_some(file.as_path());
            let config = match load_node_config(config_file, profile(p), std::env::vars()) {
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
            let checked = match (bot_file, &text) {
                (true, Some(text)) => {
                    let mut catalog = oclaw_bots::BotCatalog::default();
                    catalog
                        .load_yaml(&name, text, &skills.registry, &TemplateEngine::default())
                        .map(|_| (catalog, None))
                        .map_err(oclaw_node::NodeError::from)
                }
                _ => oclaw_node::build_catalog(
                    &config,
                    &name,
                    &skills.registry,
                    &TemplateEngine::default(),
                )
                .map(|(catalog, source)| (catalog, Some(source))),
            };
            drop(skills);
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
            match checked {
                Ok((catalog, source)) => {
                    let names: Vec<&str> = catalog.bots().map(|b| b.name()).collect();
                    let from = match source {
                        None => "bot file",
                        Some(oclaw_node::CatalogSource::Configured) => "configured",
                        Some(oclaw_node::CatalogSource::Examples) => {
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
                match serde_saphyr::to_string(&c) {
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
        ConfigCommand::Schema { bot } => {
            let schema = if bot {
                oclaw_core::config::bot_schema()
            } else {
                oclaw_core::config::node_config_schema()
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
    }
}

/// Whether a YAML file holds bots (`kind: Bot`, or `metadata` and `spec` at the top) rather
/// than a node configuration.
fn is_bot_file(text: &str) -> bool {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        match line.trim_end() {
            "---" => docs.push(String::new()),
            _ => docs.last_mut().into_iter().for_each(|d| {
                d.push_str(line);
                d.push('\n');
            }),
        }
    }
    docs.iter().any(|doc| {
        let Ok(serde_json::Value::Object(map)) = serde_saphyr::from_str(doc) else {
            return false;
        };
        let has = |k: &str| map.contains_key(k);
        map.get("kind").and_then(|k| k.as_str()) == Some("Bot") || (has("metadata") && has("spec"))
    })
}

#[cfg(test)]
mod tests {
    use super::is_bot_file;

    #[test]
    fn bot_files_are_told_from_node_configs() {
        assert!(is_bot_file(
            "apiVersion: oclaw.io/v1\nkind: Bot\nmetadata: {name: a}\nspec: {}\n"
        ));
        assert!(is_bot_file(
            "# two bots\nmetadata: {name: a}\nspec: {}\n---\nmetadata: {name: b}\nspec: {}\n"
        ));
        assert!(!is_bot_file(
            "worker: {concurrency: 3}\nbots:\n  - metadata: {name: a}\n    spec: {}\n"
        ));
        assert!(!is_bot_file("not: [valid"));
    }
}

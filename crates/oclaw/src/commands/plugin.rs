//! `oclaw plugin install|list|inspect|remove` and `oclaw skill list`.

use std::path::PathBuf;
use std::process::ExitCode;

use oclaw_core::config::NodeConfig;
use oclaw_core::config_load::load_node_config;
use oclaw_plugins::manifest;
use oclaw_plugins::PluginError;
use serde_json::{json, Value};

use super::{profile, runtime, EXIT_FAILURE, EXIT_INVALID};
use crate::cli::{ConfigArgs, OutputArg, PluginCommand, PluginDirArgs, SkillCommand};

fn config(args: &ConfigArgs) -> Result<NodeConfig, ExitCode> {
    load_node_config(
        args.config.as_deref(),
        profile(args.profile),
        std::env::vars(),
    )
    .map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_INVALID)
    })
}

fn folder(args: &PluginDirArgs) -> Result<(NodeConfig, PathBuf), ExitCode> {
    let mut c = config(&args.config)?;
    if let Some(d) = &args.dir {
        c.plugins.dir = d.clone();
    }
    let dir = c.plugins.dir.clone();
    Ok((c, dir))
}

fn report(e: PluginError) -> ExitCode {
    eprintln!("error: {} {}", e.code, e.message);
    ExitCode::from(EXIT_FAILURE)
}

fn host(c: &NodeConfig) -> Result<oclaw_plugins::PluginHost, ExitCode> {
    oclaw_plugins::PluginHost::new(&c.plugins).map_err(|m| {
        eprintln!("error: {m}");
        ExitCode::from(EXIT_INVALID)
    })
}

pub fn run(cmd: PluginCommand) -> ExitCode {
    match run_inner(cmd) {
        Ok(code) | Err(code) => code,
    }
}

fn run_inner(cmd: PluginCommand) -> Result<ExitCode, ExitCode> {
    match cmd {
        PluginCommand::Install { path, dir } => {
            let (c, dir) = folder(&dir)?;
            let host = host(&c)?;
            let (m, previous) = oclaw_plugins::install(&host, &path, &dir).map_err(report)?;
            let skills: Vec<String> = m
                .skills
                .iter()
                .map(|s| format!("{}.{}", m.name, s.name))
                .collect();
            match previous {
                Some(old) => println!("upgraded {} {old} -> {}", m.name, m.version),
                None => println!("installed {} {}", m.name, m.version),
            }
            println!("  folder:       {}", dir.join(&m.name).display());
            println!("  sha256:       {}", m.sha256);
            println!("  skills:       {}", skills.join(", "));
            println!(
                "  capabilities: {} (each one still has to be granted per bot in spec.grants.{})",
                if m.capabilities.is_empty() {
                    "none".to_string()
                } else {
                    m.capabilities.join(", ")
                },
                m.name
            );
            println!(
                "A running node with plugins.dir {} loads it within plugins.reload_interval ({}).",
                dir.display(),
                c.plugins.reload_interval
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::List { dir, output } => {
            let (c, dir) = folder(&dir)?;
            let host = host(&c)?;
            let mut rows = Vec::new();
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|r| r.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            entries.sort();
            for path in entries {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if name.starts_with('.') || !path.is_dir() {
                    continue;
                }
                let checked =
                    manifest::read(&path).and_then(|f| host.runtime().and_then(|rt| rt.compile(f)));
                rows.push(match checked {
                    Ok(p) => {
                        let m = &p.files.manifest;
                        json!({"name": m.name, "version": m.version,
                            "skills": m.skills.iter().map(|s| format!("{}.{}", m.name, s.name)).collect::<Vec<_>>(),
                            "capabilities": m.capabilities, "sha256": m.sha256, "status": "ok"})
                    }
                    Err(e) => json!({"name": name, "version": null, "skills": [], "capabilities": [],
                        "sha256": null, "status": format!("{} {}", e.code, e.message)}),
                });
            }
            if output == Some(OutputArg::Json) {
                println!("{}", Value::Array(rows));
                return Ok(ExitCode::SUCCESS);
            }
            if rows.is_empty() {
                println!("no plugins installed in {}", dir.display());
                return Ok(ExitCode::SUCCESS);
            }
            let list = |v: &Value| {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default()
            };
            println!(
                "{:<20} {:<10} {:<48} {:<14} STATUS",
                "NAME", "VERSION", "SKILLS", "CAPABILITIES"
            );
            for r in &rows {
                println!(
                    "{:<20} {:<10} {:<48} {:<14} {}",
                    r["name"].as_str().unwrap_or(""),
                    r["version"].as_str().unwrap_or("-"),
                    list(&r["skills"]),
                    list(&r["capabilities"]),
                    r["status"].as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Inspect { name, dir, output } => {
            let (c, dir) = folder(&dir)?;
            let host = host(&c)?;
            let path = dir.join(&name);
            if !path.is_dir() {
                eprintln!(
                    "error: {} no plugin `{name}` is installed in {}",
                    oclaw_core::ErrorCode::PluginUnavailable,
                    dir.display()
                );
                return Err(ExitCode::from(EXIT_FAILURE));
            }
            let p = manifest::read(&path)
                .and_then(|f| host.runtime().and_then(|rt| rt.compile(f)))
                .map_err(report)?;
            let m = &p.files.manifest;
            let doc = json!({
                "name": m.name, "version": m.version, "abi": m.abi, "description": m.description,
                "folder": path.display().to_string(), "module": m.module.display().to_string(),
                "module_bytes": p.files.module_bytes.len(), "sha256": m.sha256, "digest_verified": true,
                "capabilities": m.capabilities, "host_imports": p.imports,
                "limits": {"memory_bytes": p.limits.memory_bytes, "timeout_ms": p.limits.timeout.as_millis() as u64,
                           "fuel": p.limits.fuel},
                "skills": m.skills.iter().map(|s| json!({"name": format!("{}.{}", m.name, s.name),
                    "summary": s.summary, "input": s.input, "output": s.output})).collect::<Vec<_>>(),
            });
            if output == Some(OutputArg::Json) {
                println!("{doc:#}");
            } else {
                print!("{}", serde_saphyr::to_string(&doc).unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Remove { name, dir } => {
            let (_, dir) = folder(&dir)?;
            let m = oclaw_plugins::remove(&dir, &name).map_err(report)?;
            println!("removed {} {}", m.name, m.version);
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn skills(cmd: SkillCommand) -> ExitCode {
    let SkillCommand::List {
        config: args,
        output,
    } = cmd;
    let c = match config(&args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let built = rt.block_on(oclaw_node::build_skills(&c));
    let skills = match built {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let list = skills.registry.list();
    if output == Some(OutputArg::Json) {
        let rows: Vec<Value> = list
            .iter()
            .map(|(n, o, s)| json!({"name": n, "origin": o.to_string(), "summary": s}))
            .collect();
        println!("{}", Value::Array(rows));
    } else {
        println!("{:<36} {:<26} SUMMARY", "NAME", "ORIGIN");
        for (n, o, s) in list {
            println!("{n:<36} {:<26} {s}", o.to_string());
        }
    }
    // Stop MCP children before the runtime goes away.
    drop(skills);
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    ExitCode::SUCCESS
}

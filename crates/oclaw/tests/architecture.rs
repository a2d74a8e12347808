//! The layering, checked from `cargo metadata` and the sources: the command line wires and
//! prints but implements no domain trait, the node assembles components without the clients
//! only benchmarks use, the cluster drivers live in `oclaw-cluster` with the Kubernetes client
//! optional, and every source file says what it holds.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// (name, kind, optional) of each dependency `krate` declares.
fn dependencies(meta: &Value, krate: &str) -> Vec<(String, String, bool)> {
    let package = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == krate))
        .unwrap_or_else(|| panic!("no package {krate}"));
    package["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or_default().to_string(),
                d["kind"].as_str().unwrap_or("normal").to_string(),
                d["optional"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn normal(meta: &Value, krate: &str) -> Vec<String> {
    dependencies(meta, krate)
        .into_iter()
        .filter(|(_, kind, _)| kind == "normal")
        .map(|(name, _, _)| name)
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn the_node_carries_no_client_only_benchmarks_use() {
    let meta = metadata();
    let node = normal(&meta, "oclaw-node");
    for bench_only in [
        "oclaw-bench",
        "tokio-tungstenite",
        "rumqttc",
        "tempfile",
        "tokio-postgres",
    ] {
        assert!(
            !node.iter().any(|d| d == bench_only),
            "oclaw-node depends on {bench_only}, which only the benchmarks use: {node:?}"
        );
    }
    // The benchmarks are wired into the command, and the node into them.
    assert!(normal(&meta, "oclaw").iter().any(|d| d == "oclaw-bench"));
    assert!(normal(&meta, "oclaw-bench")
        .iter()
        .any(|d| d == "oclaw-node"));
}

#[test]
fn the_cluster_drivers_live_in_oclaw_cluster_with_kubernetes_optional() {
    let meta = metadata();
    let bin = normal(&meta, "oclaw");
    for client in ["kube", "k8s-openapi"] {
        assert!(
            !bin.iter().any(|d| d == client),
            "the command depends on {client} itself: the Kubernetes driver belongs in oclaw-cluster"
        );
    }
    let cluster = dependencies(&meta, "oclaw-cluster");
    for client in ["kube", "k8s-openapi"] {
        assert!(
            cluster
                .iter()
                .any(|(n, k, optional)| n == client && k == "normal" && *optional),
            "oclaw-cluster should carry {client} behind the `kubernetes` feature: {cluster:?}"
        );
    }
    // The library crates never depend on the command or the benchmarks.
    for krate in [
        "oclaw-cluster",
        "oclaw-node",
        "oclaw-api",
        "oclaw-engine",
        "oclaw-store",
    ] {
        let deps = normal(&meta, krate);
        assert!(
            !deps.iter().any(|d| d == "oclaw" || d == "oclaw-bench"),
            "{krate} depends on the command or the benchmarks: {deps:?}"
        );
    }
}

#[test]
fn channels_and_the_scheduler_read_bots_without_the_executor() {
    // Ingress needs the bot catalogue and the trigger types (oclaw-bots), never the pipeline
    // executor or the worker; the bots crate itself runs nothing.
    let meta = metadata();
    let channels = normal(&meta, "oclaw-channels");
    assert!(
        channels.iter().any(|d| d == "oclaw-bots"),
        "oclaw-channels should read bots from oclaw-bots: {channels:?}"
    );
    assert!(
        !channels.iter().any(|d| d == "oclaw-engine"),
        "oclaw-channels depends on the executor: {channels:?}"
    );
    let bots = normal(&meta, "oclaw-bots");
    for runner in ["oclaw-engine", "oclaw-store", "oclaw-channels", "tokio"] {
        assert!(
            !bots.iter().any(|d| d == runner),
            "oclaw-bots depends on {runner}: the catalogue loads and checks bots, it runs nothing"
        );
    }
}

#[test]
fn the_command_line_implements_no_domain_trait() {
    // Output sinks (`oclaw_cluster::release::Progress`) are the command's to implement; the
    // domain traits are not.
    let domain = [
        "Driver",
        "Store",
        "TaskQueue",
        "KvStore",
        "Coordination",
        "Skill",
    ];
    let mut files = Vec::new();
    rust_files(&workspace().join("crates/oclaw/src"), &mut files);
    assert!(!files.is_empty());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for line in text.lines() {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix("impl") {
                for d in domain {
                    assert!(
                        !rest.contains(&format!(" {d} for "))
                            && !rest.contains(&format!("::{d} for ")),
                        "{}: `{t}`: the command implements the library trait {d}",
                        f.display()
                    );
                }
            }
        }
    }
}

#[test]
fn every_source_file_says_what_it_holds() {
    let mut files = Vec::new();
    for e in std::fs::read_dir(workspace().join("crates"))
        .into_iter()
        .flatten()
        .flatten()
    {
        rust_files(&e.path().join("src"), &mut files);
    }
    assert!(files.len() > 100, "{} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "source files without a `//!` line: {missing:#?}"
    );
}

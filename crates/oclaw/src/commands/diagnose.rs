//! `oclaw diagnose`: the seed's troubleshooting questions (§5) answered for a local cluster —
//! Q1 pods that are not ready and why, Q2 pods that restart and their last exit, Q3 task
//! latency and what to tune — from the supervisor's record, the pods' logs and the cluster's own
//! metrics.

use std::process::ExitCode;

use super::local::{cluster_dir, State};

/// The last lines of a log that look like errors.
fn error_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("\"ERROR\"") || l.contains("error[") || l.contains("OC-"))
        .map(|l| l.chars().take(220).collect())
        .collect();
    let keep = lines.len().saturating_sub(n);
    lines.drain(..keep);
    lines
}

/// `name{labels} value` samples of one metric in a Prometheus text page.
pub(super) fn samples<'a>(page: &'a str, name: &str) -> Vec<(&'a str, f64)> {
    page.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let rest = &series[name.len()..];
            (rest.is_empty() || rest.starts_with('{')).then_some(())?;
            Some((series, value.parse().ok()?))
        })
        .collect()
}

pub async fn run(namespace: &str) -> ExitCode {
    let dir = cluster_dir(namespace);
    let Ok(text) = std::fs::read_to_string(dir.join("state.json")) else {
        eprintln!("error[OC-5002]: no local cluster in namespace {namespace}");
        return ExitCode::from(super::EXIT_FAILURE);
    };
    let state: State = serde_json::from_str(&text).unwrap_or_default();
    let logs = dir.join("logs");
    let mut findings = 0;

    println!("Q1  pods that are not ready");
    for p in state.pods.iter().filter(|p| !p.ready) {
        findings += 1;
        println!(
            "  {} ({}): {}",
            p.name,
            p.status,
            p.last_exit
                .as_deref()
                .unwrap_or("starting, or failing its /readyz check")
        );
        for l in error_lines(&logs.join(format!("{}.log", p.name)), 3) {
            println!("      {l}");
        }
        println!("      causes: the database unreachable (OC-4001 in the log: check spec.storage.url), a config key it rejects (OC-10xx), its port taken by another process");
    }
    if state.pods.iter().all(|p| p.ready) {
        println!("  none: {} pods ready", state.pods.len());
    }

    println!("Q2  pods that restart");
    for p in state.pods.iter().filter(|p| p.restarts > 0) {
        findings += 1;
        let reason = p.last_exit.as_deref().unwrap_or("unknown");
        let hint = if reason.contains("signal 9") {
            "killed with SIGKILL: the OOM killer (raise spec.resources.limits.memory) or an operator"
        } else if reason.contains("code 2") || reason.contains("code 1") {
            "it exited with an error: see its previous log (oclaw logs POD --previous); a bad config is the usual cause"
        } else {
            "see its previous log (oclaw logs POD --previous)"
        };
        println!(
            "  {} restarted {}x, last: {reason} — {hint}",
            p.name, p.restarts
        );
        for l in error_lines(&logs.join(format!("{}.previous.log", p.name)), 2) {
            println!("      {l}");
        }
    }
    if state.pods.iter().all(|p| p.restarts == 0) {
        println!("  none");
    }

    println!("Q3  task latency");
    let api = state
        .pods
        .iter()
        .find(|p| p.component == "api-server" && p.ready);
    let page = match api {
        Some(p) => reqwest::get(format!("http://127.0.0.1:{}/metrics", p.port))
            .await
            .ok(),
        None => None,
    };
    let page = match page {
        Some(r) => r.text().await.unwrap_or_default(),
        None => {
            println!("  no ready api-server to read metrics from");
            return ExitCode::SUCCESS;
        }
    };
    let wait_sum: f64 = samples(&page, "oclaw_task_wait_seconds_sum")
        .iter()
        .map(|s| s.1)
        .sum();
    let wait_count: f64 = samples(&page, "oclaw_task_wait_seconds_count")
        .iter()
        .map(|s| s.1)
        .sum();
    let backlog: Vec<(&str, f64)> = samples(&page, "oclaw_queue_backlog")
        .into_iter()
        .filter(|s| s.1 > 0.0)
        .collect();
    let mean_wait = if wait_count > 0.0 {
        wait_sum / wait_count
    } else {
        0.0
    };
    println!(
        "  mean wait before a task starts: {:.3}s over {} tasks (this api-server's process)",
        mean_wait, wait_count as u64
    );
    for (series, n) in &backlog {
        println!("  backlog {series} = {n}");
    }
    let workers = state
        .pods
        .iter()
        .filter(|p| p.component == "worker")
        .count();
    if mean_wait > 1.0 || backlog.iter().any(|b| b.1 > 1000.0) {
        findings += 1;
        println!("  tasks wait: raise worker.concurrency (seed: 10 → 50 in production), run more workers (now {workers}), and keep batching on (worker.batch: enabled, maxSize 100, timeout 500ms)");
    } else {
        println!("  no latency problem seen; tuning: worker.concurrency, worker.batch {{enabled, maxSize, timeout}}, more workers");
    }
    println!("{findings} finding(s)");
    ExitCode::SUCCESS
}

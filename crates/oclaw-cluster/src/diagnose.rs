//! `oclaw diagnose`: the deployment guide's troubleshooting questions answered for a cluster on any
//! driver — Q1 pods that are not ready and why, Q2 pods that restart and their last exit, Q3 task
//! latency and what to tune — from the driver's status, the pods' logs and the cluster's own
//! metrics (an api-server's `/metrics`; on Kubernetes through the API server's pod proxy).

use crate::analysis::samples;
use crate::driver::{Driver, DriverError};
use crate::release::Progress;

/// The last lines of a log that look like errors.
fn error_lines(text: &str, n: usize) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("\"ERROR\"") || l.contains("error[") || l.contains("OC-"))
        .map(|l| l.chars().take(220).collect())
        .collect();
    let keep = lines.len().saturating_sub(n);
    lines.drain(..keep);
    lines
}

/// Walks Q1–Q3 on any driver's cluster, saying each answer as it is found (a slow platform
/// shows Q1 before Q3 is asked); answers how many findings there were.
pub async fn diagnose<D: Driver>(d: &D, out: &dyn Progress) -> Result<usize, DriverError> {
    let status = d.status().await?;
    let pods = &status.pods;
    let mut findings = 0;

    out.say("Q1  pods that are not ready");
    for p in pods.iter().filter(|p| !p.ready) {
        findings += 1;
        let why = p
            .detail
            .as_deref()
            .or(p.last_exit.as_deref())
            .unwrap_or("starting, or failing its /readyz check");
        out.say(&format!("  {} ({}): {why}", p.name, p.status));
        let log = d.logs(&p.name, false).await?.unwrap_or_default();
        for l in error_lines(&log, 3) {
            out.say(&format!("      {l}"));
        }
        if p.status == "Pending" && p.detail.is_some() {
            out.say("      causes: not enough CPU or memory on the nodes for spec.resources.requests, a node selector or taint no node matches, a volume that cannot bind (spec.storage.class)");
        } else {
            out.say("      causes: the database unreachable (OC-4001 in the log: check spec.storage.url), a config key it rejects (OC-10xx), its port taken by another process, an image that cannot be pulled");
        }
    }
    if pods.iter().all(|p| p.ready) {
        out.say(&format!("  none: {} pods ready", pods.len()));
    }

    out.say("Q2  pods that restart");
    for p in pods.iter().filter(|p| p.restarts > 0) {
        findings += 1;
        let reason = p.last_exit.as_deref().unwrap_or("unknown");
        let hint = if reason.contains("signal 9") || reason.contains("exit 137") {
            "killed with SIGKILL: the OOM killer (raise spec.resources.limits.memory) or an operator"
        } else if reason.contains("OOMKilled") {
            "out of memory: raise spec.resources.limits.memory"
        } else if reason.contains("code 2") || reason.contains("code 1") || reason.contains("Error")
        {
            "it exited with an error: see its previous log (oclaw logs POD --previous); a bad config is the usual cause"
        } else {
            "see its previous log (oclaw logs POD --previous)"
        };
        out.say(&format!(
            "  {} restarted {}x, last: {reason} — {hint}",
            p.name, p.restarts
        ));
        let log = d.logs(&p.name, true).await?.unwrap_or_default();
        for l in error_lines(&log, 2) {
            out.say(&format!("      {l}"));
        }
    }
    if pods.iter().all(|p| p.restarts == 0) {
        out.say("  none");
    }

    out.say("Q3  task latency");
    let page = match pods.iter().find(|p| p.component == "api-server" && p.ready) {
        Some(p) => d.metrics(p).await?,
        None => None,
    };
    let Some(page) = page else {
        out.say("  no ready api-server to read metrics from");
        out.say(&format!("{findings} finding(s)"));
        return Ok(findings);
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
    out.say(&format!(
        "  mean wait before a task starts: {:.3}s over {} (this api-server's process)",
        mean_wait,
        oclaw_core::suggest::counted(wait_count as u64, "task")
    ));
    for (series, n) in &backlog {
        out.say(&format!("  backlog {series} = {n}"));
    }
    let workers = pods.iter().filter(|p| p.component == "worker").count();
    if mean_wait > 1.0 || backlog.iter().any(|b| b.1 > 1000.0) {
        findings += 1;
        out.say(&format!("  tasks wait: raise worker.concurrency (seed: 10 → 50 in production), run more workers (now {workers}), and keep batching on (worker.batch: enabled, maxSize 100, timeout 500ms)"));
    } else {
        out.say("  no latency problem seen; tuning: worker.concurrency, worker.batch {enabled, maxSize, timeout}, more workers");
    }
    out.say(&format!("{findings} finding(s)"));
    Ok(findings)
}

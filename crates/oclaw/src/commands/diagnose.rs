//! `oclaw diagnose`: the seed's troubleshooting questions (§5) answered for a cluster on any
//! driver — Q1 pods that are not ready and why, Q2 pods that restart and their last exit, Q3 task
//! latency and what to tune — from the driver's status, the pods' logs and the cluster's own
//! metrics (an api-server's `/metrics`; on Kubernetes through the API server's pod proxy).

use std::process::ExitCode;

use oclaw_cluster::driver::{Driver, DriverError};

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

/// Adds what the canary pods' `/metrics` pages say to a rollout observation: task attempts
/// and failures, scheduling attempts and failures, and the API P99 of the canary api-servers
/// (as Prometheus's `histogram_quantile` computes it) once they have answered `min_requests`.
pub(super) fn canary_metrics(
    pages: &[String],
    min_requests: u64,
    o: &mut oclaw_cluster::rollout::Observation,
) {
    let mut api_buckets: Vec<(f64, f64)> = Vec::new();
    for page in pages {
        for (series, count) in samples(page, "oclaw_api_request_duration_seconds_bucket") {
            let le = series
                .split_once("le=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(v, _)| v);
            let le = match le {
                Some("+Inf") => f64::INFINITY,
                Some(v) => match v.parse() {
                    Ok(b) => b,
                    Err(_) => continue,
                },
                None => continue,
            };
            api_buckets.push((le, count));
        }
        let sum = |name: &str| -> u64 { samples(page, name).iter().map(|s| s.1 as u64).sum() };
        let tasks = samples(page, "oclaw_tasks_total");
        o.tasks += tasks.iter().map(|s| s.1 as u64).sum::<u64>();
        o.failed_tasks += tasks
            .iter()
            .filter(|s| s.0.contains("outcome=\"failed\""))
            .map(|s| s.1 as u64)
            .sum::<u64>();
        o.scheduling_attempts += sum("oclaw_scheduling_attempts_total");
        o.scheduling_failures += sum("oclaw_scheduling_failures_total");
    }
    let requests: f64 = api_buckets
        .iter()
        .filter(|b| b.0.is_infinite())
        .map(|b| b.1)
        .sum();
    if requests >= min_requests as f64 {
        o.api_p99 = oclaw_cluster::rollout::histogram_quantile(0.99, &api_buckets)
            .map(std::time::Duration::from_secs_f64);
    }
}

/// Walks Q1–Q3 on any driver's cluster.
pub async fn run<D: Driver>(d: &D) -> Result<ExitCode, DriverError> {
    let status = d.status().await?;
    let pods = &status.pods;
    let mut findings = 0;

    println!("Q1  pods that are not ready");
    for p in pods.iter().filter(|p| !p.ready) {
        findings += 1;
        let why = p
            .detail
            .as_deref()
            .or(p.last_exit.as_deref())
            .unwrap_or("starting, or failing its /readyz check");
        println!("  {} ({}): {why}", p.name, p.status);
        let log = d.logs(&p.name, false).await?.unwrap_or_default();
        for l in error_lines(&log, 3) {
            println!("      {l}");
        }
        if p.status == "Pending" && p.detail.is_some() {
            println!("      causes: not enough CPU or memory on the nodes for spec.resources.requests, a node selector or taint no node matches, a volume that cannot bind (spec.storage.class)");
        } else {
            println!("      causes: the database unreachable (OC-4001 in the log: check spec.storage.url), a config key it rejects (OC-10xx), its port taken by another process, an image that cannot be pulled");
        }
    }
    if pods.iter().all(|p| p.ready) {
        println!("  none: {} pods ready", pods.len());
    }

    println!("Q2  pods that restart");
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
        println!(
            "  {} restarted {}x, last: {reason} — {hint}",
            p.name, p.restarts
        );
        let log = d.logs(&p.name, true).await?.unwrap_or_default();
        for l in error_lines(&log, 2) {
            println!("      {l}");
        }
    }
    if pods.iter().all(|p| p.restarts == 0) {
        println!("  none");
    }

    println!("Q3  task latency");
    let page = match pods.iter().find(|p| p.component == "api-server" && p.ready) {
        Some(p) => d.metrics(p).await?,
        None => None,
    };
    let Some(page) = page else {
        println!("  no ready api-server to read metrics from");
        println!("{findings} finding(s)");
        return Ok(ExitCode::SUCCESS);
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
    let workers = pods.iter().filter(|p| p.component == "worker").count();
    if mean_wait > 1.0 || backlog.iter().any(|b| b.1 > 1000.0) {
        findings += 1;
        println!("  tasks wait: raise worker.concurrency (seed: 10 → 50 in production), run more workers (now {workers}), and keep batching on (worker.batch: enabled, maxSize 100, timeout 500ms)");
    } else {
        println!("  no latency problem seen; tuning: worker.concurrency, worker.batch {{enabled, maxSize, timeout}}, more workers");
    }
    println!("{findings} finding(s)");
    Ok(ExitCode::SUCCESS)
}

//! What a cluster's own metrics say, read from Prometheus text pages: the samples of one metric,
//! and a canary's task, scheduling and API figures added to a rollout observation.

/// `name{labels} value` samples of one metric in a Prometheus text page.
pub fn samples<'a>(page: &'a str, name: &str) -> Vec<(&'a str, f64)> {
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
pub fn canary_metrics(pages: &[String], min_requests: u64, o: &mut crate::rollout::Observation) {
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
        o.api_p99 = crate::rollout::histogram_quantile(0.99, &api_buckets)
            .map(std::time::Duration::from_secs_f64);
    }
}

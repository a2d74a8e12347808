//! `GET /metrics` (Prometheus text format) and the middleware that times every request.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use oclaw_telemetry::metrics::{labels, render_samples};
use oclaw_telemetry::system::{memory_ratio, process_metrics};

use crate::ApiState;

/// Records `oclaw_api_request_duration_seconds{route, method, status}`. The route is the
/// matched route template (`/v1/tasks/{id}`), so labels stay bounded.
pub async fn time_requests(
    State(state): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let tracer = oclaw_telemetry::otlp::tracer();
    let span = tracer.enabled().then(|| {
        let incoming = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(oclaw_telemetry::otlp::parse_traceparent);
        let (trace, parent) = match incoming {
            Some((t, p)) => (t, Some(p)),
            None => (oclaw_core::task::new_trace_id(), None),
        };
        let span = tracer.start(
            &trace,
            parent.as_deref(),
            || format!("{method} {route}"),
            oclaw_telemetry::otlp::SpanKind::Server,
        );
        // Handlers read the trace id from this header: the same trace, under this span.
        if let Ok(v) = axum::http::HeaderValue::from_str(&span.traceparent()) {
            req.headers_mut().insert("traceparent", v);
        }
        span
    });
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    state.metrics.api_latency.observe(
        &labels(&[("route", &route), ("method", &method), ("status", &status)]),
        started.elapsed().as_secs_f64(),
    );
    if let Some(mut span) = span {
        span.attr("http.request.method", method.as_str());
        span.attr("http.route", route.as_str());
        span.attr("http.response.status_code", resp.status().as_u16());
        let failed = resp.status().is_server_error();
        span.end(failed.then(|| format!("answered {status}")));
    }
    resp
}

pub async fn metrics(State(state): State<ApiState>) -> Response {
    let mut out = String::with_capacity(8192);
    let m = &state.metrics;
    m.api_latency.render(
        &mut out,
        "oclaw_api_request_duration_seconds",
        "Latency of API requests by route template, method and status.",
    );

    match state.store.queue_stats(chrono::Utc::now()).await {
        Ok(mut queues) => {
            for q in state.catalog.queues() {
                if !queues.iter().any(|s| s.name == q) {
                    queues.push(oclaw_store::QueueStats {
                        name: q,
                        ..Default::default()
                    });
                }
            }
            let per = |f: &dyn Fn(&oclaw_store::QueueStats) -> f64| -> Vec<(String, f64)> {
                queues
                    .iter()
                    .map(|q| (labels(&[("queue", &q.name)]), f(q)))
                    .collect()
            };
            render_samples(
                &mut out,
                "oclaw_queue_backlog",
                "gauge",
                "Tasks ready to run and waiting for a worker, per queue.",
                &per(&|q| q.queued as f64),
            );
            render_samples(
                &mut out,
                "oclaw_queue_running",
                "gauge",
                "Tasks running under a lease, per queue.",
                &per(&|q| q.running as f64),
            );
            render_samples(
                &mut out,
                "oclaw_queue_scheduled",
                "gauge",
                "Tasks waiting for their run_at (delayed or retrying), per queue.",
                &per(&|q| q.scheduled as f64),
            );
            render_samples(
                &mut out,
                "oclaw_queue_dead",
                "gauge",
                "Dead and failed tasks kept for inspection, per queue.",
                &per(&|q| q.dead as f64),
            );
            render_samples(
                &mut out,
                "oclaw_queue_oldest_age_seconds",
                "gauge",
                "Age of the oldest ready task, per queue.",
                &per(&|q| q.oldest_queued_age_seconds),
            );
            let caps: Vec<(String, f64)> = queues
                .iter()
                .filter_map(|q| {
                    q.capacity
                        .map(|c| (labels(&[("queue", &q.name)]), c as f64))
                })
                .collect();
            render_samples(
                &mut out,
                "oclaw_queue_capacity",
                "gauge",
                "Configured capacity (queued + scheduled) per queue.",
                &caps,
            );
            render_samples(
                &mut out,
                "oclaw_store_up",
                "gauge",
                "1 when the store answered this scrape.",
                &[(String::new(), 1.0)],
            );
        }
        Err(_) => render_samples(
            &mut out,
            "oclaw_store_up",
            "gauge",
            "1 when the store answered this scrape.",
            &[(String::new(), 0.0)],
        ),
    }

    let (mut attempts, mut failures) = (0u64, 0u64);
    if let Some(s) = &state.scheduler {
        attempts += s.attempts.load(Ordering::Relaxed);
        failures += s.failures.load(Ordering::Relaxed);
        render_samples(
            &mut out,
            "oclaw_scheduler_promoted_total",
            "counter",
            "Scheduled tasks moved to their queue when due.",
            &[(String::new(), s.promoted.load(Ordering::Relaxed) as f64)],
        );
        render_samples(
            &mut out,
            "oclaw_lease_expired_total",
            "counter",
            "Tasks whose lease expired (worker died or stalled), by what happened next.",
            &[
                (
                    labels(&[("result", "requeued")]),
                    s.lease_requeued.load(Ordering::Relaxed) as f64,
                ),
                (
                    labels(&[("result", "dead")]),
                    s.lease_dead.load(Ordering::Relaxed) as f64,
                ),
            ],
        );
        render_samples(
            &mut out,
            "oclaw_trigger_fires_total",
            "counter",
            "Tasks enqueued by cron and interval triggers.",
            &[(String::new(), s.fired.load(Ordering::Relaxed) as f64)],
        );
        render_samples(
            &mut out,
            "oclaw_scheduler_leader",
            "gauge",
            "1 while this scheduler is the leader (the one that schedules), 0 while it stands by.",
            &[(
                String::new(),
                if s.leader.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                },
            )],
        );
        render_samples(
            &mut out,
            "oclaw_tasks_purged_total",
            "counter",
            "Finished tasks deleted by the retention purge (storage.retention).",
            &[(String::new(), s.purged.load(Ordering::Relaxed) as f64)],
        );
        render_samples(
            &mut out,
            "oclaw_scheduler_elections_total",
            "counter",
            "Times this scheduler became the leader.",
            &[(String::new(), s.elected.load(Ordering::Relaxed) as f64)],
        );
    }
    if let Some(w) = &state.worker {
        attempts += w.stats.claim_attempts.load(Ordering::Relaxed);
        failures += w.stats.claim_failures.load(Ordering::Relaxed);
        render_samples(
            &mut out,
            "oclaw_worker_in_flight",
            "gauge",
            "Tasks this worker is running now.",
            &[(
                String::new(),
                w.stats.in_flight.load(Ordering::Relaxed) as f64,
            )],
        );
        render_samples(
            &mut out,
            "oclaw_worker_concurrency",
            "gauge",
            "Tasks this worker may run at once (worker.concurrency).",
            &[(String::new(), w.concurrency as f64)],
        );
        render_samples(
            &mut out,
            "oclaw_worker_claimed_total",
            "counter",
            "Tasks claimed by this worker.",
            &[(
                String::new(),
                w.stats.claimed.load(Ordering::Relaxed) as f64,
            )],
        );
        render_samples(
            &mut out,
            "oclaw_worker_fenced_total",
            "counter",
            "Results refused because the lease was lost.",
            &[(String::new(), w.stats.fenced.load(Ordering::Relaxed) as f64)],
        );
    }
    render_samples(&mut out, "oclaw_scheduling_attempts_total", "counter", "Scheduling actions: worker claim round trips, promotion passes, lease-expiry passes, trigger fires.", &[(String::new(), attempts as f64)]);
    render_samples(
        &mut out,
        "oclaw_scheduling_failures_total",
        "counter",
        "Scheduling actions that failed (the store refused or did not answer).",
        &[(String::new(), failures as f64)],
    );

    m.render_tasks(&mut out);
    m.render_channels(&mut out);
    render_samples(
        &mut out,
        "oclaw_node_cpu_utilization_ratio",
        "gauge",
        "CPU in use on this node (0..1), sampled every 5s.",
        &[(String::new(), m.node_cpu_ratio())],
    );
    render_samples(
        &mut out,
        "oclaw_node_memory_utilization_ratio",
        "gauge",
        "Memory in use on this node (1 - MemAvailable/MemTotal).",
        &[(String::new(), memory_ratio())],
    );
    for (name, kind, help, v) in process_metrics(m.started_unix) {
        render_samples(&mut out, name, kind, help, &[(String::new(), v)]);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

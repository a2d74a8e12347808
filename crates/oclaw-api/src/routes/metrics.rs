//! `GET /metrics` (Prometheus text format) and the middleware that times every request.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use oclaw_telemetry::metrics::{labels, render_samples, Exposition};

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

    let queues = state.store.queue_stats(chrono::Utc::now()).await.ok();
    Queues {
        stats: queues,
        catalog: &state.catalog.load().queues(),
    }
    .render(&mut out);

    let (mut attempts, mut failures) = (0u64, 0u64);
    if let Some(s) = &state.scheduler {
        attempts += s.attempts.load(Ordering::Relaxed);
        failures += s.failures.load(Ordering::Relaxed);
        s.render(&mut out);
    }
    if let Some(w) = &state.worker {
        attempts += w.stats.claim_attempts.load(Ordering::Relaxed);
        failures += w.stats.claim_failures.load(Ordering::Relaxed);
        w.render(&mut out);
    }
    render_samples(&mut out, "oclaw_scheduling_attempts_total", "counter", "Scheduling actions: worker claim round trips, promotion passes, lease-expiry passes, trigger fires.", &[(String::new(), attempts as f64)]);
    render_samples(
        &mut out,
        "oclaw_scheduling_failures_total",
        "counter",
        "Scheduling actions that failed (the store refused or did not answer).",
        &[(String::new(), failures as f64)],
    );

    m.render(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// The queue families (`oclaw_queue_*`) and `oclaw_store_up`, from the store's answer at this
/// scrape (`None`: the store did not answer); every queue a bot names has its row.
struct Queues<'a> {
    stats: Option<Vec<oclaw_store::QueueStats>>,
    catalog: &'a std::collections::BTreeSet<String>,
}

impl Exposition for Queues<'_> {
    fn render(&self, out: &mut String) {
        match self.stats.clone() {
            Some(mut queues) => {
                for q in self.catalog.iter().cloned() {
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
                    out,
                    "oclaw_queue_backlog",
                    "gauge",
                    "Tasks ready to run and waiting for a worker, per queue.",
                    &per(&|q| q.queued as f64),
                );
                render_samples(
                    out,
                    "oclaw_queue_running",
                    "gauge",
                    "Tasks running under a lease, per queue.",
                    &per(&|q| q.running as f64),
                );
                render_samples(
                    out,
                    "oclaw_queue_scheduled",
                    "gauge",
                    "Tasks waiting for their run_at (delayed or retrying), per queue.",
                    &per(&|q| q.scheduled as f64),
                );
                render_samples(
                    out,
                    "oclaw_queue_dead",
                    "gauge",
                    "Dead and failed tasks kept for inspection, per queue.",
                    &per(&|q| q.dead as f64),
                );
                render_samples(
                    out,
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
                    out,
                    "oclaw_queue_capacity",
                    "gauge",
                    "Configured capacity (queued + scheduled) per queue.",
                    &caps,
                );
                render_samples(
                    out,
                    "oclaw_store_up",
                    "gauge",
                    "1 when the store answered this scrape.",
                    &[(String::new(), 1.0)],
                );
            }
            None => render_samples(
                out,
                "oclaw_store_up",
                "gauge",
                "1 when the store answered this scrape.",
                &[(String::new(), 0.0)],
            ),
        }
    }
}

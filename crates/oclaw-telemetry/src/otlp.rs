//! Traces exported over OTLP/HTTP with JSON encoding (`POST <endpoint>/v1/traces`), which the
//! OpenTelemetry Collector, Jaeger and Tempo accept. Spans are queued without blocking (dropped,
//! and counted, when the queue is full) and sent in batches by one background task.
//!
//! Off unless `telemetry.otlp_endpoint` is set; then [`init`] installs the process-wide tracer and
//! [`tracer`] returns it everywhere spans are made.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::mpsc;

/// OTLP span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
    Consumer = 5,
}

/// A finished span.
#[derive(Debug, Clone)]
struct SpanData {
    trace_id: String,
    span_id: String,
    parent: Option<String>,
    name: String,
    kind: SpanKind,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<(&'static str, Value)>,
    error: Option<String>,
}

/// A span in progress; [`Span::end`] records it.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    parent: Option<String>,
    name: String,
    kind: SpanKind,
    start: SystemTime,
    attributes: Vec<(&'static str, Value)>,
}

impl Span {
    pub fn attr(&mut self, key: &'static str, value: impl Into<Value>) {
        self.attributes.push((key, value.into()));
    }

    /// The W3C `traceparent` naming this span as the parent of an outgoing call.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, self.span_id)
    }

    /// Ends the span now; `error` marks it failed with that message.
    pub fn end(self, error: Option<String>) {
        let Some(tx) = TRACER.get().and_then(|t| t.tx.as_ref()) else {
            return;
        };
        let data = SpanData {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent: self.parent,
            name: self.name,
            kind: self.kind,
            start: self.start,
            end: SystemTime::now(),
            attributes: self.attributes,
            error,
        };
        if tx.try_send(data).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A new random 64-bit span id (16 lowercase hex digits).
pub fn new_span_id() -> String {
    format!("{:016x}", fastrand::u64(1..))
}

/// The trace id and parent span id of a W3C `traceparent`, when it is valid.
pub fn parse_traceparent(v: &str) -> Option<(String, String)> {
    let mut parts = v.trim().split('-');
    let (version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let valid = version.len() == 2
        && trace.len() == 32
        && span.len() == 16
        && hex(trace)
        && hex(span)
        && trace != "00000000000000000000000000000000"
        && span != "0000000000000000";
    valid.then(|| (trace.to_ascii_lowercase(), span.to_ascii_lowercase()))
}

/// The process-wide tracer.
pub struct Tracer {
    tx: Option<mpsc::Sender<SpanData>>,
}

static TRACER: OnceLock<Tracer> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
static DISABLED: Tracer = Tracer { tx: None };

/// The installed tracer (a disabled one before [`init`] or without an endpoint).
pub fn tracer() -> &'static Tracer {
    TRACER.get().unwrap_or(&DISABLED)
}

/// Spans dropped because the export queue was full.
pub fn dropped_spans() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

impl Tracer {
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Starts a span in trace `trace_id` under `parent` (none: a root in that trace). Cheap when
    /// tracing is off.
    pub fn start(
        &self,
        trace_id: &str,
        parent: Option<&str>,
        name: impl FnOnce() -> String,
        kind: SpanKind,
    ) -> Span {
        Span {
            trace_id: trace_id.to_string(),
            span_id: new_span_id(),
            parent: parent.map(str::to_string),
            // Named only when exported: no formatting on the hot path otherwise.
            name: if self.enabled() {
                name()
            } else {
                String::new()
            },
            kind,
            start: SystemTime::now(),
            attributes: Vec::new(),
        }
    }
}

/// Installs the tracer exporting to `endpoint` (`http://host:4318`) as service `service`, with
/// `resource` attributes (node id, components, version). Must run inside a Tokio runtime.
/// Returns false when a tracer was already installed.
pub fn init(endpoint: &str, service: &str, resource: Vec<(&'static str, String)>) -> bool {
    let (tx, rx) = mpsc::channel(8192);
    if TRACER.set(Tracer { tx: Some(tx) }).is_err() {
        return false;
    }
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let mut attrs = vec![("service.name", service.to_string())];
    attrs.extend(resource);
    let resource =
        json!({"attributes": attrs.iter().map(|(k, v)| kv(k, &json!(v))).collect::<Vec<_>>()});
    tokio::spawn(export_loop(url, resource, rx));
    true
}

fn kv(key: &str, v: &Value) -> Value {
    let value = match v {
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64()}),
        Value::String(s) => json!({"stringValue": s}),
        other => json!({"stringValue": other.to_string()}),
    };
    json!({"key": key, "value": value})
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string()
}

fn encode(resource: &Value, spans: &[SpanData]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": s.trace_id,
                "spanId": s.span_id,
                "name": s.name,
                "kind": s.kind as u8,
                "startTimeUnixNano": nanos(s.start),
                "endTimeUnixNano": nanos(s.end),
                "attributes": s.attributes.iter().map(|(k, v)| kv(k, v)).collect::<Vec<_>>(),
                "status": match &s.error {
                    Some(m) => json!({"code": 2, "message": m}),
                    None => json!({"code": 1}),
                },
            });
            if let Some(p) = &s.parent {
                span["parentSpanId"] = json!(p);
            }
            span
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": resource,
        "scopeSpans": [{"scope": {"name": "oclaw", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
    }]})
}

async fn export_loop(url: String, resource: Value, mut rx: mpsc::Receiver<SpanData>) {
    // One process-wide TLS provider (for https endpoints); a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                component = "telemetry",
                "cannot build the OTLP HTTP client: {e}; traces are off"
            );
            return;
        }
    };
    let mut batch = Vec::with_capacity(512);
    let mut failing = false;
    loop {
        // Wait for a span, then gather more for up to 200 ms or 512 spans.
        match rx.recv().await {
            Some(s) => batch.push(s),
            None => return,
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while batch.len() < 512 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                Ok(None) | Err(_) => break,
            }
        }
        let body = encode(&resource, &batch);
        let sent = client.post(&url).json(&body).send().await;
        match sent {
            Ok(r) if r.status().is_success() => {
                if failing {
                    failing = false;
                    tracing::info!(component = "telemetry", "OTLP export works again");
                }
            }
            other => {
                if !failing {
                    failing = true;
                    let why = match other {
                        Ok(r) => format!("answered {}", r.status()),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(
                        component = "telemetry",
                        "OTLP export to {url} failed ({why}); spans are dropped until it works"
                    );
                }
                DROPPED.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip() {
        let (t, p) =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p, "00f067aa0ba902b7");
        assert!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01").is_none()
        );
        assert!(parse_traceparent("nope").is_none());
        let s = DISABLED.start(&t, Some(&p), || "x".into(), SpanKind::Internal);
        assert_eq!(s.traceparent(), format!("00-{t}-{}-01", s.span_id));
        assert_eq!(s.span_id.len(), 16);
    }

    #[test]
    fn encodes_otlp_json() {
        let start = SystemTime::now();
        let body = encode(
            &json!({"attributes": []}),
            &[SpanData {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                span_id: "00f067aa0ba902b7".into(),
                parent: None,
                name: "task hello".into(),
                kind: SpanKind::Consumer,
                start,
                end: start + Duration::from_millis(5),
                attributes: vec![("oclaw.attempt", json!(2)), ("oclaw.bot", json!("hello"))],
                error: Some("boom".into()),
            }],
        );
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["kind"], 5);
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(span["attributes"][0]["value"]["intValue"], "2");
        assert!(span.get("parentSpanId").is_none());
        let (s, e): (u128, u128) = (
            span["startTimeUnixNano"].as_str().unwrap().parse().unwrap(),
            span["endTimeUnixNano"].as_str().unwrap().parse().unwrap(),
        );
        assert_eq!(e - s, 5_000_000);
    }
}

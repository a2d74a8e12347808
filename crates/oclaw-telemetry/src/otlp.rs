//! Traces exported over OTLP/HTTP (`POST <endpoint>/v1/traces`), as protobuf (the Collector's
//! default) or JSON, which the OpenTelemetry Collector, Jaeger and Tempo accept. Spans are queued
//! without blocking (dropped, and counted, when the queue is full) and sent in batches by one
//! background task.
//!
//! Off unless `telemetry.otlp_endpoint` or the standard `OTEL_EXPORTER_OTLP_*` variables name a
//! collector ([`Export::resolve`]); then [`init`] installs the process-wide tracer and [`tracer`]
//! returns it everywhere spans are made.

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
pub(crate) struct SpanData {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) parent: Option<String>,
    pub(crate) name: String,
    pub(crate) kind: SpanKind,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    pub(crate) attributes: Vec<(&'static str, Value)>,
    pub(crate) error: Option<String>,
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

/// The wire format of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`, the OTLP default.
    Protobuf,
    /// `http/json`.
    Json,
}

impl Protocol {
    pub fn parse(text: &str) -> Result<Protocol, String> {
        match text.trim() {
            "http/protobuf" => Ok(Protocol::Protobuf),
            "http/json" => Ok(Protocol::Json),
            "grpc" => Err("OTLP over gRPC is not supported: use http/protobuf (port 4318)".into()),
            other => Err(format!(
                "OTLP protocol `{other}` is not http/protobuf or http/json"
            )),
        }
    }
}

/// Where and how traces go.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// The full traces URL (`…/v1/traces`).
    pub url: String,
    pub protocol: Protocol,
    /// Extra request headers (an API key for a hosted collector): never logged.
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// `service.name`.
    pub service: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource: Vec<(String, String)>,
}

/// Decodes the `%XX` escapes of the W3C baggage format the OTLP header variables use.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `key=value,key2=value2` pairs (headers, resource attributes); empty keys are skipped.
fn pairs(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = percent_decode(k.trim());
            (!k.is_empty()).then(|| (k, percent_decode(v.trim())))
        })
        .collect()
}

impl Export {
    /// The export settings from the config file (`endpoint`, `protocol`, `service`) and the
    /// standard variables read through `env`: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as
    /// given) or `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended) when the file names no
    /// endpoint; `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`, `…_PROTOCOL`, `…_TIMEOUT` (ms);
    /// `OTEL_SERVICE_NAME` when the file keeps the default; `OTEL_RESOURCE_ATTRIBUTES`;
    /// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off.
    /// `None`: no collector named.
    pub fn resolve(
        endpoint: Option<&str>,
        protocol: Option<&str>,
        service: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Export>, String> {
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let either = |suffix: &str| {
            var(&format!("OTEL_EXPORTER_OTLP_TRACES_{suffix}"))
                .or_else(|| var(&format!("OTEL_EXPORTER_OTLP_{suffix}")))
        };
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v == "none")
        {
            return Ok(None);
        }
        let traces = |base: &str| format!("{}/v1/traces", base.trim_end_matches('/'));
        let url = match endpoint {
            Some(e) => traces(e),
            None => match (
                var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
                var("OTEL_EXPORTER_OTLP_ENDPOINT"),
            ) {
                (Some(full), _) => full,
                (None, Some(base)) => traces(&base),
                (None, None) => return Ok(None),
            },
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "OTLP endpoint `{url}` must be an http:// or https:// URL (OTLP/HTTP, e.g. http://127.0.0.1:4318)"
            ));
        }
        let protocol = match protocol.map(str::to_string).or_else(|| either("PROTOCOL")) {
            Some(p) => Protocol::parse(&p)?,
            None => Protocol::Protobuf,
        };
        // Signal-specific headers win over the general ones of the same name.
        let mut headers = var("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|h| pairs(&h))
            .unwrap_or_default();
        for (k, v) in var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .map(|h| pairs(&h))
            .unwrap_or_default()
        {
            headers.retain(|(old, _)| !old.eq_ignore_ascii_case(&k));
            headers.push((k, v));
        }
        let timeout = match either("TIMEOUT") {
            Some(ms) => Duration::from_millis(ms.parse().map_err(|_| {
                format!("OTEL_EXPORTER_OTLP_TIMEOUT `{ms}` is not a number of milliseconds")
            })?),
            None => Duration::from_secs(10),
        };
        let service = match var("OTEL_SERVICE_NAME") {
            Some(name) if service == "oclaw" => name,
            _ => service.to_string(),
        };
        let resource = var("OTEL_RESOURCE_ATTRIBUTES")
            .map(|r| pairs(&r))
            .unwrap_or_default();
        Ok(Some(Export {
            url,
            protocol,
            headers,
            timeout,
            service,
            resource,
        }))
    }
}

/// Installs the tracer exporting as `export` says, with `resource` attributes of the node (id,
/// components, version). Must run inside a Tokio runtime. Returns false when a tracer was
/// already installed.
pub fn init(export: Export, resource: Vec<(&'static str, String)>) -> bool {
    let (tx, rx) = mpsc::channel(8192);
    if TRACER.set(Tracer { tx: Some(tx) }).is_err() {
        return false;
    }
    let mut attrs: Vec<(String, String)> = vec![("service.name".into(), export.service.clone())];
    attrs.extend(export.resource.iter().cloned());
    attrs.extend(resource.into_iter().map(|(k, v)| (k.to_string(), v)));
    tokio::spawn(export_loop(export, attrs, rx));
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

fn encode_json(resource: &[(String, String)], spans: &[SpanData]) -> Value {
    let resource =
        json!({"attributes": resource.iter().map(|(k, v)| kv(k, &json!(v))).collect::<Vec<_>>()});
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

async fn export_loop(
    export: Export,
    resource: Vec<(String, String)>,
    mut rx: mpsc::Receiver<SpanData>,
) {
    // One process-wide TLS provider (for https endpoints); a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in &export.headers {
        match (
            reqwest::header::HeaderName::from_bytes(k.as_bytes()),
            reqwest::header::HeaderValue::from_str(v),
        ) {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(true);
                headers.insert(name, value);
            }
            _ => tracing::warn!(
                component = "telemetry",
                "OTLP header `{k}` is not a valid HTTP header; it is left out"
            ),
        }
    }
    let client = match reqwest::Client::builder()
        .timeout(export.timeout)
        .default_headers(headers)
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
    let url = export.url;
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
        let request = match export.protocol {
            Protocol::Json => client.post(&url).json(&encode_json(&resource, &batch)),
            Protocol::Protobuf => client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
                .body(crate::otlp_proto::encode(&resource, &batch)),
        };
        let sent = request.send().await;
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

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_standard_variables_name_the_collector_when_the_file_does_not() {
        assert_eq!(
            Export::resolve(None, None, "oclaw", &env(&[])).unwrap(),
            None
        );
        let e = Export::resolve(
            None,
            None,
            "oclaw",
            &env(&[
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://otel.example.com:4318/",
                ),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "api-key=s%3Dcret, x-team = ops,=skipped",
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-Team=core"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_SERVICE_NAME", "billing"),
                ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.url, "https://otel.example.com:4318/v1/traces");
        assert_eq!(e.protocol, Protocol::Protobuf);
        assert_eq!(
            e.headers,
            [
                ("api-key".to_string(), "s=cret".to_string()),
                ("X-Team".into(), "core".into())
            ]
        );
        assert_eq!(e.timeout, Duration::from_millis(2500));
        assert_eq!(e.service, "billing");
        assert_eq!(
            e.resource,
            [("deployment.environment".to_string(), "prod".to_string())]
        );
        // The traces endpoint is used as given; the file's endpoint and protocol win.
        let e = Export::resolve(
            None,
            None,
            "mine",
            &env(&[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ("OTEL_SERVICE_NAME", "not-this"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (e.url.as_str(), e.protocol, e.service.as_str()),
            ("http://c:4318/custom", Protocol::Json, "mine")
        );
        let e = Export::resolve(
            Some("http://file:4318"),
            Some("http/protobuf"),
            "oclaw",
            &env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (e.url.as_str(), e.protocol),
            ("http://file:4318/v1/traces", Protocol::Protobuf)
        );
        // Off switches, and clear refusals.
        let off = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert_eq!(Export::resolve(None, None, "oclaw", &off).unwrap(), None);
        let grpc = Export::resolve(Some("http://c:4317"), Some("grpc"), "oclaw", &env(&[]));
        assert!(grpc.unwrap_err().contains("gRPC"));
        let bad = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318")]);
        assert!(Export::resolve(None, None, "oclaw", &bad)
            .unwrap_err()
            .contains("http://"));
    }

    #[test]
    fn encodes_otlp_json() {
        let start = SystemTime::now();
        let body = encode_json(
            &[],
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

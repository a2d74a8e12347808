//! Trace ids: taken from a W3C `traceparent` header when present, otherwise new.

use axum::http::HeaderMap;

/// The trace id of a request: the `traceparent` trace id when valid, else a fresh one.
pub fn trace_id_from(headers: &HeaderMap) -> String {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent)
        .unwrap_or_else(oclaw_core::task::new_trace_id)
}

/// The trace id of a valid `traceparent` (one parser, shared with trace export).
fn parse_traceparent(v: &str) -> Option<String> {
    oclaw_telemetry::otlp::parse_traceparent(v).map(|(trace, _)| trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_traceparent() {
        assert_eq!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(parse_traceparent("garbage"), None);
        assert_eq!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
    }
}

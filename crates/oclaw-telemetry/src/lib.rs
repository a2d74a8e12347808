//! Logging: JSON lines with the fields `timestamp`, `level`, `component`, `message` and, where
//! they apply, `task_id`, `error_code`, `trace_id` (plus any other event fields) — ready for
//! Filebeat or Fluentd without a parser; or a human format on a terminal. Also the node's metrics
//! (`metrics`, `node_metrics`, `system`), trace export over OTLP (`otlp`) and the Prometheus alert
//! rules shipped with the binary (`alert_rules`).

pub mod alert_rules;
mod json_format;
pub mod llm_metrics;
pub mod metrics;
pub mod node_metrics;
pub mod otlp;
mod otlp_proto;
pub mod system;

pub use json_format::JsonLines;
pub use node_metrics::{ChannelEvent, NodeMetrics};

use std::io::IsTerminal;

/// `json`, `human`, or `auto` (human on a terminal, JSON otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    Auto,
    Json,
    Human,
}

/// Installs the process-wide logger writing to stderr. `level` is `info`, `debug`, ... or a
/// tracing filter such as `info,oclaw_store=debug`; `OCLAW_LOG` overrides it.
pub fn init_logging(style: LogStyle, level: &str) {
    let filter = std::env::var("OCLAW_LOG").unwrap_or_else(|_| level.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match style {
        LogStyle::Json => true,
        LogStyle::Human => false,
        LogStyle::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.event_format(JsonLines).try_init()
    } else {
        builder.with_target(false).try_init()
    };
    let _ = result;
}

//! Value encodings shared by the backends: times as Unix milliseconds, JSON as text.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// Stored JSON back to a value; text that is not JSON comes back as a string, never an error.
pub fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::String(text.to_string()))
}

pub fn to_json(v: &Value) -> String {
    v.to_string()
}

/// Claim condition for ordering keys: a task waits while an earlier task with its key is waiting
/// or while one is running (the claiming query names the candidate `c`).
pub(crate) const ORDERED: &str =
    "AND (c.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM tasks o \
     WHERE o.ordering_key = c.ordering_key AND o.status IN ('queued', 'scheduled', 'running') \
     AND (o.status = 'running' OR o.id < c.id)))";

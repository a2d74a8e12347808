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

/// Claim condition for ordering keys: a task waits while its key's running tasks and the
/// earlier tasks of its key still to run number its `key_limit` (one when unset) or more — so a
/// key runs at most that many at once, in the order they came (the claiming query names the
/// candidate `c`). A task parked in a wait does not count: it holds no slot of its key.
pub(crate) const ORDERED: &str = "AND (c.ordering_key IS NULL OR (SELECT count(*) FROM tasks o \
     WHERE o.ordering_key = c.ordering_key AND o.status IN ('queued', 'scheduled', 'running') \
     AND (o.status = 'running' OR o.id < c.id)) < coalesce(c.key_limit, 1))";

/// Claim condition for rate keys, with `now` the claim's time parameter: a task waits while the
/// tasks of its key that started within its window, and the earlier ones of its key about to
/// start (queued before it), number its rate limit or more. Counting those still queued keeps a
/// claim of many at once — or claims of several workers at once — within the limit.
pub(crate) fn rated(now: &str) -> String {
    format!(
        "AND (c.rate_key IS NULL OR (SELECT count(*) FROM tasks r WHERE r.rate_key = c.rate_key \
         AND ((r.started_at > {now} - c.rate_per AND r.id <> c.id) OR (r.status = 'queued' AND r.id < c.id))) \
         < c.rate_limit)"
    )
}

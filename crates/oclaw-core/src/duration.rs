//! Human durations in configuration and API input: `500ms`, `5s`, `5m`, `1h30m`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration written the human way. Plain integers are read as seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

/// Parses `500ms`, `5s`, `1h 30m`, `2d`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration; write it like `500ms`, `5s` or `5m`".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("invalid duration `{t}` ({e}); write it like `500ms`, `5s` or `5m`"))
}

/// Formats a duration compactly: `500ms`, `5s`, `2m`, `1h 30m`.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    humantime::format_duration(d).to_string()
}

impl std::str::FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Dur)
    }
}

impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Float(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Dur(Duration::from_secs(s))),
            // `5.0` is the integer 5, as JSON Schema counts integers.
            Raw::Float(f) => crate::integral::of_f64(f)
                .map(|s| Dur(Duration::from_secs(s)))
                .ok_or_else(|| {
                    serde::de::Error::custom(format!("{f} is not a whole number of seconds"))
                }),
            Raw::Text(t) => parse_duration(&t)
                .map(Dur)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// What `parse_duration` accepts, as a pattern: whole seconds, or numbers each with a unit.
pub const DURATION_PATTERN: &str = "^\\s*([0-9]{1,9}|([0-9]{1,9}\\s*(nsec|ns|usec|us|µs|msec|ms|seconds|second|sec|s|minutes|minute|min|m|hours|hour|hr|h|days|day|d|weeks|week|w)\\s*)+)$";

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration such as `500ms`, `5s`, `5m` or `1h 30m`; a bare integer is seconds.",
            "oneOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "integer", "minimum": 0, "maximum": 999_999_999u64}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert!(parse_duration("soon")
            .unwrap_err()
            .contains("invalid duration"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn round_trips_through_serde() {
        let d: Dur = serde_json::from_str("\"500ms\"").unwrap();
        assert_eq!(d, Dur::millis(500));
        assert_eq!(serde_json::to_string(&Dur::secs(300)).unwrap(), "\"5m\"");
        let n: Dur = serde_json::from_str("7").unwrap();
        assert_eq!(n, Dur::secs(7));
    }
}

//! Loading `oclaw.yaml`: strict parsing with file/line errors and did-you-mean hints, the
//! profile's defaults underneath, and `OCLAW_*` environment overrides on top.

use std::path::Path;

use serde_json::{Map, Value};

use crate::config::{NodeConfig, Profile};
use crate::suggest;
use crate::ErrorCode;

/// A configuration problem, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {}{message}", location(.file, .line, .column))]
pub struct ConfigError {
    pub code: ErrorCode,
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

fn location(file: &Option<String>, line: &Option<usize>, column: &Option<usize>) -> String {
    match (file, line, column) {
        (Some(f), Some(l), Some(c)) => format!("{f}:{l}:{c}: "),
        (Some(f), Some(l), None) => format!("{f}:{l}: "),
        (Some(f), None, _) => format!("{f}: "),
        (None, Some(l), _) => format!("line {l}: "),
        _ => String::new(),
    }
}

impl ConfigError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ConfigError {
        ConfigError {
            code,
            file: None,
            line: None,
            column: None,
            message: message.into(),
        }
    }
    pub fn in_file(mut self, file: &str) -> ConfigError {
        self.file = Some(file.to_string());
        self
    }
    pub fn at_line(mut self, line: usize) -> ConfigError {
        self.line = Some(line);
        self
    }
}

/// Turns a YAML error into a located [`ConfigError`] with a did-you-mean hint.
pub fn yaml_error(file: &str, err: &serde_saphyr::Error) -> ConfigError {
    let loc = err.location();
    let mut message = err.without_snippet().to_string();
    if let Some(l) = &loc {
        for suffix in [
            format!(" at line {} column {}", l.line(), l.column()),
            format!(" at line {}, column {}", l.line(), l.column()),
        ] {
            if let Some(pos) = message.find(&suffix) {
                message.replace_range(pos..pos + suffix.len(), "");
            }
        }
    }
    let code = if message.contains("unknown field") {
        if let Some(hint) = unknown_field_hint(&message) {
            message.push_str(&hint);
        }
        ErrorCode::ConfigUnknownKey
    } else if is_syntax(err) {
        ErrorCode::ConfigSyntax
    } else {
        ErrorCode::ConfigInvalidValue
    };
    ConfigError {
        code,
        file: Some(file.to_string()),
        line: loc.as_ref().map(|l| l.line() as usize),
        column: loc.as_ref().map(|l| l.column() as usize),
        message,
    }
}

/// Whether the YAML parser itself refused the text (rather than a value not fitting its field).
fn is_syntax(err: &serde_saphyr::Error) -> bool {
    match err.without_snippet() {
        serde_saphyr::Error::Eof { .. } => true,
        serde_saphyr::Error::ExternalMessage { source, .. } => {
            matches!(**source, serde_saphyr::ExternalMessageSource::Parser(_))
        }
        _ => false,
    }
}

/// From "unknown field `x`, expected one of a, b" (names with or without backticks) builds
/// " (did you mean `a`?)".
fn unknown_field_hint(message: &str) -> Option<String> {
    let start = message.find("unknown field `")? + "unknown field `".len();
    let rest = &message[start..];
    let unknown = &rest[..rest.find('`')?];
    let expected = &rest[rest.find("expected")?..];
    let expected = expected
        .strip_prefix("expected one of")
        .or_else(|| expected.strip_prefix("expected"))
        .unwrap_or(expected);
    let candidates: Vec<&str> = expected
        .split(',')
        .map(|c| c.trim().trim_matches('`'))
        .filter(|c| !c.is_empty())
        .collect();
    let hint = suggest::hint(unknown, &candidates);
    (!hint.is_empty()).then_some(hint)
}

/// Reads and loads a config file (or only defaults when `path` is `None`).
pub fn load_node_config(
    path: Option<&Path>,
    profile: Profile,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<NodeConfig, ConfigError> {
    let (name, text) = match path {
        Some(p) => {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| {
                ConfigError::new(
                    ErrorCode::ConfigUnreadable,
                    format!("cannot read config: {e}"),
                )
                .in_file(&name)
            })?;
            (name, text)
        }
        None => ("<defaults>".to_string(), String::new()),
    };
    parse_node_config(&name, &text, profile, env)
}

/// Layers: the profile's defaults, then the file, then `OCLAW_*` environment overrides.
pub fn parse_node_config(
    file: &str,
    text: &str,
    profile: Profile,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<NodeConfig, ConfigError> {
    let file_value: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        let value = serde_saphyr::from_str::<Value>(text).map_err(|e| yaml_error(file, &e))?;
        // Deserialising the text straight into the typed config gives errors with lines.
        serde_saphyr::from_str::<NodeConfig>(text).map_err(|e| yaml_error(file, &e))?;
        value
    };
    let mut merged = serde_json::to_value(NodeConfig::for_profile(profile))
        .map_err(|e| ConfigError::new(ErrorCode::ConfigInvalidValue, e.to_string()))?;
    merge(&mut merged, file_value);
    let mut overridden = Vec::new();
    for (key, raw) in env {
        if let Some(path) = override_path(&key, &merged)? {
            set_path(&mut merged, &key, &path, &raw)?;
            overridden.push(key);
        }
    }
    let config: NodeConfig = serde_json::from_value(merged).map_err(|e| {
        let code = if overridden.is_empty() {
            ErrorCode::ConfigInvalidValue
        } else {
            ErrorCode::ConfigBadEnvOverride
        };
        let from = if overridden.is_empty() {
            String::new()
        } else {
            format!(" (after environment overrides {})", overridden.join(", "))
        };
        ConfigError::new(code, format!("{e}{from}")).in_file(file)
    })?;
    config
        .check_values()
        .map_err(|m| ConfigError::new(ErrorCode::ConfigInvalidValue, m).in_file(file))?;
    Ok(config)
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Maps names that are free-form (user-chosen keys) rather than fixed fields.
const FREE_FORM_MAPS: &[&str] = &["queues"];

/// `OCLAW_WORKER__CONCURRENCY` → `["worker", "concurrency"]`; `None` for variables that are not
/// config overrides (`OCLAW_SERVER`, `OCLAW_SECRET_*`, ...).
fn override_path(key: &str, config: &Value) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(rest) = key.strip_prefix("OCLAW_") else {
        return Ok(None);
    };
    let segments: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
    let top_keys: Vec<&str> = config
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let first = &segments[0];
    let known = top_keys.iter().any(|k| k.eq_ignore_ascii_case(first));
    if !known {
        if segments.len() > 1 {
            return Err(ConfigError::new(
                ErrorCode::ConfigBadEnvOverride,
                format!(
                    "environment variable {key} names unknown config section `{first}`{}",
                    suggest::hint(first, &top_keys)
                ),
            ));
        }
        return Ok(None);
    }
    Ok(Some(segments))
}

fn set_path(root: &mut Value, key: &str, path: &[String], raw: &str) -> Result<(), ConfigError> {
    let parsed: Value =
        serde_saphyr::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    let mut node = root;
    let mut parent_free_form = false;
    for (i, seg) in path.iter().enumerate() {
        if node.is_null() && i > 0 {
            *node = Value::Object(Map::new());
            // Keys inside a freshly created entry are checked by the typed parse afterwards.
            parent_free_form = true;
        }
        let Value::Object(obj) = node else {
            return Err(ConfigError::new(
                ErrorCode::ConfigBadEnvOverride,
                format!(
                    "environment variable {key}: `{}` is not a section",
                    path[..i].join(".")
                ),
            ));
        };
        let existing = obj.keys().find(|k| k.eq_ignore_ascii_case(seg)).cloned();
        let name = match existing {
            Some(name) => name,
            None if parent_free_form => seg.clone(),
            None => {
                let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
                return Err(ConfigError::new(
                    ErrorCode::ConfigBadEnvOverride,
                    format!(
                        "environment variable {key} names unknown key `{seg}`{}",
                        suggest::hint(seg, &keys)
                    ),
                ));
            }
        };
        parent_free_form = i == 0 && FREE_FORM_MAPS.contains(&name.as_str());
        if i + 1 == path.len() {
            obj.insert(name, parsed);
            return Ok(());
        }
        node = obj.entry(name).or_insert(Value::Null);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dur;

    fn parse(text: &str, env: &[(&str, &str)]) -> Result<NodeConfig, ConfigError> {
        parse_node_config(
            "oclaw.yaml",
            text,
            Profile::Default,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn file_values_override_defaults() {
        let c = parse(
            "worker:\n  concurrency: 20\n  batch:\n    maxSize: 50\n    timeout: 250ms\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.worker.concurrency, 20);
        assert_eq!(c.worker.batch.max_size, 50);
        assert_eq!(c.worker.batch.timeout, Dur::millis(250));
        assert_eq!(c.scheduler.interval, Dur::secs(5));
    }

    #[test]
    fn unknown_key_reports_line_and_suggestion() {
        let err = parse("api:\n  timeout: 5s\nworker:\n  concurency: 20\n", &[]).unwrap_err();
        assert_eq!(err.code, ErrorCode::ConfigUnknownKey);
        assert_eq!(err.line, Some(4));
        assert!(
            err.message.contains("did you mean `concurrency`"),
            "{}",
            err.message
        );
        assert!(
            err.to_string().starts_with("OC-1003 oclaw.yaml:4:"),
            "{err}"
        );
    }

    #[test]
    fn bad_duration_is_a_value_error_with_line() {
        let err = parse("scheduler:\n  interval: soonish\n", &[]).unwrap_err();
        assert_eq!(err.code, ErrorCode::ConfigInvalidValue);
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("invalid duration"), "{}", err.message);
    }

    #[test]
    fn broken_yaml_is_a_syntax_error() {
        let err = parse("worker:\n  concurrency: [1, 2\n", &[]).unwrap_err();
        assert_eq!(err.code, ErrorCode::ConfigSyntax, "{err}");
        assert!(err.line.is_some());
    }

    #[test]
    fn environment_overrides_win() {
        let c = parse(
            "worker:\n  concurrency: 20\n",
            &[
                ("OCLAW_WORKER__CONCURRENCY", "50"),
                ("OCLAW_API__LISTEN", "0.0.0.0:9000"),
                ("OCLAW_WORKER__BATCH__MAXSIZE", "10"),
                ("OCLAW_QUEUES__EMAILS__CAPACITY", "5"),
                ("OCLAW_SERVER", "http://elsewhere"),
                ("OCLAW_SECRET_TOKEN", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.worker.concurrency, 50);
        assert_eq!(c.api.listen, "0.0.0.0:9000");
        assert_eq!(c.worker.batch.max_size, 10);
        assert_eq!(c.queues["emails"].capacity, Some(5));
    }

    #[test]
    fn bad_environment_override_names_the_variable() {
        let err = parse("", &[("OCLAW_WORKER__CONCURENCY", "5")]).unwrap_err();
        assert_eq!(err.code, ErrorCode::ConfigBadEnvOverride);
        assert!(err.message.contains("OCLAW_WORKER__CONCURENCY"));
        assert!(
            err.message.contains("did you mean `concurrency`"),
            "{}",
            err.message
        );
        let err = parse("", &[("OCLAW_WORKER__CONCURRENCY", "many")]).unwrap_err();
        assert_eq!(err.code, ErrorCode::ConfigBadEnvOverride, "{err}");
    }

    #[test]
    fn production_profile_sits_under_the_file() {
        let c = parse_node_config("f", "cache:\n  ttl: 10m\n", Profile::Production, Vec::new())
            .unwrap();
        assert_eq!(c.worker.concurrency, 50);
        assert_eq!(c.cache.ttl, Dur::secs(600));
    }

    #[test]
    fn invalid_values_are_rejected() {
        let err = parse("worker:\n  concurrency: 0\n", &[]).unwrap_err();
        assert!(err.message.contains("worker.concurrency"));
        let err = parse("api:\n  listen: here\n", &[]).unwrap_err();
        assert!(err.message.contains("api.listen"));
    }
}

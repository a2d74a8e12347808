//! Webhook triggers of bots: `webhook: {path: /hooks/NAME, secret: ..., token: ..., mode: sync|async,
//! format: generic|alertmanager}`. Parsed and checked at load; the API serves them.

use serde::Deserialize;
use serde_json::Value;

/// How a webhook answers its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebhookMode {
    /// 202 with the task id at once.
    #[default]
    Async,
    /// Waits up to `api.timeout` and answers with the bot's output.
    Sync,
}

/// How the request body becomes the task's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Any JSON (or text) body: `data` is the body, `text` its `text` field when there is one.
    #[default]
    Generic,
    /// Prometheus Alertmanager's webhook payload (version 4): `conversation` is the group key.
    Alertmanager,
}

/// A bot's webhook trigger.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTrigger {
    /// Request path, under `/hooks/`.
    pub path: String,
    /// HMAC-SHA256 key for `X-Oclaw-Signature`; may be a template over `secrets`
    /// (`"{{ secrets.ORDERS_HMAC }}"`).
    #[serde(default)]
    pub secret: Option<String>,
    /// A bearer token the sender presents instead of a signature (for senders that cannot sign,
    /// such as Alertmanager's `http_config.authorization`); may be a template over `secrets`.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub mode: WebhookMode,
    #[serde(default)]
    pub format: WebhookFormat,
}

/// Checks a path served under `/hooks/`.
pub fn check_hook_path(path: &str) -> Result<(), String> {
    let rest = path.strip_prefix("/hooks/").unwrap_or("");
    let valid = !rest.is_empty()
        && rest.split('/').all(|seg| {
            seg.chars().any(|c| c != '.')
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "path `{path}` must be /hooks/ followed by letters, digits, - _ . and /"
        ))
    }
}

impl WebhookTrigger {
    /// Parses and checks a `webhook:` trigger value.
    pub fn parse(v: &Value) -> Result<WebhookTrigger, String> {
        let hook: WebhookTrigger =
            serde_json::from_value(v.clone()).map_err(|e| format!("webhook trigger: {e}"))?;
        check_hook_path(&hook.path).map_err(|m| format!("webhook {m}"))?;
        if hook.secret.is_some() && hook.token.is_some() {
            return Err(
                "webhook trigger: set `secret` (signed requests) or `token`, not both".into(),
            );
        }
        Ok(hook)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_checks() {
        let h =
            WebhookTrigger::parse(&json!({"path": "/hooks/orders", "secret": "k", "mode": "sync"}))
                .unwrap();
        assert_eq!(h.mode, WebhookMode::Sync);
        assert_eq!(h.format, WebhookFormat::Generic);
        assert!(WebhookTrigger::parse(&json!({"path": "/orders"})).is_err());
        assert!(WebhookTrigger::parse(&json!({"path": "/hooks/../x"})).is_err());
        assert!(WebhookTrigger::parse(&json!({"path": "/hooks/a//b"})).is_err());
        assert!(WebhookTrigger::parse(&json!({"path": "/hooks/a b"})).is_err());
        assert!(WebhookTrigger::parse(&json!({"path": "/hooks/a", "mode": "later"})).is_err());
        assert!(
            WebhookTrigger::parse(&json!({"path": "/hooks/a", "secret": "x", "token": "y"}))
                .is_err()
        );
        assert!(WebhookTrigger::parse(&json!({"path": "/hooks/a", "colour": 1})).is_err());
    }
}

//! The webhook channel: `webhook` triggers served by the api-server under `/hooks/`. A request is
//! authenticated by the trigger's own means — an HMAC signature (`X-Oclaw-Signature:
//! t=<unix>,v1=<hex>` over `"<t>.<body>"`, within 5 minutes), a bearer token, or else the API's
//! tokens — and its body becomes the task input by the trigger's `format` (generic, or an
//! Alertmanager notification). The trigger's parsed form is in `oclaw_bots::triggers::webhook`.

use oclaw_bots::triggers::webhook::{WebhookFormat, WebhookTrigger};
use oclaw_core::ErrorCode;
use serde_json::{json, Value};

use crate::platforms::{hex, hmac_sha256};
use crate::{resolve_secret, Request};

/// Signed requests older or newer than this are refused (replays).
const REPLAY_WINDOW_SECS: i64 = 300;

/// A body the trigger's format cannot read.
#[derive(Debug)]
pub struct BadBody {
    pub code: ErrorCode,
    pub message: String,
    /// The field at fault, when there is one.
    pub field: Option<&'static str>,
}

/// Checks `X-Oclaw-Signature` against `secret` at `now` (unix seconds).
pub fn verify_signature(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), String> {
    let header = header.ok_or("missing X-Oclaw-Signature")?;
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v.to_string()),
            _ => {}
        }
    }
    let t = t.ok_or("X-Oclaw-Signature has no valid t=")?;
    if (now - t).abs() > REPLAY_WINDOW_SECS {
        return Err(format!(
            "signature time {t} is outside the {REPLAY_WINDOW_SECS}s window"
        ));
    }
    let expected = hex(&hmac_sha256(secret, &[format!("{t}.").as_bytes(), body]));
    if sigs.iter().any(|sig| {
        crate::constant_time_eq(sig.to_ascii_lowercase().as_bytes(), expected.as_bytes())
    }) {
        return Ok(());
    }
    Err("signature does not match".into())
}

fn same(a: &str, b: &str) -> bool {
    crate::constant_time_eq(a.as_bytes(), b.as_bytes())
}

/// Checks a request by the trigger's secret or token; a trigger with neither takes one of
/// `api_tokens` (none configured: open, as the API is).
pub fn authenticate(
    hook: &WebhookTrigger,
    req: &Request<'_>,
    api_tokens: &[String],
) -> Result<(), String> {
    if let Some(secret) = &hook.secret {
        let secret = resolve_secret(secret)?;
        return verify_signature(
            secret.as_bytes(),
            req.header("x-oclaw-signature"),
            req.body,
            req.now,
        );
    }
    if let Some(token) = &hook.token {
        let token = resolve_secret(token)?;
        return match req.bearer() {
            Some(p) if same(p, &token) => Ok(()),
            Some(_) => Err("the bearer token does not match the webhook's".into()),
            None => Err("missing Authorization: Bearer <token>".into()),
        };
    }
    if api_tokens.is_empty() {
        return Ok(());
    }
    match req.bearer() {
        Some(p) if api_tokens.iter().any(|t| same(p, t)) => Ok(()),
        _ => Err("this webhook has no secret or token of its own, so it needs an API token".into()),
    }
}

/// The task input for a request body, by format.
pub fn to_input(hook: &WebhookTrigger, req: &Request<'_>) -> Result<Value, BadBody> {
    let text = String::from_utf8_lossy(req.body);
    let parsed: Option<Value> = serde_json::from_slice(req.body).ok();
    match hook.format {
        WebhookFormat::Generic => {
            let data = parsed
                .clone()
                .unwrap_or_else(|| Value::String(text.to_string()));
            let text = match &parsed {
                Some(v) => v.get("text").and_then(Value::as_str).map(str::to_string),
                None => Some(text.to_string()),
            };
            let conversation = req.header("x-oclaw-conversation").map(str::to_string);
            Ok(json!({
                "channel": "webhook",
                "text": text,
                "data": data,
                "conversation": conversation,
                "user": null,
            }))
        }
        WebhookFormat::Alertmanager => {
            let payload = parsed.ok_or_else(|| BadBody {
                code: ErrorCode::MalformedBody,
                message: "an Alertmanager notification must be JSON".into(),
                field: None,
            })?;
            let alerts = payload["alerts"].as_array().ok_or_else(|| BadBody {
                code: ErrorCode::InvalidField,
                message: "an Alertmanager notification has an `alerts` list".into(),
                field: Some("alerts"),
            })?;
            let mut names: Vec<&str> = alerts
                .iter()
                .filter_map(|a| a["labels"]["alertname"].as_str())
                .collect();
            names.sort_unstable();
            names.dedup();
            let text = format!(
                "{}: {} alert{} ({})",
                payload["status"].as_str().unwrap_or("unknown"),
                alerts.len(),
                if alerts.len() == 1 { "" } else { "s" },
                names.join(", ")
            );
            Ok(json!({
                "channel": "alertmanager",
                "text": text,
                "data": payload,
                "conversation": payload["groupKey"],
                "user": payload["receiver"],
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::{hex, hmac_sha256};

    fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
        let sig = hex(&hmac_sha256(secret, &[format!("{t}.").as_bytes(), body]));
        format!("t={t},v1={sig}")
    }

    #[test]
    fn signatures_are_checked_with_a_replay_window() {
        let body = br#"{"order": 42}"#;
        let now = 1_800_000_000;
        let good = sign(b"k3y", now - 10, body);
        assert!(verify_signature(b"k3y", Some(&good), body, now).is_ok());
        assert!(verify_signature(b"other", Some(&good), body, now).is_err());
        assert!(verify_signature(b"k3y", Some(&good), br#"{"order": 43}"#, now).is_err());
        assert!(verify_signature(b"k3y", None, body, now).is_err());
        let old = sign(b"k3y", now - 301, body);
        assert!(verify_signature(b"k3y", Some(&old), body, now)
            .unwrap_err()
            .contains("window"));
        assert!(verify_signature(b"k3y", Some("t=abc,v1=00"), body, now).is_err());
        // A vector computed independently (Python hmac): HMAC-SHA256("secret", "1700000000.hello").
        assert_eq!(
            sign(b"secret", 1_700_000_000, b"hello"),
            "t=1700000000,v1=47b1df0ab12338b2685470b0d2b37033add7c3b2bc8172f313e77413f1bb78c8"
        );
    }
}

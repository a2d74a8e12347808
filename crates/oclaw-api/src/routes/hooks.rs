//! `POST /hooks/...`: webhook triggers of bots. Each request is authenticated by the trigger's own
//! means — an HMAC signature (`X-Oclaw-Signature: t=<unix>,v1=<hex>` over `"<t>.<body>"`, within
//! 5 minutes), a bearer token, or else the API's tokens — then becomes a task for the bot. `async`
//! answers 202 with the task id; `sync` waits up to `api.timeout` and answers with the bot's output.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use oclaw_bots::triggers::webhook::{WebhookFormat, WebhookMode, WebhookTrigger};
use oclaw_core::ErrorCode;
use serde_json::{json, Value};

use crate::auth::bearer;
use crate::{ApiError, ApiState};

/// Signed requests older or newer than this are refused (replays).
const REPLAY_WINDOW_SECS: i64 = 300;

use oclaw_channels::platforms::{hex, hmac_sha256};
use oclaw_channels::resolve_secret as resolve;

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
        oclaw_channels::constant_time_eq(sig.to_ascii_lowercase().as_bytes(), expected.as_bytes())
    }) {
        return Ok(());
    }
    Err("signature does not match".into())
}

fn same(a: &str, b: &str) -> bool {
    oclaw_channels::constant_time_eq(a.as_bytes(), b.as_bytes())
}

fn authenticate(
    state: &ApiState,
    hook: &WebhookTrigger,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    if let Some(secret) = &hook.secret {
        let secret = resolve(secret)?;
        let header = headers
            .get("x-oclaw-signature")
            .and_then(|v| v.to_str().ok());
        return verify_signature(
            secret.as_bytes(),
            header,
            body,
            chrono::Utc::now().timestamp(),
        );
    }
    if let Some(token) = &hook.token {
        let token = resolve(token)?;
        return match bearer(headers) {
            Some(p) if same(p, &token) => Ok(()),
            Some(_) => Err("the bearer token does not match the webhook's".into()),
            None => Err("missing Authorization: Bearer <token>".into()),
        };
    }
    if state.tokens.is_empty() {
        return Ok(());
    }
    match bearer(headers) {
        Some(p) if state.tokens.iter().any(|t| same(p, t)) => Ok(()),
        _ => Err("this webhook has no secret or token of its own, so it needs an API token".into()),
    }
}

/// The task input for a request body, by format.
fn to_input(hook: &WebhookTrigger, headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    match hook.format {
        WebhookFormat::Generic => {
            let data = parsed
                .clone()
                .unwrap_or_else(|| Value::String(text.to_string()));
            let text = match &parsed {
                Some(v) => v.get("text").and_then(Value::as_str).map(str::to_string),
                None => Some(text.to_string()),
            };
            let conversation = headers
                .get("x-oclaw-conversation")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok(json!({
                "channel": "webhook",
                "text": text,
                "data": data,
                "conversation": conversation,
                "user": null,
            }))
        }
        WebhookFormat::Alertmanager => {
            let payload = parsed.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::MalformedBody,
                    "an Alertmanager notification must be JSON",
                )
            })?;
            let alerts = payload["alerts"].as_array().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidField,
                    "an Alertmanager notification has an `alerts` list",
                )
                .details(json!({"field": "alerts"}))
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

/// A chat-platform trigger's request: checked the platform's way, answered at once (the
/// platforms want a quick 200), with the bot's reply sent through the platform's API later.
async fn platform(
    state: &ApiState,
    bot: std::sync::Arc<oclaw_bots::LoadedBot>,
    trigger: oclaw_bots::triggers::platform::PlatformTrigger,
    method: &axum::http::Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    use oclaw_channels::platforms::{self, Ingress, Refusal};
    let trace_id = &crate::trace::trace_id_from(headers);
    let channel = trigger.kind().name();
    let header_map: std::collections::HashMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), v.to_string()))
        })
        .collect();
    let query: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let req = platforms::Request {
        method: method.as_str(),
        headers: &header_map,
        query: &query,
        body,
        now: chrono::Utc::now().timestamp(),
    };
    let ingress = platforms::ingress(&trigger, &req).map_err(|r| {
        state.metrics.channel_event(channel, "error");
        let (code, why) = match r {
            Refusal::Unauthorized(w) => (ErrorCode::WebhookUnauthorized, w),
            Refusal::Malformed(w) => (ErrorCode::MalformedFrame, w),
        };
        tracing::warn!(
            component = "api-server",
            channel,
            path = uri.path(),
            bot = bot.name(),
            error_code = code.code(),
            "{channel} request refused: {why}"
        );
        ApiError::new(code, why).trace(trace_id)
    })?;
    match ingress {
        Ingress::Answer { content_type, body } => Ok((
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, content_type)],
            body,
        )
            .into_response()),
        Ingress::Ignore(why) => {
            tracing::debug!(
                component = "api-server",
                channel,
                bot = bot.name(),
                "ignored: {why}"
            );
            Ok((StatusCode::OK, Json(json!({"ok": true, "ignored": why}))).into_response())
        }
        Ingress::Message {
            mut inbound,
            reply_to,
        } => {
            state.metrics.channel_event(channel, "received");
            let received = std::time::Instant::now();
            inbound.trace_id = Some(trace_id.to_string());
            let pending = state
                .replies
                .submit(inbound.task_for(&bot))
                .await
                .map_err(|e| ApiError::from(e).trace(trace_id))?;
            let task_id = pending.task.id;
            // A platform's retry of the same event finds the same task: answered once.
            if pending.created {
                let metrics = state.metrics.clone();
                let timeout = bot.doc.spec.timeout.get() + std::time::Duration::from_secs(5);
                tokio::spawn(async move {
                    let Some(task) = pending.finished(timeout).await else {
                        return;
                    };
                    let Some(output) = task
                        .output
                        .filter(|_| task.status == oclaw_core::TaskStatus::Succeeded)
                    else {
                        metrics.channel_event(channel, "error");
                        return;
                    };
                    let reply = oclaw_core::channel::reply_of(&output);
                    let text = reply.text.unwrap_or_else(|| output.to_string());
                    match platforms::send(&trigger, &reply_to, &text).await {
                        Ok(()) => metrics.channel_replied(channel, received.elapsed()),
                        Err(e) => {
                            metrics.channel_event(channel, "error");
                            tracing::warn!(component = "api-server", channel, task_id = %task_id, error_code = "OC-4021", "reply not delivered: {e}");
                        }
                    }
                });
            }
            if channel == "wecom" {
                // WeCom wants an empty body when the reply comes separately.
                return Ok((StatusCode::OK, "").into_response());
            }
            Ok((
                StatusCode::OK,
                Json(json!({"ok": true, "task_id": task_id})),
            )
                .into_response())
        }
    }
}

pub async fn receive(
    State(state): State<ApiState>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let trace_id = crate::trace::trace_id_from(&headers);
    let path = uri.path();
    if let Some((bot, trigger)) = state.catalog.platform(path) {
        let body = body
            .map_err(|e| ApiError::new(ErrorCode::BodyTooLarge, e.body_text()).trace(&trace_id))?;
        return platform(&state, bot, trigger, &method, &uri, &headers, &body).await;
    }
    if method != axum::http::Method::POST {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "webhooks take POST; GET is only for platform URL verification",
        )
        .trace(&trace_id));
    }
    let (bot, hook) = state.catalog.webhook(path).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no bot has a webhook at {path}"),
        )
        .trace(&trace_id)
    })?;
    let body =
        body.map_err(|e| ApiError::new(ErrorCode::BodyTooLarge, e.body_text()).trace(&trace_id))?;
    if let Err(why) = authenticate(&state, &hook, &headers, &body) {
        tracing::warn!(
            component = "api-server",
            channel = "webhook",
            path,
            bot = bot.name(),
            error_code = "OC-2012",
            "webhook refused: {why}"
        );
        return Err(ApiError::new(ErrorCode::WebhookUnauthorized, why).trace(&trace_id));
    }
    let input = to_input(&hook, &headers, &body).map_err(|e| e.trace(&trace_id))?;
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("webhook:{path}:{k}"));
    // A conversation's messages run in order, like every channel's.
    let ordering_key = input["conversation"].as_str().map(|c| {
        format!(
            "{}:{}:{c}",
            bot.name(),
            input["channel"].as_str().unwrap_or("webhook")
        )
    });
    let mut submit =
        crate::routes::tasks::SubmitTask::for_bot(bot.name().to_string(), input, idempotency_key);
    submit.ordering_key = ordering_key;
    let task = crate::routes::tasks::to_new_task(&state, submit, &trace_id)?;
    let wait = (hook.mode == WebhookMode::Sync).then_some(state.timeout);
    let done = crate::routes::bots::enqueue_and_wait(&state, task, &trace_id, wait).await?;
    if wait.is_none() || !done.status.is_terminal() {
        // Async, or sync and still running at the timeout.
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"task_id": done.id, "status": done.status, "trace_id": done.trace_id})),
        )
            .into_response());
    }
    match (&done.output, &done.error) {
        (Some(output), None) => Ok((StatusCode::OK, Json(output.clone())).into_response()),
        (_, error) => Ok((
            StatusCode::BAD_GATEWAY,
            Json(json!({
                "error": error.clone().map(|e| json!({"code": e.code, "message": e.message}))
                    .unwrap_or_else(|| json!({"code": "OC-4013", "message": format!("the task ended {}", done.status)})),
                "task_id": done.id,
                "trace_id": done.trace_id,
            })),
        )
            .into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

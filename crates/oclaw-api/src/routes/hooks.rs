//! `/hooks/...`: the HTTP glue of the webhook and chat-platform channels. The request is taken
//! apart once and handed to the channel (`oclaw_channels::webhook`, `oclaw_channels::platforms`),
//! which authenticates it and reads its input; the task is made here. A webhook's `async` mode
//! answers 202 with the task id; `sync` waits up to `api.timeout` and answers with the output.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use oclaw_bots::triggers::webhook::WebhookMode;
use oclaw_core::ErrorCode;
use serde_json::json;

use std::collections::HashMap;

use oclaw_channels::{webhook, Request};
use oclaw_telemetry::ChannelEvent;

use crate::{ApiError, ApiState};

/// The `channel` label of the webhook channel's metrics.
const WEBHOOK: &str = "webhook";

/// A request's headers and query, taken apart once for the channels.
struct Parts {
    headers: HashMap<String, String>,
    query: HashMap<String, String>,
}

impl Parts {
    fn of(uri: &Uri, headers: &HeaderMap) -> Parts {
        Parts {
            headers: headers
                .iter()
                .filter_map(|(k, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (k.as_str().to_string(), v.to_string()))
                })
                .collect(),
            query: url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        }
    }

    fn request<'a>(&'a self, method: &'a str, body: &'a [u8]) -> Request<'a> {
        Request {
            method,
            headers: &self.headers,
            query: &self.query,
            body,
            now: chrono::Utc::now().timestamp(),
        }
    }
}

/// A chat-platform trigger's request: checked the platform's way, answered at once (the
/// platforms want a quick 200), with the bot's reply sent through the platform's API later.
async fn platform(
    state: &ApiState,
    bot: std::sync::Arc<oclaw_bots::LoadedBot>,
    trigger: oclaw_bots::triggers::platform::PlatformTrigger,
    req: &Request<'_>,
    path: &str,
    trace_id: &str,
) -> Result<Response, ApiError> {
    use oclaw_channels::platforms::{self, Ingress, Refusal};
    let channel = trigger.kind().name();
    let ingress = platforms::ingress(&trigger, req).map_err(|r| {
        state.metrics.channel_event(channel, ChannelEvent::Error);
        let (code, why) = match r {
            Refusal::Unauthorized(w) => (ErrorCode::WebhookUnauthorized, w),
            Refusal::Malformed(w) => (ErrorCode::MalformedFrame, w),
        };
        tracing::warn!(
            component = "api-server",
            channel,
            path,
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
            state.metrics.channel_event(channel, ChannelEvent::Received);
            inbound.trace_id = Some(trace_id.to_string());
            // The reply goes back by a delivery task the worker enqueues with the task's
            // success (retried, dead-lettered when it cannot be sent): see
            // `oclaw_channels::delivery`. A platform's retry of the same event finds the same
            // task, so it is answered once.
            inbound.reply_to = Some(json!({"hook": path, "to": reply_to}));
            let enqueued = state
                .store
                .enqueue(inbound.task_for(&bot))
                .await
                .map_err(|e| ApiError::from(e).trace(trace_id))?;
            let task_id = enqueued.task.id;
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
    if let Some((bot, trigger)) = state.catalog.load().platform(path) {
        let body = body
            .map_err(|e| ApiError::new(ErrorCode::BodyTooLarge, e.body_text()).trace(&trace_id))?;
        let parts = Parts::of(&uri, &headers);
        let req = parts.request(method.as_str(), &body);
        return platform(&state, bot, trigger, &req, path, &trace_id).await;
    }
    if method != axum::http::Method::POST {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "webhooks take POST; GET is only for platform URL verification",
        )
        .trace(&trace_id));
    }
    let (bot, hook) = state.catalog.load().webhook(path).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no bot has a webhook at {path}"),
        )
        .trace(&trace_id)
    })?;
    let body =
        body.map_err(|e| ApiError::new(ErrorCode::BodyTooLarge, e.body_text()).trace(&trace_id))?;
    let parts = Parts::of(&uri, &headers);
    let req = parts.request(method.as_str(), &body);
    if let Err(why) = webhook::authenticate(&hook, &req, &state.tokens) {
        state.metrics.channel_event(WEBHOOK, ChannelEvent::Error);
        tracing::warn!(
            component = "api-server",
            channel = "webhook",
            path,
            bot = bot.name(),
            error_code = ErrorCode::WebhookUnauthorized.code(),
            "webhook refused: {why}"
        );
        return Err(ApiError::new(ErrorCode::WebhookUnauthorized, why).trace(&trace_id));
    }
    let input = webhook::to_input(&hook, &req).map_err(|e| {
        state.metrics.channel_event(WEBHOOK, ChannelEvent::Error);
        let err = ApiError::new(e.code, e.message).trace(&trace_id);
        match e.field {
            Some(field) => err.details(json!({ "field": field })),
            None => err,
        }
    })?;
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
    let task = crate::routes::tasks::to_new_task(&state, None, submit, &trace_id)?;
    let wait = (hook.mode == WebhookMode::Sync).then_some(state.timeout);
    let received = std::time::Instant::now();
    let done = crate::routes::bots::enqueue_and_wait(&state, task, &trace_id, wait).await?;
    state.metrics.channel_event(WEBHOOK, ChannelEvent::Received);
    if wait.is_none() || !done.status.is_terminal() {
        // Async, or sync and still running at the timeout.
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"task_id": done.id, "status": done.status, "trace_id": done.trace_id})),
        )
            .into_response());
    }
    match (&done.output, &done.error) {
        (Some(output), None) => {
            state.metrics.channel_replied(WEBHOOK, received.elapsed());
            Ok((StatusCode::OK, Json(output.clone())).into_response())
        }
        (_, error) => Ok((
            StatusCode::BAD_GATEWAY,
            Json(json!({
                "error": error.clone().map(|e| json!({"code": e.code, "message": e.message}))
                    .unwrap_or_else(|| json!({"code": ErrorCode::SkillFailed.code(), "message": format!("the task ended {}", done.status)})),
                "task_id": done.id,
                "trace_id": done.trace_id,
            })),
        )
            .into_response()),
    }
}

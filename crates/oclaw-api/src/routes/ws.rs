//! `GET /v1/ws?bot=NAME[&session=ID][&user=NAME]`: chat sessions over WebSocket.
//!
//! One session per connection; `session=` resumes an earlier one (same conversation, same
//! history). Client frames: `{"type": "message", "text": "...", "data": {...}, "id": "..."}` and
//! `{"type": "ping"}`. Server frames: `session` (first), `ack` (the message is a durable task),
//! `reply`, `error` and `pong`. Each message becomes a task whose ordering key is the session, so
//! replies come in message order. At most `channels.websocket.max_in_flight` messages wait for
//! replies; the server stops reading until one is answered. A client that lets
//! `outbound_buffer` frames pile up unread is closed with code 1008.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use oclaw_bots::LoadedBot;
use oclaw_channels::Inbound;
use oclaw_core::{ErrorCode, TaskStatus};
use oclaw_telemetry::ChannelEvent;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify, Semaphore};

use crate::{ApiError, ApiState};

const CHANNEL: &str = "websocket";

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsQuery {
    bot: String,
    session: Option<String>,
    user: Option<String>,
}

fn session_id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

pub async fn connect(
    State(state): State<ApiState>,
    query: Result<Query<WsQuery>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let trace_id = crate::trace::trace_id_from(&headers);
    let Query(q) = query
        .map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()).trace(&trace_id))?;
    let bot = state.catalog.get(&q.bot).ok_or_else(|| {
        ApiError::new(ErrorCode::UnknownBot, format!("no bot named `{}`", q.bot)).trace(&trace_id)
    })?;
    if !bot.doc.spec.triggers.iter().any(|t| t.websocket.is_some()) {
        return Err(ApiError::new(
            ErrorCode::ChannelNotEnabled,
            format!(
                "bot `{}` has no `websocket` trigger; add `- websocket: {{}}` to its triggers",
                q.bot
            ),
        )
        .trace(&trace_id));
    }
    let session = match q.session {
        Some(s) if session_id_ok(&s) => s,
        Some(_) => {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "`session` must be 1-128 letters, digits, `-`, `_`, `.` or `:`",
            )
            .details(json!({"field": "session"}))
            .trace(&trace_id))
        }
        None => format!("ws-{}", &oclaw_core::task::new_trace_id()[..20]),
    };
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidField,
            format!("GET /v1/ws takes a WebSocket upgrade: {}", e.body_text()),
        )
        .trace(&trace_id)
    })?;
    let max = state.websocket.max_frame_bytes;
    Ok(upgrade
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| run_session(state, bot, session, q.user, socket)))
}

/// Frames on their way to the client, through a bounded buffer.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<Message>,
    /// Set when the client fell too far behind.
    overflow: Arc<Notify>,
    metrics: Arc<oclaw_telemetry::NodeMetrics>,
}

impl Outbox {
    fn frame(&self, v: Value) -> bool {
        match self.tx.try_send(Message::Text(v.to_string().into())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.channel_event(CHANNEL, ChannelEvent::Dropped);
                self.overflow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn error(&self, code: ErrorCode, message: impl Into<String>, extra: Value) {
        self.metrics.channel_event(CHANNEL, ChannelEvent::Error);
        let mut frame =
            json!({"type": "error", "error": {"code": code.code(), "message": message.into()}});
        if let (Value::Object(f), Value::Object(e)) = (&mut frame, extra) {
            f.extend(e);
        }
        self.frame(frame);
    }
}

async fn run_session(
    state: ApiState,
    bot: Arc<LoadedBot>,
    session: String,
    user: Option<String>,
    socket: WebSocket,
) {
    let cfg = state.websocket.clone();
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(cfg.outbound_buffer.max(1));
    let out = Outbox {
        tx,
        overflow: Arc::new(Notify::new()),
        metrics: state.metrics.clone(),
    };
    let heartbeat = cfg.heartbeat.get().max(Duration::from_millis(100));
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let closing = matches!(m, Message::Close(_));
            // A client that does not read lets the socket fill; give up after three heartbeats.
            match tokio::time::timeout(heartbeat * 3, sink.send(m)).await {
                Ok(Ok(())) if !closing => {}
                _ => break,
            }
        }
        // A client that reads nothing would hold the close handshake forever too.
        let _ = tokio::time::timeout(heartbeat, sink.close()).await;
    });
    tracing::debug!(
        component = "api-server",
        channel = CHANNEL,
        bot = bot.name(),
        session,
        "session opened"
    );
    out.frame(json!({"type": "session", "session": session, "bot": bot.name()}));
    let in_flight = Arc::new(Semaphore::new(cfg.max_in_flight.max(1)));
    let mut ping = tokio::time::interval(heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_seen = Instant::now();
    let close = |code: u16, reason: &str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        }))
    };
    loop {
        tokio::select! {
            msg = stream.next() => {
                last_seen = Instant::now();
                match msg {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(Message::Text(text))) => {
                        handle_frame(&state, &bot, &session, user.as_deref(), &out, &in_flight, text.as_str()).await;
                    }
                    Some(Ok(Message::Binary(_))) => out.error(
                        ErrorCode::MalformedFrame,
                        "binary frames are not accepted; send JSON text frames",
                        json!({}),
                    ),
                    Some(Ok(_)) => {}
                }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > heartbeat * 3 {
                    tracing::info!(component = "api-server", channel = CHANNEL, session, "client silent for three heartbeats; closing");
                    let _ = out.tx.try_send(close(1001, "no heartbeat"));
                    break;
                }
                let _ = out.tx.try_send(Message::Ping(Vec::new().into()));
            }
            _ = out.overflow.notified() => {
                tracing::warn!(component = "api-server", channel = CHANNEL, bot = bot.name(), session, error_code = ErrorCode::ClientTooSlow.code(), "client does not read its replies; closing the session");
                // The buffer is full: make room for the close frame.
                let _ = out.tx.send(close(1008, "OC-2015 client too slow")).await;
                break;
            }
        }
    }
    drop(out);
    let _ = writer.await;
}

async fn handle_frame(
    state: &ApiState,
    bot: &Arc<LoadedBot>,
    session: &str,
    user: Option<&str>,
    out: &Outbox,
    in_flight: &Arc<Semaphore>,
    text: &str,
) {
    let frame: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return out.error(
                ErrorCode::MalformedFrame,
                "a frame is a JSON object with a `type`",
                json!({}),
            )
        }
        Err(e) => {
            return out.error(
                ErrorCode::MalformedFrame,
                format!("frame is not valid JSON: {e}"),
                json!({}),
            )
        }
    };
    let id = frame.get("id").cloned().unwrap_or(Value::Null);
    match frame.get("type").and_then(Value::as_str) {
        Some("ping") => {
            out.frame(json!({"type": "pong", "id": id}));
            return;
        }
        Some("message") => {}
        other => {
            return out.error(
                ErrorCode::MalformedFrame,
                format!("unknown frame type {other:?}; send `message` or `ping`"),
                json!({"id": id}),
            )
        }
    }
    let text = match frame.get("text") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return out.error(
                ErrorCode::MalformedFrame,
                "`text` must be a string",
                json!({"id": id}),
            )
        }
    };
    let data = frame.get("data").cloned().unwrap_or(Value::Null);
    if text.is_none() && data.is_null() {
        return out.error(
            ErrorCode::MalformedFrame,
            "a message has `text` or `data`",
            json!({"id": id}),
        );
    }
    state.metrics.channel_event(CHANNEL, ChannelEvent::Received);
    let received = Instant::now();
    // At most max_in_flight messages wait for replies; reading pauses until one is answered.
    let Ok(permit) = in_flight.clone().acquire_owned().await else {
        return;
    };
    let mut inbound = Inbound::new(CHANNEL);
    inbound.conversation = Some(session.to_string());
    inbound.user = user.map(str::to_string);
    inbound.text = text;
    inbound.data = data;
    let pending = match state.replies.submit(inbound.task_for(bot)).await {
        Ok(p) => p,
        Err(e) => {
            let e = ApiError::from(e);
            return out.error(e.code, e.message, json!({"id": id}));
        }
    };
    out.frame(json!({"type": "ack", "id": id, "task_id": pending.task.id}));
    let out = out.clone();
    let task_id = pending.task.id;
    let wait = bot.doc.spec.timeout.get() + Duration::from_secs(5);
    let metrics = state.metrics.clone();
    tokio::spawn(async move {
        let _permit = permit;
        match pending.finished(wait).await {
            Some(task) if task.status == TaskStatus::Succeeded => {
                let reply =
                    oclaw_core::channel::reply_of(task.output.as_ref().unwrap_or(&Value::Null));
                if out.frame(json!({"type": "reply", "id": id, "task_id": task_id, "text": reply.text, "data": reply.data})) {
                    metrics.channel_replied(CHANNEL, received.elapsed());
                }
            }
            Some(task) => {
                let (code, message) = match &task.error {
                    Some(e) => (e.code.clone(), e.message.clone()),
                    None => (
                        ErrorCode::SkillFailed.code().to_string(),
                        format!("the task ended {}", task.status),
                    ),
                };
                metrics.channel_event(CHANNEL, ChannelEvent::Error);
                out.frame(json!({"type": "error", "id": id, "task_id": task_id, "error": {"code": code, "message": message}}));
            }
            None => out.error(
                ErrorCode::ReplyTimeout,
                format!(
                    "no reply within {}s; the task goes on (GET /v1/tasks/{task_id})",
                    wait.as_secs()
                ),
                json!({"id": id, "task_id": task_id}),
            ),
        }
    });
}

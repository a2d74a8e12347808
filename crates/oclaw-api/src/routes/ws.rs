//! `GET /v1/ws?bot=NAME[&session=ID][&user=NAME]`: the socket side of the WebSocket channel,
//! whose frames and session ids `oclaw_channels::websocket` reads and writes.
//!
//! One session per connection; `session=` resumes an earlier one (same conversation, same
//! history). At most `channels.websocket.max_in_flight` messages wait for
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
use oclaw_channels::websocket::{self, ClientFrame, CHANNEL};
use oclaw_channels::Inbound;
use oclaw_core::{ErrorCode, TaskStatus};
use oclaw_telemetry::ChannelEvent;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use crate::{ApiError, ApiState};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsQuery {
    bot: String,
    session: Option<String>,
    user: Option<String>,
}

pub async fn connect(
    State(state): State<ApiState>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
    query: Result<Query<WsQuery>, QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let trace_id = crate::trace::trace_id_from(&headers);
    let Query(q) = query
        .map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()).trace(&trace_id))?;
    let bot = state
        .catalog
        .load()
        .get(&q.bot)
        .filter(|b| who.sees(&b.doc.metadata.tenant))
        .ok_or_else(|| {
            ApiError::new(ErrorCode::UnknownBot, format!("no bot named `{}`", q.bot))
                .trace(&trace_id)
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
        Some(s) if websocket::valid_session_id(&s) => s,
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
        // Browsers offer `oclaw` beside the entry that carries their token (see `auth::bearer`).
        .protocols(["oclaw"])
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
        self.frame(websocket::error_frame(code.code(), &message.into(), extra));
    }
}

/// How a session's messages move: at most `max_in_flight` wait for replies, and replies go out
/// in message order (each waits until the one before it was sent).
struct Pacing {
    in_flight: Arc<Semaphore>,
    previous_reply: Option<oneshot::Receiver<()>>,
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
    let mut pacing = Pacing {
        in_flight: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
        previous_reply: None,
    };
    let mut ping = tokio::time::interval(heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_seen = Instant::now();
    let mut stopping = state.stopping.clone();
    // An agent who takes the conversation over writes into this session.
    let mut agent = state.conversations.join(super::conversations::key_of(
        CHANNEL,
        &session,
        user.as_deref(),
    ));
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
                        handle_frame(&state, &bot, &session, user.as_deref(), &out, &mut pacing, text.as_str()).await;
                    }
                    Some(Ok(Message::Binary(_))) => out.error(
                        ErrorCode::MalformedFrame,
                        "binary frames are not accepted; send JSON text frames",
                        json!({}),
                    ),
                    Some(Ok(_)) => {}
                }
            }
            Some(frame) = agent.frames.recv() => {
                out.frame(frame);
            }
            _ = crate::state::stopped(&mut stopping) => {
                // Clients reconnect (with `session=`) to another api-server or this one restarted.
                let _ = out.tx.send(close(1001, "the node is stopping")).await;
                break;
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
    pacing: &mut Pacing,
    text: &str,
) {
    let (id, text, data) = match websocket::parse_frame(text) {
        Ok(ClientFrame::Ping { id }) => {
            out.frame(json!({"type": "pong", "id": id}));
            return;
        }
        Ok(ClientFrame::Message { id, text, data }) => (id, text, data),
        Err(bad) => {
            out.metrics.channel_event(CHANNEL, ChannelEvent::Error);
            out.frame(websocket::bad_frame(&bad));
            return;
        }
    };
    state.metrics.channel_event(CHANNEL, ChannelEvent::Received);
    let received = Instant::now();
    // At most max_in_flight messages wait for replies; reading pauses until one is answered.
    let Ok(permit) = pacing.in_flight.clone().acquire_owned().await else {
        return;
    };
    // A reply that answers an approval this session's task waits for is a decision, and its
    // answer is that task's reply; anything else is a new message for the bot.
    let pending = match answer_approval(state, session, user, text.as_deref()).await {
        Some(Ok(pending)) => pending,
        Some(Err(e)) => return out.error(e.code, e.message, json!({"id": id})),
        None => {
            let mut inbound = Inbound::new(CHANNEL);
            inbound.conversation = Some(session.to_string());
            inbound.user = user.map(str::to_string);
            inbound.text = text;
            inbound.data = data;
            match state.replies.submit(inbound.task_for(bot)).await {
                Ok(p) => p,
                Err(e) => {
                    let e = ApiError::from(e);
                    return out.error(e.code, e.message, json!({"id": id}));
                }
            }
        }
    };
    out.frame(json!({"type": "ack", "id": id, "task_id": pending.task.id}));
    let out = out.clone();
    let task_id = pending.task.id;
    let wait = bot.doc.spec.timeout.get() + Duration::from_secs(5);
    let metrics = state.metrics.clone();
    let (sent, next) = oneshot::channel::<()>();
    let before = pacing.previous_reply.replace(next);
    // The model's answer as it is generated, before the reply frame.
    let deltas = {
        let out = out.clone();
        let id = id.clone();
        oclaw_core::stream::TaskStreams::global().subscribe(task_id, move |text| {
            out.frame(json!({"type": "delta", "id": id, "task_id": task_id, "text": text}));
        })
    };
    let store = state.store.clone();
    tokio::spawn(async move {
        let _permit = permit;
        // The task may park on an approval: the session is told, and the waiter ends (the
        // answer, `approve` or `reject`, gets the task's reply).
        let finished = tokio::select! {
            f = pending.finished(wait) => f,
            a = parked_on_approval(store.as_ref(), task_id) => {
                drop(deltas);
                let message = a.detail["message"].as_str().unwrap_or_default().to_string();
                out.frame(json!({"type": "approval", "id": id, "task_id": task_id, "approval": a.id,
                    "message": message, "text": format!("{message} (reply approve or reject)")}));
                return;
            }
        };
        drop(deltas);
        if let Some(before) = before {
            // Resolves when the previous reply went out (or its waiter ended).
            let _ = before.await;
        }
        let _sent = sent;
        match finished {
            Some(task) if task.status == TaskStatus::Succeeded && is_held(task.output.as_ref()) => {
                // An agent holds the conversation: the message reached them, the bot says nothing.
                let agent = task
                    .output
                    .as_ref()
                    .map_or(Value::Null, |o| o["agent"].clone());
                out.frame(json!({"type": "held", "id": id, "task_id": task_id, "agent": agent}));
            }
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

fn is_held(output: Option<&Value>) -> bool {
    output.is_some_and(|o| o.get("held") == Some(&Value::Bool(true)))
}

/// Waits (checking every 200 ms) until `task` waits for an approval; answers it.
async fn parked_on_approval(
    store: &dyn oclaw_store::Store,
    task: oclaw_core::TaskId,
) -> oclaw_store::waits::WaitRecord {
    use oclaw_store::waits::{WaitFilter, WaitKind, WaitStatus};
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let waiting =
            matches!(store.get_task(task).await, Ok(Some(t)) if t.status == TaskStatus::Waiting);
        if !waiting {
            continue;
        }
        let open = store
            .list_waits(WaitFilter {
                kind: Some(WaitKind::Approval),
                status: Some(WaitStatus::Pending),
                task: Some(task),
                limit: 1,
                ..Default::default()
            })
            .await;
        if let Some(a) = open.ok().and_then(|w| w.into_iter().next()) {
            return a;
        }
    }
}

/// When `text` reads as a decision (`approve ...`, `reject ...`) and a task of this session
/// waits for an approval, records the decision (by the session's user, else the session) and
/// answers the task to wait for; `None` when the message is not such an answer.
async fn answer_approval(
    state: &ApiState,
    session: &str,
    user: Option<&str>,
    text: Option<&str>,
) -> Option<Result<oclaw_channels::router::Pending, ApiError>> {
    use oclaw_store::waits::{Decision, WaitFilter, WaitKind, WaitStatus};
    let (approve, comment) = oclaw_core::channel::decision_of(text?)?;
    let key = format!("{CHANNEL}:{session}");
    let open = state
        .store
        .list_waits(WaitFilter {
            kind: Some(WaitKind::Approval),
            status: Some(WaitStatus::Pending),
            key: Some(key.clone()),
            limit: 1,
            ..Default::default()
        })
        .await
        .ok()?
        .into_iter()
        .next()?;
    let by = user.map(str::to_string).unwrap_or(key);
    let decided = state
        .store
        .decide(
            open.id,
            Decision {
                by,
                approve,
                comment,
            },
        )
        .await;
    Some(match decided {
        Ok(record) => match state.store.get_task(record.task_id).await {
            Ok(Some(task)) => Ok(state.replies.wait_for(task, false)),
            Ok(None) => Err(oclaw_store::StoreError::NotFound(record.task_id).into()),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    })
}

//! `/v1/conversations`: the conversations bots handed to a person, and the agent's side of
//! them. A bot hands off by replying with a `handoff` field (see `oclaw_engine::conversation`);
//! an agent takes the conversation over (the bot's steps stop running for it), replies into the
//! same session or channel, and hands it back.
//!
//! Ids are the hex of the conversation's key (channel, conversation, user), so they pass
//! through URLs whatever the channel's ids hold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use chrono::Utc;
use oclaw_core::ErrorCode;
use oclaw_engine::conversation::{HANDOFFS, HISTORIES};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::audit::AuditTenant;
use crate::auth::Principal;
use crate::{ApiError, ApiState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;

/// Each conversation's live sessions: an id and where its frames go.
type Sessions = HashMap<String, Vec<(u64, mpsc::UnboundedSender<Value>)>>;

/// Live sessions of this api-server by conversation key, so an agent's reply reaches the
/// socket at once.
#[derive(Default)]
pub struct Hub {
    sessions: Mutex<Sessions>,
    next: std::sync::atomic::AtomicU64,
}

/// A session's place in the hub, left when dropped.
pub struct Joined {
    hub: Arc<Hub>,
    key: String,
    id: u64,
    pub frames: mpsc::UnboundedReceiver<Value>,
}

impl Hub {
    pub fn join(self: &Arc<Self>, key: String) -> Joined {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.lock().entry(key.clone()).or_default().push((id, tx));
        Joined {
            hub: self.clone(),
            key,
            id,
            frames: rx,
        }
    }

    /// Sends a frame to every live session of the conversation; how many there were.
    pub fn send(&self, key: &str, frame: &Value) -> usize {
        self.lock().get(key).map_or(0, |sessions| {
            sessions
                .iter()
                .filter(|(_, tx)| tx.send(frame.clone()).is_ok())
                .count()
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Joined {
    fn drop(&mut self) {
        let mut map = self.hub.lock();
        if let Some(list) = map.get_mut(&self.key) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                map.remove(&self.key);
            }
        }
    }
}

/// The key a conversation's history and hand-off are kept under.
pub fn key_of(channel: &str, conversation: &str, user: Option<&str>) -> String {
    format!("{channel}\u{1f}{conversation}\u{1f}{}", user.unwrap_or(""))
}

fn id_of(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

fn key_from(id: &str) -> Option<String> {
    if !id.len().is_multiple_of(2) || id.len() > 1024 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(id.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ConversationNotFound,
        format!("no handed-off conversation `{id}`"),
    )
}

/// The hand-off record of `id`, when the caller's tenant may see it.
async fn visible(state: &ApiState, who: &Principal, id: &str) -> Result<(String, Value), ApiError> {
    let key = key_from(id).ok_or_else(|| not_found(id))?;
    let record = state
        .store
        .kv_get(HANDOFFS, &key, Utc::now())
        .await?
        .filter(|r| who.sees(r["tenant"].as_str().unwrap_or_default()))
        .ok_or_else(|| not_found(id))?;
    Ok((key, record))
}

fn item(key: &str, mut record: Value) -> Value {
    record["id"] = json!(id_of(key));
    if let Some(m) = record.as_object_mut() {
        // Where a platform wants replies is the node's business, not the console's.
        m.remove("reply_to");
    }
    record
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `waiting`, `taken` or `released`.
    state: Option<String>,
    /// For admins: one tenant's conversations only.
    tenant: Option<String>,
}

/// The handed-off conversations the caller's tenant may see, newest hand-off first.
pub async fn list(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()))?;
    let wanted = super::tasks::given(&q.state);
    if let Some(s) = wanted {
        if !["waiting", "taken", "released"].contains(&s) {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                format!("unknown state `{s}`; one of waiting, taken, released"),
            )
            .details(json!({"field": "state"})));
        }
    }
    let tenant = who.list_tenant(super::tasks::given(&q.tenant));
    let mut items: Vec<Value> = state
        .store
        .kv_list(HANDOFFS, Utc::now(), 10_000)
        .await?
        .into_iter()
        .filter(|(_, r)| {
            let t = r["tenant"].as_str().unwrap_or_default();
            who.sees(t)
                && tenant.as_deref().is_none_or(|want| want == t)
                && wanted.is_none_or(|s| r["state"] == s)
        })
        .map(|(k, r)| item(&k, r))
        .collect();
    items.sort_by(|a, b| b["updated_at"].as_str().cmp(&a["updated_at"].as_str()));
    Ok(Json(json!({"items": items, "next_cursor": null})))
}

/// One handed-off conversation with its history.
pub async fn get_one(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (key, record) = visible(&state, &who, &id).await?;
    let history = state
        .store
        .kv_get(HISTORIES, &key, Utc::now())
        .await?
        .unwrap_or_else(|| json!([]));
    let mut body = item(&key, record);
    body["history"] = history;
    Ok(Json(body))
}

/// How long hand-off records and histories written here live: as long as the node keeps
/// conversation memory.
fn expiry(state: &ApiState) -> Option<chrono::DateTime<Utc>> {
    chrono::Duration::from_std(state.conversation_ttl)
        .ok()
        .map(|d| Utc::now() + d)
}

async fn set_state(
    state: &ApiState,
    who: &Principal,
    id: &str,
    to: &str,
) -> Result<(Extension<AuditTenant>, Json<Value>), ApiError> {
    let (key, mut record) = visible(state, who, id).await?;
    let tenant = record["tenant"].as_str().unwrap_or_default().to_string();
    let agent = who.identity.clone().unwrap_or_else(|| who.actor.clone());
    record["state"] = json!(to);
    record["agent"] = if to == "taken" {
        json!(agent)
    } else {
        Value::Null
    };
    record["updated_at"] = json!(Utc::now());
    state
        .store
        .kv_set(HANDOFFS, &key, &record, expiry(state))
        .await?;
    let event = if to == "taken" { "joined" } else { "left" };
    state.conversations.send(
        &key,
        &json!({"type": "agent", "event": event, "agent": agent}),
    );
    Ok((Extension(AuditTenant(tenant)), Json(item(&key, record))))
}

/// An agent takes the conversation over: the bot stops answering it.
pub async fn take(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<(Extension<AuditTenant>, Json<Value>), ApiError> {
    set_state(&state, &who, &id, "taken").await
}

/// The agent hands the conversation back: the bot answers its next message.
pub async fn release(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<(Extension<AuditTenant>, Json<Value>), ApiError> {
    set_state(&state, &who, &id, "released").await
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentMessage {
    /// What the agent says.
    pub text: String,
}

/// The agent's reply: added to the history and sent into the session (WebSocket) or channel
/// (chat platforms and brokers, through the reply delivery) the conversation came from.
pub async fn send(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Extension<AuditTenant>, Json<Value>), ApiError> {
    let trace_id = crate::trace::trace_id_from(&headers);
    let msg: AgentMessage = crate::body::decode(body, &trace_id)?;
    let (key, record) = visible(&state, &who, &id).await?;
    let tenant = record["tenant"].as_str().unwrap_or_default().to_string();
    if record["state"] != "taken" {
        return Err(ApiError::new(
            ErrorCode::ConversationNotHeld,
            "take the conversation over before replying (POST /v1/conversations/{id}/take)",
        ));
    }
    let text = msg.text.trim();
    if text.is_empty() {
        return Err(
            ApiError::new(ErrorCode::InvalidField, "`text` must not be empty")
                .details(json!({"field": "text"})),
        );
    }
    let agent = who.identity.clone().unwrap_or_else(|| who.actor.clone());
    let now = Utc::now();
    let entry = json!({"role": "agent", "text": text, "by": agent, "at": now});
    let mut history = match state.store.kv_get(HISTORIES, &key, now).await? {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    history.push(entry.clone());
    let keep = state.conversation_history.max(1);
    if history.len() > keep {
        history.drain(..history.len() - keep);
    }
    state
        .store
        .kv_set(HISTORIES, &key, &Value::Array(history), expiry(&state))
        .await?;
    let live = state.conversations.send(
        &key,
        &json!({"type": "message", "role": "agent", "text": text, "by": agent, "at": now}),
    );
    let mut delivery = Value::Null;
    if record["reply_to"].is_object() {
        // A chat platform or broker: the reply goes out as the bot's replies do.
        let bot = record["bot"].as_str().unwrap_or_default();
        let queue = state
            .catalog
            .load()
            .get(bot)
            .map_or_else(|| "default".to_string(), |b| b.doc.spec.queue.clone());
        let mut task = oclaw_core::NewTask::new(
            oclaw_core::channel::REPLY_BOT,
            queue,
            json!({"reply_to": record["reply_to"], "text": text, "bot": bot,
                   "task_id": format!("agent:{agent}")}),
        );
        task.tenant.clone_from(&tenant);
        task.max_attempts = oclaw_core::channel::REPLY_ATTEMPTS;
        let enqueued = state.store.enqueue(task).await?;
        delivery = json!(enqueued.task.id);
    }
    Ok((
        Extension(AuditTenant(tenant)),
        Json(json!({"message": entry, "live_sessions": live, "delivery_task": delivery})),
    ))
}

//! Conversation memory: the recent messages of a (channel, conversation, user) session, kept in
//! the store's key-value space and shown to steps as `conversation.history`. A conversation's
//! tasks carry its ordering key, so they run one at a time and this read-modify-write is safe;
//! the new history is committed with the task's completion (a fenced or failed attempt leaves
//! it as it was).

use chrono::Utc;
use oclaw_store::KvWrite;
use serde_json::{json, Value};

use crate::pipeline::Runtime;

const NAMESPACE: &str = "conversation";

/// One session's memory, read before the steps run.
pub struct Session {
    key: String,
    channel: String,
    conversation: String,
    user: Option<String>,
    history: Vec<Value>,
}

impl Session {
    /// The session of a channel task, with its stored history; `None` for other tasks, or when
    /// conversation memory is off.
    pub async fn open(rt: &Runtime, input: &Value) -> Option<Session> {
        if rt.conversation.history == 0 {
            return None;
        }
        let (channel, conversation, user) = oclaw_core::channel::session_of(input)?;
        let key = format!(
            "{channel}\u{1f}{conversation}\u{1f}{}",
            user.as_deref().unwrap_or("")
        );
        let history = match rt.store.kv_get(NAMESPACE, &key, Utc::now()).await {
            Ok(Some(Value::Array(items))) => items,
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(
                    component = "worker",
                    error_code = e.code().code(),
                    "conversation history unreadable, running without it: {e}"
                );
                Vec::new()
            }
        };
        Some(Session {
            key,
            channel,
            conversation,
            user,
            history,
        })
    }

    /// `conversation` in templates.
    pub fn template_value(&self) -> Value {
        json!({
            "channel": self.channel,
            "id": self.conversation,
            "user": self.user,
            "history": self.history,
        })
    }

    /// The history with the message and the bot's reply appended (the newest
    /// `conversation.history` kept), as a write committed with the task's completion.
    pub fn record(mut self, rt: &Runtime, input: &Value, output: &Value) -> KvWrite {
        let now = Utc::now();
        self.history.push(json!({
            "role": "user",
            "text": input.get("text").cloned().unwrap_or(Value::Null),
            "at": now,
        }));
        let reply = oclaw_core::channel::reply_of(output);
        self.history
            .push(json!({"role": "bot", "text": reply.text, "at": now}));
        let limit = rt.conversation.history;
        if self.history.len() > limit {
            self.history.drain(..self.history.len() - limit);
        }
        KvWrite {
            namespace: NAMESPACE.into(),
            key: self.key,
            value: Value::Array(self.history),
            expires_at: chrono::Duration::from_std(rt.conversation.ttl.get())
                .ok()
                .map(|d| now + d),
        }
    }
}

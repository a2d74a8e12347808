//! Conversation memory: the recent messages of a (channel, conversation, user) session, kept in
//! the store's key-value space and shown to steps as `conversation.history`. A conversation's
//! tasks carry its ordering key, so they run one at a time and this read-modify-write is safe;
//! the new history is committed with the task's completion (a fenced or failed attempt leaves
//! it as it was).
//!
//! Hand-offs: a reply whose `handoff` field is set (the bot passed the conversation to a
//! person) leaves a record in the `handoff` namespace under the same key, committed with the
//! task. The console lists those records; an agent who takes one over holds the conversation:
//! while held, the bot's steps do not run — each message is only recorded in the history, where
//! the agent reads it, and the agent's replies are added there too, so the bot has the whole
//! exchange when it is handed back.

use chrono::Utc;
use oclaw_store::{ClaimedTask, KvWrite};
use serde_json::{json, Value};

use crate::pipeline::Runtime;

const NAMESPACE: &str = "conversation";
/// Where hand-offs are kept, under the conversation's key.
pub const HANDOFFS: &str = "handoff";
/// The namespace of conversation histories.
pub const HISTORIES: &str = NAMESPACE;

/// One session's memory, read before the steps run.
pub struct Session {
    key: String,
    channel: String,
    conversation: String,
    user: Option<String>,
    history: Vec<Value>,
    /// The hand-off record, when the conversation was handed to a person.
    handoff: Option<Value>,
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
        let handoff = rt
            .store
            .kv_get(HANDOFFS, &key, Utc::now())
            .await
            .ok()
            .flatten();
        Some(Session {
            key,
            channel,
            conversation,
            user,
            history,
            handoff,
        })
    }

    /// The agent holding the conversation, when a person has taken it over.
    pub fn held_by(&self) -> Option<String> {
        let h = self.handoff.as_ref()?;
        (h["state"] == "taken").then(|| h["agent"].as_str().unwrap_or("an agent").to_string())
    }

    /// The writes of a message that came while an agent holds the conversation: the message
    /// joins the history (the agent reads it there), and the hand-off record notes its time.
    pub fn record_held(mut self, rt: &Runtime, input: &Value) -> Vec<KvWrite> {
        let now = Utc::now();
        self.history.push(json!({
            "role": "user",
            "text": input.get("text").cloned().unwrap_or(Value::Null),
            "at": now,
        }));
        let mut writes = Vec::with_capacity(2);
        if let Some(mut h) = self.handoff.take() {
            h["updated_at"] = json!(now);
            if let Some(r) = input.get("reply_to") {
                h["reply_to"] = r.clone();
            }
            writes.push(self.write(rt, HANDOFFS, h, now));
        }
        let history = self.trimmed(rt);
        writes.push(self.write(rt, NAMESPACE, history, now));
        writes
    }

    fn trimmed(&mut self, rt: &Runtime) -> Value {
        let limit = rt.conversation.history;
        if self.history.len() > limit {
            self.history.drain(..self.history.len() - limit);
        }
        Value::Array(std::mem::take(&mut self.history))
    }

    fn write(
        &self,
        rt: &Runtime,
        namespace: &str,
        value: Value,
        now: chrono::DateTime<Utc>,
    ) -> KvWrite {
        KvWrite {
            namespace: namespace.into(),
            key: self.key.clone(),
            value,
            expires_at: chrono::Duration::from_std(rt.conversation.ttl.get())
                .ok()
                .map(|d| now + d),
        }
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
    /// `conversation.history` kept), as writes committed with the task's completion — with a
    /// hand-off record when the reply hands the conversation to a person.
    pub fn record(mut self, rt: &Runtime, task: &ClaimedTask, output: &Value) -> Vec<KvWrite> {
        let now = Utc::now();
        let input = &task.input;
        self.history.push(json!({
            "role": "user",
            "text": input.get("text").cloned().unwrap_or(Value::Null),
            "at": now,
        }));
        let reply = oclaw_core::channel::reply_of(output);
        self.history
            .push(json!({"role": "bot", "text": reply.text, "at": now}));
        let mut writes = Vec::with_capacity(2);
        if hands_off(output) {
            let waiting_since = self
                .handoff
                .as_ref()
                .filter(|h| h["state"] == "waiting")
                .map(|h| h["since"].clone());
            let record = json!({
                "state": "waiting",
                "tenant": task.tenant,
                "bot": task.bot,
                "channel": self.channel,
                "conversation": self.conversation,
                "user": self.user,
                "question": input.get("text").cloned().unwrap_or(Value::Null),
                "ticket": output.get("handoff").cloned().unwrap_or(Value::Null),
                "reply_to": input.get("reply_to").cloned().unwrap_or(Value::Null),
                "agent": null,
                "since": waiting_since.unwrap_or_else(|| json!(now)),
                "updated_at": now,
            });
            writes.push(self.write(rt, HANDOFFS, record, now));
        }
        let history = self.trimmed(rt);
        writes.push(self.write(rt, NAMESPACE, history, now));
        writes
    }
}

/// Whether a bot's output hands the conversation to a person: an object whose `handoff` is
/// set (true, a ticket id: any value but null, false, `""`, `"none"` or `"false"`).
pub fn hands_off(output: &Value) -> bool {
    match output.get("handoff") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !matches!(s.as_str(), "" | "none" | "false"),
        Some(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_hands_off_when_its_handoff_field_is_set() {
        assert!(hands_off(&json!({"text": "passed on", "handoff": "42"})));
        assert!(hands_off(&json!({"handoff": true})));
        assert!(!hands_off(&json!({"text": "answered", "handoff": null})));
        assert!(!hands_off(&json!({"handoff": "none"})));
        assert!(!hands_off(&json!({"handoff": false})));
        assert!(!hands_off(&json!("plain text")));
    }
}

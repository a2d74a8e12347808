//! One message from a channel, on its way to becoming a task.

use oclaw_bots::LoadedBot;
use oclaw_core::NewTask;
use serde_json::Value;

/// A message a channel received for a bot.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The channel kind: `websocket`, `mqtt`, `nats`, `slack`, ...
    pub channel: &'static str,
    /// The conversation (chat, session, topic) the reply goes back to; its tasks run in order.
    pub conversation: Option<String>,
    pub user: Option<String>,
    pub text: Option<String>,
    pub data: Value,
    /// A key the channel derives from the platform's message id, so a redelivered message
    /// becomes the same task.
    pub idempotency_key: Option<String>,
    pub trace_id: Option<String>,
    /// Where the reply goes when it is delivered by a task of its own (chat platforms):
    /// `{hook, to}`, carried in the task input as `reply_to`.
    pub reply_to: Option<Value>,
}

impl Inbound {
    pub fn new(channel: &'static str) -> Inbound {
        Inbound {
            channel,
            conversation: None,
            user: None,
            text: None,
            data: Value::Null,
            idempotency_key: None,
            trace_id: None,
            reply_to: None,
        }
    }

    /// The task input: `{channel, text, data, conversation, user}`, and `reply_to` when the
    /// reply is delivered by a task of its own.
    pub fn input(&self) -> Value {
        let mut input = oclaw_core::channel::channel_input(
            self.channel,
            self.text.as_deref(),
            self.data.clone(),
            self.conversation.as_deref(),
            self.user.as_deref(),
        );
        if let Some(to) = &self.reply_to {
            input["reply_to"] = to.clone();
        }
        input
    }

    /// The task for `bot`: the bot's queue and retry policy; messages of one conversation share
    /// an ordering key so they run one at a time, in arrival order (unless the bot sets its own
    /// per-key limit).
    pub fn task_for(&self, bot: &LoadedBot) -> NewTask {
        let mut task = NewTask::new(bot.name(), &bot.doc.spec.queue, self.input());
        task.max_attempts = bot.doc.spec.retry.max_attempts;
        task.idempotency_key = self.idempotency_key.clone();
        task.ordering_key = self
            .conversation
            .as_ref()
            .map(|c| format!("{}:{}:{c}", bot.name(), self.channel));
        if let Some(t) = &self.trace_id {
            task.trace_id = t.clone();
        }
        // A bot's per-key limit (`spec.concurrency`) takes the place of conversation order.
        bot.stamp(&mut task);
        task
    }
}

/// A broker message: the topic or subject (`where_key`: `topic`, `subject`) is the
/// conversation; a JSON payload is `data.payload` (its `text` field the text), anything else is
/// text.
pub fn broker_message(channel: &'static str, where_key: &str, at: &str, payload: &[u8]) -> Inbound {
    let mut m = Inbound::new(channel);
    m.conversation = Some(at.to_string());
    let payload = match serde_json::from_slice::<Value>(payload) {
        Ok(v) => {
            m.text = v.get("text").and_then(Value::as_str).map(str::to_string);
            v
        }
        Err(_) => {
            let text = String::from_utf8_lossy(payload).to_string();
            m.text = Some(text.clone());
            Value::String(text)
        }
    };
    m.data = serde_json::json!({ where_key: at, "payload": payload });
    m
}

/// The bytes a broker reply carries: a string output as is, anything else as JSON.
pub fn reply_payload(output: Option<&Value>) -> Vec<u8> {
    match output {
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(v) => v.to_string().into_bytes(),
        None => b"null".to_vec(),
    }
}

/// Renders a setting that may be a template over `secrets` (`OCLAW_SECRET_<NAME>` variables),
/// such as `"{{ secrets.SLACK_SIGNING_SECRET }}"`. An empty result is an error: a secret that
/// is not set must not turn into "no secret".
pub fn resolve_secret(value: &str) -> Result<String, String> {
    if !value.contains("{{") {
        return Ok(value.to_string());
    }
    let secrets: std::collections::BTreeMap<String, String> = std::env::vars()
        .filter_map(|(k, v)| k.strip_prefix("OCLAW_SECRET_").map(|n| (n.to_string(), v)))
        .collect();
    let env = minijinja::Environment::new();
    let out = env
        .render_str(value, minijinja::context! { secrets => secrets })
        .map_err(|e| e.to_string())?;
    if out.is_empty() {
        return Err(
            "the secret template rendered empty (is the OCLAW_SECRET_ variable set?)".into(),
        );
    }
    Ok(out)
}

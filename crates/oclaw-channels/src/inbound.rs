//! One message from a channel, on its way to becoming a task.

use oclaw_core::NewTask;
use oclaw_engine::LoadedBot;
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
        }
    }

    /// The task input: `{channel, text, data, conversation, user}`.
    pub fn input(&self) -> Value {
        oclaw_core::channel::channel_input(
            self.channel,
            self.text.as_deref(),
            self.data.clone(),
            self.conversation.as_deref(),
            self.user.as_deref(),
        )
    }

    /// The task for `bot`: the bot's queue and retry policy; messages of one conversation share
    /// an ordering key so they run one at a time, in arrival order.
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
        task
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

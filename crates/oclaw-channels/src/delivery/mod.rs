//! Reply delivery as a durable task. When the task of a message from a chat platform or a
//! broker succeeds, the worker enqueues a task for the built-in bot `oclaw.reply` in the same
//! transaction as the completion (its input: where the reply goes, the text, the task it
//! answers). That bot's one step, `channel.reply`, sends the text through the platform's API,
//! or publishes it to the reply topic or subject once the broker confirms it; a failed send is
//! retried with backoff and ends in the dead-letter set, so a reply is never silently lost, and
//! a crash of the node that took the message loses nothing.

mod brokers;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use oclaw_bots::templates::TemplateEngine;
use oclaw_bots::{LiveCatalog, LoadedBot};
use oclaw_core::ErrorCode;
use oclaw_skills::{Skill, SkillCall, SkillContext, SkillError, SkillRegistry};
use serde_json::{json, Value};

/// The built-in delivery bot: one attempt a second at first, backing off to five minutes.
const REPLY_BOT_YAML: &str = "\
apiVersion: oclaw.io/v1
kind: Bot
metadata:
  name: reply
  description: Delivers a bot's reply to the chat platform the message came from.
spec:
  timeout: 30s
  retry: {max_attempts: 10, backoff: exponential, initial: 1s, max: 5m}
  steps:
    - id: send
      uses: channel.reply
";

/// What `channel.reply` needs from the node, set once the node has built them (skills are
/// registered before the catalogue exists).
#[derive(Default)]
pub struct DeliveryContext {
    pub catalog: OnceLock<Arc<LiveCatalog>>,
    pub metrics: OnceLock<Arc<oclaw_telemetry::NodeMetrics>>,
    /// `channels` of the node config and the node's id, for the broker connections.
    pub channels: OnceLock<(oclaw_core::config::ChannelsConfig, String)>,
    mqtt: tokio::sync::OnceCell<brokers::MqttPublisher>,
    nats: tokio::sync::OnceCell<async_nats::Client>,
}

/// A broker connection's settings, or why a reply for that broker cannot be sent here.
fn configured<'a, T>(conn: Option<&'a T>, key: &str) -> Result<&'a T, SkillError> {
    conn.ok_or_else(|| {
        SkillError::permanent(
            ErrorCode::ChannelSendFailed,
            format!("a reply for {key}, which is not configured on this node"),
        )
    })
}

impl DeliveryContext {
    fn broker_config(&self) -> Result<&(oclaw_core::config::ChannelsConfig, String), SkillError> {
        self.channels.get().ok_or_else(|| {
            SkillError::transient(ErrorCode::ChannelUnavailable, "the node is still starting")
        })
    }

    async fn mqtt(&self) -> Result<&brokers::MqttPublisher, SkillError> {
        let (channels, node_id) = self.broker_config()?;
        let conn = configured(channels.mqtt.as_ref(), "channels.mqtt")?;
        self.mqtt
            .get_or_try_init(|| async {
                crate::mqtt::options(conn, node_id)
                    .map(brokers::MqttPublisher::connect)
                    .map_err(|e| SkillError::permanent(ErrorCode::ChannelSendFailed, e))
            })
            .await
    }

    async fn nats(&self) -> Result<&async_nats::Client, SkillError> {
        let (channels, _) = self.broker_config()?;
        let conn = configured(channels.nats.as_ref(), "channels.nats")?;
        self.nats
            .get_or_try_init(|| async {
                crate::nats::connect_options(conn, "oclaw-replies")
                    .connect(conn.url.as_str())
                    .await
                    .map_err(|e| {
                        SkillError::transient(ErrorCode::ChannelUnavailable, format!("NATS: {e}"))
                    })
            })
            .await
    }
}

/// `channel.reply`: sends the reply of a finished platform task (the task input
/// `{reply_to: {hook, to}, text, bot, task_id}`) through `bot`'s platform trigger at `hook`.
pub struct ChannelReply {
    pub context: Arc<DeliveryContext>,
}

#[async_trait]
impl Skill for ChannelReply {
    fn name(&self) -> &'static str {
        "channel.reply"
    }
    fn summary(&self) -> &'static str {
        "deliver a finished task's reply to the chat platform it came from (the built-in oclaw.reply bot)"
    }
    fn fields(&self) -> &'static [&'static str] {
        &[]
    }
    fn side_effects(&self) -> bool {
        true
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let input = &call.data;
        let to = &input["reply_to"];
        let text = input["text"]
            .as_str()
            .ok_or_else(|| SkillError::invalid("text is missing"))?;
        let (channel, sent) = if let Some(topic) = to["mqtt"]["topic"].as_str() {
            let publisher = self.context.mqtt().await?;
            (
                "mqtt",
                publisher.publish(topic, text.as_bytes().to_vec()).await,
            )
        } else if let Some(subject) = to["nats"]["subject"].as_str() {
            let client = self.context.nats().await?;
            (
                "nats",
                brokers::nats_publish(client, subject, text.as_bytes().to_vec()).await,
            )
        } else {
            let trigger = self.platform(input)?;
            let channel = trigger.kind().name();
            (
                channel,
                crate::platforms::send(&trigger, &to["to"], text).await,
            )
        };
        let metrics = self.context.metrics.get();
        match sent {
            Ok(()) => {
                if let Some(m) = metrics {
                    let received = input["received_at"].as_i64().unwrap_or_default();
                    let waited = chrono::Utc::now().timestamp_millis() - received;
                    let latency = std::time::Duration::from_millis(waited.max(0) as u64);
                    m.channel_replied(channel, latency);
                }
                Ok(json!({"delivered": true, "channel": channel, "task_id": input["task_id"]}))
            }
            Err(e) => {
                if let Some(m) = metrics {
                    m.channel_event(channel, oclaw_telemetry::ChannelEvent::Error);
                }
                let message = format!("{channel} reply to task {}: {e}", input["task_id"]);
                // A refusal of the request itself (4xx other than 429) will not change on retry.
                if permanent(&e) {
                    Err(SkillError::permanent(ErrorCode::ChannelSendFailed, message))
                } else {
                    Err(SkillError::transient(ErrorCode::ChannelSendFailed, message))
                }
            }
        }
    }
}

impl ChannelReply {
    /// The platform trigger of the bot that answered, serving `reply_to.hook`.
    fn platform(
        &self,
        input: &Value,
    ) -> Result<oclaw_bots::triggers::platform::PlatformTrigger, SkillError> {
        let hook = input["reply_to"]["hook"]
            .as_str()
            .ok_or_else(|| SkillError::invalid("reply_to names no hook, topic or subject"))?;
        let catalog = self.context.catalog.get().ok_or_else(|| {
            SkillError::transient(
                ErrorCode::ChannelUnavailable,
                "the node's bots are not loaded yet",
            )
        })?;
        // Only the platform trigger of the bot that answered carries its reply.
        let bot = input["bot"].as_str().unwrap_or_default();
        catalog
            .load()
            .platform(hook)
            .filter(|(b, _)| b.name() == bot)
            .map(|(_, t)| t)
            .ok_or_else(|| {
                SkillError::permanent(
                    ErrorCode::ChannelSendFailed,
                    format!("bot `{bot}` no longer serves {hook}; the reply cannot be sent"),
                )
            })
    }
}

/// Whether a send error is the platform refusing the request (HTTP 4xx but 408 and 429).
fn permanent(error: &str) -> bool {
    error
        .strip_prefix("HTTP 4")
        .and_then(|rest| rest.get(..2))
        .is_some_and(|d| d != "08" && d != "29")
}

/// The built-in `oclaw.reply` bot, checked against `skills` (which must hold `channel.reply`).
pub fn reply_bot(
    skills: &SkillRegistry,
    templates: &TemplateEngine,
) -> Result<LoadedBot, oclaw_core::config_load::ConfigError> {
    LoadedBot::system(
        oclaw_core::channel::REPLY_BOT,
        REPLY_BOT_YAML,
        skills,
        templates,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_permanent_and_the_rest_retried() {
        assert!(permanent("HTTP 400 Bad Request: {}"));
        assert!(permanent("HTTP 403 Forbidden: {}"));
        assert!(!permanent("HTTP 429 Too Many Requests: {}"));
        assert!(!permanent("HTTP 408 Request Timeout: {}"));
        assert!(!permanent("HTTP 502 Bad Gateway: {}"));
        assert!(!permanent("error sending request"));
        assert!(!permanent("chat.postMessage: ratelimited"));
    }

    #[test]
    fn the_reply_bot_loads_with_its_skill() {
        let mut skills = SkillRegistry::builtin();
        let context = Arc::new(DeliveryContext::default());
        skills.register(Arc::new(ChannelReply { context }));
        let bot = reply_bot(&skills, &TemplateEngine::default()).unwrap();
        assert_eq!(bot.name(), "oclaw.reply");
        assert_eq!(bot.doc.spec.retry.max_attempts, 10);
        assert_eq!(bot.steps.len(), 1);
        // Without the skill it does not load.
        assert!(reply_bot(&SkillRegistry::builtin(), &TemplateEngine::default()).is_err());
    }
}

//! One NATS message into a durable task, acknowledged to JetStream only after the task is
//! durable; its reply goes back as a delivery task (`crate::delivery`).

use std::sync::Arc;

use async_nats::jetstream::{self};
use oclaw_bots::triggers::broker::NatsTrigger;
use oclaw_bots::LoadedBot;
use oclaw_telemetry::ChannelEvent;

use crate::ReplyRouter;

use super::CHANNEL;

pub(super) async fn ingest(
    batch: Vec<jetstream::Message>,
    bot: &Arc<LoadedBot>,
    trigger: &NatsTrigger,
    router: &Arc<ReplyRouter>,
    metrics: &Arc<oclaw_telemetry::NodeMetrics>,
) {
    let tasks: Vec<_> = batch
        .iter()
        .map(|m| {
            metrics.channel_event(CHANNEL, ChannelEvent::Received);
            let mut msg = crate::broker_message(CHANNEL, "subject", m.subject.as_str(), &m.payload);
            if let Ok(info) = m.info() {
                msg.idempotency_key = Some(format!(
                    "nats:{}:{}:{}",
                    info.stream,
                    info.stream_sequence,
                    bot.name()
                ));
            }
            // The reply is a delivery task enqueued with the task's success (see
            // `crate::delivery`).
            msg.reply_to = trigger
                .reply_subject
                .as_ref()
                .map(|s| serde_json::json!({"nats": {"subject": s}}));
            msg.task_for(bot)
        })
        .collect();
    // The messages are acknowledged only once their tasks are durable.
    crate::broker::make_durable(CHANNEL, router, tasks, metrics).await;
    for m in &batch {
        if let Err(e) = m.ack().await {
            tracing::warn!(
                component = "channels",
                channel = CHANNEL,
                "acknowledging a message: {e}"
            );
        }
    }
}

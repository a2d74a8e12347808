//! One NATS message into a durable task, acknowledged to JetStream only after the task is durable, with its reply on the way back.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
    client: &async_nats::Client,
    router: &Arc<ReplyRouter>,
    metrics: &Arc<oclaw_telemetry::NodeMetrics>,
) {
    let received = Instant::now();
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
            msg.task_for(bot)
        })
        .collect();
    // The messages are acknowledged only once their tasks are durable.
    let pending = crate::broker::make_durable(CHANNEL, router, tasks, metrics).await;
    for m in &batch {
        if let Err(e) = m.ack().await {
            tracing::warn!(
                component = "channels",
                channel = CHANNEL,
                "acknowledging a message: {e}"
            );
        }
    }
    let Some(subject) = trigger.reply_subject.clone() else {
        return;
    };
    let timeout = bot.doc.spec.timeout.get() + Duration::from_secs(5);
    for p in pending {
        let client = client.clone();
        let subject = subject.clone();
        crate::broker::reply_when_done(
            CHANNEL,
            p,
            timeout,
            metrics.clone(),
            received,
            move |payload| async move {
                client
                    .publish(subject, payload.into())
                    .await
                    .map_err(|e| e.to_string())
            },
        );
    }
}

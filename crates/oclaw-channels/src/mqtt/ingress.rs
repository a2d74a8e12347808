//! One MQTT message into a durable task, acknowledged to the broker only after the task is
//! durable; its reply goes back as a delivery task (`crate::delivery`).

use std::sync::Arc;

use oclaw_bots::triggers::broker::{topic_matches, MqttTrigger};
use oclaw_bots::LoadedBot;
use rumqttc::{AsyncClient, Publish, QoS};
use serde_json::json;

use crate::ReplyRouter;

use super::CHANNEL;

pub(super) async fn ingest(
    mut rx: tokio::sync::mpsc::Receiver<Publish>,
    subs: Arc<Vec<(Arc<LoadedBot>, MqttTrigger)>>,
    client: AsyncClient,
    router: Arc<ReplyRouter>,
    metrics: Arc<oclaw_telemetry::NodeMetrics>,
) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut tasks = Vec::new();
        for p in &batch {
            let msg = crate::inbound::broker_message(CHANNEL, "topic", &p.topic, &p.payload);
            for (bot, trigger) in subs
                .iter()
                .filter(|(_, t)| topic_matches(&t.topic, &p.topic))
            {
                // The reply is a delivery task enqueued with the task's success (see
                // `crate::delivery`); `{topic}` in reply_topic is the message's own topic.
                let mut msg = msg.clone();
                msg.reply_to = trigger
                    .reply_topic
                    .as_ref()
                    .map(|r| json!({"mqtt": {"topic": r.replace("{topic}", &p.topic)}}));
                tasks.push(msg.task_for(bot));
            }
        }
        // The messages are acknowledged only once their tasks are durable.
        crate::broker::make_durable(CHANNEL, &router, tasks, &metrics).await;
        for p in batch.drain(..) {
            if p.qos != QoS::AtMostOnce {
                if let Err(e) = client.ack(&p).await {
                    tracing::warn!(
                        component = "channels",
                        channel = CHANNEL,
                        "acknowledging a message: {e}"
                    );
                }
            }
        }
    }
}

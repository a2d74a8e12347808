//! One MQTT message into a durable task, acknowledged to the broker only after the task is durable, with its reply on the way back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oclaw_bots::triggers::broker::{topic_matches, MqttTrigger};
use oclaw_bots::LoadedBot;
use rumqttc::{AsyncClient, Publish, QoS};

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
        let received = Instant::now();
        let mut tasks = Vec::new();
        let mut routes = Vec::new();
        for p in &batch {
            let msg = crate::inbound::broker_message(CHANNEL, "topic", &p.topic, &p.payload);
            for (bot, trigger) in subs
                .iter()
                .filter(|(_, t)| topic_matches(&t.topic, &p.topic))
            {
                tasks.push(msg.task_for(bot));
                // `{topic}` in reply_topic is the message's own topic.
                routes.push((
                    bot.clone(),
                    trigger
                        .reply_topic
                        .as_ref()
                        .map(|r| r.replace("{topic}", &p.topic)),
                ));
            }
        }
        // The messages are acknowledged only once their tasks are durable.
        let pending = crate::broker::make_durable(CHANNEL, &router, tasks, &metrics).await;
        for (pending, (bot, reply_topic)) in pending.into_iter().zip(routes) {
            match reply_topic {
                Some(topic) => {
                    let timeout = bot.doc.spec.timeout.get() + Duration::from_secs(5);
                    let client = client.clone();
                    crate::broker::reply_when_done(
                        CHANNEL,
                        pending,
                        timeout,
                        metrics.clone(),
                        received,
                        move |payload| async move {
                            client
                                .publish(topic, QoS::AtLeastOnce, false, payload)
                                .await
                                .map_err(|e| e.to_string())
                        },
                    );
                }
                None => drop(pending),
            }
        }
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

//! The MQTT channel: one connection per node to `channels.mqtt.url`, subscribed to every bot's
//! `mqtt` trigger filter. A message becomes a task (its topic is the conversation, so one
//! topic's messages run in order); with QoS 1 it is acknowledged to the broker only after the
//! task is durable, so a node that dies in between gets the message again. A persistent session
//! (clean session off, a stable client id) keeps messages that arrive while the node is away.
//! Subscriptions are shared (`$share/<channels.mqtt.share_group>/<filter>`, group `oclaw`), so
//! the api-servers of a cluster split the messages instead of each making every one a task.
//! The bot's reply is published to `reply_topic` at QoS 1 (`{topic}` in it is the message's
//! topic, so `{topic}/reply` answers each sender on its own topic). The connection is re-established
//! with backoff (1 s doubling to 30 s) whenever it drops.

mod config;
mod ingress;

use std::sync::Arc;
use std::time::Duration;

use oclaw_bots::BotCatalog;
use oclaw_core::ErrorCode;
use oclaw_telemetry::ChannelEvent;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use tokio::sync::watch;

use crate::ReplyRouter;

use config::*;
pub use config::{options, subscription, wanted};
use ingress::*;

const CHANNEL: &str = "mqtt";

/// Runs the channel until `stop` turns true.
pub async fn run(
    options: MqttOptions,
    share_group: String,
    catalog: Arc<BotCatalog>,
    router: Arc<ReplyRouter>,
    metrics: Arc<oclaw_telemetry::NodeMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let subs = Arc::new(subscriptions(&catalog));
    let (client, mut events) = AsyncClient::new(options, 1024);
    // Messages go through one ingest task, which makes them durable in batches, in arrival
    // order (a topic's tasks then run in that order), and acknowledges them afterwards.
    let (ingest_tx, ingest_rx) = tokio::sync::mpsc::channel::<Publish>(4096);
    let ingest = tokio::spawn(ingest(
        ingest_rx,
        subs.clone(),
        client.clone(),
        router,
        metrics.clone(),
    ));
    let mut backoff = Duration::from_secs(1);
    loop {
        let event = tokio::select! {
            e = events.poll() => e,
            _ = stop.wait_for(|s| *s) => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_secs(1);
                tracing::info!(
                    component = "channels",
                    channel = CHANNEL,
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                let mut filters: Vec<(String, u8)> =
                    subs.iter().map(|(_, t)| (t.topic.clone(), t.qos)).collect();
                filters.sort();
                filters.dedup();
                for (filter, qos) in filters {
                    let qos = if qos == 0 {
                        QoS::AtMostOnce
                    } else {
                        QoS::AtLeastOnce
                    };
                    let filter = subscription(&share_group, &filter);
                    if let Err(e) = client.subscribe(filter.clone(), qos).await {
                        tracing::warn!(
                            component = "channels",
                            channel = CHANNEL,
                            "subscribing to {filter}: {e}"
                        );
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                metrics.channel_event(CHANNEL, ChannelEvent::Received);
                if ingest_tx.send(p).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                metrics.channel_event(CHANNEL, ChannelEvent::Error);
                tracing::warn!(
                    component = "channels",
                    channel = CHANNEL,
                    error_code = ErrorCode::ChannelUnavailable.code(),
                    "MQTT connection: {e}; retrying in {}s",
                    backoff.as_secs()
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    drop(ingest_tx);
    let _ = ingest.await;
    let _ = client.disconnect().await;
}

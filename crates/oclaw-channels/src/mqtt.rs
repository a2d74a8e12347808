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

use std::sync::Arc;
use std::time::{Duration, Instant};

use oclaw_bots::triggers::broker::{topic_matches, MqttTrigger};
use oclaw_bots::{BotCatalog, LoadedBot};
use oclaw_core::config::MqttConnection;
use oclaw_core::ErrorCode;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use tokio::sync::watch;

use crate::{resolve_secret, ReplyRouter};

const CHANNEL: &str = "mqtt";

/// The bots and triggers an MQTT channel serves.
fn subscriptions(catalog: &BotCatalog) -> Vec<(Arc<LoadedBot>, MqttTrigger)> {
    catalog
        .bots()
        .flat_map(|b| b.mqtt.iter().map(move |t| (b.clone(), t.clone())))
        .collect()
}

/// Options for a connection, from `channels.mqtt`.
pub fn options(conn: &MqttConnection, node_id: &str) -> Result<MqttOptions, String> {
    let url = url::Url::parse(&conn.url).map_err(|e| format!("channels.mqtt.url: {e}"))?;
    if url.scheme() != "mqtt" && url.scheme() != "tcp" {
        return Err(format!(
            "channels.mqtt.url: scheme `{}` is not supported; use mqtt://HOST:PORT",
            url.scheme()
        ));
    }
    let host = url
        .host_str()
        .ok_or("channels.mqtt.url has no host")?
        .to_string();
    let id = conn
        .client_id
        .clone()
        .unwrap_or_else(|| format!("oclaw-{node_id}"));
    let mut o = MqttOptions::new(id, host, url.port().unwrap_or(1883));
    o.set_keep_alive(Duration::from_secs(15))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(1 << 20, 1 << 20);
    if let Some(user) = &conn.username {
        let password = match &conn.password {
            Some(p) => resolve_secret(p).map_err(|e| format!("channels.mqtt.password: {e}"))?,
            None => String::new(),
        };
        o.set_credentials(user.clone(), password);
    }
    Ok(o)
}

/// The filter to subscribe with: `$share/<group>/<filter>` when a share group is set.
pub fn subscription(share_group: &str, filter: &str) -> String {
    if share_group.is_empty() {
        filter.to_string()
    } else {
        format!("$share/{share_group}/{filter}")
    }
}

/// Whether any loaded bot has an MQTT trigger.
pub fn wanted(catalog: &BotCatalog) -> bool {
    catalog.bots().any(|b| !b.mqtt.is_empty())
}

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
                metrics.channel_event(CHANNEL, "received");
                if ingest_tx.send(p).await.is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                metrics.channel_event(CHANNEL, "error");
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

async fn ingest(
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

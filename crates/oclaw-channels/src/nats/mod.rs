//! The NATS channel: JetStream as ingress. The node makes sure the stream
//! (`channels.nats.stream`, `OCLAW` by default) holds every `nats` trigger's subject, and reads
//! each trigger through a durable pull consumer (`oclaw-<bot>-<n>`). Messages are made durable
//! as tasks in batches, then acknowledged; the task's idempotency key is the message's stream
//! sequence, so a redelivered message (a node that died before its ack) becomes the same task,
//! not a second one. The subject is the conversation: one subject's messages run in order. The
//! bot's reply is published to `reply_subject`.

mod config;
mod ingress;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use futures_util::StreamExt;
use oclaw_bots::triggers::broker::NatsTrigger;
use oclaw_bots::{BotCatalog, LoadedBot};
use oclaw_core::config::NatsConnection;
use oclaw_core::ErrorCode;
use oclaw_telemetry::ChannelEvent;
use tokio::sync::watch;

use crate::ReplyRouter;

pub use config::{check, wanted};
use ingress::*;

const CHANNEL: &str = "nats";

/// How this node connects to `channels.nats` (TLS with `ca_file`), as `name`.
pub(crate) fn connect_options(conn: &NatsConnection, name: &str) -> async_nats::ConnectOptions {
    let options = async_nats::ConnectOptions::new().name(name);
    match &conn.ca_file {
        Some(ca) => options.require_tls(true).add_root_certificates(ca.clone()),
        None => options,
    }
}

/// Runs the channel until `stop` turns true: connects (retrying), then consumes every trigger.
pub async fn run(
    conn: NatsConnection,
    catalog: Arc<BotCatalog>,
    router: Arc<ReplyRouter>,
    metrics: Arc<oclaw_telemetry::NodeMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let triggers: Vec<(Arc<LoadedBot>, usize, NatsTrigger)> = catalog
        .bots()
        .flat_map(|b| {
            b.nats
                .iter()
                .enumerate()
                .map(move |(i, t)| (b.clone(), i, t.clone()))
        })
        .collect();
    let client = connect_options(&conn, "oclaw")
        .retry_on_initial_connect()
        .connect(conn.url.as_str())
        .await;
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                component = "channels",
                channel = CHANNEL,
                error_code = ErrorCode::ChannelUnavailable.code(),
                "NATS: {e}"
            );
            return;
        }
    };
    let js = jetstream::new(client.clone());
    let mut tasks = Vec::new();
    for (bot, i, trigger) in triggers {
        tasks.push(tokio::spawn(consume(
            js.clone(),
            conn.stream.clone(),
            bot,
            i,
            trigger,
            router.clone(),
            metrics.clone(),
            stop.clone(),
        )));
    }
    let _ = stop.wait_for(|s| *s).await;
    for t in tasks {
        let _ = t.await;
    }
    let _ = client.flush().await;
}

/// Makes sure the stream exists and holds `subject`.
async fn ensure_stream(
    js: &jetstream::Context,
    name: &str,
    subject: &str,
) -> Result<stream::Stream, String> {
    let mut s = js
        .get_or_create_stream(stream::Config {
            name: name.to_string(),
            subjects: vec![subject.to_string()],
            ..Default::default()
        })
        .await
        .map_err(|e| format!("stream {name}: {e}"))?;
    let info = s
        .info()
        .await
        .map_err(|e| format!("stream {name}: {e}"))?
        .clone();
    if !info.config.subjects.iter().any(|x| x == subject) {
        let mut config = info.config.clone();
        config.subjects.push(subject.to_string());
        js.update_stream(config)
            .await
            .map_err(|e| format!("adding {subject} to stream {name}: {e}"))?;
    }
    Ok(s)
}

#[allow(clippy::too_many_arguments)]
async fn consume(
    js: jetstream::Context,
    stream_name: String,
    bot: Arc<LoadedBot>,
    index: usize,
    trigger: NatsTrigger,
    router: Arc<ReplyRouter>,
    metrics: Arc<oclaw_telemetry::NodeMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let durable = format!("oclaw-{}-{index}", bot.name());
    let mut backoff = Duration::from_secs(1);
    loop {
        let messages = async {
            let stream = ensure_stream(&js, &stream_name, &trigger.subject).await?;
            let consumer: jetstream::consumer::Consumer<pull::Config> = stream
                .get_or_create_consumer(
                    &durable,
                    pull::Config {
                        durable_name: Some(durable.clone()),
                        filter_subject: trigger.subject.clone(),
                        ack_wait: Duration::from_secs(30),
                        max_ack_pending: 4096,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| format!("consumer {durable}: {e}"))?;
            consumer
                .stream()
                .max_messages_per_batch(512)
                .expires(Duration::from_secs(10))
                .heartbeat(Duration::from_secs(3))
                .messages()
                .await
                .map_err(|e| format!("consumer {durable}: {e}"))
        };
        let messages = tokio::select! {
            m = messages => m,
            _ = stop.wait_for(|s| *s) => return,
        };
        match messages {
            Ok(messages) => {
                backoff = Duration::from_secs(1);
                tracing::info!(
                    component = "channels",
                    channel = CHANNEL,
                    bot = bot.name(),
                    subject = trigger.subject,
                    consumer = durable,
                    "consuming from JetStream"
                );
                let mut chunks = messages.ready_chunks(256);
                loop {
                    let chunk = tokio::select! {
                        c = chunks.next() => c,
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    let Some(chunk) = chunk else { break };
                    let mut batch = Vec::with_capacity(chunk.len());
                    for m in chunk {
                        match m {
                            Ok(m) => batch.push(m),
                            Err(e) => {
                                metrics.channel_event(CHANNEL, ChannelEvent::Error);
                                tracing::warn!(
                                    component = "channels",
                                    channel = CHANNEL,
                                    consumer = durable,
                                    "NATS: {e}"
                                );
                            }
                        }
                    }
                    if !batch.is_empty() {
                        ingest(batch, &bot, &trigger, &router, &metrics).await;
                    }
                }
            }
            Err(e) => {
                metrics.channel_event(CHANNEL, ChannelEvent::Error);
                tracing::warn!(
                    component = "channels",
                    channel = CHANNEL,
                    bot = bot.name(),
                    error_code = ErrorCode::ChannelUnavailable.code(),
                    "NATS: {e}; retrying in {}s",
                    backoff.as_secs()
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

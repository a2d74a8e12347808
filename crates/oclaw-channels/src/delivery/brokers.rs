//! The connections `channel.reply` publishes broker replies on: one per process and broker,
//! opened on first use from `channels.mqtt` / `channels.nats`, apart from the channel's own
//! (a worker process runs no channel). A publish counts as delivered only once the broker has
//! it: MQTT's PUBACK for that very message (QoS 1), NATS's answer to a flush.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Outgoing, Packet, QoS};
use tokio::sync::oneshot;

/// How long a publish waits for the broker's confirmation before it counts as failed (and
/// its delivery task is retried).
const CONFIRM: Duration = Duration::from_secs(10);

/// Waiters of publishes in flight: those not yet sent (in the order they were handed to the
/// client, which sends in that order), and those sent, by packet id.
#[derive(Default)]
struct Acks {
    unsent: VecDeque<oneshot::Sender<()>>,
    sent: HashMap<u16, oneshot::Sender<()>>,
}

pub(crate) struct MqttPublisher {
    client: AsyncClient,
    acks: Arc<Mutex<Acks>>,
    /// Serializes publishes, so their order in `unsent` is the order the client sends them.
    order: tokio::sync::Mutex<()>,
}

impl MqttPublisher {
    /// Connects with `options` (the client id is the channel's with `-replies` after it, so the
    /// two connections never displace each other).
    pub(crate) fn connect(mut options: rumqttc::MqttOptions) -> MqttPublisher {
        let id = format!("{}-replies", options.client_id());
        options.set_client_id(id).set_clean_session(true);
        let (client, mut events) = AsyncClient::new(options, 256);
        let acks: Arc<Mutex<Acks>> = Arc::default();
        let book = Arc::downgrade(&acks);
        tokio::spawn(async move {
            loop {
                let event = events.poll().await;
                let Some(acks) = book.upgrade() else { return };
                let failed = {
                    let mut a = acks.lock().unwrap_or_else(|p| p.into_inner());
                    match event {
                        // A first send takes the oldest waiter; a resend after a reconnect
                        // keeps the packet id it had.
                        Ok(Event::Outgoing(Outgoing::Publish(pkid)))
                            if !a.sent.contains_key(&pkid) =>
                        {
                            if let Some(w) = a.unsent.pop_front() {
                                a.sent.insert(pkid, w);
                            }
                            None
                        }
                        Ok(Event::Incoming(Packet::PubAck(ack))) => {
                            if let Some(w) = a.sent.remove(&ack.pkid) {
                                let _ = w.send(());
                            }
                            None
                        }
                        Ok(_) => None,
                        Err(e) => Some(e),
                    }
                };
                if let Some(e) = failed {
                    tracing::debug!(
                        component = "channels",
                        channel = "mqtt",
                        "reply connection: {e}"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
        MqttPublisher {
            client,
            acks,
            order: tokio::sync::Mutex::new(()),
        }
    }

    /// Publishes at QoS 1 and waits for the broker's PUBACK.
    pub(crate) async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        {
            let _turn = self.order.lock().await;
            self.acks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unsent
                .push_back(tx);
            if let Err(e) = self
                .client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
            {
                // Not handed to the client: its waiter must not take another's packet id.
                self.acks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .unsent
                    .pop_back();
                return Err(e.to_string());
            }
        }
        match tokio::time::timeout(CONFIRM, rx).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(format!(
                "the MQTT broker did not acknowledge the reply within {}s",
                CONFIRM.as_secs()
            )),
        }
    }
}

/// Publishes on core NATS and flushes, so the server has the message when this returns.
pub(crate) async fn nats_publish(
    client: &async_nats::Client,
    subject: &str,
    payload: Vec<u8>,
) -> Result<(), String> {
    client
        .publish(subject.to_string(), payload.into())
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(CONFIRM, client.flush())
        .await
        .map_err(|_| {
            format!(
                "the NATS server did not answer within {}s",
                CONFIRM.as_secs()
            )
        })?
        .map_err(|e| e.to_string())
}

//! What the broker channels (MQTT, NATS) share: making a batch of messages durable before they
//! are acknowledged, and publishing each reply once its task has finished.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oclaw_core::{ErrorCode, NewTask, TaskStatus};
use oclaw_telemetry::ChannelEvent;

use crate::{Pending, ReplyRouter};

/// Enqueues `tasks` in one store call, retrying with backoff (200 ms doubling to 10 s) until
/// it succeeds: the caller acknowledges the messages only afterwards.
pub async fn make_durable(
    channel: &'static str,
    router: &Arc<ReplyRouter>,
    tasks: Vec<NewTask>,
    metrics: &oclaw_telemetry::NodeMetrics,
) -> Vec<Pending> {
    let mut wait = Duration::from_millis(200);
    loop {
        match router.submit_batch(tasks.clone()).await {
            Ok(pending) => return pending,
            Err(e) => {
                metrics.channel_event(channel, ChannelEvent::Error);
                tracing::warn!(
                    component = "channels",
                    channel,
                    messages = tasks.len(),
                    error_code = e.code().code(),
                    "messages not yet durable, retrying: {e}"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Waits (in the background, up to `timeout`) for the task and publishes its output with
/// `publish` (a string as is, anything else as JSON).
pub fn reply_when_done<F, Fut>(
    channel: &'static str,
    pending: Pending,
    timeout: Duration,
    metrics: Arc<oclaw_telemetry::NodeMetrics>,
    received: Instant,
    publish: F,
) where
    F: FnOnce(Vec<u8>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    tokio::spawn(async move {
        let task_id = pending.task.id;
        match pending.finished(timeout).await {
            Some(task) if task.status == TaskStatus::Succeeded => {
                match publish(crate::reply_payload(task.output.as_ref())).await {
                    Ok(()) => metrics.channel_replied(channel, received.elapsed()),
                    Err(e) => {
                        metrics.channel_event(channel, ChannelEvent::Error);
                        tracing::warn!(component = "channels", channel, task_id = %task_id, error_code = ErrorCode::ChannelSendFailed.code(), "reply not published: {e}");
                    }
                }
            }
            Some(_) => metrics.channel_event(channel, ChannelEvent::Error),
            None => {
                tracing::info!(component = "channels", channel, task_id = %task_id, "no reply within the bot's timeout; none is published")
            }
        }
    });
}

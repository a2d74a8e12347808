//! What the broker channels (MQTT, NATS) share: making a batch of messages durable before they
//! are acknowledged (their replies go back as delivery tasks, `crate::delivery`).

use std::sync::Arc;
use std::time::Duration;

use oclaw_core::NewTask;
use oclaw_telemetry::ChannelEvent;

use crate::ReplyRouter;

/// Enqueues `tasks` in one store call, retrying with backoff (200 ms doubling to 10 s) until
/// it succeeds: the caller acknowledges the messages only afterwards. Nobody waits for the
/// tasks here: their replies are delivery tasks of their own.
pub async fn make_durable(
    channel: &'static str,
    router: &Arc<ReplyRouter>,
    tasks: Vec<NewTask>,
    metrics: &oclaw_telemetry::NodeMetrics,
) {
    let mut wait = Duration::from_millis(200);
    loop {
        match router.store().enqueue_batch(tasks.clone()).await {
            Ok(_) => return,
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

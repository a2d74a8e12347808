//! One `LISTEN` connection per process turns other processes' `NOTIFY`s into local wake-ups.
//! When it drops (database restart, network), it reconnects with backoff and wakes everyone
//! once, since notifications sent meanwhile are lost; components also poll, so nothing waits
//! longer than a poll interval even then.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Config, Notification};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{pg_err, Inner};
use crate::StoreResult;

type Listening = (Client, mpsc::UnboundedReceiver<Notification>);

async fn connect(
    config: &Config,
    tls: &MakeRustlsConnect,
    inner: &Inner,
) -> StoreResult<Listening> {
    let (client, mut connection) = config.connect(tls.clone()).await.map_err(pg_err)?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(
                        component = "store",
                        error_code = oclaw_core::ErrorCode::StoreUnavailable.code(),
                        "LISTEN connection lost: {e}"
                    );
                    break;
                }
            }
        }
    });
    let c = &inner.channels;
    client
        .batch_execute(&format!(
            "LISTEN \"{}\"; LISTEN \"{}\"; LISTEN \"{}\";",
            c.queued, c.scheduled, c.finished
        ))
        .await
        .map_err(pg_err)?;
    Ok((client, rx))
}

fn dispatch(inner: &Inner, n: &Notification) {
    let c = &inner.channels;
    if n.channel() == c.queued {
        inner.wakeups.queued.notify_one();
    } else if n.channel() == c.scheduled {
        inner.wakeups.scheduled.notify_one();
    } else if n.channel() == c.finished {
        let ids: Vec<oclaw_core::TaskId> = n
            .payload()
            .split(',')
            .filter_map(|s| s.parse().ok().map(oclaw_core::TaskId))
            .collect();
        inner.wakeups.notify_finished(&ids);
    }
}

/// Connects once (an error here fails the store's open), then keeps listening in the background.
pub(super) async fn spawn(
    config: Config,
    tls: MakeRustlsConnect,
    inner: Arc<Inner>,
) -> StoreResult<tokio::task::JoinHandle<()>> {
    let first = connect(&config, &tls, &inner).await?;
    Ok(tokio::spawn(run(config, tls, inner, first)))
}

async fn run(config: Config, tls: MakeRustlsConnect, inner: Arc<Inner>, first: Listening) {
    let (mut client, mut rx) = first;
    loop {
        while let Some(n) = rx.recv().await {
            dispatch(&inner, &n);
        }
        drop(client);
        let mut backoff = Duration::from_millis(100);
        (client, rx) = loop {
            tokio::time::sleep(backoff).await;
            match connect(&config, &tls, &inner).await {
                Ok(l) => break l,
                Err(e) => {
                    tracing::debug!(component = "store", "LISTEN reconnect failed: {e}");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        tracing::info!(component = "store", "LISTEN connection re-established");
        // Anything may have happened while we were deaf.
        inner.wakeups.queued.notify_one();
        inner.wakeups.scheduled.notify_one();
    }
}

//! `oclaw bench chat`: durable chat round trips over WebSocket. An embedded node (SQLite) runs
//! the faq-bot example in this process; `sessions` WebSocket clients each send `messages`
//! questions one after another, waiting for each reply (closed loop). Every round trip is a
//! durable task (enqueue, claim, pipeline with conversation memory, completion) and a reply
//! frame. Reports round trips per second and latency percentiles.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use oclaw_core::config::NodeConfig;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

pub struct ChatBenchOptions {
    pub sessions: usize,
    pub messages: usize,
    /// A running node (`http://HOST:PORT`) whose faq-bot to load; `None` starts an embedded one.
    pub server: Option<String>,
}

const QUESTIONS: &[&str] = &[
    "How long does a refund take?",
    "where is my order",
    "How do I reset my password?",
    "退款多久到账",
];

pub async fn chat(o: ChatBenchOptions) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = match &o.server {
        Some(s) => url::Url::parse(s)
            .ok()
            .and_then(|u| u.port_or_known_default())
            .ok_or_else(|| format!("--server {s} is not http://HOST:PORT"))?,
        None => std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port(),
    };
    let host = o
        .server
        .as_deref()
        .and_then(|s| url::Url::parse(s).ok())
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "127.0.0.1".into());
    let mut config = NodeConfig::default();
    config.api.listen = format!("127.0.0.1:{port}");
    config.storage.url = format!("sqlite://{}", dir.path().join("bench.db").display());
    config.worker.concurrency = 200;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let opts = crate::ServeOptions {
        config,
        components: crate::Components::ALL,
        node_id: None,
        config_file: "<bench>".into(),
        banner: false,
    };
    let node = match o.server {
        Some(_) => None,
        None => Some(tokio::spawn(crate::serve(opts, async move {
            let _ = stop_rx.await;
        }))),
    };
    let url = format!("ws://{host}:{port}/v1/ws?bot=faq-bot");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err("the embedded node did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Connect every session first, then start them together.
    let mut conns = Vec::with_capacity(o.sessions);
    for _ in 0..o.sessions {
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&url, None, true)
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        ws.next().await; // the session frame
        conns.push(ws);
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(o.sessions + 1));
    let mut clients = Vec::with_capacity(o.sessions);
    for (i, mut ws) in conns.into_iter().enumerate() {
        let start = start.clone();
        let n = o.messages;
        clients.push(tokio::spawn(async move {
            start.wait().await;
            let mut lat = Vec::with_capacity(n);
            let mut errors = 0usize;
            for m in 0..n {
                let q = QUESTIONS[(i + m) % QUESTIONS.len()];
                let frame = serde_json::json!({"type": "message", "text": q}).to_string();
                let sent = Instant::now();
                if ws.send(Message::Text(frame.into())).await.is_err() {
                    errors += n - m;
                    break;
                }
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => {
                            if t.as_str().contains("\"type\":\"reply\"") {
                                lat.push(sent.elapsed());
                                break;
                            }
                            if t.as_str().contains("\"type\":\"error\"") {
                                errors += 1;
                                break;
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => return (lat, errors + n - m),
                    }
                }
            }
            (lat, errors)
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut all = Vec::with_capacity(o.sessions * o.messages);
    let mut errors = 0;
    for c in clients {
        let (lat, e) = c.await.map_err(|e| e.to_string())?;
        all.extend(lat);
        errors += e;
    }
    let elapsed = began.elapsed();
    let _ = stop_tx.send(());
    if let Some(node) = node {
        let _ = node.await;
    }
    all.sort();
    let p = |q: f64| {
        all.get(((all.len().saturating_sub(1)) as f64 * q).round() as usize)
            .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    Ok(format!(
        "chat over WebSocket (faq-bot): {} sessions x {} messages\n  \
         round trips  {} in {:.2}s = {:.0}/s ({} errors)\n  latency      p50 {}  p90 {}  p99 {}  max {}",
        o.sessions,
        o.messages,
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        errors,
        p(0.5),
        p(0.9),
        p(0.99),
        p(1.0)
    ))
}

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
    /// Chat over MQTT through this broker instead of WebSocket (embedded node only): each
    /// session is a topic, answered on `<topic>/reply`.
    pub mqtt: Option<String>,
    /// Chat with a model bot (`llm.chat`) backed by a stand-in model in this process that
    /// answers after this long, instead of faq-bot (embedded node only).
    pub model_latency: Option<Duration>,
}

/// This process's resident memory, as its `process_resident_memory_bytes` metric says.
fn rss_mb() -> Option<f64> {
    oclaw_telemetry::system::process_metrics(0.0)
        .into_iter()
        .find(|(name, ..)| *name == "process_resident_memory_bytes")
        .map(|(.., bytes)| bytes / (1024.0 * 1024.0))
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
    let run = format!("oclaw-bench/{}", &oclaw_core::task::new_trace_id()[..12]);
    if let Some(broker) = &o.mqtt {
        if o.server.is_some() {
            return Err("--mqtt runs an embedded node; leave out --server".into());
        }
        config.channels.mqtt = Some(oclaw_core::config::MqttConnection {
            url: broker.clone(),
            ca_file: None,
            client_id: Some(format!("{run}-node").replace('/', "-")),
            username: None,
            password: None,
            share_group: "oclaw".into(),
        });
        config.bots = faq_bots_over_mqtt(&run)?;
    }
    let mut bot = "faq-bot";
    if let Some(latency) = o.model_latency {
        if o.server.is_some() || o.mqtt.is_some() {
            return Err("--model-latency runs an embedded node over WebSocket; leave out --server and --mqtt".into());
        }
        let base = crate::llm::stand_in(latency).await?;
        config.llm = serde_json::from_value(serde_json::json!({
            "providers": {"stand-in": {"kind": "openai", "base_url": base, "max_concurrent": o.sessions.max(1)}},
            "default": "stand-in/bench",
        }))
        .map_err(|e| e.to_string())?;
        config.bots = vec![serde_saphyr::from_str(
            "metadata: {name: assistant}\nspec:\n  triggers: [{websocket: {}}]\n  steps:\n    - {id: answer, uses: llm.chat, with: {prompt: \"{{ input.text }}\"}}\n",
        )
        .map_err(|e| e.to_string())?];
        config.worker.concurrency = o.sessions.max(1);
        config.channels.websocket.max_in_flight = 4;
        bot = "assistant";
    }
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let opts = oclaw_node::ServeOptions {
        config,
        components: oclaw_node::Components::ALL,
        node_id: None,
        config_file: "<bench>".into(),
        banner: false,
    };
    let node = match o.server {
        Some(_) => None,
        None => Some(tokio::spawn(oclaw_node::serve(opts, async move {
            let _ = stop_rx.await;
        }))),
    };
    if let Some(broker) = &o.mqtt {
        let report = over_mqtt(&o, broker, &run, port).await;
        let _ = stop_tx.send(());
        if let Some(node) = node {
            let _ = node.await;
        }
        return report;
    }
    let url = format!("ws://{host}:{port}/v1/ws?bot={bot}");
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
            let mut firsts = Vec::with_capacity(n);
            let mut errors = 0usize;
            for m in 0..n {
                let q = QUESTIONS[(i + m) % QUESTIONS.len()];
                let frame = serde_json::json!({"type": "message", "text": q}).to_string();
                let sent = Instant::now();
                if ws.send(Message::Text(frame.into())).await.is_err() {
                    errors += n - m;
                    break;
                }
                let mut first = None;
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => {
                            if first.is_none() && t.as_str().contains("\"type\":\"delta\"") {
                                first = Some(sent.elapsed());
                            }
                            if t.as_str().contains("\"type\":\"reply\"") {
                                lat.push(sent.elapsed());
                                firsts.extend(first);
                                break;
                            }
                            if t.as_str().contains("\"type\":\"error\"") {
                                errors += 1;
                                break;
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => return (lat, firsts, errors + n - m),
                    }
                }
            }
            (lat, firsts, errors)
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut all = Vec::with_capacity(o.sessions * o.messages);
    let mut first_deltas = Vec::new();
    let mut errors = 0;
    for c in clients {
        let (lat, firsts, e) = c.await.map_err(|e| e.to_string())?;
        all.extend(lat);
        first_deltas.extend(firsts);
        errors += e;
    }
    first_deltas.sort();
    let elapsed = began.elapsed();
    let _ = stop_tx.send(());
    if let Some(node) = node {
        let _ = node.await;
    }
    let rss = rss_mb();
    let count = all.len();
    let mut text = report(
        &format!(
            "chat over WebSocket ({bot}): {} sessions x {} messages",
            o.sessions, o.messages
        ),
        all,
        errors,
        elapsed,
    );
    if let Some(latency) = o.model_latency {
        // Each session waits for each answer: at best `sessions` answers per model latency.
        let ideal = o.sessions as f64 / latency.as_secs_f64().max(1e-9);
        let got = count as f64 / elapsed.as_secs_f64();
        text.push_str(&format!(
            "\n  model        stand-in answering after {} ms: ideal {ideal:.0}/s, got {:.0}% of it",
            latency.as_millis(),
            100.0 * got / ideal
        ));
        if let Some(p50) = first_deltas.get(first_deltas.len() / 2) {
            text.push_str(&format!(
                "\n  first delta  p50 {:.1} ms after sending ({:.1} ms after the stand-in's first piece)",
                p50.as_secs_f64() * 1000.0,
                p50.saturating_sub(latency).as_secs_f64() * 1000.0
            ));
        }
    }
    if let Some(mb) = rss {
        text.push_str(&format!(
            "\n  memory       {mb:.0} MB resident (node and clients in this process)"
        ));
    }
    Ok(text)
}

fn report(title: &str, mut all: Vec<Duration>, errors: usize, elapsed: Duration) -> String {
    all.sort();
    let p = |q: f64| {
        all.get(((all.len().saturating_sub(1)) as f64 * q).round() as usize)
            .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    format!(
        "{title}\n  round trips  {} in {:.2}s = {:.0}/s ({} errors)\n  latency      p50 {}  p90 {}  p99 {}  max {}",
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        errors,
        p(0.5),
        p(0.9),
        p(0.99),
        p(1.0)
    )
}

/// The faq-bot example (with its hand-off bot), reachable over MQTT on `<run>/+/ask`.
fn faq_bots_over_mqtt(run: &str) -> Result<Vec<oclaw_core::bot::BotDoc>, String> {
    let (name, yaml) = oclaw_node::EXAMPLE_BOTS
        .iter()
        .find(|(n, _)| n.ends_with("faq-bot.yaml"))
        .ok_or("the faq-bot example is missing")?;
    let yaml = oclaw_node::example_yaml(name, yaml);
    let mut bots = Vec::new();
    for doc in yaml.split("\n---\n") {
        let mut bot: oclaw_core::bot::BotDoc =
            serde_saphyr::from_str(doc).map_err(|e| format!("faq-bot example: {e}"))?;
        if bot.metadata.name == "faq-bot" {
            bot.spec.triggers.push(oclaw_core::bot::Trigger {
                mqtt: Some(serde_json::json!({"topic": format!("{run}/+/ask"), "reply_topic": "{topic}/reply"})),
                ..Default::default()
            });
        }
        bots.push(bot);
    }
    Ok(bots)
}

/// Sessions are topics `<run>/<i>/ask`; each publishes its questions one after another (QoS 1)
/// and waits for the reply on `<topic>/reply`.
async fn over_mqtt(
    o: &ChatBenchOptions,
    broker: &str,
    run: &str,
    port: u16,
) -> Result<String, String> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    use std::collections::HashMap;
    use tokio::sync::mpsc;
    let u = url::Url::parse(broker).map_err(|e| format!("--mqtt: {e}"))?;
    let mut opts = MqttOptions::new(
        format!("{run}-client").replace('/', "-"),
        u.host_str().unwrap_or("127.0.0.1"),
        u.port().unwrap_or(1883),
    );
    opts.set_keep_alive(Duration::from_secs(15))
        .set_inflight(1000);
    let (client, mut events) = AsyncClient::new(opts, 10_000);
    let mut waiters: HashMap<String, mpsc::UnboundedSender<()>> = HashMap::new();
    let mut receivers = Vec::new();
    for i in 0..o.sessions {
        let (tx, rx) = mpsc::unbounded_channel();
        waiters.insert(format!("{run}/{i}/ask/reply"), tx);
        receivers.push(rx);
    }
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel::<()>();
    let mut subscribed_tx = Some(subscribed_tx);
    client
        .subscribe(format!("{run}/+/ask/reply"), QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok(ev) = events.poll().await {
            match ev {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(t) = subscribed_tx.take() {
                        let _ = t.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    if let Some(w) = waiters.get(&p.topic) {
                        let _ = w.send(());
                    }
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
        .await
        .map_err(|_| "the MQTT broker did not acknowledge the subscription".to_string())?
        .map_err(|_| "the MQTT connection closed".to_string())?;
    // Wait until the node answers one question (it is connected and subscribed).
    let deadline = Instant::now() + Duration::from_secs(15);
    let probe = format!("{run}/0/ask");
    loop {
        client
            .publish(
                &probe,
                QoS::AtLeastOnce,
                false,
                "{\"text\": \"where is my order\"}",
            )
            .await
            .map_err(|e| e.to_string())?;
        if tokio::time::timeout(Duration::from_millis(500), receivers[0].recv())
            .await
            .is_ok()
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the node on port {port} never answered over MQTT"));
        }
    }
    while tokio::time::timeout(Duration::from_millis(300), receivers[0].recv())
        .await
        .is_ok()
    {}
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(o.sessions + 1));
    let mut tasks = Vec::new();
    for (i, mut rx) in receivers.into_iter().enumerate() {
        let (client, start, n) = (client.clone(), start.clone(), o.messages);
        let topic = format!("{run}/{i}/ask");
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut lat = Vec::with_capacity(n);
            let mut errors = 0;
            for m in 0..n {
                let q = QUESTIONS[(i + m) % QUESTIONS.len()];
                let body = serde_json::json!({"text": q}).to_string();
                let sent = Instant::now();
                if client
                    .publish(&topic, QoS::AtLeastOnce, false, body)
                    .await
                    .is_err()
                {
                    errors += 1;
                    continue;
                }
                match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                    Ok(Some(())) => lat.push(sent.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await.map_err(|e| e.to_string())?;
        all.extend(lat);
        errors += e;
    }
    let elapsed = began.elapsed();
    let _ = client.disconnect().await;
    Ok(report(
        &format!(
            "chat over MQTT (faq-bot, QoS 1): {} sessions (topics) x {} messages",
            o.sessions, o.messages
        ),
        all,
        errors,
        elapsed,
    ))
}

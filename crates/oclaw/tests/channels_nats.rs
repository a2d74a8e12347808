//! The NATS channel against the real NATS server with JetStream (`OCLAW_TEST_NATS_URL`, default
//! nats://127.0.0.1:4222; under CI=true an unreachable server fails the test): messages become
//! tasks and replies are published; messages published while the node is down are consumed
//! after it restarts; a replayed stream (consumer recreated) creates no duplicate task.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

fn server() -> Option<String> {
    let url =
        std::env::var("OCLAW_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let u = url::Url::parse(&url).unwrap();
    let addr = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap_or(4222));
    if std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_err()
    {
        assert!(
            !oclaw_core::ci::under_ci(),
            "NATS {url} unreachable under CI=true"
        );
        eprintln!("skipped: NATS {url} unreachable");
        return None;
    }
    Some(url)
}

fn unique() -> String {
    format!(
        "{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    )
}

fn config(url: &str, stream: &str, prefix: &str) -> String {
    format!(
        "channels:
  nats: {{url: \"{url}\", stream: \"{stream}\"}}
bots:
  - metadata: {{name: order-handler}}
    spec:
      triggers:
        - nats: {{subject: \"{prefix}.orders.created\", reply_subject: \"{prefix}.orders.processed\"}}
      steps:
        - id: handle
          uses: template
          with: {{value: {{order: \"{{{{ input.data.payload.order }}}}\", total: \"{{{{ input.data.payload.qty * 10 }}}}\"}}}}
"
    )
}

async fn tasks(base: &str) -> Vec<Value> {
    let (_, v) = common::get(
        &common::client(),
        &format!("{base}/v1/tasks?bot=order-handler&limit=500"),
    )
    .await;
    v["items"].as_array().cloned().unwrap_or_default()
}

async fn wait_succeeded(base: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = tasks(base).await;
        if all.iter().filter(|t| t["status"] == "succeeded").count() >= n {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} tasks succeeded",
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_messages_become_tasks_once_and_survive_a_node_restart() {
    let Some(url) = server() else { return };
    let u = unique();
    let (stream, prefix) = (format!("OCLAWT{u}"), format!("oclawt{u}"));
    let nc = async_nats::connect(url.as_str()).await.unwrap();
    let js = async_nats::jetstream::new(nc.clone());
    let mut replies = nc
        .subscribe(format!("{prefix}.orders.processed"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&url, &stream, &prefix);
    let mut node = common::start(dir.path(), &cfg);

    // The node creates the stream; publish once it exists.
    let deadline = Instant::now() + Duration::from_secs(15);
    while js.get_stream(&stream).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the node never created the stream: {}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 1..=20 {
        js.publish(
            format!("{prefix}.orders.created"),
            json!({"order": i, "qty": i}).to_string().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 20 {
        let m = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .expect("a reply")
            .unwrap();
        got.push(serde_json::from_slice::<Value>(&m.payload).unwrap());
    }
    assert!(got.contains(&json!({"order": 7, "total": 70})), "{got:?}");
    wait_succeeded(&node.url, 20).await;

    // Down: the stream keeps what is published meanwhile.
    node.kill9();
    for i in 21..=30 {
        js.publish(
            format!("{prefix}.orders.created"),
            json!({"order": i, "qty": 1}).to_string().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    // Forget the consumer's progress too: the restarted node replays the whole stream, and the
    // messages it already made into tasks (same stream sequence) do not become new ones.
    let s = js.get_stream(&stream).await.unwrap();
    s.delete_consumer("oclaw-order-handler-0").await.unwrap();
    let node = common::start(dir.path(), &cfg);
    let all = wait_succeeded(&node.url, 30).await;
    // Judge duplicates once the replay is over: the node's consumer has had the whole stream
    // delivered and acknowledged every message (a duplicate task would come before its ack).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let consumer: async_nats::jetstream::consumer::PullConsumer = js
            .get_stream(&stream)
            .await
            .unwrap()
            .get_consumer("oclaw-order-handler-0")
            .await
            .unwrap();
        let info = consumer.cached_info();
        if info.num_pending == 0
            && info.num_ack_pending == 0
            && info.delivered.stream_sequence >= 30
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replay did not finish: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_after = tasks(&node.url).await;
    assert_eq!(
        all_after.len(),
        30,
        "duplicates after a replay: {}",
        all.len()
    );
    let mut orders: Vec<i64> = all_after
        .iter()
        .map(|t| t["input"]["data"]["payload"]["order"].as_i64().unwrap())
        .collect();
    orders.sort();
    assert_eq!(orders, (1..=30).collect::<Vec<_>>());
    let metrics = common::metrics_text(&node.url).await;
    assert!(metrics.contains("oclaw_channel_messages_total{channel=\"nats\",event=\"received\"}"));
    // This node read the 10 messages published while it was down (and replayed the rest).
    common::assert_channel_telemetry(
        &node.url,
        "nats",
        common::ChannelCounts {
            received: 10.0,
            ..Default::default()
        },
    )
    .await;
    js.delete_stream(&stream).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_nats_triggers_and_missing_connections_stop_the_node_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], config: &str| {
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, config).unwrap();
        let out = common::oclaw()
            .args(args)
            .arg(&p)
            .env(
                "OCLAW_STORAGE__URL",
                format!("sqlite://{}", dir.path().join("o.db").display()),
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        (out.status.success(), text)
    };
    let (ok, text) = run(
        &["config", "validate"],
        "bots:\n  - metadata: {name: x}\n    spec:\n      triggers: [{nats: {subject: \"a..b\"}}]\n",
    );
    assert!(!ok);
    assert!(text.contains("OC-1008") && text.contains("a..b"), "{text}");
    let (ok, text) = run(
        &["serve", "--listen", "127.0.0.1:0", "--config"],
        "bots:\n  - metadata: {name: x}\n    spec:\n      triggers: [{nats: {subject: orders}}]\n",
    );
    assert!(!ok);
    assert!(
        text.contains("OC-1004") && text.contains("channels.nats"),
        "{text}"
    );
}

/// A nats-server with JetStream of the test's own, on `port`, keeping its data in `dir` (so
/// a restart finds its streams).
fn private_nats(port: u16, dir: &std::path::Path) -> common::PrivateServer {
    let dir = dir.display().to_string();
    common::PrivateServer::start(
        "nats-server",
        &[
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-sd",
            &dir,
        ],
        port,
    )
}

/// Publishes an order (retrying while the server is away) and waits for its reply.
async fn order_round_trip(url: &str, prefix: &str, order: i64) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        assert!(Instant::now() < deadline, "no reply to order {order}");
        let Ok(nc) = async_nats::connect(url).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let js = async_nats::jetstream::new(nc.clone());
        let mut replies = nc
            .subscribe(format!("{prefix}.orders.processed"))
            .await
            .unwrap();
        nc.flush().await.unwrap();
        let published = js
            .publish(
                format!("{prefix}.orders.created"),
                json!({"order": order, "qty": 1}).to_string().into(),
            )
            .await;
        let Ok(ack) = published else { continue };
        if ack.await.is_err() {
            continue;
        }
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            match tokio::time::timeout(Duration::from_secs(1), replies.next()).await {
                Ok(Some(m)) => {
                    let v: Value = serde_json::from_slice(&m.payload).unwrap();
                    if v["order"] == order {
                        return;
                    }
                }
                _ => continue,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_reconnects_when_the_nats_server_restarts() {
    if server().is_none() {
        return;
    }
    let port = common::free_port();
    let store = tempfile::tempdir().unwrap();
    let nats_server = || private_nats(port, store.path());
    let mut nats = nats_server();
    let url = format!("nats://127.0.0.1:{port}");
    let u = unique();
    let prefix = format!("oclawr{u}");
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), &config(&url, &format!("OCLAWR{u}"), &prefix));
    order_round_trip(&url, &prefix, 1).await;
    drop(nats);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nats = nats_server();
    order_round_trip(&url, &prefix, 2).await;
    drop(nats);
    let orders: std::collections::BTreeSet<i64> = tasks(&node.url)
        .await
        .iter()
        .filter_map(|t| t["input"]["data"]["payload"]["order"].as_i64())
        .collect();
    assert_eq!(orders, [1, 2].into_iter().collect());
}

/// A reply is a durable task of its own: the NATS server goes away while the bot works, the
/// delivery fails and is retried (OC-4021 on it), and once the server is back the reply is
/// published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_waits_for_the_nats_server_to_come_back() {
    if server().is_none() {
        return;
    }
    let port = common::free_port();
    let store = tempfile::tempdir().unwrap();
    let nats_server = || private_nats(port, store.path());
    let nats = nats_server();
    let url = format!("nats://127.0.0.1:{port}");
    let u = unique();
    let prefix = format!("oclawd{u}");
    // The bot takes a second, time enough to stop the server under it.
    let slow = config(&url, &format!("OCLAWD{u}"), &prefix).replace(
        "      steps:\n",
        "      steps:\n        - {id: think, uses: sleep, with: {duration: 1s}}\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), &slow);
    let nc = async_nats::connect(url.as_str()).await.unwrap();
    let js = async_nats::jetstream::new(nc.clone());
    let deadline = Instant::now() + Duration::from_secs(15);
    while js.get_stream(format!("OCLAWD{u}")).await.is_err() {
        assert!(Instant::now() < deadline, "no stream: {}", node.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    js.publish(
        format!("{prefix}.orders.created"),
        json!({"order": 5, "qty": 2}).to_string().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while tasks(&node.url).await.is_empty() {
        assert!(Instant::now() < deadline, "no task: {}", node.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(nc);
    drop(nats);
    // The delivery fails while the server is away, and waits for its next attempt.
    let deliveries = |base: String| async move {
        let (_, v) = common::get(
            &common::client(),
            &format!("{base}/v1/tasks?bot=oclaw.reply"),
        )
        .await;
        v["items"].as_array().cloned().unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(40);
    let failed = loop {
        let d = deliveries(node.url.clone()).await;
        if let Some(t) = d.iter().find(|t| t["error"]["code"].is_string()) {
            break t.clone();
        }
        assert!(Instant::now() < deadline, "no failed delivery: {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        failed["input"]["reply_to"]["nats"]["subject"],
        format!("{prefix}.orders.processed")
    );
    let code = failed["error"]["code"].as_str().unwrap();
    assert!(code == "OC-4021" || code == "OC-4020", "{failed}");
    // The server comes back: the reply arrives.
    let _nats = nats_server();
    let nc = async_nats::connect(url.as_str()).await.unwrap();
    let mut replies = nc
        .subscribe(format!("{prefix}.orders.processed"))
        .await
        .unwrap();
    nc.flush().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(60), replies.next())
        .await
        .unwrap_or_else(|_| panic!("no reply: {}", node.logs()))
        .unwrap();
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(v, json!({"order": 5, "total": 20}));
    let d = deliveries(node.url.clone()).await;
    assert_eq!(d.len(), 1, "one delivery task: {d:?}");
}

//! `oclaw bench http`: load on `POST /v1/tasks` (or `/v1/tasks/batch`) of a node — an embedded
//! node started in this process on a free loopback port, or any node given by URL. Open loop at a
//! fixed rate (latency counted from each request's scheduled send time, so a stalled server is
//! not hidden), or closed loop (`--rate 0`) to find the maximum sustained rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oclaw_core::config::NodeConfig;
use tokio::sync::{oneshot, Semaphore};

pub struct HttpBenchOptions {
    /// Requests per second; 0 = as fast as `connections` allow.
    pub rate: u64,
    pub duration: Duration,
    pub connections: usize,
    /// Tasks per request: 1 uses `POST /v1/tasks`, more uses `POST /v1/tasks/batch`.
    pub batch: usize,
    /// A running node; `None` starts an embedded one.
    pub server: Option<String>,
    /// Tasks pre-loaded to come due when the load starts (a drain under the requests).
    pub backlog: usize,
}

/// Pre-loads `n` `hello` tasks due at one instant a little after the pre-load ends, and waits
/// for that instant.
async fn preload_backlog(client: &reqwest::Client, base: &str, n: usize) -> Result<(), String> {
    // Time enough to send the batches (the batch API takes tens of thousands per second).
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(1000 + n as i64 / 10);
    let one = serde_json::json!({"bot": "hello", "input": {"name": "backlog"}, "run_at": due});
    let mut left = n;
    while left > 0 {
        let k = left.min(1000);
        let r = client
            .post(format!("{base}/v1/tasks/batch"))
            .json(&serde_json::json!({ "tasks": vec![one.clone(); k] }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("pre-load: {}", r.text().await.unwrap_or_default()));
        }
        left -= k;
    }
    let wait = (due - chrono::Utc::now()).to_std().unwrap_or_default();
    if wait.is_zero() {
        return Err("the backlog's pre-load ran past its due time; use a smaller --backlog".into());
    }
    tokio::time::sleep(wait).await;
    Ok(())
}

/// Tasks still waiting or running on the node (`GET /v1/queues`).
async fn waiting(client: &reqwest::Client, base: &str) -> u64 {
    let Ok(r) = client.get(format!("{base}/v1/queues")).send().await else {
        return 0;
    };
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    let queues = v.get("queues").unwrap_or(&v);
    queues.as_array().map_or(0, |qs| {
        qs.iter()
            .map(|q| {
                ["queued", "scheduled", "running"]
                    .iter()
                    .filter_map(|k| q.get(*k)?.as_u64())
                    .sum::<u64>()
            })
            .sum()
    })
}

struct Sample {
    latency: Duration,
    ok: bool,
}

use crate::drain::percentile;

async fn send(client: &reqwest::Client, url: &str, body: &str) -> bool {
    match client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
    {
        Ok(r) => {
            let ok = r.status().is_success();
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

pub async fn http(o: HttpBenchOptions) -> Result<String, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut stop: Option<oneshot::Sender<()>> = None;
    let mut node = None;
    let base = match &o.server {
        Some(s) => s.trim_end_matches('/').to_string(),
        None => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            let mut config = NodeConfig::default();
            config.api.listen = format!("127.0.0.1:{port}");
            config.storage.url = format!("sqlite://{}", dir.path().join("bench.db").display());
            let (tx, rx) = oneshot::channel::<()>();
            stop = Some(tx);
            let opts = oclaw_node::ServeOptions {
                config,
                components: oclaw_node::Components::ALL,
                node_id: None,
                config_file: "<bench>".into(),
                banner: false,
            };
            node = Some(tokio::spawn(oclaw_node::serve(opts, async move {
                let _ = rx.await;
            })));
            let base = format!("http://127.0.0.1:{port}");
            let probe = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            while probe
                .get(format!("{base}/readyz"))
                .send()
                .await
                .map(|r| !r.status().is_success())
                .unwrap_or(true)
            {
                if Instant::now() > deadline {
                    return Err("the embedded node did not become ready".into());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            base
        }
    };
    let (url, body) = if o.batch > 1 {
        let one = r#"{"bot": "hello", "input": {"name": "bench"}}"#;
        (
            format!("{base}/v1/tasks/batch"),
            format!(r#"{{"tasks": [{}]}}"#, vec![one; o.batch].join(",")),
        )
    } else {
        (
            format!("{base}/v1/tasks"),
            r#"{"bot": "hello", "input": {"name": "bench"}}"#.to_string(),
        )
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(o.connections)
        .build()
        .map_err(|e| e.to_string())?;
    if o.backlog > 0 {
        preload_backlog(&client, &base, o.backlog).await?;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    let started = Instant::now();
    if o.rate == 0 {
        let mut workers = Vec::new();
        for _ in 0..o.connections {
            let (client, url, body, tx) = (client.clone(), url.clone(), body.clone(), tx.clone());
            let end = started + o.duration;
            workers.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let t0 = Instant::now();
                    let ok = send(&client, &url, &body).await;
                    let _ = tx.send(Sample {
                        latency: t0.elapsed(),
                        ok,
                    });
                }
            }));
        }
        for w in workers {
            let _ = w.await;
        }
    } else {
        let slots = Arc::new(Semaphore::new(o.connections));
        let total = (o.rate as f64 * o.duration.as_secs_f64()) as u64;
        let mut handles = Vec::with_capacity(total as usize);
        for i in 0..total {
            let scheduled = started + Duration::from_secs_f64(i as f64 / o.rate as f64);
            tokio::time::sleep_until(scheduled.into()).await;
            let permit = slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| e.to_string())?;
            let (client, url, body, tx) = (client.clone(), url.clone(), body.clone(), tx.clone());
            handles.push(tokio::spawn(async move {
                let ok = send(&client, &url, &body).await;
                let _ = tx.send(Sample {
                    latency: scheduled.elapsed(),
                    ok,
                });
                drop(permit);
            }));
        }
        for h in handles {
            let _ = h.await;
        }
    }
    let elapsed = started.elapsed();
    let backlog_note = if o.backlog > 0 {
        format!(
            "\nbacklog: {} tasks due when the load started; {} tasks waiting or running when it ended",
            o.backlog,
            waiting(&client, &base).await
        )
    } else {
        String::new()
    };
    drop(tx);
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    while let Some(s) = rx.recv().await {
        if !s.ok {
            errors += 1;
        }
        latencies.push(s.latency);
    }
    if let Some(tx) = stop {
        let _ = tx.send(());
    }
    if let Some(n) = node {
        let _ = n.await;
    }
    latencies.sort();
    let n = latencies.len() as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(format!(
        "http: {} {} requests in {:.1}s ({}, {} connections) = {:.0} requests/s = {:.0} tasks/s, {} errors\n\
         latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms{}",
        latencies.len(),
        if o.batch > 1 { format!("POST /v1/tasks/batch ({} tasks each)", o.batch) } else { "POST /v1/tasks".into() },
        elapsed.as_secs_f64(),
        if o.rate == 0 { "closed loop".to_string() } else { format!("open loop at {}/s", o.rate) },
        o.connections,
        n / elapsed.as_secs_f64(),
        n * o.batch as f64 / elapsed.as_secs_f64(),
        errors,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        backlog_note,
    ))
}

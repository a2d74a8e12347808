//! `oclaw bench resume`: how soon a durable agent run goes on after its node is killed with
//! SIGKILL. An `oclaw serve` process runs an agent against a stand-in model in this process:
//! the first model turn asks for a tool, the tool runs, the second turn hangs; the node is
//! killed then and started again on the same store, and the time from that start to the
//! resumed run's next model request is measured (with the part the process needs to start,
//! read from its banner). Each round uses a fresh store.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct ResumeOptions {
    pub rounds: usize,
}

/// Model requests as they arrive: when, and which turn of the run (1-based).
#[derive(Default)]
struct Seen {
    turns: Vec<(Instant, usize)>,
}

fn sse(chunks: &[Value]) -> String {
    let mut s: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    s.push_str("data: [DONE]\n\n");
    s
}

/// The stand-in model: turn 1 asks for the `lookup` tool, turn 2 hangs (the node is killed
/// meanwhile) unless the run already has an answer pending, any later turn answers.
async fn stand_in(seen: Arc<Mutex<Seen>>) -> Result<String, String> {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                // The turn is one more than the assistant messages the request carries.
                let turn = 1 + v["messages"]
                    .as_array()
                    .map(|m| m.iter().filter(|m| m["role"] == "assistant").count())
                    .unwrap_or(0);
                let first_of_turn = {
                    let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                    let first = !s.turns.iter().any(|(_, t)| *t == turn);
                    s.turns.push((Instant::now(), turn));
                    first
                };
                let stop = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
                let usage = json!({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 3}});
                let body = match turn {
                    1 => sse(&[
                        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"value\": \"x\"}"}}]}}]}),
                        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
                        usage,
                    ]),
                    2 if first_of_turn => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        String::new()
                    }
                    _ => sse(&[
                        json!({"choices": [{"index": 0, "delta": {"content": "done"}}]}),
                        stop,
                        usage,
                    ]),
                };
                ([("content-type", "text/event-stream")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// Starts `oclaw serve` and waits for its banner: the child, its API address, and how long
/// the start took.
fn start(
    dir: &std::path::Path,
    config: &std::path::Path,
) -> Result<(Child, String, Duration), String> {
    let started = Instant::now();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .current_dir(dir)
        .env(
            "OCLAW_STORAGE__URL",
            format!("sqlite://{}", dir.join("resume.db").display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start oclaw serve: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(rest) = line.trim().strip_prefix("health") {
            let url = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_end_matches("/healthz")
                .to_string();
            std::thread::spawn(move || for _ in lines {});
            return Ok((child, url, started.elapsed()));
        }
    }
    let _ = child.kill();
    Err("oclaw serve exited before its banner".into())
}

async fn wait_turn(seen: &Arc<Mutex<Seen>>, turn: usize, count: usize) -> Result<Instant, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        {
            let s = seen.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, _)) = s.turns.iter().filter(|(_, t)| *t == turn).nth(count - 1) {
                return Ok(*at);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("model turn {turn} (#{count}) never came"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One round: (restart → next model request, restart → banner).
async fn round() -> Result<(Duration, Duration), String> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let model = stand_in(seen.clone()).await?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = dir.path().join("oclaw.yaml");
    std::fs::write(
        &config,
        format!(
            "telemetry: {{log_level: error}}\n\
             llm:\n  providers:\n    local: {{kind: openai, base_url: \"{model}/v1\"}}\n  default: local/m\n\
             bots:\n  - metadata: {{name: resume-agent}}\n    spec:\n      steps:\n        - uses: agent\n          with:\n            prompt: look it up\n            tools: [{{uses: template, name: lookup, description: Looks a value up.}}]\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let (mut first, url, _) = start(dir.path(), &config)?;
    let answer = reqwest::Client::new()
        .post(format!("{url}/v1/tasks"))
        .json(&json!({"bot": "resume-agent", "input": {}}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        let _ = first.kill();
        return Err(format!("submitting: {}", answer.status()));
    }
    // The second turn is in flight (its tool call done and checkpointed): kill the node.
    let waited = wait_turn(&seen, 2, 1).await;
    let _ = first.kill();
    let _ = first.wait();
    waited?;
    let restarted = Instant::now();
    let (mut second, _, ready) = start(dir.path(), &config)?;
    let next = wait_turn(&seen, 2, 2).await;
    let _ = second.kill();
    let _ = second.wait();
    let turns: Vec<usize> = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .turns
        .iter()
        .map(|(_, t)| *t)
        .collect();
    if turns.iter().filter(|t| **t == 1).count() != 1 {
        return Err(format!("the first turn was paid again: {turns:?}"));
    }
    Ok((next?.duration_since(restarted), ready))
}

pub async fn resume(o: ResumeOptions) -> Result<String, String> {
    let mut next = Vec::new();
    let mut ready = Vec::new();
    for _ in 0..o.rounds {
        let (n, r) = round().await?;
        next.push(n);
        ready.push(r);
    }
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let p50 = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let list = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", ms(d)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let lines = [
        format!(
            "resume: an agent's node killed with SIGKILL during its second model turn, then started again ({} rounds, SQLite, a fresh store each)",
            o.rounds
        ),
        format!(
            "  restart → next model request: p50 {:.0} ms ({} ms)",
            ms(&p50(&mut next.clone())),
            list(&next)
        ),
        format!(
            "  of which the process start (restart → banner): p50 {:.0} ms ({} ms)",
            ms(&p50(&mut ready.clone())),
            list(&ready)
        ),
        "  the first model turn was not paid again (checked every round)".into(),
    ];
    Ok(lines.join("\n"))
}

//! Faults of the whole process: `kill -9` mid-load loses no acknowledged task; SIGTERM drains
//! cleanly; a broken database or config stops the start with a clear code.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{client, get, oclaw, post, start};

const CONFIG: &str = r#"
worker:
  concurrency: 8
  lease: 30s
bots:
  - metadata: {name: work}
    spec:
      steps:
        - {id: pause, uses: sleep, with: {duration: 50ms}}
        - {id: mark, uses: kv.set, with: {key: "done-{{ input.i }}", value: "{{ input.i }}"}}
"#;

/// A bot whose tasks tell `recorder` when they start, then take 700 ms.
fn with_slow_bot(recorder: &str) -> String {
    format!(
        "{CONFIG}  - metadata: {{name: slow}}
    spec:
      allow_private_network: true
      steps:
        - {{id: started, uses: http.request, with: {{method: POST, url: \"{recorder}/started\", body: {{task: \"{{{{ task.id }}}}\"}}}}}}
        - {{id: pause, uses: sleep, with: {{duration: 700ms}}}}
"
    )
}

async fn all_tasks(c: &reqwest::Client, base: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(cur) => format!("{base}/v1/tasks?limit=1000&cursor={cur}"),
            None => format!("{base}/v1/tasks?limit=1000"),
        };
        let (code, page) = get(c, &url).await;
        assert_eq!(code, 200, "{page}");
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_load_loses_no_acknowledged_task() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), CONFIG);
    let c = client();
    let mut acknowledged = Vec::new();
    for i in 0..300 {
        let body =
            format!(r#"{{"bot": "work", "input": {{"i": {i}}}, "idempotency_key": "job-{i}"}}"#);
        let (code, t, _) = post(&c, &format!("{}/v1/tasks", node.url), &body).await;
        assert_eq!(code, 202, "{t}");
        acknowledged.push(t["id"].as_str().unwrap().to_string());
    }
    // Let some finish and some be running, then kill without warning.
    tokio::time::sleep(Duration::from_millis(400)).await;
    node.kill9();

    let node = start(dir.path(), CONFIG);
    let logs_have_recovery = || {
        node.logs()
            .contains("left running by this node's previous run")
    };
    // Re-submitting with the same idempotency keys must not create duplicates.
    for (i, id) in acknowledged.iter().enumerate() {
        let body =
            format!(r#"{{"bot": "work", "input": {{"i": {i}}}, "idempotency_key": "job-{i}"}}"#);
        let (code, t, _) = post(&c, &format!("{}/v1/tasks", node.url), &body).await;
        assert_eq!(
            code, 200,
            "replay of job-{i} should find the existing task: {t}"
        );
        assert_eq!(t["id"].as_str().unwrap(), id);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = all_tasks(&c, &node.url).await;
        let done = tasks.iter().filter(|t| t["status"] == "succeeded").count();
        if done == acknowledged.len() {
            let ids: HashSet<&str> = tasks.iter().map(|t| t["id"].as_str().unwrap()).collect();
            assert_eq!(ids.len(), tasks.len(), "no task is recorded twice");
            for id in &acknowledged {
                assert!(ids.contains(id.as_str()), "acknowledged task {id} is gone");
            }
            assert_eq!(tasks.len(), 300);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {done} of 300 finished after restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        logs_have_recovery(),
        "the restart should requeue the killed run's tasks at once"
    );
}

/// Submits `n` tasks of `bot` (input `{i}`) and answers their ids.
async fn submit(c: &reqwest::Client, base: &str, bot: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let (_, t, _) = post(
            c,
            &format!("{base}/v1/tasks"),
            &format!(r#"{{"bot": "{bot}", "input": {{"i": {i}}}}}"#),
        )
        .await;
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_running_tasks_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = common::recorder().await;
    let config = with_slow_bot(&recorder.url);
    let mut node = start(dir.path(), &config);
    let c = client();
    let ids = submit(&c, &node.url, "work", 100).await;
    // Slow tasks too, so some are surely running when SIGTERM comes: wait until they are.
    let slow = submit(&c, &node.url, "slow", 20).await;
    // Running means its steps started (a claimed task waiting for a slot is `running` in the
    // store too, and is handed back on SIGTERM): the recorder hears from those.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let running: Vec<String> = loop {
        let ids: Vec<String> = recorder
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| body["task"].as_str().unwrap().to_string())
            .collect();
        if !ids.is_empty() {
            break ids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no slow task ever ran"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let status = node.terminate();
    assert!(status.success(), "exit status {status:?}\n{}", node.logs());
    assert!(node.logs().contains("stopped cleanly"));
    let restarted_at = chrono::Utc::now();
    // After a restart every task finishes: nothing was left stuck in `running`.
    let node = start(dir.path(), &config);
    assert!(
        !node.logs().contains("left running"),
        "a graceful stop leaves no leased tasks behind"
    );
    // The tasks running at SIGTERM were finished by the stopping node, in their first attempt,
    // before the restart — not handed back to run again.
    for id in &running {
        let (_, t) = get(&c, &format!("{}/v1/tasks/{id}", node.url)).await;
        assert_eq!(t["status"], "succeeded", "{t}");
        assert_eq!(t["attempts"], 1, "{t}");
        let finished: chrono::DateTime<chrono::Utc> =
            t["finished_at"].as_str().unwrap().parse().unwrap();
        assert!(finished < restarted_at, "finished after the restart: {t}");
    }
    for id in ids.iter().chain(&slow) {
        common::wait_status(&c, &node.url, id, "succeeded", Duration::from_secs(30)).await;
    }
}

#[test]
fn corrupt_database_stops_the_start_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("oclaw.db");
    std::fs::write(&db, vec![0x42u8; 16384]).unwrap();
    let out = oclaw()
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("OCLAW_STORAGE__URL", format!("sqlite://{}", db.display()))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OC-4002"), "{stderr}");
    // The damaged file is left as it was, for inspection.
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x42u8; 16384]);
}

#[test]
fn listening_beyond_loopback_without_tokens_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = oclaw()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env(
            "OCLAW_STORAGE__URL",
            format!("sqlite://{}", dir.path().join("x.db").display()),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without API tokens"));
}

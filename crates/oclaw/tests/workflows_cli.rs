//! The order-flow example end to end on the real binary, through the CLI: its approval shows in
//! `oclaw approval list`, the node is killed (-9) while the task waits and again right after the
//! approval, the decision and the delivered event move it on, the child bot makes the invoice
//! once, and `task retry --from-step` re-runs only the last step.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{client, get, post, start, wait_status};
use serde_json::{json, Value};

use common::cli;

async fn pending_approvals(url: &str) -> Vec<Value> {
    let (code, out, err) = cli(url, &["approval", "list", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let page: Value = serde_json::from_str(&out).unwrap();
    page["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_example_waits_survives_kills_and_finishes_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    // No bots configured: the built-in examples, order-flow and invoice-maker among them.
    let mut node = start(dir.path(), "{}\n");
    let c = client();
    let order = json!({"bot": "order-flow", "input": {"order": "O-1", "items": [
        {"sku": "A-101", "qty": 1}, {"sku": "A-100", "qty": 2}]}});
    let (code, task, _) = post(&c, &format!("{}/v1/tasks", node.url), &order.to_string()).await;
    assert_eq!(code, 202, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    let t = wait_status(&c, &node.url, &id, "waiting", Duration::from_secs(30)).await;
    assert!(t["worker"].is_null());
    let approvals = pending_approvals(&node.url).await;
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    let approval = approvals[0]["id"].to_string();
    assert_eq!(approvals[0]["task_id"], id.as_str());
    assert_eq!(
        approvals[0]["detail"]["message"],
        "Order O-1 totals 178.0 EUR: approve?"
    );
    let (code, shown, _) = cli(&node.url, &["task", "get", &id]);
    assert_eq!(code, 0);
    assert!(shown.contains("waits for: approval"), "{shown}");
    assert!(shown.contains("steps done: lookup\n"), "{shown}");
    let (code, table, _) = cli(&node.url, &["approval", "list"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("order-flow") && table.contains("Order O-1"),
        "{table}"
    );
    let (_, queues, _) = cli(&node.url, &["queue", "list"]);
    let header: Vec<&str> = queues.lines().next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = queues
        .lines()
        .find(|l| l.starts_with("default"))
        .unwrap()
        .split_whitespace()
        .collect();
    let waiting = header.iter().position(|h| *h == "WAITING").unwrap();
    assert_eq!(row[waiting], "1", "{queues}");

    // Killed while the task waits: nothing is lost.
    node.kill9();
    let mut node = start(dir.path(), "{}\n");
    assert_eq!(pending_approvals(&node.url).await.len(), 1);

    let (code, out, err) = cli(
        &node.url,
        &[
            "approval",
            "approve",
            &approval,
            "--as",
            "ops",
            "--comment",
            "fine",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("approved"), "{out}");
    // Killed right after the approval, before the next step ran.
    node.kill9();
    let node = start(dir.path(), "{}\n");
    let t = wait_status(&c, &node.url, &id, "waiting", Duration::from_secs(30)).await;
    let waits = t["waits"].as_array().unwrap();
    let delivery = waits.iter().find(|w| w["status"] == "pending").unwrap();
    assert_eq!(delivery["kind"], "event");
    assert_eq!(delivery["key"], "O-1");
    // A second decision on the decided approval is refused.
    let (code, _, err) = cli(&node.url, &["approval", "reject", &approval, "--as", "ops"]);
    assert_ne!(code, 0);
    assert!(err.contains("OC-2020"), "{err}");

    // An event for another order wakes nobody and is kept.
    let (code, out, _) = cli(
        &node.url,
        &["event", "send", "parcel.delivered", "--key", "O-2"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("no task waits"), "{out}");
    let (code, out, err) = cli(
        &node.url,
        &[
            "event",
            "send",
            "parcel.delivered",
            "--key",
            "O-1",
            "--data",
            r#"{"at": "2026-12-06T10:00:00Z"}"#,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("woke {id}")), "{out}");
    let t = wait_status(&c, &node.url, &id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(
        t["output"],
        json!({"order": "O-1", "status": "invoiced", "total": 178.0, "approved_by": "ops",
               "delivered_at": "2026-12-06T10:00:00Z", "invoice": "INV-O-1"})
    );
    let (_, invoices) = get(&c, &format!("{}/v1/tasks?bot=invoice-maker", node.url)).await;
    assert_eq!(
        invoices["items"].as_array().unwrap().len(),
        1,
        "the child ran once: {invoices}"
    );
    let (_, a) = get(&c, &format!("{}/v1/approvals/{approval}", node.url)).await;
    assert_eq!(a["decisions"].as_array().unwrap().len(), 1, "{a}");
    assert_eq!(a["decisions"][0]["by"], "ops");
    assert_eq!(a["decisions"][0]["comment"], "fine");

    // Re-run the last step only: the approval, the wait and the child are not repeated.
    let (code, out, err) = cli(&node.url, &["task", "retry", &id, "--from-step", "summary"]);
    assert_eq!(code, 0, "{out}{err}");
    let t = wait_status(&c, &node.url, &id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(t["output"]["invoice"], "INV-O-1");
    let (_, invoices) = get(&c, &format!("{}/v1/tasks?bot=invoice-maker", node.url)).await;
    assert_eq!(invoices["items"].as_array().unwrap().len(), 1);
    assert!(pending_approvals(&node.url).await.is_empty());
    let (code, _, err) = cli(&node.url, &["task", "retry", &id, "--from-step", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("OC-2021") && err.contains("summary"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_decide_a_named_approval_and_every_decision_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
bots:
  - apiVersion: oclaw.io/v1
    kind: Bot
    metadata: {name: refund}
    spec:
      steps:
        - id: ok
          approval: {message: "Refund {{ input.amount }}?", approvers: [ann, bob]}
"#;
    let node = start(dir.path(), config);
    let c = client();
    let (_, task, _) = post(
        &c,
        &format!("{}/v1/tasks", node.url),
        r#"{"bot": "refund", "input": {"amount": 5}}"#,
    )
    .await;
    let id = task["id"].as_str().unwrap().to_string();
    wait_status(&c, &node.url, &id, "waiting", Duration::from_secs(30)).await;
    let approval = pending_approvals(&node.url).await[0]["id"].to_string();
    let (code, _, err) = cli(
        &node.url,
        &["approval", "approve", &approval, "--as", "eve"],
    );
    assert_ne!(code, 0);
    assert!(err.contains("OC-2019"), "{err}");
    let (code, body, _) = post(
        &c,
        &format!("{}/v1/approvals/{approval}/approve", node.url),
        "{}",
    )
    .await;
    assert_eq!(code, 400, "who decides is required: {body}");
    let (code, _, _) = post(&c, &format!("{}/v1/events", node.url), r#"{"name": "x"}"#).await;
    assert_eq!(code, 400);
    let (code, _) = get(&c, &format!("{}/v1/approvals/99999", node.url)).await;
    assert_eq!(code, 404);
    let (code, _, err) = cli(
        &node.url,
        &[
            "approval",
            "reject",
            &approval,
            "--as",
            "bob",
            "--comment",
            "no",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let t = wait_status(&c, &node.url, &id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(t["output"]["approved"], false);
    assert_eq!(t["output"]["by"], "bob");
    let (_, a) = get(&c, &format!("{}/v1/approvals/{approval}", node.url)).await;
    let decisions = a["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 2, "the refusal is recorded: {a}");
    assert_eq!(decisions[0]["by"], "eve");
    assert_eq!(decisions[0]["allowed"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_keeps_deadlines_of_durable_sleeps_and_waits() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
scheduler: {interval: 60s}
bots:
  - apiVersion: oclaw.io/v1
    kind: Bot
    metadata: {name: nap}
    spec:
      steps:
        - {id: rest, sleep: 1s}
        - {id: late, wait: {event: never, key: "{{ input.k }}", timeout: 1s, on_timeout: continue}}
        - {id: strict, wait: {event: never, key: "{{ input.k }}", timeout: 1s}}
"#;
    let node = start(dir.path(), config);
    let c = client();
    let (_, task, _) = post(
        &c,
        &format!("{}/v1/tasks", node.url),
        r#"{"bot": "nap", "input": {"k": 1}}"#,
    )
    .await;
    let id = task["id"].as_str().unwrap().to_string();
    wait_status(&c, &node.url, &id, "waiting", Duration::from_secs(30)).await;
    // The scheduler's interval is a minute: only a wake-up at the deadline finishes this soon.
    let t = wait_status(&c, &node.url, &id, "failed", Duration::from_secs(20)).await;
    assert_eq!(t["error"]["code"], "OC-4041", "{t}");
    let waits = t["waits"].as_array().unwrap();
    assert_eq!(waits.len(), 3, "{waits:?}");
    assert!(
        waits.iter().all(|w| w["status"] == "timed_out"),
        "{waits:?}"
    );
    let late = t["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["step"] == "late")
        .unwrap();
    assert!(late["output"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_for_one_key_runs_once_with_the_last_input() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
bots:
  - apiVersion: oclaw.io/v1
    kind: Bot
    metadata: {name: sync-door}
    spec:
      debounce: {key: "{{ input.door }}", window: 400ms}
      steps:
        - {id: out, uses: template, with: {value: "{{ input.door }}={{ input.state }}"}}
"#;
    let node = start(dir.path(), config);
    let c = client();
    let mut codes = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for (door, state) in [
        ("front", "open"),
        ("front", "closed"),
        ("back", "open"),
        ("front", "locked"),
    ] {
        let body = json!({"bot": "sync-door", "input": {"door": door, "state": state}}).to_string();
        let (code, t, _) = post(&c, &format!("{}/v1/tasks", node.url), &body).await;
        codes.push(code);
        ids.insert(t["id"].as_str().unwrap().to_string());
    }
    assert_eq!(
        codes,
        vec![202, 200, 202, 200],
        "folded submissions answer 200 with the pending task"
    );
    assert_eq!(ids.len(), 2, "one task per door");
    let mut outputs = Vec::new();
    for id in &ids {
        let t = wait_status(&c, &node.url, id, "succeeded", Duration::from_secs(20)).await;
        outputs.push(t["output"].as_str().unwrap().to_string());
    }
    outputs.sort();
    assert_eq!(outputs, vec!["back=open", "front=locked"]);
}

/// A stand-in for the service a crawl calls: answers `{}` to each request after `delay`, and
/// records each request's path when it arrives.
async fn slow_sink(delay: Duration) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(path);
                tokio::time::sleep(delay).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                    .await;
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_half_done_when_its_node_is_killed_finishes_without_redoing_finished_items() {
    let (sink, seen) = slow_sink(Duration::from_millis(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
bots:
  - apiVersion: oclaw.io/v1
    kind: Bot
    metadata: {{name: crawl}}
    spec:
      allow_private_network: true
      steps:
        - id: pages
          for_each: "{{{{ input.pages }}}}"
          concurrency: 2
          uses: http.request
          with: {{url: "{sink}/page/{{{{ item }}}}", timeout: 5s}}
"#
    );
    let mut node = start(dir.path(), &config);
    let c = client();
    let pages: Vec<u32> = (0..40).collect();
    let body = json!({"bot": "crawl", "input": {"pages": pages}}).to_string();
    let (code, task, _) = post(&c, &format!("{}/v1/tasks", node.url), &body).await;
    assert_eq!(code, 202, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    // Kill once some, not all, items are done.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < 8 {
        assert!(std::time::Instant::now() < deadline, "no item ran");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    node.kill9();
    let before = seen.lock().unwrap().len();
    assert!(before < 40, "the kill landed half-way ({before} calls)");
    let node = start(dir.path(), &config);
    let t = wait_status(&c, &node.url, &id, "succeeded", Duration::from_secs(60)).await;
    assert_eq!(t["output"].as_array().unwrap().len(), 40);
    let mut counts = std::collections::BTreeMap::new();
    for p in seen.lock().unwrap().iter() {
        *counts.entry(p.clone()).or_insert(0u32) += 1;
    }
    assert_eq!(counts.len(), 40, "every item ran: {counts:?}");
    // At least once: only the items in flight at the kill (at most `concurrency`) ran twice;
    // every item finished before it kept its checkpoint.
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.len() <= 2,
        "only in-flight items repeat: {repeated:?} (killed after {before} calls)"
    );
}

//! `oclaw serve` as a real process: submit tasks over HTTP, read results, and every input error.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::{client, get, post, start, wait_status};
use serde_json::json;

const CONFIG: &str = r#"
worker:
  concurrency: 4
queues:
  tiny: {capacity: 2}
api:
  max_body_bytes: 4096
  body_timeout: 300ms
bots:
  - metadata: {name: hello}
    spec:
      steps:
        - id: greet
          uses: template
          with: {value: {greeting: "Hello, {{ input.name }}!"}}
  - metadata: {name: parked}
    spec:
      queue: tiny
      steps: [{uses: log, with: {message: parked}}]
  - metadata: {name: broken}
    spec:
      steps: [{uses: transform, with: {jq: '.a + 1'}}]
      retry: {max_attempts: 1}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_run_and_read_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), CONFIG);
    let c = client();
    let (code, body) = get(&c, &format!("{}/healthz", node.url)).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("ok")));
    let (code, body) = get(&c, &format!("{}/readyz", node.url)).await;
    assert_eq!((code, body["store"].as_str()), (200, Some("sqlite")));

    let (code, task, _) = post(
        &c,
        &format!("{}/v1/tasks", node.url),
        r#"{"bot": "hello", "input": {"name": "Ada"}}"#,
    )
    .await;
    assert_eq!(code, 202, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    assert!(id.starts_with('T'));
    let done = wait_status(&c, &node.url, &id, "succeeded", Duration::from_secs(10)).await;
    assert_eq!(done["output"], json!({"greeting": "Hello, Ada!"}));
    assert_eq!(done["attempts"], 1);

    // Idempotent replay answers 200 with the same task.
    let body = r#"{"bot": "hello", "input": {"name": "Bo"}, "idempotency_key": "order-1"}"#;
    let (first, t1, _) = post(&c, &format!("{}/v1/tasks", node.url), body).await;
    let (second, t2, _) = post(&c, &format!("{}/v1/tasks", node.url), body).await;
    assert_eq!((first, second), (202, 200));
    assert_eq!(t1["id"], t2["id"]);

    // A traceparent header sets the task's trace id.
    let r = c
        .post(format!("{}/v1/tasks", node.url))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(r#"{"bot": "hello", "input": {}}"#)
        .send()
        .await
        .unwrap();
    let t: serde_json::Value = r.json().await.unwrap();
    assert_eq!(t["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    // A failing task is dead after its one attempt, with the jq error's code.
    let (_, bad, _) = post(
        &c,
        &format!("{}/v1/tasks", node.url),
        r#"{"bot": "broken", "input": {"a": "x"}}"#,
    )
    .await;
    let failed = wait_status(
        &c,
        &node.url,
        bad["id"].as_str().unwrap(),
        "failed",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(failed["error"]["code"], "OC-4016");
    // ... and the log has a line about it with the standard fields.
    let logs = node.logs();
    let line = logs
        .lines()
        .find(|l| l.contains(bad["id"].as_str().unwrap()) && l.contains("OC-4016"))
        .unwrap_or_else(|| panic!("no log line for the failed task:\n{logs}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    for field in [
        "timestamp",
        "level",
        "component",
        "task_id",
        "error_code",
        "message",
        "trace_id",
    ] {
        assert!(v.get(field).is_some(), "log line lacks {field}: {line}");
    }
    assert_eq!(v["trace_id"], bad["trace_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_errors_have_codes_and_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), CONFIG);
    let c = client();
    let tasks = format!("{}/v1/tasks", node.url);
    let cases: Vec<(&str, u16, &str)> = vec![
        ("{not json", 400, "OC-2001"),
        // A struct written as an array, which the decoder would take: not an object.
        (r#"["hello", null]"#, 400, "OC-2002"),
        (r#"{"bot": "hello", "inptu": {}}"#, 400, "OC-2002"),
        (r#"{"bot": 7}"#, 400, "OC-2002"),
        (r#"{"bot": "helo"}"#, 404, "OC-2003"),
        (r#"{"bot": "hello", "delay": "soon"}"#, 400, "OC-2002"),
        (r#"{"bot": "hello", "max_attempts": 0}"#, 400, "OC-2002"),
        // Valid, but the node cannot take it as it is: 409, with its own code.
        (
            r#"{"bot": "hello", "queue": "nobody-serves-this"}"#,
            409,
            "OC-2017",
        ),
        // An integer may be written 3.0 (as JSON Schema counts them), not 2.5.
        (r#"{"bot": "hello", "max_attempts": 2.5}"#, 400, "OC-2002"),
        // Where a reply is delivered is the chat platform's to say, not a caller's.
        (
            r#"{"bot": "hello", "input": {"reply_to": {"hook": "/hooks/slack", "to": {}}}}"#,
            400,
            "OC-2002",
        ),
    ];
    for (body, status, code) in cases {
        let (got, err, _) = post(&c, &tasks, body).await;
        assert_eq!(got, status, "{body} → {err}");
        assert_eq!(err["error"]["code"], code, "{body} → {err}");
        assert!(err["error"]["message"].as_str().unwrap().len() > 5);
        assert!(err["trace_id"].is_string(), "{err}");
    }
    let (got, t, _) = post(
        &c,
        &tasks,
        r#"{"bot": "hello", "max_attempts": 3.0, "priority": 2.0}"#,
    )
    .await;
    assert_eq!((got, &t["max_attempts"]), (202, &json!(3)), "{t}");
    // An empty query value is the same as none.
    let (got, page) = get(&c, &format!("{tasks}?status=&bot=&queue=&limit=&cursor=")).await;
    assert_eq!(got, 200, "{page}");
    let (_, unknown, _) = post(&c, &tasks, r#"{"bot": "helo"}"#).await;
    assert!(unknown["error"]["message"]
        .as_str()
        .unwrap()
        .contains("did you mean `hello`"));

    let big = format!(
        r#"{{"bot": "hello", "input": {{"blob": "{}"}}}}"#,
        "x".repeat(10_000)
    );
    let (got, err, _) = post(&c, &tasks, &big).await;
    assert_eq!((got, err["error"]["code"].as_str()), (413, Some("OC-2007")));

    let (got, err) = get(&c, &format!("{}/v1/tasks/T999999", node.url)).await;
    assert_eq!((got, err["error"]["code"].as_str()), (404, Some("OC-2004")));
    let (got, err) = get(&c, &format!("{}/v1/tasks/banana", node.url)).await;
    assert_eq!((got, err["error"]["code"].as_str()), (400, Some("OC-2002")));
    let (got, err) = get(&c, &format!("{}/v1/nothing", node.url)).await;
    assert_eq!((got, err["error"]["code"].as_str()), (404, Some("OC-2010")));

    // A full queue pushes back with 429 and Retry-After; nothing accepted is lost.
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..3 {
        let (got, body, headers) = post(
            &c,
            &tasks,
            &format!(r#"{{"bot": "parked", "input": {{"i": {i}}}, "delay": "1h"}}"#),
        )
        .await;
        match got {
            202 => accepted.push(body["id"].as_str().unwrap().to_string()),
            429 => {
                refused += 1;
                assert_eq!(body["error"]["code"], "OC-2005");
                assert_eq!(headers.get("retry-after").unwrap(), "1");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((accepted.len(), refused), (2, 1));
    for id in &accepted {
        let (code, t) = get(&c, &format!("{}/v1/tasks/{id}", node.url)).await;
        assert_eq!((code, t["status"].as_str()), (200, Some("scheduled")));
    }
    // Cancelling twice conflicts.
    let cancel = format!("{}/v1/tasks/{}/cancel", node.url, accepted[0]);
    let (code, t, _) = post(&c, &cancel, "").await;
    assert_eq!((code, t["status"].as_str()), (200, Some("cancelled")));
    let (code, err, _) = post(&c, &cancel, "").await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (409, Some("OC-2006"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_bots_run_without_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), "");
    let c = client();
    let (code, bots) = get(&c, &format!("{}/v1/bots", node.url)).await;
    assert_eq!(code, 200);
    let names: Vec<&str> = bots["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "alert-handler",
            "catalog-collector",
            "faq-bot",
            "health-monitor",
            "hello",
            "invoice-maker",
            "order-flow",
            "support-inbox"
        ]
    );
    // Run the collector now instead of waiting for its minute.
    let (code, t, _) = post(
        &c,
        &format!("{}/v1/tasks", node.url),
        r#"{"bot": "catalog-collector"}"#,
    )
    .await;
    assert_eq!(code, 202, "{t}");
    let done = wait_status(
        &c,
        &node.url,
        t["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(done["output"]["items"], 3, "{done}");
    assert_eq!(done["output"]["skus"], json!(["A-100", "A-101", "A-103"]));
    // The clean records are searchable, one document per product.
    let (code, kb) = get(&c, &format!("{}/v1/kb/catalog", node.url)).await;
    assert_eq!(code, 200, "{kb}");
    assert_eq!(kb["documents"], 3, "{kb}");
    let (_, found) = get(
        &c,
        &format!("{}/v1/kb/catalog/search?q=office%20chair", node.url),
    )
    .await;
    assert_eq!(found["hits"][0]["document"], "A-101", "{found}");
    assert_eq!(found["hits"][0]["title"], "Office chair", "{found}");
    let (_, m, _) = post(
        &c,
        &format!("{}/v1/tasks", node.url),
        r#"{"bot": "health-monitor"}"#,
    )
    .await;
    let done = wait_status(
        &c,
        &node.url,
        m["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(done["output"]["healthy"], true, "{done}");
    assert_eq!(done["output"]["status"], "healthy", "{done}");
    assert_eq!(done["output"]["alerts"], json!([]), "{done}");
}

/// Parses the Prometheus text format into (series with labels, value).
fn samples(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse::<f64>().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_waits_for_the_result_or_answers_202() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{CONFIG}  - metadata: {{name: slowpoke}}\n    spec:\n      steps: [{{uses: sleep, with: {{duration: 2s}}}}]\n");
    let node = start(dir.path(), &config);
    let c = client();
    let (code, body, _) = post(
        &c,
        &format!("{}/v1/bots/hello/invoke", node.url),
        r#"{"input": {"name": "Cy"}}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["output"], json!({"greeting": "Hello, Cy!"}));
    assert!(body["task_id"].as_str().unwrap().starts_with('T'));

    let (code, body, _) = post(
        &c,
        &format!("{}/v1/bots/slowpoke/invoke?timeout=200ms", node.url),
        "",
    )
    .await;
    // Answered unfinished after 200 ms: running, or still queued on a busy machine.
    assert_eq!(code, 202, "{body}");
    assert!(
        matches!(body["status"].as_str(), Some("queued" | "running")),
        "{body}"
    );
    let (code, body, _) = post(
        &c,
        &format!("{}/v1/bots/slowpoke/invoke?timeout=forever", node.url),
        "",
    )
    .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("OC-2002"))
    );
    let (code, body, _) = post(&c, &format!("{}/v1/bots/nobody/invoke", node.url), "").await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (404, Some("OC-2003"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_the_spec_names_and_move_with_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), CONFIG);
    let c = client();
    for i in 0..5 {
        let (code, _, _) = post(
            &c,
            &format!("{}/v1/bots/hello/invoke", node.url),
            &format!(r#"{{"input": {{"name": "n{i}"}}}}"#),
        )
        .await;
        assert_eq!(code, 200);
    }
    post(
        &c,
        &format!("{}/v1/tasks", node.url),
        r#"{"bot": "parked", "delay": "1h"}"#,
    )
    .await;
    let r = c.get(format!("{}/metrics", node.url)).send().await.unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let s = samples(&text);
    let value = |series: &str| s.iter().find(|(k, _)| k == series).map(|(_, v)| *v);
    for name in [
        "oclaw_api_request_duration_seconds_bucket",
        "oclaw_queue_backlog",
        "oclaw_scheduling_attempts_total",
        "oclaw_scheduling_failures_total",
        "oclaw_node_cpu_utilization_ratio",
        "oclaw_node_memory_utilization_ratio",
        "oclaw_tasks_total",
        "oclaw_task_duration_seconds_count",
        "oclaw_task_wait_seconds_count",
        "oclaw_worker_in_flight",
        "oclaw_worker_concurrency",
        "process_resident_memory_bytes",
    ] {
        assert!(
            s.iter().any(|(k, _)| k.starts_with(name)),
            "missing {name}:\n{text}"
        );
    }
    assert_eq!(
        value(r#"oclaw_tasks_total{bot="hello",outcome="succeeded"}"#),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        value(
            r#"oclaw_api_request_duration_seconds_count{route="/v1/bots/{name}/invoke",method="POST",status="200"}"#
        ),
        Some(5.0)
    );
    assert_eq!(
        value(r#"oclaw_queue_scheduled{queue="tiny"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(r#"oclaw_queue_capacity{queue="tiny"}"#), Some(2.0));
    assert_eq!(value("oclaw_worker_concurrency"), Some(4.0));
    assert!(value("oclaw_scheduling_attempts_total").unwrap() >= 1.0);
    let mem = value("oclaw_node_memory_utilization_ratio").unwrap();
    assert!(mem > 0.0 && mem < 1.0);
    assert!(value("process_resident_memory_bytes").unwrap() > 1e6);
    // No task ids in labels.
    assert!(!text.contains("task_id"), "labels must stay bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_client_drives_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), CONFIG);
    let url = node.url.clone();
    let run = move |args: &[&str]| {
        let out = common::oclaw()
            .args(args)
            .env("OCLAW_SERVER", &url)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let run = std::sync::Arc::new(run);
    let r = run.clone();
    tokio::task::spawn_blocking(move || {
        let (code, out, err) = r(&["bot", "run", "hello", "--input", r#"{"name": "Di"}"#]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("Hello, Di!"), "{out}");

        let (code, out, _) = r(&[
            "task",
            "submit",
            "hello",
            "-i",
            r#"{"name": "Ed"}"#,
            "--wait",
            "-o",
            "json",
        ]);
        assert_eq!(code, Some(0));
        let task: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(task["output"]["greeting"], "Hello, Ed!");
        let id = task["id"].as_str().unwrap().to_string();

        let (code, out, _) = r(&["task", "get", &id]);
        assert_eq!(code, Some(0));
        assert!(out.contains("STATUS") && out.contains("succeeded"), "{out}");

        let (code, out, _) = r(&["task", "list", "--bot", "hello", "-o", "json"]);
        assert_eq!(code, Some(0));
        let page: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 2);

        // Exit codes scripts rely on.
        let (code, _, err) = r(&["task", "get", "T999999"]);
        assert_eq!(code, Some(3), "{err}");
        assert!(err.contains("OC-2004"));
        let (code, _, _) = r(&["task", "cancel", &id]);
        assert_eq!(code, Some(4));
        let (code, _, _) = r(&["task", "submit", "nobody"]);
        assert_eq!(code, Some(3));
        let (code, _, err) = r(&["task", "submit", "hello", "--input", "{broken"]);
        assert_eq!(code, Some(2), "{err}");
        let (code, _, _) = r(&["bot", "run", "broken", "--input", r#"{"a": "x"}"#]);
        assert_eq!(code, Some(6));

        let (code, out, _) = r(&["queue", "list"]);
        assert_eq!(code, Some(0));
        assert!(out.contains("QUEUE") && out.contains("tiny"), "{out}");
        let (code, out, _) = r(&["bot", "list"]);
        assert_eq!(code, Some(0));
        assert!(out.contains("hello") && out.contains("template"), "{out}");
    })
    .await
    .unwrap();

    let out = common::oclaw()
        .args(["task", "list", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
    let out = common::oclaw()
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("oclaw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_is_served_and_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), CONFIG);
    let c = client();
    let (code, doc) = get(&c, &format!("{}/openapi.json", node.url)).await;
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/v1/tasks", "post"),
        ("/v1/tasks", "get"),
        ("/v1/tasks/batch", "post"),
        ("/v1/tasks/{id}", "get"),
        ("/v1/tasks/{id}/cancel", "post"),
        ("/v1/tasks/{id}/retry", "post"),
        ("/v1/bots", "get"),
        ("/v1/bots/{name}", "get"),
        ("/v1/bots/{name}/invoke", "post"),
        ("/v1/queues", "get"),
        ("/v1/cluster/nodes", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "openapi lacks {method} {path}"
        );
    }
    let (code, nodes) = get(&c, &format!("{}/v1/cluster/nodes", node.url)).await;
    assert_eq!(code, 200);
    assert_eq!(
        nodes["items"][0]["components"],
        json!(["api-server", "scheduler", "worker"])
    );
    assert_eq!(nodes["items"][0]["address"], node.url);
    let cli = common::oclaw().args(["docs", "openapi"]).output().unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(printed, doc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_the_api_but_not_health() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(
        dir.path(),
        &CONFIG.replace(
            "api:\n  max_body_bytes: 4096",
            "api:\n  max_body_bytes: 4096\n  tokens: [s3cret-token]",
        ),
    );
    let c = client();
    let (code, err) = get(&c, &format!("{}/v1/tasks", node.url)).await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (401, Some("OC-2008"))
    );
    let r = c
        .get(format!("{}/v1/tasks", node.url))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = c
        .get(format!("{}/v1/tasks", node.url))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (code, _) = get(&c, &format!("{}/healthz", node.url)).await;
    assert_eq!(code, 200);
    let (code, _) = get(&c, &format!("{}/readyz", node.url)).await;
    assert_eq!(code, 200);
    assert!(
        !node.logs().contains("s3cret-token"),
        "tokens never reach the log"
    );
    // The CLI passes the token along.
    let out = common::oclaw()
        .args([
            "task",
            "list",
            "--server",
            &node.url,
            "--token",
            "s3cret-token",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::oclaw()
        .args(["task", "list", "--server", &node.url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_cursors_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), CONFIG);
    let c = client();
    for i in 0..5 {
        post(
            &c,
            &format!("{}/v1/tasks", node.url),
            &format!(r#"{{"bot": "parked", "input": {{"i": {i}}}, "delay": "1h"}}"#),
        )
        .await;
    }
    let (code, page) = get(&c, &format!("{}/v1/tasks?bot=parked&limit=2", node.url)).await;
    assert_eq!(code, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, rest) = get(
        &c,
        &format!("{}/v1/tasks?bot=parked&limit=10&cursor={cursor}", node.url),
    )
    .await;
    assert_eq!(
        rest["items"].as_array().unwrap().len(),
        0,
        "capacity 2 kept the other three out: {rest}"
    );
    let (_, scheduled) = get(&c, &format!("{}/v1/tasks?status=scheduled", node.url)).await;
    assert_eq!(scheduled["items"].as_array().unwrap().len(), 2);
    let (code, err) = get(&c, &format!("{}/v1/tasks?cursor=garbage", node.url)).await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (400, Some("OC-2009"))
    );
    let (code, err) = get(&c, &format!("{}/v1/tasks?status=sleeping", node.url)).await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (400, Some("OC-2002"))
    );
    let (code, err) = get(&c, &format!("{}/v1/tasks?limit=0", node.url)).await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (400, Some("OC-2002"))
    );
    let (code, err) = get(&c, &format!("{}/v1/tasks?colour=red", node.url)).await;
    assert_eq!(
        (code, err["error"]["code"].as_str()),
        (400, Some("OC-2002"))
    );
}

#[test]
fn a_client_that_trickles_its_body_is_cut_off() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), CONFIG);
    let addr = node.url.trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"bot\"").unwrap();
    // The server answers and closes while the body is still 94 bytes short; a server that
    // waited for it would leave this read to end in its own timeout with no answer.
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 4"),
        "no refusal of the slow body: {answer:?}"
    );
    // The node still serves others.
    let ok = common::oclaw()
        .args(["queue", "list", "--server", &node.url])
        .output()
        .unwrap();
    assert!(ok.status.success());
}

/// Bots reload when their files change: new runs take the new definition, a run in flight
/// finishes on the one it started with, a file that does not load leaves the bots as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_reload_when_their_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let bots = dir.path().join("bots");
    std::fs::create_dir(&bots).unwrap();
    let greeter = |say: &str| {
        format!(
            "metadata: {{name: greeter}}\nspec:\n  steps:\n    - {{id: nap, uses: sleep, with: {{duration: \"{{{{ input.nap or '1ms' }}}}\"}}}}\n    - {{id: say, uses: template, with: {{value: {say}}}}}\n"
        )
    };
    std::fs::write(bots.join("greeter.yaml"), greeter("v1")).unwrap();
    let config = format!(
        "bots_dir: {}\nbots_reload_interval: 100ms\n",
        bots.display()
    );
    let node = start(dir.path(), &config);
    let c = client();
    let invoke = |bot: &'static str| {
        let (c, url) = (c.clone(), node.url.clone());
        async move {
            let (code, body, _) = post(
                &c,
                &format!("{url}/v1/bots/{bot}/invoke"),
                r#"{"input": {}}"#,
            )
            .await;
            (code, body)
        }
    };
    assert_eq!(invoke("greeter").await.1["output"], "v1");
    // A run that starts on v1 and is still running when the file changes.
    let (code, slow, _) = post(
        &c,
        &format!("{}/v1/tasks", node.url),
        r#"{"bot": "greeter", "input": {"nap": "2s"}}"#,
    )
    .await;
    assert_eq!(code, 202, "{slow}");
    let slow = slow["id"].as_str().unwrap().to_string();
    wait_status(&c, &node.url, &slow, "running", Duration::from_secs(10)).await;
    std::fs::write(bots.join("greeter.yaml"), greeter("v2")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while invoke("greeter").await.1["output"] != "v2" {
        assert!(
            std::time::Instant::now() < deadline,
            "greeter never reloaded: {}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = wait_status(&c, &node.url, &slow, "succeeded", Duration::from_secs(20)).await;
    assert_eq!(
        done["output"], "v1",
        "a run in flight keeps its definition: {done}"
    );
    // A new bot file is picked up; a broken one is reported and changes nothing.
    std::fs::write(
        bots.join("second.yaml"),
        "metadata: {name: second}\nspec:\n  steps: [{uses: template, with: {value: two}}]\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while invoke("second").await.0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "second never loaded: {}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(
        bots.join("second.yaml"),
        "metadata: {name: second}\nspec:\n  steps: [{uses: templat}]\n",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !node.logs().contains("bots not reloaded") {
        assert!(
            std::time::Instant::now() < deadline,
            "no reload error logged: {}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = node.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("bots not reloaded"))
        .unwrap();
    assert!(
        line.contains("OC-1006") && line.contains("second.yaml:3"),
        "{line}"
    );
    assert_eq!(
        invoke("second").await.1["output"],
        "two",
        "the previous bots stay"
    );
    assert_eq!(invoke("greeter").await.1["output"], "v2");
}

/// The OpenAPI document says what the server accepts and answers: Schemathesis (PyPI, pinned in
/// .ci/install-tools) builds requests from it against a running node — with a fixed seed and a
/// bounded number of examples — and checks for server errors, undocumented status codes and
/// content types, responses that do not match their schemas, and valid requests refused.
/// The channel routes (webhooks, WebSocket) are left out: their bodies are the platforms'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_property_based_tester_finds_the_document_and_the_server_in_agreement() {
    let version = std::process::Command::new("st").arg("--version").output();
    let Ok(version) = version else {
        return common::missing("schemathesis (`st`)").unwrap_or(());
    };
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("4.32.5"),
        "the pinned schemathesis: {}",
        String::from_utf8_lossy(&version.stdout)
    );
    let dir = tempfile::tempdir().unwrap();
    // The built-in examples: their queues are served, so submissions can succeed.
    let node = start(dir.path(), "worker: {concurrency: 4}\n");
    let out = tokio::process::Command::new("st")
        .args(["run", &format!("{}/openapi.json", node.url)])
        .args(["--checks", "all", "--max-examples", "30", "--seed", "1"])
        // Adding a document answers 202 with the ingestion task: the document exists once the
        // task has run, so "a created resource is found at once" does not hold there.
        .args(["--exclude-checks", "ensure_resource_availability"])
        .args(["--exclude-path-regex", "^/(hooks|v1/ws)"])
        .args(["--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found disagreements:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("Tested: 40"),
        "every non-channel route was exercised:\n{report}"
    );
}

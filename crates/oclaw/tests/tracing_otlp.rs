//! Traces over OTLP/HTTP from a real node: a span per API request, per task, per step and per
//! skill call, all in the trace named by the caller's `traceparent`, and propagated to outbound
//! calls. No OpenTelemetry Collector is packaged for this machine; the JSON export goes to a
//! recording HTTP server, the protobuf export (the default) to a receiver that decodes it with
//! the OpenTelemetry project's own message definitions (PyPI `opentelemetry-proto`) — both
//! stand-ins for a collector, which is why the tests' names say so.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{client, recorder, start};
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const WANTED: [&str; 7] = [
    "POST /v1/tasks",
    "task traced",
    "step shape",
    "skill template",
    "step call",
    "skill http.request",
    "GET /healthz",
];

fn config(telemetry: &str) -> String {
    format!(
        r#"
telemetry:
{telemetry}
  service_name: oclaw-test
bots:
  - metadata: {{name: traced}}
    spec:
      allow_private_network: true
      steps:
        - {{id: shape, uses: template, with: {{value: {{n: "{{{{ input.n }}}}"}}}}}}
        - {{id: call, uses: http.request, with: {{url: "{{{{ node.api_url }}}}/healthz"}}}}
"#
    )
}

/// Submits a task in the caller's trace and waits for it; its id.
async fn run_traced(base: &str) -> String {
    let c = client();
    let r = c
        .post(format!("{base}/v1/tasks"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .json(&serde_json::json!({"bot": "traced", "input": {"n": 7}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let task: Value = r.json().await.unwrap();
    assert_eq!(
        task["trace_id"], TRACE,
        "the task carries the caller's trace"
    );
    let id = task["id"].as_str().unwrap().to_string();
    common::wait_status(&c, base, &id, "succeeded", Duration::from_secs(10)).await;
    id
}

/// The trace's spans by name from the export requests (path, OTLP JSON body) `collected` so
/// far, once all of them have arrived.
async fn spans_of(collected: impl Fn() -> Vec<(String, Value)>) -> HashMap<String, Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut spans = HashMap::new();
        for (path, body) in collected() {
            assert_eq!(path, "/v1/traces");
            for rs in body["resourceSpans"].as_array().unwrap() {
                let service = rs["resource"]["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["key"] == "service.name")
                    .map(|a| a["value"]["stringValue"].clone());
                assert_eq!(service, Some(Value::from("oclaw-test")));
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for s in ss["spans"].as_array().unwrap() {
                        if s["traceId"] == TRACE {
                            spans.insert(s["name"].as_str().unwrap().to_string(), s.clone());
                        }
                    }
                }
            }
        }
        if WANTED.iter().all(|w| spans.contains_key(*w)) {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "spans of the trace so far: {:?}",
            spans.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn check(spans: &HashMap<String, Value>, task_id: &str) {
    let id_of = |n: &str| spans[n]["spanId"].as_str().unwrap().to_string();
    let parent_of = |n: &str| spans[n]["parentSpanId"].as_str().map(str::to_string);
    // The API span hangs under the caller's span; steps under the task; skills under steps.
    assert_eq!(parent_of("POST /v1/tasks").as_deref(), Some(CALLER_SPAN));
    assert_eq!(spans["POST /v1/tasks"]["kind"], 2);
    assert_eq!(spans["task traced"]["kind"], 5);
    assert_eq!(parent_of("step shape"), Some(id_of("task traced")));
    assert_eq!(parent_of("step call"), Some(id_of("task traced")));
    assert_eq!(parent_of("skill template"), Some(id_of("step shape")));
    assert_eq!(parent_of("skill http.request"), Some(id_of("step call")));
    assert_eq!(spans["skill http.request"]["kind"], 3);
    // The outbound call carried this trace: the node's own /healthz span is the skill's child.
    assert_eq!(parent_of("GET /healthz"), Some(id_of("skill http.request")));
    // Timing and status are filled in.
    for name in WANTED {
        let s = &spans[name];
        let start: u128 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u128 = s["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(end >= start && start > 0, "{name}");
        assert_eq!(s["status"]["code"], 1, "{name}: {s}");
    }
    let task_attrs = spans["task traced"]["attributes"].as_array().unwrap();
    assert!(task_attrs
        .iter()
        .any(|a| a["key"] == "oclaw.task_id" && a["value"]["stringValue"] == task_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_traced_through_its_steps_and_outbound_calls_to_a_stand_in_collector() {
    let collector = recorder().await;
    let dir = tempfile::tempdir().unwrap();
    let telemetry = format!(
        "  otlp_endpoint: \"{}\"\n  otlp_protocol: http/json",
        collector.url
    );
    let node = start(dir.path(), &config(&telemetry));
    let id = run_traced(&node.url).await;
    let spans = spans_of(|| collector.requests.lock().unwrap().clone()).await;
    check(&spans, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_goes_where_the_standard_variables_say_to_a_stand_in_collector() {
    if std::process::Command::new("python3")
        .args(["-c", "import opentelemetry.proto"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        return common::missing("python3 with opentelemetry-proto (PyPI)").unwrap_or(());
    }
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let received = dir.path().join("received.jsonl");
    let receiver = common::workspace_root().join("crates/oclaw/tests/fixtures/otlp_receiver.py");
    let _receiver = common::PrivateServer::start(
        "python3",
        &[
            &receiver.display().to_string(),
            &port.to_string(),
            &received.display().to_string(),
        ],
        port,
    );
    let storage = format!("sqlite://{}", dir.path().join("oclaw.db").display());
    let endpoint = format!("http://127.0.0.1:{port}");
    let node = common::start_process_env(
        dir.path(),
        &config("  log_format: json"),
        &["serve", "--listen", "127.0.0.1:0"],
        &storage,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=k%3Dsecret-otlp-key"),
        ],
    );
    let id = run_traced(&node.url).await;
    let records = || -> Vec<Value> {
        std::fs::read_to_string(&received)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let spans = spans_of(|| {
        records()
            .into_iter()
            .map(|r| {
                (
                    r["path"].as_str().unwrap().to_string(),
                    r["request"].clone(),
                )
            })
            .collect()
    })
    .await;
    check(&spans, &id);
    for r in records() {
        assert_eq!(r["content_type"], "application/x-protobuf");
        assert_eq!(
            r["api_key"], "k=secret-otlp-key",
            "the header, percent-decoded"
        );
        assert_eq!(
            r["unknown_fields"], 0,
            "every field has its published number and type"
        );
    }
    assert!(
        !node.logs().contains("secret-otlp-key"),
        "header values stay out of the logs"
    );
}

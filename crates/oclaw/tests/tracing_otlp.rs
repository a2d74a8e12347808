//! Traces over OTLP/HTTP (JSON) from a real node: a span per API request, per task, per step and
//! per skill call, all in the trace named by the caller's `traceparent`, and propagated to
//! outbound calls. The collector is a local HTTP server standing in for an OpenTelemetry
//! Collector (none is packaged for this machine); it records what it receives.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{client, recorder, start};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_traced_from_the_request_through_its_steps_and_outbound_calls() {
    let collector = recorder().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start(
        dir.path(),
        &format!(
            r#"
telemetry:
  otlp_endpoint: "{}"
  service_name: oclaw-test
bots:
  - metadata: {{name: traced}}
    spec:
      allow_private_network: true
      steps:
        - {{id: shape, uses: template, with: {{value: {{n: "{{{{ input.n }}}}"}}}}}}
        - {{id: call, uses: http.request, with: {{url: "{{{{ node.api_url }}}}/healthz"}}}}
"#,
            collector.url
        ),
    );
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let c = client();
    let r = c
        .post(format!("{}/v1/tasks", node.url))
        .header("traceparent", format!("00-{trace}-{caller_span}-01"))
        .json(&serde_json::json!({"bot": "traced", "input": {"n": 7}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let task: Value = r.json().await.unwrap();
    assert_eq!(
        task["trace_id"], trace,
        "the task carries the caller's trace"
    );
    let id = task["id"].as_str().unwrap().to_string();
    common::wait_status(&c, &node.url, &id, "succeeded", Duration::from_secs(10)).await;

    // Collect this trace's spans by name until all six have arrived.
    let wanted = [
        "POST /v1/tasks",
        "task traced",
        "step shape",
        "skill template",
        "step call",
        "skill http.request",
        "GET /healthz",
    ];
    let deadline = Instant::now() + Duration::from_secs(15);
    let spans: HashMap<String, Value> = loop {
        let mut spans = HashMap::new();
        for (path, body) in collector.requests.lock().unwrap().iter() {
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
                        if s["traceId"] == trace {
                            spans.insert(s["name"].as_str().unwrap().to_string(), s.clone());
                        }
                    }
                }
            }
        }
        if wanted.iter().all(|w| spans.contains_key(*w)) {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "spans of the trace so far: {:?}",
            spans.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id_of = |n: &str| spans[n]["spanId"].as_str().unwrap().to_string();
    let parent_of = |n: &str| spans[n]["parentSpanId"].as_str().map(str::to_string);
    // The API span hangs under the caller's span; steps under the task; skills under steps.
    assert_eq!(parent_of("POST /v1/tasks").as_deref(), Some(caller_span));
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
    for name in wanted {
        let s = &spans[name];
        let start: u128 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u128 = s["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(end >= start, "{name}");
        assert_eq!(s["status"]["code"], 1, "{name}: {s}");
    }
    let task_attrs = spans["task traced"]["attributes"].as_array().unwrap();
    assert!(task_attrs
        .iter()
        .any(|a| a["key"] == "oclaw.task_id" && a["value"]["stringValue"] == id.as_str()));
}

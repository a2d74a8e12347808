//! `llm.chat` in a running node against a scripted stand-in for an OpenAI-compatible server (a
//! server of the test's own; the real-model test runs a local model): structured output checked
//! against its schema, and a later step's failure retried without calling the model again.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use serde_json::{json, Value};

/// Serves `app` on a free loopback port; its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

struct StandIn {
    url: String,
    prompts: Arc<Mutex<Vec<Value>>>,
    hooks: Arc<AtomicUsize>,
}

/// Answers every chat completion with `answer` as one streamed message; `/hook` fails its
/// first call with 500 and answers 200 after.
async fn stand_in(answer: &'static str) -> StandIn {
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let hooks = Arc::new(AtomicUsize::new(0));
    let (p, h) = (prompts.clone(), hooks.clone());
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            axum::routing::post(move |body: Bytes| {
                let p = p.clone();
                async move {
                    p.lock()
                        .unwrap()
                        .push(serde_json::from_slice::<Value>(&body).unwrap());
                    let chunks = [
                        json!({"choices": [{"index": 0, "delta": {"content": answer}}]}),
                        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                        json!({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 9}}),
                    ];
                    let mut sse: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
                    sse.push_str("data: [DONE]\n\n");
                    ([("content-type", "text/event-stream")], sse)
                }
            }),
        )
        .route(
            "/hook",
            axum::routing::post(move || {
                let h = h.clone();
                async move {
                    if h.fetch_add(1, Ordering::SeqCst) == 0 {
                        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "not yet")
                    } else {
                        (axum::http::StatusCode::OK, "{\"stored\": true}")
                    }
                }
            }),
        );
    let url = serve(app).await;
    StandIn {
        url,
        prompts,
        hooks,
    }
}

fn node_config(base: &str) -> String {
    format!(
        r#"
llm:
  providers:
    local: {{kind: openai, base_url: "{base}/v1"}}
  default: local/small
  prices: {{local/small: {{input: 2.0, output: 10.0}}}}
bots:
  - metadata: {{name: record-cleaner}}
    spec:
      allow_private_network: true
      retry: {{max_attempts: 2, initial: 100ms}}
      steps:
        - id: clean
          uses: llm.chat
          with:
            system: Turn the scraped record into a clean row.
            prompt: "{{{{ input.record }}}}"
            json_schema:
              type: object
              required: [name, price]
              additionalProperties: false
              properties:
                name: {{type: string}}
                price: {{type: number}}
        - id: store
          uses: http.request
          with:
            method: POST
            url: "{base}/hook"
            body: "{{{{ data.data }}}}"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_output_is_checked_and_a_later_retry_does_not_call_the_model_again() {
    let model = stand_in(r#"{"name": "Desk lamp", "price": 19.5}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), &node_config(&model.url));
    let answer = common::invoke(
        &node.url,
        "record-cleaner",
        json!({"record": "  DESK lamp!!  $19.50 (used) "}),
    )
    .await;
    assert_eq!(answer["status"], "succeeded", "{answer}");
    // The store step failed once (500) and ran again; the model was asked once.
    assert_eq!(model.hooks.load(Ordering::SeqCst), 2);
    let prompts = model.prompts.lock().unwrap().clone();
    assert_eq!(
        prompts.len(),
        1,
        "the retry did not pay for the model turn again"
    );
    assert_eq!(prompts[0]["model"], "small");
    assert_eq!(
        prompts[0]["messages"][1]["content"],
        "  DESK lamp!!  $19.50 (used) "
    );
    assert_eq!(
        prompts[0]["response_format"]["json_schema"]["schema"]["required"],
        json!(["name", "price"])
    );
    let task = common::get(
        &common::client(),
        &format!(
            "{}/v1/tasks/{}",
            node.url,
            answer["task_id"].as_str().unwrap()
        ),
    )
    .await
    .1;
    let clean = task["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["step"] == "clean")
        .cloned()
        .unwrap_or_else(|| panic!("no checkpoint of the model step: {task}"));
    assert_eq!(
        clean["output"]["data"],
        json!({"name": "Desk lamp", "price": 19.5}),
        "{clean}"
    );
    // Priced by llm.prices: (20 × 2.0 + 9 × 10.0) per million tokens.
    assert_eq!(
        clean["output"]["usage"],
        json!({"input_tokens": 20, "output_tokens": 9, "cost": 130.0 / 1e6})
    );
    assert_eq!(clean["output"]["model"], "local/small");
    // The call is counted with its tokens and timings.
    let metrics = common::metrics_text(&node.url).await;
    for line in [
        "oclaw_llm_requests_total{provider=\"local\",model=\"small\",outcome=\"ok\"} 1",
        "oclaw_llm_tokens_total{provider=\"local\",model=\"small\",direction=\"input\"} 20",
        "oclaw_llm_tokens_total{provider=\"local\",model=\"small\",direction=\"output\"} 9",
        "oclaw_llm_request_duration_seconds_count{provider=\"local\",model=\"small\"} 1",
        "oclaw_llm_time_to_first_token_seconds_count{provider=\"local\",model=\"small\"} 1",
        "oclaw_llm_cost_total{provider=\"local\",model=\"small\"} 0.00013\n",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_does_not_match_the_schema_fails_with_its_code() {
    let model = stand_in(r#"{"name": "Desk lamp", "price": "cheap"}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), &node_config(&model.url));
    let answer = common::invoke(&node.url, "record-cleaner", json!({"record": "lamp"})).await;
    common::assert_failed(&answer, "OC-4031", "does not match json_schema");
    // Retried (an answer may match next time), then given up: two model calls, no store call.
    assert_eq!(model.prompts.lock().unwrap().len(), 2);
    assert_eq!(model.hooks.load(Ordering::SeqCst), 0);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[test]
fn a_bot_using_llm_chat_without_providers_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oclaw.yaml");
    std::fs::write(
        &path,
        "bots:\n  - metadata: {name: asks}\n    spec:\n      steps:\n        - {id: a, uses: llm.chat, with: {prompt: hi}}\n",
    )
    .unwrap();
    let out = common::oclaw()
        .args(["config", "validate"])
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("llm.providers"), "{text}");
}

fn sse(chunks: &[Value]) -> String {
    let mut s: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    s.push_str("data: [DONE]\n\n");
    s
}

fn tool_call_turn(id: &str, name: &str, args: Value) -> String {
    sse(&[
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": args.to_string()}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 10}}),
    ])
}

/// A stand-in model that plays an agent's three turns by how many tool results it has been
/// sent (a side-effect call, then a slow call, then the answer), and the two endpoints the
/// tools call: `/effect` counts, `/slow` hangs on its first call until the caller goes away.
struct AgentStandIn {
    url: String,
    turns: Arc<Mutex<Vec<usize>>>,
    effects: Arc<AtomicUsize>,
    slow: Arc<AtomicUsize>,
}

async fn agent_stand_in() -> AgentStandIn {
    let turns = Arc::new(Mutex::new(Vec::new()));
    let effects = Arc::new(AtomicUsize::new(0));
    let slow = Arc::new(AtomicUsize::new(0));
    let (t, e, s) = (turns.clone(), effects.clone(), slow.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let base = url.clone();
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            axum::routing::post(move |body: Bytes| {
                let (t, base) = (t.clone(), base.clone());
                async move {
                    let v: Value = serde_json::from_slice(&body).unwrap();
                    let results = v["messages"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|m| m["role"] == "tool")
                        .count();
                    t.lock().unwrap().push(results);
                    let answer = match results {
                        0 => tool_call_turn(
                            "call_1",
                            "http__request",
                            json!({"method": "POST", "url": format!("{base}/effect"), "body": {"refund": 7}}),
                        ),
                        1 => tool_call_turn(
                            "call_2",
                            "http__request",
                            json!({"method": "GET", "url": format!("{base}/slow")}),
                        ),
                        _ => sse(&[
                            json!({"choices": [{"index": 0, "delta": {"content": "Refund 7 is on its way."}}]}),
                            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                        ]),
                    };
                    ([("content-type", "text/event-stream")], answer)
                }
            }),
        )
        .route(
            "/effect",
            axum::routing::post(move || {
                let e = e.clone();
                async move {
                    e.fetch_add(1, Ordering::SeqCst);
                    "{\"refunded\": true}"
                }
            }),
        )
        .route(
            "/slow",
            axum::routing::get(move || {
                let s = s.clone();
                async move {
                    if s.fetch_add(1, Ordering::SeqCst) == 0 {
                        std::future::pending::<()>().await;
                    }
                    "{\"status\": \"shipped\"}"
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    AgentStandIn {
        url,
        turns,
        effects,
        slow,
    }
}

fn agent_config(base: &str, tools: &str, side_effects: &str) -> String {
    format!(
        r#"
llm:
  providers:
    local: {{kind: openai, base_url: "{base}/v1"}}
  default: local/small
bots:
  - metadata: {{name: refunds}}
    spec:
      allow_private_network: true
      steps:
        - id: handle
          uses: agent
          with:
            system: You handle refunds.
            tools: {tools}
            side_effects: {side_effects}
            max_turns: 5
"#
    )
}

/// The durable agent: a worker killed with SIGKILL between two tool calls resumes on the next
/// start after the last finished call. The model is asked for each turn exactly once, and the
/// side-effect call that finished before the kill is not made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_between_two_tool_calls_resumes_without_repeating_a_turn_or_a_call() {
    let model = agent_stand_in().await;
    let dir = tempfile::tempdir().unwrap();
    let config = agent_config(&model.url, "[http.request]", "[http.request]");
    let mut node = common::start(dir.path(), &config);
    let (code, task, _) = common::post(
        &common::client(),
        &format!("{}/v1/tasks", node.url),
        &json!({"bot": "refunds", "input": {"text": "Refund order 7 and tell me where it is"}})
            .to_string(),
    )
    .await;
    assert_eq!(code, 202, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    // Wait until the second tool call hangs in /slow: two turns and the first call are done.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while model.slow.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never reached its second tool call: {}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.kill9();
    let node = common::start(dir.path(), &config);
    let done = common::wait_status(
        &common::client(),
        &node.url,
        &id,
        "succeeded",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done["output"]["text"], "Refund 7 is on its way.", "{done}");
    assert_eq!(done["output"]["turns"], 3);
    let calls = done["output"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{done}");
    assert_eq!(calls[0]["tool"], "http.request");
    assert_eq!(
        calls[1]["output"]["body"],
        json!({"status": "shipped"}),
        "{done}"
    );
    // Turn by turn (tool results the model had seen): each asked once.
    assert_eq!(*model.turns.lock().unwrap(), [0, 1, 2]);
    assert_eq!(
        model.effects.load(Ordering::SeqCst),
        1,
        "the finished side effect was not repeated"
    );
    // The call the kill interrupted ran again: it had not finished.
    assert_eq!(model.slow.load(Ordering::SeqCst), 2);
    assert_eq!(done["attempts"], 2, "{done}");
}

#[test]
fn agent_tools_are_checked_when_the_bot_is_loaded() {
    let validate = |tools: &str, side_effects: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oclaw.yaml");
        std::fs::write(
            &path,
            agent_config("http://127.0.0.1:9", tools, side_effects),
        )
        .unwrap();
        let out = common::oclaw()
            .args(["config", "validate"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string()
                + &String::from_utf8_lossy(&out.stdout),
        )
    };
    let (ok, text) = validate("[kv.*, template]", "[]");
    assert!(ok, "{text}");
    let (ok, text) = validate("[kv.gte]", "[]");
    assert!(!ok && text.contains("`kv.gte` matches no skill"), "{text}");
    let (ok, text) = validate("[http.request]", "[]");
    assert!(!ok && text.contains("has side effects"), "{text}");
}

/// A real model: SmolLM2-135M-Instruct (GGUF) on the CPU through node-llama-cpp, behind the
/// OpenAI-compatible server of `tests/fixtures/llama-server`, both installed by
/// `.ci/install-tools`. Small models call tools badly, so this proves the plumbing: a streamed
/// answer with its token counts comes back through `llm.chat` in a running node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_small_model_answers_through_llm_chat() {
    let Some((_server, port)) = common::real_model() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(
        dir.path(),
        &format!(
            r#"
llm:
  providers:
    local: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1", timeout: 60s}}
  default: local/smollm2-135m-instruct
bots:
  - metadata: {{name: ask}}
    spec:
      steps:
        - id: answer
          uses: llm.chat
          with: {{system: Answer in one short sentence., prompt: "{{{{ input.question }}}}", max_tokens: 24, temperature: 0}}
  - metadata: {{name: assistant}}
    spec:
      triggers: [{{websocket: {{}}}}]
      steps:
        - {{id: answer, uses: llm.chat, with: {{prompt: "{{{{ input.text }}}}", max_tokens: 24, temperature: 0}}}}
  - metadata: {{name: vectors}}
    spec:
      steps:
        - {{id: embed, uses: llm.embed, with: {{model: local/smollm2-135m-instruct, inputs: "{{{{ input.texts }}}}"}}}}
"#
        ),
    );
    let answer = common::invoke(&node.url, "ask", json!({"question": "What is 2+2?"})).await;
    assert_eq!(answer["status"], "succeeded", "{answer}");
    let out = &answer["output"];
    assert!(!out["text"].as_str().unwrap().trim().is_empty(), "{answer}");
    assert_eq!(out["model"], "local/smollm2-135m-instruct");
    assert_eq!(out["finish_reason"], "stop");
    assert!(
        out["usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{answer}"
    );
    assert!(
        out["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "{answer}"
    );
    // A streamed chat: the pieces arrive as delta frames and add up to the reply.
    let frames = chat(&node.url, "Name a colour.").await;
    let reply = frames.last().unwrap();
    assert_eq!(reply["type"], "reply", "{frames:?}");
    let streamed: String = frames
        .iter()
        .filter(|f| f["type"] == "delta")
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert!(!streamed.is_empty(), "no delta frames: {frames:?}");
    assert_eq!(reply["text"].as_str().unwrap(), streamed);
    // Embeddings computed by the model: one vector per text, all of the model's width, the
    // same text giving the same vector and another text another one.
    let texts = json!([
        "The parcel was delivered.",
        "Le colis a été livré.",
        "The parcel was delivered."
    ]);
    let answer = common::invoke(&node.url, "vectors", json!({"texts": texts})).await;
    assert_eq!(answer["status"], "succeeded", "{answer}");
    let out = &answer["output"];
    let vectors: Vec<Vec<f64>> = serde_json::from_value(out["embeddings"].clone()).unwrap();
    assert_eq!(vectors.len(), 3);
    let width = out["dimensions"].as_u64().unwrap() as usize;
    assert!(width >= 64, "{width}");
    assert!(vectors
        .iter()
        .all(|v| v.len() == width && v.iter().all(|x| x.is_finite())));
    assert_eq!(vectors[0], vectors[2]);
    assert_ne!(vectors[0], vectors[1]);
    assert!(out["usage"]["input_tokens"].as_u64().unwrap() > 0, "{out}");
}

/// A stand-in that streams `pieces` with a pause before each (the model "thinking").
async fn streaming_stand_in(pieces: &'static [&'static str], pause: Duration) -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || async move {
            let mut events: Vec<String> = pieces
                .iter()
                .map(|p| {
                    format!(
                        "data: {}\n\n",
                        json!({"choices": [{"index": 0, "delta": {"content": p}}]})
                    )
                })
                .collect();
            events.push(format!(
                "data: {}\n\ndata: [DONE]\n\n",
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            ));
            let stream =
                futures_util::stream::unfold(events.into_iter(), move |mut it| async move {
                    let e = it.next()?;
                    tokio::time::sleep(pause).await;
                    Some((Ok::<_, std::convert::Infallible>(Bytes::from(e)), it))
                });
            axum::response::Response::builder()
                .header("content-type", "text/event-stream")
                .body(axum::body::Body::from_stream(stream))
                .unwrap()
        }),
    );
    let url = serve(app).await;
    url
}

fn chat_config(base: &str) -> String {
    format!(
        r#"
llm:
  providers:
    local: {{kind: openai, base_url: "{base}/v1"}}
  default: local/small
bots:
  - metadata: {{name: assistant}}
    spec:
      triggers: [{{websocket: {{}}}}]
      steps:
        - {{id: answer, uses: llm.chat, with: {{prompt: "{{{{ input.text }}}}"}}}}
"#
    )
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends one chat message and gathers the frames up to its reply.
async fn chat(base: &str, text: &str) -> Vec<Value> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("{}/v1/ws?bot=assistant", base.replace("http://", "ws://"));
    let (mut ws, _): (Ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::Text(
        json!({"type": "message", "id": "m1", "text": text})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut frames = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("a frame within 60s")
            .expect("the connection is open")
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            let last = v["type"] == "reply" || v["type"] == "error";
            frames.push(v);
            if last {
                return frames;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_gets_the_answer_as_delta_frames_before_the_reply() {
    let base = streaming_stand_in(
        &["Your order ", "ships ", "tomorrow."],
        Duration::from_millis(150),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), &chat_config(&base));
    let frames = chat(&node.url, "where is my order?").await;
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["session", "ack", "delta", "delta", "delta", "reply"],
        "{frames:?}"
    );
    let deltas: Vec<&str> = frames[2..5]
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, ["Your order ", "ships ", "tomorrow."]);
    assert!(frames[2..5]
        .iter()
        .all(|f| f["id"] == "m1" && f["task_id"] == frames[1]["task_id"]));
    assert_eq!(frames[5]["text"], "Your order ships tomorrow.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_streams_server_sent_events_when_asked() {
    let base = streaming_stand_in(&["one ", "two"], Duration::from_millis(150)).await;
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(dir.path(), &chat_config(&base));
    let r = common::client()
        .post(format!("{}/v1/bots/assistant/invoke", node.url))
        .header("accept", "text/event-stream")
        .json(&json!({"input": {"text": "count"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = r.text().await.unwrap();
    let events: Vec<(String, Value)> = body
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let kind = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap()
                .to_string();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (kind, serde_json::from_str(data).unwrap())
        })
        .collect();
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["delta", "delta", "result"], "{body}");
    assert_eq!(events[0].1["text"], "one ");
    assert_eq!(events[2].1["status"], "succeeded");
    assert_eq!(events[2].1["output"]["text"], "one two");
    // Without the header, the same route answers JSON.
    let plain = common::invoke(&node.url, "assistant", json!({"text": "count"})).await;
    assert_eq!(plain["output"]["text"], "one two");
}

/// A stand-in playing the support assistant: it answers when the passages in its prompt cover
/// the question (refunds), and hands off otherwise.
async fn support_stand_in() -> String {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|body: Bytes| async move {
            let v: Value = serde_json::from_slice(&body).unwrap();
            let messages = v["messages"].as_array().unwrap();
            let question = messages
                .iter()
                .rev()
                .find(|m| m["role"] == "user")
                .map(|m| m["content"].as_str().unwrap().to_string())
                .unwrap();
            let results: Vec<Value> = messages
                .iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| serde_json::from_str(m["content"].as_str().unwrap()).unwrap())
                .collect();
            let system = messages[0]["content"].as_str().unwrap_or_default().to_string();
            let text = |t: &str| {
                sse(&[
                    json!({"choices": [{"index": 0, "delta": {"content": t}}]}),
                    json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                ])
            };
            // Answers when the passages in its system prompt speak of refunds; hands off the rest.
            let answer = match results.as_slice() {
                [] if question.contains("refund") && system.contains("3 to 5 business days") => {
                    text("From our help pages: a refund reaches your card 3 to 5 business days after we receive the item [1].")
                }
                [] => tool_call_turn("c2", "hand_off", json!({"input": {"summary": question}})),
                _ => text("A colleague will reply here."),
            };
            ([("content-type", "text/event-stream")], answer)
        }),
    );
    let url = serve(app).await;
    url
}

/// The built-in support-assistant example, loaded once a model is configured (here a stand-in):
/// over WebSocket it answers from the `support` knowledge collection (searched before the model
/// is asked, the passages in its prompt) and cites the documents, and hands what they do not
/// answer to the human queue (a support-inbox task) without citing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_support_assistant_example_answers_from_the_collection_with_sources_and_hands_off_the_rest(
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let base = support_stand_in().await;
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(
        dir.path(),
        &format!("llm:\n  providers:\n    local: {{kind: openai, base_url: \"{base}/v1\"}}\n  default: local/small\n"),
    );
    // The example collection is filled by ingestion tasks queued at start.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, kb) = common::get(&common::client(), &format!("{}/v1/kb/support", node.url)).await;
        if kb["documents"] == 15 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{kb}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = format!(
        "{}/v1/ws?bot=support-assistant",
        node.url.replace("http://", "ws://")
    );
    let (mut ws, _): (Ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut ask = async |id: &str, text: &str| -> Value {
        ws.send(Message::Text(
            json!({"type": "message", "id": id, "text": text})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "reply" || v["type"] == "error" {
                    return v;
                }
            }
        }
    };
    let reply = ask("1", "How long does a refund take?").await;
    let text = reply["text"].as_str().unwrap();
    assert!(
        text.starts_with("From our help pages: a refund reaches your card 3 to 5 business days after we receive the item [1].\n\nSources: [1] Refunds (examples/knowledge/support/refunds.md)"),
        "{reply}"
    );
    assert_eq!(
        reply["data"]["sources"][0]["document"], "refunds.md",
        "{reply}"
    );
    let reply = ask("2", "Can I pay with seashells?").await;
    assert_eq!(reply["text"], "A colleague will reply here.", "{reply}");
    let handed = &reply["data"]["tool_calls"][0];
    assert_eq!(handed["tool"], "task.enqueue", "{reply}");
    let inbox = handed["output"]["task_id"].as_str().unwrap();
    let (_, task) = common::get(&common::client(), &format!("{}/v1/tasks/{inbox}", node.url)).await;
    assert_eq!(task["bot"], "support-inbox");
    assert_eq!(task["queue"], "human");
    assert_eq!(task["input"]["summary"], "Can I pay with seashells?");
}

/// A bot's daily token budget: each call reserves its estimate first and settles to the count
/// the provider gives; once the budget cannot hold the next call it is refused before the
/// model is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_daily_budget_refuses_the_next_call_before_it_is_made() {
    let model = stand_in("fine").await;
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(
        dir.path(),
        &format!(
            r#"
llm:
  providers:
    local: {{kind: openai, base_url: "{}/v1"}}
  default: local/small
bots:
  - metadata: {{name: asks}}
    spec:
      budget: {{tokens_per_day: 100}}
      retry: {{max_attempts: 1}}
      steps:
        - {{id: a, uses: llm.chat, with: {{prompt: hi, max_tokens: 10}}}}
"#,
            model.url
        ),
    );
    // Each call costs 29 tokens (20 in, 9 out) and reserves 11 (a token of prompt, 10 of
    // answer): the fifth finds 116 spent.
    for i in 0..4 {
        let a = common::invoke(&node.url, "asks", json!({})).await;
        assert_eq!(a["status"], "succeeded", "call {i}: {a}");
    }
    let refused = common::invoke(&node.url, "asks", json!({})).await;
    common::assert_failed(&refused, "OC-4036", "tokens_per_day of 100 is spent");
    assert_eq!(
        model.prompts.lock().unwrap().len(),
        4,
        "the refused call was not made"
    );
}

/// A tenant's daily model tokens (`tenants.quotas.<t>.llm_tokens_per_day`) are shared by all
/// its bots, refused before the call once spent, and spend nothing of another tenant's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_daily_tokens_are_shared_by_its_bots_and_no_one_elses() {
    let model = stand_in("fine").await;
    let dir = tempfile::tempdir().unwrap();
    let bot = |name: &str, tenant: &str| {
        format!(
            "  - metadata: {{name: {name}, tenant: {tenant}}}\n    spec:\n      retry: {{max_attempts: 1}}\n      steps:\n        - {{id: a, uses: llm.chat, with: {{prompt: hi, max_tokens: 10}}}}\n"
        )
    };
    let node = common::start(
        dir.path(),
        &format!(
            "llm:\n  providers:\n    local: {{kind: openai, base_url: \"{}/v1\"}}\n  default: local/small\ntenants:\n  quotas:\n    acme: {{llm_tokens_per_day: 60}}\nbots:\n{}{}{}",
            model.url,
            bot("one", "acme"),
            bot("two", "acme"),
            bot("other", "globex"),
        ),
    );
    // 29 tokens a call: two calls (58) fit, from either bot; the third would pass 60.
    let a = common::invoke(&node.url, "one", json!({})).await;
    assert_eq!(a["status"], "succeeded", "{a}");
    let b = common::invoke(&node.url, "two", json!({})).await;
    assert_eq!(b["status"], "succeeded", "{b}");
    let refused = common::invoke(&node.url, "one", json!({})).await;
    common::assert_failed(
        &refused,
        "OC-4036",
        "tenant's llm_tokens_per_day of 60 is spent",
    );
    let refused = common::invoke(&node.url, "two", json!({})).await;
    common::assert_failed(&refused, "OC-4036", "tenant's llm_tokens_per_day");
    for _ in 0..3 {
        let c = common::invoke(&node.url, "other", json!({})).await;
        assert_eq!(
            c["status"], "succeeded",
            "another tenant spends from its own day: {c}"
        );
    }
    assert_eq!(
        model.prompts.lock().unwrap().len(),
        5,
        "refused calls were not made"
    );
}

/// Each model call is a client span under its skill's span, with the OpenTelemetry GenAI
/// attributes and never the prompt or the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_calls_are_traced_with_the_genai_attributes() {
    let model = stand_in("a secret answer").await;
    let collector = common::recorder().await;
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(
        dir.path(),
        &format!(
            r#"
telemetry: {{otlp_endpoint: "{}", otlp_protocol: http/json}}
llm:
  providers:
    local: {{kind: openai, base_url: "{}/v1"}}
  default: local/small
bots:
  - metadata: {{name: asks}}
    spec:
      steps:
        - {{id: a, uses: llm.chat, with: {{prompt: "a secret question", max_tokens: 10}}}}
"#,
            collector.url, model.url
        ),
    );
    let answer = common::invoke(&node.url, "asks", json!({})).await;
    let trace = answer["trace_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (chat, skill) = loop {
        let spans: Vec<Value> = collector
            .requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, body)| {
                body["resourceSpans"][0]["scopeSpans"][0]["spans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|s| s["traceId"] == trace.as_str())
            .collect();
        let find = |name: &str| spans.iter().find(|s| s["name"] == name).cloned();
        if let (Some(c), Some(s)) = (find("chat small"), find("skill llm.chat")) {
            break (c, s);
        }
        assert!(std::time::Instant::now() < deadline, "spans: {spans:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(chat["parentSpanId"], skill["spanId"]);
    assert_eq!(chat["kind"], 3, "a client span");
    let attr = |k: &str| {
        chat["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == k)
            .map(|a| a["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(attr("gen_ai.operation.name")["stringValue"], "chat");
    assert_eq!(attr("gen_ai.provider.name")["stringValue"], "local");
    assert_eq!(attr("gen_ai.request.model")["stringValue"], "small");
    assert_eq!(attr("gen_ai.usage.input_tokens")["intValue"], "20");
    assert_eq!(attr("gen_ai.usage.output_tokens")["intValue"], "9");
    let all = collector
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.to_string())
        .collect::<String>();
    assert!(
        !all.contains("secret"),
        "prompts and answers stay out of traces"
    );
}

/// A long conversation history is compacted: its older turns become one summary (a model call
/// of its own, made once), the newest turns go as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_summarises_the_older_turns_of_a_long_history_once() {
    let seen = Arc::new(Mutex::new(Vec::<Value>::new()));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: Bytes| {
            let s = s.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap();
                let summarising = v["messages"][0]["content"]
                    .as_str()
                    .unwrap()
                    .starts_with("Summarise");
                s.lock().unwrap().push(v);
                let text = if summarising {
                    "Ada's order 7 ships Friday."
                } else {
                    "On Friday."
                };
                let answer = sse(&[
                    json!({"choices": [{"index": 0, "delta": {"content": text}}]}),
                    json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
                    json!({"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 6}}),
                ]);
                ([("content-type", "text/event-stream")], answer)
            }
        }),
    );
    let base = serve(app).await;
    let dir = tempfile::tempdir().unwrap();
    let node = common::start(
        dir.path(),
        &format!(
            r#"
llm:
  providers:
    local: {{kind: openai, base_url: "{base}/v1"}}
  default: local/small
bots:
  - metadata: {{name: chat}}
    spec:
      steps:
        - id: answer
          uses: agent
          with: {{prompt: "{{{{ input.text }}}}", history: "{{{{ input.history }}}}", history_tokens: 20}}
"#
        ),
    );
    let long =
        "I am Ada and I ordered a desk lamp last week, order number 7, and it has not arrived yet.";
    let history = json!([
        {"role": "user", "text": long},
        {"role": "bot", "text": "Order 7 ships on Friday, Ada."},
        {"role": "user", "text": "ok"},
        {"role": "bot", "text": "Anything else?"},
    ]);
    let answer = common::invoke(
        &node.url,
        "chat",
        json!({"text": "when again?", "history": history}),
    )
    .await;
    assert_eq!(answer["output"]["text"], "On Friday.", "{answer}");
    assert_eq!(
        answer["output"]["usage"],
        json!({"input_tokens": 60, "output_tokens": 12})
    );
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "one summary, one answer");
    let summarised = calls[0]["messages"][1]["content"].as_str().unwrap();
    assert!(
        summarised.contains(long) && !summarised.contains("Anything else?"),
        "{summarised}"
    );
    let sent: Vec<(&str, &str)> = calls[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        sent,
        [
            (
                "system",
                "Summary of the conversation so far: Ada's order 7 ships Friday."
            ),
            ("user", "ok"),
            ("assistant", "Anything else?"),
            ("user", "when again?"),
        ]
    );
}

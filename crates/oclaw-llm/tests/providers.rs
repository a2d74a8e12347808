//! The two adapters and the router against scripted stand-ins for an OpenAI-compatible server
//! and Anthropic's Messages API (servers of the test's own: the real APIs are cloud services).
//! Each stand-in answers the replies a test scripts, in order, streaming SSE in pieces split at
//! awkward places, and records every request.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use oclaw_core::config::LlmConfig;
use oclaw_llm::{ChatRequest, Llm, LlmError, Message, Role, ToolSpec};
use serde_json::{json, Value};

enum Reply {
    /// SSE text sent in these pieces, a pause before each.
    Sse(Vec<String>, Duration),
    Status(u16, Vec<(&'static str, &'static str)>, &'static str),
}

#[derive(Clone)]
struct StandIn {
    url: String,
    requests: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
}

impl StandIn {
    async fn start() -> StandIn {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let replies: Arc<Mutex<VecDeque<Reply>>> = Arc::new(Mutex::new(VecDeque::new()));
        let (rq, rp) = (requests.clone(), replies.clone());
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let (rq, rp) = (rq.clone(), rp.clone());
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                rq.lock().unwrap().push((headers, v));
                let reply = rp.lock().unwrap().pop_front();
                match reply {
                    Some(Reply::Sse(pieces, pause)) => {
                        let stream = futures_util::stream::unfold(
                            pieces.into_iter(),
                            move |mut it| async move {
                                let piece = it.next()?;
                                tokio::time::sleep(pause).await;
                                Some((Ok::<_, std::io::Error>(Bytes::from(piece)), it))
                            },
                        );
                        axum::response::Response::builder()
                            .header("content-type", "text/event-stream")
                            .body(Body::from_stream(stream))
                            .unwrap()
                    }
                    Some(Reply::Status(code, headers, body)) => {
                        let mut r = axum::response::Response::builder()
                            .status(StatusCode::from_u16(code).unwrap());
                        for (k, v) in headers {
                            r = r.header(k, v);
                        }
                        r.body(Body::from(body)).unwrap()
                    }
                    None => axum::response::Response::builder()
                        .status(500)
                        .body(Body::from("no scripted reply"))
                        .unwrap(),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        StandIn {
            url,
            requests,
            replies,
        }
    }

    fn script(&self, reply: Reply) {
        self.replies.lock().unwrap().push_back(reply);
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    fn request(&self, i: usize) -> (HeaderMap, Value) {
        self.requests.lock().unwrap()[i].clone()
    }
}

/// SSE text cut into pieces of `size` bytes (so events and even UTF-8 characters split).
fn pieces(text: &str, size: usize) -> Vec<String> {
    let bytes = text.as_bytes();
    // Cut on bytes but keep each piece valid text for the stand-in's Bytes::from(String): cut
    // only at char boundaries at or after each `size` step.
    let mut out = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let mut end = (start + size).min(bytes.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(text[start..end].to_string());
        start = end;
    }
    out
}

fn openai_stream(chunks: &[Value]) -> String {
    let mut s: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    s.push_str("data: [DONE]\n\n");
    s
}

fn text_answer(text: &str) -> String {
    openai_stream(&[
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": null}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        json!({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}),
    ])
}

fn config(providers: Value, default: &str, fallback: &[&str]) -> LlmConfig {
    serde_json::from_value(
        json!({"providers": providers, "default": default, "fallback": fallback}),
    )
    .unwrap()
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::new(Role::System, "be brief"),
            Message::new(Role::User, text),
        ],
        ..Default::default()
    }
}

#[tokio::test]
async fn openai_streamed_text_and_tool_call_deltas_split_across_chunks_assemble() {
    let server = StandIn::start().await;
    let stream = openai_stream(&[
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Looking "}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "it up — 查询"}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "kv_get", "arguments": ""}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"ke"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "lookup", "arguments": "{\"q\": 1}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "y\": \"order-7\"}"}}]}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"choices": [], "usage": {"prompt_tokens": 41, "completion_tokens": 17}}),
    ]);
    server.script(Reply::Sse(pieces(&stream, 7), Duration::ZERO));
    let llm = Llm::from_config(
        &config(
            json!({"local": {"kind": "openai", "base_url": format!("{}/v1", server.url)}}),
            "local/small",
            &[],
        ),
        &no_env,
    )
    .unwrap();
    let mut request = ask("where is order 7?");
    request.tools.push(ToolSpec {
        name: "kv_get".into(),
        description: "read a key".into(),
        parameters: json!({"type": "object", "properties": {"key": {"type": "string"}}}),
    });
    let mut deltas = Vec::new();
    let answer = llm
        .chat(None, &request, &mut |d| deltas.push(d.to_string()))
        .await
        .unwrap();
    assert_eq!(answer.text, "Looking it up — 查询");
    assert_eq!(deltas, ["Looking ", "it up — 查询"]);
    assert_eq!(answer.finish_reason, "tool_calls");
    assert_eq!(answer.model, "local/small");
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (41, 17)
    );
    let calls: Vec<(&str, &str, Value)> = answer
        .tool_calls
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            ("call_1", "kv_get", json!({"key": "order-7"})),
            ("call_2", "lookup", json!({"q": 1}))
        ]
    );
    let (_, body) = server.request(0);
    assert_eq!(body["model"], "small");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(body["tools"][0]["function"]["name"], "kv_get");
}

#[tokio::test]
async fn openai_structured_output_asks_with_the_schema() {
    let server = StandIn::start().await;
    server.script(Reply::Sse(
        vec![text_answer("{\"name\": \"Ada\"}")],
        Duration::ZERO,
    ));
    let llm = Llm::from_config(
        &config(
            json!({"local": {"kind": "openai", "base_url": server.url}}),
            "local/m",
            &[],
        ),
        &no_env,
    )
    .unwrap();
    let schema =
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
    let mut request = ask("clean this");
    request.json_schema = Some(schema.clone());
    let answer = llm
        .chat(Some("local/m"), &request, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(answer.text, "{\"name\": \"Ada\"}");
    let (_, body) = server.request(0);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["schema"], schema);
}

#[tokio::test]
async fn anthropic_streams_text_and_tool_use_with_its_headers_and_turns() {
    let server = StandIn::start().await;
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 30, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me check."}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"order\": "}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "7}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let text: String = events
        .iter()
        .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
        .collect();
    server.script(Reply::Sse(pieces(&text, 11), Duration::ZERO));
    let env = |n: &str| (n == "OCLAW_SECRET_ANTHROPIC_KEY").then(|| "sk-ant-test".to_string());
    let llm = Llm::from_config(
        &config(
            json!({"cloud": {"kind": "anthropic", "base_url": server.url, "api_key": "{{ secrets.ANTHROPIC_KEY }}"}}),
            "cloud/claude-test",
            &[],
        ),
        &env,
    )
    .unwrap();
    let mut request = ask("where is order 7?");
    // A previous turn with a tool call and its result, as an agent sends them.
    request.messages.push(Message {
        role: Role::Assistant,
        content: String::new(),
        tool_calls: vec![oclaw_llm::ToolCall {
            id: "toolu_0".into(),
            name: "lookup".into(),
            arguments: json!({"order": 6}),
        }],
        tool_call_id: None,
    });
    request.messages.push(Message {
        role: Role::Tool,
        content: "{\"status\": \"shipped\"}".into(),
        tool_calls: Vec::new(),
        tool_call_id: Some("toolu_0".into()),
    });
    let answer = llm.chat(None, &request, &mut |_| {}).await.unwrap();
    assert_eq!(answer.text, "Let me check.");
    assert_eq!(answer.finish_reason, "tool_calls");
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (30, 12)
    );
    assert_eq!(answer.tool_calls[0].arguments, json!({"order": 7}));
    let (headers, body) = server.request(0);
    assert_eq!(headers["x-api-key"], "sk-ant-test");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(body["system"], "be brief");
    assert_eq!(body["max_tokens"], 1024);
    let turns = body["messages"].as_array().unwrap();
    assert_eq!(turns[1]["content"][0]["type"], "tool_use");
    assert_eq!(
        turns[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_0", "content": "{\"status\": \"shipped\"}"})
    );
}

fn two_providers(primary: &StandIn, secondary: &StandIn) -> Llm {
    Llm::from_config(
        &config(
            json!({
                "local": {"kind": "openai", "base_url": primary.url, "timeout": "2s"},
                "backup": {"kind": "openai", "base_url": secondary.url},
            }),
            "local/a",
            &["backup/b"],
        ),
        &no_env,
    )
    .unwrap()
}

#[tokio::test]
async fn rate_limits_server_errors_broken_streams_and_timeouts_go_down_the_chain() {
    let (primary, secondary) = (StandIn::start().await, StandIn::start().await);
    let llm = two_providers(&primary, &secondary);
    let cut = text_answer("never finished");
    let cut = cut[..cut.find("finish_reason").unwrap() - 40].to_string();
    primary.script(Reply::Status(
        429,
        vec![("retry-after", "7")],
        "{\"error\": {\"message\": \"slow down\"}}",
    ));
    primary.script(Reply::Status(503, vec![], "overloaded"));
    primary.script(Reply::Sse(vec![text_answer("primary ok")], Duration::ZERO));
    primary.script(Reply::Sse(vec![cut], Duration::ZERO));
    // A first token slower than the provider's 2 s timeout.
    primary.script(Reply::Sse(
        vec![text_answer("too late")],
        Duration::from_secs(3),
    ));
    primary.script(Reply::Status(500, vec![], "boom"));
    for i in 0..6 {
        secondary.script(Reply::Sse(
            vec![text_answer(&format!("backup {i}"))],
            Duration::ZERO,
        ));
    }
    let mut answered = Vec::new();
    for _ in 0..6 {
        let answer = llm.chat(None, &ask("hi"), &mut |_| {}).await.unwrap();
        answered.push(format!("{} {}", answer.model, answer.text));
    }
    assert_eq!(
        answered,
        [
            "backup/b backup 0",
            "backup/b backup 1",
            "local/a primary ok",
            "backup/b backup 2",
            "backup/b backup 3",
            "backup/b backup 4",
        ]
    );
    assert_eq!((primary.count(), secondary.count()), (6, 5));
    // The last three failed in a row (a cut stream, a timeout, a 500): the primary's breaker is
    // open, and the next call goes straight to the backup.
    let answer = llm.chat(None, &ask("hi"), &mut |_| {}).await.unwrap();
    assert_eq!(answer.text, "backup 5");
    assert_eq!(primary.count(), 6, "the cooling provider was not called");
}

#[tokio::test]
async fn a_refusal_is_not_retried_elsewhere_and_the_last_provider_waits_for_retry_after() {
    let (primary, secondary) = (StandIn::start().await, StandIn::start().await);
    let llm = two_providers(&primary, &secondary);
    primary.script(Reply::Status(
        400,
        vec![],
        "{\"error\": {\"message\": \"unknown model a\"}}",
    ));
    let e = llm.chat(None, &ask("hi"), &mut |_| {}).await.unwrap_err();
    assert_eq!(
        e,
        LlmError::Refused {
            status: 400,
            message: "unknown model a".into()
        }
    );
    assert_eq!(secondary.count(), 0);

    // Alone in its chain, a provider that says "retry after 1 s" is asked again after it.
    let only = StandIn::start().await;
    let llm = Llm::from_config(
        &config(
            json!({"one": {"kind": "openai", "base_url": only.url}}),
            "one/m",
            &[],
        ),
        &no_env,
    )
    .unwrap();
    only.script(Reply::Status(429, vec![("retry-after", "1")], "{}"));
    only.script(Reply::Sse(
        vec![text_answer("after waiting")],
        Duration::ZERO,
    ));
    let started = Instant::now();
    let answer = llm.chat(None, &ask("hi"), &mut |_| {}).await.unwrap();
    assert_eq!(answer.text, "after waiting");
    assert_eq!(only.count(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it waited for Retry-After"
    );
    // Without a second answer the 429 is the error.
    only.script(Reply::Status(429, vec![("retry-after", "1")], "{}"));
    only.script(Reply::Status(429, vec![], "{}"));
    let e = llm.chat(None, &ask("hi"), &mut |_| {}).await.unwrap_err();
    assert_eq!(e, LlmError::RateLimited { retry_after: None });
}

#[test]
fn keys_written_in_the_file_and_unknown_providers_are_refused() {
    let literal = config(
        json!({"cloud": {"kind": "anthropic", "api_key": "sk-ant-abc"}}),
        "cloud/x",
        &[],
    );
    let e = Llm::from_config(&literal, &no_env).err().unwrap();
    assert!(
        e.contains("must come from secrets") && !e.contains("sk-ant-abc"),
        "{e}"
    );
    let unknown = config(json!({"local": {"kind": "openai"}}), "lcoal/x", &[]);
    let e = Llm::from_config(&unknown, &no_env).err().unwrap();
    assert!(e.contains("lcoal") && e.contains("did you mean"), "{e}");
    let unset = config(
        json!({"cloud": {"kind": "anthropic", "api_key": "{{ secrets.ANTHROPIC_KEY }}"}}),
        "cloud/x",
        &[],
    );
    let e = Llm::from_config(&unset, &no_env).err().unwrap();
    assert!(e.contains("OCLAW_SECRET_ANTHROPIC_KEY"), "{e}");
}

#[tokio::test]
async fn a_providers_own_rate_limits_pass_calls_down_the_chain_like_a_429() {
    for limit in [
        json!({"requests_per_minute": 1}),
        json!({"tokens_per_minute": 100}),
    ] {
        let (primary, secondary) = (StandIn::start().await, StandIn::start().await);
        let mut local = json!({"kind": "openai", "base_url": primary.url, "timeout": "2s"});
        local
            .as_object_mut()
            .unwrap()
            .extend(limit.as_object().unwrap().clone());
        let llm = Llm::from_config(
            &config(
                json!({"local": local, "backup": {"kind": "openai", "base_url": secondary.url}}),
                "local/a",
                &["backup/b"],
            ),
            &no_env,
        )
        .unwrap();
        primary.script(Reply::Sse(vec![text_answer("first")], Duration::ZERO));
        secondary.script(Reply::Sse(vec![text_answer("second")], Duration::ZERO));
        let first = llm.chat(None, &ask("hi"), &mut |_| {}).await.unwrap();
        // The bucket refills over a minute: waiting would pass the 2 s timeout, so the second
        // call goes to the backup at once, and the primary is not asked.
        let second = llm.chat(None, &ask("hi"), &mut |_| {}).await.unwrap();
        assert_eq!(
            (first.model.as_str(), second.model.as_str()),
            ("local/a", "backup/b"),
            "{limit}"
        );
        assert_eq!((primary.count(), secondary.count()), (1, 1), "{limit}");
    }
}

#[tokio::test]
async fn openai_embeddings_come_back_in_input_order_without_fallback() {
    let (primary, secondary) = (StandIn::start().await, StandIn::start().await);
    let llm = two_providers(&primary, &secondary);
    // The answer lists the vectors out of order; `index` places them.
    primary.script(Reply::Status(
        200,
        vec![("content-type", "application/json")],
        r#"{"object": "list", "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 1.0, 0.5]},
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.0, -0.25]}],
          "model": "e", "usage": {"prompt_tokens": 9, "total_tokens": 9}}"#,
    ));
    let texts = vec!["first text".to_string(), "第二段文字".to_string()];
    let answer = llm.embed("local/e", &texts).await.unwrap();
    assert_eq!(
        answer.vectors,
        vec![vec![1.0, 0.0, -0.25], vec![0.0, 1.0, 0.5]]
    );
    assert_eq!(answer.usage.input_tokens, 9);
    assert_eq!(answer.model, "local/e");
    let (_, body) = primary.request(0);
    assert_eq!(body["model"], "e");
    assert_eq!(body["input"], json!(texts));
    // A server error is not passed to another provider: its vectors would not compare.
    primary.script(Reply::Status(503, vec![], "busy"));
    let err = llm.embed("local/e", &texts).await.unwrap_err();
    assert!(matches!(err, LlmError::Server { status: 503, .. }), "{err}");
    assert_eq!(secondary.count(), 0);
    // An answer with a vector missing is refused as malformed.
    primary.script(Reply::Status(
        200,
        vec![("content-type", "application/json")],
        r#"{"data": [{"index": 0, "embedding": [1.0]}]}"#,
    ));
    let err = llm.embed("local/e", &texts).await.unwrap_err();
    assert!(matches!(err, LlmError::BadResponse(_)), "{err}");
    // Anthropic has no embeddings API: refused without a request.
    let anthropic = Llm::from_config(
        &config(
            json!({"claude": {"kind": "anthropic", "base_url": secondary.url}}),
            "claude/m",
            &[],
        ),
        &no_env,
    )
    .unwrap();
    let err = anthropic.embed("claude/m", &texts).await.unwrap_err();
    assert!(matches!(err, LlmError::Refused { .. }), "{err}");
    assert_eq!(secondary.count(), 0);
}

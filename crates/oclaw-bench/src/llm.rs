//! `oclaw bench llm`: what the model layer adds to a model call. A stand-in OpenAI-compatible
//! server in this process streams a short answer; the same calls are made directly over HTTP
//! (reqwest, reading the stream to its end) and through the provider adapter and router
//! (`Llm::chat`: request building, SSE parsing, tool-call assembly, breaker, metrics). Reports
//! per-call latency and time to the first piece of text for both, and the difference.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use oclaw_llm::{ChatRequest, Llm, Message, Role};
use serde_json::json;

pub struct LlmBenchOptions {
    pub calls: usize,
    /// How long the stand-in waits before answering.
    pub latency: Duration,
}

/// The stand-in's answer: three pieces of text, the finish, the usage.
fn answer() -> String {
    let chunks = [
        json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Your order "}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "ships "}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "tomorrow."}}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5}}),
    ];
    let mut s: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    s.push_str("data: [DONE]\n\n");
    s
}

/// Starts the stand-in on a free loopback port; its base URL (`…/v1`).
pub async fn stand_in(latency: Duration) -> Result<String, String> {
    let body = Arc::new(answer());
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |_: Bytes| {
            let body = body.clone();
            async move {
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                ([("content-type", "text/event-stream")], (*body).clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!(
        "http://{}/v1",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

pub async fn llm(o: LlmBenchOptions) -> Result<String, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = stand_in(o.latency).await?;
    let request = ChatRequest {
        messages: vec![
            Message::new(Role::System, "You answer customers briefly."),
            Message::new(Role::User, "Where is my order?"),
        ],
        ..Default::default()
    };
    let body = json!({
        "model": "bench", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "system", "content": "You answer customers briefly."}, {"role": "user", "content": "Where is my order?"}],
    });
    let http = reqwest::Client::new();
    let config: oclaw_core::config::LlmConfig = serde_json::from_value(json!({
        "providers": {"bench": {"kind": "openai", "base_url": base}},
        "default": "bench/bench",
    }))
    .map_err(|e| e.to_string())?;
    let router = Llm::from_config(&config, &|_| None)?;
    let (mut direct, mut direct_first) = (Vec::new(), Vec::new());
    let (mut routed, mut routed_first) = (Vec::new(), Vec::new());
    // Warm both paths (connections, allocations), then alternate so drift hits both alike.
    for round in 0..o.calls + 50 {
        let started = Instant::now();
        let mut r = http
            .post(format!("{base}/chat/completions"))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let mut first = None;
        let mut text = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
            if first.is_none() && chunk.windows(7).any(|w| w == b"content") {
                first = Some(started.elapsed());
            }
            text.extend_from_slice(&chunk);
        }
        let d = started.elapsed();
        let started = Instant::now();
        let mut first_piece = None;
        let answer = router
            .chat(None, &request, &mut |_| {
                first_piece.get_or_insert_with(|| started.elapsed());
            })
            .await
            .map_err(|e| e.to_string())?;
        let r = started.elapsed();
        if answer.text != "Your order ships tomorrow." || !text.ends_with(b"[DONE]\n\n") {
            return Err("the stand-in's answer did not come back whole".into());
        }
        if round >= 50 {
            direct.push(d);
            direct_first.push(first.unwrap_or(d));
            routed.push(r);
            routed_first.push(first_piece.unwrap_or(r));
        }
    }
    for v in [
        &mut direct,
        &mut direct_first,
        &mut routed,
        &mut routed_first,
    ] {
        v.sort();
    }
    let p50 = |v: &[Duration]| percentile(v, 0.5);
    let p99 = |v: &[Duration]| percentile(v, 0.99);
    Ok(format!(
        "model calls against a stand-in answering after {} ({} calls each, alternating)\n  direct HTTP        p50 {}  p99 {}   first piece p50 {}\n  Llm::chat          p50 {}  p99 {}   first piece p50 {}\n  added by the layer p50 {}   first piece p50 {}",
        humantime_ms(o.latency),
        o.calls,
        ms(p50(&direct)),
        ms(p99(&direct)),
        ms(p50(&direct_first)),
        ms(p50(&routed)),
        ms(p99(&routed)),
        ms(p50(&routed_first)),
        ms(p50(&routed).saturating_sub(p50(&direct))),
        ms(p50(&routed_first).saturating_sub(p50(&direct_first))),
    ))
}

fn humantime_ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

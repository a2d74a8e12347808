//! Model providers behind one trait ([`Provider`]): an OpenAI-compatible adapter (chat
//! completions over SSE, tool calls whose deltas arrive split across chunks, structured output
//! with a JSON Schema) and an Anthropic Messages adapter (streaming, tool use). [`Llm`] routes a
//! `provider/model` to its provider and walks the fallback chain on 429, 5xx, timeouts and broken
//! streams, with a circuit breaker per provider and `Retry-After` honoured. The `llm.chat`
//! skill ([`LlmChat`]) is how bots use it; `llm.embed` ([`LlmEmbed`]) turns text into vectors
//! through the OpenAI-compatible `/embeddings` API.
//!
//! Both adapters are written on reqwest, which the node already uses: async-openai would bring
//! a second HTTP stack's worth of types for one endpoint, rig-core needs a newer compiler, and
//! neither speaks both APIs with the streaming details (split tool-call deltas) we test.

mod agent;
mod anthropic;
mod budget;
mod chat_skill;
mod embed_skill;
mod openai;
mod router;
mod sse;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use agent::{Agent, ToolRegistry};
pub use chat_skill::LlmChat;
pub use embed_skill::LlmEmbed;
pub use router::Llm;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    /// The result of a tool call, answering `tool_call_id`.
    Tool,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: String,
    /// The calls an assistant message asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A tool the model may call: a skill, offered with its input schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

/// A call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments, parsed (the model sends them as JSON text, in pieces when streaming).
    pub arguments: Value,
}

/// What one model call asks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    /// Ask for JSON matching this schema (OpenAI `response_format`; for Anthropic, an
    /// instruction and the check afterwards).
    pub json_schema: Option<Value>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
}

/// Tokens a call used, as the provider counted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// What one model call answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    /// `stop`, `length`, `tool_calls` (OpenAI's names; Anthropic's are mapped to them).
    pub finish_reason: String,
    pub usage: Usage,
    /// `provider/model` that answered (after any fallback).
    pub model: String,
}

/// What one embeddings call answered: a vector per input, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedResponse {
    pub vectors: Vec<Vec<f32>>,
    pub usage: Usage,
    /// `provider/model` that answered.
    pub model: String,
}

/// Why a call failed, and whether the next provider of the chain should be tried.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmError {
    /// 429; `retry_after` from the header when it gave one.
    RateLimited {
        retry_after: Option<Duration>,
    },
    /// 5xx.
    Server {
        status: u16,
        message: String,
    },
    Timeout,
    /// The connection failed or the stream broke off before its end.
    Transport(String),
    /// 4xx other than 429: the request itself is wrong for this provider.
    Refused {
        status: u16,
        message: String,
    },
    /// The answer could not be understood.
    BadResponse(String),
    /// The provider is skipped for a while after repeated failures.
    CoolingDown {
        provider: String,
    },
}

impl LlmError {
    /// Whether another provider (or a later attempt) may succeed.
    pub fn retryable(&self) -> bool {
        !matches!(self, LlmError::Refused { .. })
    }

    /// The skill failure this becomes (its code and whether to retry).
    pub fn skill_error(self) -> oclaw_skills::SkillError {
        chat_skill::skill_error(self)
    }
}

impl std::fmt::Display for LlmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LlmError::RateLimited {
                retry_after: Some(d),
            } => {
                write!(f, "rate limited (429), retry after {}s", d.as_secs())
            }
            LlmError::RateLimited { retry_after: None } => f.write_str("rate limited (429)"),
            LlmError::Server { status, message } => write!(f, "server error {status}: {message}"),
            LlmError::Timeout => f.write_str("timed out"),
            LlmError::Transport(m) => write!(f, "connection: {m}"),
            LlmError::Refused { status, message } => write!(f, "refused ({status}): {message}"),
            LlmError::BadResponse(m) => write!(f, "malformed answer: {m}"),
            LlmError::CoolingDown { provider } => {
                write!(
                    f,
                    "provider {provider} is cooling down after repeated failures"
                )
            }
        }
    }
}

/// Called with each piece of text as it arrives.
pub type OnDelta<'a> = &'a mut (dyn FnMut(&str) + Send);

/// A model API.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Calls `model` with `request`, streaming text pieces to `on_delta`.
    async fn chat(
        &self,
        model: &str,
        request: &ChatRequest,
        on_delta: OnDelta<'_>,
    ) -> Result<ChatResponse, LlmError>;

    /// Embeds each of `inputs` with `model`. Providers without an embeddings API refuse.
    async fn embed(&self, _model: &str, _inputs: &[String]) -> Result<EmbedResponse, LlmError> {
        Err(LlmError::Refused {
            status: 400,
            message: "this provider has no embeddings API (use an OpenAI-compatible one)".into(),
        })
    }
}

/// Sends `call` and hands each Server-Sent Event of its answer to `take`, until `take` says the
/// answer is complete (`true`) or the stream ends.
pub(crate) async fn stream_events(
    call: reqwest::RequestBuilder,
    mut take: impl FnMut(&sse::Event) -> Result<bool, LlmError>,
) -> Result<(), LlmError> {
    let mut response = call.send().await.map_err(transport_error)?;
    if !response.status().is_success() {
        return Err(status_error(response).await);
    }
    let mut decoder = sse::Decoder::default();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        for event in decoder.feed(&chunk) {
            if take(&event)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Maps an HTTP answer that is not a success to an error.
pub(crate) async fn status_error(response: reqwest::Response) -> LlmError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or_else(|| v["message"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    match status {
        429 => LlmError::RateLimited { retry_after },
        500..=599 => LlmError::Server { status, message },
        _ => LlmError::Refused { status, message },
    }
}

/// Maps a reqwest failure to an error.
pub(crate) fn transport_error(e: reqwest::Error) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout
    } else {
        LlmError::Transport(e.to_string())
    }
}

/// Parses a tool call's argument text; an empty text is no arguments.
pub(crate) fn parse_arguments(text: &str) -> Result<Value, LlmError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(text)
        .map_err(|e| LlmError::BadResponse(format!("tool call arguments are not JSON: {e}")))
}

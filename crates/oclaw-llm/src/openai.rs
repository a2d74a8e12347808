//! OpenAI-compatible chat completions (`POST {base}/chat/completions`, streamed as SSE) and
//! embeddings (`POST {base}/embeddings`): OpenAI, vLLM, llama.cpp's server, Ollama's `/v1`,
//! LM Studio.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::{
    parse_arguments, ChatRequest, ChatResponse, EmbedResponse, LlmError, Message, OnDelta,
    Provider, Role, ToolCall, Usage,
};

pub(crate) struct OpenAi {
    pub name: String,
    pub base_url: String,
    pub api_key: Option<String>,
    pub http: reqwest::Client,
}

fn message(m: &Message) -> Value {
    match m.role {
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": m.tool_call_id,
            "content": m.content,
        }),
        Role::Assistant if !m.tool_calls.is_empty() => json!({
            "role": "assistant",
            "content": if m.content.is_empty() { Value::Null } else { Value::String(m.content.clone()) },
            "tool_calls": m.tool_calls.iter().map(|c| json!({
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments.to_string()},
            })).collect::<Vec<_>>(),
        }),
        role => json!({"role": role, "content": m.content}),
    }
}

/// The request body.
pub(crate) fn body(model: &str, r: &ChatRequest) -> Value {
    let mut body = json!({
        "model": model,
        "messages": r.messages.iter().map(message).collect::<Vec<_>>(),
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !r.tools.is_empty() {
        body["tools"] = r
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters,
                }})
            })
            .collect();
    }
    if let Some(schema) = &r.json_schema {
        body["response_format"] = json!({"type": "json_schema", "json_schema": {
            "name": "output", "schema": schema, "strict": true,
        }});
    }
    if let Some(t) = r.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(m) = r.max_tokens {
        body["max_tokens"] = json!(m);
    }
    body
}

/// A tool call being assembled from its deltas (by the index the stream gives it).
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// The answer assembled from the stream's chunks.
#[derive(Default)]
pub(crate) struct Assembly {
    text: String,
    calls: BTreeMap<u64, PartialCall>,
    finish_reason: Option<String>,
    usage: Usage,
    done: bool,
}

impl Assembly {
    /// Takes one event's data; text pieces go to `on_delta`.
    pub(crate) fn take(&mut self, data: &str, on_delta: OnDelta<'_>) -> Result<(), LlmError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| LlmError::BadResponse(format!("stream chunk is not JSON: {e}")))?;
        if let Some(e) = chunk.get("error") {
            return Err(LlmError::Server {
                status: 500,
                message: e["message"]
                    .as_str()
                    .unwrap_or("error in stream")
                    .to_string(),
            });
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Usage {
                input_tokens: u["prompt_tokens"].as_u64().unwrap_or(0),
                output_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
            };
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return Ok(());
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text.push_str(text);
            on_delta(text);
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(0);
            let partial = self.calls.entry(index).or_default();
            if let Some(id) = call["id"].as_str() {
                partial.id.push_str(id);
            }
            if let Some(name) = call["function"]["name"].as_str() {
                partial.name.push_str(name);
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                partial.arguments.push_str(args);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_string());
        }
        Ok(())
    }

    pub(crate) fn finish(self, model: String) -> Result<ChatResponse, LlmError> {
        let Some(finish_reason) = self.finish_reason else {
            return Err(LlmError::Transport(
                "the stream ended before the answer did".into(),
            ));
        };
        let tool_calls = self
            .calls
            .into_values()
            .map(|c| {
                Ok(ToolCall {
                    id: c.id,
                    name: c.name,
                    arguments: parse_arguments(&c.arguments)?,
                })
            })
            .collect::<Result<Vec<_>, LlmError>>()?;
        Ok(ChatResponse {
            text: self.text,
            tool_calls,
            finish_reason,
            usage: self.usage,
            model,
        })
    }
}

#[async_trait::async_trait]
impl Provider for OpenAi {
    async fn chat(
        &self,
        model: &str,
        request: &ChatRequest,
        on_delta: OnDelta<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let url = format!("{}/chat/completions", self.base_url.trim_end_matches('/'));
        let mut call = self.http.post(&url).json(&body(model, request));
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        let mut answer = Assembly::default();
        crate::stream_events(call, |event| {
            answer.take(&event.data, on_delta)?;
            Ok(answer.done)
        })
        .await?;
        answer.finish(format!("{}/{model}", self.name))
    }

    async fn embed(&self, model: &str, inputs: &[String]) -> Result<EmbedResponse, LlmError> {
        let url = format!("{}/embeddings", self.base_url.trim_end_matches('/'));
        let mut call = self
            .http
            .post(&url)
            .json(&json!({"model": model, "input": inputs, "encoding_format": "float"}));
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        let response = call.send().await.map_err(crate::transport_error)?;
        if !response.status().is_success() {
            return Err(crate::status_error(response).await);
        }
        let answer: Value = response
            .json()
            .await
            .map_err(|e| LlmError::BadResponse(format!("embeddings answer is not JSON: {e}")))?;
        embeddings_of(&answer, inputs.len(), format!("{}/{model}", self.name))
    }
}

/// Reads an embeddings answer: `data[].embedding` placed by `data[].index`, one per input.
pub(crate) fn embeddings_of(
    answer: &Value,
    expected: usize,
    model: String,
) -> Result<EmbedResponse, LlmError> {
    let bad = |m: String| LlmError::BadResponse(m);
    let data = answer["data"]
        .as_array()
        .ok_or_else(|| bad("embeddings answer has no `data` list".into()))?;
    if data.len() != expected {
        return Err(bad(format!(
            "{} embeddings for {expected} inputs",
            data.len()
        )));
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (i, item) in data.iter().enumerate() {
        let index = item["index"].as_u64().map(|n| n as usize).unwrap_or(i);
        let vector = item["embedding"]
            .as_array()
            .ok_or_else(|| bad(format!("data[{i}].embedding is not a list of numbers")))?
            .iter()
            .map(|x| x.as_f64().map(|x| x as f32))
            .collect::<Option<Vec<f32>>>()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad(format!("data[{i}].embedding is not a list of numbers")))?;
        match vectors.get_mut(index) {
            Some(slot @ None) => *slot = Some(vector),
            _ => return Err(bad(format!("data[{i}].index {index} is out of place"))),
        }
    }
    let vectors: Vec<Vec<f32>> = vectors.into_iter().flatten().collect();
    if vectors.iter().any(|v| v.len() != vectors[0].len()) {
        return Err(bad("embeddings of different lengths".into()));
    }
    Ok(EmbedResponse {
        vectors,
        usage: Usage {
            input_tokens: answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
            output_tokens: 0,
        },
        model,
    })
}

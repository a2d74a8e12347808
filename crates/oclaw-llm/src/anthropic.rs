//! Anthropic's Messages API (`POST {base}/v1/messages`, streamed as SSE), with tool use.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::{
    parse_arguments, ChatRequest, ChatResponse, LlmError, OnDelta, Provider, Role, ToolCall, Usage,
};

pub(crate) struct Anthropic {
    pub name: String,
    pub base_url: String,
    pub api_key: Option<String>,
    pub http: reqwest::Client,
}

/// The request body: system messages become `system`, tool results become `tool_result` blocks
/// of a user turn (consecutive ones in one turn), and a JSON Schema becomes an instruction.
pub(crate) fn body(model: &str, r: &ChatRequest) -> Value {
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<Value> = Vec::new();
    for m in &r.messages {
        match m.role {
            Role::System => system.push(m.content.clone()),
            Role::User => turns.push(json!({"role": "user", "content": m.content})),
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for c in &m.tool_calls {
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}));
                }
                turns.push(json!({"role": "assistant", "content": blocks}));
            }
            Role::Tool => {
                let block = json!({"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content});
                match turns.last_mut() {
                    Some(last)
                        if last["role"] == "user"
                            && last["content"]
                                .as_array()
                                .is_some_and(|b| b.iter().all(|b| b["type"] == "tool_result")) =>
                    {
                        if let Some(blocks) = last["content"].as_array_mut() {
                            blocks.push(block);
                        }
                    }
                    _ => turns.push(json!({"role": "user", "content": [block]})),
                }
            }
        }
    }
    if let Some(schema) = &r.json_schema {
        system.push(format!(
            "Answer with one JSON value only, no prose, matching this JSON Schema: {schema}"
        ));
    }
    let mut body = json!({
        "model": model,
        "max_tokens": r.max_tokens.unwrap_or(1024),
        "messages": turns,
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !r.tools.is_empty() {
        body["tools"] = r
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
    }
    if let Some(t) = r.temperature {
        body["temperature"] = json!(t);
    }
    body
}

enum Block {
    Text,
    Tool {
        id: String,
        name: String,
        input: String,
    },
}

#[derive(Default)]
pub(crate) struct Assembly {
    text: String,
    blocks: BTreeMap<u64, Block>,
    stop_reason: Option<String>,
    usage: Usage,
    done: bool,
}

impl Assembly {
    pub(crate) fn take(
        &mut self,
        event: &str,
        data: &str,
        on_delta: OnDelta<'_>,
    ) -> Result<(), LlmError> {
        let v: Value = serde_json::from_str(data)
            .map_err(|e| LlmError::BadResponse(format!("stream event is not JSON: {e}")))?;
        let kind = if event.is_empty() {
            v["type"].as_str().unwrap_or_default()
        } else {
            event
        };
        let index = v["index"].as_u64().unwrap_or(0);
        match kind {
            "message_start" => {
                self.usage.input_tokens =
                    v["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_start" => {
                let b = &v["content_block"];
                let block = match b["type"].as_str() {
                    Some("tool_use") => Block::Tool {
                        id: b["id"].as_str().unwrap_or_default().to_string(),
                        name: b["name"].as_str().unwrap_or_default().to_string(),
                        input: String::new(),
                    },
                    _ => Block::Text,
                };
                self.blocks.insert(index, block);
            }
            "content_block_delta" => {
                let d = &v["delta"];
                match (d["type"].as_str(), self.blocks.get_mut(&index)) {
                    (Some("text_delta"), _) => {
                        let text = d["text"].as_str().unwrap_or_default();
                        self.text.push_str(text);
                        on_delta(text);
                    }
                    (Some("input_json_delta"), Some(Block::Tool { input, .. })) => {
                        input.push_str(d["partial_json"].as_str().unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(r) = v["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(r.to_string());
                }
                if let Some(n) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = n;
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                let message = v["error"]["message"]
                    .as_str()
                    .unwrap_or("error in stream")
                    .to_string();
                return Err(match v["error"]["type"].as_str() {
                    Some("rate_limit_error") => LlmError::RateLimited { retry_after: None },
                    Some("invalid_request_error") => LlmError::Refused {
                        status: 400,
                        message,
                    },
                    _ => LlmError::Server {
                        status: 529,
                        message,
                    },
                });
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn finish(self, model: String) -> Result<ChatResponse, LlmError> {
        let (true, Some(stop)) = (self.done, self.stop_reason) else {
            return Err(LlmError::Transport(
                "the stream ended before the answer did".into(),
            ));
        };
        let finish_reason = match stop.as_str() {
            "max_tokens" => "length",
            "tool_use" => "tool_calls",
            _ => "stop",
        }
        .to_string();
        let mut tool_calls = Vec::new();
        for block in self.blocks.into_values() {
            if let Block::Tool { id, name, input } = block {
                tool_calls.push(ToolCall {
                    id,
                    name,
                    arguments: parse_arguments(&input)?,
                });
            }
        }
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
impl Provider for Anthropic {
    async fn chat(
        &self,
        model: &str,
        request: &ChatRequest,
        on_delta: OnDelta<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let url = format!("{}/v1/messages", self.base_url.trim_end_matches('/'));
        let mut call = self
            .http
            .post(&url)
            .header("anthropic-version", "2023-06-01")
            .json(&body(model, request));
        if let Some(key) = &self.api_key {
            call = call.header("x-api-key", key);
        }
        let mut answer = Assembly::default();
        crate::stream_events(call, |event| {
            answer.take(&event.event, &event.data, on_delta)?;
            Ok(answer.done)
        })
        .await?;
        answer.finish(format!("{}/{model}", self.name))
    }
}

//! The `llm.chat` skill: one model call. `with: {model?, system?, prompt | messages,
//! json_schema?, temperature?, max_tokens?}` → `{text, data, model, finish_reason, usage}`.
//! With `json_schema`, the answer must be JSON matching it (`data` holds it parsed); an answer
//! that is not is retried like a failed call. The step's output is checkpointed, so a retry of
//! a later step never pays for this call again.

use std::sync::Arc;

use async_trait::async_trait;
use oclaw_core::ErrorCode;
use oclaw_skills::{Skill, SkillCall, SkillContext, SkillError};
use serde_json::{json, Value};

use crate::{ChatRequest, Llm, LlmError, Message, Role};

pub struct LlmChat {
    pub llm: Arc<Llm>,
}

const FIELDS: &[&str] = &[
    "model",
    "system",
    "prompt",
    "messages",
    "json_schema",
    "temperature",
    "max_tokens",
];

/// The skill error for a failed call.
pub(crate) fn skill_error(e: LlmError) -> SkillError {
    match e {
        LlmError::Refused { .. } => SkillError::permanent(ErrorCode::LlmRefused, e.to_string()),
        LlmError::BadResponse(_) => SkillError::transient(ErrorCode::LlmBadResponse, e.to_string()),
        other => SkillError::transient(ErrorCode::LlmUnavailable, other.to_string()),
    }
}

/// The JSON in a model's answer: the whole text, or the inside of a ```json fence.
fn json_of(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    let inner = t.split_once("```")?.1;
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    let inner = inner.split_once("```").map(|(a, _)| a).unwrap_or(inner);
    serde_json::from_str(inner.trim()).ok()
}

fn messages(with: &Value) -> Result<Vec<Message>, SkillError> {
    let mut out = Vec::new();
    if let Some(system) = with.get("system").and_then(Value::as_str) {
        out.push(Message::new(Role::System, system));
    }
    match (with.get("prompt"), with.get("messages")) {
        (Some(Value::String(p)), None | Some(Value::Null)) => {
            out.push(Message::new(Role::User, p.clone()))
        }
        (None | Some(Value::Null), Some(Value::Array(list))) => {
            for (i, m) in list.iter().enumerate() {
                let role = match m["role"].as_str() {
                    Some("system") => Role::System,
                    Some("user") => Role::User,
                    Some("assistant") => Role::Assistant,
                    other => {
                        return Err(SkillError::invalid(format!(
                            "llm.chat: messages[{i}].role must be system, user or assistant, got {other:?}"
                        )))
                    }
                };
                let content = match &m["content"] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                out.push(Message::new(role, content));
            }
        }
        (Some(_), Some(_)) => {
            return Err(SkillError::invalid(
                "llm.chat: give `prompt` or `messages`, not both",
            ))
        }
        _ => {
            return Err(SkillError::invalid(
                "llm.chat: `prompt` (text) or `messages` (a list) is required",
            ))
        }
    }
    Ok(out)
}

#[async_trait]
impl Skill for LlmChat {
    fn name(&self) -> &'static str {
        "llm.chat"
    }
    fn summary(&self) -> &'static str {
        "one model call (llm.providers), optionally answering JSON that matches a schema"
    }
    fn fields(&self) -> &'static [&'static str] {
        FIELDS
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        self.llm
            .check_step("llm.chat", with)
            .map_err(SkillError::invalid)?;
        if let Some(schema) = with.get("json_schema").filter(|s| s.is_object()) {
            jsonschema::validator_for(schema)
                .map_err(|e| SkillError::invalid(format!("llm.chat: json_schema: {e}")))?;
        }
        if with.get("prompt").is_none() && with.get("messages").is_none() {
            return Err(SkillError::invalid(
                "llm.chat: `prompt` (text) or `messages` (a list) is required",
            ));
        }
        Ok(())
    }

    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let with = &call.with;
        let schema = with.get("json_schema").filter(|s| !s.is_null()).cloned();
        let validator = match &schema {
            Some(s) => Some(
                jsonschema::validator_for(s)
                    .map_err(|e| SkillError::invalid(format!("llm.chat: json_schema: {e}")))?,
            ),
            None => None,
        };
        let request = ChatRequest {
            messages: messages(with)?,
            tools: Vec::new(),
            json_schema: schema,
            temperature: with.get("temperature").and_then(Value::as_f64),
            max_tokens: with
                .get("max_tokens")
                .and_then(Value::as_u64)
                .map(|n| n as u32),
        };
        let model = with.get("model").and_then(Value::as_str);
        let streams = oclaw_core::stream::TaskStreams::global();
        let answer = crate::budget::metered_chat(&self.llm, ctx, model, &request, &mut |piece| {
            streams.publish(ctx.task_id, piece)
        })
        .await?;
        if self.llm.log_content {
            tracing::debug!(component = "llm", model = %answer.model, completion = %answer.text, "llm.chat answer");
        }
        let data = match &validator {
            Some(v) => {
                let data = json_of(&answer.text).ok_or_else(|| {
                    skill_error(LlmError::BadResponse(format!(
                        "{} answered text that is not JSON",
                        answer.model
                    )))
                })?;
                v.validate(&data).map_err(|e| {
                    skill_error(LlmError::BadResponse(format!(
                        "{} answered JSON that does not match json_schema: {e}",
                        answer.model
                    )))
                })?;
                data
            }
            None => Value::Null,
        };
        Ok(json!({
            "text": answer.text,
            "data": data,
            "model": answer.model,
            "finish_reason": answer.finish_reason,
            "usage": self.llm.priced_usage(&answer.model, &answer.usage),
        }))
    }
}

//! The `llm.embed` skill: text to vectors through a provider's embeddings API.
//! `with: {model, input | inputs}` → `{embeddings: [[f32]], model, dimensions, usage}`.
//! `model` is required (`provider/model`): a chat model is rarely an embedding model, and
//! there is no fallback, since vectors of two models cannot be compared. Tokens count against
//! the bot's budget like chat calls.

use std::sync::Arc;

use async_trait::async_trait;
use oclaw_skills::{Skill, SkillCall, SkillContext, SkillError};
use serde_json::{json, Value};

use crate::Llm;

/// Inputs one call may carry (OpenAI's own limit is 2,048).
const MAX_INPUTS: usize = 2048;

pub struct LlmEmbed {
    pub llm: Arc<Llm>,
}

fn inputs(with: &Value) -> Result<Vec<String>, SkillError> {
    match (with.get("input"), with.get("inputs")) {
        (Some(Value::String(s)), None | Some(Value::Null)) => Ok(vec![s.clone()]),
        (None | Some(Value::Null), Some(Value::Array(list))) => {
            if list.len() > MAX_INPUTS {
                return Err(SkillError::invalid(format!(
                    "llm.embed: {} inputs, at most {MAX_INPUTS} a call",
                    list.len()
                )));
            }
            list.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        SkillError::invalid(format!("llm.embed: inputs[{i}] is not text"))
                    })
                })
                .collect()
        }
        (Some(_), Some(_)) => Err(SkillError::invalid(
            "llm.embed: give `input` or `inputs`, not both",
        )),
        _ => Err(SkillError::invalid(
            "llm.embed: `input` (text) or `inputs` (a list of texts) is required",
        )),
    }
}

#[async_trait]
impl Skill for LlmEmbed {
    fn name(&self) -> &'static str {
        "llm.embed"
    }
    fn summary(&self) -> &'static str {
        "text to vectors through a provider's embeddings API (llm.providers)"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["model", "input", "inputs"]
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        if with.get("model").is_none() {
            return Err(SkillError::invalid(
                "llm.embed: `model` (provider/model of an embedding model) is required",
            ));
        }
        self.llm
            .check_step("llm.embed", with)
            .map_err(SkillError::invalid)?;
        if with.get("input").is_none() && with.get("inputs").is_none() {
            return Err(SkillError::invalid(
                "llm.embed: `input` (text) or `inputs` (a list of texts) is required",
            ));
        }
        Ok(())
    }

    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let model = call
            .with
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| SkillError::invalid("llm.embed: `model` is required"))?;
        let texts = inputs(&call.with)?;
        let reserved = crate::budget::estimate_texts(&texts) as i64;
        let counters = crate::budget::reserve(ctx, reserved).await?;
        let answer = self.llm.embed(model, &texts).await;
        let used = answer
            .as_ref()
            .map(|a| a.usage.input_tokens as i64)
            .unwrap_or(0);
        crate::budget::settle(ctx, &counters, reserved, used).await?;
        let answer = answer.map_err(crate::chat_skill::skill_error)?;
        Ok(json!({
            "embeddings": answer.vectors,
            "model": answer.model,
            "dimensions": answer.vectors.first().map(Vec::len).unwrap_or(0),
            "usage": self.llm.priced_usage(&answer.model, &answer.usage),
        }))
    }
}

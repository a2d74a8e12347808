//! `sleep`: waits `duration`; passes its data through unchanged.

use async_trait::async_trait;
use serde_json::Value;

use crate::context::{only_fields, req_str};
use crate::{Skill, SkillCall, SkillContext, SkillError};

pub struct Sleep;

fn duration(with: &Value) -> Result<std::time::Duration, SkillError> {
    let text = req_str(with, "duration", "sleep")?;
    oclaw_core::duration::parse_duration(text)
        .map_err(|e| SkillError::invalid(format!("sleep: {e}")))
}

#[async_trait]
impl Skill for Sleep {
    fn name(&self) -> &'static str {
        "sleep"
    }
    fn summary(&self) -> &'static str {
        "wait `duration` (for example `500ms`); output is the input unchanged"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["duration"]
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only_fields(with, &["duration"], "sleep")?;
        match with.get("duration") {
            Some(Value::String(s)) if s.contains("{{") => Ok(()),
            _ => duration(with).map(|_| ()),
        }
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        only_fields(&call.with, &["duration"], "sleep")?;
        tokio::time::sleep(duration(&call.with)?).await;
        Ok(call.data)
    }
}

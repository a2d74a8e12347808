//! `log`: writes a log line for the task; passes its data through unchanged.

use async_trait::async_trait;
use serde_json::Value;

use crate::context::{only_fields, opt_str, req_str};
use crate::{Skill, SkillCall, SkillContext, SkillError};

pub struct Log;

const FIELDS: &[&str] = &["message", "level"];

fn check_level(with: &Value) -> Result<&str, SkillError> {
    let level = opt_str(with, "level", "log")?.unwrap_or("info");
    match level {
        "error" | "warn" | "info" | "debug" | "trace" => Ok(level),
        other => Err(SkillError::invalid(format!(
            "log: level `{other}` is not one of error, warn, info, debug, trace"
        ))),
    }
}

#[async_trait]
impl Skill for Log {
    fn name(&self) -> &'static str {
        "log"
    }
    fn summary(&self) -> &'static str {
        "write `message` to the node's log at `level`; output is the input unchanged"
    }
    fn fields(&self) -> &'static [&'static str] {
        FIELDS
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only_fields(with, FIELDS, "log")?;
        check_level(with).map(|_| ())
    }
    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        only_fields(&call.with, FIELDS, "log")?;
        let message = req_str(&call.with, "message", "log")?;
        let task_id = ctx.task_id.to_string();
        let (bot, trace_id) = (ctx.bot.as_str(), ctx.trace_id.as_str());
        match check_level(&call.with)? {
            "error" => tracing::error!(component = "bot", task_id, bot, trace_id, "{message}"),
            "warn" => tracing::warn!(component = "bot", task_id, bot, trace_id, "{message}"),
            "debug" => tracing::debug!(component = "bot", task_id, bot, trace_id, "{message}"),
            "trace" => tracing::trace!(component = "bot", task_id, bot, trace_id, "{message}"),
            _ => tracing::info!(component = "bot", task_id, bot, trace_id, "{message}"),
        }
        Ok(call.data)
    }
}

//! `task.enqueue`: hands work to another bot as a new durable task (a hand-off to a human
//! queue, a fan-out). The task is created once per step and attempt: a retried step finds the
//! task it created before (idempotency key from the task, step and `key`).

use async_trait::async_trait;
use oclaw_core::{ErrorCode, NewTask};
use serde_json::{json, Value};

use crate::context::{only_fields, opt_str, req_str};
use crate::{Skill, SkillCall, SkillContext, SkillError};

pub struct TaskEnqueue;

#[async_trait]
impl Skill for TaskEnqueue {
    fn side_effects(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "task.enqueue"
    }
    fn summary(&self) -> &'static str {
        "submit a task for `bot` on `queue` (default `default`) with `input`; output {task_id, created}"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["bot", "queue", "input", "priority", "ordering_key"]
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only_fields(with, self.fields(), "task.enqueue")?;
        req_str(with, "bot", "task.enqueue").map(|_| ())
    }
    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        self.check_literal(&call.with)?;
        let w = &call.with;
        let bot = req_str(w, "bot", "task.enqueue")?;
        let queue = opt_str(w, "queue", "task.enqueue")?.unwrap_or("default");
        let mut task = NewTask::new(bot, queue, w.get("input").cloned().unwrap_or(Value::Null));
        // The enqueuing bot's tenant: a worker runs it only when the bot named is of the same
        // tenant, so no bot can start another tenant's.
        task.tenant.clone_from(&ctx.tenant);
        task.priority = w.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32;
        task.ordering_key = opt_str(w, "ordering_key", "task.enqueue")?.map(str::to_string);
        task.idempotency_key = Some(format!("enqueue:{}:{}", ctx.task_id, ctx.step));
        task.trace_id = ctx.trace_id.clone();
        let e = ctx.store.enqueue(task).await.map_err(|e| SkillError {
            code: if e.code() == ErrorCode::QueueFull {
                ErrorCode::SkillFailed
            } else {
                e.code()
            },
            message: format!("task.enqueue: {e}"),
            retryable: true,
        })?;
        Ok(json!({"task_id": e.task.id, "created": e.created}))
    }
}

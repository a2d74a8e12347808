//! Waiting tasks: what a parked task waits for (an event, an approval, a timer, a child task),
//! the events that wake them, and the approval decisions both backends apply the same way.

use chrono::{DateTime, Utc};
use oclaw_core::{NewTask, TaskError, TaskId};
use serde::Serialize;
use serde_json::{json, Value};

/// What a waiting task waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    /// A named event with a correlation key (`POST /v1/events`, the `event.emit` skill).
    Event,
    /// Decisions of people (`POST /v1/approvals/{id}/approve|reject`).
    Approval,
    /// A durable timer: only the deadline ends it.
    Sleep,
    /// A child task (`bot.call`): its end ends the wait.
    Child,
}

impl WaitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitKind::Event => "event",
            WaitKind::Approval => "approval",
            WaitKind::Sleep => "sleep",
            WaitKind::Child => "child",
        }
    }

    pub fn parse(s: &str) -> Option<WaitKind> {
        [
            WaitKind::Event,
            WaitKind::Approval,
            WaitKind::Sleep,
            WaitKind::Child,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Where a wait stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitStatus {
    Pending,
    /// What it waited for happened; the task was queued again.
    Done,
    /// The deadline came first; `on_timeout` decided what followed.
    TimedOut,
    /// The task was cancelled while it waited.
    Cancelled,
}

impl WaitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitStatus::Pending => "pending",
            WaitStatus::Done => "done",
            WaitStatus::TimedOut => "timed_out",
            WaitStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<WaitStatus> {
        [
            WaitStatus::Pending,
            WaitStatus::Done,
            WaitStatus::TimedOut,
            WaitStatus::Cancelled,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A correlation key as given: text (not empty), or a number written as text.
pub fn key_text(key: &Value) -> Option<String> {
    match key {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What happens when a wait's deadline comes first.
#[derive(Debug, Clone, PartialEq)]
pub enum OnTimeout {
    /// The step finishes with this output and the task goes on.
    Output(Value),
    /// The task fails (permanently) with this error.
    Fail(TaskError),
}

impl OnTimeout {
    pub(crate) fn to_json(&self) -> Value {
        match self {
            OnTimeout::Output(v) => json!({ "output": v }),
            OnTimeout::Fail(e) => json!({ "error": { "code": e.code, "message": e.message } }),
        }
    }

    pub(crate) fn from_json(v: &Value) -> OnTimeout {
        match v.get("error") {
            Some(e) => OnTimeout::Fail(TaskError {
                code: e["code"].as_str().unwrap_or_default().to_string(),
                message: e["message"].as_str().unwrap_or_default().to_string(),
            }),
            None => OnTimeout::Output(v.get("output").cloned().unwrap_or(Value::Null)),
        }
    }
}

/// A wait a step asks for; its outcome becomes the checkpoint of `step` at `index`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWait {
    pub step: String,
    pub index: u32,
    pub kind: WaitKind,
    /// The event's name (`Event`).
    pub name: Option<String>,
    /// The event's correlation key (`Event`).
    pub key: Option<String>,
    pub deadline: Option<DateTime<Utc>>,
    /// What the deadline does (ignored without one).
    pub on_timeout: OnTimeout,
    /// Kind-specific facts: an approval's `message`, `approvers` and `required`.
    pub detail: Value,
}

/// A running attempt that parks its task: fenced like a completion (worker and attempt).
#[derive(Debug, Clone, PartialEq)]
pub struct Park {
    pub id: TaskId,
    pub worker: String,
    pub attempt: u32,
    pub wait: NewWait,
    /// The child task of a `bot.call`, created in the same transaction (its parent is `id`).
    pub child: Option<NewTask>,
}

/// What a park did.
#[derive(Debug, Clone, PartialEq)]
pub enum Parked {
    /// The task waits (`wait` is the wait's id; `child` the child task's id, for `bot.call`).
    Waiting { wait: i64, child: Option<TaskId> },
    /// A kept event matched at once: the task is queued again.
    Resumed { wait: i64 },
    /// The attempt no longer holds the lease (expired, cancelled): nothing changed.
    Fenced,
}

/// An event sent to waiting tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub name: String,
    pub key: String,
    pub data: Value,
    /// How long an event nobody waits for yet is kept for a wait to come.
    pub retention: std::time::Duration,
}

/// What an event did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventReport {
    /// Tasks it woke.
    pub woke: Vec<TaskId>,
    /// Kept for a later wait (nobody waited): the event's id.
    pub kept: Option<i64>,
}

/// One person's answer to an approval.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub by: String,
    pub approve: bool,
    pub comment: Option<String>,
}

/// A wait as stored, with its decisions (approvals) and outcome.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct WaitRecord {
    pub id: i64,
    pub task_id: TaskId,
    pub bot: String,
    pub step: String,
    pub kind: WaitKind,
    pub status: WaitStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub deadline: Option<DateTime<Utc>>,
    pub detail: Value,
    /// Approvals: every decision, allowed or refused, with who and when.
    pub decisions: Value,
    pub output: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Filters for listing waits, newest first.
#[derive(Debug, Clone, Default)]
pub struct WaitFilter {
    pub kind: Option<WaitKind>,
    pub status: Option<WaitStatus>,
    pub task: Option<TaskId>,
    /// The event key, or for an approval the conversation it can be answered from.
    pub key: Option<String>,
    pub limit: usize,
}

/// The columns [`wait_from`] reads, in its order (`b` is the task's bot).
pub(crate) const WAIT_COLUMNS: &str = "w.id, w.task_id, t.bot, w.step, w.kind, w.status, w.name, \
    w.key, w.deadline, w.detail, w.decisions, w.output, w.created_at, w.resolved_at";

pub(crate) fn wait_from<C: crate::rows::Columns>(r: &C) -> Result<WaitRecord, C::Error> {
    use crate::codec::{from_ms, parse_json};
    Ok(WaitRecord {
        id: r.int(0)?,
        task_id: TaskId(r.int(1)?),
        bot: r.text(2)?,
        step: r.text(3)?,
        kind: WaitKind::parse(&r.text(4)?).unwrap_or(WaitKind::Event),
        status: WaitStatus::parse(&r.text(5)?).unwrap_or(WaitStatus::Pending),
        name: r.opt_text(6)?,
        key: r.opt_text(7)?,
        deadline: r.opt_int(8)?.map(from_ms),
        detail: parse_json(&r.text(9)?),
        decisions: parse_json(&r.text(10)?),
        output: r.opt_text(11)?.as_deref().map(parse_json),
        created_at: from_ms(r.int(12)?),
        resolved_at: r.opt_int(13)?.map(from_ms),
    })
}

/// What one decision does to an approval.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// The approver is not among those named: recorded, refused.
    Refused,
    /// Counted; more approvals are needed.
    Counted,
    /// Decided: the step's output.
    Decided(Value),
}

/// Applies `d` to an approval with `detail` (`approvers`: names, none = anyone; `required`:
/// approvals needed, default 1) and the decisions so far (appended to, refused ones included).
/// One rejection decides; a person's second approval does not count twice.
pub(crate) fn decide(detail: &Value, decisions: &mut Vec<Value>, d: &Decision, now: i64) -> Effect {
    let named: Vec<&str> = detail["approvers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let allowed = named.is_empty() || named.contains(&d.by.as_str());
    decisions.push(json!({
        "by": d.by,
        "approve": d.approve,
        "comment": d.comment,
        "at": crate::codec::from_ms(now),
        "allowed": allowed,
    }));
    if !allowed {
        return Effect::Refused;
    }
    let comment = d.comment.clone();
    if !d.approve {
        return Effect::Decided(json!({
            "approved": false, "by": d.by, "comment": comment, "approvers": [d.by],
        }));
    }
    let mut approvers: Vec<&str> = Vec::new();
    for x in decisions.iter() {
        if x["allowed"] == true && x["approve"] == true {
            let by = x["by"].as_str().unwrap_or_default();
            if !approvers.contains(&by) {
                approvers.push(by);
            }
        }
    }
    let required = detail["required"].as_u64().unwrap_or(1).max(1) as usize;
    if approvers.len() >= required {
        Effect::Decided(json!({
            "approved": true, "by": d.by, "comment": comment, "approvers": approvers,
        }))
    } else {
        Effect::Counted
    }
}

/// The error a parent fails with when its child task ends without success.
pub(crate) fn child_failure(
    child: TaskId,
    status: &str,
    error: Option<(String, String)>,
) -> TaskError {
    let why = match error {
        Some((code, message)) => format!(": {code} {message}"),
        None => String::new(),
    };
    TaskError::new(
        oclaw_core::ErrorCode::ChildTaskFailed,
        format!("child task {child} ended {status}{why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(by: &str, approve: bool) -> Decision {
        Decision {
            by: by.into(),
            approve,
            comment: None,
        }
    }

    #[test]
    fn two_of_three_needs_two_distinct_allowed_approvers() {
        let detail = json!({"approvers": ["ann", "bob", "cy"], "required": 2});
        let mut ds = Vec::new();
        assert_eq!(
            decide(&detail, &mut ds, &d("ann", true), 0),
            Effect::Counted
        );
        assert_eq!(
            decide(&detail, &mut ds, &d("ann", true), 0),
            Effect::Counted
        );
        assert_eq!(
            decide(&detail, &mut ds, &d("eve", true), 0),
            Effect::Refused
        );
        match decide(&detail, &mut ds, &d("bob", true), 0) {
            Effect::Decided(v) => {
                assert_eq!(v["approved"], true);
                assert_eq!(v["approvers"], json!(["ann", "bob"]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ds.len(), 4);
        assert_eq!(ds[2]["allowed"], false);
    }

    #[test]
    fn one_rejection_decides_and_anyone_may_answer_an_open_approval() {
        let mut ds = Vec::new();
        match decide(&json!({"required": 3}), &mut ds, &d("zed", false), 0) {
            Effect::Decided(v) => assert_eq!(v["approved"], false),
            other => panic!("{other:?}"),
        }
    }
}

//! The task: one run of one bot on one input, and its life cycle.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::ErrorCode;

/// A task id, shown as `T` followed by a number (`T123456789`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub i64);

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "T{}", self.0)
    }
}

impl std::str::FromStr for TaskId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.strip_prefix('T').unwrap_or(s);
        digits
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(TaskId)
            .ok_or_else(|| format!("`{s}` is not a task id (expected T followed by digits)"))
    }
}

impl Serialize for TaskId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for TaskId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TaskId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^T[0-9]+$", "examples": ["T123456789"]})
    }
}

/// Where a task is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting for its `run_at` (first run or a retry's backoff).
    Scheduled,
    /// Ready to be claimed by a worker.
    Queued,
    /// Claimed by a worker under a lease.
    Running,
    /// Parked on an event, an approval, a child task or a long timer: holds no lease and no
    /// worker slot; the store queues it again when what it waits for happens.
    Waiting,
    Succeeded,
    /// Failed with an error that retrying cannot fix; kept for inspection and redrive.
    Failed,
    /// Attempts exhausted; kept for inspection and redrive.
    Dead,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 8] = [
        TaskStatus::Scheduled,
        TaskStatus::Queued,
        TaskStatus::Running,
        TaskStatus::Waiting,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Dead,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Scheduled => "scheduled",
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Waiting => "waiting",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Dead => "dead",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// True once the task will not run again unless redriven.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Dead | TaskStatus::Cancelled
        )
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TaskStatus::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown task status `{s}`; one of: {}",
                    TaskStatus::ALL.map(|t| t.as_str()).join(", ")
                )
            })
    }
}

/// Why a task (or its last attempt) failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskError {
    /// An `OC-xxxx` code.
    pub code: String,
    pub message: String,
}

impl TaskError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> TaskError {
        TaskError {
            code: code.code().to_string(),
            message: message.into(),
        }
    }
}

/// The saved output of one completed step, so a retry resumes after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Checkpoint {
    pub step: String,
    pub index: u32,
    pub output: Value,
    pub at: DateTime<Utc>,
}

/// A task as stored and as answered by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Task {
    pub id: TaskId,
    pub bot: String,
    pub queue: String,
    pub status: TaskStatus,
    pub priority: i32,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<TaskError>,
    pub attempts: u32,
    pub max_attempts: u32,
    pub idempotency_key: Option<String>,
    pub trace_id: String,
    pub created_at: DateTime<Utc>,
    pub run_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub worker: Option<String>,
    /// The tenant of the task's bot (see `metadata.tenant`).
    #[serde(default = "crate::bot::default_tenant")]
    pub tenant: String,
    /// The task whose `bot.call` step made this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<TaskId>,
    #[serde(default)]
    pub checkpoints: Vec<Checkpoint>,
}

/// What a caller asks the store to enqueue. Defaults are filled by the node before this point.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub bot: String,
    /// The tenant of the bot (`default` unless its `metadata.tenant` says otherwise).
    pub tenant: String,
    pub queue: String,
    pub input: Value,
    pub priority: i32,
    /// `None` means "now": the task is queued at once.
    pub run_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    /// Tasks sharing an ordering key run one at a time, in the order they were submitted (a
    /// conversation's messages, say); tasks without one run in parallel.
    pub ordering_key: Option<String>,
    /// Tasks of one ordering key that may run at once (`None`: one).
    pub key_limit: Option<u32>,
    /// The revision of the bot definition the task runs on to its end (`None`: whatever is
    /// loaded when it runs).
    pub bot_rev: Option<String>,
    /// Tasks with the same debounce key fold into the one that has not started yet (see
    /// `spec.debounce`): the newest input, the newest `run_at`.
    pub debounce_key: Option<String>,
    /// Tasks with the same rate key start at most `.0` times in any `.1` milliseconds (see
    /// `spec.rate_limit`).
    pub rate_key: Option<String>,
    pub rate: Option<(u32, u64)>,
    pub max_attempts: u32,
    pub trace_id: String,
}

impl NewTask {
    /// A task for `bot` on `queue` with default priority, three attempts and a fresh trace id.
    pub fn new(bot: impl Into<String>, queue: impl Into<String>, input: Value) -> NewTask {
        NewTask {
            bot: bot.into(),
            tenant: crate::bot::DEFAULT_TENANT.to_string(),
            queue: queue.into(),
            input,
            priority: 0,
            run_at: None,
            idempotency_key: None,
            ordering_key: None,
            key_limit: None,
            bot_rev: None,
            debounce_key: None,
            rate_key: None,
            rate: None,
            max_attempts: 3,
            trace_id: new_trace_id(),
        }
    }
}

/// A new random 128-bit trace id in W3C trace-context form (32 lowercase hex digits).
pub fn new_trace_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(1..), fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_round_trip() {
        let id: TaskId = "T123456789".parse().unwrap();
        assert_eq!(id, TaskId(123456789));
        assert_eq!(id.to_string(), "T123456789");
        assert_eq!("42".parse::<TaskId>().unwrap(), TaskId(42));
        assert!("Tabc".parse::<TaskId>().is_err());
        assert!("T0".parse::<TaskId>().is_err());
    }

    #[test]
    fn status_names_are_stable() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), s);
        }
        assert!(TaskStatus::Dead.is_terminal());
        assert!(!TaskStatus::Scheduled.is_terminal());
        assert_eq!(new_trace_id().len(), 32);
    }
}

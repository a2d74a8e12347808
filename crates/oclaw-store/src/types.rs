//! The values that cross the store boundary: enqueue answers, claim requests and claimed tasks,
//! completions, queue statistics, node registry entries.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use oclaw_core::{Checkpoint, Task, TaskError, TaskId, TaskStatus};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, Notify};

/// The answer to an enqueue: the task, and whether this call created it
/// (`false` when an idempotency key matched an existing task).
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub task: Task,
    pub created: bool,
}

/// What a worker asks for in one claim round trip.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub worker: String,
    /// Queues to claim from; empty means all queues.
    pub queues: Vec<String>,
    pub limit: usize,
    pub lease: Duration,
}

/// A task handed to a worker under a lease.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedTask {
    pub id: TaskId,
    pub bot: String,
    pub queue: String,
    pub priority: i32,
    pub input: Value,
    /// This attempt's number (1 for the first run); completions must quote it (fencing).
    pub attempt: u32,
    pub max_attempts: u32,
    pub trace_id: String,
    pub created_at: DateTime<Utc>,
    pub run_at: DateTime<Utc>,
    /// The task whose `bot.call` made this one: its completion must name it (see
    /// [`Completion::parent`]).
    pub parent: Option<TaskId>,
    /// The tenant of the task's bot.
    pub tenant: String,
    /// The revision of the bot definition the task runs on (see `NewTask::bot_rev`).
    pub bot_rev: Option<String>,
    /// Steps completed by earlier attempts, so this attempt resumes after them.
    pub checkpoints: Vec<Checkpoint>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded(Value),
    /// `retry_at: None` is a permanent failure (`failed`); otherwise the task is `scheduled` again
    /// at `retry_at`, or `dead` when its attempts are used up.
    Failed {
        error: TaskError,
        retry_at: Option<DateTime<Utc>>,
    },
}

/// One finished attempt, reported by the worker that held the lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub id: TaskId,
    pub worker: String,
    pub attempt: u32,
    pub outcome: Outcome,
    /// Key-value writes that belong to a success (a conversation's history, say): committed in
    /// the same transaction as the completion, and not at all when it is fenced or failed.
    pub kv: Vec<KvWrite>,
    /// Tasks that follow a success (the delivery of a reply, say): enqueued in the same
    /// transaction as the completion, so they exist exactly when the success is recorded. They
    /// bypass queue capacity (a finished task's follow-up is never refused); idempotency keys
    /// are not looked at (the completion's fencing already makes them once-only).
    pub follow_ups: Vec<oclaw_core::NewTask>,
    /// The task's parent ([`ClaimedTask::parent`]): a child's end wakes its parent in the same
    /// transaction.
    pub parent: Option<TaskId>,
}

/// A key-value write carried by a completion.
#[derive(Debug, Clone, PartialEq)]
pub struct KvWrite {
    pub namespace: String,
    pub key: String,
    pub value: Value,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a batch of completions did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompletionReport {
    /// Completions recorded.
    pub applied: usize,
    /// Completions refused because the worker no longer held the lease (expired, cancelled).
    pub fenced: Vec<TaskId>,
    /// Tasks that reached a terminal state in this batch.
    pub finished: Vec<TaskId>,
}

/// What one lease-expiry pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpiredReport {
    pub requeued: u64,
    pub dead: u64,
}

/// Filters for listing tasks, newest first.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub bot: Option<String>,
    pub queue: Option<String>,
    /// Only tasks of this tenant.
    pub tenant: Option<String>,
    /// Only tasks with an id below this one (cursor pagination).
    pub before: Option<TaskId>,
    pub limit: usize,
}

/// Counts for one queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct QueueStats {
    pub name: String,
    pub queued: u64,
    pub running: u64,
    pub scheduled: u64,
    /// Parked on an event, an approval, a timer or a child task (no lease, no worker slot).
    pub waiting: u64,
    pub dead: u64,
    pub oldest_queued_age_seconds: f64,
    pub capacity: Option<u64>,
}

/// A running component's entry in the cluster's node registry, kept fresh by heartbeats.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRecord {
    pub id: String,
    /// What the node says of itself: components, address, version, queues, leadership.
    pub info: Value,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

/// Wake-ups a store sends so components react at once instead of waiting for their next poll.
#[derive(Debug)]
pub struct Wakeups {
    /// Tasks became ready to claim.
    pub queued: Notify,
    /// A scheduled task was added (its `run_at` may be earlier than the scheduler's next pass).
    pub scheduled: Notify,
    /// Tasks reached a terminal state.
    pub finished: broadcast::Sender<Arc<[TaskId]>>,
}

impl Default for Wakeups {
    fn default() -> Self {
        Wakeups {
            queued: Notify::new(),
            scheduled: Notify::new(),
            finished: broadcast::channel(1024).0,
        }
    }
}

impl Wakeups {
    pub fn notify_finished(&self, ids: &[TaskId]) {
        if !ids.is_empty() && self.finished.receiver_count() > 0 {
            let _ = self.finished.send(Arc::from(ids));
        }
    }
}

//! What both backends share about rows and transitions: the task columns and how a row of them
//! becomes a [`Task`], [`ClaimedTask`] or [`Checkpoint`] (through [`Columns`], which each
//! driver's row type implements), the status a new task starts in, and queue capacities with the
//! admission of new tasks under them.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use oclaw_core::{Checkpoint, NewTask, Task, TaskError, TaskId, TaskStatus};

use crate::codec::{from_ms, ms, parse_json};
use crate::{ClaimedTask, QueueStats, StoreError, StoreResult};

/// The columns [`task_from`] reads, in its order.
pub(crate) const TASK_COLUMNS: &str = "id, bot, queue, status, priority, input, output, error_code, \
    error_message, attempts, max_attempts, idempotency_key, trace_id, created_at, run_at, started_at, \
    finished_at, worker, parent_id, tenant";

/// The columns [`claimed_from`] reads, in its order (`RETURNING` lists of claims).
pub(crate) const CLAIMED_COLUMNS: &str =
    "id, bot, queue, priority, input, attempts, max_attempts, trace_id, created_at, run_at, parent_id, bot_rev, \
     CASE WHEN EXISTS (SELECT 1 FROM task_checkpoints k WHERE k.task_id = id) THEN 1 ELSE 0 END, tenant";

/// Column access by position, as both drivers' rows offer it. `int` is a 64-bit column,
/// `small` a 32-bit one (PostgreSQL tells them apart; SQLite stores both alike).
pub(crate) trait Columns {
    type Error;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    fn small(&self, i: usize) -> Result<i32, Self::Error>;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
}

fn count<C: Columns>(r: &C, i: usize) -> Result<u32, C::Error> {
    Ok(r.small(i)?.max(0) as u32)
}

/// A row of [`TASK_COLUMNS`], without checkpoints.
pub(crate) fn task_from<C: Columns>(r: &C) -> Result<Task, C::Error> {
    let status = r.text(3)?;
    Ok(Task {
        id: TaskId(r.int(0)?),
        bot: r.text(1)?,
        queue: r.text(2)?,
        status: status.parse().unwrap_or(TaskStatus::Failed),
        priority: r.small(4)?,
        input: parse_json(&r.text(5)?),
        output: r.opt_text(6)?.as_deref().map(parse_json),
        error: match r.opt_text(7)? {
            Some(code) => Some(TaskError {
                code,
                message: r.opt_text(8)?.unwrap_or_default(),
            }),
            None => None,
        },
        attempts: count(r, 9)?,
        max_attempts: count(r, 10)?,
        idempotency_key: r.opt_text(11)?,
        trace_id: r.text(12)?,
        created_at: from_ms(r.int(13)?),
        run_at: from_ms(r.int(14)?),
        started_at: r.opt_int(15)?.map(from_ms),
        finished_at: r.opt_int(16)?.map(from_ms),
        worker: r.opt_text(17)?,
        parent: r.opt_int(18)?.map(TaskId),
        tenant: r.text(19)?,
        checkpoints: Vec::new(),
    })
}

/// A row of [`CLAIMED_COLUMNS`]: the attempt just leased, and whether the task has checkpoints
/// to load (a retry, a redrive, a task resumed after a wait).
pub(crate) fn claimed_from<C: Columns>(r: &C) -> Result<(ClaimedTask, bool), C::Error> {
    let task = ClaimedTask {
        id: TaskId(r.int(0)?),
        bot: r.text(1)?,
        queue: r.text(2)?,
        priority: r.small(3)?,
        input: parse_json(&r.text(4)?),
        attempt: count(r, 5)?,
        max_attempts: count(r, 6)?,
        trace_id: r.text(7)?,
        created_at: from_ms(r.int(8)?),
        run_at: from_ms(r.int(9)?),
        parent: r.opt_int(10)?.map(TaskId),
        bot_rev: r.opt_text(11)?,
        tenant: r.text(13)?,
        checkpoints: Vec::new(),
    };
    Ok((task, r.small(12)? != 0))
}

/// The order a worker starts a claimed batch in: higher priority first; within a priority the
/// tenants take turns (each one's first task, then each one's second, ...), each tenant's tasks
/// oldest first. A tenant's one task claimed beside another's hundred starts first, not last.
pub(crate) fn start_order(out: &mut [ClaimedTask]) {
    out.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
    if out.windows(2).all(|w| w[0].tenant == w[1].tenant) {
        return;
    }
    let mut seen: HashMap<(i32, &str), usize> = HashMap::new();
    let turns: Vec<usize> = out
        .iter()
        .map(|t| {
            let n = seen.entry((t.priority, t.tenant.as_str())).or_default();
            *n += 1;
            *n
        })
        .collect();
    let mut keyed: Vec<(usize, ClaimedTask)> = turns.into_iter().zip(out.iter().cloned()).collect();
    keyed.sort_by(|(ta, a), (tb, b)| {
        b.priority
            .cmp(&a.priority)
            .then(ta.cmp(tb))
            .then(a.id.cmp(&b.id))
    });
    for (slot, (_, t)) in out.iter_mut().zip(keyed) {
        *slot = t;
    }
}

/// The columns [`checkpoint_from`] reads, in its order.
pub(crate) const CHECKPOINT_COLUMNS: &str = "step, idx, output, at";

pub(crate) fn checkpoint_from<C: Columns>(r: &C) -> Result<Checkpoint, C::Error> {
    Ok(Checkpoint {
        step: r.text(0)?,
        index: count(r, 1)?,
        output: parse_json(&r.text(2)?),
        at: from_ms(r.int(3)?),
    })
}

/// Where a new task starts: scheduled when its `run_at` is still to come, queued otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Start {
    pub status: TaskStatus,
    /// Unix milliseconds, never before the epoch.
    pub run_at: i64,
}

impl Start {
    pub fn of(task: &NewTask, now: i64) -> Start {
        let run_at = task.run_at.map(ms).unwrap_or(now).max(0);
        let status = if run_at > now {
            TaskStatus::Scheduled
        } else {
            TaskStatus::Queued
        };
        Start { status, run_at }
    }

    /// The task as it was inserted with `id` at `now`.
    pub fn created(self, task: NewTask, id: i64, now: i64) -> Task {
        Task {
            id: TaskId(id),
            bot: task.bot,
            queue: task.queue,
            status: self.status,
            priority: task.priority,
            input: task.input,
            output: None,
            error: None,
            attempts: 0,
            max_attempts: task.max_attempts,
            idempotency_key: task.idempotency_key,
            trace_id: task.trace_id,
            created_at: from_ms(now),
            run_at: from_ms(self.run_at),
            started_at: None,
            finished_at: None,
            worker: None,
            tenant: task.tenant,
            parent: None,
            checkpoints: Vec::new(),
        }
    }
}

/// The waiting-task limits of capped queues, set at start from the configuration.
#[derive(Debug, Default)]
pub(crate) struct Capacities(RwLock<HashMap<String, u64>>);

impl Capacities {
    pub fn get(&self, queue: &str) -> Option<u64> {
        self.0.read().ok().and_then(|c| c.get(queue).copied())
    }

    pub fn set(&self, queue: &str, capacity: Option<u64>) {
        if let Ok(mut caps) = self.0.write() {
            match capacity {
                Some(c) => caps.insert(queue.to_string(), c),
                None => caps.remove(queue),
            };
        }
    }

    /// Adds each capped queue's capacity to its stats (and an empty row for a capped queue
    /// without tasks); answers the rows by queue name.
    pub fn annotate(&self, mut by_queue: BTreeMap<String, QueueStats>) -> Vec<QueueStats> {
        if let Ok(caps) = self.0.read() {
            for (q, cap) in caps.iter() {
                by_queue
                    .entry(q.clone())
                    .or_insert_with(|| QueueStats {
                        name: q.clone(),
                        ..Default::default()
                    })
                    .capacity = Some(*cap);
            }
        }
        by_queue.into_values().collect()
    }
}

/// Waiting counts of capped queues during one enqueue transaction: each queue is counted once
/// (by the backend, under its lock) and then kept up to date as tasks are admitted.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    waiting: HashMap<String, u64>,
}

impl Admission {
    pub fn knows(&self, queue: &str) -> bool {
        self.waiting.contains_key(queue)
    }

    /// Records the waiting count the database answered for `queue`.
    pub fn counted(&mut self, queue: &str, waiting: u64) {
        self.waiting.insert(queue.to_string(), waiting);
    }

    /// Admits one more task to `queue`, or refuses it when `capacity` tasks already wait.
    pub fn admit(&mut self, queue: &str, capacity: u64) -> StoreResult<()> {
        let n = self.waiting.entry(queue.to_string()).or_default();
        if *n >= capacity {
            return Err(StoreError::QueueFull {
                queue: queue.to_string(),
                capacity,
            });
        }
        *n += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_refuses_past_capacity_and_counts_what_it_admits() {
        let mut a = Admission::default();
        assert!(!a.knows("q"));
        a.counted("q", 1);
        assert!(a.knows("q"));
        assert!(a.admit("q", 3).is_ok());
        assert!(matches!(
            a.admit("q", 2),
            Err(StoreError::QueueFull { capacity: 2, .. })
        ));
    }

    #[test]
    fn a_task_due_later_starts_scheduled() {
        let now = 1_000_000;
        let mut t = NewTask::new("b", "q", serde_json::json!({}));
        assert_eq!(Start::of(&t, now).status, TaskStatus::Queued);
        t.run_at = Some(from_ms(now + 1));
        let start = Start::of(&t, now);
        assert_eq!(
            (start.status, start.run_at),
            (TaskStatus::Scheduled, now + 1)
        );
        let task = start.created(t, 7, now);
        assert_eq!(
            (task.id, task.attempts, task.run_at),
            (TaskId(7), 0, from_ms(now + 1))
        );
    }

    #[test]
    fn capacities_annotate_capped_queues_even_without_tasks() {
        let caps = Capacities::default();
        caps.set("capped", Some(5));
        caps.set("gone", Some(1));
        caps.set("gone", None);
        let rows = caps.annotate(BTreeMap::new());
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].name.as_str(), rows[0].capacity),
            ("capped", Some(5))
        );
    }
}

/// The tenants with tasks queued on each queue, as claims last found them, so a claim need not
/// walk the ready index every time (on PostgreSQL that walk crosses the index entries of every
/// task claimed since the last vacuum). Enqueues through this store add their tenant at once; a
/// list is found again after [`TenantCache::FRESH`], and at once when a claim over it came back
/// short (a task may have become queued another way: promoted, retried, resumed, or enqueued
/// by another process); a
/// tenant stays listed for [`TenantCache::KEEP`] after it was last seen, so one whose tasks come
/// one at a time is not dropped between them (a claim for it that finds nothing is cheap).
#[derive(Debug, Default)]
pub(crate) struct TenantCache(std::sync::Mutex<HashMap<String, QueueTenants>>);

/// When a queue's tenants were last found, and when each was last seen.
type QueueTenants = (std::time::Instant, BTreeMap<String, std::time::Instant>);

impl TenantCache {
    pub const FRESH: std::time::Duration = std::time::Duration::from_millis(250);
    pub const KEEP: std::time::Duration = std::time::Duration::from_secs(60);

    /// A task of `tenant` was queued on `queue` through this store.
    pub fn note(&self, queue: &str, tenant: &str) {
        let Ok(mut c) = self.0.lock() else { return };
        let now = std::time::Instant::now();
        match c.get_mut(queue) {
            Some((_, tenants)) => {
                if let Some(seen) = tenants.get_mut(tenant) {
                    *seen = now;
                } else {
                    tenants.insert(tenant.to_string(), now);
                }
            }
            None => {
                // Unknown queue: the next claim walks the index anyway.
            }
        }
    }

    /// The tenants to claim for, when the list is fresh.
    pub fn fresh(&self, queue: &str) -> Option<Vec<String>> {
        let c = self.0.lock().ok()?;
        let (found, tenants) = c.get(queue)?;
        (found.elapsed() < Self::FRESH).then(|| tenants.keys().cloned().collect())
    }

    /// Records a walk's result: those found, and those seen within `KEEP`.
    pub fn found(&self, queue: &str, found: &[String]) -> Vec<String> {
        let now = std::time::Instant::now();
        let Ok(mut c) = self.0.lock() else {
            return found.to_vec();
        };
        let entry = c
            .entry(queue.to_string())
            .or_insert_with(|| (now, BTreeMap::new()));
        entry.0 = now;
        entry
            .1
            .retain(|_, seen| now.duration_since(*seen) < Self::KEEP);
        for t in found {
            entry.1.insert(t.clone(), now);
        }
        entry.1.keys().cloned().collect()
    }
}

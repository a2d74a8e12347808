//! [`Waits`] on SQLite, and the wait transitions other operations share: ending a wait (the
//! task queued with the outcome as its step's checkpoint, or failed), a child's end waking its
//! parent, cancelling a task's tree, and deadlines.

use async_trait::async_trait;
use chrono::Utc;
use oclaw_core::{Task, TaskError, TaskId, TaskStatus};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::connection::{map_err, Notice, Shared, SqliteStore, Tx};
use super::rows::{ms, parse_json, require_task, to_json, SqlRow};
use super::transitions::{insert_task, notify_enqueued, EnqueueState};
use crate::waits::{
    child_failure, decide, wait_from, Decision, Effect, EventReport, NewEvent, OnTimeout, Park,
    Parked, WaitFilter, WaitKind, WaitRecord, WaitStatus, WAIT_COLUMNS,
};
use crate::{StoreError, StoreResult, Waits};

/// What a transaction's wait transitions did, for the wake-ups sent after it commits.
#[derive(Default)]
pub(super) struct Woken {
    pub queued: bool,
    pub finished: Vec<TaskId>,
}

impl Woken {
    pub fn notify(self, shared: &Shared) {
        notify_enqueued(shared, self.queued, false);
        if !self.finished.is_empty() {
            shared.notify(Notice::Finished(self.finished));
        }
    }
}

/// A pending wait: where its outcome goes.
struct Pending {
    id: i64,
    task_id: i64,
    step: String,
    idx: i64,
}

fn pending_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Pending> {
    Ok(Pending {
        id: r.get(0)?,
        task_id: r.get(1)?,
        step: r.get(2)?,
        idx: r.get(3)?,
    })
}

/// Ends a pending wait: with an output, the task is queued again and the output is its step's
/// checkpoint; with an error, the task fails (and wakes its own parent).
fn resolve(
    tx: &Connection,
    w: &Pending,
    status: WaitStatus,
    outcome: Result<Value, TaskError>,
    now: i64,
    woken: &mut Woken,
) -> StoreResult<()> {
    let output = match &outcome {
        Ok(v) => Some(to_json(v)),
        Err(e) => Some(to_json(
            &serde_json::json!({"error": {"code": e.code, "message": e.message}}),
        )),
    };
    let n = tx
        .prepare_cached(
            "UPDATE waits SET status = ?2, output = ?3, resolved_at = ?4 WHERE id = ?1 AND status = 'pending'",
        )
        .and_then(|mut s| s.execute(params![w.id, status.as_str(), output, now]))
        .map_err(map_err)?;
    if n == 0 {
        return Ok(());
    }
    match outcome {
        Ok(v) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO task_checkpoints (task_id, step, idx, output, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![w.task_id, w.step, w.idx, to_json(&v), now]))
            .map_err(map_err)?;
            let n = tx
                .prepare_cached(
                    "UPDATE tasks SET status = 'queued', run_at = ?2 WHERE id = ?1 AND status = 'waiting'",
                )
                .and_then(|mut s| s.execute(params![w.task_id, now]))
                .map_err(map_err)?;
            woken.queued |= n > 0;
        }
        Err(e) => {
            let parent: Option<Option<i64>> = tx
                .prepare_cached(
                    "UPDATE tasks SET status = 'failed', error_code = ?2, error_message = ?3, finished_at = ?4 \
                     WHERE id = ?1 AND status = 'waiting' RETURNING parent_id",
                )
                .and_then(|mut s| {
                    s.query_row(params![w.task_id, e.code, e.message, now], |r| r.get(0))
                        .optional()
                })
                .map_err(map_err)?;
            if let Some(parent) = parent {
                woken.finished.push(TaskId(w.task_id));
                if parent.is_some() {
                    child_ended(tx, TaskId(w.task_id), TaskStatus::Failed, None, now, woken)?;
                }
            }
        }
    }
    Ok(())
}

/// A child task ended (`status` terminal): its parent's `bot.call` wait ends with the child's
/// output, or the parent fails.
pub(super) fn child_ended(
    tx: &Connection,
    child: TaskId,
    status: TaskStatus,
    output: Option<&Value>,
    now: i64,
    woken: &mut Woken,
) -> StoreResult<()> {
    let wait = tx
        .prepare_cached(
            "SELECT id, task_id, step, idx FROM waits WHERE kind = 'child' AND key = ?1 AND status = 'pending'",
        )
        .and_then(|mut s| s.query_row([child.0.to_string()], pending_from).optional())
        .map_err(map_err)?;
    let Some(wait) = wait else {
        return Ok(());
    };
    let outcome = match (status, output) {
        (TaskStatus::Succeeded, Some(v)) => Ok(v.clone()),
        (TaskStatus::Succeeded, None) => {
            let out: Option<String> = tx
                .query_row("SELECT output FROM tasks WHERE id = ?1", [child.0], |r| {
                    r.get(0)
                })
                .map_err(map_err)?;
            Ok(out.as_deref().map(parse_json).unwrap_or(Value::Null))
        }
        _ => {
            let error: Option<(String, String)> = tx
                .query_row(
                    "SELECT error_code, coalesce(error_message, '') FROM tasks WHERE id = ?1 AND error_code IS NOT NULL",
                    [child.0],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(map_err)?;
            Err(child_failure(child, status.as_str(), error))
        }
    };
    resolve(tx, &wait, WaitStatus::Done, outcome, now, woken)
}

/// Cancels the pending waits of `id` and every unfinished task below it (children of
/// `bot.call` steps, recursively).
pub(super) fn cancel_below(
    tx: &Connection,
    id: TaskId,
    now: i64,
    woken: &mut Woken,
) -> StoreResult<()> {
    tx.prepare_cached(
        "UPDATE waits SET status = 'cancelled', resolved_at = ?2 WHERE task_id = ?1 AND status = 'pending'",
    )
    .and_then(|mut s| s.execute(params![id.0, now]))
    .map_err(map_err)?;
    let children: Vec<i64> = {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE tasks SET status = 'cancelled', finished_at = ?2, lease_until = NULL \
                 WHERE parent_id = ?1 AND status NOT IN ('succeeded', 'failed', 'dead', 'cancelled') RETURNING id",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map(params![id.0, now], |r| r.get(0))
            .map_err(map_err)?;
        rows.collect::<Result<_, _>>().map_err(map_err)?
    };
    for child in children {
        woken.finished.push(TaskId(child));
        cancel_below(tx, TaskId(child), now, woken)?;
    }
    Ok(())
}

/// Ends the waits whose deadline has come, as their `on_timeout` says. Answers how many.
pub(super) fn expire_waits(tx: &Connection, now: i64, woken: &mut Woken) -> StoreResult<u64> {
    let due: Vec<(Pending, String)> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, task_id, step, idx, on_timeout FROM waits \
                 WHERE status = 'pending' AND deadline IS NOT NULL AND deadline <= ?1 ORDER BY deadline LIMIT 1000",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map([now], |r| Ok((pending_from(r)?, r.get(4)?)))
            .map_err(map_err)?;
        rows.collect::<Result<_, _>>().map_err(map_err)?
    };
    let n = due.len() as u64;
    for (w, on_timeout) in due {
        let outcome = match OnTimeout::from_json(&parse_json(&on_timeout)) {
            OnTimeout::Output(v) => Ok(v),
            OnTimeout::Fail(e) => Err(e),
        };
        resolve(tx, &w, WaitStatus::TimedOut, outcome, now, woken)?;
    }
    Ok(n)
}

fn load_wait(c: &Connection, id: i64) -> StoreResult<Option<WaitRecord>> {
    c.prepare_cached(&format!(
        "SELECT {WAIT_COLUMNS} FROM waits w JOIN tasks t ON t.id = w.task_id WHERE w.id = ?1"
    ))
    .and_then(|mut s| s.query_row([id], |r| wait_from(&SqlRow(r))).optional())
    .map_err(map_err)
}

#[async_trait]
impl Waits for SqliteStore {
    async fn park(&self, p: Park) -> StoreResult<Parked> {
        self.write(move |conn, inner| {
            let now = ms(Utc::now());
            let tx = Tx::begin(conn)?;
            // A park is not a failed attempt: it is not counted (as a release is not).
            let n = tx
                .prepare_cached(
                    "UPDATE tasks SET status = 'waiting', attempts = max(attempts - 1, 0), worker = NULL, \
                     lease_until = NULL WHERE id = ?1 AND status = 'running' AND worker = ?2 AND attempts = ?3",
                )
                .and_then(|mut s| s.execute(params![p.id.0, p.worker, p.attempt]))
                .map_err(map_err)?;
            if n == 0 {
                return Ok(Parked::Fenced);
            }
            let mut st = EnqueueState::new(inner, now);
            let mut key = p.wait.key.clone();
            let child = match p.child {
                Some(child) => {
                    let id = insert_task(&tx, &mut st, child)?.task.id;
                    tx.prepare_cached("UPDATE tasks SET parent_id = ?2 WHERE id = ?1")
                        .and_then(|mut s| s.execute(params![id.0, p.id.0]))
                        .map_err(map_err)?;
                    key = Some(id.0.to_string());
                    Some(id)
                }
                None => None,
            };
            let w = &p.wait;
            let wait: i64 = tx
                .prepare_cached(
                    "INSERT INTO waits (task_id, step, idx, kind, status, name, key, deadline, on_timeout, detail, created_at) \
                     VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![
                            p.id.0,
                            w.step,
                            w.index,
                            w.kind.as_str(),
                            w.name,
                            key,
                            w.deadline.map(ms),
                            to_json(&w.on_timeout.to_json()),
                            to_json(&w.detail),
                            now
                        ],
                        |r| r.get(0),
                    )
                })
                .map_err(map_err)?;
            let mut woken = Woken::default();
            let mut answer = Parked::Waiting { wait, child };
            if w.kind == WaitKind::Event {
                let kept: Option<(i64, String)> = tx
                    .prepare_cached(
                        "SELECT id, data FROM events WHERE name = ?1 AND key = ?2 AND expires_at > ?3 ORDER BY id LIMIT 1",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![w.name, key, now], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                    })
                    .map_err(map_err)?;
                if let Some((event, data)) = kept {
                    tx.prepare_cached("DELETE FROM events WHERE id = ?1")
                        .and_then(|mut s| s.execute([event]))
                        .map_err(map_err)?;
                    let pending = Pending {
                        id: wait,
                        task_id: p.id.0,
                        step: w.step.clone(),
                        idx: w.index as i64,
                    };
                    resolve(&tx, &pending, WaitStatus::Done, Ok(parse_json(&data)), now, &mut woken)?;
                    answer = Parked::Resumed { wait };
                }
            }
            tx.commit()?;
            notify_enqueued(inner, st.any_queued, st.any_scheduled || w.deadline.is_some());
            woken.notify(inner);
            Ok(answer)
        })
        .await
    }

    async fn send_event(&self, event: NewEvent) -> StoreResult<EventReport> {
        self.write(move |conn, inner| {
            let now = ms(Utc::now());
            let tx = Tx::begin(conn)?;
            let waiting: Vec<Pending> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, task_id, step, idx FROM waits \
                         WHERE status = 'pending' AND kind = 'event' AND name = ?1 AND key = ?2 ORDER BY id",
                    )
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map(params![event.name, event.key], pending_from)
                    .map_err(map_err)?;
                rows.collect::<Result<_, _>>().map_err(map_err)?
            };
            let mut woken = Woken::default();
            let mut report = EventReport { woke: Vec::new(), kept: None };
            for w in &waiting {
                resolve(&tx, w, WaitStatus::Done, Ok(event.data.clone()), now, &mut woken)?;
                report.woke.push(TaskId(w.task_id));
            }
            if waiting.is_empty() {
                let expires = now + event.retention.as_millis() as i64;
                let id: i64 = tx
                    .prepare_cached(
                        "INSERT INTO events (name, key, data, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                    )
                    .and_then(|mut s| {
                        s.query_row(
                            params![event.name, event.key, to_json(&event.data), now, expires],
                            |r| r.get(0),
                        )
                    })
                    .map_err(map_err)?;
                report.kept = Some(id);
            }
            tx.commit()?;
            woken.notify(inner);
            Ok(report)
        })
        .await
    }

    async fn decide(&self, wait: i64, d: Decision) -> StoreResult<WaitRecord> {
        self.write(move |conn, inner| {
            let now = ms(Utc::now());
            let tx = Tx::begin(conn)?;
            let row: Option<(Pending, String, String, String, String)> = tx
                .prepare_cached(
                    "SELECT id, task_id, step, idx, kind, status, detail, decisions FROM waits WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row([wait], |r| {
                        Ok((pending_from(r)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
                    })
                    .optional()
                })
                .map_err(map_err)?;
            let Some((pending, kind, status, detail, decisions)) = row else {
                return Err(StoreError::WaitNotFound(wait));
            };
            if kind != "approval" {
                return Err(StoreError::WaitNotFound(wait));
            }
            if let Some(s) = WaitStatus::parse(&status).filter(|s| *s != WaitStatus::Pending) {
                return Err(StoreError::WaitNotPending { id: wait, status: s.as_str() });
            }
            let detail = parse_json(&detail);
            let mut decisions = parse_json(&decisions).as_array().cloned().unwrap_or_default();
            let effect = decide(&detail, &mut decisions, &d, now);
            tx.prepare_cached("UPDATE waits SET decisions = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![wait, to_json(&Value::Array(decisions))]))
                .map_err(map_err)?;
            let mut woken = Woken::default();
            match effect {
                Effect::Refused => {
                    tx.commit()?;
                    return Err(StoreError::NotAllowed(format!(
                        "`{}` may not decide approval {wait}: it names {}",
                        d.by, detail["approvers"]
                    )));
                }
                Effect::Counted => {}
                Effect::Decided(output) => {
                    resolve(&tx, &pending, WaitStatus::Done, Ok(output), now, &mut woken)?;
                }
            }
            let record = load_wait(&tx, wait)?.ok_or(StoreError::WaitNotFound(wait))?;
            tx.commit()?;
            woken.notify(inner);
            Ok(record)
        })
        .await
    }

    async fn get_wait(&self, id: i64) -> StoreResult<Option<WaitRecord>> {
        self.read(move |c, _| load_wait(c, id)).await
    }

    async fn list_waits(&self, filter: WaitFilter) -> StoreResult<Vec<WaitRecord>> {
        self.read(move |c, _| {
            let mut sql = format!(
                "SELECT {WAIT_COLUMNS} FROM waits w JOIN tasks t ON t.id = w.task_id WHERE 1 = 1"
            );
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(k) = filter.kind {
                sql.push_str(" AND w.kind = ?");
                args.push(k.as_str().to_string().into());
            }
            if let Some(s) = filter.status {
                sql.push_str(" AND w.status = ?");
                args.push(s.as_str().to_string().into());
            }
            if let Some(t) = filter.task {
                sql.push_str(" AND w.task_id = ?");
                args.push(t.0.into());
            }
            if let Some(k) = &filter.key {
                sql.push_str(" AND w.key = ?");
                args.push(k.clone().into());
            }
            sql.push_str(" ORDER BY w.id DESC LIMIT ?");
            args.push((filter.limit.clamp(1, 1000) as i64).into());
            let mut stmt = c.prepare(&sql).map_err(map_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), |r| wait_from(&SqlRow(r)))
                .map_err(map_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
        })
        .await
    }

    async fn retry_from(&self, id: TaskId, from_index: u32) -> StoreResult<Task> {
        self.write(move |conn, inner| {
            let tx = Tx::begin(conn)?;
            let task = require_task(&tx, id)?;
            if !task.status.is_terminal() {
                return Err(StoreError::Conflict { id, status: task.status, operation: "retry from a step" });
            }
            tx.prepare_cached("DELETE FROM task_checkpoints WHERE task_id = ?1 AND idx >= ?2")
                .and_then(|mut s| s.execute(params![id.0, from_index]))
                .map_err(map_err)?;
            tx.prepare_cached(
                "UPDATE tasks SET status = 'queued', attempts = 0, run_at = ?2, output = NULL, \
                 error_code = NULL, error_message = NULL, started_at = NULL, finished_at = NULL, worker = NULL, \
                 lease_until = NULL WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id.0, ms(Utc::now())]))
            .map_err(map_err)?;
            let task = require_task(&tx, id)?;
            tx.commit()?;
            notify_enqueued(inner, true, false);
            Ok(task)
        })
        .await
    }
}

//! [`Waits`] on PostgreSQL, and the wait transitions other operations share (the same steps as
//! the SQLite backend's: end a wait, wake a child's parent, cancel a task's tree, deadlines).

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use chrono::Utc;
use deadpool_postgres::Transaction;
use oclaw_core::{Task, TaskError, TaskId, TaskStatus};
use serde_json::Value;

use super::rows::require_task;
use super::transitions::{insert_rows, prepare_row};
use super::{pg_err, pool_err, Inner, PgStore};
use crate::codec::{ms, parse_json, to_json};
use crate::waits::{
    child_failure, decide, wait_from, Decision, Effect, EventReport, NewEvent, OnTimeout, Park,
    Parked, WaitFilter, WaitKind, WaitRecord, WaitStatus, WAIT_COLUMNS,
};
use crate::{StoreError, StoreResult, Waits};

type Step<'a> = Pin<Box<dyn Future<Output = StoreResult<()>> + Send + 'a>>;

/// What a transaction's wait transitions did, for the wake-ups sent when it commits.
#[derive(Default)]
pub(super) struct Woken {
    pub queued: bool,
    pub finished: Vec<TaskId>,
}

impl Woken {
    /// Sends the NOTIFYs inside the transaction (delivered at commit).
    pub async fn notify_in(&self, tx: &Transaction<'_>, inner: &Inner) -> StoreResult<()> {
        if self.queued {
            tx.execute("SELECT pg_notify($1, '')", &[&inner.channels.queued])
                .await
                .map_err(pg_err)?;
        }
        if !self.finished.is_empty() {
            let ids: Vec<String> = self.finished.iter().map(|i| i.0.to_string()).collect();
            tx.execute(
                "SELECT pg_notify($1, $2)",
                &[&inner.channels.finished, &ids.join(",")],
            )
            .await
            .map_err(pg_err)?;
        }
        Ok(())
    }

    /// Wakes this process's components (after commit).
    pub fn wake_local(&self, inner: &Inner) {
        if self.queued {
            inner.wakeups.queued.notify_one();
        }
        inner.wakeups.notify_finished(&self.finished);
    }
}

struct Pending {
    id: i64,
    task_id: i64,
    step: String,
    idx: i32,
}

fn pending_from(r: &tokio_postgres::Row) -> Pending {
    Pending {
        id: r.get(0),
        task_id: r.get(1),
        step: r.get(2),
        idx: r.get(3),
    }
}

fn resolve<'a>(
    tx: &'a Transaction<'_>,
    w: &'a Pending,
    status: WaitStatus,
    outcome: Result<Value, TaskError>,
    now: i64,
    woken: &'a mut Woken,
) -> Step<'a> {
    Box::pin(async move {
        let output = match &outcome {
            Ok(v) => to_json(v),
            Err(e) => {
                to_json(&serde_json::json!({"error": {"code": e.code, "message": e.message}}))
            }
        };
        let n = tx
            .execute(
                "UPDATE waits SET status = $2, output = $3, resolved_at = $4 WHERE id = $1 AND status = 'pending'",
                &[&w.id, &status.as_str(), &output, &now],
            )
            .await
            .map_err(pg_err)?;
        if n == 0 {
            return Ok(());
        }
        match outcome {
            Ok(v) => {
                tx.execute(
                    "INSERT INTO task_checkpoints (task_id, step, idx, output, at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (task_id, step) DO UPDATE SET idx = excluded.idx, output = excluded.output, at = excluded.at",
                    &[&w.task_id, &w.step, &w.idx, &to_json(&v), &now],
                )
                .await
                .map_err(pg_err)?;
                let n = tx
                    .execute(
                        "UPDATE tasks SET status = 'queued', run_at = $2 WHERE id = $1 AND status = 'waiting'",
                        &[&w.task_id, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                woken.queued |= n > 0;
            }
            Err(e) => {
                let row = tx
                    .query_opt(
                        "UPDATE tasks SET status = 'failed', error_code = $2, error_message = $3, finished_at = $4 \
                         WHERE id = $1 AND status = 'waiting' RETURNING parent_id",
                        &[&w.task_id, &e.code, &e.message, &now],
                    )
                    .await
                    .map_err(pg_err)?;
                if let Some(row) = row {
                    woken.finished.push(TaskId(w.task_id));
                    if row.get::<_, Option<i64>>(0).is_some() {
                        child_ended(tx, TaskId(w.task_id), TaskStatus::Failed, None, now, woken)
                            .await?;
                    }
                }
            }
        }
        Ok(())
    })
}

/// A child task ended (`status` terminal): its parent's `bot.call` wait ends with the child's
/// output, or the parent fails.
pub(super) fn child_ended<'a>(
    tx: &'a Transaction<'_>,
    child: TaskId,
    status: TaskStatus,
    output: Option<&'a Value>,
    now: i64,
    woken: &'a mut Woken,
) -> Step<'a> {
    Box::pin(async move {
        let wait = tx
            .query_opt(
                "SELECT id, task_id, step, idx FROM waits WHERE kind = 'child' AND key = $1 AND status = 'pending'",
                &[&child.0.to_string()],
            )
            .await
            .map_err(pg_err)?
            .map(|r| pending_from(&r));
        let Some(wait) = wait else {
            return Ok(());
        };
        let row = tx
            .query_one(
                "SELECT output, error_code, coalesce(error_message, '') FROM tasks WHERE id = $1",
                &[&child.0],
            )
            .await
            .map_err(pg_err)?;
        let outcome = if status == TaskStatus::Succeeded {
            Ok(match output {
                Some(v) => v.clone(),
                None => row
                    .get::<_, Option<&str>>(0)
                    .map(parse_json)
                    .unwrap_or(Value::Null),
            })
        } else {
            let error = row
                .get::<_, Option<String>>(1)
                .map(|code| (code, row.get::<_, String>(2)));
            Err(child_failure(child, status.as_str(), error))
        };
        resolve(tx, &wait, WaitStatus::Done, outcome, now, woken).await
    })
}

/// Cancels the pending waits of `id` and every unfinished task below it.
pub(super) fn cancel_below<'a>(
    tx: &'a Transaction<'_>,
    id: TaskId,
    now: i64,
    woken: &'a mut Woken,
) -> Step<'a> {
    Box::pin(async move {
        tx.execute(
            "UPDATE waits SET status = 'cancelled', resolved_at = $2 WHERE task_id = $1 AND status = 'pending'",
            &[&id.0, &now],
        )
        .await
        .map_err(pg_err)?;
        let children = tx
            .query(
                "UPDATE tasks SET status = 'cancelled', finished_at = $2, lease_until = NULL \
                 WHERE parent_id = $1 AND status NOT IN ('succeeded', 'failed', 'dead', 'cancelled') RETURNING id",
                &[&id.0, &now],
            )
            .await
            .map_err(pg_err)?;
        for r in children {
            let child = TaskId(r.get(0));
            woken.finished.push(child);
            cancel_below(tx, child, now, woken).await?;
        }
        Ok(())
    })
}

/// Ends the waits whose deadline has come, as their `on_timeout` says. Answers how many.
pub(super) async fn expire_waits(
    tx: &Transaction<'_>,
    now: i64,
    woken: &mut Woken,
) -> StoreResult<u64> {
    let due = tx
        .query(
            "SELECT id, task_id, step, idx, on_timeout FROM waits \
             WHERE status = 'pending' AND deadline IS NOT NULL AND deadline <= $1 \
             ORDER BY deadline LIMIT 1000 FOR UPDATE SKIP LOCKED",
            &[&now],
        )
        .await
        .map_err(pg_err)?;
    for r in &due {
        let w = pending_from(r);
        let outcome = match OnTimeout::from_json(&parse_json(r.get::<_, &str>(4))) {
            OnTimeout::Output(v) => Ok(v),
            OnTimeout::Fail(e) => Err(e),
        };
        resolve(tx, &w, WaitStatus::TimedOut, outcome, now, woken).await?;
    }
    Ok(due.len() as u64)
}

async fn load_wait(
    c: &impl deadpool_postgres::GenericClient,
    id: i64,
) -> StoreResult<Option<WaitRecord>> {
    let row = c
        .query_opt(
            &format!("SELECT {WAIT_COLUMNS} FROM waits w JOIN tasks t ON t.id = w.task_id WHERE w.id = $1"),
            &[&id],
        )
        .await
        .map_err(pg_err)?;
    row.map(|r| wait_from(&super::rows::PgRow(&r)).map_err(pg_err))
        .transpose()
}

impl PgStore {
    /// Runs `f` in a transaction, then sends its wake-ups.
    async fn in_tx<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send,
        F: for<'t> FnOnce(
                &'t Transaction<'t>,
                &'t mut Woken,
            ) -> Pin<Box<dyn Future<Output = StoreResult<T>> + Send + 't>>
            + Send,
    {
        let mut client = self.inner.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let mut woken = Woken::default();
        let out = f(&tx, &mut woken).await;
        let out = match out {
            Ok(v) => v,
            // A refused approval is recorded: commit, then answer the refusal.
            Err(e @ StoreError::NotAllowed(_)) => {
                tx.commit().await.map_err(pg_err)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        woken.notify_in(&tx, &self.inner).await?;
        tx.commit().await.map_err(pg_err)?;
        woken.wake_local(&self.inner);
        Ok(out)
    }
}

#[async_trait]
impl Waits for PgStore {
    async fn park(&self, p: Park) -> StoreResult<Parked> {
        let inner = self.inner.clone();
        self.in_tx(move |tx, woken| {
            Box::pin(async move {
                let now = ms(Utc::now());
                let attempt = p.attempt.min(i32::MAX as u32) as i32;
                // A park is not a failed attempt: it is not counted (as a release is not).
                let n = tx
                    .execute(
                        "UPDATE tasks SET status = 'waiting', attempts = greatest(attempts - 1, 0), worker = NULL, \
                         lease_until = NULL WHERE id = $1 AND lease_until IS NOT NULL AND worker = $2 AND attempts = $3",
                        &[&p.id.0, &p.worker, &attempt],
                    )
                    .await
                    .map_err(pg_err)?;
                if n == 0 {
                    return Ok(Parked::Fenced);
                }
                let w = &p.wait;
                let mut key = w.key.clone();
                let mut child = None;
                if let Some(c) = &p.child {
                    let row = prepare_row(c, now);
                    let ids = insert_rows(tx, &inner, std::slice::from_ref(&row), now).await?;
                    let id = *ids
                        .first()
                        .ok_or_else(|| StoreError::Internal("insert returned no id".into()))?;
                    tx.execute("UPDATE tasks SET parent_id = $2 WHERE id = $1", &[&id, &p.id.0])
                        .await
                        .map_err(pg_err)?;
                    key = Some(id.to_string());
                    child = Some(TaskId(id));
                }
                let wait: i64 = tx
                    .query_one(
                        "INSERT INTO waits (task_id, step, idx, kind, status, name, key, deadline, on_timeout, detail, created_at) \
                         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10) RETURNING id",
                        &[
                            &p.id.0,
                            &w.step,
                            &(w.index.min(i32::MAX as u32) as i32),
                            &w.kind.as_str(),
                            &w.name,
                            &key,
                            &w.deadline.map(ms),
                            &to_json(&w.on_timeout.to_json()),
                            &to_json(&w.detail),
                            &now,
                        ],
                    )
                    .await
                    .map_err(pg_err)?
                    .get(0);
                if w.deadline.is_some() {
                    tx.execute("SELECT pg_notify($1, '')", &[&inner.channels.scheduled])
                        .await
                        .map_err(pg_err)?;
                    inner.wakeups.scheduled.notify_one();
                }
                if w.kind == WaitKind::Event {
                    let kept = tx
                        .query_opt(
                            "DELETE FROM events WHERE id = (SELECT id FROM events WHERE name = $1 AND key = $2 \
                             AND expires_at > $3 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING data",
                            &[&w.name, &key, &now],
                        )
                        .await
                        .map_err(pg_err)?;
                    if let Some(row) = kept {
                        let pending = Pending {
                            id: wait,
                            task_id: p.id.0,
                            step: w.step.clone(),
                            idx: w.index.min(i32::MAX as u32) as i32,
                        };
                        let data = parse_json(row.get::<_, &str>(0));
                        resolve(tx, &pending, WaitStatus::Done, Ok(data), now, woken).await?;
                        return Ok(Parked::Resumed { wait });
                    }
                }
                Ok(Parked::Waiting { wait, child })
            })
        })
        .await
    }

    async fn send_event(&self, event: NewEvent) -> StoreResult<EventReport> {
        self.in_tx(move |tx, woken| {
            Box::pin(async move {
                let now = ms(Utc::now());
                let waiting = tx
                    .query(
                        "SELECT id, task_id, step, idx FROM waits \
                         WHERE status = 'pending' AND kind = 'event' AND name = $1 AND key = $2 ORDER BY id FOR UPDATE",
                        &[&event.name, &event.key],
                    )
                    .await
                    .map_err(pg_err)?;
                let mut report = EventReport {
                    woke: Vec::new(),
                    kept: None,
                };
                for r in &waiting {
                    let w = pending_from(r);
                    resolve(tx, &w, WaitStatus::Done, Ok(event.data.clone()), now, woken).await?;
                    report.woke.push(TaskId(w.task_id));
                }
                if waiting.is_empty() {
                    let expires = now + event.retention.as_millis() as i64;
                    let id: i64 = tx
                        .query_one(
                            "INSERT INTO events (name, key, data, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                            &[&event.name, &event.key, &to_json(&event.data), &now, &expires],
                        )
                        .await
                        .map_err(pg_err)?
                        .get(0);
                    report.kept = Some(id);
                }
                Ok(report)
            })
        })
        .await
    }

    async fn decide(&self, wait: i64, d: Decision) -> StoreResult<WaitRecord> {
        self.in_tx(move |tx, woken| {
            Box::pin(async move {
                let now = ms(Utc::now());
                let row = tx
                    .query_opt(
                        "SELECT id, task_id, step, idx, kind, status, detail, decisions FROM waits WHERE id = $1 FOR UPDATE",
                        &[&wait],
                    )
                    .await
                    .map_err(pg_err)?
                    .ok_or(StoreError::WaitNotFound(wait))?;
                if row.get::<_, &str>(4) != "approval" {
                    return Err(StoreError::WaitNotFound(wait));
                }
                if let Some(s) = WaitStatus::parse(row.get(5)).filter(|s| *s != WaitStatus::Pending) {
                    return Err(StoreError::WaitNotPending { id: wait, status: s.as_str() });
                }
                let pending = pending_from(&row);
                let detail = parse_json(row.get::<_, &str>(6));
                let mut decisions = parse_json(row.get::<_, &str>(7))
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let effect = decide(&detail, &mut decisions, &d, now);
                tx.execute(
                    "UPDATE waits SET decisions = $2 WHERE id = $1",
                    &[&wait, &to_json(&Value::Array(decisions))],
                )
                .await
                .map_err(pg_err)?;
                match effect {
                    Effect::Refused => {
                        return Err(StoreError::NotAllowed(format!(
                            "`{}` may not decide approval {wait}: it names {}",
                            d.by, detail["approvers"]
                        )))
                    }
                    Effect::Counted => {}
                    Effect::Decided(output) => {
                        resolve(tx, &pending, WaitStatus::Done, Ok(output), now, woken).await?;
                    }
                }
                load_wait(tx, wait).await?.ok_or(StoreError::WaitNotFound(wait))
            })
        })
        .await
    }

    async fn get_wait(&self, id: i64) -> StoreResult<Option<WaitRecord>> {
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        load_wait(&client, id).await
    }

    async fn list_waits(&self, filter: WaitFilter) -> StoreResult<Vec<WaitRecord>> {
        let kind = filter.kind.map(|k| k.as_str());
        let status = filter.status.map(|s| s.as_str());
        let task = filter.task.map(|t| t.0);
        let limit = filter.limit.clamp(1, 1000) as i64;
        let rows = self
            .query(
                &format!(
                    "SELECT {WAIT_COLUMNS} FROM waits w JOIN tasks t ON t.id = w.task_id \
                     WHERE ($1::text IS NULL OR w.kind = $1) AND ($2::text IS NULL OR w.status = $2) \
                     AND ($3::bigint IS NULL OR w.task_id = $3) AND ($5::text IS NULL OR w.key = $5) \
                     ORDER BY w.id DESC LIMIT $4"
                ),
                &[&kind, &status, &task, &limit, &filter.key],
            )
            .await?;
        rows.iter()
            .map(|r| wait_from(&super::rows::PgRow(r)).map_err(pg_err))
            .collect()
    }

    async fn retry_from(&self, id: TaskId, from_index: u32) -> StoreResult<Task> {
        self.in_tx(move |tx, woken| {
            Box::pin(async move {
                let status: TaskStatus = tx
                    .query_opt("SELECT status FROM tasks WHERE id = $1 FOR UPDATE", &[&id.0])
                    .await
                    .map_err(pg_err)?
                    .ok_or(StoreError::NotFound(id))?
                    .get::<_, &str>(0)
                    .parse()
                    .unwrap_or(TaskStatus::Failed);
                if !status.is_terminal() {
                    return Err(StoreError::Conflict {
                        id,
                        status,
                        operation: "retry from a step",
                    });
                }
                tx.execute(
                    "DELETE FROM task_checkpoints WHERE task_id = $1 AND idx >= $2",
                    &[&id.0, &(from_index.min(i32::MAX as u32) as i32)],
                )
                .await
                .map_err(pg_err)?;
                tx.execute(
                    "UPDATE tasks SET status = 'queued', attempts = 0, run_at = $2, output = NULL, \
                     error_code = NULL, error_message = NULL, started_at = NULL, finished_at = NULL, \
                     worker = NULL, lease_until = NULL WHERE id = $1",
                    &[&id.0, &ms(Utc::now())],
                )
                .await
                .map_err(pg_err)?;
                woken.queued = true;
                require_task(tx, id).await
            })
        })
        .await
    }
}

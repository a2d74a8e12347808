//! The [`Store`] operations on SQLite. Each call is one transaction on the writer connection,
//! or one read on a reader connection.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use oclaw_core::{ErrorCode, NewTask, Task, TaskId, TaskStatus};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::connection::{map_err, Notice, Shared, SqliteStore, Tx};
use super::rows::{
    from_ms, load_checkpoints, load_task, ms, parse_json, require_task, task_from_row, to_json,
    TASK_COLUMNS,
};
use crate::codec::ORDERED;
use crate::{
    ClaimRequest, ClaimedTask, Completion, CompletionReport, Enqueued, ExpiredReport, NodeRecord,
    Outcome, QueueStats, Store, StoreError, StoreResult, TaskFilter, Wakeups,
};

/// Waiting tasks (queued + scheduled) of a queue, counted no further than `limit`.
fn count_waiting(tx: &Connection, queue: &str, limit: u64) -> StoreResult<u64> {
    let mut total = 0u64;
    for status in ["queued", "scheduled"] {
        let n: i64 = tx
            .prepare_cached(
                "SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status = ?1 AND queue = ?2 LIMIT ?3)",
            )
            .and_then(|mut s| s.query_row(params![status, queue, limit as i64], |r| r.get(0)))
            .map_err(map_err)?;
        total += n as u64;
    }
    Ok(total)
}

struct EnqueueState<'a> {
    inner: &'a Shared,
    now: i64,
    /// Waiting counts per capped queue, read once per transaction and kept up to date.
    waiting: HashMap<String, u64>,
    any_queued: bool,
    any_scheduled: bool,
}

fn enqueue_in(tx: &Connection, st: &mut EnqueueState<'_>, task: NewTask) -> StoreResult<Enqueued> {
    if let Some(key) = &task.idempotency_key {
        let existing = tx
            .prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE idempotency_key = ?1"
            ))
            .and_then(|mut s| s.query_row([key], task_from_row).optional())
            .map_err(map_err)?;
        if let Some(task) = existing {
            return Ok(Enqueued {
                task,
                created: false,
            });
        }
    }
    let capacity = st
        .inner
        .capacities
        .read()
        .ok()
        .and_then(|c| c.get(&task.queue).copied());
    if let Some(cap) = capacity {
        let waiting = match st.waiting.get(&task.queue) {
            Some(n) => *n,
            None => count_waiting(tx, &task.queue, cap)?,
        };
        if waiting >= cap {
            return Err(StoreError::QueueFull {
                queue: task.queue.clone(),
                capacity: cap,
            });
        }
        st.waiting.insert(task.queue.clone(), waiting + 1);
    }
    let run_at = task.run_at.map(ms).unwrap_or(st.now).max(0);
    let status = if run_at > st.now {
        TaskStatus::Scheduled
    } else {
        TaskStatus::Queued
    };
    if status == TaskStatus::Queued {
        st.any_queued = true;
    } else {
        st.any_scheduled = true;
    }
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO tasks (bot, queue, status, priority, input, max_attempts, idempotency_key, \
             trace_id, created_at, run_at, ordering_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    task.bot,
                    task.queue,
                    status.as_str(),
                    task.priority,
                    to_json(&task.input),
                    task.max_attempts,
                    task.idempotency_key,
                    task.trace_id,
                    st.now,
                    run_at,
                    task.ordering_key
                ],
                |r| r.get(0),
            )
        })
        .map_err(map_err)?;
    Ok(Enqueued {
        task: Task {
            id: TaskId(id),
            bot: task.bot,
            queue: task.queue,
            status,
            priority: task.priority,
            input: task.input,
            output: None,
            error: None,
            attempts: 0,
            max_attempts: task.max_attempts,
            idempotency_key: task.idempotency_key,
            trace_id: task.trace_id,
            created_at: from_ms(st.now),
            run_at: from_ms(run_at),
            started_at: None,
            finished_at: None,
            worker: None,
            checkpoints: Vec::new(),
        },
        created: true,
    })
}

fn notify_enqueued(shared: &Shared, queued: bool, scheduled: bool) {
    if queued {
        shared.notify(Notice::Queued);
    }
    if scheduled {
        shared.notify(Notice::Scheduled);
    }
}

fn claim_from_queue(
    tx: &Connection,
    queue: Option<&str>,
    req: &ClaimRequest,
    limit: usize,
    now: i64,
    out: &mut Vec<ClaimedTask>,
) -> StoreResult<()> {
    let lease_until = now + req.lease.as_millis() as i64;
    // The queue and the limit are written into the SQL (one cached statement per queue and
    // limit): SQLite looks at a bound LIMIT or queue when planning, which makes it prepare the
    // statement again on every run — measured at a fifth of the CPU of small claims.
    let filter = match queue {
        Some(q) => format!("AND queue = '{}'", q.replace('\'', "''")),
        None => String::new(),
    };
    let sql = format!(
        "UPDATE OR FAIL tasks SET status = 'running', attempts = attempts + 1, worker = ?1, lease_until = ?2, \
         started_at = ?3 WHERE id IN (SELECT id FROM tasks c WHERE status = 'queued' {filter} {ORDERED} \
         ORDER BY priority DESC, id LIMIT {limit}) \
         RETURNING id, bot, queue, priority, input, attempts, max_attempts, trace_id, created_at, run_at"
    );
    let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
    let rows = stmt
        .query_map(params![req.worker, lease_until, now], |r| {
            let input: String = r.get(4)?;
            Ok(ClaimedTask {
                id: TaskId(r.get(0)?),
                bot: r.get(1)?,
                queue: r.get(2)?,
                priority: r.get(3)?,
                input: parse_json(&input),
                attempt: r.get(5)?,
                max_attempts: r.get(6)?,
                trace_id: r.get(7)?,
                created_at: from_ms(r.get(8)?),
                run_at: from_ms(r.get(9)?),
                checkpoints: Vec::new(),
            })
        })
        .map_err(map_err)?;
    for row in rows {
        out.push(row.map_err(map_err)?);
    }
    Ok(())
}

/// Applies one completion; answers the new status and whether the task has an ordering key
/// (its successor may run now), or `None` when the completion is fenced.
fn apply_completion(
    tx: &Connection,
    c: &Completion,
    now: i64,
) -> StoreResult<Option<(TaskStatus, bool)>> {
    match &c.outcome {
        Outcome::Succeeded(output) => {
            let ordered: Option<bool> = tx
                .prepare_cached(
                    "UPDATE tasks SET status = 'succeeded', output = ?2, error_code = NULL, \
                     error_message = NULL, finished_at = ?3, lease_until = NULL \
                     WHERE id = ?1 AND status = 'running' AND worker = ?4 AND attempts = ?5 \
                     RETURNING ordering_key IS NOT NULL",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![c.id.0, to_json(output), now, c.worker, c.attempt],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .map_err(map_err)?;
            if ordered.is_some() {
                for w in &c.kv {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO kv (ns, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .and_then(|mut s| {
                        s.execute(params![w.namespace, w.key, to_json(&w.value), w.expires_at.map(ms)])
                    })
                    .map_err(map_err)?;
                }
            }
            Ok(ordered.map(|o| (TaskStatus::Succeeded, o)))
        }
        Outcome::Failed { error, retry_at } => {
            let status: Option<(String, bool)> = tx
                .prepare_cached(
                    "UPDATE tasks SET \
                       status = CASE WHEN ?6 IS NULL THEN 'failed' \
                                     WHEN attempts >= max_attempts THEN 'dead' ELSE 'scheduled' END, \
                       run_at = COALESCE(?6, run_at), error_code = ?2, error_message = ?3, \
                       finished_at = CASE WHEN ?6 IS NULL OR attempts >= max_attempts THEN ?7 END, \
                       lease_until = NULL \
                     WHERE id = ?1 AND status = 'running' AND worker = ?4 AND attempts = ?5 \
                     RETURNING status, ordering_key IS NOT NULL",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![c.id.0, error.code, error.message, c.worker, c.attempt, retry_at.map(ms), now],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                })
                .map_err(map_err)?;
            Ok(status.and_then(|(s, o)| s.parse().ok().map(|s| (s, o))))
        }
    }
}

fn set_status(conn: &Connection, id: TaskId, sql: &str, now: i64) -> StoreResult<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params![id.0, now]))
        .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn wakeups(&self) -> &Wakeups {
        &self.inner.shared.wakeups
    }

    fn set_queue_capacity(&self, queue: &str, capacity: Option<u64>) {
        if let Ok(mut caps) = self.inner.shared.capacities.write() {
            match capacity {
                Some(c) => caps.insert(queue.to_string(), c),
                None => caps.remove(queue),
            };
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c, _| c.query_row("SELECT 1", [], |_| Ok(())).map_err(map_err))
            .await
    }

    async fn enqueue(&self, task: NewTask) -> StoreResult<Enqueued> {
        let mut out = self.enqueue_batch(vec![task]).await?;
        out.pop()
            .ok_or_else(|| StoreError::Internal("enqueue returned nothing".into()))
    }

    async fn enqueue_batch(&self, tasks: Vec<NewTask>) -> StoreResult<Vec<Enqueued>> {
        self.write(move |conn, inner| {
            let tx = Tx::begin(conn)?;
            let mut st = EnqueueState {
                inner,
                now: ms(Utc::now()),
                waiting: HashMap::new(),
                any_queued: false,
                any_scheduled: false,
            };
            let mut out = Vec::with_capacity(tasks.len());
            for task in tasks {
                out.push(enqueue_in(&tx, &mut st, task)?);
            }
            tx.commit()?;
            notify_enqueued(inner, st.any_queued, st.any_scheduled);
            Ok(out)
        })
        .await
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>> {
        self.read(move |c, _| load_task(c, id, true)).await
    }

    async fn list_tasks(&self, filter: TaskFilter) -> StoreResult<Vec<Task>> {
        self.read(move |c, _| {
            let mut sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(s) = filter.status {
                sql.push_str(" AND status = ?");
                args.push(s.as_str().to_string().into());
            }
            if let Some(b) = &filter.bot {
                sql.push_str(" AND bot = ?");
                args.push(b.clone().into());
            }
            if let Some(q) = &filter.queue {
                sql.push_str(" AND queue = ?");
                args.push(q.clone().into());
            }
            if let Some(before) = filter.before {
                sql.push_str(" AND id < ?");
                args.push(before.0.into());
            }
            sql.push_str(" ORDER BY id DESC LIMIT ?");
            args.push((filter.limit.clamp(1, 1000) as i64).into());
            let mut stmt = c.prepare(&sql).map_err(map_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), task_from_row)
                .map_err(map_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
        })
        .await
    }

    async fn claim_batch(&self, req: ClaimRequest) -> StoreResult<Vec<ClaimedTask>> {
        if req.limit == 0 {
            return Ok(Vec::new());
        }
        self.write(move |conn, inner| {
            let now = ms(Utc::now());
            let tx = Tx::begin(conn)?;
            let mut out = Vec::with_capacity(req.limit);
            if req.queues.is_empty() {
                claim_from_queue(&tx, None, &req, req.limit, now, &mut out)?;
            } else {
                // Start at the next queue each time, so no queue always gets the batch's
                // leftovers: a flooded queue cannot starve the others.
                let start = inner
                    .claim_rotation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    % req.queues.len();
                for i in 0..req.queues.len() {
                    let left = req.limit - out.len();
                    if left == 0 {
                        break;
                    }
                    let q = &req.queues[(start + i) % req.queues.len()];
                    claim_from_queue(&tx, Some(q), &req, left, now, &mut out)?;
                }
            }
            for task in out.iter_mut().filter(|t| t.attempt > 1) {
                task.checkpoints = load_checkpoints(&tx, task.id)?;
            }
            tx.commit()?;
            out.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
            Ok(out)
        })
        .await
    }

    async fn extend_leases(
        &self,
        worker: &str,
        ids: &[TaskId],
        lease: Duration,
    ) -> StoreResult<u64> {
        let worker = worker.to_string();
        let ids = ids.to_vec();
        self.write(move |conn, _| {
            let until = ms(Utc::now()) + lease.as_millis() as i64;
            let tx = Tx::begin(conn)?;
            let mut held = 0u64;
            {
                let mut stmt = tx
                    .prepare_cached("UPDATE tasks SET lease_until = ?1 WHERE id = ?2 AND status = 'running' AND worker = ?3")
                    .map_err(map_err)?;
                for id in ids {
                    held += stmt.execute(params![until, id.0, worker]).map_err(map_err)? as u64;
                }
            }
            tx.commit()?;
            Ok(held)
        })
        .await
    }

    async fn complete_batch(&self, completions: Vec<Completion>) -> StoreResult<CompletionReport> {
        if completions.is_empty() {
            return Ok(CompletionReport::default());
        }
        self.write(move |conn, inner| {
            let now = ms(Utc::now());
            let tx = Tx::begin(conn)?;
            let mut report = CompletionReport::default();
            let mut rescheduled = false;
            let mut unblocked = false;
            for c in &completions {
                match apply_completion(&tx, c, now)? {
                    Some((TaskStatus::Scheduled, _)) => {
                        report.applied += 1;
                        rescheduled = true;
                    }
                    Some((_, ordered)) => {
                        report.applied += 1;
                        report.finished.push(c.id);
                        // The next task with its ordering key may run now.
                        unblocked |= ordered;
                    }
                    None => report.fenced.push(c.id),
                }
            }
            tx.commit()?;
            if rescheduled {
                inner.notify(Notice::Scheduled);
            }
            if unblocked {
                inner.notify(Notice::Queued);
            }
            inner.notify(Notice::Finished(report.finished.clone()));
            Ok(report)
        })
        .await
    }

    async fn release(&self, worker: &str, ids: &[TaskId]) -> StoreResult<u64> {
        let worker = worker.to_string();
        let ids = ids.to_vec();
        self.write(move |conn, inner| {
            let tx = Tx::begin(conn)?;
            let mut n = 0u64;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE tasks SET status = 'queued', attempts = max(attempts - 1, 0), worker = NULL, \
                         lease_until = NULL, started_at = NULL WHERE id = ?1 AND status = 'running' AND worker = ?2",
                    )
                    .map_err(map_err)?;
                for id in ids {
                    n += stmt.execute(params![id.0, worker]).map_err(map_err)? as u64;
                }
            }
            tx.commit()?;
            notify_enqueued(inner, n > 0, false);
            Ok(n)
        })
        .await
    }

    async fn expire_leases_of(&self, worker: &str) -> StoreResult<u64> {
        let worker = worker.to_string();
        self.write(move |conn, inner| {
            let n = conn
                .prepare_cached(
                    "UPDATE tasks SET lease_until = 0 WHERE status = 'running' AND worker = ?1",
                )
                .and_then(|mut s| s.execute([worker]))
                .map_err(map_err)? as u64;
            if n > 0 {
                inner.notify(Notice::Scheduled);
            }
            Ok(n)
        })
        .await
    }

    async fn save_checkpoint(
        &self,
        id: TaskId,
        step: &str,
        index: u32,
        output: &Value,
    ) -> StoreResult<()> {
        let step = step.to_string();
        let output = to_json(output);
        self.write(move |conn, _| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO task_checkpoints (task_id, step, idx, output, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| s.execute(params![id.0, step, index, output, ms(Utc::now())]))
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn cancel(&self, id: TaskId) -> StoreResult<Task> {
        self.write(move |conn, inner| {
            let tx = Tx::begin(conn)?;
            let task = require_task(&tx, id)?;
            if task.status.is_terminal() {
                return Err(StoreError::Conflict { id, status: task.status, operation: "cancel" });
            }
            set_status(
                &tx,
                id,
                "UPDATE tasks SET status = 'cancelled', finished_at = ?2, lease_until = NULL WHERE id = ?1",
                ms(Utc::now()),
            )?;
            let task = require_task(&tx, id)?;
            tx.commit()?;
            inner.notify(Notice::Finished(vec![id]));
            Ok(task)
        })
        .await
    }

    async fn redrive(&self, id: TaskId) -> StoreResult<Task> {
        self.write(move |conn, inner| {
            let tx = Tx::begin(conn)?;
            let task = require_task(&tx, id)?;
            if !matches!(task.status, TaskStatus::Dead | TaskStatus::Failed | TaskStatus::Cancelled) {
                return Err(StoreError::Conflict { id, status: task.status, operation: "retry" });
            }
            set_status(
                &tx,
                id,
                "UPDATE tasks SET status = 'queued', attempts = 0, run_at = ?2, output = NULL, error_code = NULL, \
                 error_message = NULL, started_at = NULL, finished_at = NULL, worker = NULL, lease_until = NULL \
                 WHERE id = ?1",
                ms(Utc::now()),
            )?;
            let task = require_task(&tx, id)?;
            tx.commit()?;
            notify_enqueued(inner, true, false);
            Ok(task)
        })
        .await
    }

    async fn promote_due(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.write(move |conn, inner| {
            let n = conn
                .prepare_cached("UPDATE tasks SET status = 'queued' WHERE status = 'scheduled' AND run_at <= ?1")
                .and_then(|mut s| s.execute([ms(now)]))
                .map_err(map_err)? as u64;
            notify_enqueued(inner, n > 0, false);
            Ok(n)
        })
        .await
    }

    async fn requeue_expired(&self, now: DateTime<Utc>) -> StoreResult<ExpiredReport> {
        self.write(move |conn, inner| {
            let now_ms = ms(now);
            let tx = Tx::begin(conn)?;
            let mut report = ExpiredReport::default();
            let mut dead_ids = Vec::new();
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE tasks SET \
                           status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                           error_code = ?2, error_message = 'lease of worker ' || coalesce(worker, '?') || \
                             ' expired before the task finished (worker died or stalled)', \
                           finished_at = CASE WHEN attempts >= max_attempts THEN ?1 END, lease_until = NULL \
                         WHERE status = 'running' AND lease_until < ?1 RETURNING id, status",
                    )
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map(params![now_ms, ErrorCode::LeaseExpired.code()], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(map_err)?;
                for row in rows {
                    let (id, status) = row.map_err(map_err)?;
                    if status == "dead" {
                        report.dead += 1;
                        dead_ids.push(TaskId(id));
                    } else {
                        report.requeued += 1;
                    }
                }
            }
            tx.commit()?;
            notify_enqueued(inner, report.requeued > 0, false);
            inner.notify(Notice::Finished(dead_ids));
            Ok(report)
        })
        .await
    }

    async fn next_due_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.read(|c, _| {
            let v: Option<i64> = c
                .query_row(
                    "SELECT min(run_at) FROM tasks WHERE status = 'scheduled'",
                    [],
                    |r| r.get(0),
                )
                .map_err(map_err)?;
            Ok(v.map(from_ms))
        })
        .await
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueStats>> {
        self.read(move |c, inner| {
            let mut by_queue: std::collections::BTreeMap<String, QueueStats> = Default::default();
            let queries = [
                ("queued", "SELECT queue, count(*), min(run_at) FROM tasks WHERE status = 'queued' GROUP BY queue"),
                ("running", "SELECT queue, count(*), NULL FROM tasks WHERE status = 'running' GROUP BY queue"),
                ("scheduled", "SELECT queue, count(*), NULL FROM tasks WHERE status = 'scheduled' GROUP BY queue"),
                ("dead", "SELECT queue, count(*), NULL FROM tasks WHERE status IN ('dead', 'failed') GROUP BY queue"),
            ];
            for (kind, sql) in queries {
                let mut stmt = c.prepare_cached(sql).map_err(map_err)?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<i64>>(2)?)))
                    .map_err(map_err)?;
                for row in rows {
                    let (queue, count, oldest) = row.map_err(map_err)?;
                    let e = by_queue.entry(queue.clone()).or_insert_with(|| QueueStats { name: queue, ..Default::default() });
                    let count = count as u64;
                    match kind {
                        "queued" => {
                            e.queued = count;
                            if let Some(o) = oldest {
                                e.oldest_queued_age_seconds = ((ms(now) - o).max(0) as f64) / 1000.0;
                            }
                        }
                        "running" => e.running = count,
                        "scheduled" => e.scheduled = count,
                        _ => e.dead = count,
                    }
                }
            }
            Ok(crate::with_capacities(by_queue, &inner.capacities))
        })
        .await
    }

    async fn kv_get(
        &self,
        namespace: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Value>> {
        let (ns, key) = (namespace.to_string(), key.to_string());
        self.read(move |c, _| {
            let v: Option<String> = c
                .prepare_cached(
                    "SELECT value FROM kv WHERE ns = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
                )
                .and_then(|mut s| s.query_row(params![ns, key, ms(now)], |r| r.get(0)).optional())
                .map_err(map_err)?;
            Ok(v.as_deref().map(parse_json))
        })
        .await
    }

    async fn kv_set(
        &self,
        namespace: &str,
        key: &str,
        value: &Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let (ns, key, value) = (namespace.to_string(), key.to_string(), to_json(value));
        self.write(move |c, _| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO kv (ns, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![ns, key, value, expires_at.map(ms)]))
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn trigger_marks(&self) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        self.read(|c, _| {
            let mut stmt = c
                .prepare_cached("SELECT key, fired_at FROM trigger_marks")
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, from_ms(r.get(1)?))))
                .map_err(map_err)?;
            rows.collect::<Result<HashMap<_, _>, _>>().map_err(map_err)
        })
        .await
    }

    async fn set_trigger_mark(&self, key: &str, fired_at: DateTime<Utc>) -> StoreResult<()> {
        let key = key.to_string();
        self.write(move |c, _| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO trigger_marks (key, fired_at) VALUES (?1, ?2)",
            )
            .and_then(|mut s| s.execute(params![key, ms(fired_at)]))
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn purge(
        &self,
        finished_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<u64> {
        self.write(move |conn, _| {
            let tx = Tx::begin(conn)?;
            let ids: Vec<i64> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id FROM tasks WHERE status IN ('succeeded', 'failed', 'dead', 'cancelled') \
                         AND finished_at < ?1 ORDER BY id LIMIT ?2",
                    )
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map(params![ms(finished_before), limit as i64], |r| r.get(0))
                    .map_err(map_err)?;
                rows.collect::<Result<_, _>>().map_err(map_err)?
            };
            for id in &ids {
                tx.prepare_cached("DELETE FROM task_checkpoints WHERE task_id = ?1")
                    .and_then(|mut s| s.execute([id]))
                    .map_err(map_err)?;
                tx.prepare_cached("DELETE FROM tasks WHERE id = ?1")
                    .and_then(|mut s| s.execute([id]))
                    .map_err(map_err)?;
            }
            tx.prepare_cached("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?1")
                .and_then(|mut s| s.execute([ms(now)]))
                .map_err(map_err)?;
            tx.commit()?;
            Ok(ids.len() as u64)
        })
        .await
    }

    async fn heartbeat_node(&self, id: &str, info: &Value) -> StoreResult<()> {
        let (id, info) = (id.to_string(), to_json(info));
        self.write(move |c, _| {
            let now = ms(Utc::now());
            c.prepare_cached(
                "INSERT INTO nodes (id, info, started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?3) \
                 ON CONFLICT (id) DO UPDATE SET info = excluded.info, heartbeat_at = excluded.heartbeat_at",
            )
            .and_then(|mut s| s.execute(params![id, info, now]))
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn remove_node(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |c, _| {
            c.prepare_cached("DELETE FROM nodes WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn list_nodes(&self) -> StoreResult<Vec<NodeRecord>> {
        self.read(|c, _| {
            let mut stmt = c
                .prepare_cached("SELECT id, info, started_at, heartbeat_at FROM nodes ORDER BY id")
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(NodeRecord {
                        id: r.get(0)?,
                        info: parse_json(&r.get::<_, String>(1)?),
                        started_at: from_ms(r.get(2)?),
                        heartbeat_at: from_ms(r.get(3)?),
                    })
                })
                .map_err(map_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
        })
        .await
    }

    async fn acquire_leadership(
        &self,
        role: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let (role, holder) = (role.to_string(), holder.to_string());
        self.write(move |c, _| {
            let now = ms(Utc::now());
            let won = c
                .prepare_cached(
                    "INSERT INTO leaders (role, holder, until) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                     WHERE leaders.holder = excluded.holder OR leaders.until < ?4 RETURNING holder",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![role, holder, now + ttl.as_millis() as i64, now],
                        |_| Ok(()),
                    )
                    .optional()
                })
                .map_err(map_err)?;
            Ok(won.is_some())
        })
        .await
    }

    async fn resign_leadership(&self, role: &str, holder: &str) -> StoreResult<()> {
        let (role, holder) = (role.to_string(), holder.to_string());
        self.write(move |c, _| {
            c.prepare_cached("DELETE FROM leaders WHERE role = ?1 AND holder = ?2")
                .and_then(|mut s| s.execute([role, holder]))
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }
}

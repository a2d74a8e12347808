//! The [`Store`] operations on PostgreSQL. Hot paths (claim, complete, bulk enqueue) are one
//! statement and one round trip each, notifications included.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use oclaw_core::{Checkpoint, ErrorCode, NewTask, Task, TaskError, TaskId, TaskStatus};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{pg_err, pool_err, Inner, PgStore};
use crate::codec::{from_ms, ms, parse_json, to_json, ORDERED};
use crate::{
    ClaimRequest, ClaimedTask, Completion, CompletionReport, Enqueued, ExpiredReport, NodeRecord,
    Outcome, QueueStats, Store, StoreError, StoreResult, TaskFilter, Wakeups,
};

const TASK_COLUMNS: &str = "id, bot, queue, status, priority, input, output, error_code, \
    error_message, attempts, max_attempts, idempotency_key, trace_id, created_at, run_at, started_at, \
    finished_at, worker";

// A task holds a lease exactly while it runs: `lease_until IS NOT NULL` is `status = 'running'`.
// Statements that address tasks by id test the former, so the planner reaches them through the
// primary key and never walks the `tasks_leased` index, whose dead entries (every finished run
// leaves one until vacuum) would make each such statement slower as a drain goes on.

const CLAIMED_COLUMNS: &str = "t.id, t.bot, t.queue, t.priority, t.input, t.attempts, \
    t.max_attempts, t.trace_id, t.created_at, t.run_at";

/// NOTIFY payloads are limited to 8000 bytes; completions are written in chunks whose id lists fit.
const NOTIFY_CHUNK: usize = 400;

fn task_from_row(r: &Row) -> Task {
    let status: String = r.get(3);
    let output: Option<String> = r.get(6);
    let code: Option<String> = r.get(7);
    Task {
        id: TaskId(r.get(0)),
        bot: r.get(1),
        queue: r.get(2),
        status: status.parse().unwrap_or(TaskStatus::Failed),
        priority: r.get(4),
        input: parse_json(r.get(5)),
        output: output.as_deref().map(parse_json),
        error: code.map(|code| TaskError {
            code,
            message: r.get::<_, Option<String>>(8).unwrap_or_default(),
        }),
        attempts: r.get::<_, i32>(9).max(0) as u32,
        max_attempts: r.get::<_, i32>(10).max(0) as u32,
        idempotency_key: r.get(11),
        trace_id: r.get(12),
        created_at: from_ms(r.get(13)),
        run_at: from_ms(r.get(14)),
        started_at: r.get::<_, Option<i64>>(15).map(from_ms),
        finished_at: r.get::<_, Option<i64>>(16).map(from_ms),
        worker: r.get(17),
        checkpoints: Vec::new(),
    }
}

fn claimed_from_row(r: &Row) -> ClaimedTask {
    ClaimedTask {
        id: TaskId(r.get(0)),
        bot: r.get(1),
        queue: r.get(2),
        priority: r.get(3),
        input: parse_json(r.get(4)),
        attempt: r.get::<_, i32>(5).max(0) as u32,
        max_attempts: r.get::<_, i32>(6).max(0) as u32,
        trace_id: r.get(7),
        created_at: from_ms(r.get(8)),
        run_at: from_ms(r.get(9)),
        checkpoints: Vec::new(),
    }
}

async fn load_checkpoints(c: &impl GenericClient, id: TaskId) -> StoreResult<Vec<Checkpoint>> {
    let rows = c
        .query(
            "SELECT step, idx, output, at FROM task_checkpoints WHERE task_id = $1 ORDER BY idx",
            &[&id.0],
        )
        .await
        .map_err(pg_err)?;
    Ok(rows
        .iter()
        .map(|r| Checkpoint {
            step: r.get(0),
            index: r.get::<_, i32>(1).max(0) as u32,
            output: parse_json(r.get(2)),
            at: from_ms(r.get(3)),
        })
        .collect())
}

async fn load_task(c: &impl GenericClient, id: TaskId) -> StoreResult<Option<Task>> {
    let row = c
        .query_opt(
            &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"),
            &[&id.0],
        )
        .await
        .map_err(pg_err)?;
    match row {
        Some(r) => {
            let mut t = task_from_row(&r);
            t.checkpoints = load_checkpoints(c, id).await?;
            Ok(Some(t))
        }
        None => Ok(None),
    }
}

async fn require_task(c: &impl GenericClient, id: TaskId) -> StoreResult<Task> {
    load_task(c, id).await?.ok_or(StoreError::NotFound(id))
}

/// A new task as the row it becomes.
struct Row0<'a> {
    task: &'a NewTask,
    status: TaskStatus,
    run_at: i64,
}

fn prepare_row(task: &NewTask, now: i64) -> Row0<'_> {
    let run_at = task.run_at.map(ms).unwrap_or(now).max(0);
    Row0 {
        task,
        status: if run_at > now {
            TaskStatus::Scheduled
        } else {
            TaskStatus::Queued
        },
        run_at,
    }
}

fn new_task(row: &Row0<'_>, id: i64, now: i64) -> Task {
    let t = row.task;
    Task {
        id: TaskId(id),
        bot: t.bot.clone(),
        queue: t.queue.clone(),
        status: row.status,
        priority: t.priority,
        input: t.input.clone(),
        output: None,
        error: None,
        attempts: 0,
        max_attempts: t.max_attempts,
        idempotency_key: t.idempotency_key.clone(),
        trace_id: t.trace_id.clone(),
        created_at: from_ms(now),
        run_at: from_ms(row.run_at),
        started_at: None,
        finished_at: None,
        worker: None,
        checkpoints: Vec::new(),
    }
}

/// Inserts rows in one statement; ids come back in input order (the sequence is drawn row by
/// row as `unnest` yields them). Sends one NOTIFY per kind of wake-up needed.
async fn insert_rows(
    c: &impl GenericClient,
    inner: &Inner,
    rows: &[Row0<'_>],
    now: i64,
) -> StoreResult<Vec<i64>> {
    let bots: Vec<&str> = rows.iter().map(|r| r.task.bot.as_str()).collect();
    let queues: Vec<&str> = rows.iter().map(|r| r.task.queue.as_str()).collect();
    let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    let priorities: Vec<i32> = rows.iter().map(|r| r.task.priority).collect();
    let inputs: Vec<String> = rows.iter().map(|r| to_json(&r.task.input)).collect();
    let max_attempts: Vec<i32> = rows
        .iter()
        .map(|r| r.task.max_attempts.min(i32::MAX as u32) as i32)
        .collect();
    let keys: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.task.idempotency_key.as_deref())
        .collect();
    let traces: Vec<&str> = rows.iter().map(|r| r.task.trace_id.as_str()).collect();
    let ordering: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.task.ordering_key.as_deref())
        .collect();
    let run_ats: Vec<i64> = rows.iter().map(|r| r.run_at).collect();
    let queued = rows.iter().any(|r| r.status == TaskStatus::Queued);
    let scheduled = rows.iter().any(|r| r.status == TaskStatus::Scheduled);
    let stmt = c
        .prepare_cached(
            "WITH ins AS (\
               INSERT INTO tasks (bot, queue, status, priority, input, max_attempts, idempotency_key, \
                                  trace_id, created_at, run_at, ordering_key) \
               SELECT b, q, s, p, i, m, k, tr, $10, r, o FROM unnest($1::text[], $2::text[], $3::text[], \
                 $4::int[], $5::text[], $6::int[], $7::text[], $8::text[], $9::bigint[], $15::text[]) \
                 AS u(b, q, s, p, i, m, k, tr, r, o) \
               RETURNING id) \
             SELECT id, \
               (SELECT CASE WHEN $11 THEN pg_notify($12, '') END), \
               (SELECT CASE WHEN $13 THEN pg_notify($14, '') END) \
             FROM ins",
        )
        .await
        .map_err(pg_err)?;
    let params: [&(dyn ToSql + Sync); 15] = [
        &bots,
        &queues,
        &statuses,
        &priorities,
        &inputs,
        &max_attempts,
        &keys,
        &traces,
        &run_ats,
        &now,
        &queued,
        &inner.channels.queued,
        &scheduled,
        &inner.channels.scheduled,
        &ordering,
    ];
    let result = c.query(&stmt, &params).await.map_err(pg_err)?;
    let mut ids: Vec<i64> = result.iter().map(|r| r.get(0)).collect();
    ids.sort_unstable();
    if queued {
        inner.wakeups.queued.notify_one();
    }
    if scheduled {
        inner.wakeups.scheduled.notify_one();
    }
    Ok(ids)
}

/// The completion statement: one UPDATE over unnest(arrays), fenced on worker, attempt and
/// lease, with its NOTIFYs.
async fn complete_statement(
    c: &impl GenericClient,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<Row>> {
    let stmt = c
        .prepare_cached(
            "WITH u AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::bool[], \
                   $5::text[], $6::text[], $7::text[], $8::bigint[]) \
                   AS u(id, worker, attempt, ok, output, code, message, retry_at)), \
                 done AS (UPDATE tasks t SET \
                   status = CASE WHEN u.ok THEN 'succeeded' WHEN u.retry_at IS NULL THEN 'failed' \
                                 WHEN t.attempts >= t.max_attempts THEN 'dead' ELSE 'scheduled' END, \
                   output = CASE WHEN u.ok THEN u.output ELSE t.output END, \
                   error_code = u.code, error_message = u.message, \
                   run_at = COALESCE(u.retry_at, t.run_at), \
                   finished_at = CASE WHEN u.ok OR u.retry_at IS NULL OR t.attempts >= t.max_attempts \
                                      THEN $9::bigint END, \
                   lease_until = NULL \
                 FROM u WHERE t.id = u.id AND t.lease_until IS NOT NULL AND t.worker = u.worker \
                   AND t.attempts = u.attempt \
                 RETURNING t.id, t.status, t.ordering_key IS NOT NULL AS ordered) \
                 SELECT id, status, ordered, \
                   (SELECT pg_notify($10, string_agg(id::text, ',')) FROM done WHERE status <> 'scheduled' \
                    HAVING count(*) > 0), \
                   (SELECT pg_notify($11, '') FROM done WHERE status = 'scheduled' HAVING count(*) > 0), \
                   (SELECT pg_notify($12, '') FROM done WHERE ordered AND status <> 'scheduled' \
                    HAVING count(*) > 0) \
                 FROM done",
        )
        .await
        .map_err(pg_err)?;
    c.query(&stmt, params).await.map_err(pg_err)
}

impl PgStore {
    fn capacity(&self, queue: &str) -> Option<u64> {
        self.inner
            .capacities
            .read()
            .ok()
            .and_then(|c| c.get(queue).copied())
    }

    /// The careful path: idempotency keys or capped queues. One transaction; capped queues are
    /// locked (advisory, per queue) so concurrent enqueues count waiting tasks one at a time.
    async fn enqueue_checked(&self, tasks: Vec<NewTask>, now: i64) -> StoreResult<Vec<Enqueued>> {
        let mut client = self.inner.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let mut capped: BTreeMap<&str, u64> = BTreeMap::new();
        for t in &tasks {
            if let Some(cap) = self.capacity(&t.queue) {
                capped.insert(&t.queue, cap);
            }
        }
        let mut waiting: HashMap<&str, u64> = HashMap::new();
        for (queue, cap) in &capped {
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('oclaw-queue:' || current_schema() || ':' || $1))",
                &[queue],
            )
            .await
            .map_err(pg_err)?;
            let n: i64 = tx
                .query_one(
                    "SELECT (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status = 'queued' AND queue = $1 LIMIT $2) a) \
                          + (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status = 'scheduled' AND queue = $1 LIMIT $2) b)",
                    &[queue, &(*cap as i64)],
                )
                .await
                .map_err(pg_err)?
                .get(0);
            waiting.insert(queue, n as u64);
        }
        let mut out = Vec::with_capacity(tasks.len());
        for task in &tasks {
            if let Some(key) = &task.idempotency_key {
                let existing = tx
                    .query_opt(
                        &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE idempotency_key = $1"),
                        &[key],
                    )
                    .await
                    .map_err(pg_err)?;
                if let Some(r) = existing {
                    out.push(Enqueued {
                        task: task_from_row(&r),
                        created: false,
                    });
                    continue;
                }
            }
            if let Some(cap) = capped.get(task.queue.as_str()) {
                let n = waiting.entry(&task.queue).or_default();
                if *n >= *cap {
                    return Err(StoreError::QueueFull {
                        queue: task.queue.clone(),
                        capacity: *cap,
                    });
                }
                *n += 1;
            }
            let row = prepare_row(task, now);
            let id = insert_rows(&tx, &self.inner, std::slice::from_ref(&row), now).await;
            let id = match id {
                Ok(ids) => ids
                    .first()
                    .copied()
                    .ok_or_else(|| StoreError::Internal("insert returned no id".into()))?,
                // Another node inserted the same idempotency key first: its task is the answer.
                Err(StoreError::Duplicate(_)) => {
                    drop(tx);
                    return Box::pin(self.enqueue_checked(tasks, now)).await;
                }
                Err(e) => return Err(e),
            };
            out.push(Enqueued {
                task: new_task(&row, id, now),
                created: true,
            });
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(out)
    }

    async fn claim_from(
        &self,
        c: &impl GenericClient,
        queue: Option<&str>,
        req: &ClaimRequest,
        limit: usize,
        now: i64,
    ) -> StoreResult<Vec<ClaimedTask>> {
        let lease_until = now + req.lease.as_millis() as i64;
        let limit = limit as i64;
        let rows = match queue {
            Some(q) => {
                let stmt = c
                    .prepare_cached(&format!(
                        "UPDATE tasks t SET status = 'running', attempts = t.attempts + 1, worker = $1, \
                           lease_until = $2, started_at = $3 \
                         FROM (SELECT id FROM tasks c WHERE status = 'queued' AND queue = $4 {ORDERED} \
                               ORDER BY priority DESC, id LIMIT $5 FOR UPDATE SKIP LOCKED) p \
                         WHERE t.id = p.id RETURNING {CLAIMED_COLUMNS}"
                    ))
                    .await
                    .map_err(pg_err)?;
                c.query(&stmt, &[&req.worker, &lease_until, &now, &q, &limit])
                    .await
            }
            None => {
                let stmt = c
                    .prepare_cached(&format!(
                        "UPDATE tasks t SET status = 'running', attempts = t.attempts + 1, worker = $1, \
                           lease_until = $2, started_at = $3 \
                         FROM (SELECT id FROM tasks c WHERE status = 'queued' {ORDERED} \
                               ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED) p \
                         WHERE t.id = p.id RETURNING {CLAIMED_COLUMNS}"
                    ))
                    .await
                    .map_err(pg_err)?;
                c.query(&stmt, &[&req.worker, &lease_until, &now, &limit])
                    .await
            }
        }
        .map_err(pg_err)?;
        let mut out: Vec<ClaimedTask> = rows.iter().map(claimed_from_row).collect();
        for task in out.iter_mut().filter(|t| t.attempt > 1) {
            task.checkpoints = load_checkpoints(c, task.id).await?;
        }
        Ok(out)
    }

    async fn complete_chunk(
        &self,
        completions: &[Completion],
        now: i64,
        report: &mut CompletionReport,
    ) -> StoreResult<()> {
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let n = completions.len();
        let mut ids = Vec::with_capacity(n);
        let mut workers = Vec::with_capacity(n);
        let mut attempts = Vec::with_capacity(n);
        let mut oks = Vec::with_capacity(n);
        let mut outputs: Vec<Option<String>> = Vec::with_capacity(n);
        let mut codes: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut messages: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut retries: Vec<Option<i64>> = Vec::with_capacity(n);
        for c in completions {
            ids.push(c.id.0);
            workers.push(c.worker.as_str());
            attempts.push(c.attempt.min(i32::MAX as u32) as i32);
            match &c.outcome {
                Outcome::Succeeded(v) => {
                    oks.push(true);
                    outputs.push(Some(to_json(v)));
                    codes.push(None);
                    messages.push(None);
                    retries.push(None);
                }
                Outcome::Failed { error, retry_at } => {
                    oks.push(false);
                    outputs.push(None);
                    codes.push(Some(&error.code));
                    messages.push(Some(&error.message));
                    retries.push(retry_at.map(ms));
                }
            }
        }
        let params: [&(dyn ToSql + Sync); 12] = [
            &ids,
            &workers,
            &attempts,
            &oks,
            &outputs,
            &codes,
            &messages,
            &retries,
            &now,
            &self.inner.channels.finished,
            &self.inner.channels.scheduled,
            &self.inner.channels.queued,
        ];
        let rows = if completions.iter().any(|c| !c.kv.is_empty()) {
            // Key-value writes of successes commit with their completions.
            let mut client = client;
            let tx = client.transaction().await.map_err(pg_err)?;
            let rows = complete_statement(&tx, &params).await?;
            let succeeded: std::collections::HashSet<i64> = rows
                .iter()
                .filter(|r| r.get::<_, &str>(1) == "succeeded")
                .map(|r| r.get(0))
                .collect();
            for c in completions.iter().filter(|c| succeeded.contains(&c.id.0)) {
                for w in &c.kv {
                    tx.execute(
                        "INSERT INTO kv (ns, key, value, expires_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                        &[&w.namespace, &w.key, &to_json(&w.value), &w.expires_at.map(ms)],
                    )
                    .await
                    .map_err(pg_err)?;
                }
            }
            tx.commit().await.map_err(pg_err)?;
            rows
        } else {
            complete_statement(&client, &params).await?
        };
        let mut applied = std::collections::HashSet::with_capacity(rows.len());
        let mut rescheduled = false;
        let mut unblocked = false;
        for r in &rows {
            let id = TaskId(r.get(0));
            applied.insert(id);
            let status: &str = r.get(1);
            if status == "scheduled" {
                rescheduled = true;
            } else {
                report.finished.push(id);
                // The next task with its ordering key may run now.
                unblocked |= r.get::<_, bool>(2);
            }
        }
        if unblocked {
            self.inner.wakeups.queued.notify_one();
        }
        report.applied += applied.len();
        report.fenced.extend(
            completions
                .iter()
                .map(|c| c.id)
                .filter(|id| !applied.contains(id)),
        );
        if rescheduled {
            self.inner.wakeups.scheduled.notify_one();
        }
        Ok(())
    }

    async fn exec(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let stmt = client.prepare_cached(sql).await.map_err(pg_err)?;
        client.execute(&stmt, params).await.map_err(pg_err)
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let stmt = client.prepare_cached(sql).await.map_err(pg_err)?;
        client.query(&stmt, params).await.map_err(pg_err)
    }

    /// Runs a status change that must see the task first (cancel, redrive).
    async fn change_status(
        &self,
        id: TaskId,
        operation: &'static str,
        allowed: impl Fn(TaskStatus) -> bool + Send,
        sql: &str,
        notify: &str,
    ) -> StoreResult<Task> {
        let mut client = self.inner.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let row = tx
            .query_opt(
                "SELECT status FROM tasks WHERE id = $1 FOR UPDATE",
                &[&id.0],
            )
            .await
            .map_err(pg_err)?
            .ok_or(StoreError::NotFound(id))?;
        let status: TaskStatus = row.get::<_, &str>(0).parse().unwrap_or(TaskStatus::Failed);
        if !allowed(status) {
            return Err(StoreError::Conflict {
                id,
                status,
                operation,
            });
        }
        tx.execute(sql, &[&id.0, &ms(Utc::now())])
            .await
            .map_err(pg_err)?;
        tx.execute("SELECT pg_notify($1, $2)", &[&notify, &id.0.to_string()])
            .await
            .map_err(pg_err)?;
        let task = require_task(&tx, id).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(task)
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn wakeups(&self) -> &Wakeups {
        &self.inner.wakeups
    }

    fn set_queue_capacity(&self, queue: &str, capacity: Option<u64>) {
        if let Ok(mut caps) = self.inner.capacities.write() {
            match capacity {
                Some(c) => caps.insert(queue.to_string(), c),
                None => caps.remove(queue),
            };
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        self.query("SELECT 1", &[]).await.map(|_| ())
    }

    async fn enqueue(&self, task: NewTask) -> StoreResult<Enqueued> {
        let mut out = self.enqueue_batch(vec![task]).await?;
        out.pop()
            .ok_or_else(|| StoreError::Internal("enqueue returned nothing".into()))
    }

    async fn enqueue_batch(&self, tasks: Vec<NewTask>) -> StoreResult<Vec<Enqueued>> {
        let now = ms(Utc::now());
        let careful = tasks
            .iter()
            .any(|t| t.idempotency_key.is_some() || self.capacity(&t.queue).is_some());
        if careful {
            return self.enqueue_checked(tasks, now).await;
        }
        let rows: Vec<Row0<'_>> = tasks.iter().map(|t| prepare_row(t, now)).collect();
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let ids = insert_rows(&client, &self.inner, &rows, now).await?;
        if ids.len() != rows.len() {
            return Err(StoreError::Internal(format!(
                "inserted {} of {} tasks",
                ids.len(),
                rows.len()
            )));
        }
        Ok(rows
            .iter()
            .zip(ids)
            .map(|(r, id)| Enqueued {
                task: new_task(r, id, now),
                created: true,
            })
            .collect())
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>> {
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        load_task(&client, id).await
    }

    async fn list_tasks(&self, filter: TaskFilter) -> StoreResult<Vec<Task>> {
        let mut sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE true");
        let status = filter.status.map(|s| s.as_str().to_string());
        let before = filter.before.map(|b| b.0);
        let limit = filter.limit.clamp(1, 1000) as i64;
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        for (col, value) in [
            ("status", status.as_ref()),
            ("bot", filter.bot.as_ref()),
            ("queue", filter.queue.as_ref()),
        ] {
            if let Some(v) = value {
                params.push(v);
                sql.push_str(&format!(" AND {col} = ${}", params.len()));
            }
        }
        if let Some(b) = &before {
            params.push(b);
            sql.push_str(&format!(" AND id < ${}", params.len()));
        }
        params.push(&limit);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));
        let rows = self.query(&sql, &params).await?;
        Ok(rows.iter().map(task_from_row).collect())
    }

    async fn claim_batch(&self, req: ClaimRequest) -> StoreResult<Vec<ClaimedTask>> {
        if req.limit == 0 {
            return Ok(Vec::new());
        }
        let now = ms(Utc::now());
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let mut out = match req.queues.as_slice() {
            [] => self.claim_from(&client, None, &req, req.limit, now).await?,
            [q] => {
                self.claim_from(&client, Some(q), &req, req.limit, now)
                    .await?
            }
            queues => {
                // Start at the next queue each time, so no queue always gets the batch's
                // leftovers: a flooded queue cannot starve the others.
                let mut out = Vec::with_capacity(req.limit);
                let start = self
                    .inner
                    .claim_rotation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    % queues.len();
                for i in 0..queues.len() {
                    let left = req.limit - out.len();
                    if left == 0 {
                        break;
                    }
                    let q = &queues[(start + i) % queues.len()];
                    out.extend(self.claim_from(&client, Some(q), &req, left, now).await?);
                }
                out
            }
        };
        out.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn extend_leases(
        &self,
        worker: &str,
        ids: &[TaskId],
        lease: Duration,
    ) -> StoreResult<u64> {
        let until = ms(Utc::now()) + lease.as_millis() as i64;
        let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
        self.exec(
            "UPDATE tasks SET lease_until = $1 WHERE id = ANY($2) AND lease_until IS NOT NULL AND worker = $3",
            &[&until, &ids, &worker],
        )
        .await
    }

    async fn complete_batch(&self, completions: Vec<Completion>) -> StoreResult<CompletionReport> {
        let now = ms(Utc::now());
        let mut report = CompletionReport::default();
        for chunk in completions.chunks(NOTIFY_CHUNK) {
            self.complete_chunk(chunk, now, &mut report).await?;
        }
        Ok(report)
    }

    async fn release(&self, worker: &str, ids: &[TaskId]) -> StoreResult<u64> {
        let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
        let rows = self
            .query(
                "WITH r AS (UPDATE tasks SET status = 'queued', attempts = greatest(attempts - 1, 0), \
                   worker = NULL, lease_until = NULL, started_at = NULL \
                   WHERE id = ANY($1) AND lease_until IS NOT NULL AND worker = $2 RETURNING id) \
                 SELECT count(*), (SELECT pg_notify($3, '') FROM r HAVING count(*) > 0) FROM r",
                &[&ids, &worker, &self.inner.channels.queued],
            )
            .await?;
        let n: i64 = rows.first().map(|r| r.get(0)).unwrap_or(0);
        if n > 0 {
            self.inner.wakeups.queued.notify_one();
        }
        Ok(n as u64)
    }

    async fn expire_leases_of(&self, worker: &str) -> StoreResult<u64> {
        let n = self
            .exec(
                "UPDATE tasks SET lease_until = 0 WHERE status = 'running' AND worker = $1",
                &[&worker],
            )
            .await?;
        if n > 0 {
            self.exec(
                "SELECT pg_notify($1, '')",
                &[&self.inner.channels.scheduled],
            )
            .await?;
            self.inner.wakeups.scheduled.notify_one();
        }
        Ok(n)
    }

    async fn save_checkpoint(
        &self,
        id: TaskId,
        step: &str,
        index: u32,
        output: &Value,
    ) -> StoreResult<()> {
        let index = index.min(i32::MAX as u32) as i32;
        self.exec(
            "INSERT INTO task_checkpoints (task_id, step, idx, output, at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (task_id, step) DO UPDATE SET idx = excluded.idx, output = excluded.output, at = excluded.at",
            &[&id.0, &step, &index, &to_json(output), &ms(Utc::now())],
        )
        .await
        .map(|_| ())
    }

    async fn cancel(&self, id: TaskId) -> StoreResult<Task> {
        let finished = self.inner.channels.finished.clone();
        self.change_status(
            id,
            "cancel",
            |s| !s.is_terminal(),
            "UPDATE tasks SET status = 'cancelled', finished_at = $2, lease_until = NULL WHERE id = $1",
            &finished,
        )
        .await
    }

    async fn redrive(&self, id: TaskId) -> StoreResult<Task> {
        let queued = self.inner.channels.queued.clone();
        let task = self
            .change_status(
                id,
                "retry",
                |s| {
                    matches!(
                        s,
                        TaskStatus::Dead | TaskStatus::Failed | TaskStatus::Cancelled
                    )
                },
                "UPDATE tasks SET status = 'queued', attempts = 0, run_at = $2, output = NULL, \
                 error_code = NULL, error_message = NULL, started_at = NULL, finished_at = NULL, \
                 worker = NULL, lease_until = NULL WHERE id = $1",
                &queued,
            )
            .await?;
        self.inner.wakeups.queued.notify_one();
        Ok(task)
    }

    async fn promote_due(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let rows = self
            .query(
                "WITH p AS (UPDATE tasks SET status = 'queued' WHERE status = 'scheduled' AND run_at <= $1 RETURNING 1) \
                 SELECT count(*), (SELECT pg_notify($2, '') FROM p HAVING count(*) > 0) FROM p",
                &[&ms(now), &self.inner.channels.queued],
            )
            .await?;
        let n: i64 = rows.first().map(|r| r.get(0)).unwrap_or(0);
        if n > 0 {
            self.inner.wakeups.queued.notify_one();
        }
        Ok(n as u64)
    }

    async fn requeue_expired(&self, now: DateTime<Utc>) -> StoreResult<ExpiredReport> {
        let code = ErrorCode::LeaseExpired.code();
        let rows = self
            .query(
                "WITH e AS (UPDATE tasks SET \
                   status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                   error_code = $2, error_message = 'lease of worker ' || coalesce(worker, '?') || \
                     ' expired before the task finished (worker died or stalled)', \
                   finished_at = CASE WHEN attempts >= max_attempts THEN $1::bigint END, lease_until = NULL \
                 WHERE status = 'running' AND lease_until < $1 RETURNING id, status) \
                 SELECT id, status, \
                   (SELECT pg_notify($3, '') FROM e WHERE status = 'queued' HAVING count(*) > 0), \
                   (SELECT pg_notify($4, string_agg(id::text, ',')) FROM e WHERE status = 'dead' HAVING count(*) > 0) \
                 FROM e",
                &[&ms(now), &code, &self.inner.channels.queued, &self.inner.channels.finished],
            )
            .await?;
        let mut report = ExpiredReport::default();
        for r in &rows {
            if r.get::<_, &str>(1) == "dead" {
                report.dead += 1;
            } else {
                report.requeued += 1;
            }
        }
        if report.requeued > 0 {
            self.inner.wakeups.queued.notify_one();
        }
        Ok(report)
    }

    async fn next_due_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let rows = self
            .query(
                "SELECT min(run_at) FROM tasks WHERE status = 'scheduled'",
                &[],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .map(from_ms))
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueStats>> {
        let rows = self
            .query(
                "SELECT 'queued', queue, count(*), min(run_at) FROM tasks WHERE status = 'queued' GROUP BY queue \
                 UNION ALL SELECT 'running', queue, count(*), NULL FROM tasks WHERE status = 'running' GROUP BY queue \
                 UNION ALL SELECT 'scheduled', queue, count(*), NULL FROM tasks WHERE status = 'scheduled' GROUP BY queue \
                 UNION ALL SELECT 'dead', queue, count(*), NULL FROM tasks WHERE status IN ('dead', 'failed') GROUP BY queue",
                &[],
            )
            .await?;
        let mut by_queue: BTreeMap<String, QueueStats> = BTreeMap::new();
        for r in &rows {
            let kind: &str = r.get(0);
            let queue: String = r.get(1);
            let count = r.get::<_, i64>(2).max(0) as u64;
            let e = by_queue.entry(queue.clone()).or_insert_with(|| QueueStats {
                name: queue,
                ..Default::default()
            });
            match kind {
                "queued" => {
                    e.queued = count;
                    if let Some(oldest) = r.get::<_, Option<i64>>(3) {
                        e.oldest_queued_age_seconds = ((ms(now) - oldest).max(0) as f64) / 1000.0;
                    }
                }
                "running" => e.running = count,
                "scheduled" => e.scheduled = count,
                _ => e.dead = count,
            }
        }
        Ok(crate::with_capacities(by_queue, &self.inner.capacities))
    }

    async fn kv_get(
        &self,
        namespace: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Value>> {
        let rows = self
            .query(
                "SELECT value FROM kv WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3)",
                &[&namespace, &key, &ms(now)],
            )
            .await?;
        Ok(rows.first().map(|r| parse_json(r.get(0))))
    }

    async fn kv_set(
        &self,
        namespace: &str,
        key: &str,
        value: &Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        self.exec(
            "INSERT INTO kv (ns, key, value, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            &[&namespace, &key, &to_json(value), &expires_at.map(ms)],
        )
        .await
        .map(|_| ())
    }

    async fn trigger_marks(&self) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        let rows = self
            .query("SELECT key, fired_at FROM trigger_marks", &[])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), from_ms(r.get(1)))).collect())
    }

    async fn set_trigger_mark(&self, key: &str, fired_at: DateTime<Utc>) -> StoreResult<()> {
        self.exec(
            "INSERT INTO trigger_marks (key, fired_at) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET fired_at = excluded.fired_at",
            &[&key, &ms(fired_at)],
        )
        .await
        .map(|_| ())
    }

    async fn purge(
        &self,
        finished_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<u64> {
        let rows = self
            .query(
                "WITH doomed AS (SELECT id FROM tasks \
                   WHERE status IN ('succeeded', 'failed', 'dead', 'cancelled') AND finished_at < $1 \
                   ORDER BY id LIMIT $2), \
                 c AS (DELETE FROM task_checkpoints WHERE task_id IN (SELECT id FROM doomed)), \
                 t AS (DELETE FROM tasks WHERE id IN (SELECT id FROM doomed) RETURNING 1) \
                 SELECT count(*) FROM t",
                &[&ms(finished_before), &(limit as i64)],
            )
            .await?;
        self.exec(
            "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= $1",
            &[&ms(now)],
        )
        .await?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0) as u64)
    }

    async fn heartbeat_node(&self, id: &str, info: &Value) -> StoreResult<()> {
        self.exec(
            "INSERT INTO nodes (id, info, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET info = excluded.info, heartbeat_at = excluded.heartbeat_at",
            &[&id, &to_json(info), &ms(Utc::now())],
        )
        .await
        .map(|_| ())
    }

    async fn remove_node(&self, id: &str) -> StoreResult<()> {
        self.exec("DELETE FROM nodes WHERE id = $1", &[&id])
            .await
            .map(|_| ())
    }

    async fn list_nodes(&self) -> StoreResult<Vec<NodeRecord>> {
        let rows = self
            .query(
                "SELECT id, info, started_at, heartbeat_at FROM nodes ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| NodeRecord {
                id: r.get(0),
                info: parse_json(r.get(1)),
                started_at: from_ms(r.get(2)),
                heartbeat_at: from_ms(r.get(3)),
            })
            .collect())
    }

    async fn acquire_leadership(
        &self,
        role: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        // Terms run on the database's clock, so schedulers on hosts with skewed clocks agree.
        let ttl_ms = ttl.as_millis() as i64;
        let rows = self
            .query(
                "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms) \
                 INSERT INTO leaders (role, holder, until) SELECT $1, $2, ms + $3 FROM now \
                 ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE leaders.holder = excluded.holder OR leaders.until < (SELECT ms FROM now) \
                 RETURNING holder",
                &[&role, &holder, &ttl_ms],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn resign_leadership(&self, role: &str, holder: &str) -> StoreResult<()> {
        self.exec(
            "DELETE FROM leaders WHERE role = $1 AND holder = $2",
            &[&role, &holder],
        )
        .await
        .map(|_| ())
    }
}

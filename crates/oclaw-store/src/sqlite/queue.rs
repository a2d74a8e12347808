//! [`TaskQueue`] on SQLite: enqueue, read, claim, complete, and the transitions time makes.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use oclaw_core::{ErrorCode, NewTask, Task, TaskId, TaskStatus};
use rusqlite::params;
use serde_json::Value;

use super::connection::{map_err, Notice, SqliteStore, Tx};
use super::rows::{from_ms, load_task, ms, require_task, task_from_row, to_json, TASK_COLUMNS};
use crate::{
    ClaimRequest, ClaimedTask, Completion, CompletionReport, Enqueued, ExpiredReport, QueueStats,
    StoreError, StoreResult, TaskFilter, TaskQueue,
};

use super::transitions::*;

/// Most due tasks one write job promotes (see `promote_due`).
const PROMOTE_BATCH: u64 = 2000;

#[async_trait]
impl TaskQueue for SqliteStore {
    fn set_queue_capacity(&self, queue: &str, capacity: Option<u64>) {
        self.inner.shared.capacities.set(queue, capacity);
    }

    async fn enqueue(&self, task: NewTask) -> StoreResult<Enqueued> {
        let mut out = self.enqueue_batch(vec![task]).await?;
        out.pop()
            .ok_or_else(|| StoreError::Internal("enqueue returned nothing".into()))
    }

    async fn enqueue_batch(&self, tasks: Vec<NewTask>) -> StoreResult<Vec<Enqueued>> {
        self.write(move |conn, inner| {
            let tx = Tx::begin(conn)?;
            let mut st = EnqueueState::new(inner, ms(Utc::now()));
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
            if let Some(t) = &filter.tenant {
                sql.push_str(" AND tenant = ?");
                args.push(t.clone().into());
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
            let rotation = inner
                .claim_rotation
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if req.queues.is_empty() {
                claim_from_queue(&tx, None, None, &req, req.limit, now, &mut out)?;
            } else {
                // Start at the next queue each time, so no queue always gets the batch's
                // leftovers: a flooded queue cannot starve the others.
                let start = rotation % req.queues.len();
                for i in 0..req.queues.len() {
                    let left = req.limit - out.len();
                    if left == 0 {
                        break;
                    }
                    let q = &req.queues[(start + i) % req.queues.len()];
                    claim_fairly(
                        &tx,
                        &inner.tenant_cache,
                        q,
                        &req,
                        left,
                        rotation,
                        now,
                        &mut out,
                    )?;
                }
            }
            tx.commit()?;
            crate::rows::start_order(&mut out);
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
            let mut follow = EnqueueState::new(inner, now);
            let mut woken = super::waits::Woken::default();
            for c in &completions {
                let applied = apply_completion(&tx, c, now, &mut woken)?;
                if matches!(applied, Some((TaskStatus::Succeeded, _))) {
                    for t in &c.follow_ups {
                        insert_task(&tx, &mut follow, t.clone())?;
                    }
                }
                match applied {
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
            notify_enqueued(inner, follow.any_queued, follow.any_scheduled);
            woken.notify(inner);
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
            let now = ms(Utc::now());
            set_status(
                &tx,
                id,
                "UPDATE tasks SET status = 'cancelled', finished_at = ?2, lease_until = NULL WHERE id = ?1",
                now,
            )?;
            // Its waits and children end with it; a cancelled child fails its parent's step.
            let mut woken = super::waits::Woken::default();
            super::waits::cancel_below(&tx, id, now, &mut woken)?;
            if task.parent.is_some() {
                super::waits::child_ended(&tx, id, TaskStatus::Cancelled, None, now, &mut woken)?;
            }
            let task = require_task(&tx, id)?;
            tx.commit()?;
            inner.notify(Notice::Finished(vec![id]));
            woken.notify(inner);
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
        // In write jobs of at most PROMOTE_BATCH tasks, earliest due first: a burst of tasks
        // coming due at one instant (100,000 delayed submissions) would otherwise be one long
        // write that every enqueue and completion waits behind.
        let mut promoted = 0;
        loop {
            let (n, expired) = self
                .write(move |conn, inner| {
                    let tx = Tx::begin(conn)?;
                    let n = tx
                        .prepare_cached(&format!(
                            "UPDATE tasks SET status = 'queued' WHERE id IN (SELECT id FROM tasks \
                             WHERE status = 'scheduled' AND run_at <= ?1 ORDER BY run_at LIMIT {PROMOTE_BATCH})"
                        ))
                        .and_then(|mut s| s.execute([ms(now)]))
                        .map_err(map_err)? as u64;
                    let mut woken = super::waits::Woken::default();
                    let expired = if n < PROMOTE_BATCH {
                        super::waits::expire_waits(&tx, ms(now), &mut woken)?
                    } else {
                        0
                    };
                    tx.commit()?;
                    notify_enqueued(inner, n > 0, false);
                    woken.notify(inner);
                    Ok((n, expired))
                })
                .await?;
            promoted += n + expired;
            if n < PROMOTE_BATCH {
                return Ok(promoted);
            }
        }
    }

    async fn requeue_expired(&self, now: DateTime<Utc>) -> StoreResult<ExpiredReport> {
        self.write(move |conn, inner| {
            let now_ms = ms(now);
            let tx = Tx::begin(conn)?;
            let mut report = ExpiredReport::default();
            let mut dead_ids = Vec::new();
            let mut orphans = Vec::new();
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE tasks SET \
                           status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                           error_code = ?2, error_message = 'lease of worker ' || coalesce(worker, '?') || \
                             ' expired before the task finished (worker died or stalled)', \
                           finished_at = CASE WHEN attempts >= max_attempts THEN ?1 END, lease_until = NULL \
                         WHERE status = 'running' AND lease_until < ?1 RETURNING id, status, parent_id",
                    )
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map(params![now_ms, ErrorCode::LeaseExpired.code()], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<i64>>(2)?))
                    })
                    .map_err(map_err)?;
                for row in rows {
                    let (id, status, parent) = row.map_err(map_err)?;
                    if status == "dead" {
                        report.dead += 1;
                        dead_ids.push(TaskId(id));
                        if parent.is_some() {
                            orphans.push(TaskId(id));
                        }
                    } else {
                        report.requeued += 1;
                    }
                }
            }
            let mut woken = super::waits::Woken::default();
            for child in orphans {
                super::waits::child_ended(&tx, child, TaskStatus::Dead, None, now_ms, &mut woken)?;
            }
            tx.commit()?;
            notify_enqueued(inner, report.requeued > 0, false);
            inner.notify(Notice::Finished(dead_ids));
            woken.notify(inner);
            Ok(report)
        })
        .await
    }

    async fn next_due_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.read(|c, _| {
            let v: Option<i64> = c
                .query_row(
                    "SELECT min(x) FROM (SELECT min(run_at) AS x FROM tasks WHERE status = 'scheduled' \
                     UNION ALL SELECT min(deadline) FROM waits WHERE status = 'pending' AND deadline IS NOT NULL)",
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
                ("waiting", "SELECT queue, count(*), NULL FROM tasks WHERE status = 'waiting' GROUP BY queue"),
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
                        "waiting" => e.waiting = count,
                        _ => e.dead = count,
                    }
                }
            }
            Ok(inner.capacities.annotate(by_queue))
        })
        .await
    }
}

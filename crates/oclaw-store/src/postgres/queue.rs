//! [`TaskQueue`] on PostgreSQL: enqueue, read, claim, complete, and the transitions time makes.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use oclaw_core::bot::DEFAULT_TENANT;
use oclaw_core::{ErrorCode, NewTask, Task, TaskId, TaskStatus};
use serde_json::Value;
use tokio_postgres::types::ToSql;

use super::{pg_err, pool_err, PgStore};
use crate::codec::{from_ms, ms, to_json};
use crate::{
    ClaimRequest, ClaimedTask, Completion, CompletionReport, Enqueued, ExpiredReport, QueueStats,
    StoreError, StoreResult, TaskFilter, TaskQueue,
};

use super::rows::*;
use super::transitions::*;

#[async_trait]
impl TaskQueue for PgStore {
    fn set_queue_capacity(&self, queue: &str, capacity: Option<u64>) {
        self.inner.capacities.set(queue, capacity);
    }

    async fn enqueue(&self, task: NewTask) -> StoreResult<Enqueued> {
        let mut out = self.enqueue_batch(vec![task]).await?;
        out.pop()
            .ok_or_else(|| StoreError::Internal("enqueue returned nothing".into()))
    }

    async fn enqueue_batch(&self, tasks: Vec<NewTask>) -> StoreResult<Vec<Enqueued>> {
        let now = ms(Utc::now());
        let careful = tasks.iter().any(|t| {
            t.idempotency_key.is_some()
                || t.debounce_key.is_some()
                || self.capacity(&t.queue).is_some()
        });
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
            ("tenant", filter.tenant.as_ref()),
        ] {
            if let Some(v) = value {
                params.push(v);
                sql.push_str(&format!(" AND {col} = ${}", params.len()));
            }
        }
        if filter
            .tenant
            .as_deref()
            .is_some_and(|t| t != DEFAULT_TENANT)
        {
            // Lets the planner use `tasks_tenant`, which holds only the other tenants' tasks.
            sql.push_str(" AND tenant <> 'default'");
        }
        if let Some(b) = &before {
            params.push(b);
            sql.push_str(&format!(" AND id < ${}", params.len()));
        }
        params.push(&limit);
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));
        let rows = self.query(&sql, &params).await?;
        rows.iter().map(task_from_row).collect()
    }

    async fn claim_batch(&self, req: ClaimRequest) -> StoreResult<Vec<ClaimedTask>> {
        if req.limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let rotation = self
            .inner
            .claim_rotation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut out = match req.queues.as_slice() {
            [] => {
                self.claim_from(&client, None, None, &req, req.limit)
                    .await?
            }
            queues => {
                // Start at the next queue each time, so no queue always gets the batch's
                // leftovers: a flooded queue cannot starve the others.
                let mut out = Vec::with_capacity(req.limit);
                let start = rotation % queues.len();
                for i in 0..queues.len() {
                    let left = req.limit - out.len();
                    if left == 0 {
                        break;
                    }
                    let q = &queues[(start + i) % queues.len()];
                    out.extend(self.claim_fairly(&client, q, &req, left, rotation).await?);
                }
                out
            }
        };
        crate::rows::start_order(&mut out);
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
        // Rows another transaction holds (a completion of this worker in flight) are skipped,
        // not waited for: a heartbeat that waited on a completion while the completion waited
        // on rows the heartbeat had locked was a deadlock (40P01). A skipped lease is renewed
        // by the next heartbeat, a third of a lease later.
        self.exec(
            "UPDATE tasks SET lease_until = $1 WHERE id IN (SELECT id FROM tasks \
               WHERE id = ANY($2) AND lease_until IS NOT NULL AND worker = $3 \
               FOR UPDATE SKIP LOCKED)",
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
        let mut client = self.inner.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let row = tx
            .query_opt(
                "SELECT status, parent_id FROM tasks WHERE id = $1 FOR UPDATE",
                &[&id.0],
            )
            .await
            .map_err(pg_err)?
            .ok_or(StoreError::NotFound(id))?;
        let status: TaskStatus = row.get::<_, &str>(0).parse().unwrap_or(TaskStatus::Failed);
        if status.is_terminal() {
            return Err(StoreError::Conflict {
                id,
                status,
                operation: "cancel",
            });
        }
        let now = ms(Utc::now());
        tx.execute(
            "UPDATE tasks SET status = 'cancelled', finished_at = $2, lease_until = NULL WHERE id = $1",
            &[&id.0, &now],
        )
        .await
        .map_err(pg_err)?;
        // Its waits and children end with it; a cancelled child fails its parent's step.
        let mut woken = super::waits::Woken {
            queued: false,
            finished: vec![id],
        };
        super::waits::cancel_below(&tx, id, now, &mut woken).await?;
        if row.get::<_, Option<i64>>(1).is_some() {
            super::waits::child_ended(&tx, id, TaskStatus::Cancelled, None, now, &mut woken)
                .await?;
        }
        woken.notify_in(&tx, &self.inner).await?;
        let task = require_task(&tx, id).await?;
        tx.commit().await.map_err(pg_err)?;
        woken.wake_local(&self.inner);
        Ok(task)
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
                 SELECT count(*), (SELECT pg_notify($2, '') FROM p HAVING count(*) > 0), \
                   EXISTS (SELECT 1 FROM waits WHERE status = 'pending' AND deadline IS NOT NULL AND deadline <= $1) \
                 FROM p",
                &[&ms(now), &self.inner.channels.queued],
            )
            .await?;
        let n: i64 = rows.first().map(|r| r.get(0)).unwrap_or(0);
        if n > 0 {
            self.inner.wakeups.queued.notify_one();
        }
        let mut expired = 0;
        if rows.first().is_some_and(|r| r.get::<_, bool>(2)) {
            let mut client = self.inner.pool.get().await.map_err(pool_err)?;
            let tx = client.transaction().await.map_err(pg_err)?;
            let mut woken = super::waits::Woken::default();
            expired = super::waits::expire_waits(&tx, ms(now), &mut woken).await?;
            woken.notify_in(&tx, &self.inner).await?;
            tx.commit().await.map_err(pg_err)?;
            woken.wake_local(&self.inner);
        }
        Ok(n as u64 + expired)
    }

    async fn requeue_expired(&self, now: DateTime<Utc>) -> StoreResult<ExpiredReport> {
        let code = ErrorCode::LeaseExpired.code();
        let mut client = self.inner.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let rows = tx
            .query(
                "WITH e AS (UPDATE tasks SET \
                   status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                   error_code = $2, error_message = 'lease of worker ' || coalesce(worker, '?') || \
                     ' expired before the task finished (worker died or stalled)', \
                   finished_at = CASE WHEN attempts >= max_attempts THEN $1::bigint END, lease_until = NULL \
                 WHERE status = 'running' AND lease_until < $1 RETURNING id, status, parent_id) \
                 SELECT id, status, parent_id, \
                   (SELECT pg_notify($3, '') FROM e WHERE status = 'queued' HAVING count(*) > 0), \
                   (SELECT pg_notify($4, string_agg(id::text, ',')) FROM e WHERE status = 'dead' HAVING count(*) > 0) \
                 FROM e",
                &[&ms(now), &code, &self.inner.channels.queued, &self.inner.channels.finished],
            )
            .await
            .map_err(pg_err)?;
        let mut report = ExpiredReport::default();
        let mut orphans = Vec::new();
        for r in &rows {
            if r.get::<_, &str>(1) == "dead" {
                report.dead += 1;
                if r.get::<_, Option<i64>>(2).is_some() {
                    orphans.push(TaskId(r.get(0)));
                }
            } else {
                report.requeued += 1;
            }
        }
        // Dead children fail their parents' steps, in the same transaction.
        let mut woken = super::waits::Woken::default();
        for child in orphans {
            super::waits::child_ended(&tx, child, TaskStatus::Dead, None, ms(now), &mut woken)
                .await?;
        }
        woken.notify_in(&tx, &self.inner).await?;
        tx.commit().await.map_err(pg_err)?;
        woken.wake_local(&self.inner);
        if report.requeued > 0 {
            self.inner.wakeups.queued.notify_one();
        }
        Ok(report)
    }

    async fn next_due_at(&self) -> StoreResult<Option<DateTime<Utc>>> {
        let rows = self
            .query(
                "SELECT least((SELECT min(run_at) FROM tasks WHERE status = 'scheduled'), \
                   (SELECT min(deadline) FROM waits WHERE status = 'pending' AND deadline IS NOT NULL))",
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
                 UNION ALL SELECT 'waiting', queue, count(*), NULL FROM tasks WHERE status = 'waiting' GROUP BY queue \
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
                "waiting" => e.waiting = count,
                _ => e.dead = count,
            }
        }
        Ok(self.inner.capacities.annotate(by_queue))
    }
}

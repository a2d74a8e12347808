//! Statements that several PostgreSQL operations share: inserting rows in one statement, the
//! fenced completion statement, the careful enqueue under idempotency keys and capacities, a claim
//! from one queue, a chunk of completions, a status change.

use std::collections::BTreeMap;

use chrono::Utc;
use deadpool_postgres::GenericClient;
use oclaw_core::{NewTask, Task, TaskId, TaskStatus};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::rows::{claimed_from_row, load_checkpoints, require_task, task_from_row, TASK_COLUMNS};
use super::{pg_err, pool_err, Inner, PgStore};
use crate::codec::{ms, rated, to_json, ORDERED};
use crate::rows::{Admission, Start};
use crate::{
    ClaimRequest, ClaimedTask, Completion, CompletionReport, Enqueued, Outcome, StoreError,
    StoreResult,
};

// A task holds a lease exactly while it runs: `lease_until IS NOT NULL` is `status = 'running'`.
// Statements that address tasks by id test the former, so the planner reaches them through the
// primary key and never walks the `tasks_leased` index, whose dead entries (every finished run
// leaves one until vacuum) would make each such statement slower as a drain goes on.

/// [`crate::rows::CLAIMED_COLUMNS`] of the updated table in a claim that joins its candidates.
const CLAIMED_COLUMNS: &str = "t.id, t.bot, t.queue, t.priority, t.input, t.attempts, \
    t.max_attempts, t.trace_id, t.created_at, t.run_at, t.parent_id, t.bot_rev, \
    CASE WHEN EXISTS (SELECT 1 FROM task_checkpoints k WHERE k.task_id = t.id) THEN 1 ELSE 0 END, t.tenant";

/// NOTIFY payloads are limited to 8000 bytes; completions are written in chunks whose id lists fit.
pub(super) const NOTIFY_CHUNK: usize = 400;

/// A new task as the row it becomes.
pub(super) struct Row0<'a> {
    task: &'a NewTask,
    status: TaskStatus,
    run_at: i64,
}

pub(super) fn prepare_row(task: &NewTask, now: i64) -> Row0<'_> {
    let start = Start::of(task, now);
    Row0 {
        task,
        status: start.status,
        run_at: start.run_at,
    }
}

pub(super) fn new_task(row: &Row0<'_>, id: i64, now: i64) -> Task {
    let start = Start {
        status: row.status,
        run_at: row.run_at,
    };
    start.created(row.task.clone(), id, now)
}

/// Inserts rows in one statement; ids come back in input order (the sequence is drawn row by
/// row as `unnest` yields them). Sends one NOTIFY per kind of wake-up needed.
pub(super) async fn insert_rows(
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
    let revs: Vec<Option<&str>> = rows.iter().map(|r| r.task.bot_rev.as_deref()).collect();
    let rate_keys: Vec<Option<&str>> = rows.iter().map(|r| r.task.rate_key.as_deref()).collect();
    let rate_limits: Vec<Option<i32>> = rows
        .iter()
        .map(|r| r.task.rate.map(|x| x.0.min(i32::MAX as u32) as i32))
        .collect();
    let rate_pers: Vec<Option<i64>> = rows
        .iter()
        .map(|r| r.task.rate.map(|x| x.1.min(i64::MAX as u64) as i64))
        .collect();
    let debounce: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.task.debounce_key.as_deref())
        .collect();
    let key_limits: Vec<Option<i32>> = rows
        .iter()
        .map(|r| r.task.key_limit.map(|l| l.min(i32::MAX as u32) as i32))
        .collect();
    let queued = rows.iter().any(|r| r.status == TaskStatus::Queued);
    let mut noted: Option<(&str, &str)> = None;
    for r in rows.iter().filter(|r| r.status == TaskStatus::Queued) {
        let pair = (r.task.queue.as_str(), r.task.tenant.as_str());
        if noted != Some(pair) {
            inner.tenant_cache.note(pair.0, pair.1);
            noted = Some(pair);
        }
    }
    let scheduled = rows.iter().any(|r| r.status == TaskStatus::Scheduled);
    let stmt = c
        .prepare_cached(
            "WITH ins AS (\
               INSERT INTO tasks (bot, queue, status, priority, input, max_attempts, idempotency_key, \
                                  trace_id, created_at, run_at, ordering_key, key_limit, bot_rev, debounce_key, \
                                  rate_key, rate_limit, rate_per, tenant) \
               SELECT b, q, s, p, i, m, k, tr, $10, r, o, l, v, d, rk, rl, rp, tn FROM unnest($1::text[], $2::text[], \
                 $3::text[], $4::int[], $5::text[], $6::int[], $7::text[], $8::text[], $9::bigint[], $15::text[], \
                 $16::int[], $17::text[], $18::text[], $19::text[], $20::int[], $21::bigint[], $22::text[]) \
                 AS u(b, q, s, p, i, m, k, tr, r, o, l, v, d, rk, rl, rp, tn) \
               RETURNING id) \
             SELECT id, \
               (SELECT CASE WHEN $11 THEN pg_notify($12, '') END), \
               (SELECT CASE WHEN $13 THEN pg_notify($14, '') END) \
             FROM ins",
        )
        .await
        .map_err(pg_err)?;
    let tenants: Vec<&str> = rows.iter().map(|r| r.task.tenant.as_str()).collect();
    let params: [&(dyn ToSql + Sync); 22] = [
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
        &key_limits,
        &revs,
        &debounce,
        &rate_keys,
        &rate_limits,
        &rate_pers,
        &tenants,
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
pub(super) async fn complete_statement(
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
    pub(super) fn capacity(&self, queue: &str) -> Option<u64> {
        self.inner.capacities.get(queue)
    }

    /// The careful path: idempotency keys or capped queues. One transaction; capped queues are
    /// locked (advisory, per queue) so concurrent enqueues count waiting tasks one at a time.
    pub(super) async fn enqueue_checked(
        &self,
        tasks: Vec<NewTask>,
        now: i64,
    ) -> StoreResult<Vec<Enqueued>> {
        let mut client = self.inner.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let mut capped: BTreeMap<&str, u64> = BTreeMap::new();
        for t in &tasks {
            if let Some(cap) = self.capacity(&t.queue) {
                capped.insert(&t.queue, cap);
            }
        }
        let mut admission = Admission::default();
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
            admission.counted(queue, n as u64);
        }
        let mut out = Vec::with_capacity(tasks.len());
        for task in &tasks {
            if let Some(key) = &task.debounce_key {
                // A burst of one key folds into the task that has not started yet; the lock
                // makes concurrent enqueues of the key take turns.
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('oclaw-debounce:' || current_schema() || ':' || $1))",
                    &[key],
                )
                .await
                .map_err(pg_err)?;
                let folded = tx
                    .query_opt(
                        &format!(
                            "UPDATE tasks SET input = $2, run_at = greatest(run_at, $3) WHERE id = (SELECT id FROM tasks \
                             WHERE debounce_key = $1 AND status = 'scheduled' ORDER BY id LIMIT 1 FOR UPDATE) \
                             RETURNING {TASK_COLUMNS}"
                        ),
                        &[key, &to_json(&task.input), &Start::of(task, now).run_at],
                    )
                    .await
                    .map_err(pg_err)?;
                if let Some(r) = folded {
                    out.push(Enqueued {
                        task: task_from_row(&r)?,
                        created: false,
                    });
                    continue;
                }
            }
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
                        task: task_from_row(&r)?,
                        created: false,
                    });
                    continue;
                }
            }
            if let Some(cap) = capped.get(task.queue.as_str()) {
                admission.admit(&task.queue, *cap)?;
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

    /// Claims up to `limit` tasks of one queue, shared fairly among the tenants with tasks
    /// queued there (as the SQLite store does: equal shares in a turn that moves on every claim,
    /// leftovers to those with more).
    pub(super) async fn claim_fairly(
        &self,
        c: &impl GenericClient,
        queue: &str,
        req: &ClaimRequest,
        limit: usize,
        rotation: usize,
    ) -> StoreResult<Vec<ClaimedTask>> {
        let cache = &self.inner.tenant_cache;
        let (tenants, walked) = match cache.fresh(queue) {
            Some(t) => (t, false),
            None => {
                let found = self.queued_tenants(c, queue).await?;
                (cache.found(queue, &found), true)
            }
        };
        let mut out = self.share(c, &tenants, queue, req, limit, rotation).await?;
        if out.len() < limit && !walked {
            let found = self.queued_tenants(c, queue).await?;
            let tenants = cache.found(queue, &found);
            let left = limit - out.len();
            out.extend(self.share(c, &tenants, queue, req, left, rotation).await?);
        }
        Ok(out)
    }

    /// The tenants with tasks queued on `queue` (a walk over the ready index).
    async fn queued_tenants(
        &self,
        c: &impl GenericClient,
        queue: &str,
    ) -> StoreResult<Vec<String>> {
        let stmt = c
            .prepare_cached(
                "WITH RECURSIVE t(x) AS (\
                   SELECT (SELECT min(tenant) FROM tasks WHERE status = 'queued' AND queue = $1) \
                   UNION ALL \
                   SELECT (SELECT min(tenant) FROM tasks WHERE status = 'queued' AND queue = $1 AND tenant > t.x) \
                   FROM t WHERE t.x IS NOT NULL) \
                 SELECT x FROM t WHERE x IS NOT NULL",
            )
            .await
            .map_err(pg_err)?;
        let tenants: Vec<String> = c
            .query(&stmt, &[&queue])
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(tenants)
    }

    /// Claims up to `limit` of `queue`'s tasks, in equal shares among `tenants` (see
    /// [`Self::claim_fairly`]).
    async fn share(
        &self,
        c: &impl GenericClient,
        tenants: &[String],
        queue: &str,
        req: &ClaimRequest,
        limit: usize,
        rotation: usize,
    ) -> StoreResult<Vec<ClaimedTask>> {
        match tenants {
            [] => return Ok(Vec::new()),
            [only] => {
                return self
                    .claim_from(c, Some(queue), Some(only), req, limit)
                    .await
            }
            _ => {}
        }
        let mut out = Vec::with_capacity(limit);
        let mut more = Vec::new();
        for i in 0..tenants.len() {
            let left = limit.saturating_sub(out.len());
            if left == 0 {
                return Ok(out);
            }
            let tenant = &tenants[(rotation + i) % tenants.len()];
            let share = left.div_ceil(tenants.len() - i);
            let got = self
                .claim_from(c, Some(queue), Some(tenant), req, share)
                .await?;
            if got.len() == share {
                more.push(tenant);
            }
            out.extend(got);
        }
        for tenant in more {
            let left = limit.saturating_sub(out.len());
            if left == 0 {
                break;
            }
            out.extend(
                self.claim_from(c, Some(queue), Some(tenant), req, left)
                    .await?,
            );
        }
        Ok(out)
    }

    pub(super) async fn claim_from(
        &self,
        c: &impl GenericClient,
        queue: Option<&str>,
        tenant: Option<&str>,
        req: &ClaimRequest,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedTask>> {
        // The claim's time is taken right before its statement runs (after the tenant walk), so
        // a task's `started_at` never comes before the finish that let it start.
        let now = ms(chrono::Utc::now());
        let lease_until = now + req.lease.as_millis() as i64;
        let limit = limit as i64;
        let rated = rated("$3");
        let rows = match (queue, tenant) {
            (Some(q), Some(tenant)) => {
                let stmt = c
                    .prepare_cached(&format!(
                        "UPDATE tasks t SET status = 'running', attempts = t.attempts + 1, worker = $1, \
                           lease_until = $2, started_at = $3 \
                         FROM (SELECT id FROM tasks c WHERE status = 'queued' AND queue = $4 AND tenant = $6 \
                               {ORDERED} {rated} \
                               ORDER BY priority DESC, id LIMIT $5 FOR UPDATE SKIP LOCKED) p \
                         WHERE t.id = p.id RETURNING {CLAIMED_COLUMNS}"
                    ))
                    .await
                    .map_err(pg_err)?;
                c.query(&stmt, &[&req.worker, &lease_until, &now, &q, &limit, &tenant])
                    .await
            }
            (Some(q), None) => {
                let stmt = c
                    .prepare_cached(&format!(
                        "UPDATE tasks t SET status = 'running', attempts = t.attempts + 1, worker = $1, \
                           lease_until = $2, started_at = $3 \
                         FROM (SELECT id FROM tasks c WHERE status = 'queued' AND queue = $4 {ORDERED} {rated} \
                               ORDER BY priority DESC, id LIMIT $5 FOR UPDATE SKIP LOCKED) p \
                         WHERE t.id = p.id RETURNING {CLAIMED_COLUMNS}"
                    ))
                    .await
                    .map_err(pg_err)?;
                c.query(&stmt, &[&req.worker, &lease_until, &now, &q, &limit])
                    .await
            }
            (None, _) => {
                let stmt = c
                    .prepare_cached(&format!(
                        "UPDATE tasks t SET status = 'running', attempts = t.attempts + 1, worker = $1, \
                           lease_until = $2, started_at = $3 \
                         FROM (SELECT id FROM tasks c WHERE status = 'queued' {ORDERED} {rated} \
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
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let (mut task, resumes) = claimed_from_row(row)?;
            if resumes {
                task.checkpoints = load_checkpoints(c, task.id).await?;
            }
            out.push(task);
        }
        Ok(out)
    }

    pub(super) async fn complete_chunk(
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
        let mut woken = super::waits::Woken::default();
        let rows = if completions
            .iter()
            .any(|c| !c.kv.is_empty() || !c.follow_ups.is_empty() || c.parent.is_some())
        {
            // Key-value writes and follow-up tasks of successes commit with their completions,
            // and so do the wake-ups of children's parents.
            let mut client = client;
            let tx = client.transaction().await.map_err(pg_err)?;
            let rows = complete_statement(&tx, &params).await?;
            for r in &rows {
                let id = TaskId(r.get(0));
                let status: TaskStatus = r.get::<_, &str>(1).parse().unwrap_or(TaskStatus::Failed);
                let Some(c) = completions
                    .iter()
                    .find(|c| c.id == id && c.parent.is_some())
                else {
                    continue;
                };
                if status.is_terminal() {
                    let output = match &c.outcome {
                        Outcome::Succeeded(v) => Some(v),
                        Outcome::Failed { .. } => None,
                    };
                    super::waits::child_ended(&tx, id, status, output, now, &mut woken).await?;
                }
            }
            woken.notify_in(&tx, &self.inner).await?;
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
            let follow: Vec<Row0<'_>> = completions
                .iter()
                .filter(|c| succeeded.contains(&c.id.0))
                .flat_map(|c| &c.follow_ups)
                .map(|t| prepare_row(t, now))
                .collect();
            if !follow.is_empty() {
                insert_rows(&tx, &self.inner, &follow, now).await?;
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
        woken.wake_local(&self.inner);
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

    pub(super) async fn exec(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let stmt = client.prepare_cached(sql).await.map_err(pg_err)?;
        client.execute(&stmt, params).await.map_err(pg_err)
    }

    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Vec<Row>> {
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let stmt = client.prepare_cached(sql).await.map_err(pg_err)?;
        client.query(&stmt, params).await.map_err(pg_err)
    }

    /// Runs a status change that must see the task first (cancel, redrive).
    pub(super) async fn change_status(
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

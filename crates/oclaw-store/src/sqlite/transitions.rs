//! Writes on the writer connection that several SQLite operations share: an enqueue under queue
//! capacities, a claim from one queue, one completion applied under its fence, a status change.

use oclaw_core::{NewTask, TaskId, TaskStatus};
use rusqlite::{params, Connection, OptionalExtension};

use super::connection::{map_err, Notice, Shared};
use super::rows::{
    claimed_from, ms, task_from_row, to_json, Admission, SqlRow, Start, CLAIMED_COLUMNS,
    TASK_COLUMNS,
};
use crate::codec::{rated, ORDERED};
use crate::{ClaimRequest, ClaimedTask, Completion, Enqueued, Outcome, StoreResult};

/// Waiting tasks (queued + scheduled) of a queue, counted no further than `limit`.
pub(super) fn count_waiting(tx: &Connection, queue: &str, limit: u64) -> StoreResult<u64> {
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

pub(super) struct EnqueueState<'a> {
    pub inner: &'a Shared,
    pub now: i64,
    pub admission: Admission,
    pub any_queued: bool,
    pub any_scheduled: bool,
}

impl<'a> EnqueueState<'a> {
    pub fn new(inner: &'a Shared, now: i64) -> Self {
        EnqueueState {
            inner,
            now,
            admission: Admission::default(),
            any_queued: false,
            any_scheduled: false,
        }
    }
}

pub(super) fn enqueue_in(
    tx: &Connection,
    st: &mut EnqueueState<'_>,
    task: NewTask,
) -> StoreResult<Enqueued> {
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
    if let Some(key) = &task.debounce_key {
        // A burst of one key folds into the task that has not started yet.
        let folded = tx
            .prepare_cached(&format!(
                "UPDATE tasks SET input = ?2, run_at = max(run_at, ?3) WHERE id = (SELECT id FROM tasks \
                 WHERE debounce_key = ?1 AND status = 'scheduled' ORDER BY id LIMIT 1) RETURNING {TASK_COLUMNS}"
            ))
            .and_then(|mut s| {
                s.query_row(
                    params![key, to_json(&task.input), Start::of(&task, st.now).run_at],
                    task_from_row,
                )
                .optional()
            })
            .map_err(map_err)?;
        if let Some(task) = folded {
            return Ok(Enqueued {
                task,
                created: false,
            });
        }
    }
    if let Some(cap) = st.inner.capacities.get(&task.queue) {
        if !st.admission.knows(&task.queue) {
            let waiting = count_waiting(tx, &task.queue, cap)?;
            st.admission.counted(&task.queue, waiting);
        }
        st.admission.admit(&task.queue, cap)?;
    }
    insert_task(tx, st, task)
}

/// Inserts a task as it is: no idempotency look-up, no capacity check (a completion's
/// follow-ups, and the tail of [`enqueue_in`]).
pub(super) fn insert_task(
    tx: &Connection,
    st: &mut EnqueueState<'_>,
    task: NewTask,
) -> StoreResult<Enqueued> {
    let start = Start::of(&task, st.now);
    if start.status == TaskStatus::Queued {
        st.any_queued = true;
        st.inner.tenant_cache.note(&task.queue, &task.tenant);
    } else {
        st.any_scheduled = true;
    }
    let id: i64 = tx
        .prepare_cached(
            "INSERT INTO tasks (bot, queue, status, priority, input, max_attempts, idempotency_key, \
             trace_id, created_at, run_at, ordering_key, key_limit, bot_rev, debounce_key, rate_key, \
             rate_limit, rate_per, tenant) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
             RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    task.bot,
                    task.queue,
                    start.status.as_str(),
                    task.priority,
                    to_json(&task.input),
                    task.max_attempts,
                    task.idempotency_key,
                    task.trace_id,
                    st.now,
                    start.run_at,
                    task.ordering_key,
                    task.key_limit,
                    task.bot_rev,
                    task.debounce_key,
                    task.rate_key,
                    task.rate.map(|r| r.0),
                    task.rate.map(|r| r.1 as i64),
                    task.tenant
                ],
                |r| r.get(0),
            )
        })
        .map_err(map_err)?;
    Ok(Enqueued {
        task: start.created(task, id, st.now),
        created: true,
    })
}

pub(super) fn notify_enqueued(shared: &Shared, queued: bool, scheduled: bool) {
    if queued {
        shared.notify(Notice::Queued);
    }
    if scheduled {
        shared.notify(Notice::Scheduled);
    }
}

/// Claims up to `limit` tasks of one queue, shared fairly among the tenants with tasks queued
/// there: each gets an equal share in turn (starting at a tenant that moves on every claim), and
/// what a tenant leaves unused goes to those with more. A tenant with a million queued tasks
/// therefore cannot hold back another's next task.
#[allow(clippy::too_many_arguments)]
pub(super) fn claim_fairly(
    tx: &Connection,
    cache: &crate::rows::TenantCache,
    queue: &str,
    req: &ClaimRequest,
    limit: usize,
    rotation: usize,
    now: i64,
    out: &mut Vec<ClaimedTask>,
) -> StoreResult<()> {
    let before = out.len();
    let (tenants, walked) = match cache.fresh(queue) {
        Some(t) => (t, false),
        None => (cache.found(queue, &queued_tenants(tx, queue)?), true),
    };
    share(tx, &tenants, queue, req, limit, rotation, now, out)?;
    let got = out.len() - before;
    if got < limit && !walked {
        let tenants = cache.found(queue, &queued_tenants(tx, queue)?);
        share(tx, &tenants, queue, req, limit - got, rotation, now, out)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn share(
    tx: &Connection,
    tenants: &[String],
    queue: &str,
    req: &ClaimRequest,
    limit: usize,
    rotation: usize,
    now: i64,
    out: &mut Vec<ClaimedTask>,
) -> StoreResult<()> {
    let limit = out.len() + limit;
    match tenants {
        [] => return Ok(()),
        [only] => {
            let left = limit - out.len();
            return claim_from_queue(tx, Some(queue), Some(only), req, left, now, out);
        }
        _ => {}
    }
    let mut more = Vec::new();
    for i in 0..tenants.len() {
        let left = limit.saturating_sub(out.len());
        if left == 0 {
            return Ok(());
        }
        let tenant = &tenants[(rotation + i) % tenants.len()];
        let share = left.div_ceil(tenants.len() - i);
        let before = out.len();
        claim_from_queue(tx, Some(queue), Some(tenant), req, share, now, out)?;
        if out.len() - before == share {
            more.push(tenant);
        }
    }
    for tenant in more {
        let left = limit.saturating_sub(out.len());
        if left == 0 {
            break;
        }
        claim_from_queue(tx, Some(queue), Some(tenant), req, left, now, out)?;
    }
    Ok(())
}

/// The tenants with tasks queued on `queue`, by a walk over the ready index that touches one
/// entry per tenant.
fn queued_tenants(tx: &Connection, queue: &str) -> StoreResult<Vec<String>> {
    let mut stmt = tx
        .prepare_cached(
            "WITH RECURSIVE t(x) AS (\
               SELECT (SELECT min(tenant) FROM tasks WHERE status = 'queued' AND queue = ?1) \
               UNION ALL \
               SELECT (SELECT min(tenant) FROM tasks WHERE status = 'queued' AND queue = ?1 AND tenant > t.x) \
               FROM t WHERE t.x IS NOT NULL) \
             SELECT x FROM t WHERE x IS NOT NULL",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map([queue], |r| r.get::<_, String>(0))
        .map_err(map_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
}

pub(super) fn claim_from_queue(
    tx: &Connection,
    queue: Option<&str>,
    tenant: Option<&str>,
    req: &ClaimRequest,
    limit: usize,
    now: i64,
    out: &mut Vec<ClaimedTask>,
) -> StoreResult<()> {
    let lease_until = now + req.lease.as_millis() as i64;
    // The queue, tenant and limit are written into the SQL (one cached statement for each):
    // SQLite looks at a bound LIMIT or queue when planning, which makes it prepare the
    // statement again on every run — measured at a fifth of the CPU of small claims.
    let mut filter = match queue {
        Some(q) => format!("AND queue = '{}'", q.replace('\'', "''")),
        None => String::new(),
    };
    if let Some(t) = tenant {
        filter.push_str(&format!(" AND tenant = '{}'", t.replace('\'', "''")));
    }
    let rated = rated("?3");
    let sql = format!(
        "UPDATE OR FAIL tasks SET status = 'running', attempts = attempts + 1, worker = ?1, lease_until = ?2, \
         started_at = ?3 WHERE id IN (SELECT id FROM tasks c WHERE status = 'queued' {filter} {ORDERED} {rated} \
         ORDER BY priority DESC, id LIMIT {limit}) \
         RETURNING {CLAIMED_COLUMNS}"
    );
    let mut stmt = tx.prepare_cached(&sql).map_err(map_err)?;
    let rows = stmt
        .query_map(params![req.worker, lease_until, now], |r| {
            claimed_from(&SqlRow(r))
        })
        .map_err(map_err)?;
    let mut resumed = Vec::new();
    for row in rows {
        let (task, resumes) = row.map_err(map_err)?;
        if resumes {
            resumed.push(out.len());
        }
        out.push(task);
    }
    drop(stmt);
    for i in resumed {
        out[i].checkpoints = super::rows::load_checkpoints(tx, out[i].id)?;
    }
    Ok(())
}

/// Applies one completion; answers the new status and whether the task has an ordering key
/// (its successor may run now), or `None` when the completion is fenced. A child that ends
/// wakes its parent (in `woken`).
pub(super) fn apply_completion(
    tx: &Connection,
    c: &Completion,
    now: i64,
    woken: &mut super::waits::Woken,
) -> StoreResult<Option<(TaskStatus, bool)>> {
    let applied = apply_outcome(tx, c, now)?;
    if let (Some(_), Some((status, _))) = (c.parent, applied) {
        if status.is_terminal() {
            let output = match &c.outcome {
                Outcome::Succeeded(v) => Some(v),
                Outcome::Failed { .. } => None,
            };
            super::waits::child_ended(tx, c.id, status, output, now, woken)?;
        }
    }
    Ok(applied)
}

fn apply_outcome(
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

pub(super) fn set_status(conn: &Connection, id: TaskId, sql: &str, now: i64) -> StoreResult<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute(params![id.0, now]))
        .map_err(map_err)?;
    Ok(())
}

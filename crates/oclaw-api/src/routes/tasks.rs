//! Task routes: submit (single and batch), get, list, cancel, retry.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Extension;
use axum::Json;
use chrono::{DateTime, Utc};
use oclaw_core::{Dur, ErrorCode, NewTask, Task, TaskId, TaskStatus};
use oclaw_store::TaskFilter;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit::AuditTenant;
use crate::auth::Principal;
use crate::body::decode;
use crate::trace::trace_id_from;
use crate::{ApiError, ApiState};

/// `POST /v1/tasks` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
// `run_at` and `delay` are not given together (one of them may be null).
#[schemars(extend("not" = {
    "required": ["run_at", "delay"],
    "properties": {"run_at": {"not": {"type": "null"}}, "delay": {"not": {"type": "null"}}}
}))]
pub struct SubmitTask {
    /// The bot to run.
    pub bot: String,
    /// The bot's input (any JSON).
    #[serde(default)]
    pub input: Value,
    /// Queue; defaults to the bot's.
    #[schemars(regex(pattern = r"^[a-z0-9_-]{1,63}$"))]
    pub queue: Option<String>,
    /// Higher runs first; default 0.
    #[serde(default, deserialize_with = "oclaw_core::integral::option")]
    #[schemars(range(min = -2147483648, max = 2147483647))]
    pub priority: Option<i32>,
    /// Run at this time (RFC 3339) instead of now.
    pub run_at: Option<DateTime<Utc>>,
    /// Run after this long (`5s`); not with `run_at`.
    pub delay: Option<Dur>,
    /// The same key returns the same task instead of a new one.
    #[schemars(length(min = 1, max = 256))]
    pub idempotency_key: Option<String>,
    /// Attempts before the task is dead; defaults to the bot's retry policy.
    #[serde(default, deserialize_with = "oclaw_core::integral::option")]
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: Option<u32>,
    /// Tasks with the same key run one at a time, in submission order.
    #[schemars(length(min = 1, max = 256))]
    pub ordering_key: Option<String>,
}

impl SubmitTask {
    /// A submission for `bot` with everything else at the bot's defaults.
    pub fn for_bot(bot: String, input: Value, idempotency_key: Option<String>) -> SubmitTask {
        SubmitTask {
            bot,
            input,
            queue: None,
            priority: None,
            run_at: None,
            delay: None,
            idempotency_key,
            max_attempts: None,
            ordering_key: None,
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    #[schemars(length(min = 1, max = 1000))]
    pub tasks: Vec<SubmitTask>,
}

const MAX_BATCH: usize = 1000;

fn invalid(message: impl Into<String>, field: &str, trace_id: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, message)
        .details(json!({"field": field}))
        .trace(trace_id)
}

/// Checks a submission and fills the defaults from its bot.
/// `who` is the caller (`None` for a bot's own trigger, such as a webhook): a bot of another
/// tenant is as unknown to it as one that does not exist.
pub fn to_new_task(
    state: &ApiState,
    who: Option<&Principal>,
    req: SubmitTask,
    trace_id: &str,
) -> Result<NewTask, ApiError> {
    let catalog = state.catalog.load();
    let sees = |b: &oclaw_bots::LoadedBot| who.is_none_or(|p| p.sees(&b.doc.metadata.tenant));
    let bot = catalog.get(&req.bot).filter(|b| sees(b)).ok_or_else(|| {
        let names: Vec<String> = catalog
            .bots()
            .filter(|b| sees(b))
            .map(|b| b.name().to_string())
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        ApiError::new(
            ErrorCode::UnknownBot,
            format!(
                "no bot named `{}`{}",
                req.bot,
                oclaw_core::suggest::hint(&req.bot, &refs)
            ),
        )
        .details(json!({"bot": req.bot, "known": names}))
        .trace(trace_id)
    })?;
    if req.run_at.is_some() && req.delay.is_some() {
        return Err(invalid(
            "give `run_at` or `delay`, not both",
            "delay",
            trace_id,
        ));
    }
    if let Some(m) = req.max_attempts {
        if !(1..=100).contains(&m) {
            return Err(invalid(
                "`max_attempts` must be between 1 and 100",
                "max_attempts",
                trace_id,
            ));
        }
    }
    if let Some(k) = &req.idempotency_key {
        if k.is_empty() || k.chars().count() > 256 {
            return Err(invalid(
                "`idempotency_key` must be 1 to 256 characters",
                "idempotency_key",
                trace_id,
            ));
        }
    }
    if let Some(k) = &req.ordering_key {
        if k.is_empty() || k.chars().count() > 256 {
            return Err(invalid(
                "`ordering_key` must be 1 to 256 characters",
                "ordering_key",
                trace_id,
            ));
        }
    }
    if let Some(q) = &req.queue {
        let ok = !q.is_empty()
            && q.len() <= 63
            && q.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok {
            return Err(invalid(
                "`queue` must be 1-63 lowercase letters, digits, `-` or `_`",
                "queue",
                trace_id,
            ));
        }
    }
    if req.input.get("reply_to").is_some() {
        // Where a reply is delivered comes from the chat platform that sent the message,
        // never from a caller: it would let one post as the bot anywhere the bot can.
        return Err(invalid(
            "`input.reply_to` is set by chat-platform channels only; name the field otherwise",
            "input.reply_to",
            trace_id,
        ));
    }
    let queue = req.queue.unwrap_or_else(|| bot.doc.spec.queue.clone());
    if let Some(served) = &state.served_queues {
        if !served.contains(&queue) {
            // A valid request the node cannot take as it is now: 409, not a bad field.
            let list: Vec<&str> = served.iter().map(String::as_str).collect();
            return Err(ApiError::new(
                ErrorCode::QueueNotServed,
                format!(
                    "no worker serves queue `{queue}`, so the task would never run; served: {}",
                    list.join(", ")
                ),
            )
            .details(json!({"field": "queue"}))
            .trace(trace_id));
        }
    }
    let run_at = match (req.run_at, req.delay) {
        (Some(at), _) => Some(at),
        (None, Some(d)) => Some(
            Utc::now()
                + chrono::Duration::from_std(d.get())
                    .map_err(|_| invalid("`delay` is too long", "delay", trace_id))?,
        ),
        _ => None,
    };
    let mut task = NewTask {
        bot: req.bot,
        tenant: bot.doc.metadata.tenant.clone(),
        queue,
        input: req.input,
        priority: req.priority.unwrap_or(0),
        run_at,
        idempotency_key: req.idempotency_key,
        ordering_key: req.ordering_key,
        key_limit: None,
        bot_rev: None,
        debounce_key: None,
        rate_key: None,
        rate: None,
        max_attempts: req.max_attempts.unwrap_or(bot.doc.spec.retry.max_attempts),
        trace_id: trace_id.to_string(),
    };
    // The bot's revision, and its per-key limit when it has one (the ordering key).
    bot.stamp(&mut task);
    Ok(task)
}

fn with_trace(e: ApiError, trace_id: &str) -> ApiError {
    if e.trace_id.is_some() {
        e
    } else {
        e.trace(trace_id)
    }
}

pub async fn submit(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    let trace_id = trace_id_from(&headers);
    let req: SubmitTask = decode(body, &trace_id)?;
    let task = to_new_task(&state, Some(&who), req, &trace_id)?;
    state.quotas.admit(&state, &task.tenant, 1).await?;
    let enqueued = state
        .store
        .enqueue(task)
        .await
        .map_err(|e| with_trace(e.into(), &trace_id))?;
    let status = if enqueued.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(enqueued.task)))
}

pub async fn submit_batch(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let trace_id = trace_id_from(&headers);
    let req: SubmitBatch = decode(body, &trace_id)?;
    if req.tasks.is_empty() || req.tasks.len() > MAX_BATCH {
        return Err(invalid(
            format!(
                "`tasks` must hold 1 to {MAX_BATCH} tasks, got {}",
                req.tasks.len()
            ),
            "tasks",
            &trace_id,
        ));
    }
    let mut tasks = Vec::with_capacity(req.tasks.len());
    for (i, t) in req.tasks.into_iter().enumerate() {
        // Each task of a batch gets its own trace id, derived from the request's.
        let tid = if i == 0 {
            trace_id.clone()
        } else {
            oclaw_core::task::new_trace_id()
        };
        tasks.push(
            to_new_task(&state, Some(&who), t, &tid).map_err(|e| e.details(json!({"index": i})))?,
        );
    }
    let mut per_tenant: std::collections::BTreeMap<&str, u64> = Default::default();
    for t in &tasks {
        *per_tenant.entry(t.tenant.as_str()).or_default() += 1;
    }
    for (tenant, n) in per_tenant {
        state.quotas.admit(&state, tenant, n).await?;
    }
    let out = state
        .store
        .enqueue_batch(tasks)
        .await
        .map_err(|e| with_trace(e.into(), &trace_id))?;
    let created = out.iter().filter(|e| e.created).count();
    let items: Vec<Task> = out.into_iter().map(|e| e.task).collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"items": items, "created": created})),
    ))
}

fn parse_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse().map_err(|e: String| {
        ApiError::new(ErrorCode::InvalidField, e).details(json!({"field": "id"}))
    })
}

/// The task `id` when the caller may see it; another tenant's task is not found, as if it did
/// not exist.
pub(crate) async fn visible_task(
    state: &ApiState,
    who: &Principal,
    id: TaskId,
) -> Result<Task, ApiError> {
    match state.store.get_task(id).await? {
        Some(t) if who.sees(&t.tenant) => Ok(t),
        _ => Err(oclaw_store::StoreError::NotFound(id).into()),
    }
}

/// A task with what it waits for (and waited for): its waits, newest first.
pub async fn get_one(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&raw)?;
    let task = visible_task(&state, &who, id).await?;
    let waits = state
        .store
        .list_waits(oclaw_store::waits::WaitFilter {
            task: Some(id),
            limit: 100,
            ..Default::default()
        })
        .await?;
    let waits: Vec<_> = waits
        .into_iter()
        .map(|mut w| {
            if let Some(n) = &w.name {
                w.name = Some(oclaw_core::bot::unscoped_event(n).to_string());
            }
            w
        })
        .collect();
    let mut out = serde_json::to_value(&task).unwrap_or_default();
    out["waits"] = serde_json::to_value(&waits).unwrap_or_default();
    Ok(Json(out))
}

pub async fn cancel(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
) -> Result<(Extension<AuditTenant>, Json<Task>), ApiError> {
    let id = parse_id(&raw)?;
    let task = visible_task(&state, &who, id).await?;
    Ok((
        Extension(AuditTenant(task.tenant)),
        Json(state.store.cancel(id).await?),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryQuery {
    /// Re-run from this step: its checkpoint and every later one are dropped.
    from_step: Option<String>,
}

/// Queues a failed, dead or cancelled task again; with `?from_step=ID`, also a finished one,
/// from that step on (the checkpoints of earlier steps kept).
pub async fn retry(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
    query: Result<Query<RetryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(Extension<AuditTenant>, Json<Task>), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()))?;
    let id = parse_id(&raw)?;
    let task = visible_task(&state, &who, id).await?;
    let audit = Extension(AuditTenant(task.tenant.clone()));
    let Some(step) = given(&q.from_step) else {
        return Ok((audit, Json(state.store.redrive(id).await?)));
    };
    let bot = state.catalog.load().get(&task.bot).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownBot,
            format!(
                "bot `{}` of task {id} is not loaded, so its steps are unknown",
                task.bot
            ),
        )
    })?;
    let ids: Vec<&str> = bot.steps.iter().map(|(s, _)| s.id.as_str()).collect();
    let index = ids.iter().position(|s| *s == step).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownStep,
            format!(
                "bot `{}` has no step `{step}`{}; its steps: {}",
                task.bot,
                oclaw_core::suggest::hint(step, &ids),
                ids.join(", ")
            ),
        )
        .details(json!({"field": "from_step"}))
    })?;
    Ok((audit, Json(state.store.retry_from(id, index as u32).await?)))
}

/// Query parameters; an empty value (`?limit=&cursor=`) is the same as leaving it out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    bot: Option<String>,
    queue: Option<String>,
    /// For admins: one tenant's tasks only.
    tenant: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// A query value, with an empty one treated as absent.
pub(crate) fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

pub async fn list(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()))?;
    let status = match given(&q.status) {
        Some(s) => Some(s.parse::<TaskStatus>().map_err(|e| {
            ApiError::new(ErrorCode::InvalidField, e).details(json!({"field": "status"}))
        })?),
        None => None,
    };
    let before = match given(&q.cursor) {
        Some(c) => Some(c.parse::<TaskId>().map_err(|_| {
            ApiError::new(
                ErrorCode::BadCursor,
                format!("cursor `{c}` is not one this API returned"),
            )
        })?),
        None => None,
    };
    let limit = super::page_limit(given(&q.limit), 50)?;
    let items = state
        .store
        .list_tasks(TaskFilter {
            status,
            bot: given(&q.bot).map(str::to_string),
            queue: given(&q.queue).map(str::to_string),
            tenant: who.list_tenant(given(&q.tenant)),
            before,
            limit,
        })
        .await?;
    let next = if items.len() == limit {
        items.last().map(|t| t.id.to_string())
    } else {
        None
    };
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

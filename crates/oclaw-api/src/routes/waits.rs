//! Events and approvals: `POST /v1/events` wakes the tasks waiting for an event (or keeps it
//! for `events.retention`); `GET /v1/approvals` lists approvals, and `POST
//! /v1/approvals/{id}/approve|reject` decides one, every decision recorded with who and when.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use oclaw_core::ErrorCode;
use oclaw_store::waits::{Decision, NewEvent, WaitFilter, WaitKind, WaitRecord, WaitStatus};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::TenantQuery;
use super::tasks::given;
use crate::audit::AuditTenant;
use crate::auth::Principal;
use crate::body::decode;
use crate::trace::trace_id_from;
use crate::{ApiError, ApiState};

/// `POST /v1/events`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendEvent {
    /// The event's name, for example `parcel.delivered` (no control characters).
    #[schemars(
        length(min = 1, max = 200),
        regex(pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$")
    )]
    name: String,
    /// The correlation key a `wait` step names (an order number, say): text or a number.
    #[schemars(with = "EventKey")]
    key: Value,
    #[serde(default)]
    data: Value,
}

/// A correlation key as the schema shows it.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
enum EventKey {
    Text(#[schemars(length(min = 1))] String),
    Number(f64),
}

/// What an event did.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
pub struct EventAnswer {
    /// The tasks it woke.
    woke: Vec<oclaw_core::TaskId>,
    /// Kept for a wait to come (nobody waited), for `events.retention`.
    kept: bool,
}

/// `GET /v1/approvals`.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
pub struct ApprovalList {
    items: Vec<WaitRecord>,
}

fn invalid(message: impl Into<String>, field: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, message).details(json!({"field": field}))
}

/// Sends an event to the waits of the caller's tenant (an admin's: `?tenant=`, default
/// `default`).
pub async fn send_event(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<TenantQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()))?;
    let trace_id = trace_id_from(&headers);
    let req: SendEvent = decode(body, &trace_id)?;
    if !oclaw_core::bot::event_name_ok(&req.name) {
        return Err(invalid(
            "`name` is 1 to 200 characters without control characters",
            "name",
        )
        .trace(&trace_id));
    }
    let tenant = who.acting_tenant(given(&q.tenant));
    let key = oclaw_store::waits::key_text(&req.key)
        .ok_or_else(|| invalid("`key` is a non-empty text or a number", "key").trace(&trace_id))?;
    let report = state
        .store
        .send_event(NewEvent {
            name: oclaw_core::bot::scoped_event(tenant, &req.name),
            key,
            data: req.data,
            retention: state.event_retention,
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"woke": report.woke, "kept": report.kept.is_some()})),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalQuery {
    status: Option<String>,
    task: Option<String>,
    limit: Option<String>,
}

pub async fn list_approvals(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<ApprovalQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()))?;
    let status = match given(&q.status) {
        None | Some("all") => None,
        Some(s) => Some(WaitStatus::parse(s).ok_or_else(|| {
            invalid(
                format!("unknown approval status `{s}`; one of: pending, done, timed_out, cancelled, all"),
                "status",
            )
        })?),
    };
    let task = match given(&q.task) {
        None => None,
        Some(t) => Some(t.parse().map_err(|e: String| invalid(e, "task"))?),
    };
    let limit = match given(&q.limit) {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| invalid("`limit` is 1 to 1000", "limit"))?,
    };
    let items = state
        .store
        .list_waits(WaitFilter {
            kind: Some(WaitKind::Approval),
            status,
            task,
            key: None,
            limit,
        })
        .await?;
    // Another tenant's approvals are left out (their tasks tell whose they are).
    let mut visible = Vec::with_capacity(items.len());
    for w in items {
        if who.tenant.is_none() || task_tenant(&state, &w).await?.is_some_and(|t| who.sees(&t)) {
            visible.push(w);
        }
    }
    Ok(Json(json!({ "items": visible })))
}

fn parse_wait_id(raw: &str) -> Result<i64, ApiError> {
    raw.trim_start_matches('A')
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid(format!("`{raw}` is not an approval id"), "id"))
}

async fn task_tenant(state: &ApiState, w: &WaitRecord) -> Result<Option<String>, ApiError> {
    Ok(state.store.get_task(w.task_id).await?.map(|t| t.tenant))
}

/// The approval `id` with its task's tenant, when the caller may see it; another tenant's is
/// not found.
async fn visible_approval(
    state: &ApiState,
    who: &Principal,
    id: i64,
) -> Result<(WaitRecord, String), ApiError> {
    if let Some(w) = state.store.get_wait(id).await? {
        if w.kind == WaitKind::Approval {
            if let Some(tenant) = task_tenant(state, &w).await? {
                if who.sees(&tenant) {
                    return Ok((w, tenant));
                }
            }
        }
    }
    Err(oclaw_store::StoreError::WaitNotFound(id).into())
}

pub async fn get_approval(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(raw): Path<String>,
) -> Result<Json<WaitRecord>, ApiError> {
    let id = parse_wait_id(&raw)?;
    Ok(Json(visible_approval(&state, &who, id).await?.0))
}

/// `POST /v1/approvals/{id}/approve|reject`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    /// Who decides (checked against the approval's `approvers`). A token with an identity (a
    /// named stored token, an OIDC user) decides as itself: `by` may be left out, and naming
    /// anyone else is refused.
    #[schemars(length(min = 1, max = 200), regex(pattern = r"\S"))]
    by: Option<String>,
    #[schemars(length(max = 4000))]
    comment: Option<String>,
}

async fn decide(
    state: ApiState,
    who: Principal,
    headers: HeaderMap,
    raw: String,
    body: Result<Bytes, BytesRejection>,
    approve: bool,
) -> Result<(Extension<AuditTenant>, Json<WaitRecord>), ApiError> {
    let trace_id = trace_id_from(&headers);
    let id = parse_wait_id(&raw)?;
    let (_, tenant) = visible_approval(&state, &who, id).await?;
    let req: Decide = decode(body, &trace_id)?;
    let by = match (req.by, &who.identity) {
        (Some(by), Some(me)) if by.trim() != me => {
            return Err(ApiError::new(
                ErrorCode::ApprovalNotAllowed,
                format!("this token decides as `{me}`; `by` cannot name someone else"),
            )
            .details(json!({"field": "by"}))
            .trace(&trace_id));
        }
        (_, Some(me)) => me.clone(),
        (Some(by), None) => by,
        (None, None) => String::new(),
    };
    if by.trim().is_empty() {
        return Err(invalid(
            "`by` (who decides) is required: every decision is recorded with who made it",
            "by",
        )
        .trace(&trace_id));
    }
    if by.chars().count() > 200
        || req
            .comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > 4000)
    {
        return Err(invalid(
            "`by` is at most 200 characters, `comment` at most 4000",
            "by",
        ));
    }
    let record = state
        .store
        .decide(
            id,
            Decision {
                by: by.trim().to_string(),
                approve,
                comment: req.comment,
            },
        )
        .await?;
    tracing::info!(component = "api", approval = id, task_id = %record.task_id, by = %by, approve, status = record.status.as_str(), "approval decision");
    Ok((Extension(AuditTenant(tenant)), Json(record)))
}

pub async fn approve(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Extension<AuditTenant>, Json<WaitRecord>), ApiError> {
    decide(state, who, headers, raw, body, true).await
}

pub async fn reject(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Extension<AuditTenant>, Json<WaitRecord>), ApiError> {
    decide(state, who, headers, raw, body, false).await
}

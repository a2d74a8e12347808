//! Tokens (`/v1/tokens`, admins only) and the audit log (`/v1/audit`).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use oclaw_core::ErrorCode;
use oclaw_store::access::{token_hash, AuditFilter, NewToken};
use serde::Deserialize;
use serde_json::{json, Value};

use super::tasks::given;
use crate::audit::AuditTenant;
use crate::auth::{new_token, Principal, Role};
use crate::body::decode;
use crate::trace::trace_id_from;
use crate::{ApiError, ApiState};

/// `POST /v1/tokens` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The tenant the token acts in (admins act in every tenant).
    #[schemars(regex(pattern = r"^[a-z0-9_-]{1,63}$"))]
    pub tenant: String,
    /// `admin`, `developer`, `operator` or `viewer`.
    #[schemars(extend("enum" = ["admin", "developer", "operator", "viewer"]))]
    pub role: String,
    /// What the token is for, shown in lists.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub name: String,
}

/// `GET /v1/tokens`.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
pub struct TokenList {
    items: Vec<oclaw_store::access::TokenRecord>,
}

/// `POST /v1/tokens`: the token record and, this once, the token.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    record: oclaw_store::access::TokenRecord,
    /// The bearer token (`oct_` and 64 hex digits); only its hash is kept.
    token: String,
}

/// `GET /v1/audit`.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
pub struct AuditList {
    items: Vec<oclaw_store::access::AuditEntry>,
    next_cursor: Option<String>,
}

fn invalid(message: impl Into<String>, field: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, message).details(json!({"field": field}))
}

/// Creates a token; the answer is the only time the token itself is shown.
/// `GET /v1/me`: who the token is — its actor, tenant (null for admins of every tenant),
/// role and name — so a client (the console) shows only what the role may do.
pub async fn me(Extension(who): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "actor": who.actor,
        "tenant": who.tenant,
        "role": who.role.as_str(),
        "identity": who.identity,
    }))
}

pub async fn create(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Extension<AuditTenant>, Json<Value>), ApiError> {
    let trace_id = trace_id_from(&headers);
    let req: CreateToken = decode(body, &trace_id)?;
    if !oclaw_core::bot::bot_name_ok(&req.tenant) {
        return Err(invalid(
            "`tenant` must be 1-63 lowercase letters, digits, `-` or `_`",
            "tenant",
        ));
    }
    let Some(role) = Role::parse(&req.role) else {
        let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        return Err(invalid(
            format!("unknown role `{}`; one of: {}", req.role, roles.join(", ")),
            "role",
        ));
    };
    if req.name.chars().count() > 200 {
        return Err(invalid("`name` must be at most 200 characters", "name"));
    }
    let (id, token) = new_token()?;
    let record = state
        .store
        .token_create(NewToken {
            id,
            name: req.name,
            hash: token_hash(&token),
            tenant: req.tenant.clone(),
            role: role.as_str().into(),
            created_by: who.actor.clone(),
        })
        .await?;
    let mut out = serde_json::to_value(&record).unwrap_or_default();
    out["token"] = json!(token);
    Ok((
        StatusCode::CREATED,
        Extension(AuditTenant(req.tenant)),
        Json(out),
    ))
}

/// `?tenant=`: the tenant an admin acts in or lists (other tokens act in their own).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    pub(crate) tenant: Option<String>,
}

pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()))?;
    let items = state.store.token_list(given(&q.tenant)).await?;
    Ok(Json(json!({ "items": items })))
}

/// Revokes a token: every api-server refuses it from the next request on.
pub async fn revoke(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<(Extension<AuditTenant>, Json<Value>), ApiError> {
    match state.store.token_revoke(&id, None).await? {
        Some(t) => Ok((
            Extension(AuditTenant(t.tenant.clone())),
            Json(serde_json::to_value(&t).unwrap_or_default()),
        )),
        None => Err(
            ApiError::new(ErrorCode::TokenNotFound, format!("no token `{id}`"))
                .details(json!({"id": id})),
        ),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    tenant: Option<String>,
    /// Entries after this id (the `next_cursor` of the page before).
    cursor: Option<String>,
    limit: Option<String>,
}

/// The audit log, oldest first: an admin's whole chain (or one tenant's entries), anyone
/// else's own tenant's entries.
pub async fn audit(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()))?;
    let after = match given(&q.cursor) {
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            ApiError::new(
                ErrorCode::BadCursor,
                format!("cursor `{c}` is not one this API returned"),
            )
        })?),
        None => None,
    };
    let limit = super::page_limit(given(&q.limit), 100)?;
    let items = state
        .store
        .audit_list(AuditFilter {
            tenant: who.list_tenant(given(&q.tenant)),
            after,
            limit,
        })
        .await?;
    let next = if items.len() == limit {
        items.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

/// `PUT /v1/secrets/{name}` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// The value; kept sealed, never answered or logged.
    #[schemars(length(max = 65536))]
    pub value: String,
}

/// `GET /v1/secrets`.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
pub struct SecretList {
    items: Vec<oclaw_store::secrets::SecretInfo>,
}

fn secret_key(state: &ApiState) -> Result<&oclaw_store::secrets::SecretKey, ApiError> {
    state.secret_key.as_deref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::SecretsDisabled,
            "this node keeps no secrets: give it a key (secrets.key_file, or OCLAW_SECRETS__KEY with 64 hex digits)",
        )
    })
}

fn secret_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The tenant's secrets by name (an admin's: `?tenant=`, default `default`), never values.
pub async fn list_secrets(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    query: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()))?;
    secret_key(&state)?;
    let tenant = who.acting_tenant(given(&q.tenant));
    let items = state.store.secret_list(tenant).await?;
    Ok(Json(json!({ "items": items })))
}

/// Sets a secret of the caller's tenant: 201 when new, 200 when replaced. The value is sealed
/// (AES-256-GCM) before it reaches the store; templates of the tenant's bots read it as
/// `secrets.<name>` within seconds.
pub async fn put_secret(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    query: Result<Query<TenantQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Extension<AuditTenant>, Json<Value>), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()))?;
    let key = secret_key(&state)?;
    let trace_id = trace_id_from(&headers);
    if !secret_name_ok(&name) {
        return Err(invalid(
            "a secret's name is 1-128 letters, digits or `_` (templates read it as secrets.<name>)",
            "name",
        ));
    }
    let req: PutSecret = decode(body, &trace_id)?;
    if req.value.len() > 65536 {
        return Err(invalid("a secret's value is at most 64 KiB", "value"));
    }
    let tenant = who.acting_tenant(given(&q.tenant)).to_string();
    let sealed = key
        .seal(&tenant, &name, &req.value)
        .map_err(|m| ApiError::new(ErrorCode::StoreInternal, m))?;
    let created = state.store.secret_put(&tenant, &name, sealed).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Extension(AuditTenant(tenant.clone())),
        Json(json!({"name": name, "tenant": tenant, "created": created})),
    ))
}

pub async fn delete_secret(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    query: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<(StatusCode, Extension<AuditTenant>), ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()))?;
    secret_key(&state)?;
    let tenant = who.acting_tenant(given(&q.tenant)).to_string();
    if state.store.secret_delete(&tenant, &name).await? {
        Ok((StatusCode::NO_CONTENT, Extension(AuditTenant(tenant))))
    } else {
        Err(
            ApiError::new(ErrorCode::SecretNotFound, format!("no secret `{name}`"))
                .details(json!({"name": name})),
        )
    }
}

//! The audit log: every change made through the API — tokens, cancellations and retries,
//! approvals, knowledge — is appended with who made it, in which tenant, from where, and how it
//! ended. Reads, task submissions, events and chat are runs, not changes, and are not logged.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use oclaw_store::access::NewAudit;

use crate::auth::Principal;
use crate::ApiState;

/// The tenant of the object a change touched, when a handler knows it better than the
/// caller's token does (an admin cancelling a tenant's task).
#[derive(Debug, Clone)]
pub struct AuditTenant(pub String);

/// Whether a request changes something the audit log keeps.
pub(crate) fn is_change(method: &Method, path: &str) -> bool {
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return false;
    }
    if !path.starts_with("/v1/") {
        return false;
    }
    let runs = matches!(path, "/v1/tasks" | "/v1/tasks/batch" | "/v1/events")
        || (path.starts_with("/v1/bots/") && path.ends_with("/invoke"));
    !runs
}

/// Appends one entry per change, after the handler answered (refusals included: a 403 or 404
/// on a change is recorded too). A failed append is logged, never hidden.
pub async fn record(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if !is_change(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let action = format!("{} {}", req.method(), route_of(req.uri().path()));
    let target = req.uri().path().to_string();
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let who = req.extensions().get::<Principal>().cloned();
    let resp = next.run(req).await;
    let Some(who) = who else {
        // Refused before the caller was known (401): nothing to attribute.
        return resp;
    };
    let tenant = resp
        .extensions()
        .get::<AuditTenant>()
        .map(|t| t.0.clone())
        .unwrap_or_else(|| who.acting_tenant(None).to_string());
    let entry = NewAudit {
        at: Utc::now(),
        actor: who.actor.clone(),
        tenant,
        action,
        target,
        source,
        result: resp.status().as_u16().to_string(),
    };
    if let Err(e) = state.store.audit_append(entry).await {
        tracing::error!(
            component = "api-server",
            error_code = e.code().code(),
            "cannot append to the audit log: {e}"
        );
    }
    resp
}

/// The route of a path with its ids left out (`/v1/tasks/{id}/cancel`), so entries group by
/// what was done.
fn route_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let prev = if i > 0 { parts[i - 1] } else { "" };
        let id = matches!(
            prev,
            "tasks"
                | "approvals"
                | "tokens"
                | "kb"
                | "documents"
                | "bots"
                | "secrets"
                | "conversations"
        ) && !matches!(*p, "batch" | "");
        out.push(if id { "{id}" } else { p });
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_told_from_runs_and_reads() {
        assert!(is_change(&Method::POST, "/v1/tasks/7/cancel"));
        assert!(is_change(&Method::DELETE, "/v1/kb/docs"));
        assert!(is_change(&Method::POST, "/v1/tokens"));
        assert!(!is_change(&Method::POST, "/v1/tasks"));
        assert!(!is_change(&Method::POST, "/v1/bots/x/invoke"));
        assert!(!is_change(&Method::GET, "/v1/tasks/7"));
        assert!(!is_change(&Method::POST, "/hooks/orders"));
        assert_eq!(route_of("/v1/tasks/7/cancel"), "/v1/tasks/{id}/cancel");
        assert_eq!(
            route_of("/v1/kb/docs/documents/a.md"),
            "/v1/kb/{id}/documents/{id}"
        );
        assert_eq!(route_of("/v1/tokens"), "/v1/tokens");
    }
}

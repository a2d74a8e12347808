//! Bearer-token authentication, and the rule that a node listening beyond loopback must have
//! tokens unless explicitly told otherwise.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use oclaw_core::ErrorCode;

use crate::{ApiError, ApiState};

/// Whether a listen address and token set are safe to start with.
#[derive(Debug, PartialEq, Eq)]
pub enum ListenSafety {
    Ok,
    /// Beyond loopback without tokens, allowed by `api.allow_unauthenticated`.
    UnauthenticatedByChoice,
    Refused(String),
}

pub fn check_listen_safety(
    addr: SocketAddr,
    has_tokens: bool,
    allow_unauthenticated: bool,
) -> ListenSafety {
    if has_tokens || addr.ip().is_loopback() {
        ListenSafety::Ok
    } else if allow_unauthenticated {
        ListenSafety::UnauthenticatedByChoice
    } else {
        ListenSafety::Refused(format!(
            "refusing to listen on {addr} without API tokens: set api.tokens (or OCLAW_API__TOKENS), \
             listen on 127.0.0.1, or set api.allow_unauthenticated: true"
        ))
    }
}

/// Paths anyone may read: liveness, readiness and metrics (scraped by infrastructure).
/// Routes that do without the API token: probes, metrics, the OpenAPI document, and webhooks
/// (which check their own signature or token, and the API token when they have neither).
pub(crate) fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/openapi.json")
        || path.starts_with("/hooks/")
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

use oclaw_channels::constant_time_eq;

pub async fn require_token(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if state.tokens.is_empty() || is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let presented = bearer(req.headers());
    match presented {
        Some(token)
            if state
                .tokens
                .iter()
                .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes())) =>
        {
            next.run(req).await
        }
        Some(_) => {
            ApiError::new(ErrorCode::Unauthorized, "the bearer token is not valid").into_response()
        }
        None => ApiError::new(
            ErrorCode::Unauthorized,
            "this node requires `Authorization: Bearer <token>`",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_public_listen_without_tokens() {
        let public: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(check_listen_safety(local, false, false), ListenSafety::Ok);
        assert_eq!(check_listen_safety(public, true, false), ListenSafety::Ok);
        assert!(matches!(
            check_listen_safety(public, false, false),
            ListenSafety::Refused(_)
        ));
        assert_eq!(
            check_listen_safety(public, false, true),
            ListenSafety::UnauthenticatedByChoice
        );
    }
}

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

/// Routes that do without the API token: probes, metrics, the OpenAPI document, the console's
/// static files, the demo data, and webhooks
/// (which check their own signature or token, and the API token when they have neither).
pub(crate) fn is_public(path: &str) -> bool {
    // The demo catalogue too: the example bots read it from their own node, token or not.
    matches!(
        path,
        "/healthz" | "/readyz" | "/metrics" | "/openapi.json" | "/ui" | "/demo/catalog.json"
    ) || path.starts_with("/hooks/")
        || path.starts_with("/ui/")
}

/// The token of an `Authorization: Bearer <token>` header — or, for browsers, which cannot
/// set headers on a WebSocket, of a `Sec-WebSocket-Protocol` entry `oclaw.bearer.<token>`
/// (offered beside `oclaw`, the protocol the server answers with).
pub(crate) fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    header.or_else(|| {
        headers
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())?
            .split(',')
            .find_map(|p| p.trim().strip_prefix(WS_BEARER))
    })
}

/// The prefix of the WebSocket subprotocol entry that carries a token.
pub const WS_BEARER: &str = "oclaw.bearer.";

use oclaw_channels::constant_time_eq;

/// What a token may do, from least to most: `viewer` reads; `operator` also runs, cancels,
/// retries, sends events and decides approvals; `developer` also changes knowledge (and bots and
/// plugins where the API offers it); `admin` does everything in every tenant, tokens included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Operator,
    Developer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Developer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Developer => "developer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Who is asking: set by [`require_token`] on every request it lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A stored token's id, `config` for a token from `api.tokens`, `anonymous` on a loopback
    /// node without tokens.
    pub actor: String,
    /// The tenant the token belongs to; `None` for admins, who see every tenant.
    pub tenant: Option<String>,
    pub role: Role,
    /// Who the caller is, when the token says: a stored token's name (its id when unnamed), an
    /// OIDC user's `preferred_username` or `sub`. Approvals are decided in this name.
    pub identity: Option<String>,
}

impl Principal {
    fn admin(actor: &str) -> Principal {
        Principal {
            actor: actor.into(),
            tenant: None,
            role: Role::Admin,
            identity: None,
        }
    }

    /// Whether an object of `tenant` is visible: admins see all, others their own tenant's.
    pub fn sees(&self, tenant: &str) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
    }

    /// The tenant a request acts in: the token's, or for an admin the one it names
    /// (`default` when it names none).
    pub fn acting_tenant<'a>(&'a self, named: Option<&'a str>) -> &'a str {
        match &self.tenant {
            Some(t) => t,
            None => named.unwrap_or(oclaw_core::bot::DEFAULT_TENANT),
        }
    }

    /// The tenant to filter lists by: `None` (all) for an admin who names none.
    pub fn list_tenant(&self, named: Option<&str>) -> Option<String> {
        match &self.tenant {
            Some(t) => Some(t.clone()),
            None => named.map(str::to_string),
        }
    }
}

/// The role a request needs, by method and route: reads need `viewer`; running, cancelling,
/// retrying, events, approvals and chat need `operator`; knowledge and secret changes need
/// `developer`;
/// tokens and the whole audit log need `admin` (the audit route narrows by tenant itself).
pub(crate) fn required_role(method: &axum::http::Method, path: &str) -> Role {
    if path.starts_with("/v1/tokens") {
        return Role::Admin;
    }
    if path == "/v1/ws" {
        return Role::Operator;
    }
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        return Role::Viewer;
    }
    if path.starts_with("/v1/kb") || path.starts_with("/v1/secrets") {
        return Role::Developer;
    }
    Role::Operator
}

/// Authenticates a request and checks its role. A bearer token is looked up among the
/// configured tokens (admins of every tenant, for bootstrapping) and then, by its hash, among
/// the stored ones (each read from the store on every request, so a revocation holds at once on
/// every api-server). A node without configured tokens serves loopback callers that present
/// none as admins.
pub async fn require_token(
    State(state): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let principal = match bearer(req.headers()) {
        Some(token) => match principal_of(&state, token).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return ApiError::new(ErrorCode::Unauthorized, "the bearer token is not valid")
                    .into_response()
            }
            Err(e) => return e.into_response(),
        },
        None if state.tokens.is_empty() && state.oidc.is_none() => Principal::admin("anonymous"),
        None => {
            return ApiError::new(
                ErrorCode::Unauthorized,
                "this node requires `Authorization: Bearer <token>`",
            )
            .into_response()
        }
    };
    let needed = required_role(req.method(), req.uri().path());
    if principal.role < needed {
        return ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "this needs the `{}` role; the token has `{}`",
                needed.as_str(),
                principal.role.as_str()
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

async fn principal_of(state: &ApiState, token: &str) -> Result<Option<Principal>, ApiError> {
    if state
        .tokens
        .iter()
        .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    {
        return Ok(Some(Principal::admin("config")));
    }
    if let Some(oidc) = &state.oidc {
        if crate::oidc::Oidc::looks_like_jwt(token) {
            return match oidc.principal(token) {
                Ok(p) => Ok(Some(p)),
                Err(crate::oidc::Refused(why)) => Err(ApiError::new(
                    ErrorCode::Unauthorized,
                    format!("the OIDC token is refused: {why}"),
                )),
            };
        }
    }
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let hash = oclaw_store::access::token_hash(token);
    let Some(record) = state.store.token_by_hash(&hash).await? else {
        return Ok(None);
    };
    if record.revoked_at.is_some() {
        return Ok(None);
    }
    let Some(role) = Role::parse(&record.role) else {
        return Ok(None);
    };
    let identity = if record.name.trim().is_empty() {
        record.id.clone()
    } else {
        record.name.trim().to_string()
    };
    Ok(Some(Principal {
        actor: record.id,
        tenant: (role != Role::Admin).then_some(record.tenant),
        role,
        identity: Some(identity),
    }))
}

/// Stored tokens start with this, so a configured token is never looked up in the store.
pub const TOKEN_PREFIX: &str = "oct_";

/// A new token and its id: 32 random bytes (from the operating system) in hex after the prefix.
pub fn new_token() -> Result<(String, String), ApiError> {
    let mut secret = [0u8; 32];
    let mut id = [0u8; 6];
    getrandom::fill(&mut secret)
        .and_then(|_| getrandom::fill(&mut id))
        .map_err(|e| ApiError::new(ErrorCode::StoreInternal, format!("no randomness: {e}")))?;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Ok((
        format!("tok_{}", hex(&id)),
        format!("{TOKEN_PREFIX}{}", hex(&secret)),
    ))
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

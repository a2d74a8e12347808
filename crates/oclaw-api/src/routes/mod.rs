//! Route table of the API.

pub(crate) mod access;
pub(crate) mod bots;
mod cluster;
pub(crate) mod conversations;
mod demo;
pub(crate) mod health;
mod hooks;
pub(crate) mod kb;
mod metrics;
mod queues;
mod stream;
pub(crate) mod tasks;
pub(crate) mod waits;
mod ws;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use oclaw_core::ErrorCode;

use crate::{auth, ApiError, ApiState};

/// The node's HTTP routes with authentication and the body limit applied.
pub fn router(state: ApiState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/tasks", post(tasks::submit).get(tasks::list))
        .route("/v1/tasks/batch", post(tasks::submit_batch))
        .route("/v1/tasks/{id}", get(tasks::get_one))
        .route("/v1/tasks/{id}/cancel", post(tasks::cancel))
        .route("/v1/tasks/{id}/retry", post(tasks::retry))
        .route("/v1/events", post(waits::send_event))
        .route("/v1/approvals", get(waits::list_approvals))
        .route("/v1/approvals/{id}", get(waits::get_approval))
        .route("/v1/approvals/{id}/approve", post(waits::approve))
        .route("/v1/approvals/{id}/reject", post(waits::reject))
        .route("/v1/kb", get(kb::list).post(kb::create))
        .route(
            "/v1/kb/{name}",
            get(kb::get_one).delete(kb::drop_collection),
        )
        .route(
            "/v1/kb/{name}/documents",
            get(kb::list_documents).post(kb::add_document),
        )
        .route(
            "/v1/kb/{name}/documents/{document}",
            delete(kb::remove_document),
        )
        .route("/v1/kb/{name}/search", get(kb::search))
        .route("/v1/me", get(access::me))
        .route("/v1/tokens", get(access::list).post(access::create))
        .route("/v1/tokens/{id}", delete(access::revoke))
        .route("/v1/audit", get(access::audit))
        .route("/v1/secrets", get(access::list_secrets))
        .route(
            "/v1/secrets/{name}",
            axum::routing::put(access::put_secret).delete(access::delete_secret),
        )
        .route("/v1/bots", get(bots::list))
        .route("/v1/bots/{name}", get(bots::get_one))
        .route("/v1/queues", get(queues::list))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/conversations", get(conversations::list))
        .route("/v1/conversations/{id}", get(conversations::get_one))
        .route("/v1/conversations/{id}/take", post(conversations::take))
        .route(
            "/v1/conversations/{id}/release",
            post(conversations::release),
        )
        .route("/v1/conversations/{id}/messages", post(conversations::send))
        .route("/ui", get(crate::ui::root))
        .route("/ui/", get(crate::ui::index))
        .route("/ui/session.json", get(crate::ui::session))
        .route("/ui/{file}", get(crate::ui::file))
        .route("/v1/cluster/nodes", get(cluster::nodes))
        .route("/v1/bots/{name}/invoke", post(bots::invoke))
        .route("/hooks/{*rest}", post(hooks::receive).get(hooks::receive))
        .route("/v1/ws", get(ws::connect))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(crate::openapi::document()) }),
        )
        .route("/demo/catalog.json", get(demo::catalog))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found);
    with_layers(routes, state)
}

/// The routes of a process without the api-server component (a worker or a scheduler):
/// health, readiness and metrics, and the demo data the example bots fetch from their own node.
pub fn probe_router(state: ApiState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/demo/catalog.json", get(demo::catalog))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found);
    with_layers(routes, state)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method; see /openapi.json",
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        "no such route; see /openapi.json for the routes",
    )
}

/// A page size from `?limit=`: `default` when absent, 1 to 1000 otherwise.
pub(crate) fn page_limit(raw: Option<&str>, default: usize) -> Result<usize, ApiError> {
    let limit = match raw {
        None => default,
        Some(l) => l.parse::<usize>().unwrap_or(0),
    };
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidField,
            "`limit` must be between 1 and 1000",
        )
        .details(serde_json::json!({"field": "limit"})));
    }
    Ok(limit)
}

fn with_layers(routes: Router<ApiState>, state: ApiState) -> Router {
    routes
        // Inside authentication: the audit entry names the caller it found.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit::record,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        // A client that trickles its body cannot hold a connection and its handler forever.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.body_timeout,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::time_requests,
        ))
        .layer(axum::middleware::from_fn(cross_origin))
        .with_state(state)
}

/// Cross-origin reads for pages on other sites that call the API with a token they were given
/// (the WebChat widget reads a reply's task after a reconnect): preflights of `/v1` routes are
/// answered, and an answer to a request that carried a bearer token may be read from any
/// origin. Answers to requests without a token never are, so a page cannot read what a loopback
/// node without tokens shows its local user.
async fn cross_origin(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue, Method, StatusCode};
    use axum::response::IntoResponse;
    let from_elsewhere = req.headers().contains_key(header::ORIGIN);
    if from_elsewhere && req.method() == Method::OPTIONS && req.uri().path().starts_with("/v1/") {
        let mut r = StatusCode::NO_CONTENT.into_response();
        for (name, value) in [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ] {
            r.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        return r;
    }
    let with_token =
        auth::bearer(req.headers()).is_some() && req.headers().contains_key(header::AUTHORIZATION);
    let mut r = next.run(req).await;
    if from_elsewhere && with_token {
        r.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    r
}

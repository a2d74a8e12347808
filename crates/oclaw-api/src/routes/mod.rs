//! Route table of the API.

pub(crate) mod bots;
mod demo;
mod health;
mod metrics;
mod queues;
pub(crate) mod tasks;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use oclaw_core::ErrorCode;

use crate::{auth, ApiError, ApiState};

/// The node's HTTP routes with authentication and the body limit applied.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/tasks", post(tasks::submit).get(tasks::list))
        .route("/v1/tasks/batch", post(tasks::submit_batch))
        .route("/v1/tasks/{id}", get(tasks::get_one))
        .route("/v1/tasks/{id}/cancel", post(tasks::cancel))
        .route("/v1/tasks/{id}/retry", post(tasks::retry))
        .route("/v1/bots", get(bots::list))
        .route("/v1/bots/{name}", get(bots::get_one))
        .route("/v1/queues", get(queues::list))
        .route(
            "/v1/cluster/nodes",
            get(
                |axum::extract::State(s): axum::extract::State<ApiState>| async move {
                    // The embedded node is the whole cluster; distributed mode lists every registered node.
                    axum::Json(serde_json::json!({"items": [s.node], "next_cursor": null}))
                },
            ),
        )
        .route("/v1/bots/{name}/invoke", post(bots::invoke))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(crate::openapi::document()) }),
        )
        .route("/demo/catalog.json", get(demo::catalog))
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this route does not accept that method; see /openapi.json",
            )
        })
        .fallback(|| async {
            ApiError::new(
                ErrorCode::NotFound,
                "no such route; see /openapi.json for the routes",
            )
        })
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
        .with_state(state)
}

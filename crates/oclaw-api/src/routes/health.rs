//! `/healthz` (the process answers) and `/readyz` (the store answers).

use axum::extract::State;
use axum::Json;

use crate::{ApiError, ApiState};

/// Liveness: the process answers.
/// `GET /healthz`: the process answers.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Health {
    #[schemars(regex(pattern = "^ok$"))]
    pub status: &'static str,
}

/// `GET /readyz`: the store answers.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct Ready {
    #[schemars(regex(pattern = "^ready$"))]
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub store: &'static str,
}

pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the store answers.
pub async fn readyz(State(state): State<ApiState>) -> Result<Json<Ready>, ApiError> {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await;
    match ping {
        Ok(Ok(())) => Ok(Json(Ready {
            status: "ready",
            store: state.store.backend(),
        })),
        Ok(Err(e)) => Err(ApiError::new(
            oclaw_core::ErrorCode::StoreUnavailable,
            format!("store not reachable: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            oclaw_core::ErrorCode::StoreUnavailable,
            "store did not answer within 2s",
        )),
    }
}

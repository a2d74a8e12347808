//! `/healthz` (the process answers) and `/readyz` (the store answers).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::{ApiError, ApiState};

/// Liveness: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the store answers.
pub async fn readyz(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await;
    match ping {
        Ok(Ok(())) => Ok(Json(
            json!({"status": "ready", "store": state.store.backend()}),
        )),
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

//! `/v1/queues`: per queue its depth, running, scheduled and dead tasks, oldest age and capacity.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::{ApiError, ApiState};

/// `GET /v1/queues`: depth, running, scheduled, dead, oldest age and capacity per queue.
pub async fn list(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let mut stats = state.store.queue_stats(chrono::Utc::now()).await?;
    for q in state.catalog.load().queues() {
        if !stats.iter().any(|s| s.name == q) {
            stats.push(oclaw_store::QueueStats {
                name: q,
                ..Default::default()
            });
        }
    }
    stats.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(json!({"items": stats})))
}

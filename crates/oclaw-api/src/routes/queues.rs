//! `/v1/queues`: per queue its depth, running, scheduled and dead tasks, oldest age and capacity.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::{ApiError, ApiState};

/// `GET /v1/queues`: depth, running, scheduled, dead, oldest age and capacity per queue.
/// A tenant's token sees the queues its bots use (their counts are of every tenant's tasks on
/// them); an admin sees all.
pub async fn list(
    State(state): State<ApiState>,
    axum::Extension(who): axum::Extension<crate::auth::Principal>,
) -> Result<Json<Value>, ApiError> {
    let mut stats = state.store.queue_stats(chrono::Utc::now()).await?;
    if who.tenant.is_some() {
        let catalog = state.catalog.load();
        let own: std::collections::BTreeSet<&str> = catalog
            .bots()
            .filter(|b| who.sees(&b.doc.metadata.tenant))
            .map(|b| b.doc.spec.queue.as_str())
            .collect();
        stats.retain(|s| own.contains(s.name.as_str()));
        return Ok(Json(json!({"items": stats})));
    }
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

//! `GET /v1/cluster/nodes`: every process registered in the shared store, with its status.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::{ApiError, ApiState};

/// A node whose last heartbeat is older than this is `NotReady` (it missed three).
const READY_WITHIN: chrono::TimeDelta = chrono::TimeDelta::seconds(6);

pub async fn nodes(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let now = chrono::Utc::now();
    let mut items = Vec::new();
    for n in state.store.list_nodes().await? {
        let mut item = match n.info {
            Value::Object(map) => Value::Object(map),
            other => json!({"info": other}),
        };
        let age = (now - n.heartbeat_at).num_milliseconds().max(0) as f64 / 1000.0;
        item["id"] = json!(n.id);
        item["started_at"] = json!(n.started_at);
        item["heartbeat_at"] = json!(n.heartbeat_at);
        item["heartbeat_age_seconds"] = json!(age);
        let ready = now - n.heartbeat_at <= READY_WITHIN;
        item["status"] = json!(if ready { "Ready" } else { "NotReady" });
        if !ready {
            // What a silent node last said of its leadership and its running tasks is not
            // known any more: its leadership term has run out and its leases are expiring.
            if let Some(map) = item.as_object_mut() {
                map.remove("leader");
                map.remove("in_flight");
            }
        }
        items.push(item);
    }
    if items.is_empty() {
        // This node has not written its first heartbeat yet.
        items.push(state.node.clone());
    }
    Ok(Json(json!({"items": items, "next_cursor": null})))
}

use axum::extract::{Path, State};
use axum::Json;
use oclaw_core::ErrorCode;
use serde_json::{json, Value};

use crate::{ApiError, ApiState};

fn summary(bot: &oclaw_engine::LoadedBot) -> Value {
    json!({
        "name": bot.name(),
        "description": bot.doc.metadata.description,
        "queue": bot.doc.spec.queue,
        "steps": bot.steps.iter().map(|(s, _)| json!({"id": s.id, "uses": s.uses})).collect::<Vec<_>>(),
        "triggers": bot.doc.spec.triggers,
        "source": bot.source,
    })
}

pub async fn list(State(state): State<ApiState>) -> Json<Value> {
    Json(
        json!({"items": state.catalog.bots().map(|b| summary(b)).collect::<Vec<_>>(), "next_cursor": null}),
    )
}

pub async fn get_one(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let bot = state
        .catalog
        .get(&name)
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownBot, format!("no bot named `{name}`")))?;
    let mut v = summary(&bot);
    v["spec"] = serde_json::to_value(&bot.doc.spec).unwrap_or(Value::Null);
    Ok(Json(v))
}

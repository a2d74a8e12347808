//! `/v1/bots`: the loaded bots listed and shown, and `POST /v1/bots/{name}/invoke` (run and wait).

use crate::auth::Principal;
use axum::extract::{Path, State};
use axum::Extension;
use axum::Json;
use oclaw_core::ErrorCode;
use serde_json::{json, Value};

use crate::{ApiError, ApiState};

/// A step as listings show it.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct StepRef {
    pub id: String,
    /// The skill it runs.
    pub uses: String,
}

/// A loaded bot, as `GET /v1/bots` lists it.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct BotSummary {
    pub name: String,
    /// The tenant the bot belongs to.
    pub tenant: String,
    pub description: Option<String>,
    pub queue: String,
    pub steps: Vec<StepRef>,
    pub triggers: Vec<oclaw_core::bot::Trigger>,
    /// The file (or config) the bot was loaded from.
    pub source: String,
}

/// `GET /v1/bots/{name}`: the summary and the whole spec.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct BotDetail {
    #[serde(flatten)]
    pub summary: BotSummary,
    pub spec: oclaw_core::bot::BotSpec,
}

/// `GET /v1/bots`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct BotList {
    pub items: Vec<BotSummary>,
    /// Always null: every loaded bot is on the one page.
    pub next_cursor: Option<String>,
}

fn summary(bot: &oclaw_bots::LoadedBot) -> BotSummary {
    BotSummary {
        name: bot.name().to_string(),
        tenant: bot.doc.metadata.tenant.clone(),
        description: bot.doc.metadata.description.clone(),
        queue: bot.doc.spec.queue.clone(),
        steps: bot
            .steps
            .iter()
            .map(|(s, _)| StepRef {
                id: s.id.clone(),
                uses: s.uses.clone(),
            })
            .collect(),
        triggers: bot.doc.spec.triggers.clone(),
        source: bot.source.clone(),
    }
}

/// The caller's bots: its tenant's (an admin's: every tenant's).
pub async fn list(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
) -> Json<BotList> {
    Json(BotList {
        items: state
            .catalog
            .load()
            .bots()
            .filter(|b| who.sees(&b.doc.metadata.tenant))
            .map(|b| summary(b))
            .collect(),
        next_cursor: None,
    })
}

pub async fn get_one(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<BotDetail>, ApiError> {
    let bot = state
        .catalog
        .load()
        .get(&name)
        .filter(|b| who.sees(&b.doc.metadata.tenant))
        .ok_or_else(|| ApiError::new(ErrorCode::UnknownBot, format!("no bot named `{name}`")))?;
    Ok(Json(BotDetail {
        summary: summary(&bot),
        spec: bot.doc.spec.clone(),
    }))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvokeQuery {
    timeout: Option<String>,
}

/// `POST /v1/bots/{name}/invoke` body (optional).
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeBody {
    #[serde(default)]
    pub input: Value,
    #[schemars(length(min = 1, max = 256))]
    pub idempotency_key: Option<String>,
}

fn invoke_answer(task: &oclaw_core::Task) -> Value {
    json!({"task_id": task.id, "status": task.status, "output": task.output, "error": task.error, "trace_id": task.trace_id})
}

/// Whether the client asked for Server-Sent Events (`Accept: text/event-stream`).
fn wants_events(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// The streamed form of `invoke`: `event: delta` with `{"text"}` for each piece of the model's
/// answer as it is generated, then one `event: result` with the same body as the JSON answer.
async fn invoke_events(
    state: ApiState,
    task: oclaw_core::NewTask,
    trace_id: String,
    wait: std::time::Duration,
) -> Result<axum::response::Response, ApiError> {
    let pending = state
        .replies
        .submit(task)
        .await
        .map_err(|e| ApiError::from(e).trace(&trace_id))?;
    let id = pending.task.id;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let deltas = {
        let tx = tx.clone();
        oclaw_core::stream::TaskStreams::global().subscribe(id, move |text| {
            let _ = tx.send(format!("event: delta\ndata: {}\n\n", json!({"text": text})));
        })
    };
    let store = state.store.clone();
    tokio::spawn(async move {
        let done = match pending.finished(wait).await {
            Some(t) => Some(t),
            None => store.get_task(id).await.ok().flatten(),
        };
        drop(deltas);
        if let Some(task) = done {
            let _ = tx.send(format!("event: result\ndata: {}\n\n", invoke_answer(&task)));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| {
            (
                Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(event)),
                rx,
            )
        })
    });
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "text/event-stream")
        .header(axum::http::header::CACHE_CONTROL, "no-cache")
        .body(axum::body::Body::from_stream(stream))
        .map_err(|e| ApiError::new(ErrorCode::StoreInternal, e.to_string()))
}

/// `POST /v1/bots/{name}/invoke`: runs the bot and waits up to `?timeout=` (default `api.timeout`)
/// for the result: 200 with the output when it finished, 202 with the task id when it still runs.
/// With `Accept: text/event-stream`, the answer streams as Server-Sent Events.
pub async fn invoke(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    query: Result<axum::extract::Query<InvokeQuery>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let trace_id = crate::trace::trace_id_from(&headers);
    let axum::extract::Query(q) = query
        .map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()).trace(&trace_id))?;
    let wait = match crate::routes::tasks::given(&q.timeout) {
        Some(t) => oclaw_core::duration::parse_duration(t).map_err(|e| {
            ApiError::new(ErrorCode::InvalidField, format!("timeout: {e}"))
                .details(json!({"field": "timeout"}))
                .trace(&trace_id)
        })?,
        None => state.timeout,
    };
    // A wait longer than an hour waits an hour (then answers 202 with the task as it is).
    let wait = wait.min(std::time::Duration::from_secs(3600));
    let empty = matches!(&body, Ok(b) if b.iter().all(|c| c.is_ascii_whitespace()));
    let req: InvokeBody = if empty {
        InvokeBody::default()
    } else {
        crate::body::decode(body, &trace_id)?
    };
    let submit = crate::routes::tasks::SubmitTask::for_bot(name, req.input, req.idempotency_key);
    let task = crate::routes::tasks::to_new_task(&state, Some(&who), submit, &trace_id)?;
    state.quotas.admit(&state, &task.tenant, 1).await?;
    if wants_events(&headers) {
        return invoke_events(state, task, trace_id, wait).await;
    }
    let current = enqueue_and_wait(&state, task, &trace_id, Some(wait)).await?;
    let status = if current.status.is_terminal() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(invoke_answer(&current))).into_response())
}

/// Enqueues `task`; with `wait`, waits that long for it to finish (through the process's reply
/// router). Answers the task as it is then.
pub(crate) async fn enqueue_and_wait(
    state: &ApiState,
    task: oclaw_core::NewTask,
    trace_id: &str,
    wait: Option<std::time::Duration>,
) -> Result<oclaw_core::Task, ApiError> {
    let err = |e: oclaw_store::StoreError| ApiError::from(e).trace(trace_id);
    let Some(wait) = wait else {
        return state.store.enqueue(task).await.map(|e| e.task).map_err(err);
    };
    let pending = state.replies.submit(task).await.map_err(err)?;
    let id = pending.task.id;
    match pending.finished(wait).await {
        Some(done) => Ok(done),
        // Still running at the timeout: the task as it is now.
        None => state
            .store
            .get_task(id)
            .await
            .map_err(err)?
            .ok_or_else(|| err(oclaw_store::StoreError::NotFound(id))),
    }
}

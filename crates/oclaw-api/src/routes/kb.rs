//! Knowledge collections: `GET|POST /v1/kb`, `GET|DELETE /v1/kb/{name}`,
//! `GET|POST /v1/kb/{name}/documents` (a POST queues a task of the built-in `oclaw.ingest` bot:
//! durable, retried, resumed after a restart), `DELETE /v1/kb/{name}/documents/{id}` and
//! `GET /v1/kb/{name}/search?q=&k=&mode=`.

use crate::auth::Principal;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Extension;
use axum::Json;
use oclaw_core::{ErrorCode, NewTask};
use oclaw_knowledge::{KbError, Mode, SearchRequest};
use oclaw_store::knowledge::{CollectionInfo, DocumentInfo};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::tasks::given;
use crate::body::decode;
use crate::trace::trace_id_from;
use crate::{ApiError, ApiState};

fn kb_error(e: KbError) -> ApiError {
    ApiError::new(e.code, e.message)
}

fn invalid(message: impl Into<String>, field: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidField, message).details(json!({"field": field}))
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::KbNotFound,
        format!("no knowledge collection `{name}`; create it with POST /v1/kb"),
    )
    .details(json!({"kb": name}))
}

async fn collection(
    state: &ApiState,
    who: &Principal,
    name: &str,
) -> Result<CollectionInfo, ApiError> {
    state
        .store
        .kb_get(who.acting_tenant(None), name)
        .await?
        .ok_or_else(|| not_found(name))
}

/// `POST /v1/kb`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollection {
    /// 1 to 64 letters, digits, `-`, `_` or `.`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,64}$"))]
    name: String,
}

/// `GET /v1/kb`.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
pub struct CollectionList {
    items: Vec<CollectionInfo>,
}

pub async fn list(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let items = state.store.kb_list(who.acting_tenant(None)).await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn create(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<CollectionInfo>), ApiError> {
    let trace_id = trace_id_from(&headers);
    let req: CreateCollection = decode(body, &trace_id)?;
    oclaw_knowledge::check_collection_name(&req.name).map_err(|e| {
        kb_error(e)
            .details(json!({"field": "name"}))
            .trace(&trace_id)
    })?;
    match state
        .store
        .kb_create(who.acting_tenant(None), &req.name)
        .await
    {
        Ok(info) => Ok((StatusCode::CREATED, Json(info))),
        Err(oclaw_store::StoreError::Duplicate(_)) => Err(ApiError::new(
            ErrorCode::KbExists,
            format!("knowledge collection `{}` exists", req.name),
        )
        .details(json!({"kb": req.name}))
        .trace(&trace_id)),
        Err(e) => Err(ApiError::from(e).trace(&trace_id)),
    }
}

pub async fn get_one(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<CollectionInfo>, ApiError> {
    Ok(Json(collection(&state, &who, &name).await?))
}

pub async fn drop_collection(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.kb_drop(who.acting_tenant(None), &name).await? {
        return Err(not_found(&name));
    }
    state.knowledge.index.forget(who.acting_tenant(None), &name);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/kb/{name}/documents`: a document as text, or a URL the node fetches (through the
/// SSRF guard: private and loopback addresses are refused).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDocument {
    /// Stable id: adding the same id again replaces the document (re-indexed only when its
    /// content changed). Defaults to `source`, else a hash of the content.
    #[serde(default)]
    #[schemars(length(max = 512), regex(pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"))]
    id: Option<String>,
    #[serde(default)]
    title: Option<String>,
    /// Where it came from (a path or URL), shown in citations.
    #[serde(default)]
    source: Option<String>,
    /// The document (give `text` or `url`).
    #[serde(default)]
    text: Option<String>,
    /// A page the node fetches (through the SSRF guard).
    #[serde(default)]
    #[schemars(regex(pattern = r"^https?://"))]
    url: Option<String>,
    /// `markdown`, `text` or `html` (default: from the source's name or the content).
    #[serde(default)]
    #[schemars(with = "Option<DocumentFormat>")]
    format: Option<String>,
    /// Flat key-value pairs a search can filter on: text, numbers, booleans.
    #[serde(default)]
    #[schemars(with = "Option<std::collections::BTreeMap<String, Scalar>>")]
    metadata: Option<Map<String, Value>>,
}

/// A document's format as the schema shows it (empty: from its name or content).
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum DocumentFormat {
    Markdown,
    Text,
    Html,
    #[serde(rename = "")]
    Detect,
}

/// A metadata value: text, a number, a boolean or null.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Number(f64),
    Flag(bool),
    Nothing(()),
}

/// What `POST /v1/kb/{name}/documents` answers: the ingestion task.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
pub struct DocumentQueued {
    document: Option<String>,
    task_id: oclaw_core::TaskId,
    status: String,
}

pub async fn add_document(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let trace_id = trace_id_from(&headers);
    let mut req: AddDocument = decode(body, &trace_id)?;
    // Empty text is an absent field.
    for field in [
        &mut req.id,
        &mut req.title,
        &mut req.source,
        &mut req.text,
        &mut req.url,
        &mut req.format,
    ] {
        if field.as_deref() == Some("") {
            *field = None;
        }
    }
    collection(&state, &who, &name)
        .await
        .map_err(|e| e.trace(&trace_id))?;
    let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    match (has(&req.text), has(&req.url)) {
        (true, true) => {
            return Err(invalid("give `text` or `url`, not both", "text").trace(&trace_id))
        }
        (false, false) => {
            return Err(invalid("`text` or `url` is required", "text").trace(&trace_id))
        }
        _ => {}
    }
    // The scheme here; the rest of the URL is the ingestion task's to fetch or refuse.
    if let Some(u) = req.url.as_deref() {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(invalid(
                format!("`url` `{u}` is not an http:// or https:// URL"),
                "url",
            )
            .trace(&trace_id));
        }
    }
    if let Some(f) = req.format.as_deref() {
        if oclaw_knowledge::Format::parse(f).is_none() {
            return Err(invalid(
                format!("format `{f}` is not markdown, text or html"),
                "format",
            )
            .trace(&trace_id));
        }
    }
    if let Some(id) = req.id.as_deref() {
        oclaw_knowledge::check_document_id(id)
            .map_err(|e| kb_error(e).details(json!({"field": "id"})).trace(&trace_id))?;
    }
    if let Some(m) = &req.metadata {
        if m.values().any(|v| v.is_array() || v.is_object()) {
            return Err(invalid(
                "`metadata` values are text, numbers, booleans or null",
                "metadata",
            )
            .trace(&trace_id));
        }
    }
    let document = req
        .id
        .clone()
        .or_else(|| req.source.clone().or_else(|| req.url.clone()));
    let input = json!({
        "kb": name,
        "id": req.id,
        "title": req.title,
        "source": req.source,
        "text": req.text,
        "url": req.url,
        "format": req.format,
        "metadata": req.metadata,
    });
    if let Some(served) = &state.served_queues {
        if !served.contains("default") {
            // The ingestion bot runs on `default`: without a worker there it would never run.
            return Err(ApiError::new(
                ErrorCode::QueueNotServed,
                "no worker serves queue `default`, where documents are ingested; add it to worker.queues",
            )
            .trace(&trace_id));
        }
    }
    let mut task = NewTask::new(oclaw_knowledge::INGEST_BOT, "default", input);
    task.tenant = who.acting_tenant(None).to_string();
    task.max_attempts = 5;
    task.trace_id = trace_id.clone();
    let enqueued = state
        .store
        .enqueue(task)
        .await
        .map_err(|e| ApiError::from(e).trace(&trace_id))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "document": document,
            "task_id": enqueued.task.id,
            "status": enqueued.task.status,
        })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// `GET /v1/kb/{name}/documents`.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
pub struct DocumentList {
    items: Vec<DocumentInfo>,
    /// The `after` of the next page, when there is one.
    next: Option<String>,
}

pub async fn list_documents(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    query: Result<Query<DocumentQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()))?;
    let limit = match given(&q.limit) {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| invalid("`limit` is 1 to 1000", "limit"))?,
    };
    collection(&state, &who, &name).await?;
    let items = state
        .store
        .kb_documents(who.acting_tenant(None), &name, given(&q.after), limit)
        .await?;
    let next = (items.len() == limit)
        .then(|| items.last().map(|d| d.id.clone()))
        .flatten();
    Ok(Json(json!({ "items": items, "next": next })))
}

pub async fn remove_document(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if !state
        .store
        .kb_remove_document(who.acting_tenant(None), &name, &id)
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::KbDocumentNotFound,
            format!("collection `{name}` has no document `{id}`"),
        )
        .details(json!({"kb": name, "document": id})));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: Option<String>,
    k: Option<String>,
    mode: Option<String>,
    /// Metadata filter as a JSON object, e.g. `{"lang":"en"}`.
    filter: Option<String>,
}

/// `GET /v1/kb/{name}/search`.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
pub struct SearchAnswer {
    hits: Vec<SearchHit>,
    /// `hybrid`, `full-text` or `vector`.
    mode: String,
    /// Why the search ran on full-text only, when it did.
    note: Option<String>,
}

#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
pub struct SearchHit {
    document: String,
    chunk: i64,
    title: Option<String>,
    source: Option<String>,
    text: String,
    score: f64,
}

pub async fn search(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::InvalidField, e.body_text()))?;
    let text = given(&q.q).ok_or_else(|| invalid("`q` (the question) is required", "q"))?;
    let k = match given(&q.k) {
        None => 5,
        Some(k) => k
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| invalid("`k` is 1 to 100", "k"))?,
    };
    let mode = match given(&q.mode) {
        None => Mode::Hybrid,
        Some(m) => Mode::parse(m)
            .ok_or_else(|| invalid(format!("mode `{m}` is not hybrid, text or vector"), "mode"))?,
    };
    let filter = match given(&q.filter) {
        None => Map::new(),
        Some(f) => match serde_json::from_str::<Value>(f) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(invalid(
                    "`filter` is a JSON object like {\"lang\":\"en\"}",
                    "filter",
                ))
            }
        },
    };
    let mut request = SearchRequest::new(&name, text, k);
    request.mode = mode;
    request.filter = filter;
    request.tenant = who.acting_tenant(None).to_string();
    let result = state
        .knowledge
        .search(state.store.as_ref(), &request)
        .await
        .map_err(|e| match e.code {
            ErrorCode::KbNotFound => not_found(&name),
            _ => kb_error(e),
        })?;
    Ok(Json(serde_json::to_value(result).unwrap_or_default()))
}

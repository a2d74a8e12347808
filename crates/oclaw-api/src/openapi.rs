//! The OpenAPI 3.1 document of the API. Request and response schemas are generated from the
//! Rust types the handlers use (schemars); the route table below lists each route once.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::routes::bots::InvokeBody;
use crate::routes::tasks::{SubmitBatch, SubmitTask};

/// The error body every failing route answers with.
#[allow(dead_code)]
#[derive(JsonSchema)]
struct ErrorBody {
    error: ErrorDetail,
    /// The request's trace id.
    trace_id: Option<String>,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
struct ErrorDetail {
    /// An `OC-xxxx` code from the catalogue.
    code: String,
    message: String,
    details: Value,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
struct TaskPage {
    items: Vec<oclaw_core::Task>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// One registered process: what it reported of itself (address, components, queues,
/// leadership, tasks in flight — the last two only while it is Ready) and its heartbeat.
#[allow(dead_code)]
#[derive(JsonSchema)]
struct NodeEntry {
    id: String,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    heartbeat_at: Option<chrono::DateTime<chrono::Utc>>,
    heartbeat_age_seconds: Option<f64>,
    /// `Ready` or `NotReady` (no heartbeat for a while).
    #[schemars(regex(pattern = "^(Ready|NotReady)$"))]
    status: Option<String>,
    #[serde(flatten)]
    reported: Map<String, Value>,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
struct NodeList {
    items: Vec<NodeEntry>,
    /// Always null.
    next_cursor: Option<String>,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
struct QueueList {
    items: Vec<oclaw_store::QueueStats>,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
struct InvokeAnswer {
    task_id: oclaw_core::TaskId,
    status: oclaw_core::TaskStatus,
    output: Option<Value>,
    error: Option<oclaw_core::TaskError>,
    trace_id: String,
}

#[allow(dead_code)]
#[derive(JsonSchema)]
struct BatchAnswer {
    items: Vec<oclaw_core::Task>,
    created: usize,
}

struct Route {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    request: Option<Value>,
    ok_status: &'static str,
    response: Value,
    params: &'static [(&'static str, &'static str, &'static str)],
}

/// The error statuses a route can answer, from what it does: every route can fail inside
/// (500); a route behind the API token answers 401; one with a body 400 (bad JSON or field) and
/// 413; one with a path parameter 400 (malformed) and 404; one that reads the store 503; the
/// submitting routes 404 (unknown bot), 409 (no worker serves the queue) and 429 (queue full,
/// with `Retry-After`); cancel and retry 409 (the task's state).
fn error_statuses(method: &str, path: &str, has_body: bool, has_path_param: bool) -> Vec<u16> {
    let mut out = vec![500];
    if !crate::auth::is_public(path) {
        // No token or a bad one; a role short of the route's.
        out.extend([401, 403]);
    }
    if has_body {
        out.extend([400, 413]);
    }
    if has_path_param {
        out.extend([400, 404]);
    }
    if path != "/healthz" && path != "/metrics" {
        out.push(503);
    }
    match (method, path) {
        ("post", "/v1/tasks" | "/v1/tasks/batch" | "/v1/bots/{name}/invoke") => {
            out.extend([404, 409, 429])
        }
        ("post", "/v1/tasks/{id}/cancel" | "/v1/tasks/{id}/retry") => out.push(409),
        ("post", "/v1/approvals/{id}/approve" | "/v1/approvals/{id}/reject") => {
            out.extend([403, 409])
        }
        ("get", "/v1/approvals") => out.push(400),
        (_, "/v1/secrets" | "/v1/secrets/{name}") => out.extend([400, 409]),
        // Their query strings are checked (an unknown parameter is 400).
        ("get", "/v1/audit" | "/v1/tokens") => out.push(400),
        ("post", "/v1/kb") => out.push(409),
        ("post", "/v1/kb/{name}/documents") => out.push(409),
        ("get", "/v1/kb/{name}/documents") => out.push(400),
        ("get", "/v1/kb/{name}/search") => out.extend([400, 409]),
        ("get", "/v1/tasks" | "/v1/conversations") => out.push(400),
        ("post", "/v1/conversations/{id}/messages") => out.push(409),
        _ => {}
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The schema of a parameter, from what the server accepts: a task id is `T` and digits, a
/// limit 1..1000, a status one of the task statuses, a timeout a duration; an empty query
/// value counts as absent.
fn param_schema(name: &str, at: &str, path: &str) -> Value {
    let optional_empty = |s: Value| {
        if at == "query" {
            json!({"anyOf": [s, {"const": ""}]})
        } else {
            s
        }
    };
    match name {
        "id" if path.starts_with("/v1/approvals") => {
            json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"})
        }
        "id" if path.starts_with("/v1/tokens") => json!({"type": "string", "minLength": 1}),
        "id" if path.starts_with("/v1/conversations") => {
            json!({"type": "string", "pattern": "^([0-9a-f]{2}){1,512}$"})
        }
        "state" => {
            optional_empty(json!({"type": "string", "enum": ["waiting", "taken", "released"]}))
        }
        "id" | "task" => {
            optional_empty(json!({"type": "string", "pattern": "^T[1-9][0-9]{0,17}$"}))
        }
        "limit" => optional_empty(json!({"type": "string", "pattern": "^([1-9][0-9]{0,2}|1000)$"})),
        "cursor" if path == "/v1/audit" => {
            optional_empty(json!({"type": "string", "pattern": "^[0-9]{1,18}$"}))
        }
        "cursor" => optional_empty(json!({"type": "string", "pattern": "^T[1-9][0-9]{0,17}$"})),
        "status" if path == "/v1/approvals" => optional_empty(
            json!({"type": "string", "enum": ["pending", "done", "timed_out", "cancelled", "all"]}),
        ),
        "status" => {
            // Every value the status type's own schema allows (its `enum`s and `const`s).
            let schema = schemars::schema_for!(oclaw_core::TaskStatus).to_value();
            let statuses: Vec<Value> = schema["oneOf"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(&schema))
                .flat_map(|s| {
                    let listed = s["enum"].as_array().cloned().unwrap_or_default();
                    listed.into_iter().chain(s.get("const").cloned())
                })
                .collect();
            optional_empty(json!({"type": "string", "enum": statuses}))
        }
        "k" if path == "/v1/kb/{name}/search" => {
            optional_empty(json!({"type": "string", "pattern": "^([1-9][0-9]?|100)$"}))
        }
        "mode" => optional_empty(json!({"type": "string", "enum": ["hybrid", "text", "vector"]})),
        "q" => json!({"type": "string", "minLength": 1}),
        "timeout" => optional_empty(
            json!({"type": "string", "pattern": oclaw_core::duration::DURATION_PATTERN}),
        ),
        _ => json!({"type": "string"}),
    }
}

fn schema_ref<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

/// Builds the document.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "#/components/schemas/".into();
    let mut g = settings.into_generator();
    let task = schema_ref::<oclaw_core::Task>(&mut g);
    let any = json!({});
    let id_param: &[(&str, &str, &str)] = &[("id", "path", "Task id (T123)")];
    let name_param: &[(&str, &str, &str)] = &[("name", "path", "Bot name")];
    let routes = vec![
        Route { method: "post", path: "/v1/tasks", summary: "Submit a task (202; 200 for an idempotent replay)", request: Some(schema_ref::<SubmitTask>(&mut g)), ok_status: "202", response: task.clone(), params: &[] },
        Route { method: "get", path: "/v1/tasks", summary: "List tasks, newest first", request: None, ok_status: "200", response: schema_ref::<TaskPage>(&mut g), params: &[("status", "query", "Task status"), ("bot", "query", "Bot name"), ("queue", "query", "Queue"), ("tenant", "query", "One tenant's tasks (admins; others see their own tenant's only)"), ("limit", "query", "1..1000, default 50"), ("cursor", "query", "next_cursor of the previous page")] },
        Route { method: "post", path: "/v1/tasks/batch", summary: "Submit up to 1,000 tasks, all or nothing", request: Some(schema_ref::<SubmitBatch>(&mut g)), ok_status: "202", response: schema_ref::<BatchAnswer>(&mut g), params: &[] },
        Route { method: "get", path: "/v1/tasks/{id}", summary: "One task with its checkpoints", request: None, ok_status: "200", response: task.clone(), params: id_param },
        Route { method: "post", path: "/v1/tasks/{id}/cancel", summary: "Cancel a task that has not finished (409 otherwise)", request: None, ok_status: "200", response: task.clone(), params: id_param },
        Route { method: "post", path: "/v1/tasks/{id}/retry", summary: "Run a dead, failed or cancelled task again (409 otherwise); with from_step, also a finished one, from that step on (earlier checkpoints kept)", request: None, ok_status: "200", response: task, params: &[("id", "path", "Task id (T123)"), ("from_step", "query", "Re-run from this step id")] },
        Route { method: "post", path: "/v1/events", summary: "Send an event: wakes the tasks waiting for it (name and key), or keeps it for events.retention when none waits yet", request: Some(schema_ref::<crate::routes::waits::SendEvent>(&mut g)), ok_status: "202", response: schema_ref::<crate::routes::waits::EventAnswer>(&mut g), params: &[("tenant", "query", "The tenant whose waits it reaches (admins; others reach their own)")] },
        Route { method: "get", path: "/v1/approvals", summary: "Approvals, newest first (status=pending for those waiting for a decision)", request: None, ok_status: "200", response: schema_ref::<crate::routes::waits::ApprovalList>(&mut g), params: &[("status", "query", "pending, done, timed_out, cancelled or all"), ("task", "query", "Only this task's (T123)"), ("limit", "query", "1..1000, default 100")] },
        Route { method: "get", path: "/v1/approvals/{id}", summary: "One approval with its decisions", request: None, ok_status: "200", response: schema_ref::<oclaw_store::waits::WaitRecord>(&mut g), params: &[("id", "path", "Approval id")] },
        Route { method: "post", path: "/v1/approvals/{id}/approve", summary: "Approve (recorded with by and comment; 403 when by is not among the approvers, 409 when decided or timed out)", request: Some(schema_ref::<crate::routes::waits::Decide>(&mut g)), ok_status: "200", response: schema_ref::<oclaw_store::waits::WaitRecord>(&mut g), params: &[("id", "path", "Approval id")] },
        Route { method: "post", path: "/v1/approvals/{id}/reject", summary: "Reject (recorded with by and comment; 403 when by is not among the approvers, 409 when decided or timed out)", request: Some(schema_ref::<crate::routes::waits::Decide>(&mut g)), ok_status: "200", response: schema_ref::<oclaw_store::waits::WaitRecord>(&mut g), params: &[("id", "path", "Approval id")] },
        Route { method: "get", path: "/v1/kb", summary: "Knowledge collections with their document and chunk counts and embedder", request: None, ok_status: "200", response: schema_ref::<crate::routes::kb::CollectionList>(&mut g), params: &[] },
        Route { method: "post", path: "/v1/kb", summary: "Create a knowledge collection (409 when it exists)", request: Some(schema_ref::<crate::routes::kb::CreateCollection>(&mut g)), ok_status: "201", response: schema_ref::<oclaw_store::knowledge::CollectionInfo>(&mut g), params: &[] },
        Route { method: "get", path: "/v1/kb/{name}", summary: "One knowledge collection", request: None, ok_status: "200", response: schema_ref::<oclaw_store::knowledge::CollectionInfo>(&mut g), params: &[("name", "path", "Collection name")] },
        Route { method: "delete", path: "/v1/kb/{name}", summary: "Remove a knowledge collection with its documents", request: None, ok_status: "204", response: any.clone(), params: &[("name", "path", "Collection name")] },
        Route { method: "post", path: "/v1/kb/{name}/documents", summary: "Add or update a document (text, or a URL fetched through the SSRF guard): 202 with the task of the built-in oclaw.ingest bot that extracts, chunks, embeds and indexes it", request: Some(json!({"allOf": [schema_ref::<crate::routes::kb::AddDocument>(&mut g), {"oneOf": [
            {"required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}, "url": {"anyOf": [{"type": "null"}, {"const": ""}]}}},
            {"required": ["url"], "properties": {"url": {"type": "string", "pattern": "^https?://"}, "text": {"anyOf": [{"type": "null"}, {"const": ""}]}}},
        ]}]})), ok_status: "202", response: schema_ref::<crate::routes::kb::DocumentQueued>(&mut g), params: &[("name", "path", "Collection name")] },
        Route { method: "get", path: "/v1/kb/{name}/documents", summary: "The collection's documents by id", request: None, ok_status: "200", response: schema_ref::<crate::routes::kb::DocumentList>(&mut g), params: &[("name", "path", "Collection name"), ("after", "query", "next of the previous page"), ("limit", "query", "1..1000, default 100")] },
        Route { method: "delete", path: "/v1/kb/{name}/documents/{document}", summary: "Remove a document", request: None, ok_status: "204", response: any.clone(), params: &[("name", "path", "Collection name"), ("document", "path", "Document id")] },
        Route { method: "get", path: "/v1/kb/{name}/search", summary: "Search a collection: full-text and vectors fused with Reciprocal Rank Fusion (full-text only without an embedder, said in note)", request: None, ok_status: "200", response: schema_ref::<crate::routes::kb::SearchAnswer>(&mut g), params: &[("name", "path", "Collection name"), ("q", "query", "The question"), ("k", "query", "1..100, default 5"), ("mode", "query", "hybrid (default), text or vector"), ("filter", "query", "Metadata filter as a JSON object")] },
        Route { method: "get", path: "/v1/tokens", summary: "API tokens (admins): id, tenant, role, name, when made and revoked; never the token", request: None, ok_status: "200", response: schema_ref::<crate::routes::access::TokenList>(&mut g), params: &[("tenant", "query", "Only this tenant's")] },
        Route { method: "post", path: "/v1/tokens", summary: "Create a token for a tenant with a role (admins); the answer is the only time the token is shown", request: Some(schema_ref::<crate::routes::access::CreateToken>(&mut g)), ok_status: "201", response: schema_ref::<crate::routes::access::TokenCreated>(&mut g), params: &[] },
        Route { method: "delete", path: "/v1/tokens/{id}", summary: "Revoke a token (admins): refused by every api-server from the next request on", request: None, ok_status: "200", response: schema_ref::<oclaw_store::access::TokenRecord>(&mut g), params: &[("id", "path", "Token id (tok_...)")] },
        Route { method: "get", path: "/v1/audit", summary: "The audit log of changes, oldest first, each entry chained to the one before by its hash (admins: every tenant's; others: their tenant's)", request: None, ok_status: "200", response: schema_ref::<crate::routes::access::AuditList>(&mut g), params: &[("tenant", "query", "One tenant's entries (admins)"), ("cursor", "query", "next_cursor of the previous page"), ("limit", "query", "1..1000, default 100")] },
        Route { method: "get", path: "/v1/secrets", summary: "The tenant's secrets by name and when each was set, never their values (409 when the node has no secrets key)", request: None, ok_status: "200", response: schema_ref::<crate::routes::access::SecretList>(&mut g), params: &[("tenant", "query", "The tenant (admins; others their own)")] },
        Route { method: "put", path: "/v1/secrets/{name}", summary: "Set a secret of the tenant (developers): sealed with AES-256-GCM before it reaches the store, read by the tenant's bots as secrets.<name>; 201 new, 200 replaced", request: Some(schema_ref::<crate::routes::access::PutSecret>(&mut g)), ok_status: "201", response: any.clone(), params: &[("name", "path", "Letters, digits, _"), ("tenant", "query", "The tenant (admins; others their own)")] },
        Route { method: "delete", path: "/v1/secrets/{name}", summary: "Remove a secret of the tenant (developers)", request: None, ok_status: "204", response: any.clone(), params: &[("name", "path", "Secret name"), ("tenant", "query", "The tenant (admins; others their own)")] },
        Route { method: "get", path: "/v1/me", summary: "Who the token is: actor, tenant (null for admins of every tenant), role, name", request: None, ok_status: "200", response: json!({"type": "object", "required": ["actor", "role"], "properties": {"actor": {"type": "string"}, "tenant": {"type": ["string", "null"]}, "role": {"enum": ["viewer", "operator", "developer", "admin"]}, "identity": {"type": ["string", "null"]}}}), params: &[] },
        Route { method: "get", path: "/v1/conversations", summary: "Conversations bots handed to a person (waiting, taken by an agent, or released), newest first", request: None, ok_status: "200", response: json!({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {"type": "object"}}, "next_cursor": {"type": "null"}}}), params: &[("state", "query", "waiting, taken or released"), ("tenant", "query", "One tenant's (admins)")] },
        Route { method: "get", path: "/v1/conversations/{id}", summary: "One handed-off conversation with its history", request: None, ok_status: "200", response: json!({"type": "object"}), params: &[("id", "path", "Conversation id (from the list)")] },
        Route { method: "post", path: "/v1/conversations/{id}/take", summary: "Take the conversation over: the bot stops answering it until it is handed back", request: None, ok_status: "200", response: json!({"type": "object"}), params: &[("id", "path", "Conversation id")] },
        Route { method: "post", path: "/v1/conversations/{id}/release", summary: "Hand the conversation back to the bot", request: None, ok_status: "200", response: json!({"type": "object"}), params: &[("id", "path", "Conversation id")] },
        Route { method: "post", path: "/v1/conversations/{id}/messages", summary: "The agent's reply: kept in the history and sent into the session or channel (409 unless taken over)", request: Some(schema_ref::<crate::routes::conversations::AgentMessage>(&mut g)), ok_status: "200", response: json!({"type": "object"}), params: &[("id", "path", "Conversation id")] },
        Route { method: "get", path: "/v1/bots", summary: "The loaded bots", request: None, ok_status: "200", response: schema_ref::<crate::routes::bots::BotList>(&mut g), params: &[] },
        Route { method: "get", path: "/v1/bots/{name}", summary: "One bot with its spec", request: None, ok_status: "200", response: schema_ref::<crate::routes::bots::BotDetail>(&mut g), params: name_param },
        Route { method: "post", path: "/v1/bots/{name}/invoke", summary: "Run a bot and wait for the result (200), or answer 202 when it still runs at the timeout", request: Some(schema_ref::<InvokeBody>(&mut g)), ok_status: "200", response: schema_ref::<InvokeAnswer>(&mut g), params: &[("name", "path", "Bot name"), ("timeout", "query", "How long to wait, e.g. 5s; default api.timeout")] },
        Route { method: "get", path: "/v1/queues", summary: "Depth, running, scheduled, dead, oldest age and capacity per queue", request: None, ok_status: "200", response: schema_ref::<QueueList>(&mut g), params: &[] },
        Route { method: "get", path: "/v1/cluster/nodes", summary: "Every registered process (serve, api-server, scheduler, worker) with its status, queues and leadership", request: None, ok_status: "200", response: schema_ref::<NodeList>(&mut g), params: &[] },
        Route { method: "post", path: "/hooks/{path}", summary: "A bot's webhook or chat-platform trigger (Slack, Telegram, Feishu/Lark, DingTalk, WeCom: checked the platform's way, answered 200 at once). Webhooks: authenticated by their X-Oclaw-Signature (HMAC-SHA256 over \"<t>.<body>\", 5-minute window) or bearer token; 202 with the task id, or 200 with the bot's output for sync webhooks", request: Some(any.clone()), ok_status: "202", response: any.clone(), params: &[("path", "path", "The webhook's path after /hooks/, as the bot declares it")] },
        Route { method: "get", path: "/hooks/{path}", summary: "URL verification of a chat-platform trigger that uses GET (WeCom's echostr); other webhooks answer 405", request: None, ok_status: "200", response: any.clone(), params: &[("path", "path", "The trigger's path after /hooks/")] },
        Route { method: "get", path: "/v1/ws", summary: "WebSocket chat session with a bot that has a websocket trigger (upgrade; frames: message, ping in; session, ack, reply, error, pong out)", request: None, ok_status: "101", response: any.clone(), params: &[("bot", "query", "Bot name"), ("session", "query", "Resume this session (its conversation and history)"), ("user", "query", "User name carried into the tasks")] },
        Route { method: "get", path: "/healthz", summary: "Liveness", request: None, ok_status: "200", response: schema_ref::<crate::routes::health::Health>(&mut g), params: &[] },
        Route { method: "get", path: "/readyz", summary: "Readiness: 503 OC-4001 when the store does not answer", request: None, ok_status: "200", response: schema_ref::<crate::routes::health::Ready>(&mut g), params: &[] },
        Route { method: "get", path: "/metrics", summary: "Prometheus metrics (text format)", request: None, ok_status: "200", response: json!({"type": "string"}), params: &[] },
    ];
    let error = schema_ref::<ErrorBody>(&mut g);
    let mut paths = Map::new();
    for r in routes {
        let content = if r.ok_status == "204" {
            Value::Null
        } else if r.path == "/metrics" {
            json!({"text/plain; version=0.0.4; charset=utf-8": {"schema": r.response}})
        } else {
            json!({"application/json": {"schema": r.response}})
        };
        let success = if content.is_null() {
            json!({"description": "success (no content)"})
        } else {
            json!({"description": "success", "content": content})
        };
        let mut op = json!({
            "summary": r.summary,
            "responses": {r.ok_status: success},
        });
        let statuses = error_statuses(
            r.method,
            r.path,
            r.request.is_some(),
            r.params.iter().any(|(_, at, _)| *at == "path"),
        );
        for status in statuses {
            let mut answer = json!({"description": "error (see the OC-xxxx code)", "content": {"application/json": {"schema": error.clone()}}});
            if status == 429 {
                answer["headers"] = json!({"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}});
            }
            op["responses"][status.to_string()] = answer;
        }
        // Other successes: an idempotent replay answers 200 with the task it made before; an
        // invoke still running at its timeout answers 202 with the task as it is.
        match (r.method, r.path) {
            ("post", "/v1/tasks") => {
                op["responses"]["200"] = json!({"description": "an idempotent replay: the task made before", "content": {"application/json": {"schema": op["responses"]["202"]["content"]["application/json"]["schema"].clone()}}})
            }
            ("post", "/v1/bots/{name}/invoke") => {
                op["responses"]["202"] = json!({"description": "still running at the timeout", "content": {"application/json": {"schema": op["responses"]["200"]["content"]["application/json"]["schema"].clone()}}});
                // With `Accept: text/event-stream`: `delta` events, then one `result` event.
                op["responses"]["200"]["content"]["text/event-stream"] = json!({
                    "schema": {"type": "string", "description": "Server-Sent Events: `event: delta` with `{\"text\"}` for each piece of a model's answer as it is generated, then `event: result` with the JSON answer"},
                });
            }
            _ => {}
        }
        if let Some(body) = r.request {
            // invoke takes an empty body as `{}` (no input).
            let required = r.path != "/v1/bots/{name}/invoke";
            op["requestBody"] =
                json!({"required": required, "content": {"application/json": {"schema": body}}});
        }
        if !r.params.is_empty() {
            op["parameters"] = Value::Array(
                r.params
                    .iter()
                    .map(|(name, at, desc)| {
                        let mut p = json!({"name": name, "in": at, "required": *at == "path" || (r.path == "/v1/kb/{name}/search" && *name == "q"), "description": desc});
                        if *name == "filter" {
                            // A JSON object of metadata equalities, sent as JSON text.
                            p["content"] = json!({"application/json": {"schema": {"type": "object", "propertyNames": {"pattern": "^[\\w-]+$"}, "additionalProperties": {"type": ["string", "number", "boolean", "null"]}}}});
                        } else {
                            p["schema"] = param_schema(name, at, r.path);
                        }
                        p
                    })
                    .collect(),
            );
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method] = op;
    }
    let schemas = Value::Object(g.take_definitions(true));
    json!({
        "openapi": "3.1.0",
        "info": {"title": "OpenClaw API", "version": env!("CARGO_PKG_VERSION"), "description": "Tasks, bots and queues of an OpenClaw node."},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_reference_resolves() {
        let doc = super::document();
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "dangling $ref {name}"
            );
        }
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/v1/tasks"]["post"]["requestBody"].is_object());
        assert!(
            doc["components"]["schemas"]["SubmitTask"]["properties"]["idempotency_key"].is_object()
        );
        // Each route lists the statuses it can answer; no catch-all.
        let submit = &doc["paths"]["/v1/tasks"]["post"]["responses"];
        for status in [
            "200", "202", "400", "401", "404", "409", "413", "429", "500", "503",
        ] {
            assert!(submit.get(status).is_some(), "POST /v1/tasks {status}");
        }
        assert!(submit["429"]["headers"]["Retry-After"].is_object());
        assert!(submit.get("default").is_none());
        let health = &doc["paths"]["/healthz"]["get"]["responses"];
        assert!(
            health.get("401").is_none() && health.get("503").is_none(),
            "{health}"
        );
        let cancel = &doc["paths"]["/v1/tasks/{id}/cancel"]["post"]["responses"];
        assert!(cancel.get("409").is_some() && cancel.get("404").is_some());
    }
}

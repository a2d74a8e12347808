//! The API's error answer: `{"error": {"code", "message", "details"}, "trace_id"}` with the HTTP
//! status of its `OC-xxxx` code.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use oclaw_core::ErrorCode;
use oclaw_store::StoreError;
use serde_json::{json, Value};

/// An API error: `{"error": {"code", "message", "details"}, "trace_id"}` with the code's status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} {message}", code.code())]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Box<Value>,
    pub trace_id: Option<String>,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            details: Box::new(json!({})),
            trace_id: None,
            retry_after_secs: None,
        }
    }
    pub fn details(mut self, details: Value) -> ApiError {
        self.details = Box::new(details);
        self
    }
    pub fn trace(mut self, trace_id: &str) -> ApiError {
        self.trace_id = Some(trace_id.to_string());
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let mut err = ApiError::new(e.code(), e.to_string());
        match &e {
            StoreError::QueueFull { queue, capacity } => {
                err.retry_after_secs = Some(1);
                err.details = Box::new(json!({"queue": queue, "capacity": capacity}));
            }
            StoreError::Conflict { id, status, .. } => {
                err.details = Box::new(json!({"task_id": id, "status": status}))
            }
            StoreError::NotFound(id) => err.details = Box::new(json!({"task_id": id})),
            StoreError::WaitNotFound(id) | StoreError::WaitNotPending { id, .. } => {
                err.details = Box::new(json!({"approval": id}))
            }
            _ => {}
        }
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(
                component = "api-server",
                error_code = self.code.code(),
                trace_id = self.trace_id.as_deref().unwrap_or(""),
                "{}",
                self.message
            );
        }
        let body = json!({
            "error": {"code": self.code.code(), "message": self.message, "details": self.details},
            "trace_id": self.trace_id,
        });
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
        }
        resp
    }
}

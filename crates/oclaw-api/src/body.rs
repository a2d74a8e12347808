//! Request body decoding with the API's error codes: not JSON → OC-2001, wrong shape → OC-2002,
//! too large → OC-2007.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use oclaw_core::ErrorCode;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::ApiError;

pub fn decode<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    trace_id: &str,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|rej| {
        if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::BodyTooLarge,
                "request body is larger than api.max_body_bytes",
            )
            .trace(trace_id)
        } else {
            ApiError::new(
                ErrorCode::MalformedBody,
                format!("could not read the request body: {rej}"),
            )
            .trace(trace_id)
        }
    })?;
    // Every body is a JSON object (serde would also take a struct written as an array).
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => {}
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() => {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "the request body must be a JSON object",
            )
            .trace(trace_id));
        }
        Some(_) => {}
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => ErrorCode::InvalidField,
            _ => ErrorCode::MalformedBody,
        };
        let what = if code == ErrorCode::MalformedBody {
            "request body is not valid JSON"
        } else {
            "request body has an invalid field"
        };
        ApiError::new(code, format!("{what}: {e}"))
            .details(json!({"line": e.line(), "column": e.column()}))
            .trace(trace_id)
    })
}

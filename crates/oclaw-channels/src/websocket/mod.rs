//! The WebSocket channel's protocol: chat sessions at `GET /v1/ws?bot=NAME[&session=ID]`. Client
//! frames are JSON text: `{"type": "message", "text": "...", "data": {...}, "id": "..."}` and
//! `{"type": "ping"}`; the server answers `session` (first), `ack` (the message is a durable
//! task), `reply`, `error` and `pong`. Each message becomes a task whose ordering key is the
//! session, so replies come in message order. The api-server's route (`oclaw_api`'s `ws`) holds
//! the socket: its bounded outbox, heartbeats and the limit of messages waiting for replies.

use oclaw_core::ErrorCode;
use serde_json::{json, Value};

/// The `channel` label of the WebSocket channel's metrics and the inbound messages' channel.
pub const CHANNEL: &str = "websocket";

/// A session id a client may choose: 1-128 letters, digits, `-`, `_`, `.` or `:`.
pub fn valid_session_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
}

/// A frame a client sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Ping {
        id: Value,
    },
    /// A message for the bot: `text`, `data`, or both.
    Message {
        id: Value,
        text: Option<String>,
        data: Value,
    },
}

/// A frame the server cannot take: answered with an `error` frame (`OC-2014`), the session
/// goes on.
#[derive(Debug, Clone, PartialEq)]
pub struct BadFrame {
    pub message: String,
    /// The frame's `id`, when it had one to echo.
    pub id: Option<Value>,
}

fn bad(message: impl Into<String>, id: Option<&Value>) -> BadFrame {
    BadFrame {
        message: message.into(),
        id: id.cloned(),
    }
}

/// Reads one text frame.
pub fn parse_frame(text: &str) -> Result<ClientFrame, BadFrame> {
    let frame: Value = match serde_json::from_str(text) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return Err(bad("a frame is a JSON object with a `type`", None)),
        Err(e) => return Err(bad(format!("frame is not valid JSON: {e}"), None)),
    };
    let id = frame.get("id").cloned().unwrap_or(Value::Null);
    match frame.get("type").and_then(Value::as_str) {
        Some("ping") => return Ok(ClientFrame::Ping { id }),
        Some("message") => {}
        other => {
            return Err(bad(
                format!("unknown frame type {other:?}; send `message` or `ping`"),
                Some(&id),
            ))
        }
    }
    let text = match frame.get("text") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("`text` must be a string", Some(&id))),
    };
    let data = frame.get("data").cloned().unwrap_or(Value::Null);
    if text.is_none() && data.is_null() {
        return Err(bad("a message has `text` or `data`", Some(&id)));
    }
    Ok(ClientFrame::Message { id, text, data })
}

/// An `error` frame; `extra` (an object) adds fields such as `id` and `task_id`.
pub fn error_frame(code: &str, message: &str, extra: Value) -> Value {
    let mut frame = json!({"type": "error", "error": {"code": code, "message": message}});
    if let (Value::Object(f), Value::Object(e)) = (&mut frame, extra) {
        f.extend(e);
    }
    frame
}

/// The `error` frame for a frame the server could not take.
pub fn bad_frame(b: &BadFrame) -> Value {
    let extra = match &b.id {
        Some(id) => json!({ "id": id }),
        None => json!({}),
    };
    error_frame(ErrorCode::MalformedFrame.code(), &b.message, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_or_refused_with_their_id() {
        assert_eq!(
            parse_frame(r#"{"type": "ping", "id": 7}"#),
            Ok(ClientFrame::Ping { id: json!(7) })
        );
        assert_eq!(
            parse_frame(r#"{"type": "message", "text": "hi", "id": "a"}"#),
            Ok(ClientFrame::Message {
                id: json!("a"),
                text: Some("hi".into()),
                data: Value::Null
            })
        );
        let no_body = parse_frame(r#"{"type": "message", "id": "b"}"#).unwrap_err();
        assert_eq!(no_body.id, Some(json!("b")));
        assert_eq!(
            bad_frame(&no_body),
            json!({"type": "error", "id": "b", "error": {"code": "OC-2014", "message": "a message has `text` or `data`"}})
        );
        assert!(parse_frame("[1]").unwrap_err().id.is_none());
        assert!(parse_frame("{")
            .unwrap_err()
            .message
            .contains("not valid JSON"));
        assert!(parse_frame(r#"{"type": "message", "text": 3}"#).is_err());
        assert!(parse_frame(r#"{"type": "shout"}"#)
            .unwrap_err()
            .message
            .contains("unknown frame type"));
    }

    #[test]
    fn session_ids_are_short_and_plain() {
        assert!(valid_session_id("ws-abc_1.2:3"));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("a b"));
        assert!(!valid_session_id(&"x".repeat(129)));
    }
}

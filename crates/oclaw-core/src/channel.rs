//! What channels share: the shape of a channel task's input and how a bot's output becomes the
//! reply carried back to where the message came from.

use serde_json::{json, Value};

/// A channel task's input: `{channel, text, data, conversation, user}`.
pub fn channel_input(
    channel: &str,
    text: Option<&str>,
    data: Value,
    conversation: Option<&str>,
    user: Option<&str>,
) -> Value {
    json!({
        "channel": channel,
        "text": text,
        "data": data,
        "conversation": conversation,
        "user": user,
    })
}

/// The reply a bot's output stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The text to send: the output itself when it is a string, else its `text` field.
    pub text: Option<String>,
    /// The whole output.
    pub data: Value,
}

/// The reply for a bot's output: a string is the reply text; an object's `text` field is;
/// anything else is sent as data only.
pub fn reply_of(output: &Value) -> Reply {
    let text = match output {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => m.get("text").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    Reply {
        text,
        data: output.clone(),
    }
}

/// The conversation a channel task belongs to: `(channel, conversation, user)` from its input,
/// when it has a channel and a conversation.
pub fn session_of(input: &Value) -> Option<(String, String, Option<String>)> {
    // Exactly the shape channels give their tasks, so an input that merely mentions a channel
    // (a hand-off record, say) is not mistaken for a message of the conversation.
    let map = input.as_object()?;
    if map.len() != 5
        || !["text", "data", "user"]
            .iter()
            .all(|k| map.contains_key(*k))
    {
        return None;
    }
    let channel = input.get("channel")?.as_str()?;
    let conversation = match input.get("conversation")? {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let user = match input.get("user") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Some((channel.to_string(), conversation, user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_sessions() {
        assert_eq!(reply_of(&json!("hi")).text.as_deref(), Some("hi"));
        let r = reply_of(&json!({"text": "hello", "handoff": true}));
        assert_eq!(r.text.as_deref(), Some("hello"));
        assert_eq!(r.data["handoff"], true);
        assert_eq!(reply_of(&json!([1, 2])).text, None);
        let input = channel_input("websocket", Some("q"), json!({}), Some("s1"), Some("u"));
        assert_eq!(
            session_of(&input),
            Some(("websocket".into(), "s1".into(), Some("u".into())))
        );
        assert_eq!(
            session_of(&channel_input("mqtt", None, json!(1), None, None)),
            None
        );
        assert_eq!(session_of(&json!({"n": 1})), None);
        assert_eq!(
            session_of(&json!({"channel": "websocket", "conversation": "s1", "question": "q"})),
            None
        );
    }
}

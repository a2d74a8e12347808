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

/// The conversation a channel task came from, as one key (`<channel>:<conversation>`): an
/// approval such a task waits for can be answered from the same conversation.
pub fn conversation_key(input: &Value) -> Option<String> {
    let channel = input.get("channel")?.as_str()?;
    let conversation = input.get("conversation")?.as_str()?;
    Some(format!("{channel}:{conversation}"))
}

/// A chat message read as an answer to an approval: `approve`/`yes`/`ok` or `reject`/`no` as
/// its first word (any case, trailing punctuation ignored), the rest as the comment.
pub fn decision_of(text: &str) -> Option<(bool, Option<String>)> {
    let text = text.trim();
    let (first, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let word = first.trim_end_matches(['.', '!', ',', ':']).to_lowercase();
    let approve = match word.as_str() {
        "approve" | "approved" | "yes" | "ok" => true,
        "reject" | "rejected" | "no" => false,
        _ => return None,
    };
    let rest = rest.trim();
    Some((approve, (!rest.is_empty()).then(|| rest.to_string())))
}

/// The built-in bot that delivers replies to chat platforms. Its name has a dot, which no
/// user bot's name may have, so it can never be shadowed.
pub const REPLY_BOT: &str = "oclaw.reply";

/// Attempts of a reply delivery before it is dead-lettered (with backoff from 1 s to 5 min,
/// about half an hour in all).
pub const REPLY_ATTEMPTS: u32 = 10;

/// The input of the delivery task that follows a successful channel task of `bot` whose input
/// carries `reply_to` (where the platform wants the reply): `{reply_to, text, bot, task_id}`,
/// or `None` when the task wants no delivery (a delivery task itself never does).
pub fn reply_delivery(bot: &str, task_id: &str, input: &Value, output: &Value) -> Option<Value> {
    // A message held for a person (the conversation was taken over) has no reply of the bot's.
    if bot == REPLY_BOT || output.get("held") == Some(&Value::Bool(true)) {
        return None;
    }
    let reply_to = input.get("reply_to").filter(|v| v.is_object())?;
    let text = if reply_to.get("hook").is_some() {
        // A chat message: the reply's text, or the whole output as JSON.
        reply_of(output).text.unwrap_or_else(|| output.to_string())
    } else {
        // A broker message: a string output as is, anything else as JSON.
        match output {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    };
    Some(json!({"reply_to": reply_to, "text": text, "bot": bot, "task_id": task_id}))
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
    let fields = 5 + usize::from(map.contains_key("reply_to"));
    if map.len() != fields
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
        // A platform message carries where its reply goes, and is still a session's message.
        let mut platform = channel_input("slack", Some("q"), json!({}), Some("C1"), Some("U1"));
        platform["reply_to"] = json!({"hook": "/hooks/slack", "to": {"channel": "C1"}});
        assert_eq!(
            session_of(&platform),
            Some(("slack".into(), "C1".into(), Some("U1".into())))
        );
        let delivery = reply_delivery("b", "7", &platform, &json!({"text": "hi", "x": 1}));
        assert_eq!(
            delivery,
            Some(
                json!({"reply_to": platform["reply_to"], "text": "hi", "bot": "b", "task_id": "7"})
            )
        );
        assert_eq!(
            reply_delivery("b", "7", &platform, &json!([1])).map(|d| d["text"].clone()),
            Some(json!("[1]"))
        );
        assert_eq!(reply_delivery("b", "7", &input, &json!("hi")), None);
        // A broker reply carries the whole output (as JSON unless it is text).
        let mut mqtt = input.clone();
        mqtt["reply_to"] = json!({"mqtt": {"topic": "t/reply"}});
        let out = json!({"text": "hi", "alert": true});
        assert_eq!(
            reply_delivery("b", "7", &mqtt, &out).unwrap()["text"],
            json!(out.to_string())
        );
        assert_eq!(
            reply_delivery("b", "7", &mqtt, &json!("plain")).unwrap()["text"],
            "plain"
        );
        // A delivery's own success is not delivered again.
        assert_eq!(
            reply_delivery(
                REPLY_BOT,
                "8",
                &delivery.unwrap(),
                &json!({"delivered": true})
            ),
            None
        );
        assert_eq!(
            session_of(&json!({"channel": "websocket", "conversation": "s1", "question": "q"})),
            None
        );
    }
}

#[cfg(test)]
mod decision_tests {
    #[test]
    fn a_reply_reads_as_a_decision_only_when_it_starts_with_one() {
        assert_eq!(
            super::decision_of("Approve! looks fine"),
            Some((true, Some("looks fine".into())))
        );
        assert_eq!(super::decision_of("no"), Some((false, None)));
        assert_eq!(super::decision_of("not sure, what is it?"), None);
        assert_eq!(super::decision_of(""), None);
    }
}

//! Slack Events API. Requests carry `X-Slack-Request-Timestamp` and
//! `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:<timestamp>:<raw body>")>`;
//! older than 5 minutes is a replay. `url_verification` is answered with its challenge;
//! `event_callback` events of type `message` and `app_mention` become messages (the bot's own
//! and edited messages are ignored); Slack's retries carry the same `event_id`, which keys the
//! task. Replies: `POST {api_base}/api/chat.postMessage` with the bot token.

use oclaw_bots::triggers::platform::SlackSettings;
use serde_json::{json, Value};

use super::{
    fresh, hex, hmac_sha256, json_body, malformed, secret, unauthorized, Ingress, Refusal, Request,
};
use crate::Inbound;

/// The `X-Slack-Signature` value for a body.
pub fn signature(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(
        signing_secret.as_bytes(),
        &[b"v0:", timestamp.as_bytes(), b":", body],
    );
    format!("v0={}", hex(&mac))
}

pub fn ingress(s: &SlackSettings, req: &Request<'_>) -> Result<Ingress, Refusal> {
    let ts = req
        .header("x-slack-request-timestamp")
        .ok_or_else(|| unauthorized("missing X-Slack-Request-Timestamp"))?;
    let t: i64 = ts
        .parse()
        .map_err(|_| unauthorized("X-Slack-Request-Timestamp is not a number"))?;
    if !fresh(t, req.now, 300) {
        return Err(unauthorized(
            "request timestamp is outside the 5-minute window (replay?)",
        ));
    }
    let given = req
        .header("x-slack-signature")
        .ok_or_else(|| unauthorized("missing X-Slack-Signature"))?;
    let expected = signature(&secret(&s.signing_secret, "signing_secret")?, ts, req.body);
    if !crate::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(unauthorized("X-Slack-Signature does not match"));
    }
    let v = json_body(req.body)?;
    match v["type"].as_str() {
        Some("url_verification") => {
            let challenge = v["challenge"]
                .as_str()
                .ok_or_else(|| malformed("url_verification without challenge"))?;
            Ok(Ingress::Answer {
                content_type: "application/json",
                body: json!({ "challenge": challenge }).to_string().into_bytes(),
            })
        }
        Some("event_callback") => {
            let e = &v["event"];
            let kind = e["type"].as_str().unwrap_or("");
            if !matches!(kind, "message" | "app_mention") {
                return Ok(Ingress::Ignore(format!("event type `{kind}`")));
            }
            if e.get("bot_id").is_some() || e.get("subtype").is_some() {
                return Ok(Ingress::Ignore("a bot's message or an edit".into()));
            }
            let channel = e["channel"]
                .as_str()
                .ok_or_else(|| malformed("event has no channel"))?;
            let mut m = Inbound::new("slack");
            m.conversation = Some(channel.to_string());
            m.user = e["user"].as_str().map(str::to_string);
            m.text = e["text"].as_str().map(str::to_string);
            m.data = v.clone();
            m.idempotency_key = v["event_id"].as_str().map(|id| format!("slack:{id}"));
            let thread = e.get("thread_ts").cloned().unwrap_or(Value::Null);
            Ok(Ingress::Message {
                inbound: Box::new(m),
                reply_to: json!({"channel": channel, "thread_ts": thread}),
            })
        }
        other => Ok(Ingress::Ignore(format!("payload type {other:?}"))),
    }
}

pub async fn send(s: &SlackSettings, to: &Value, text: &str) -> Result<(), String> {
    let token = crate::resolve_secret(&s.bot_token)?;
    let mut body = json!({"channel": to["channel"], "text": text});
    if !to["thread_ts"].is_null() {
        body["thread_ts"] = to["thread_ts"].clone();
    }
    let url = format!("{}/api/chat.postMessage", s.api_base.trim_end_matches('/'));
    let v = super::post_json(&url, Some(&token), &body).await?;
    if v["ok"] == true {
        Ok(())
    } else {
        Err(format!(
            "chat.postMessage: {}",
            v["error"].as_str().unwrap_or("not ok")
        ))
    }
}

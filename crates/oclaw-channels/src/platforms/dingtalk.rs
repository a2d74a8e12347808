//! DingTalk robot callbacks (the "outgoing" robot of an internal app). Requests carry
//! `timestamp` (milliseconds) and `sign` = base64 HMAC-SHA256(app secret,
//! "<timestamp>\n<app secret>"); a timestamp more than an hour away is refused, as DingTalk
//! documents. Text messages become messages (the conversation is `conversationId`); `msgId`
//! keys the task. Replies go to the message's `sessionWebhook`, which must lie under
//! `api_base` (so a forged body cannot send the node elsewhere).

use oclaw_bots::triggers::platform::DingTalkSettings;
use serde_json::{json, Value};

use super::{
    b64_encode, hmac_sha256, json_body, malformed, secret, unauthorized, Ingress, Refusal, Request,
};
use crate::Inbound;

/// The `sign` header for a timestamp (milliseconds).
pub fn sign(app_secret: &str, timestamp_ms: &str) -> String {
    let mac = hmac_sha256(
        app_secret.as_bytes(),
        &[timestamp_ms.as_bytes(), b"\n", app_secret.as_bytes()],
    );
    b64_encode(&mac)
}

pub fn ingress(s: &DingTalkSettings, req: &Request<'_>) -> Result<Ingress, Refusal> {
    let ts = req
        .header("timestamp")
        .ok_or_else(|| unauthorized("missing timestamp header"))?;
    let given = req
        .header("sign")
        .ok_or_else(|| unauthorized("missing sign header"))?;
    let t: i64 = ts
        .parse()
        .map_err(|_| unauthorized("timestamp is not a number"))?;
    if (req.now * 1000 - t).abs() > 3_600_000 {
        return Err(unauthorized(
            "timestamp is more than an hour away (replay?)",
        ));
    }
    let expected = sign(&secret(&s.app_secret, "app_secret")?, ts);
    if !crate::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(unauthorized("sign does not match"));
    }
    let v = json_body(req.body)?;
    if v["msgtype"] != "text" {
        return Ok(Ingress::Ignore(format!("msgtype {}", v["msgtype"])));
    }
    let conversation = v["conversationId"]
        .as_str()
        .ok_or_else(|| malformed("message has no conversationId"))?;
    let mut m = Inbound::new("dingtalk");
    m.conversation = Some(conversation.to_string());
    m.user = v["senderStaffId"]
        .as_str()
        .or(v["senderId"].as_str())
        .map(str::to_string);
    m.text = v["text"]["content"].as_str().map(|t| t.trim().to_string());
    m.data = v.clone();
    m.idempotency_key = v["msgId"].as_str().map(|id| format!("dingtalk:{id}"));
    Ok(Ingress::Message {
        inbound: Box::new(m),
        reply_to: json!({"session_webhook": v["sessionWebhook"]}),
    })
}

pub async fn send(s: &DingTalkSettings, to: &Value, text: &str) -> Result<(), String> {
    let hook = to["session_webhook"]
        .as_str()
        .ok_or("the message had no sessionWebhook")?;
    let base = format!("{}/", s.api_base.trim_end_matches('/'));
    if !hook.starts_with(&base) {
        return Err(format!(
            "sessionWebhook is not under api_base {base}; not sent"
        ));
    }
    let v = super::post_json(
        hook,
        None,
        &json!({"msgtype": "text", "text": {"content": text}}),
    )
    .await?;
    if v["errcode"] == 0 {
        Ok(())
    } else {
        Err(format!(
            "session webhook: {}",
            v["errmsg"].as_str().unwrap_or("refused")
        ))
    }
}

//! Feishu/Lark event subscriptions. With an Encrypt Key the body is `{"encrypt": "<base64>"}`:
//! AES-256-CBC with key SHA-256(encrypt key), the IV the first 16 bytes, PKCS#7 padding; and
//! requests are signed: `X-Lark-Signature` = hex SHA-256(timestamp + nonce + encrypt key +
//! raw body) over `X-Lark-Request-Timestamp` / `X-Lark-Request-Nonce` (5-minute window). The
//! verification token is in `token` (v1, URL verification) or `header.token` (v2 events).
//! `url_verification` is answered with its challenge; `im.message.receive_v1` text messages
//! become messages (the conversation is the chat); `event_id` keys the task. Replies:
//! tenant token from `/open-apis/auth/v3/tenant_access_token/internal` (cached until it
//! expires), then `POST /open-apis/im/v1/messages?receive_id_type=chat_id`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oclaw_bots::triggers::platform::FeishuSettings;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    aes256_cbc_decrypt, b64, fresh, hex, malformed, secret, unauthorized, unpad, Ingress, Refusal,
    Request,
};
use crate::Inbound;

/// `X-Lark-Signature` for a request.
pub fn signature(timestamp: &str, nonce: &str, encrypt_key: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(timestamp.as_bytes());
    h.update(nonce.as_bytes());
    h.update(encrypt_key.as_bytes());
    h.update(body);
    hex(&h.finalize())
}

/// Decrypts an `encrypt` field.
pub fn decrypt(encrypt_key: &str, encrypted: &str) -> Result<Vec<u8>, String> {
    let data = b64(encrypted)?;
    if data.len() < 32 {
        return Err("encrypted payload too short".into());
    }
    let key = Sha256::digest(encrypt_key.as_bytes());
    let plain = aes256_cbc_decrypt(&key, &data[..16], &data[16..])?;
    unpad(plain, 16)
}

pub fn ingress(s: &FeishuSettings, req: &Request<'_>) -> Result<Ingress, Refusal> {
    let raw: Value = serde_json::from_slice(req.body)
        .map_err(|e| malformed(format!("body is not JSON: {e}")))?;
    let encrypt_key = match &s.encrypt_key {
        Some(k) => Some(secret(k, "encrypt_key")?),
        None => None,
    };
    let signed = req.header("x-lark-signature");
    if let (Some(key), Some(sig)) = (&encrypt_key, signed) {
        let ts = req
            .header("x-lark-request-timestamp")
            .ok_or_else(|| unauthorized("missing X-Lark-Request-Timestamp"))?;
        let nonce = req
            .header("x-lark-request-nonce")
            .ok_or_else(|| unauthorized("missing X-Lark-Request-Nonce"))?;
        let t: i64 = ts
            .parse()
            .map_err(|_| unauthorized("X-Lark-Request-Timestamp is not a number"))?;
        if !fresh(t, req.now, 300) {
            return Err(unauthorized(
                "request timestamp is outside the 5-minute window (replay?)",
            ));
        }
        let expected = signature(ts, nonce, key, req.body);
        if !crate::constant_time_eq(sig.as_bytes(), expected.as_bytes()) {
            return Err(unauthorized("X-Lark-Signature does not match"));
        }
    }
    let v: Value = match (raw.get("encrypt").and_then(Value::as_str), &encrypt_key) {
        (Some(enc), Some(key)) => {
            let plain = decrypt(key, enc)
                .map_err(|e| unauthorized(format!("cannot decrypt the event: {e}")))?;
            serde_json::from_slice(&plain)
                .map_err(|e| malformed(format!("decrypted event is not JSON: {e}")))?
        }
        (Some(_), None) => {
            return Err(malformed(
                "the event is encrypted but the trigger has no encrypt_key",
            ))
        }
        (None, _) => raw,
    };
    let token = v["header"]["token"]
        .as_str()
        .or(v["token"].as_str())
        .unwrap_or("");
    let expected = secret(&s.verification_token, "verification_token")?;
    if !crate::constant_time_eq(token.as_bytes(), expected.as_bytes()) {
        return Err(unauthorized("verification token does not match"));
    }
    if v["type"] == "url_verification" {
        return Ok(Ingress::Answer {
            content_type: "application/json",
            body: json!({"challenge": v["challenge"]})
                .to_string()
                .into_bytes(),
        });
    }
    // Past URL verification, an app with an Encrypt Key signs every request.
    if encrypt_key.is_some() && signed.is_none() {
        return Err(unauthorized("missing X-Lark-Signature"));
    }
    let event_type = v["header"]["event_type"].as_str().unwrap_or("");
    if event_type != "im.message.receive_v1" {
        return Ok(Ingress::Ignore(format!("event type `{event_type}`")));
    }
    let msg = &v["event"]["message"];
    if msg["message_type"] != "text" {
        return Ok(Ingress::Ignore("a message that is not text".into()));
    }
    let chat = msg["chat_id"]
        .as_str()
        .ok_or_else(|| malformed("message has no chat_id"))?;
    let content: Value = msg["content"]
        .as_str()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or(Value::Null);
    let mut m = Inbound::new("feishu");
    m.conversation = Some(chat.to_string());
    m.user = v["event"]["sender"]["sender_id"]["open_id"]
        .as_str()
        .map(str::to_string);
    m.text = content["text"].as_str().map(str::to_string);
    m.data = v.clone();
    m.idempotency_key = v["header"]["event_id"]
        .as_str()
        .map(|id| format!("feishu:{id}"));
    Ok(Ingress::Message {
        inbound: Box::new(m),
        reply_to: json!({"chat_id": chat}),
    })
}

/// Tenant tokens by (api_base, app_id), until they expire.
fn tokens() -> &'static Mutex<HashMap<String, (String, Instant)>> {
    static T: std::sync::OnceLock<Mutex<HashMap<String, (String, Instant)>>> =
        std::sync::OnceLock::new();
    T.get_or_init(Default::default)
}

async fn tenant_token(s: &FeishuSettings) -> Result<String, String> {
    let base = s.api_base.trim_end_matches('/');
    let app_id = crate::resolve_secret(&s.app_id)?;
    let cache_key = format!("{base}|{app_id}");
    if let Some((t, until)) = tokens()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&cache_key)
    {
        if Instant::now() < *until {
            return Ok(t.clone());
        }
    }
    let v = super::post_json(
        &format!("{base}/open-apis/auth/v3/tenant_access_token/internal"),
        None,
        &json!({"app_id": app_id, "app_secret": crate::resolve_secret(&s.app_secret)?}),
    )
    .await?;
    if v["code"] != 0 {
        return Err(format!(
            "tenant_access_token: {}",
            v["msg"].as_str().unwrap_or("refused")
        ));
    }
    let token = v["tenant_access_token"]
        .as_str()
        .ok_or("tenant_access_token missing")?
        .to_string();
    let life = v["expire"].as_u64().unwrap_or(7200).saturating_sub(300);
    tokens().lock().unwrap_or_else(|p| p.into_inner()).insert(
        cache_key,
        (token.clone(), Instant::now() + Duration::from_secs(life)),
    );
    Ok(token)
}

pub async fn send(s: &FeishuSettings, to: &Value, text: &str) -> Result<(), String> {
    let token = tenant_token(s).await?;
    let url = format!(
        "{}/open-apis/im/v1/messages?receive_id_type=chat_id",
        s.api_base.trim_end_matches('/')
    );
    let body = json!({
        "receive_id": to["chat_id"],
        "msg_type": "text",
        "content": json!({"text": text}).to_string(),
    });
    let v = super::post_json(&url, Some(&token), &body).await?;
    if v["code"] == 0 {
        Ok(())
    } else {
        Err(format!(
            "im/v1/messages: {}",
            v["msg"].as_str().unwrap_or("refused")
        ))
    }
}

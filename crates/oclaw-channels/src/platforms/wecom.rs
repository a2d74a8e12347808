//! WeCom (WeChat Work) callbacks, for group robots and apps. Every request carries
//! `msg_signature`, `timestamp` and `nonce` in the query: the signature is the hex SHA-1 of
//! token, timestamp, nonce and the encrypted message, sorted and joined. Messages are
//! AES-256-CBC encrypted with the key base64(EncodingAESKey + "="), the IV its first 16 bytes,
//! PKCS#7 padding to 32-byte blocks; the plaintext is 16 random bytes, a 4-byte big-endian
//! length, the message, and the receiver id. `GET` (URL verification) answers the decrypted
//! `echostr`; `POST` bodies are XML (`<Encrypt>`, apps) or JSON (`{"encrypt"}`, robots), and so
//! are the messages inside. Text messages become messages; `MsgId`/`msgid` keys the task.
//! Replies go through the group robot webhook (`webhook_key`).

use oclaw_bots::triggers::platform::WeComSettings;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use super::{
    aes256_cbc_decrypt, b64, fresh, hex, malformed, secret, unauthorized, unpad, Ingress, Refusal,
    Request,
};
use crate::Inbound;

/// `msg_signature` for an encrypted message.
pub fn signature(token: &str, timestamp: &str, nonce: &str, encrypted: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypted];
    parts.sort_unstable();
    hex(&Sha1::digest(parts.concat().as_bytes()))
}

/// Decrypts a message; answers (message, receiver id).
pub fn decrypt(encoding_aes_key: &str, encrypted: &str) -> Result<(Vec<u8>, String), String> {
    let key = b64(&format!("{encoding_aes_key}="))?;
    if key.len() != 32 {
        return Err("EncodingAESKey does not decode to 32 bytes".into());
    }
    let plain = unpad(aes256_cbc_decrypt(&key, &key[..16], &b64(encrypted)?)?, 32)?;
    if plain.len() < 20 {
        return Err("decrypted message too short".into());
    }
    let len = u32::from_be_bytes([plain[16], plain[17], plain[18], plain[19]]) as usize;
    let msg = plain
        .get(20..20 + len)
        .ok_or("decrypted length is wrong")?
        .to_vec();
    let receiver = String::from_utf8_lossy(&plain[20 + len..]).to_string();
    Ok((msg, receiver))
}

/// The text of `<tag>` in a flat XML message (CDATA or plain).
pub fn xml_tag(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    let inner = xml[start..end].trim();
    Some(
        inner
            .strip_prefix("<![CDATA[")
            .and_then(|s| s.strip_suffix("]]>"))
            .unwrap_or(inner)
            .to_string(),
    )
}

fn verified(s: &WeComSettings, req: &Request<'_>, encrypted: &str) -> Result<Vec<u8>, Refusal> {
    let q = |k: &str| req.query.get(k).map(String::as_str);
    let sig = q("msg_signature").ok_or_else(|| unauthorized("missing msg_signature"))?;
    let ts = q("timestamp").ok_or_else(|| unauthorized("missing timestamp"))?;
    let nonce = q("nonce").ok_or_else(|| unauthorized("missing nonce"))?;
    let t: i64 = ts
        .parse()
        .map_err(|_| unauthorized("timestamp is not a number"))?;
    if !fresh(t, req.now, 300) {
        return Err(unauthorized(
            "timestamp is outside the 5-minute window (replay?)",
        ));
    }
    let expected = signature(&secret(&s.token, "token")?, ts, nonce, encrypted);
    if !crate::constant_time_eq(sig.as_bytes(), expected.as_bytes()) {
        return Err(unauthorized("msg_signature does not match"));
    }
    let key = secret(&s.encoding_aes_key, "encoding_aes_key")?;
    decrypt(&key, encrypted)
        .map(|(m, _)| m)
        .map_err(|e| unauthorized(format!("cannot decrypt: {e}")))
}

pub fn ingress(s: &WeComSettings, req: &Request<'_>) -> Result<Ingress, Refusal> {
    if req.method == "GET" {
        let echo = req
            .query
            .get("echostr")
            .ok_or_else(|| malformed("URL verification without echostr"))?;
        let plain = verified(s, req, echo)?;
        return Ok(Ingress::Answer {
            content_type: "text/plain; charset=utf-8",
            body: plain,
        });
    }
    let body = String::from_utf8_lossy(req.body);
    let encrypted = if body.trim_start().starts_with('<') {
        xml_tag(&body, "Encrypt").ok_or_else(|| malformed("XML body without <Encrypt>"))?
    } else {
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| malformed(format!("body is neither XML nor JSON: {e}")))?;
        v["encrypt"]
            .as_str()
            .ok_or_else(|| malformed("JSON body without `encrypt`"))?
            .to_string()
    };
    let plain = String::from_utf8_lossy(&verified(s, req, &encrypted)?).to_string();
    let (kind, text, user, conversation, id, data) = if plain.trim_start().starts_with('<') {
        let from = xml_tag(&plain, "FromUserName");
        (
            xml_tag(&plain, "MsgType").unwrap_or_default(),
            xml_tag(&plain, "Content"),
            from.clone(),
            from,
            xml_tag(&plain, "MsgId"),
            json!({"xml": plain}),
        )
    } else {
        let v: Value = serde_json::from_str(&plain)
            .map_err(|e| malformed(format!("decrypted message is neither XML nor JSON: {e}")))?;
        let user = v["from"]["userid"].as_str().map(str::to_string);
        (
            v["msgtype"].as_str().unwrap_or("").to_string(),
            v["text"]["content"].as_str().map(str::to_string),
            user.clone(),
            v["chatid"].as_str().map(str::to_string).or(user),
            v["msgid"].as_str().map(str::to_string),
            v,
        )
    };
    if kind != "text" {
        return Ok(Ingress::Ignore(format!("message type `{kind}`")));
    }
    let mut m = Inbound::new("wecom");
    m.conversation = conversation.clone();
    m.user = user;
    m.text = text;
    m.data = data;
    m.idempotency_key = id.map(|i| format!("wecom:{i}"));
    Ok(Ingress::Message {
        inbound: Box::new(m),
        reply_to: json!({"chatid": conversation}),
    })
}

pub async fn send(s: &WeComSettings, _to: &Value, text: &str) -> Result<(), String> {
    let key = s
        .webhook_key
        .as_deref()
        .ok_or("the wecom trigger has no webhook_key, so replies cannot be sent")?;
    let key = crate::resolve_secret(key)?;
    let url = format!(
        "{}/cgi-bin/webhook/send?key={key}",
        s.api_base.trim_end_matches('/')
    );
    let v = super::post_json(
        &url,
        None,
        &json!({"msgtype": "text", "text": {"content": text}}),
    )
    .await
    .map_err(|e| e.replace(&key, "<key>"))?;
    if v["errcode"] == 0 {
        Ok(())
    } else {
        Err(format!(
            "webhook/send: {}",
            v["errmsg"].as_str().unwrap_or("refused")
        ))
    }
}

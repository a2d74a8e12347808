//! Chat platforms as channels: each module checks a request exactly as its platform documents
//! its signatures, turns the event into an [`Inbound`] message (or an immediate answer, for URL
//! verification), and sends the bot's reply through the platform's API at the configured
//! `api_base`. The api-server serves them under `/hooks/`; see `oclaw_api`'s hooks route.

pub mod dingtalk;
pub mod feishu;
pub mod slack;
pub mod telegram;
pub mod wecom;

use std::sync::OnceLock;
use std::time::Duration;

use oclaw_bots::triggers::platform::PlatformTrigger;
use serde_json::Value;

use crate::Inbound;

pub use crate::request::Request;

/// What a platform request comes to.
#[derive(Debug)]
pub enum Ingress {
    /// Answer at once, with no task (URL verification, challenges).
    Answer {
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// A message for the bot; `reply_to` is where its reply goes (platform-specific).
    Message {
        inbound: Box<Inbound>,
        reply_to: Value,
    },
    /// Accepted and ignored: an event the bot does not handle, or the bot's own message.
    Ignore(String),
}

/// Why a platform request was refused.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// Signature, token or timestamp wrong: 401, never processed.
    Unauthorized(String),
    /// Not what the platform sends: 400.
    Malformed(String),
}

fn unauthorized(m: impl Into<String>) -> Refusal {
    Refusal::Unauthorized(m.into())
}
fn malformed(m: impl Into<String>) -> Refusal {
    Refusal::Malformed(m.into())
}

/// A setting that may be a secret template.
fn secret(v: &str, what: &str) -> Result<String, Refusal> {
    crate::resolve_secret(v).map_err(|e| unauthorized(format!("{what}: {e}")))
}

fn json_body(body: &[u8]) -> Result<Value, Refusal> {
    serde_json::from_slice(body).map_err(|e| malformed(format!("body is not JSON: {e}")))
}

/// Checks a request and reads its event.
pub fn ingress(trigger: &PlatformTrigger, req: &Request<'_>) -> Result<Ingress, Refusal> {
    match trigger {
        PlatformTrigger::Slack(s) => slack::ingress(s, req),
        PlatformTrigger::Telegram(s) => telegram::ingress(s, req),
        PlatformTrigger::Feishu(s) => feishu::ingress(s, req),
        PlatformTrigger::DingTalk(s) => dingtalk::ingress(s, req),
        PlatformTrigger::WeCom(s) => wecom::ingress(s, req),
    }
}

/// Sends `text` as the reply to a message.
pub async fn send(trigger: &PlatformTrigger, reply_to: &Value, text: &str) -> Result<(), String> {
    match trigger {
        PlatformTrigger::Slack(s) => slack::send(s, reply_to, text).await,
        PlatformTrigger::Telegram(s) => telegram::send(s, reply_to, text).await,
        PlatformTrigger::Feishu(s) => feishu::send(s, reply_to, text).await,
        PlatformTrigger::DingTalk(s) => dingtalk::send(s, reply_to, text).await,
        PlatformTrigger::WeCom(s) => wecom::send(s, reply_to, text).await,
    }
}

/// The process's client for platform APIs.
fn http() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default()
    })
}

/// POSTs JSON and answers the JSON reply, or why it failed.
async fn post_json(url: &str, bearer: Option<&str>, body: &Value) -> Result<Value, String> {
    let mut req = http().post(url).json(body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(format!("HTTP {status}: {v}"));
    }
    Ok(v)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 of the concatenated `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Whether `|now - t|` is within `window` seconds.
fn fresh(t: i64, now: i64, window: i64) -> bool {
    (now - t).abs() <= window
}

/// AES-256-CBC decryption without padding removal (the platforms pad differently).
fn aes256_cbc_decrypt(key: &[u8], iv: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    use aes::cipher::{block_padding::NoPadding, BlockModeDecrypt, KeyIvInit};
    let dec = cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
        .map_err(|_| "bad key or iv length".to_string())?;
    let mut buf = data.to_vec();
    let n = dec
        .decrypt_padded::<NoPadding>(&mut buf)
        .map_err(|_| "ciphertext is not a whole number of blocks".to_string())?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// Removes PKCS#7 padding for blocks of `block` bytes.
fn unpad(mut data: Vec<u8>, block: usize) -> Result<Vec<u8>, String> {
    let n = *data.last().ok_or("empty plaintext")? as usize;
    if n == 0
        || n > block
        || n > data.len()
        || !data[data.len() - n..].iter().all(|b| *b as usize == n)
    {
        return Err("bad padding (wrong key?)".into());
    }
    data.truncate(data.len() - n);
    Ok(data)
}

/// Standard base64, tolerating non-zero trailing bits as the platforms' own SDKs do (a WeCom
/// EncodingAESKey is 43 random characters, whose last one rarely ends on zero bits).
fn b64(s: &str) -> Result<Vec<u8>, String> {
    use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    LENIENT
        .decode(s.trim())
        .map_err(|e| format!("not base64: {e}"))
}

fn b64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A string field or a number's digits.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

//! `http.request` (any HTTP call) and `notify.webhook` (POST a JSON body), behind the SSRF guard.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oclaw_core::ErrorCode;
use serde_json::{Map, Value};

use crate::context::{only_fields, opt_str, req_str};
use crate::ssrf::{is_internal, GuardedResolver};
use crate::{Skill, SkillCall, SkillContext, SkillError};

const MAX_RESPONSE_BYTES: usize = 10 << 20;

/// Outbound HTTP clients: `guarded` refuses internal addresses, `open` is for bots allowed to
/// reach them.
#[derive(Clone)]
pub struct HttpClients {
    guarded: reqwest::Client,
    open: reqwest::Client,
}

impl HttpClients {
    pub fn new() -> Result<HttpClients, String> {
        // One process-wide TLS provider; a second install attempt is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let agent = concat!("oclaw/", env!("CARGO_PKG_VERSION"));
        let guarded = reqwest::Client::builder()
            .user_agent(agent)
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver))
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let internal_literal = attempt
                    .url()
                    .host_str()
                    .and_then(|h| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok())
                    .is_some_and(is_internal);
                if internal_literal {
                    attempt.error("ssrf-guard: redirect to a private or loopback address")
                } else if attempt.previous().len() >= 5 {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(|e| e.to_string())?;
        let open = reqwest::Client::builder()
            .user_agent(agent)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpClients { guarded, open })
    }
}

fn is_ssrf(err: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        if e.to_string().contains("ssrf-guard") {
            return true;
        }
        source = e.source();
    }
    false
}

/// Checks scheme and literal addresses before any connection is made.
fn check_url(url: &str, allow_private: bool, skill: &str) -> Result<reqwest::Url, SkillError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| SkillError::invalid(format!("{skill}: bad url `{url}`: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SkillError::invalid(format!(
            "{skill}: only http and https urls are allowed, got `{}`",
            parsed.scheme()
        )));
    }
    if !allow_private {
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        let named_local = parsed
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case("localhost") || h.ends_with(".localhost"));
        if literal.is_some_and(is_internal) || named_local {
            return Err(SkillError::permanent(
                ErrorCode::SsrfBlocked,
                format!("{skill}: refusing to call {} (private or loopback address); set `allow_private_network: true` on the bot to allow it", parsed.host_str().unwrap_or("")),
            ));
        }
    }
    Ok(parsed)
}

struct Request<'a> {
    skill: &'static str,
    method: reqwest::Method,
    url: &'a str,
    headers: Option<&'a Map<String, Value>>,
    query: Option<&'a Map<String, Value>>,
    body: Option<&'a Value>,
    timeout: Duration,
    fail_on_status: bool,
}

/// Sends a request (guarded unless the bot allows private addresses) and reads the body, at
/// most 10 MiB; the status is the caller's to judge.
async fn send_raw(
    ctx: &SkillContext,
    req: &Request<'_>,
) -> Result<(reqwest::StatusCode, Map<String, Value>, Vec<u8>), SkillError> {
    let url = check_url(req.url, ctx.allow_private_network, req.skill)?;
    let client = if ctx.allow_private_network {
        &ctx.http.open
    } else {
        &ctx.http.guarded
    };
    let mut builder = client.request(req.method.clone(), url).timeout(req.timeout);
    builder = builder.header(
        "traceparent",
        format!("00-{}-{}-01", ctx.trace_id, ctx.span_id),
    );
    if let Some(headers) = req.headers {
        for (k, v) in headers {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            builder = builder.header(k.as_str(), v);
        }
    }
    if let Some(query) = req.query {
        let pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        builder = builder.query(&pairs);
    }
    match req.body {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => builder = builder.body(s.clone()),
        Some(other) => builder = builder.json(other),
    }
    let resp = builder.send().await.map_err(|e| {
        if is_ssrf(&e) {
            SkillError::permanent(
                ErrorCode::SsrfBlocked,
                format!(
                    "{}: {} refused: host resolves to a private or loopback address",
                    req.skill, req.url
                ),
            )
        } else {
            SkillError::transient(
                ErrorCode::HttpRequestFailed,
                format!(
                    "{} {} {}: {}",
                    req.skill,
                    req.method,
                    req.url,
                    oclaw_core::error_code::with_causes(&e)
                ),
            )
        }
    })?;
    let status = resp.status();
    let mut headers = Map::new();
    for (k, v) in resp.headers() {
        if let Ok(s) = v.to_str() {
            headers.insert(k.as_str().to_string(), Value::String(s.to_string()));
        }
    }
    let bytes = resp.bytes().await.map_err(|e| {
        SkillError::transient(
            ErrorCode::HttpRequestFailed,
            format!(
                "{}: reading body of {}: {}",
                req.skill,
                req.url,
                oclaw_core::error_code::with_causes(&e)
            ),
        )
    })?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(SkillError::permanent(
            ErrorCode::HttpRequestFailed,
            format!(
                "{}: response of {} is larger than 10 MiB",
                req.skill, req.url
            ),
        ));
    }
    Ok((status, headers, bytes.to_vec()))
}

async fn send(ctx: &SkillContext, req: Request<'_>) -> Result<Value, SkillError> {
    let (status, headers, bytes) = send_raw(ctx, &req).await?;
    let body = serde_json::from_slice::<Value>(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    if req.fail_on_status && (status.is_client_error() || status.is_server_error()) {
        let retryable = status.is_server_error() || status.as_u16() == 429;
        let message = format!(
            "{}: {} {} answered {}",
            req.skill, req.method, req.url, status
        );
        return Err(SkillError {
            code: ErrorCode::HttpRequestFailed,
            message,
            retryable,
        });
    }
    Ok(serde_json::json!({ "status": status.as_u16(), "headers": headers, "body": body }))
}

/// Fetches a document for ingestion: GET through the same guard as `http.request` (private and
/// loopback addresses refused unless the bot allows them, 10 MiB at most). Answers the body and
/// its `content-type`; a 4xx/5xx answer is an error (retryable for 5xx and 429).
pub async fn fetch_document(
    ctx: &SkillContext,
    skill: &'static str,
    url: &str,
    timeout: Duration,
) -> Result<(Vec<u8>, Option<String>), SkillError> {
    let req = Request {
        skill,
        method: reqwest::Method::GET,
        url,
        headers: None,
        query: None,
        body: None,
        timeout,
        fail_on_status: true,
    };
    let (status, headers, bytes) = send_raw(ctx, &req).await?;
    if status.is_client_error() || status.is_server_error() {
        return Err(SkillError {
            code: ErrorCode::HttpRequestFailed,
            message: format!("{skill}: GET {url} answered {status}"),
            retryable: status.is_server_error() || status.as_u16() == 429,
        });
    }
    let content_type = headers
        .get("content-type")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((bytes, content_type))
}

fn parse_timeout(with: &Value, skill: &str) -> Result<Duration, SkillError> {
    match opt_str(with, "timeout", skill)? {
        None => Ok(Duration::from_secs(30)),
        Some(t) => oclaw_core::duration::parse_duration(t)
            .map_err(|e| SkillError::invalid(format!("{skill}: timeout: {e}"))),
    }
}

fn opt_map<'a>(
    with: &'a Value,
    field: &str,
    skill: &str,
) -> Result<Option<&'a Map<String, Value>>, SkillError> {
    match with.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(SkillError::invalid(format!(
            "{skill}: `{field}` must be a mapping"
        ))),
    }
}

fn literal_checks(with: &Value, skill: &'static str, fields: &[&str]) -> Result<(), SkillError> {
    only_fields(with, fields, skill)?;
    if let Some(Value::String(u)) = with.get("url") {
        if !u.contains("{{") {
            reqwest::Url::parse(u)
                .map_err(|e| SkillError::invalid(format!("{skill}: bad url `{u}`: {e}")))?;
        }
    }
    Ok(())
}

pub struct HttpRequest;

const HTTP_FIELDS: &[&str] = &[
    "url",
    "method",
    "headers",
    "query",
    "body",
    "timeout",
    "fail_on_status",
];

#[async_trait]
impl Skill for HttpRequest {
    fn side_effects(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "http.request"
    }
    fn summary(&self) -> &'static str {
        "HTTP call; output {status, headers, body}; refuses internal addresses unless allowed"
    }
    fn fields(&self) -> &'static [&'static str] {
        HTTP_FIELDS
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        literal_checks(with, "http.request", HTTP_FIELDS)
    }
    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let w = &call.with;
        only_fields(w, HTTP_FIELDS, "http.request")?;
        let method = opt_str(w, "method", "http.request")?.unwrap_or("GET");
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| SkillError::invalid(format!("http.request: bad method `{method}`")))?;
        let fail_on_status = match w.get("fail_on_status") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(SkillError::invalid(
                    "http.request: `fail_on_status` must be true or false",
                ))
            }
        };
        send(
            ctx,
            Request {
                skill: "http.request",
                method,
                url: req_str(w, "url", "http.request")?,
                headers: opt_map(w, "headers", "http.request")?,
                query: opt_map(w, "query", "http.request")?,
                body: w.get("body"),
                timeout: parse_timeout(w, "http.request")?,
                fail_on_status,
            },
        )
        .await
    }
}

pub struct NotifyWebhook;

const NOTIFY_FIELDS: &[&str] = &["url", "body", "headers", "timeout"];

#[async_trait]
impl Skill for NotifyWebhook {
    fn side_effects(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "notify.webhook"
    }
    fn summary(&self) -> &'static str {
        "POST `body` (JSON, or text) to `url`; output {status}"
    }
    fn fields(&self) -> &'static [&'static str] {
        NOTIFY_FIELDS
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        literal_checks(with, "notify.webhook", NOTIFY_FIELDS)
    }
    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let w = &call.with;
        only_fields(w, NOTIFY_FIELDS, "notify.webhook")?;
        // A body that is a JSON document in a string (`{{ x | tojson }}`) is sent as JSON.
        let body = match w.get("body") {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s)
                .ok()
                .filter(|v| v.is_object() || v.is_array()),
            _ => None,
        };
        let out = send(
            ctx,
            Request {
                skill: "notify.webhook",
                method: reqwest::Method::POST,
                url: req_str(w, "url", "notify.webhook")?,
                headers: opt_map(w, "headers", "notify.webhook")?,
                query: None,
                body: body.as_ref().or(w.get("body")),
                timeout: parse_timeout(w, "notify.webhook")?,
                fail_on_status: true,
            },
        )
        .await?;
        Ok(serde_json::json!({ "status": out["status"] }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An internal address written as IPv6 is refused before any connection is made (names go
    /// through the guarded resolver, redirects through the redirect policy).
    #[test]
    fn literal_addresses_are_refused_in_every_spelling() {
        for url in [
            "http://127.0.0.1/",
            "http://[::ffff:127.0.0.1]:8080/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
            "http://[2002:7f00:1::1]/",
            "http://[64:ff9b:1::808:808]/",
            "http://localhost:9000/",
        ] {
            let refused = check_url(url, false, "http.request").unwrap_err();
            assert_eq!(refused.code, ErrorCode::SsrfBlocked, "{url}");
            assert!(!refused.retryable, "{url}");
        }
        assert!(check_url("http://[64:ff9b::808:808]/", false, "http.request").is_ok());
        assert!(check_url("http://[64:ff9b::7f00:1]/", true, "http.request").is_ok());
    }
}

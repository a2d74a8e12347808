//! The steps that park a task instead of holding a worker: `wait` (a named event with a
//! correlation key), `approval` (people's decisions), `timer` (a durable sleep) and `bot.call`
//! (a child task). Each checks its rendered `with` and answers the wait it asks for; the engine
//! parks the task on it, and the store queues the task again with the wait's outcome as the
//! step's output. `event.emit` sends an event from inside a bot.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use oclaw_core::ErrorCode;
use serde_json::{json, Value};

use crate::context::{only_fields, req_str};
use crate::{Skill, SkillCall, SkillContext, SkillError};

/// How long an event nobody waits for yet is kept, unless `events.retention` says otherwise.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Text of a field, or an error naming the skill.
fn text<'a>(with: &'a Value, field: &str, skill: &str) -> Result<&'a str, SkillError> {
    req_str(with, field, skill)
}

/// `timeout` as milliseconds, when given.
fn timeout_ms(with: &Value, skill: &str) -> Result<Option<u64>, SkillError> {
    match with.get("timeout") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => oclaw_core::duration::parse_duration(s)
            .map(|d| Some(d.as_millis() as u64))
            .map_err(|e| SkillError::invalid(format!("{skill}: timeout: {e}"))),
        Some(_) => Err(SkillError::invalid(format!(
            "{skill}: timeout is a duration such as `24h` or `7d`"
        ))),
    }
}

/// Whether a literal field is a template (checked when rendered instead).
fn templated(with: &Value, field: &str) -> bool {
    with.get(field)
        .and_then(Value::as_str)
        .is_some_and(|s| s.contains("{{"))
}

/// `wait`: `with: {event, key, timeout?, on_timeout?: fail | continue}` → the event's data.
pub struct Wait;

const WAIT_FIELDS: &[&str] = &["event", "key", "timeout", "on_timeout"];

fn wait_request(with: &Value) -> Result<Value, SkillError> {
    only_fields(with, WAIT_FIELDS, "wait")?;
    let name = text(with, "event", "wait")?;
    let key = with
        .get("key")
        .and_then(oclaw_store::waits::key_text)
        .ok_or_else(|| SkillError::invalid("wait: `key` (the correlation key) is required"))?;
    let timeout = timeout_ms(with, "wait")?;
    let on_timeout = match with
        .get("on_timeout")
        .and_then(Value::as_str)
        .unwrap_or("fail")
    {
        "fail" => json!({"error": {"code": ErrorCode::WaitTimedOut.code(),
            "message": format!("no `{name}` event for key `{key}` came before the timeout")}}),
        "continue" => json!({"output": null}),
        other => {
            return Err(SkillError::invalid(format!(
                "wait: on_timeout is `fail` or `continue`, not `{other}`"
            )))
        }
    };
    Ok(
        json!({"kind": "event", "name": name, "key": key, "timeout_ms": timeout,
              "on_timeout": on_timeout, "detail": {}}),
    )
}

#[async_trait]
impl Skill for Wait {
    fn name(&self) -> &'static str {
        "wait"
    }
    fn summary(&self) -> &'static str {
        "wait (without a worker) for the event `event` with key `key`; output is the event's data"
    }
    fn fields(&self) -> &'static [&'static str] {
        WAIT_FIELDS
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only_fields(with, WAIT_FIELDS, "wait")?;
        if templated(with, "timeout") || templated(with, "key") || templated(with, "event") {
            return Ok(());
        }
        wait_request(with).map(|_| ())
    }
    fn parks(&self) -> bool {
        true
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        wait_request(&call.with)
    }
}

/// `approval`: `with: {message, approvers?: [names], required?: N, timeout?, on_timeout?:
/// approve | reject}` → `{approved, by, comment, approvers}`.
pub struct Approval;

const APPROVAL_FIELDS: &[&str] = &["message", "approvers", "required", "timeout", "on_timeout"];

fn approval_request(with: &Value) -> Result<Value, SkillError> {
    only_fields(with, APPROVAL_FIELDS, "approval")?;
    let message = text(with, "message", "approval")?;
    let approvers: Vec<String> = match with.get("approvers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| SkillError::invalid("approval: approvers is a list of names"))
            })
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) => vec![s.clone()],
        Some(_) => {
            return Err(SkillError::invalid(
                "approval: approvers is a list of names",
            ))
        }
    };
    let required = match with.get("required") {
        None | Some(Value::Null) => 1,
        Some(v) => v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            SkillError::invalid("approval: required is a whole number, 1 or more")
        })?,
    };
    if !approvers.is_empty() && required as usize > approvers.len() {
        return Err(SkillError::invalid(format!(
            "approval: required is {required} but only {} approvers are named",
            approvers.len()
        )));
    }
    let timeout = timeout_ms(with, "approval")?;
    let approved = match with
        .get("on_timeout")
        .and_then(Value::as_str)
        .unwrap_or("reject")
    {
        "reject" => false,
        "approve" => true,
        other => {
            return Err(SkillError::invalid(format!(
                "approval: on_timeout is `approve` or `reject`, not `{other}`"
            )))
        }
    };
    Ok(json!({
        "kind": "approval",
        "timeout_ms": timeout,
        "on_timeout": {"output": {"approved": approved, "by": null, "comment": "timed out", "approvers": [], "timed_out": true}},
        "detail": {"message": message, "approvers": approvers, "required": required},
    }))
}

#[async_trait]
impl Skill for Approval {
    fn name(&self) -> &'static str {
        "approval"
    }
    fn summary(&self) -> &'static str {
        "wait (without a worker) for people to approve or reject; output {approved, by, comment}"
    }
    fn fields(&self) -> &'static [&'static str] {
        APPROVAL_FIELDS
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only_fields(with, APPROVAL_FIELDS, "approval")?;
        if ["timeout", "required", "on_timeout"]
            .iter()
            .any(|f| templated(with, f))
            || with.get("approvers").is_some_and(|a| a.is_string())
        {
            return Ok(());
        }
        approval_request(with).map(|_| ())
    }
    fn parks(&self) -> bool {
        true
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        approval_request(&call.with)
    }
}

/// `timer`: `with: {for: DURATION}` or `{until: RFC 3339 time}` → `{slept_until}`. The task
/// waits in the store, not on a worker (the step key `sleep:` is this skill).
pub struct Timer;

fn timer_request(with: &Value, now: DateTime<Utc>) -> Result<Value, SkillError> {
    only_fields(with, &["for", "until"], "timer")?;
    let until = match (with.get("for"), with.get("until")) {
        (Some(Value::String(d)), None) => {
            let d = oclaw_core::duration::parse_duration(d)
                .map_err(|e| SkillError::invalid(format!("sleep: {e}")))?;
            now + chrono::Duration::from_std(d)
                .map_err(|_| SkillError::invalid("sleep: the duration is too long"))?
        }
        (None, Some(Value::String(t))) => DateTime::parse_from_rfc3339(t)
            .map_err(|e| {
                SkillError::invalid(format!("sleep: until `{t}` is not an RFC 3339 time: {e}"))
            })?
            .with_timezone(&Utc),
        _ => {
            return Err(SkillError::invalid(
                "sleep: give `for` (a duration such as `3d`) or `until` (an RFC 3339 time)",
            ))
        }
    };
    let ms = (until - now).num_milliseconds().max(0) as u64;
    Ok(json!({
        "kind": "sleep",
        "timeout_ms": ms,
        "on_timeout": {"output": {"slept_until": until}},
        "detail": {"until": until},
    }))
}

#[async_trait]
impl Skill for Timer {
    fn name(&self) -> &'static str {
        "timer"
    }
    fn summary(&self) -> &'static str {
        "sleep durably (step key `sleep:`): the task waits in the store, not on a worker, `for` a duration or `until` a time"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["for", "until"]
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        if templated(with, "for") || templated(with, "until") {
            return only_fields(with, &["for", "until"], "timer");
        }
        timer_request(with, Utc::now()).map(|_| ())
    }
    fn parks(&self) -> bool {
        true
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        timer_request(&call.with, Utc::now())
    }
}

/// `bot.call`: `with: {bot, input?}` → the child's output. The bot is a literal name (so a
/// cycle of calls is refused when the bots are loaded).
pub struct BotCall;

#[async_trait]
impl Skill for BotCall {
    fn name(&self) -> &'static str {
        "bot.call"
    }
    fn summary(&self) -> &'static str {
        "run another bot as a child task and wait (without a worker) for its output"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["bot", "input"]
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only_fields(with, &["bot", "input"], "bot.call")?;
        match with.get("bot").and_then(Value::as_str) {
            Some(b) if !b.contains("{{") && !b.is_empty() => Ok(()),
            Some(_) => Err(SkillError::invalid(
                "bot.call: `bot` is a literal bot name, not a template (so cycles can be refused at load)",
            )),
            None => Err(SkillError::invalid("bot.call: `bot` (a bot name) is required")),
        }
    }
    fn parks(&self) -> bool {
        true
    }
    fn side_effects(&self) -> bool {
        true
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        only_fields(&call.with, &["bot", "input"], "bot.call")?;
        let bot = text(&call.with, "bot", "bot.call")?;
        let input = call.with.get("input").cloned().unwrap_or(json!({}));
        Ok(json!({"kind": "child", "on_timeout": {"output": null},
                  "detail": {"bot": bot}, "call": {"bot": bot, "input": input}}))
    }
}

/// `event.emit`: `with: {name, key, data?}` → `{woke: [task ids], kept}`: wakes the tasks waiting
/// for the event, or keeps it for `events.retention` when none waits yet.
pub struct EventEmit {
    pub retention: Duration,
}

impl Default for EventEmit {
    fn default() -> Self {
        EventEmit {
            retention: DEFAULT_EVENT_RETENTION,
        }
    }
}

#[async_trait]
impl Skill for EventEmit {
    fn name(&self) -> &'static str {
        "event.emit"
    }
    fn summary(&self) -> &'static str {
        "send the event `name` with key `key` and `data` to the tasks waiting for it"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["name", "key", "data"]
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only_fields(with, &["name", "key", "data"], "event.emit")
    }
    fn side_effects(&self) -> bool {
        true
    }
    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        only_fields(&call.with, &["name", "key", "data"], "event.emit")?;
        let name = text(&call.with, "name", "event.emit")?;
        if !oclaw_core::bot::event_name_ok(name) {
            return Err(SkillError::invalid(
                "event.emit: `name` is 1 to 200 characters without control characters",
            ));
        }
        let name = oclaw_core::bot::scoped_event(&ctx.tenant, name);
        let key = call
            .with
            .get("key")
            .and_then(oclaw_store::waits::key_text)
            .ok_or_else(|| SkillError::invalid("event.emit: `key` is required"))?;
        let data = call.with.get("data").cloned().unwrap_or(call.data);
        let report = ctx
            .store
            .send_event(oclaw_store::waits::NewEvent {
                name,
                key,
                data,
                retention: self.retention,
            })
            .await
            .map_err(|e| {
                if e.is_transient() {
                    SkillError::transient(e.code(), format!("event.emit: {e}"))
                } else {
                    SkillError::permanent(e.code(), format!("event.emit: {e}"))
                }
            })?;
        Ok(json!({"woke": report.woke, "kept": report.kept.is_some()}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_needs_an_event_and_a_key_and_fails_on_timeout_by_default() {
        let r = wait_request(&json!({"event": "parcel.delivered", "key": 42, "timeout": "7d"}))
            .unwrap();
        assert_eq!(r["key"], "42");
        assert_eq!(r["timeout_ms"], 7 * 24 * 3600 * 1000u64);
        assert_eq!(r["on_timeout"]["error"]["code"], "OC-4041");
        assert!(wait_request(&json!({"event": "x"})).is_err());
        assert!(wait_request(&json!({"event": "x", "key": "k", "on_timeout": "maybe"})).is_err());
    }

    #[test]
    fn an_approval_cannot_require_more_people_than_it_names() {
        let e = approval_request(&json!({"message": "ok?", "approvers": ["a"], "required": 2}))
            .unwrap_err();
        assert!(e.message.contains("required is 2"), "{}", e.message);
        let r =
            approval_request(&json!({"message": "ok?", "timeout": "1h", "on_timeout": "approve"}))
                .unwrap();
        assert_eq!(r["on_timeout"]["output"]["approved"], true);
        assert_eq!(r["detail"]["required"], 1);
    }

    #[test]
    fn a_timer_takes_a_duration_or_a_time() {
        let now = Utc::now();
        let r = timer_request(&json!({"for": "2h"}), now).unwrap();
        assert_eq!(r["timeout_ms"], 7_200_000u64);
        let r = timer_request(&json!({"until": "2000-01-01T00:00:00Z"}), now).unwrap();
        assert_eq!(r["timeout_ms"], 0);
        assert!(timer_request(&json!({}), now).is_err());
    }
}

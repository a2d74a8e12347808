//! `kv.get` / `kv.set`: a durable key-value store per bot, with a time to live (`cache.ttl`
//! by default).

use async_trait::async_trait;
use chrono::Utc;
use oclaw_core::ErrorCode;
use serde_json::Value;

use crate::context::{only_fields, req_str, type_name};
use crate::{Skill, SkillCall, SkillContext, SkillError};

fn store_error(e: oclaw_store::StoreError) -> SkillError {
    let code = e.code();
    let retryable = e.is_transient() || code == ErrorCode::StoreUnavailable;
    SkillError {
        code,
        message: format!("kv: {e}"),
        retryable,
    }
}

fn key(with: &Value, skill: &str) -> Result<String, SkillError> {
    let k = req_str(with, "key", skill)?;
    if k.is_empty() || k.len() > 512 {
        return Err(SkillError::invalid(format!(
            "{skill}: `key` must be 1 to 512 characters"
        )));
    }
    Ok(k.to_string())
}

pub struct KvGet;

#[async_trait]
impl Skill for KvGet {
    fn name(&self) -> &'static str {
        "kv.get"
    }
    fn summary(&self) -> &'static str {
        "read `key` from the bot's key-value store; `default` when missing or expired"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["key", "default"]
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only_fields(with, self.fields(), "kv.get")?;
        key(with, "kv.get").map(|_| ())
    }
    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        only_fields(&call.with, self.fields(), "kv.get")?;
        let k = key(&call.with, "kv.get")?;
        let found = ctx
            .store
            .kv_get(&ctx.bot, &k, Utc::now())
            .await
            .map_err(store_error)?;
        Ok(found.unwrap_or_else(|| call.with.get("default").cloned().unwrap_or(Value::Null)))
    }
}

pub struct KvSet;

/// `ttl` of kv.set: a duration (`10m`, `1h`), or a whole number of seconds; `0` (or `"0"`)
/// keeps the value forever. `None` when not given (the node's `cache.ttl`).
fn ttl(with: &Value) -> Result<Option<std::time::Duration>, SkillError> {
    let bad = |why: String| SkillError::invalid(format!("kv.set: `ttl` {why}"));
    match with.get("ttl") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|s| Some(std::time::Duration::from_secs(s)))
            .ok_or_else(|| {
                bad(format!(
                    "must be a duration like 10m or whole seconds, got {n}"
                ))
            }),
        Some(Value::String(t)) if t.trim() == "0" => Ok(Some(std::time::Duration::ZERO)),
        Some(Value::String(t)) => oclaw_core::duration::parse_duration(t)
            .map(Some)
            .map_err(|e| bad(format!("`{t}`: {e}"))),
        Some(other) => Err(bad(format!(
            "must be a duration like 10m or whole seconds, got {}",
            type_name(other)
        ))),
    }
}

#[async_trait]
impl Skill for KvSet {
    fn name(&self) -> &'static str {
        "kv.set"
    }
    fn summary(&self) -> &'static str {
        "store `value` under `key` for `ttl` (default cache.ttl; `0` keeps it forever); output is the value"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["key", "value", "ttl"]
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only_fields(with, self.fields(), "kv.set")?;
        key(with, "kv.set")?;
        if with.get("value").is_none() {
            return Err(SkillError::invalid("kv.set: `value` is required"));
        }
        match with.get("ttl") {
            Some(Value::String(t)) if t.contains("{{") || t.contains("{%") => Ok(()),
            _ => ttl(with).map(|_| ()),
        }
    }
    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        self.check_literal(&call.with)?;
        let k = key(&call.with, "kv.set")?;
        let ttl = ttl(&call.with)?.unwrap_or(ctx.cache_ttl);
        let expires = if ttl.is_zero() {
            None
        } else {
            Some(Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX))
        };
        let value = call.with.get("value").cloned().unwrap_or(Value::Null);
        ctx.store
            .kv_set(&ctx.bot, &k, &value, expires)
            .await
            .map_err(store_error)?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ttl_takes_durations_and_whole_seconds_and_refuses_the_rest_at_load() {
        let with = |ttl: Value| json!({"key": "k", "value": 1, "ttl": ttl});
        assert_eq!(
            ttl(&with(json!(0))).unwrap(),
            Some(std::time::Duration::ZERO)
        );
        assert_eq!(
            ttl(&with(json!("0"))).unwrap(),
            Some(std::time::Duration::ZERO)
        );
        assert_eq!(
            ttl(&with(json!(90))).unwrap(),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            ttl(&with(json!("10m"))).unwrap(),
            Some(std::time::Duration::from_secs(600))
        );
        assert_eq!(ttl(&json!({"key": "k", "value": 1})).unwrap(), None);
        for bad in [json!(-1), json!(1.5), json!("soon"), json!([1])] {
            let e = KvSet.check_literal(&with(bad.clone())).unwrap_err();
            assert!(e.message.contains("`ttl`"), "{bad}: {}", e.message);
        }
        // A template is checked when it renders.
        assert!(KvSet.check_literal(&with(json!("{{ input.ttl }}"))).is_ok());
    }
}

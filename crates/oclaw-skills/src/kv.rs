//! `kv.get` / `kv.set`: a durable key-value store per bot, with a time to live (`cache.ttl`
//! by default).

use async_trait::async_trait;
use chrono::Utc;
use oclaw_core::ErrorCode;
use serde_json::Value;

use crate::context::{only_fields, opt_str, req_str};
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
        Ok(())
    }
    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        self.check_literal(&call.with)?;
        let k = key(&call.with, "kv.set")?;
        let ttl = match opt_str(&call.with, "ttl", "kv.set")? {
            Some(t) => oclaw_core::duration::parse_duration(t)
                .map_err(|e| SkillError::invalid(format!("kv.set: ttl: {e}")))?,
            None => ctx.cache_ttl,
        };
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

//! What a skill sees while it runs ([`SkillContext`]: the task, the store, HTTP clients, the
//! bot's grants) and what it is given ([`SkillCall`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oclaw_core::bot::PluginGrant;
use oclaw_core::{ErrorCode, TaskId};
use oclaw_store::Store;
use serde_json::Value;

use crate::http_request::HttpClients;

/// What a skill may use while it runs: the task's identity, the store (for `kv.*`), the
/// outbound HTTP clients, and the bot's grants.
#[derive(Clone)]
pub struct SkillContext {
    pub bot: String,
    /// The tenant of the bot: what the skill reads and writes (events, knowledge) is its.
    pub tenant: String,
    pub task_id: TaskId,
    pub trace_id: String,
    /// The span of this skill call: outbound calls name it as their parent in `traceparent`.
    pub span_id: String,
    pub step: String,
    pub store: Arc<dyn Store>,
    pub http: HttpClients,
    /// Default lifetime of `kv.set` entries (`cache.ttl`).
    pub cache_ttl: Duration,
    /// The bot lets `http.request` reach private and loopback addresses.
    pub allow_private_network: bool,
    /// What the bot lets each plugin use (`spec.grants`).
    pub grants: Arc<BTreeMap<String, PluginGrant>>,
    /// Checkpoints inside this step, for skills that make several calls (agents).
    pub journal: Journal,
    /// The bot's model token budget.
    pub budget: Option<oclaw_core::bot::TokenBudget>,
    /// Model tokens the bot's tenant may use per UTC day (`tenants.quotas`).
    pub tenant_tokens_per_day: Option<u64>,
}

/// Checkpoints inside one step: a skill that makes several calls (an agent's model turns and
/// tool calls) records each as it finishes, and an attempt that resumes after a crash reads
/// them back and goes on after the last. Stored as the task's checkpoints `<step>#<n>`, written
/// only by the attempt that holds the lease.
#[derive(Clone)]
pub struct Journal {
    store: Option<Arc<dyn Store>>,
    task: TaskId,
    step: String,
    index: u32,
    entries: Arc<Vec<Value>>,
}

impl Journal {
    /// The journal of `step` (its place `index` in the bot), with the entries earlier attempts
    /// saved among the task's `checkpoints` (`(step name, output)`).
    pub fn new<'a>(
        store: Arc<dyn Store>,
        task: TaskId,
        step: &str,
        index: u32,
        checkpoints: impl IntoIterator<Item = (&'a str, &'a Value)>,
    ) -> Journal {
        // `<step>#<n>`, matched without building the prefix (this runs for every step).
        let mut found: Vec<(usize, Value)> = checkpoints
            .into_iter()
            .filter_map(|(name, output)| {
                let n = name.strip_prefix(step)?.strip_prefix('#')?.parse().ok()?;
                Some((n, output.clone()))
            })
            .collect();
        found.sort_by_key(|(n, _)| *n);
        // Entries are numbered from 0 without gaps; anything after a gap is not trusted.
        let entries = found
            .into_iter()
            .enumerate()
            .take_while(|(i, (n, _))| i == n)
            .map(|(_, (_, v))| v)
            .collect();
        Journal {
            store: Some(store),
            task,
            step: step.to_string(),
            index,
            entries: Arc::new(entries),
        }
    }

    /// A journal that keeps nothing (skills run outside a task).
    pub fn detached() -> Journal {
        Journal {
            store: None,
            task: TaskId(0),
            step: String::new(),
            index: 0,
            entries: Arc::new(Vec::new()),
        }
    }

    /// What earlier attempts recorded, in order.
    pub fn entries(&self) -> &[Value] {
        &self.entries
    }

    /// Records entry `n` (the number of entries before it).
    pub async fn record(&self, n: usize, entry: &Value) -> Result<(), SkillError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        store
            .save_checkpoint(self.task, &format!("{}#{n}", self.step), self.index, entry)
            .await
            .map_err(|e| SkillError::transient(e.code(), format!("saving a checkpoint: {e}")))
    }
}

/// One invocation: `with` is the rendered step input, `data` the previous step's output (the
/// task's input for the first step).
#[derive(Debug, Clone)]
pub struct SkillCall {
    pub with: Value,
    pub data: Value,
}

/// A skill failure with its code, and whether another attempt could succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {message}")]
pub struct SkillError {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
}

impl SkillError {
    /// Bad input: retrying the same input fails the same way.
    pub fn invalid(message: impl Into<String>) -> SkillError {
        SkillError {
            code: ErrorCode::SkillInvalidInput,
            message: message.into(),
            retryable: false,
        }
    }
    pub fn permanent(code: ErrorCode, message: impl Into<String>) -> SkillError {
        SkillError {
            code,
            message: message.into(),
            retryable: false,
        }
    }
    pub fn transient(code: ErrorCode, message: impl Into<String>) -> SkillError {
        SkillError {
            code,
            message: message.into(),
            retryable: true,
        }
    }
}

/// Reads an optional string field of `with`.
pub(crate) fn opt_str<'a>(
    with: &'a Value,
    field: &str,
    skill: &str,
) -> Result<Option<&'a str>, SkillError> {
    match with.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(SkillError::invalid(format!(
            "{skill}: `{field}` must be a string, got {}",
            type_name(other)
        ))),
    }
}

/// Reads a required string field of `with`.
pub(crate) fn req_str<'a>(
    with: &'a Value,
    field: &str,
    skill: &str,
) -> Result<&'a str, SkillError> {
    opt_str(with, field, skill)?
        .ok_or_else(|| SkillError::invalid(format!("{skill}: `{field}` is required")))
}

/// Rejects fields of `with` the skill does not know, naming the ones it does.
pub(crate) fn only_fields(with: &Value, allowed: &[&str], skill: &str) -> Result<(), SkillError> {
    match with {
        Value::Null => Ok(()),
        Value::Object(map) => {
            for key in map.keys() {
                if !allowed.contains(&key.as_str()) {
                    return Err(SkillError::invalid(format!(
                        "{skill}: unknown field `{key}`{}; allowed: {}",
                        oclaw_core::suggest::hint(key, allowed),
                        allowed.join(", ")
                    )));
                }
            }
            Ok(())
        }
        other => Err(SkillError::invalid(format!(
            "{skill}: `with` must be a mapping, got {}",
            type_name(other)
        ))),
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a mapping",
    }
}

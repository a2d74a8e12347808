//! Bot definitions as written in YAML (`kind: Bot`). Validation against the skill registry and
//! template compilation happen in the engine, which knows the skills.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backoff::RetryPolicy;
use crate::Dur;

/// A bot document: `apiVersion: oclaw.io/v1`, `kind: Bot`, `metadata`, `spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BotDoc {
    #[serde(rename = "apiVersion", default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    pub metadata: BotMetadata,
    pub spec: BotSpec,
}

fn default_api_version() -> String {
    "oclaw.io/v1".into()
}
fn default_kind() -> String {
    "Bot".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BotMetadata {
    /// Unique bot name: lowercase letters, digits and dashes.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The team that owns the bot: its tasks, queues, key-value entries, knowledge, events and
    /// approvals are seen only through tokens of this tenant (or an admin's).
    #[serde(default = "default_tenant", skip_serializing_if = "is_default_tenant")]
    pub tenant: String,
}

/// The tenant of bots that name none.
pub const DEFAULT_TENANT: &str = "default";

/// An event name as the store keeps it: another tenant's events never meet this tenant's
/// waits. The default tenant's names are kept as given; others' carry the tenant between
/// control characters, which event names may not hold (see [`event_name_ok`]).
pub fn scoped_event(tenant: &str, name: &str) -> String {
    if tenant == DEFAULT_TENANT {
        name.to_string()
    } else {
        format!("\u{1}{tenant}\u{1}{name}")
    }
}

/// The name a tenant gave an event, from the name the store keeps ([`scoped_event`]).
pub fn unscoped_event(stored: &str) -> &str {
    match stored
        .strip_prefix('\u{1}')
        .and_then(|r| r.split_once('\u{1}'))
    {
        Some((_, name)) => name,
        None => stored,
    }
}

/// Whether an event name may be sent or waited for: 1 to 200 characters, none of them control
/// characters.
pub fn event_name_ok(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= 200 && !name.chars().any(char::is_control)
}

pub(crate) fn default_tenant() -> String {
    DEFAULT_TENANT.to_string()
}

fn is_default_tenant(t: &String) -> bool {
    t == DEFAULT_TENANT
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BotSpec {
    /// Queue the bot's tasks go to.
    #[serde(default = "default_queue")]
    pub queue: String,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Limit for one attempt of the whole pipeline.
    #[serde(default = "default_bot_timeout")]
    pub timeout: Dur,
    /// Let `http.request` reach private and loopback addresses (off by default: SSRF guard).
    #[serde(default)]
    pub allow_private_network: bool,
    /// What each plugin may use when this bot runs it, by plugin name. A plugin gets no
    /// capability the bot does not grant here, whatever its manifest asks for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grants: BTreeMap<String, PluginGrant>,
    /// Model tokens the bot may spend (`llm.chat` and `agent` calls), shared by every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<TokenBudget>,
    /// Per-key limits: at most `limit` of this bot's tasks with the same rendered `key` run at
    /// once; the others wait in the order they came, and other keys are not held up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<KeyConcurrency>,
    /// Debounce per key: a new task of a key whose task has not started yet is folded into it
    /// (its input replaced by the newest, its start moved to `window` from now), so a burst
    /// runs once, with the last input, `window` after it went quiet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<KeyDebounce>,
    /// Rate limit per key: at most `limit` tasks of a key start in any `per` (a sliding
    /// window); the others wait, in order, without holding a worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<KeyRate>,
}

/// `spec.concurrency`: a limit per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyConcurrency {
    /// A template over `input` (for example `"{{ input.customer }}"`): tasks that render the
    /// same key share the limit.
    pub key: String,
    /// Tasks of one key running at once (1 or more).
    pub limit: u32,
}

/// `spec.rate_limit`: starts per period per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRate {
    /// A template over `input`: tasks that render the same key share the rate.
    pub key: String,
    /// The window, for example `1m`.
    pub per: crate::Dur,
    /// Starts allowed in any window (1 or more).
    pub limit: u32,
}

/// `spec.debounce`: a quiet period per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyDebounce {
    /// A template over `input`: tasks that render the same key are debounced together.
    pub key: String,
    /// How long a key must be quiet before its task runs.
    pub window: crate::Dur,
}

/// Token budgets: each call reserves its estimate before it is made (refused with OC-4036
/// when the budget cannot hold it) and settles to what the provider counted after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBudget {
    /// Input and output tokens per UTC day, over all of the bot's tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    /// Input and output tokens of one task, over its steps and attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_task: Option<u64>,
}

/// Capabilities granted to one plugin: `log`, `kv` (the bot's key-value store), `http`
/// (outbound requests to the hosts in `http_allow`, through the SSRF-guarded client).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginGrant {
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Hosts (`example.com`, `api.example.com:8443`) the plugin may call with `http`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_allow: Vec<String>,
}

/// Capabilities a plugin can be granted.
pub const PLUGIN_CAPABILITIES: &[&str] = &["log", "kv", "http"];

/// Every name in `caps` is a known capability (the error suggests the closest).
pub fn check_capabilities(caps: &[String]) -> Result<(), String> {
    for cap in caps {
        if !PLUGIN_CAPABILITIES.contains(&cap.as_str()) {
            return Err(format!(
                "unknown capability `{cap}`{}; known: {}",
                crate::suggest::hint(cap, PLUGIN_CAPABILITIES),
                PLUGIN_CAPABILITIES.join(", ")
            ));
        }
    }
    Ok(())
}

pub fn default_queue() -> String {
    "default".into()
}
fn default_bot_timeout() -> Dur {
    Dur::secs(300)
}

/// What starts a bot run besides an API call: exactly one of the fields, for example
/// `- cron: "*/5 * * * *"` or `- every: 10s`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// A cron expression with 5 fields, or 6 with seconds first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// A fixed interval such as `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Dur>,
    /// Channel triggers; their settings are read by the channel that serves them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<Value>,
    /// Chat platforms: Slack Events API, Telegram webhook, Feishu/Lark events, DingTalk and
    /// WeCom robot callbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feishu: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dingtalk: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wecom: Option<Value>,
}

impl Trigger {
    /// Names of the kinds this trigger sets (exactly one when valid).
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut k = Vec::new();
        if self.cron.is_some() {
            k.push("cron");
        }
        if self.every.is_some() {
            k.push("every");
        }
        if self.webhook.is_some() {
            k.push("webhook");
        }
        if self.websocket.is_some() {
            k.push("websocket");
        }
        if self.mqtt.is_some() {
            k.push("mqtt");
        }
        if self.nats.is_some() {
            k.push("nats");
        }
        for (name, v) in self.platforms() {
            if v.is_some() {
                k.push(name);
            }
        }
        k
    }

    /// The chat-platform fields by name.
    pub fn platforms(&self) -> [(&'static str, Option<&Value>); 5] {
        [
            ("slack", self.slack.as_ref()),
            ("telegram", self.telegram.as_ref()),
            ("feishu", self.feishu.as_ref()),
            ("dingtalk", self.dingtalk.as_ref()),
            ("wecom", self.wecom.as_ref()),
        ]
    }
}

/// One pipeline step: run skill `uses` with input `with` when `if` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Step id, unique within the bot; defaults to `step-<n>`.
    #[serde(default)]
    pub id: String,
    /// Skill name, for example `http.request`. A step sets this or one of `approval`, `wait`
    /// and `sleep`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uses: String,
    /// Waits for people to approve or reject (the skill `approval`: `{message, approvers?,
    /// required?, timeout?, on_timeout?}`); the task waits without a worker meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Value>,
    /// Waits for a named event with a correlation key (the skill `wait`: `{event, key,
    /// timeout?, on_timeout?}`); the task waits without a worker meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<Value>,
    /// Sleeps durably for a duration (`3d`), the task parked in the store (the skill `timer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleep: Option<String>,
    /// Skill input; every string in it is a template.
    #[serde(default, rename = "with")]
    pub with: Value,
    /// Template; the step runs only when it renders to a true value.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Fan-out: a template rendering to a list; the skill runs once per item (`item` and
    /// `index` in the step's templates) and the step's output is the list of results, in item
    /// order. Each finished item is a checkpoint, so a retry runs only the items not done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// Items of `for_each` running at once (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// What a failed item does to a `for_each` step: `fail_fast` (default: the step fails, a
    /// retry runs the failed and unstarted items) or `collect` (the step succeeds; a failed
    /// item's place in the output holds `{error: {code, message}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_item_error: Option<ItemErrors>,
    /// After this step runs, go on with the step of this id (a later one; those in between
    /// are skipped), or `end` to finish the run with this step's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// What a failed `for_each` item does to its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemErrors {
    #[default]
    FailFast,
    Collect,
}

/// Items one `for_each` step may have.
pub const MAX_FOR_EACH_ITEMS: usize = 100_000;

/// Whether `name` is a valid bot, queue or tenant name.
pub fn bot_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl BotDoc {
    /// Checks that need no skill registry: names, kind, step ids. Fills default step ids.
    pub fn normalize(&mut self) -> Result<(), String> {
        if self.kind != "Bot" {
            return Err(format!("kind is `{}`, expected `Bot`", self.kind));
        }
        if !bot_name_ok(&self.metadata.name) {
            return Err(format!(
                "bot name `{}` must be 1-63 lowercase letters, digits, `-` or `_`",
                self.metadata.name
            ));
        }
        if !bot_name_ok(&self.metadata.tenant) {
            return Err(format!(
                "tenant `{}` must be 1-63 lowercase letters, digits, `-` or `_`",
                self.metadata.tenant
            ));
        }
        if !bot_name_ok(&self.spec.queue) {
            return Err(format!(
                "queue name `{}` must be lowercase letters, digits, `-` or `_`",
                self.spec.queue
            ));
        }
        if self.spec.concurrency.as_ref().is_some_and(|c| c.limit == 0) {
            return Err("concurrency.limit must be at least 1".into());
        }
        if let Some(r) = &self.spec.rate_limit {
            if r.limit == 0 || r.per.get().is_zero() {
                return Err(
                    "rate_limit.limit must be at least 1 and rate_limit.per longer than 0s".into(),
                );
            }
        }
        if self.spec.retry.max_attempts == 0 {
            return Err("retry.max_attempts must be at least 1".into());
        }
        for (i, t) in self.spec.triggers.iter().enumerate() {
            let kinds = t.kinds();
            if kinds.len() != 1 {
                return Err(format!(
                    "trigger {} must set exactly one of cron, every, webhook, websocket, mqtt, nats, slack, telegram, feishu, dingtalk, wecom (it sets {})",
                    i + 1,
                    if kinds.is_empty() { "none".to_string() } else { kinds.join(" and ") }
                ));
            }
        }
        for (plugin, grant) in &self.spec.grants {
            check_capabilities(&grant.capabilities).map_err(|e| format!("grants.{plugin}: {e}"))?;
            if !grant.http_allow.is_empty() && !grant.capabilities.iter().any(|c| c == "http") {
                return Err(format!(
                    "grants.{plugin}: `http_allow` is set but capability `http` is not granted"
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, step) in self.spec.steps.iter_mut().enumerate() {
            if step.id == "end" {
                return Err("`end` is not a step id: `next: end` finishes a run".into());
            }
            if step.id.is_empty() {
                step.id = format!("step-{}", i + 1);
            }
            if !seen.insert(step.id.clone()) {
                return Err(format!("step id `{}` appears twice", step.id));
            }
            // `approval:`, `wait:` and `sleep:` are their skills with `with` written in place.
            let keyed: Vec<(&str, Value)> = [
                ("approval", step.approval.take()),
                ("wait", step.wait.take()),
                (
                    "timer",
                    step.sleep.take().map(|d| serde_json::json!({ "for": d })),
                ),
            ]
            .into_iter()
            .filter_map(|(skill, with)| with.map(|w| (skill, w)))
            .collect();
            match (keyed.len(), step.uses.is_empty()) {
                (0, true) => {
                    return Err(format!(
                        "step `{}` sets none of uses, approval, wait and sleep",
                        step.id
                    ))
                }
                (0, false) => {}
                (1, true) if step.with.is_null() => {
                    let (skill, with) = keyed.into_iter().next().expect("one");
                    step.uses = skill.to_string();
                    step.with = with;
                }
                _ => {
                    return Err(format!(
                        "step `{}` sets more than one of uses, approval, wait and sleep (or `with` beside one of the last three)",
                        step.id
                    ))
                }
            }
            if step.for_each.is_none()
                && (step.concurrency.is_some() || step.on_item_error.is_some())
            {
                return Err(format!(
                    "step `{}`: `concurrency` and `on_item_error` belong to a `for_each` step",
                    step.id
                ));
            }
            if step.concurrency == Some(0) {
                return Err(format!(
                    "step `{}`: concurrency must be at least 1",
                    step.id
                ));
            }
            if step.id.contains(['@', '#']) {
                return Err(format!(
                    "step id `{}` may not hold `@` or `#` (they name the checkpoints inside a step)",
                    step.id
                ));
            }
        }
        Ok(())
    }
}

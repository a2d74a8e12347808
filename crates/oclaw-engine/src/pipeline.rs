//! Runs one bot's steps for one task: render `with`, evaluate `if`, call the skill, checkpoint
//! the output, and resume after the last checkpoint on a retry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use oclaw_core::ErrorCode;
use oclaw_skills::{HttpClients, SkillCall, SkillContext, SkillRegistry};
use oclaw_store::{ClaimedTask, Store};
use serde_json::{Map, Value};

use oclaw_bots::catalog::LoadedBot;
use oclaw_bots::templates::TemplateEngine;
use oclaw_bots::LiveCatalog;

/// Everything the executor needs, shared by all tasks of a node.
pub struct Runtime {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<LiveCatalog>,
    pub skills: SkillRegistry,
    pub templates: TemplateEngine,
    pub http: HttpClients,
    pub cache_ttl: Duration,
    /// `secrets` in templates: `OCLAW_SECRET_<NAME>` environment variables, by `<NAME>`.
    pub secrets: minijinja::Value,
    /// `env` in templates: only the environment variables `templates.env` allows.
    pub env: minijinja::Value,
    /// `node` in templates: facts about this node (`api_url`, `id`).
    pub node: minijinja::Value,
    /// The key of per-tenant secrets in the store; `None`: templates see `OCLAW_SECRET_*` only.
    pub secret_key: Option<Arc<oclaw_store::secrets::SecretKey>>,
    /// Each tenant's opened secrets, kept a few seconds.
    pub tenant_secrets: std::sync::Mutex<HashMap<String, (std::time::Instant, minijinja::Value)>>,
    /// Per-tenant limits (`tenants.quotas`).
    pub tenant_quotas: Arc<std::collections::BTreeMap<String, oclaw_core::config::TenantQuota>>,
    /// Task counters and histograms, shared with the API's `/metrics`.
    pub metrics: Arc<oclaw_telemetry::NodeMetrics>,
    /// How much of each conversation channel tasks see as `conversation.history`.
    pub conversation: oclaw_core::config::ConversationConfig,
    /// Built-in bots (reply delivery), by name: run like catalogue bots, never listed, and
    /// named with a dot so no user bot shadows them.
    pub system: std::collections::BTreeMap<String, Arc<LoadedBot>>,
    /// Bots rebuilt from older revisions, by revision, for tasks that began under them.
    pub pinned: std::sync::Mutex<HashMap<String, Arc<LoadedBot>>>,
}

/// The key-value namespace that keeps bot definitions by revision.
pub const REVISIONS: &str = "oclaw.bot-revisions";

/// Revisions kept rebuilt at once (the cache is emptied when it is full).
const PINNED_MAX: usize = 64;

impl Runtime {
    /// The bot `task` runs on: the loaded one, unless the task was stamped with another revision
    /// of it (the bot changed since the task began), which is then rebuilt from the store. A
    /// revision that cannot be found or loaded is logged, and the loaded bot runs.
    pub async fn bot_for(&self, task: &ClaimedTask) -> Option<Arc<LoadedBot>> {
        let loaded = self
            .catalog
            .load()
            .get(&task.bot)
            .or_else(|| self.system.get(&task.bot).cloned());
        let Some(rev) = &task.bot_rev else {
            return loaded;
        };
        if loaded.as_ref().is_some_and(|b| &b.revision == rev) {
            return loaded;
        }
        if let Some(b) = self.pinned.lock().ok().and_then(|p| p.get(rev).cloned()) {
            return Some(b);
        }
        let rebuilt = match self.store.kv_get(REVISIONS, rev, chrono::Utc::now()).await {
            Ok(Some(definition)) => {
                oclaw_bots::catalog::load_revision(&definition, &self.skills, &self.templates)
                    .map_err(|e| e.to_string())
            }
            Ok(None) => Err("the revision is not in the store".to_string()),
            Err(e) => Err(e.to_string()),
        };
        match rebuilt {
            Ok(bot) => {
                let bot = Arc::new(bot);
                tracing::info!(component = "worker", task_id = %task.id, bot = %task.bot, revision = %rev,
                    "the bot changed since the task began; it runs to its end on the revision it began with");
                if let Ok(mut p) = self.pinned.lock() {
                    if p.len() >= PINNED_MAX {
                        p.clear();
                    }
                    p.insert(rev.clone(), bot.clone());
                }
                Some(bot)
            }
            Err(why) => {
                tracing::warn!(component = "worker", task_id = %task.id, bot = %task.bot, revision = %rev,
                    "cannot run the task on the bot revision it began with ({why}); it runs on the bot as loaded");
                loaded
            }
        }
    }
}

impl Runtime {
    /// Reads secrets and environment from the process environment.
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Arc<LiveCatalog>,
        skills: SkillRegistry,
        templates: TemplateEngine,
        cache_ttl: Duration,
        node: Value,
    ) -> Result<Runtime, String> {
        let mut secrets = Map::new();
        for (k, v) in std::env::vars() {
            if let Some(name) = k.strip_prefix("OCLAW_SECRET_") {
                secrets.insert(name.to_string(), Value::String(v));
            }
        }
        Ok(Runtime {
            store,
            catalog,
            skills,
            templates,
            http: HttpClients::new()?,
            cache_ttl,
            secrets: oclaw_bots::templates::to_template_value(&Value::Object(secrets)),
            env: Runtime::template_env(&[]),
            node: oclaw_bots::templates::to_template_value(&node),
            metrics: Arc::default(),
            tenant_quotas: Arc::default(),
            secret_key: None,
            tenant_secrets: Default::default(),
            conversation: Default::default(),
            system: Default::default(),
            pinned: Default::default(),
        })
    }
}

/// How long a tenant's opened secrets are reused before the store is read again.
const SECRETS_FRESH: Duration = Duration::from_secs(5);

impl Runtime {
    /// `secrets` in templates for a task of `tenant`: its secrets from the store (when the node
    /// has a secrets key), and for the `default` tenant also the `OCLAW_SECRET_*` variables
    /// (the store's win). Another tenant never sees the environment's.
    pub async fn secrets_for(&self, tenant: &str) -> minijinja::Value {
        let default = tenant == oclaw_core::bot::DEFAULT_TENANT;
        let Some(key) = &self.secret_key else {
            return if default {
                self.secrets.clone()
            } else {
                oclaw_bots::templates::to_template_value(&Value::Object(Map::new()))
            };
        };
        if let Some((at, v)) = self
            .tenant_secrets
            .lock()
            .ok()
            .and_then(|c| c.get(tenant).cloned())
        {
            if at.elapsed() < SECRETS_FRESH {
                return v;
            }
        }
        let mut map: Map<String, Value> = Map::new();
        if default {
            for (k, v) in std::env::vars() {
                if let Some(name) = k.strip_prefix("OCLAW_SECRET_") {
                    map.insert(name.to_string(), Value::String(v));
                }
            }
        }
        match self.store.secret_sealed(tenant).await {
            Ok(rows) => {
                for (name, sealed) in rows {
                    match key.open(tenant, &name, &sealed) {
                        Ok(v) => {
                            map.insert(name, Value::String(v));
                        }
                        Err(why) => tracing::warn!(component = "worker", tenant, secret = %name,
                            "cannot open a secret: {why}"),
                    }
                }
            }
            Err(e) => tracing::warn!(
                component = "worker",
                tenant,
                "cannot read the tenant's secrets: {e}"
            ),
        }
        let value = oclaw_bots::templates::to_template_value(&Value::Object(map));
        if let Ok(mut c) = self.tenant_secrets.lock() {
            c.insert(
                tenant.to_string(),
                (std::time::Instant::now(), value.clone()),
            );
        }
        value
    }

    /// `env` in templates: the named environment variables that are set (`templates.env`),
    /// never an `OCLAW_` one — those hold the node's settings, tokens and database URL.
    pub fn template_env(allowed: &[String]) -> minijinja::Value {
        let mut env = Map::new();
        for name in allowed {
            if name.starts_with("OCLAW_") {
                continue;
            }
            if let Ok(v) = std::env::var(name) {
                env.insert(name.clone(), Value::String(v));
            }
        }
        oclaw_bots::templates::to_template_value(&Value::Object(env))
    }
}

/// How a run ended when it did not fail.
#[derive(Debug)]
pub enum Finish {
    /// The pipeline's output, with the key-value writes that go with the success.
    Done(Value, Vec<oclaw_store::KvWrite>),
    /// A step parks the task (`wait`, `approval`, `sleep`, `bot.call`); the store queues it
    /// again with the wait's outcome as that step's output.
    Park(Box<ParkRequest>),
}

/// The wait a step asks for, and the child task of a `bot.call`.
#[derive(Debug)]
pub struct ParkRequest {
    pub wait: oclaw_store::waits::NewWait,
    pub child: Option<oclaw_core::NewTask>,
}

/// The wait a parking skill's answer describes (see `oclaw_skills::waits`).
fn park_request(
    rt: &Runtime,
    task: &ClaimedTask,
    step: &oclaw_core::bot::Step,
    index: usize,
    asked: &Value,
) -> Result<ParkRequest, RunFailure> {
    use oclaw_store::waits::{NewWait, OnTimeout, WaitKind};
    let kind = match asked["kind"].as_str() {
        Some("event") => WaitKind::Event,
        Some("approval") => WaitKind::Approval,
        Some("sleep") => WaitKind::Sleep,
        Some("child") => WaitKind::Child,
        _ => {
            return Err(in_step(
                &step.id,
                ErrorCode::SkillFailed,
                format!("the step's skill asked for an unknown wait: {asked}"),
                false,
            ))
        }
    };
    let deadline = asked["timeout_ms"].as_u64().map(|ms| {
        chrono::Utc::now() + chrono::Duration::milliseconds(ms.min(i64::MAX as u64 / 2) as i64)
    });
    let on_timeout = match asked["on_timeout"].get("error") {
        Some(e) => OnTimeout::Fail(oclaw_core::TaskError {
            code: e["code"].as_str().unwrap_or_default().to_string(),
            message: e["message"].as_str().unwrap_or_default().to_string(),
        }),
        None => OnTimeout::Output(asked["on_timeout"]["output"].clone()),
    };
    let child = match asked.get("call") {
        Some(call) => {
            let name = call["bot"].as_str().unwrap_or_default();
            // Another tenant's bot is as missing as one that is not loaded.
            let bot = rt
                .catalog
                .load()
                .get(name)
                .filter(|b| b.doc.metadata.tenant == task.tenant)
                .ok_or_else(|| {
                    in_step(
                        &step.id,
                        ErrorCode::BotMissing,
                        format!("bot.call: bot `{name}` is not loaded on this node"),
                        true,
                    )
                })?;
            let mut child =
                oclaw_core::NewTask::new(name, bot.doc.spec.queue.clone(), call["input"].clone());
            child.max_attempts = bot.doc.spec.retry.max_attempts;
            child.trace_id = task.trace_id.clone();
            bot.stamp(&mut child);
            Some(child)
        }
        None => None,
    };
    // An approval of a task that came from a conversation can be answered from it.
    let key = match kind {
        WaitKind::Approval => oclaw_core::channel::conversation_key(&task.input),
        _ => asked["key"].as_str().map(str::to_string),
    };
    Ok(ParkRequest {
        wait: NewWait {
            step: step.id.clone(),
            index: index as u32,
            kind,
            name: asked["name"].as_str().map(str::to_string),
            key,
            deadline,
            on_timeout,
            detail: asked["detail"].clone(),
        },
        child,
    })
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFailure {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
    pub step: Option<String>,
}

impl RunFailure {
    pub fn new(code: ErrorCode, message: impl Into<String>, retryable: bool) -> RunFailure {
        RunFailure {
            code,
            message: message.into(),
            retryable,
            step: None,
        }
    }
}

fn in_step(step: &str, code: ErrorCode, message: String, retryable: bool) -> RunFailure {
    RunFailure {
        code,
        message: format!("step `{step}`: {message}"),
        retryable,
        step: Some(step.to_string()),
    }
}

/// Where a pipeline goes after a step ran.
enum Jump {
    /// The next step.
    On,
    /// The step at this index (later steps only: checked at load).
    To(usize),
    /// Nowhere: the run ends with this step's output.
    End,
}

/// The jump after `step` ran with `output`: a `switch` step's chosen case, else the step's
/// `next`.
fn jump(
    bot: &LoadedBot,
    step: &oclaw_core::bot::Step,
    skill: &str,
    output: &Value,
) -> Result<Jump, RunFailure> {
    let chosen = (skill == "switch")
        .then(|| output["next"].as_str())
        .flatten()
        .or(step.next.as_deref());
    let Some(target) = chosen else {
        return Ok(Jump::On);
    };
    if target == oclaw_skills::switch::END {
        return Ok(Jump::End);
    }
    bot.steps
        .iter()
        .position(|(s, _)| s.id == target)
        .map(Jump::To)
        .ok_or_else(|| {
            in_step(
                &step.id,
                ErrorCode::SkillInvalidInput,
                format!("goes on with `{target}`, which is not a step of the bot"),
                false,
            )
        })
}

/// One step's skill, ready to be called (once, or once per `for_each` item).
struct Call<'a> {
    rt: &'a Runtime,
    bot: &'a LoadedBot,
    task: &'a ClaimedTask,
    step: &'a oclaw_core::bot::Step,
    index: usize,
    skill: &'a Arc<dyn oclaw_skills::Skill>,
    parent_span: &'a str,
}

impl Call<'_> {
    /// Calls the skill with rendered `with`; `place` names the call's checkpoints (the step
    /// id, or `<step>@<item>` for an item of a fan-out).
    async fn run(
        &self,
        place: &str,
        with: Value,
        data: Value,
    ) -> Result<Value, oclaw_skills::SkillError> {
        let (rt, task) = (self.rt, self.task);
        let tracer = oclaw_telemetry::otlp::tracer();
        let outbound = matches!(self.skill.name(), "http.request" | "notify.webhook");
        let mut skill_span = tracer.start(
            &task.trace_id,
            Some(self.parent_span),
            || format!("skill {}", self.skill.name()),
            if outbound {
                oclaw_telemetry::otlp::SpanKind::Client
            } else {
                oclaw_telemetry::otlp::SpanKind::Internal
            },
        );
        let skill_ctx = SkillContext {
            bot: self.bot.name().to_string(),
            tenant: task.tenant.clone(),
            task_id: task.id,
            trace_id: task.trace_id.clone(),
            span_id: skill_span.span_id.clone(),
            step: self.step.id.clone(),
            store: rt.store.clone(),
            http: rt.http.clone(),
            cache_ttl: rt.cache_ttl,
            allow_private_network: self.bot.doc.spec.allow_private_network,
            grants: self.bot.grants.clone(),
            budget: self.bot.doc.spec.budget,
            tenant_tokens_per_day: rt
                .tenant_quotas
                .get(&task.tenant)
                .and_then(|q| q.llm_tokens_per_day),
            journal: oclaw_skills::Journal::new(
                rt.store.clone(),
                task.id,
                place,
                self.index as u32,
                task.checkpoints
                    .iter()
                    .map(|c| (c.step.as_str(), &c.output)),
            ),
        };
        let output = self.skill.run(&skill_ctx, SkillCall { with, data }).await;
        if tracer.enabled() {
            skill_span.attr("oclaw.skill", self.skill.name());
            skill_span.end(
                output
                    .as_ref()
                    .err()
                    .map(|e| format!("{}: {}", e.code.code(), e.message)),
            );
        }
        output
    }

    /// Runs the skill once per item of the list `list` renders to, `concurrency` at once, each
    /// finished item saved as the checkpoint `<step>@<index>` (items saved by an earlier
    /// attempt are not run again). The output is the results in item order.
    async fn for_each(
        &self,
        list: &str,
        ctx: &minijinja::Value,
        saved: &HashMap<&str, &Value>,
    ) -> Result<Value, RunFailure> {
        use futures_util::StreamExt;
        let id = &self.step.id;
        let items = match self
            .rt
            .templates
            .render(&Value::String(list.to_string()), ctx)
        {
            Ok(Value::Array(items)) if items.len() <= oclaw_core::bot::MAX_FOR_EACH_ITEMS => items,
            Ok(Value::Array(items)) => {
                return Err(in_step(
                    id,
                    ErrorCode::ForEachNotList,
                    format!(
                        "for_each has {} items, more than {}",
                        items.len(),
                        oclaw_core::bot::MAX_FOR_EACH_ITEMS
                    ),
                    false,
                ))
            }
            Ok(other) => {
                let kind = match other {
                    Value::Null => "null",
                    Value::Bool(_) => "a boolean",
                    Value::Number(_) => "a number",
                    Value::String(_) => "text",
                    _ => "an object",
                };
                return Err(in_step(
                    id,
                    ErrorCode::ForEachNotList,
                    format!("for_each `{list}` rendered to {kind}, not a list"),
                    false,
                ));
            }
            Err(m) => return Err(in_step(id, ErrorCode::TemplateRender, m, false)),
        };
        let collect = self.step.on_item_error == Some(oclaw_core::bot::ItemErrors::Collect);
        let concurrency = self.step.concurrency.unwrap_or(1).max(1);
        let checkpoint = !self.skill.pure();
        let mut results: Vec<Option<Value>> = vec![None; items.len()];
        let mut todo = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match saved.get(format!("{id}@{i}").as_str()) {
                Some(done) => results[i] = Some((*done).clone()),
                None => todo.push((i, item)),
            }
        }
        let mut running =
            futures_util::stream::iter(todo.into_iter().map(|(i, item)| async move {
                let result = async {
                    let place = format!("{id}@{i}");
                    let item_ctx = minijinja::context! {
                        item => oclaw_bots::templates::to_template_value(&item),
                        index => i,
                        ..ctx.clone()
                    };
                    let with = self
                        .rt
                        .templates
                        .render(&self.step.with, &item_ctx)
                        .map_err(|m| {
                            oclaw_skills::SkillError::permanent(ErrorCode::TemplateRender, m)
                        })?;
                    // The item is the call's data (what `transform` and `log` work on by default).
                    let output = self.run(&place, with, item).await?;
                    if checkpoint {
                        self.rt
                            .store
                            .save_checkpoint(self.task.id, &place, self.index as u32, &output)
                            .await
                            .map_err(|e| {
                                oclaw_skills::SkillError::transient(
                                    e.code(),
                                    format!("saving checkpoint: {e}"),
                                )
                            })?;
                    }
                    Ok::<_, oclaw_skills::SkillError>(output)
                }
                .await;
                (i, result)
            }))
            .buffer_unordered(concurrency);
        while let Some((i, result)) = running.next().await {
            match result {
                Ok(output) => results[i] = Some(output),
                Err(e) if collect => {
                    results[i] = Some(serde_json::json!({
                        "error": {"code": e.code.code(), "message": e.message}
                    }))
                }
                // The items still running are dropped; their finished siblings are saved.
                Err(e) => {
                    return Err(in_step(
                        &format!("{id}[{i}]"),
                        e.code,
                        e.message,
                        e.retryable,
                    ))
                }
            }
        }
        Ok(Value::Array(
            results.into_iter().map(Option::unwrap_or_default).collect(),
        ))
    }
}

/// Runs the bot's pipeline for `task`. The output is the last executed step's output (the
/// input itself for a bot without steps).
pub async fn run_pipeline(
    rt: &Runtime,
    bot: &LoadedBot,
    task: &ClaimedTask,
) -> Result<Finish, RunFailure> {
    let tracer = oclaw_telemetry::otlp::tracer();
    let mut span = tracer.start(
        &task.trace_id,
        None,
        || format!("task {}", bot.name()),
        oclaw_telemetry::otlp::SpanKind::Consumer,
    );
    let result = run_steps(rt, bot, task, &span.span_id).await;
    if tracer.enabled() {
        span.attr("oclaw.task_id", task.id.to_string());
        span.attr("oclaw.bot", bot.name());
        span.attr("oclaw.queue", task.queue.as_str());
        span.attr("oclaw.attempt", task.attempt);
        span.end(
            result
                .as_ref()
                .err()
                .map(|f| format!("{}: {}", f.code.code(), f.message)),
        );
    }
    result
}

async fn run_steps(
    rt: &Runtime,
    bot: &LoadedBot,
    task: &ClaimedTask,
    task_span: &str,
) -> Result<Finish, RunFailure> {
    if bot.steps.is_empty() {
        return Ok(Finish::Done(task.input.clone(), Vec::new()));
    }
    let saved: HashMap<&str, &Value> = task
        .checkpoints
        .iter()
        .map(|c| (c.step.as_str(), &c.output))
        .collect();
    let input = oclaw_bots::templates::to_template_value(&task.input);
    let task_info = oclaw_bots::templates::to_template_value(&serde_json::json!({
        "id": task.id.to_string(), "attempt": task.attempt, "bot": bot.name(), "trace_id": task.trace_id,
    }));
    let session = crate::conversation::Session::open(rt, &task.input).await;
    let conversation = oclaw_bots::templates::to_template_value(
        &session
            .as_ref()
            .map(crate::conversation::Session::template_value)
            .unwrap_or(Value::Null),
    );
    if let Some(agent) = session.as_ref().and_then(|s| s.held_by()) {
        // A person holds the conversation: the message is theirs to answer; the bot's steps
        // wait until it is handed back.
        let writes = session
            .map(|s| s.record_held(rt, &task.input))
            .unwrap_or_default();
        return Ok(Finish::Done(
            serde_json::json!({"text": null, "held": true, "agent": agent}),
            writes,
        ));
    }
    let secrets = rt.secrets_for(&task.tenant).await;
    let mut outputs = Map::new();
    let mut data = task.input.clone();
    let last = bot.steps.len() - 1;
    // Where a jump (`next`, `switch`) goes on: the steps before it are skipped.
    let mut resume_at: Option<usize> = None;
    for (index, (step, skill)) in bot.steps.iter().enumerate() {
        if resume_at.is_some_and(|to| index < to) {
            outputs.insert(
                step.id.clone(),
                serde_json::json!({ "output": null, "skipped": true }),
            );
            continue;
        }
        if let Some(output) = saved.get(step.id.as_str()) {
            outputs.insert(step.id.clone(), serde_json::json!({ "output": output }));
            data = (*output).clone();
            match jump(bot, step, skill.name(), &data)? {
                Jump::End => break,
                Jump::To(to) => resume_at = Some(to),
                Jump::On => {}
            }
            continue;
        }
        let ctx = minijinja::context! {
            input => input.clone(),
            steps => oclaw_bots::templates::to_template_value(&outputs),
            secrets => secrets.clone(),
            env => rt.env.clone(),
            node => rt.node.clone(),
            task => task_info.clone(),
            conversation => conversation.clone(),
            data => oclaw_bots::templates::to_template_value(&data),
        };
        if let Some(cond) = &step.condition {
            let run = rt
                .templates
                .condition(cond, &ctx)
                .map_err(|m| in_step(&step.id, ErrorCode::TemplateRender, m, false))?;
            if !run {
                outputs.insert(
                    step.id.clone(),
                    serde_json::json!({ "output": null, "skipped": true }),
                );
                continue;
            }
        }
        let tracer = oclaw_telemetry::otlp::tracer();
        let mut step_span = tracer.start(
            &task.trace_id,
            Some(task_span),
            || format!("step {}", step.id),
            oclaw_telemetry::otlp::SpanKind::Internal,
        );
        let call = Call {
            rt,
            bot,
            task,
            step,
            index,
            skill,
            parent_span: &step_span.span_id,
        };
        let output = match &step.for_each {
            None => match rt.templates.render(&step.with, &ctx) {
                Ok(with) => call
                    .run(&step.id, with, data.clone())
                    .await
                    .map_err(|e| in_step(&step.id, e.code, e.message, e.retryable)),
                Err(m) => Err(in_step(&step.id, ErrorCode::TemplateRender, m, false)),
            },
            Some(list) => call.for_each(list, &ctx, &saved).await,
        };
        if tracer.enabled() {
            step_span.attr("oclaw.step", step.id.as_str());
            step_span.attr("oclaw.step_index", index as u64);
            step_span.end(
                output
                    .as_ref()
                    .err()
                    .map(|f| format!("{}: {}", f.code.code(), f.message)),
            );
        }
        let output = output?;
        if skill.parks() {
            // The step's output comes when the wait ends (the store writes it as the step's
            // checkpoint and queues the task again).
            let request = park_request(rt, task, step, index, &output)?;
            return Ok(Finish::Park(Box::new(request)));
        }
        if index < last && !skill.pure() {
            // The last step's output is saved with the completion; earlier ones are checkpoints
            // (except pure ones, which a retry simply runs again).
            rt.store
                .save_checkpoint(task.id, &step.id, index as u32, &output)
                .await
                .map_err(|e| {
                    in_step(&step.id, e.code(), format!("saving checkpoint: {e}"), true)
                })?;
        }
        outputs.insert(step.id.clone(), serde_json::json!({ "output": &output }));
        data = output;
        match jump(bot, step, skill.name(), &data)? {
            Jump::End => break,
            Jump::To(to) => resume_at = Some(to),
            Jump::On => {}
        }
    }
    let writes = session
        .map(|s| s.record(rt, task, &data))
        .unwrap_or_default();
    Ok(Finish::Done(data, writes))
}

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
    /// `env` in templates: the process environment without secrets.
    pub env: minijinja::Value,
    /// `node` in templates: facts about this node (`api_url`, `id`).
    pub node: minijinja::Value,
    /// Task counters and histograms, shared with the API's `/metrics`.
    pub metrics: Arc<oclaw_telemetry::NodeMetrics>,
    /// How much of each conversation channel tasks see as `conversation.history`.
    pub conversation: oclaw_core::config::ConversationConfig,
    /// Built-in bots (reply delivery), by name: run like catalogue bots, never listed, and
    /// named with a dot so no user bot shadows them.
    pub system: std::collections::BTreeMap<String, Arc<LoadedBot>>,
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
        let mut env = Map::new();
        for (k, v) in std::env::vars() {
            match k.strip_prefix("OCLAW_SECRET_") {
                Some(name) => {
                    secrets.insert(name.to_string(), Value::String(v));
                }
                None => {
                    env.insert(k, Value::String(v));
                }
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
            env: oclaw_bots::templates::to_template_value(&Value::Object(env)),
            node: oclaw_bots::templates::to_template_value(&node),
            metrics: Arc::default(),
            conversation: Default::default(),
            system: Default::default(),
        })
    }
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

/// Runs the bot's pipeline for `task`. The output is the last executed step's output (the
/// input itself for a bot without steps).
pub async fn run_pipeline(
    rt: &Runtime,
    bot: &LoadedBot,
    task: &ClaimedTask,
) -> Result<(Value, Vec<oclaw_store::KvWrite>), RunFailure> {
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
) -> Result<(Value, Vec<oclaw_store::KvWrite>), RunFailure> {
    if bot.steps.is_empty() {
        return Ok((task.input.clone(), Vec::new()));
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
    let mut outputs = Map::new();
    let mut data = task.input.clone();
    let last = bot.steps.len() - 1;
    for (index, (step, skill)) in bot.steps.iter().enumerate() {
        if let Some(output) = saved.get(step.id.as_str()) {
            outputs.insert(step.id.clone(), serde_json::json!({ "output": output }));
            data = (*output).clone();
            continue;
        }
        let ctx = minijinja::context! {
            input => input.clone(),
            steps => oclaw_bots::templates::to_template_value(&outputs),
            secrets => rt.secrets.clone(),
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
        let outbound = matches!(skill.name(), "http.request" | "notify.webhook");
        let mut skill_span = tracer.start(
            &task.trace_id,
            Some(&step_span.span_id),
            || format!("skill {}", skill.name()),
            if outbound {
                oclaw_telemetry::otlp::SpanKind::Client
            } else {
                oclaw_telemetry::otlp::SpanKind::Internal
            },
        );
        let with = rt
            .templates
            .render(&step.with, &ctx)
            .map_err(|m| in_step(&step.id, ErrorCode::TemplateRender, m, false))?;
        let skill_ctx = SkillContext {
            bot: bot.name().to_string(),
            task_id: task.id,
            trace_id: task.trace_id.clone(),
            span_id: skill_span.span_id.clone(),
            step: step.id.clone(),
            store: rt.store.clone(),
            http: rt.http.clone(),
            cache_ttl: rt.cache_ttl,
            allow_private_network: bot.doc.spec.allow_private_network,
            grants: bot.grants.clone(),
            budget: bot.doc.spec.budget,
            journal: oclaw_skills::Journal::new(
                rt.store.clone(),
                task.id,
                &step.id,
                index as u32,
                task.checkpoints
                    .iter()
                    .map(|c| (c.step.as_str(), &c.output)),
            ),
        };
        let output = skill
            .run(
                &skill_ctx,
                SkillCall {
                    with,
                    data: data.clone(),
                },
            )
            .await;
        if tracer.enabled() {
            let error = output
                .as_ref()
                .err()
                .map(|e| format!("{}: {}", e.code.code(), e.message));
            step_span.attr("oclaw.step", step.id.as_str());
            step_span.attr("oclaw.step_index", index as u64);
            skill_span.attr("oclaw.skill", skill.name());
            skill_span.end(error.clone());
            step_span.end(error);
        }
        let output = output.map_err(|e| in_step(&step.id, e.code, e.message, e.retryable))?;
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
    }
    let writes = session
        .map(|s| vec![s.record(rt, &task.input, &data)])
        .unwrap_or_default();
    Ok((data, writes))
}

//! Token budgets of a bot (`spec.budget`): every model call reserves its estimate on the bot's
//! day counter and the task's counter before it is made, and settles to the provider's count
//! after (a failed call gives its reservation back). The counters live in the store
//! (`kv_add`, atomic), so every node of a cluster spends from the same budget.

use chrono::{Duration as Days, Utc};
use oclaw_core::ErrorCode;
use oclaw_skills::{SkillContext, SkillError};

use crate::chat_skill::skill_error;
use crate::{ChatRequest, ChatResponse, Llm};

const NAMESPACE: &str = "_llm_budget";
/// Output tokens reserved for a call that sets no `max_tokens`.
const DEFAULT_OUTPUT: u64 = 512;

/// A rough count of the tokens a request sends (4 characters a token) plus what it may get back.
pub(crate) fn estimate(request: &ChatRequest) -> u64 {
    let chars: usize = request
        .messages
        .iter()
        .map(|m| {
            m.content.len()
                + m.tool_calls
                    .iter()
                    .map(|c| c.arguments.to_string().len())
                    .sum::<usize>()
        })
        .sum::<usize>()
        + request
            .tools
            .iter()
            .map(|t| t.parameters.to_string().len() + t.description.len())
            .sum::<usize>();
    (chars as u64).div_ceil(4) + request.max_tokens.map(u64::from).unwrap_or(DEFAULT_OUTPUT)
}

/// A rough count of the tokens of `texts` (4 characters a token), for embeddings.
pub(crate) fn estimate_texts(texts: &[String]) -> u64 {
    texts
        .iter()
        .map(|t| t.len() as u64)
        .sum::<u64>()
        .div_ceil(4)
}

pub(crate) struct Counter {
    key: String,
    limit: i64,
    expires: chrono::DateTime<Utc>,
    what: &'static str,
}

/// The counters `ctx`'s bot budget keeps.
fn counters(ctx: &SkillContext) -> Vec<Counter> {
    let now = Utc::now();
    let today = now.date_naive();
    let midnight = (today + Days::days(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or(now);
    let mut out = Vec::new();
    if let Some(n) = ctx.tenant_tokens_per_day {
        // Bot names are lowercase letters, digits, `-` and `_`: no bot's key has a colon.
        out.push(Counter {
            key: format!("tenant:{}/day/{today}", ctx.tenant),
            limit: n.min(i64::MAX as u64) as i64,
            expires: midnight + Days::days(1),
            what: "tenant's llm_tokens_per_day",
        });
    }
    let Some(budget) = ctx.budget else {
        return out;
    };
    if let Some(n) = budget.tokens_per_day {
        out.push(Counter {
            key: format!("{}/day/{today}", ctx.bot),
            limit: n.min(i64::MAX as u64) as i64,
            expires: midnight + Days::days(1),
            what: "tokens_per_day",
        });
    }
    if let Some(n) = budget.tokens_per_task {
        out.push(Counter {
            key: format!("{}/task/{}", ctx.bot, ctx.task_id),
            limit: n.min(i64::MAX as u64) as i64,
            expires: now + Days::days(7),
            what: "tokens_per_task",
        });
    }
    out
}

async fn add(
    ctx: &SkillContext,
    c: &Counter,
    delta: i64,
    limit: Option<i64>,
) -> Result<Option<i64>, SkillError> {
    ctx.store
        .kv_add(NAMESPACE, &c.key, delta, limit, Some(c.expires), Utc::now())
        .await
        .map_err(|e| SkillError::transient(e.code(), format!("token budget: {e}")))
}

/// Reserves `reserved` tokens on every counter of `ctx`'s budget, or refuses (OC-4036) and
/// reserves nothing. Answers the counters, to [`settle`] after the call.
pub(crate) async fn reserve(ctx: &SkillContext, reserved: i64) -> Result<Vec<Counter>, SkillError> {
    let counters = counters(ctx);
    for (i, c) in counters.iter().enumerate() {
        if add(ctx, c, reserved, Some(c.limit)).await?.is_none() {
            for earlier in &counters[..i] {
                add(ctx, earlier, -reserved, None).await?;
            }
            return Err(SkillError::permanent(
                ErrorCode::LlmBudgetSpent,
                format!(
                    "bot `{}` cannot spend ~{reserved} more tokens: its {} of {} is spent",
                    ctx.bot, c.what, c.limit
                ),
            ));
        }
    }
    Ok(counters)
}

/// Turns a reservation into what the call used (0 for a failed call).
pub(crate) async fn settle(
    ctx: &SkillContext,
    counters: &[Counter],
    reserved: i64,
    used: i64,
) -> Result<(), SkillError> {
    for c in counters {
        add(ctx, c, used - reserved, None).await?;
    }
    Ok(())
}

/// Calls the model within the bot's budget.
pub(crate) async fn metered_chat(
    llm: &Llm,
    ctx: &SkillContext,
    model: Option<&str>,
    request: &ChatRequest,
    on_delta: crate::OnDelta<'_>,
) -> Result<ChatResponse, SkillError> {
    let reserved = estimate(request) as i64;
    let counters = reserve(ctx, reserved).await?;
    // A client span per call, with the OpenTelemetry GenAI attributes (no prompt or answer).
    let tracer = oclaw_telemetry::otlp::tracer();
    let asked = model.or(llm.default_model()).unwrap_or("").to_string();
    let mut span = tracer.start(
        &ctx.trace_id,
        Some(&ctx.span_id),
        || {
            format!(
                "chat {}",
                asked.split_once('/').map(|(_, m)| m).unwrap_or(&asked)
            )
        },
        oclaw_telemetry::otlp::SpanKind::Client,
    );
    let answer = llm.chat(model, request, on_delta).await;
    if tracer.enabled() {
        span.attr("gen_ai.operation.name", "chat");
        if let Some((provider, m)) = asked.split_once('/') {
            span.attr("gen_ai.provider.name", provider);
            span.attr("gen_ai.request.model", m);
        }
        if let Some(max) = request.max_tokens {
            span.attr("gen_ai.request.max_tokens", max);
        }
        if let Ok(a) = &answer {
            span.attr("gen_ai.response.model", a.model.as_str());
            span.attr("gen_ai.response.finish_reasons", a.finish_reason.as_str());
            span.attr("gen_ai.usage.input_tokens", a.usage.input_tokens);
            span.attr("gen_ai.usage.output_tokens", a.usage.output_tokens);
        }
    }
    span.end(answer.as_ref().err().map(|e| e.to_string()));
    let used = match &answer {
        Ok(a) => (a.usage.input_tokens + a.usage.output_tokens) as i64,
        Err(_) => 0,
    };
    settle(ctx, &counters, reserved, used).await?;
    answer.map_err(skill_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, Role};

    #[test]
    fn the_estimate_counts_the_prompt_and_the_answer_allowed() {
        let r = ChatRequest {
            messages: vec![Message::new(Role::User, "x".repeat(400))],
            max_tokens: Some(50),
            ..Default::default()
        };
        assert_eq!(estimate(&r), 150);
        let open = ChatRequest {
            max_tokens: None,
            ..r
        };
        assert_eq!(estimate(&open), 100 + DEFAULT_OUTPUT);
    }
}

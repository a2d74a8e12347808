//! [`Llm`]: every configured provider, the model a step gets by default, and the chain tried
//! when one fails. Each provider has a limit on calls at once and a circuit breaker: after
//! three failures in a row it is skipped for 30 s, then tried again with one call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oclaw_core::config::{LlmConfig, LlmKind};
use tokio::sync::Semaphore;

use crate::{ChatRequest, ChatResponse, EmbedResponse, LlmError, OnDelta, Provider};

/// Failures in a row that open a provider's breaker.
const TRIP_AFTER: u32 = 3;
/// How long an open breaker skips its provider.
const COOL_DOWN: Duration = Duration::from_secs(30);
/// Longest `Retry-After` waited for when no other provider is left to try.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// A bucket of `capacity` that refills continuously at `capacity` a minute.
struct Bucket {
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn per_minute(n: Option<u32>) -> Option<Bucket> {
        n.filter(|n| *n > 0).map(|n| Bucket {
            capacity: f64::from(n),
            state: Mutex::new((f64::from(n), Instant::now())),
        })
    }

    /// Takes `amount` now, or says how long until it could be taken (nothing taken then).
    fn take(&self, amount: f64) -> Result<(), Duration> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let rate = self.capacity / 60.0;
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * rate).min(self.capacity);
        s.1 = now;
        // A call larger than the whole bucket waits for a full bucket.
        let need = amount.min(self.capacity);
        if s.0 >= need {
            s.0 -= amount;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((need - s.0) / rate))
        }
    }

    /// Gives back (or, negative, takes more of) what an estimate got wrong.
    fn settle(&self, amount: f64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 = (s.0 + amount).min(self.capacity);
    }
}

#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

struct Entry {
    provider: Arc<dyn Provider>,
    slots: Semaphore,
    timeout: Duration,
    breaker: Mutex<Breaker>,
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

impl Entry {
    /// Waits for the provider's rate limits to let a call of `tokens` through, as long as that
    /// fits in the call's timeout; past it, the call is rate limited here, as by a 429.
    async fn admit(&self, tokens: f64) -> Result<(), LlmError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let waits = [
                self.requests.as_ref().map(|b| b.take(1.0)),
                self.tokens.as_ref().map(|b| b.take(tokens)),
            ];
            let wait = match waits {
                [None | Some(Ok(())), None | Some(Ok(()))] => return Ok(()),
                // One bucket admitted and the other did not: give the first back.
                [r, t] => {
                    if let (Some(Ok(())), Some(b)) = (&r, &self.requests) {
                        b.settle(1.0);
                    }
                    if let (Some(Ok(())), Some(b)) = (&t, &self.tokens) {
                        b.settle(tokens);
                    }
                    [r, t]
                        .into_iter()
                        .filter_map(|w| w.and_then(Result::err))
                        .max()
                        .unwrap_or_default()
                }
            };
            if Instant::now() + wait > deadline {
                return Err(LlmError::RateLimited {
                    retry_after: Some(wait),
                });
            }
            tokio::time::sleep(wait).await;
        }
    }
}

impl Entry {
    fn cooling(&self) -> bool {
        let b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.open_until.is_some_and(|t| Instant::now() < t)
    }

    fn record(&self, ok: bool) {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            *b = Breaker::default();
        } else {
            b.failures += 1;
            if b.failures >= TRIP_AFTER {
                b.open_until = Some(Instant::now() + COOL_DOWN);
            }
        }
    }
}

/// The providers of `llm:` and the routing between them.
pub struct Llm {
    providers: BTreeMap<String, Entry>,
    default: Option<String>,
    fallback: Vec<String>,
    /// Prompts and completions may go to the debug log.
    pub log_content: bool,
    /// `llm.prices`, by `provider/model`.
    prices: BTreeMap<String, oclaw_core::config::LlmPrice>,
}

/// The `outcome` label of a call's result.
fn outcome<T>(r: &Result<T, LlmError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(LlmError::RateLimited { .. }) => "rate_limited",
        Err(LlmError::Server { .. }) => "server_error",
        Err(LlmError::Timeout) => "timeout",
        Err(LlmError::Transport(_)) => "transport",
        Err(LlmError::Refused { .. }) => "refused",
        Err(LlmError::BadResponse(_)) => "bad_response",
        Err(LlmError::CoolingDown { .. }) => "cooling_down",
    }
}

/// `{{ secrets.NAME }}` → the environment's `OCLAW_SECRET_NAME`.
fn secret(template: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let name = template
        .trim()
        .strip_prefix("{{")
        .and_then(|t| t.strip_suffix("}}"))
        .and_then(|t| t.trim().strip_prefix("secrets."))
        .map(str::trim)
        .ok_or_else(|| format!("`{template}` is not {{{{ secrets.NAME }}}}"))?;
    env(&format!("OCLAW_SECRET_{name}"))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("secret {name} is not set (OCLAW_SECRET_{name})"))
}

impl Llm {
    /// The providers of `config`, their keys read from the environment through `env`.
    pub fn from_config(
        config: &LlmConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Llm, String> {
        config.check()?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut providers = BTreeMap::new();
        for (name, p) in &config.providers {
            let api_key = match &p.api_key {
                Some(t) => {
                    Some(secret(t, env).map_err(|e| format!("llm.providers.{name}.api_key: {e}"))?)
                }
                None => None,
            };
            let timeout = p.timeout.get();
            let http = reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(10)))
                .build()
                .map_err(|e| format!("llm.providers.{name}: {e}"))?;
            let provider: Arc<dyn Provider> = match p.kind {
                LlmKind::Openai => Arc::new(crate::openai::OpenAi {
                    name: name.clone(),
                    base_url: p
                        .base_url
                        .clone()
                        .unwrap_or_else(|| "https://api.openai.com/v1".into()),
                    api_key,
                    http,
                }),
                LlmKind::Anthropic => Arc::new(crate::anthropic::Anthropic {
                    name: name.clone(),
                    base_url: p
                        .base_url
                        .clone()
                        .unwrap_or_else(|| "https://api.anthropic.com".into()),
                    api_key,
                    http,
                }),
            };
            providers.insert(
                name.clone(),
                Entry {
                    provider,
                    slots: Semaphore::new(p.max_concurrent),
                    timeout,
                    breaker: Mutex::default(),
                    requests: Bucket::per_minute(p.requests_per_minute),
                    tokens: Bucket::per_minute(p.tokens_per_minute),
                },
            );
        }
        Ok(Llm {
            providers,
            default: config.default.clone(),
            fallback: config.fallback.clone(),
            log_content: config.log_content,
            prices: config.prices.clone(),
        })
    }

    /// What `usage` of `model` (`provider/model`) cost, when `llm.prices` has its price.
    pub fn cost(&self, model: &str, usage: &crate::Usage) -> Option<f64> {
        let p = self.prices.get(model)?;
        Some((usage.input_tokens as f64 * p.input + usage.output_tokens as f64 * p.output) / 1e6)
    }

    /// `usage` as JSON, with its `cost` when `llm.prices` prices `model`.
    pub fn priced_usage(&self, model: &str, usage: &crate::Usage) -> serde_json::Value {
        let mut v = serde_json::json!(usage);
        if let Some(cost) = self.cost(model, usage) {
            v["cost"] = serde_json::json!(cost);
        }
        v
    }

    /// `llm.default`.
    pub fn default_model(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// Whether any provider is configured.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// What a step using the skill `skill` needs, checked at load: a provider, and a literal
    /// `model` (if any) that names one.
    pub fn check_step(&self, skill: &str, with: &serde_json::Value) -> Result<(), String> {
        if self.is_empty() {
            return Err(format!(
                "{skill} needs a model provider: add llm.providers (and llm.default) to the node config"
            ));
        }
        match with
            .get("model")
            .and_then(serde_json::Value::as_str)
            .filter(|m| !m.contains("{{"))
        {
            Some(m) => self.check_model(m).map_err(|e| format!("{skill}: {e}")),
            None => Ok(()),
        }
    }

    /// Splits `provider/model`, checking the provider exists.
    pub fn check_model(&self, model: &str) -> Result<(), String> {
        match model.split_once('/') {
            Some((p, m)) if !m.is_empty() && self.providers.contains_key(p) => Ok(()),
            _ => Err(format!(
                "model `{model}` is not provider/model of a configured provider ({})",
                self.providers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The models tried for a call naming `model` (or none): it, then the fallback chain.
    fn chain(&self, model: Option<&str>) -> Result<Vec<String>, LlmError> {
        let first = model
            .map(str::to_string)
            .or_else(|| self.default.clone())
            .ok_or_else(|| LlmError::Refused {
                status: 400,
                message: "no model named and no llm.default".into(),
            })?;
        let mut chain = vec![first];
        for m in &self.fallback {
            if !chain.contains(m) {
                chain.push(m.clone());
            }
        }
        Ok(chain)
    }

    /// Calls the model, falling back down the chain on errors another provider could avoid.
    /// The error returned is the last one met.
    pub async fn chat(
        &self,
        model: Option<&str>,
        request: &ChatRequest,
        on_delta: OnDelta<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let chain = self.chain(model)?;
        let metrics = oclaw_telemetry::llm_metrics::llm();
        let mut last = None;
        for (i, full) in chain.iter().enumerate() {
            let Some((name, model)) = full.split_once('/') else {
                continue;
            };
            let Some(entry) = self.providers.get(name) else {
                last = Some(LlmError::Refused {
                    status: 400,
                    message: format!("no provider `{name}` in llm.providers"),
                });
                continue;
            };
            if entry.cooling() {
                last = Some(LlmError::CoolingDown {
                    provider: name.to_string(),
                });
                continue;
            }
            let is_last = i + 1 == chain.len();
            // At most one wait for Retry-After, on the last provider of the chain.
            for attempt in 0..2 {
                let result = {
                    let Ok(_slot) = entry.slots.acquire().await else {
                        break;
                    };
                    let estimate = crate::budget::estimate(request) as f64;
                    if let Err(limited) = entry.admit(estimate).await {
                        tracing::debug!(component = "llm", model = %full, "{limited} (llm.providers.{name} limits)");
                        last = Some(limited);
                        break;
                    }
                    let sent = Instant::now();
                    let mut first = true;
                    let mut counted = |piece: &str| {
                        if first {
                            first = false;
                            metrics.first_token(name, model, sent.elapsed());
                        }
                        on_delta(piece);
                    };
                    let r = match tokio::time::timeout(
                        entry.timeout,
                        entry.provider.chat(model, request, &mut counted),
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(_) => Err(LlmError::Timeout),
                    };
                    metrics.call(name, model, outcome(&r), sent.elapsed());
                    if let Some(b) = &entry.tokens {
                        let used = r
                            .as_ref()
                            .map(|a| (a.usage.input_tokens + a.usage.output_tokens) as f64)
                            .unwrap_or(0.0);
                        b.settle(estimate - used);
                    }
                    if let Ok(answer) = &r {
                        metrics.tokens(
                            name,
                            model,
                            answer.usage.input_tokens,
                            answer.usage.output_tokens,
                        );
                        if let Some(cost) = self.cost(full, &answer.usage) {
                            metrics.cost(name, model, cost);
                        }
                    }
                    r
                };
                match result {
                    Ok(answer) => {
                        entry.record(true);
                        if i > 0 {
                            tracing::info!(component = "llm", model = %full, "answered by a fallback");
                        }
                        return Ok(answer);
                    }
                    Err(e) => {
                        entry.record(false);
                        tracing::warn!(component = "llm", model = %full, error_code = oclaw_core::ErrorCode::LlmUnavailable.code(), "model call failed: {e}");
                        if !e.retryable() {
                            return Err(e);
                        }
                        let wait = match &e {
                            LlmError::RateLimited {
                                retry_after: Some(d),
                            } if is_last && attempt == 0 && *d <= MAX_RETRY_AFTER => Some(*d),
                            _ => None,
                        };
                        last = Some(e);
                        match wait {
                            Some(d) => tokio::time::sleep(d).await,
                            None => break,
                        }
                    }
                }
            }
        }
        Err(last.unwrap_or(LlmError::Refused {
            status: 400,
            message: "no model to call".into(),
        }))
    }

    /// Embeds `inputs` with `model` (`provider/model`). No fallback: vectors of different
    /// models cannot be compared, so a collection is embedded by one model or not at all. The
    /// provider's limits, timeout, breaker and metrics apply as to chat calls.
    pub async fn embed(&self, model: &str, inputs: &[String]) -> Result<EmbedResponse, LlmError> {
        let refused = |message: String| LlmError::Refused {
            status: 400,
            message,
        };
        let (name, bare) = model
            .split_once('/')
            .filter(|(_, m)| !m.is_empty())
            .ok_or_else(|| refused(format!("model `{model}` is not provider/model")))?;
        let entry = self
            .providers
            .get(name)
            .ok_or_else(|| refused(format!("no provider `{name}` in llm.providers")))?;
        if inputs.is_empty() {
            return Ok(EmbedResponse {
                vectors: Vec::new(),
                usage: Default::default(),
                model: model.to_string(),
            });
        }
        if entry.cooling() {
            return Err(LlmError::CoolingDown {
                provider: name.to_string(),
            });
        }
        let metrics = oclaw_telemetry::llm_metrics::llm();
        let _slot = entry
            .slots
            .acquire()
            .await
            .map_err(|_| LlmError::Transport("provider closed".into()))?;
        let estimate = crate::budget::estimate_texts(inputs) as f64;
        entry.admit(estimate).await?;
        let sent = Instant::now();
        let r = match tokio::time::timeout(entry.timeout, entry.provider.embed(bare, inputs)).await
        {
            Ok(r) => r,
            Err(_) => Err(LlmError::Timeout),
        };
        metrics.call(name, bare, outcome(&r), sent.elapsed());
        let used = r.as_ref().map(|a| a.usage.input_tokens).unwrap_or(0);
        if let Some(b) = &entry.tokens {
            b.settle(estimate - used as f64);
        }
        match &r {
            Ok(_) => {
                entry.record(true);
                metrics.tokens(name, bare, used, 0);
                if let Some(cost) = r.as_ref().ok().and_then(|a| self.cost(model, &a.usage)) {
                    metrics.cost(name, bare, cost);
                }
            }
            // A refusal says nothing about the provider's health.
            Err(e) if !e.retryable() => {}
            Err(e) => {
                entry.record(false);
                tracing::warn!(
                    component = "llm",
                    model,
                    error_code = oclaw_core::ErrorCode::LlmUnavailable.code(),
                    "embeddings call failed: {e}"
                );
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_environment_only() {
        let env = |n: &str| (n == "OCLAW_SECRET_OPENAI_KEY").then(|| "sk-test".to_string());
        assert_eq!(secret("{{ secrets.OPENAI_KEY }}", &env).unwrap(), "sk-test");
        assert!(secret("{{ secrets.OTHER }}", &env)
            .unwrap_err()
            .contains("OCLAW_SECRET_OTHER"));
        assert!(secret("sk-literal", &env).is_err());
    }
}

//! Model call metrics, kept process-wide (every provider of the process counts into them) and
//! rendered with the node's: `oclaw_llm_requests_total{provider,model,outcome}`,
//! `oclaw_llm_tokens_total{provider,model,direction}`, `oclaw_llm_request_duration_seconds`
//! and `oclaw_llm_time_to_first_token_seconds` (both `{provider,model}`), and
//! `oclaw_llm_cost_total{provider,model}` for models with a price (`llm.prices`).

use std::sync::OnceLock;
use std::time::Duration;

use crate::metrics::{labels, CounterFamily, HistogramFamily};

/// Model calls last seconds to minutes.
pub const LLM_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

#[derive(Debug)]
pub struct LlmMetrics {
    requests: CounterFamily,
    tokens: CounterFamily,
    /// In millionths of the price table's currency.
    cost: CounterFamily,
    duration: HistogramFamily,
    first_token: HistogramFamily,
}

/// The process's model call metrics.
pub fn llm() -> &'static LlmMetrics {
    static METRICS: OnceLock<LlmMetrics> = OnceLock::new();
    METRICS.get_or_init(|| LlmMetrics {
        requests: CounterFamily::default(),
        tokens: CounterFamily::default(),
        cost: CounterFamily::default(),
        duration: HistogramFamily::new(LLM_BUCKETS),
        first_token: HistogramFamily::new(LLM_BUCKETS),
    })
}

impl LlmMetrics {
    /// One call to `provider`/`model`: `outcome` is `ok`, `rate_limited`, `server_error`,
    /// `timeout`, `transport`, `refused` or `bad_response`.
    pub fn call(&self, provider: &str, model: &str, outcome: &str, took: Duration) {
        self.requests.inc(
            &labels(&[
                ("provider", provider),
                ("model", model),
                ("outcome", outcome),
            ]),
            1,
        );
        self.duration.observe(
            &labels(&[("provider", provider), ("model", model)]),
            took.as_secs_f64(),
        );
    }

    /// Tokens a successful call used.
    pub fn tokens(&self, provider: &str, model: &str, input: u64, output: u64) {
        for (direction, n) in [("input", input), ("output", output)] {
            self.tokens.inc(
                &labels(&[
                    ("provider", provider),
                    ("model", model),
                    ("direction", direction),
                ]),
                n,
            );
        }
    }

    /// What a successful call cost (a priced model).
    pub fn cost(&self, provider: &str, model: &str, cost: f64) {
        self.cost.inc(
            &labels(&[("provider", provider), ("model", model)]),
            (cost * 1e6).round().max(0.0) as u64,
        );
    }

    /// Time from sending a call to its first piece of text.
    pub fn first_token(&self, provider: &str, model: &str, after: Duration) {
        self.first_token.observe(
            &labels(&[("provider", provider), ("model", model)]),
            after.as_secs_f64(),
        );
    }

    pub fn render(&self, out: &mut String) {
        self.requests.render(
            out,
            "oclaw_llm_requests_total",
            "Model calls by provider, model and outcome (ok, rate_limited, server_error, timeout, transport, refused, bad_response).",
        );
        self.tokens.render(
            out,
            "oclaw_llm_tokens_total",
            "Tokens of successful model calls by provider, model and direction (input, output).",
        );
        self.cost.render_scaled(
            out,
            "oclaw_llm_cost_total",
            "Cost of successful model calls by provider and model, in the currency of llm.prices.",
            1_000_000,
        );
        self.duration.render(
            out,
            "oclaw_llm_request_duration_seconds",
            "Model call time, first byte sent to last received.",
        );
        self.first_token.render(
            out,
            "oclaw_llm_time_to_first_token_seconds",
            "Time from sending a model call to its first piece of text.",
        );
    }
}

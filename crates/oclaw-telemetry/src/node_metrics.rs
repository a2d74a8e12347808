//! The metrics a node keeps in memory: API latency, task counters and histograms per bot.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::metrics::{labels, CounterFamily, HistogramFamily, LATENCY_BUCKETS};
use crate::system::NodeSampler;

/// Task wait and run times reach minutes; these buckets go to an hour.
pub const TASK_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

#[derive(Debug)]
pub struct NodeMetrics {
    /// `oclaw_api_request_duration_seconds{route, method, status}`.
    pub api_latency: HistogramFamily,
    /// `oclaw_tasks_total{bot, outcome}`.
    pub tasks: CounterFamily,
    /// `oclaw_task_duration_seconds{bot}`: one attempt's run time.
    pub task_duration: HistogramFamily,
    /// `oclaw_task_wait_seconds{bot}`: from ready (`run_at`) to start.
    pub task_wait: HistogramFamily,
    sampler: OnceLock<Arc<NodeSampler>>,
    pub started_unix: f64,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            api_latency: HistogramFamily::new(LATENCY_BUCKETS),
            tasks: CounterFamily::default(),
            task_duration: HistogramFamily::new(TASK_BUCKETS),
            task_wait: HistogramFamily::new(TASK_BUCKETS),
            sampler: OnceLock::new(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        }
    }
}

impl NodeMetrics {
    /// Starts sampling node CPU use (every 5 s) for `oclaw_node_cpu_utilization_ratio`.
    pub fn start_node_sampler(&self) {
        let _ = self
            .sampler
            .get_or_init(|| NodeSampler::start(Duration::from_secs(5)));
    }

    pub fn node_cpu_ratio(&self) -> f64 {
        self.sampler.get().map(|s| s.cpu_ratio()).unwrap_or(0.0)
    }

    /// Records one finished attempt of a task of `bot`.
    pub fn task_finished(&self, bot: &str, outcome: &str, run: Duration, wait: Duration) {
        let by_bot = labels(&[("bot", bot)]);
        self.tasks
            .inc(&labels(&[("bot", bot), ("outcome", outcome)]), 1);
        self.task_duration.observe(&by_bot, run.as_secs_f64());
        self.task_wait.observe(&by_bot, wait.as_secs_f64());
    }
}

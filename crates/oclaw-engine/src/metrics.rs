//! The worker's metric families: tasks in flight, its concurrency, claims and fenced results.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use oclaw_telemetry::metrics::{render_samples, Exposition};

use crate::WorkerStats;

/// A running worker as `/metrics` and the node registry see it.
#[derive(Clone)]
pub struct WorkerInfo {
    pub stats: Arc<WorkerStats>,
    pub concurrency: usize,
}

impl Exposition for WorkerInfo {
    fn render(&self, out: &mut String) {
        render_samples(
            out,
            "oclaw_worker_in_flight",
            "gauge",
            "Tasks this worker is running now.",
            &[(
                String::new(),
                self.stats.in_flight.load(Ordering::Relaxed) as f64,
            )],
        );
        render_samples(
            out,
            "oclaw_worker_concurrency",
            "gauge",
            "Tasks this worker may run at once (worker.concurrency).",
            &[(String::new(), self.concurrency as f64)],
        );
        render_samples(
            out,
            "oclaw_worker_claimed_total",
            "counter",
            "Tasks claimed by this worker.",
            &[(
                String::new(),
                self.stats.claimed.load(Ordering::Relaxed) as f64,
            )],
        );
        render_samples(
            out,
            "oclaw_worker_parked_total",
            "counter",
            "Attempts that parked their task to wait (an event, an approval, a timer, a child task) without a worker slot.",
            &[(
                String::new(),
                self.stats.parked.load(Ordering::Relaxed) as f64,
            )],
        );
        render_samples(
            out,
            "oclaw_worker_fenced_total",
            "counter",
            "Results refused because the lease was lost.",
            &[(
                String::new(),
                self.stats.fenced.load(Ordering::Relaxed) as f64,
            )],
        );
    }
}

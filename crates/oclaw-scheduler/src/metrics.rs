//! The scheduler's metric families: promotions, lease expiries, trigger fires, leadership and the
//! retention purge.

use std::sync::atomic::Ordering;

use oclaw_telemetry::metrics::{labels, render_samples, Exposition};

use crate::SchedulerStats;

impl Exposition for SchedulerStats {
    fn render(&self, out: &mut String) {
        render_samples(
            out,
            "oclaw_scheduler_promoted_total",
            "counter",
            "Scheduled tasks moved to their queue when due.",
            &[(String::new(), self.promoted.load(Ordering::Relaxed) as f64)],
        );
        render_samples(
            out,
            "oclaw_lease_expired_total",
            "counter",
            "Tasks whose lease expired (worker died or stalled), by what happened next.",
            &[
                (
                    labels(&[("result", "requeued")]),
                    self.lease_requeued.load(Ordering::Relaxed) as f64,
                ),
                (
                    labels(&[("result", "dead")]),
                    self.lease_dead.load(Ordering::Relaxed) as f64,
                ),
            ],
        );
        render_samples(
            out,
            "oclaw_trigger_fires_total",
            "counter",
            "Tasks enqueued by cron and interval triggerself.",
            &[(String::new(), self.fired.load(Ordering::Relaxed) as f64)],
        );
        render_samples(
            out,
            "oclaw_scheduler_leader",
            "gauge",
            "1 while this scheduler is the leader (the one that schedules), 0 while it stands by.",
            &[(
                String::new(),
                if self.leader.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                },
            )],
        );
        render_samples(
            out,
            "oclaw_tasks_purged_total",
            "counter",
            "Finished tasks deleted by the retention purge (storage.retention).",
            &[(String::new(), self.purged.load(Ordering::Relaxed) as f64)],
        );
        render_samples(
            out,
            "oclaw_scheduler_elections_total",
            "counter",
            "Times this scheduler became the leader.",
            &[(String::new(), self.elected.load(Ordering::Relaxed) as f64)],
        );
    }
}

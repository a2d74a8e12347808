//! The scheduler: every `scheduler.interval`, and at once on wake-ups, it promotes due scheduled
//! tasks, requeues tasks whose lease expired, and fires cron/interval triggers exactly once per
//! tick (an idempotency key per bot, trigger and fire time makes a repeat a no-op, even across
//! restarts).

mod metrics;
mod scheduler;

pub use scheduler::{Scheduler, SchedulerStats};

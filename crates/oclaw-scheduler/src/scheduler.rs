use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use oclaw_core::NewTask;
use oclaw_engine::triggers::{due_tick, TimeTrigger};
use oclaw_engine::{stopped, BotCatalog};
use oclaw_store::{Store, StoreError};
use serde_json::json;
use tokio::sync::watch;

/// Counters for metrics. A *scheduling attempt* is one scheduling action: a promotion pass, a
/// lease-expiry pass, or one trigger fire; a *scheduling failure* is such an action that errored.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    pub attempts: AtomicU64,
    pub failures: AtomicU64,
    pub promoted: AtomicU64,
    pub lease_requeued: AtomicU64,
    pub lease_dead: AtomicU64,
    pub fired: AtomicU64,
    pub passes: AtomicU64,
}

pub struct Scheduler {
    store: Arc<dyn Store>,
    catalog: Arc<BotCatalog>,
    interval: Duration,
    stats: Arc<SchedulerStats>,
    marks: HashMap<String, DateTime<Utc>>,
}

impl Scheduler {
    pub fn new(store: Arc<dyn Store>, catalog: Arc<BotCatalog>, interval: Duration) -> Scheduler {
        Scheduler {
            store,
            catalog,
            interval,
            stats: Arc::default(),
            marks: HashMap::new(),
        }
    }

    pub fn stats(&self) -> Arc<SchedulerStats> {
        self.stats.clone()
    }

    fn record<T>(&self, result: Result<T, StoreError>, what: &str) -> Option<T> {
        self.stats.attempts.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    component = "scheduler",
                    error_code = e.code().code(),
                    "{what} failed: {e}"
                );
                None
            }
        }
    }

    /// One scheduler pass at `now`.
    pub async fn pass(&mut self, now: DateTime<Utc>) {
        self.stats.passes.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = self.record(self.store.promote_due(now).await, "promoting due tasks") {
            self.stats.promoted.fetch_add(n, Ordering::Relaxed);
        }
        if let Some(r) = self.record(
            self.store.requeue_expired(now).await,
            "requeueing expired leases",
        ) {
            if r.requeued + r.dead > 0 {
                tracing::warn!(
                    component = "scheduler",
                    error_code = "OC-3001",
                    requeued = r.requeued,
                    dead = r.dead,
                    "leases expired (a worker died or stalled): tasks requeued or dead-lettered"
                );
            }
            self.stats
                .lease_requeued
                .fetch_add(r.requeued, Ordering::Relaxed);
            self.stats.lease_dead.fetch_add(r.dead, Ordering::Relaxed);
        }
        self.fire_triggers(now).await;
    }

    async fn fire_triggers(&mut self, now: DateTime<Utc>) {
        let catalog = self.catalog.clone();
        for bot in catalog.bots() {
            for (index, trigger) in &bot.time_triggers {
                let key = format!("{}/{}", bot.name(), index);
                let (fire, mark) = due_tick(trigger, self.marks.get(&key).copied(), now);
                if let Some(tick) = fire {
                    let kind = match trigger {
                        TimeTrigger::Cron(_) => "cron",
                        TimeTrigger::Every(_) => "every",
                    };
                    let task = NewTask {
                        idempotency_key: Some(format!("trigger:{key}:{}", tick.timestamp_millis())),
                        max_attempts: bot.doc.spec.retry.max_attempts,
                        ..NewTask::new(
                            bot.name(),
                            &bot.doc.spec.queue,
                            json!({"trigger": {"kind": kind, "scheduled_at": tick}}),
                        )
                    };
                    let enqueued = self.store.enqueue(task).await;
                    match self.record(enqueued, &format!("firing trigger {key}")) {
                        Some(e) if e.created => {
                            self.stats.fired.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(component = "scheduler", task_id = %e.task.id, bot = bot.name(), "trigger fired");
                        }
                        Some(_) => {}
                        None => continue, // keep the old mark so the tick is tried again
                    }
                }
                if let Some(m) = mark {
                    if self
                        .record(
                            self.store.set_trigger_mark(&key, m).await,
                            "recording trigger mark",
                        )
                        .is_some()
                    {
                        self.marks.insert(key, m);
                    }
                }
            }
        }
    }

    /// When the next pass must happen at the latest.
    async fn next_wake(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut next =
            now + chrono::Duration::from_std(self.interval).unwrap_or(chrono::Duration::seconds(5));
        if let Ok(Some(due)) = self.store.next_due_at().await {
            next = next.min(due);
        }
        for bot in self.catalog.bots() {
            for (_, t) in &bot.time_triggers {
                if let Some(at) = t.next_after(now) {
                    next = next.min(at);
                }
            }
        }
        next
    }

    /// Runs passes until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            match self.store.trigger_marks().await {
                Ok(m) => {
                    self.marks = m;
                    break;
                }
                Err(e) => {
                    tracing::error!(
                        component = "scheduler",
                        error_code = e.code().code(),
                        "reading trigger marks failed: {e}; retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stopped(&mut shutdown) => return,
                    }
                }
            }
        }
        tracing::info!(component = "scheduler", interval = ?self.interval, "scheduler started");
        loop {
            let now = Utc::now();
            self.pass(now).await;
            let wake = self.next_wake(Utc::now()).await;
            let sleep = (wake - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.store.wakeups().scheduled.notified() => {}
                _ = stopped(&mut shutdown) => break,
            }
        }
        tracing::info!(component = "scheduler", "scheduler stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oclaw_engine::templates::TemplateEngine;

    async fn setup(dir: &std::path::Path) -> (Arc<dyn Store>, Arc<BotCatalog>) {
        let store: Arc<dyn Store> = Arc::new(
            oclaw_store::sqlite::SqliteStore::open(
                dir.join("s.db").to_str().unwrap(),
                Default::default(),
            )
            .await
            .unwrap(),
        );
        let mut catalog = BotCatalog::default();
        catalog
            .load_yaml(
                "t",
                "metadata: {name: ticker}\nspec:\n  triggers: [{every: 10s}]\n",
                &oclaw_skills::SkillRegistry::builtin(),
                &TemplateEngine::default(),
            )
            .unwrap();
        (store, Arc::new(catalog))
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[tokio::test]
    async fn fires_once_per_tick_even_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (store, catalog) = setup(dir.path()).await;
        let mut s = Scheduler::new(store.clone(), catalog.clone(), Duration::from_secs(5));
        s.pass(at("2026-03-15T14:30:07Z")).await; // first sight: mark only
        s.pass(at("2026-03-15T14:30:11Z")).await; // tick 14:30:10 fires
        s.pass(at("2026-03-15T14:30:12Z")).await; // same tick: nothing
                                                  // A restarted scheduler (fresh memory) reads the marks and does not fire the tick again.
        let mut again = Scheduler::new(store.clone(), catalog.clone(), Duration::from_secs(5));
        again.marks = store.trigger_marks().await.unwrap();
        again.pass(at("2026-03-15T14:30:13Z")).await;
        // Even a scheduler that lost its marks cannot enqueue the same tick twice.
        let mut amnesiac = Scheduler::new(store.clone(), catalog, Duration::from_secs(5));
        amnesiac
            .marks
            .insert("ticker/0".into(), at("2026-03-15T14:30:00Z"));
        amnesiac.pass(at("2026-03-15T14:30:14Z")).await;
        let tasks = store
            .list_tasks(oclaw_store::TaskFilter {
                bot: Some("ticker".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        assert_eq!(tasks[0].input["trigger"]["kind"], "every");
        assert_eq!(s.stats().fired.load(Ordering::Relaxed), 1);
        assert_eq!(amnesiac.stats().fired.load(Ordering::Relaxed), 0);
    }
}

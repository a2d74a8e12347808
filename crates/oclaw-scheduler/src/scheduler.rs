//! The scheduler loop: promotion of due tasks, lease expiry, cron and interval triggers (each
//! fired once per tick cluster-wide), retention purges and registry cleanup — run by the leader
//! only, with standbys ready to take over.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use oclaw_bots::triggers::{due_ticks, TimeTrigger};
use oclaw_bots::LiveCatalog;
use oclaw_core::NewTask;
use oclaw_engine::stopped;
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
    /// This scheduler holds the leadership now (only the leader schedules).
    pub leader: std::sync::atomic::AtomicBool,
    /// Times this scheduler became the leader.
    pub elected: AtomicU64,
    /// Finished tasks deleted by the retention purge.
    pub purged: AtomicU64,
}

/// How often the leader runs the retention purge, and how much one round deletes at most.
const PURGE_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
const PURGE_BATCH: usize = 10_000;
const PURGE_BATCHES_PER_ROUND: usize = 20;

/// The leadership role schedulers compete for.
pub const LEADER_ROLE: &str = "scheduler";

/// Registry entries whose heartbeat is older than this are removed by the leader.
const NODE_FORGET_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

pub struct Scheduler {
    store: Arc<dyn Store>,
    catalog: Arc<LiveCatalog>,
    interval: Duration,
    stats: Arc<SchedulerStats>,
    marks: HashMap<String, DateTime<Utc>>,
    /// Who this scheduler is when competing for leadership, and how long a term lasts.
    holder: String,
    leader_lease: Duration,
    last_prune: Option<DateTime<Utc>>,
    retention: Option<Duration>,
    audit_retention: Option<Duration>,
    last_purge: Option<DateTime<Utc>>,
    /// When the leadership was last taken or renewed (passes in between need not renew it).
    renewed_at: Option<std::time::Instant>,
}

impl Scheduler {
    pub fn new(store: Arc<dyn Store>, catalog: Arc<LiveCatalog>, interval: Duration) -> Scheduler {
        Scheduler {
            store,
            catalog,
            interval,
            stats: Arc::default(),
            marks: HashMap::new(),
            holder: format!("scheduler-{}", std::process::id()),
            leader_lease: Duration::from_secs(5),
            last_prune: None,
            retention: None,
            audit_retention: None,
            last_purge: None,
            renewed_at: None,
        }
    }

    /// Deletes finished tasks older than `retention` (and expired key-value entries) while
    /// leading; `None` keeps everything.
    /// Deletes audit entries older than `retention` (the newest is always kept).
    pub fn with_audit_retention(mut self, retention: Option<Duration>) -> Scheduler {
        self.audit_retention = retention;
        self
    }

    pub fn with_retention(mut self, retention: Option<Duration>) -> Scheduler {
        self.retention = retention;
        self
    }

    /// Competes for leadership as `holder` with terms of `lease`: only the leader schedules; a
    /// standby takes over within about `lease` + `lease / 3` of the leader's death.
    pub fn with_leadership(mut self, holder: impl Into<String>, lease: Duration) -> Scheduler {
        self.holder = holder.into();
        self.leader_lease = lease.max(Duration::from_secs(1));
        self
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
                    error_code = oclaw_core::ErrorCode::LeaseExpired.code(),
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
        let catalog = self.catalog.load();
        for bot in catalog.bots() {
            for (index, trigger) in &bot.time_triggers {
                let key = format!("{}/{}", bot.name(), index);
                let (ticks, mark) = due_ticks(trigger, self.marks.get(&key).copied(), now);
                let kind = match trigger {
                    TimeTrigger::Cron(_) => "cron",
                    TimeTrigger::Every(_) => "every",
                };
                let mut all_recorded = true;
                for tick in ticks {
                    let mut task = NewTask {
                        // One task per tick, whichever scheduler fires it and however often.
                        idempotency_key: Some(format!("trigger:{key}:{}", tick.timestamp_millis())),
                        max_attempts: bot.doc.spec.retry.max_attempts,
                        ..NewTask::new(
                            bot.name(),
                            &bot.doc.spec.queue,
                            json!({"trigger": {"kind": kind, "scheduled_at": tick}}),
                        )
                    };
                    bot.stamp(&mut task);
                    let enqueued = self.store.enqueue(task).await;
                    match self.record(enqueued, &format!("firing trigger {key}")) {
                        Some(e) if e.created => {
                            self.stats.fired.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(component = "scheduler", task_id = %e.task.id, bot = bot.name(), "trigger fired");
                        }
                        Some(_) => {}
                        None => all_recorded = false,
                    }
                }
                if !all_recorded {
                    continue; // keep the old mark so the ticks are tried again
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
        for bot in self.catalog.load().bots() {
            for (_, t) in &bot.time_triggers {
                if let Some(at) = t.next_after(now) {
                    next = next.min(at);
                }
            }
        }
        next
    }

    /// Takes or renews leadership; an error counts as not leading (the term may lapse meanwhile,
    /// and a standby may take over).
    async fn lead(&mut self) -> bool {
        // Passes woken early (new scheduled tasks) reuse a renewal less than a third of a term
        // old instead of writing the leadership row on every pass.
        if self.stats.leader.load(Ordering::Relaxed)
            && self
                .renewed_at
                .is_some_and(|t| t.elapsed() < self.leader_lease / 3)
        {
            return true;
        }
        let won = self
            .store
            .acquire_leadership(LEADER_ROLE, &self.holder, self.leader_lease)
            .await;
        let leading = match won {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(
                    component = "scheduler",
                    error_code = e.code().code(),
                    "cannot renew leadership: {e}; standing by"
                );
                false
            }
        };
        self.renewed_at = leading.then(std::time::Instant::now);
        let was = self.stats.leader.swap(leading, Ordering::Relaxed);
        if leading && !was {
            // The previous leader moved the trigger marks on; start from the stored ones.
            match self.store.trigger_marks().await {
                Ok(m) => self.marks = m,
                Err(e) => {
                    tracing::warn!(
                        component = "scheduler",
                        error_code = e.code().code(),
                        "reading trigger marks failed: {e}"
                    );
                    self.stats.leader.store(false, Ordering::Relaxed);
                    return false;
                }
            }
            self.stats.elected.fetch_add(1, Ordering::Relaxed);
            tracing::info!(component = "scheduler", holder = %self.holder, "became the leader scheduler");
        } else if !leading && was {
            tracing::warn!(component = "scheduler", holder = %self.holder, "lost the leadership; standing by");
        }
        leading
    }

    /// Forgets registry entries of nodes that stopped heartbeating long ago (killed processes).
    async fn prune_nodes(&mut self, now: DateTime<Utc>) {
        if self
            .last_prune
            .is_some_and(|t| now - t < chrono::TimeDelta::minutes(1))
        {
            return;
        }
        self.last_prune = Some(now);
        if let Ok(nodes) = self.store.list_nodes().await {
            for n in nodes
                .iter()
                .filter(|n| now - n.heartbeat_at > NODE_FORGET_AFTER)
            {
                let _ = self.store.remove_node(&n.id).await;
            }
        }
    }

    /// The retention purge: at most every 5 minutes, in batches, so one round cannot hold the
    /// database for long.
    pub async fn purge_old(&mut self, now: DateTime<Utc>) {
        if self.last_purge.is_some_and(|t| now - t < PURGE_EVERY) {
            return;
        }
        if let Some(keep) = self.audit_retention {
            let cutoff = now - chrono::Duration::from_std(keep).unwrap_or(chrono::TimeDelta::MAX);
            if let Some(n) = self.record(
                self.store.audit_purge(cutoff).await,
                "purging the audit log",
            ) {
                if n > 0 {
                    tracing::info!(
                        component = "scheduler",
                        purged = n,
                        "deleted audit entries past audit.retention"
                    );
                }
            }
        }
        let Some(retention) = self.retention else {
            self.last_purge = Some(now);
            return;
        };
        self.last_purge = Some(now);
        let cutoff = now - chrono::Duration::from_std(retention).unwrap_or(chrono::TimeDelta::MAX);
        for _ in 0..PURGE_BATCHES_PER_ROUND {
            let purged = self.store.purge(cutoff, now, PURGE_BATCH).await;
            match self.record(purged, "purging finished tasks") {
                Some(n) => {
                    self.stats.purged.fetch_add(n, Ordering::Relaxed);
                    if n > 0 {
                        tracing::info!(
                            component = "scheduler",
                            purged = n,
                            "deleted finished tasks past storage.retention"
                        );
                    }
                    if (n as usize) < PURGE_BATCH {
                        break;
                    }
                }
                None => break,
            }
        }
    }

    /// Runs passes while leading, stands by otherwise, until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(component = "scheduler", interval = ?self.interval, holder = %self.holder, "scheduler started");
        let renew = self.leader_lease / 3;
        loop {
            let leading = self.lead().await;
            let sleep = if leading {
                let now = Utc::now();
                self.pass(now).await;
                self.prune_nodes(now).await;
                self.purge_old(now).await;
                let wake = self.next_wake(Utc::now()).await;
                (wake - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(renew)
            } else {
                renew
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.store.wakeups().scheduled.notified(), if leading => {}
                _ = stopped(&mut shutdown) => break,
            }
        }
        if self.stats.leader.load(Ordering::Relaxed) {
            // Hand over at once instead of making the standbys wait out the term.
            let _ = self
                .store
                .resign_leadership(LEADER_ROLE, &self.holder)
                .await;
            self.stats.leader.store(false, Ordering::Relaxed);
        }
        tracing::info!(component = "scheduler", "scheduler stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oclaw_bots::templates::TemplateEngine;

    async fn setup(dir: &std::path::Path) -> (Arc<dyn Store>, Arc<LiveCatalog>) {
        let store: Arc<dyn Store> = Arc::new(
            oclaw_store::sqlite::SqliteStore::open(
                dir.join("s.db").to_str().unwrap(),
                Default::default(),
            )
            .await
            .unwrap(),
        );
        let mut catalog = oclaw_bots::BotCatalog::default();
        catalog
            .load_yaml(
                "t",
                "metadata: {name: ticker}\nspec:\n  triggers: [{every: 10s}]\n",
                &oclaw_skills::SkillRegistry::builtin(),
                &TemplateEngine::default(),
            )
            .unwrap();
        (store, LiveCatalog::new(catalog))
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_leader_at_a_time_and_the_standby_takes_over() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            oclaw_store::sqlite::SqliteStore::open(
                dir.path().join("s.db").to_str().unwrap(),
                Default::default(),
            )
            .await
            .unwrap(),
        );
        let mut catalog = oclaw_bots::BotCatalog::default();
        catalog
            .load_yaml(
                "t",
                "metadata: {name: ticker}\nspec:\n  triggers: [{every: 1s}]\n",
                &oclaw_skills::SkillRegistry::builtin(),
                &TemplateEngine::default(),
            )
            .unwrap();
        let catalog = LiveCatalog::new(catalog);
        let lease = Duration::from_secs(1);
        let start = |holder: &str| {
            let s = Scheduler::new(store.clone(), catalog.clone(), Duration::from_secs(5))
                .with_leadership(holder, lease);
            let stats = s.stats();
            let (tx, rx) = watch::channel(false);
            (stats, tx, tokio::spawn(s.run(rx)))
        };
        let until = |what: &'static str, flag: Arc<SchedulerStats>| async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            while !flag.leader.load(Ordering::Relaxed) {
                assert!(std::time::Instant::now() < deadline, "{what}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let (a, a_stop, a_task) = start("a");
        until("the first to start never led", a.clone()).await;
        let (b, b_stop, b_task) = start("b");
        // b tries for a while (two terms and a half) and never leads beside a.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(a.leader.load(Ordering::Relaxed), "the first to start leads");
        assert!(!b.leader.load(Ordering::Relaxed), "only one leader");
        a_stop.send(true).unwrap();
        a_task.await.unwrap();
        until("the standby never took over", b.clone()).await;
        // Let the new leader fire a few ticks of its own before it stops.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let fired = store
                .list_tasks(oclaw_store::TaskFilter {
                    bot: Some("ticker".into()),
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .len();
            if fired >= 5 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{fired} ticks");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(b.elected.load(Ordering::Relaxed), 1);
        b_stop.send(true).unwrap();
        b_task.await.unwrap();
        // Every tick from the first fire to the last fired exactly once across the handover.
        let tasks = store
            .list_tasks(oclaw_store::TaskFilter {
                bot: Some("ticker".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut ticks: Vec<i64> = tasks
            .iter()
            .map(|t| {
                DateTime::parse_from_rfc3339(t.input["trigger"]["scheduled_at"].as_str().unwrap())
                    .unwrap()
                    .timestamp()
            })
            .collect();
        ticks.sort_unstable();
        assert!(ticks.len() >= 4, "{ticks:?}");
        for w in ticks.windows(2) {
            assert_eq!(w[1] - w[0], 1, "a tick was missed or doubled: {ticks:?}");
        }
    }

    #[tokio::test]
    async fn retention_purges_finished_tasks_while_leading() {
        let dir = tempfile::tempdir().unwrap();
        let (store, catalog) = setup(dir.path()).await;
        let t = store
            .enqueue(NewTask::new("ticker", "default", json!({})))
            .await
            .unwrap()
            .task
            .id;
        let c = store
            .claim_batch(oclaw_store::ClaimRequest {
                worker: "w".into(),
                queues: vec![],
                limit: 1,
                lease: Duration::from_secs(30),
            })
            .await
            .unwrap();
        store
            .complete_batch(vec![oclaw_store::Completion {
                id: c[0].id,
                worker: "w".into(),
                attempt: 1,
                outcome: oclaw_store::Outcome::Succeeded(json!(1)),
                kv: Vec::new(),
                follow_ups: Vec::new(),
                parent: None,
            }])
            .await
            .unwrap();
        let mut keep = Scheduler::new(store.clone(), catalog.clone(), Duration::from_secs(5));
        keep.purge_old(Utc::now() + chrono::Duration::days(30))
            .await;
        assert!(
            store.get_task(t).await.unwrap().is_some(),
            "no retention: kept"
        );
        let mut s = Scheduler::new(store.clone(), catalog, Duration::from_secs(5))
            .with_retention(Some(Duration::from_secs(3600)));
        s.purge_old(Utc::now()).await;
        assert!(
            store.get_task(t).await.unwrap().is_some(),
            "younger than the retention"
        );
        s.last_purge = None;
        s.purge_old(Utc::now() + chrono::Duration::hours(2)).await;
        assert!(
            store.get_task(t).await.unwrap().is_none(),
            "older than the retention"
        );
        assert_eq!(s.stats().purged.load(Ordering::Relaxed), 1);
    }
}

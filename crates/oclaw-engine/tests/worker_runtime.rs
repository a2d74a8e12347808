//! The worker runtime against a real SQLite store: batches, retries resuming after checkpoints,
//! panics, timeouts, and graceful shutdown.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oclaw_bots::templates::TemplateEngine;
use oclaw_bots::BotCatalog;
use oclaw_core::{NewTask, TaskStatus};
use oclaw_engine::{Runtime, Worker, WorkerOptions};
use oclaw_skills::{Skill, SkillCall, SkillContext, SkillError, SkillRegistry};
use oclaw_store::sqlite::{SqliteOptions, SqliteStore};
use oclaw_store::Store;
use serde_json::{json, Value};
use tokio::sync::watch;

/// Fails the first time it runs for a task, succeeds after; counts its runs.
struct Flaky(Arc<AtomicU32>);

#[async_trait]
impl Skill for Flaky {
    fn name(&self) -> &'static str {
        "test.flaky"
    }
    fn summary(&self) -> &'static str {
        "fails on the first attempt"
    }
    fn fields(&self) -> &'static [&'static str] {
        &[]
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        if n == 0 {
            return Err(SkillError::transient(
                oclaw_core::ErrorCode::SkillFailed,
                "first try fails",
            ));
        }
        Ok(json!({"flaky_saw": call.data}))
    }
}

struct Panics;

#[async_trait]
impl Skill for Panics {
    fn name(&self) -> &'static str {
        "test.panic"
    }
    fn summary(&self) -> &'static str {
        "panics"
    }
    fn fields(&self) -> &'static [&'static str] {
        &[]
    }
    async fn run(&self, _ctx: &SkillContext, _call: SkillCall) -> Result<Value, SkillError> {
        panic!("skill bug");
    }
}

const BOTS: &str = r#"
metadata: {name: noop}
spec: {}
---
metadata: {name: counter}
spec:
  steps:
    - id: count
      uses: kv.set
      with: {key: "runs-{{ input.n }}", value: "{{ input.n }}"}
    # Pure: no checkpoint; the retry runs it again from count's checkpoint.
    - id: shape
      uses: template
      with: {value: "{{ steps.count.output }}"}
    - id: flaky
      uses: test.flaky
  retry: {max_attempts: 3, initial: 10ms, max: 20ms, jitter: false}
---
metadata: {name: panicky}
spec:
  steps: [{uses: test.panic}]
  retry: {max_attempts: 1}
---
metadata: {name: slow}
spec:
  steps: [{uses: sleep, with: {duration: 10s}}]
  retry: {max_attempts: 1}
  timeout: 200ms
---
metadata: {name: sleeper}
spec:
  steps: [{uses: sleep, with: {duration: 1s}}]
"#;

struct Harness {
    store: Arc<dyn Store>,
    flaky_runs: Arc<AtomicU32>,
    rt: Arc<Runtime>,
    _dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(path.to_str().unwrap(), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let flaky_runs = Arc::new(AtomicU32::new(0));
    let mut skills = SkillRegistry::builtin();
    skills.register(Arc::new(Flaky(flaky_runs.clone())));
    skills.register(Arc::new(Panics));
    let templates = TemplateEngine::default();
    let mut catalog = BotCatalog::default();
    catalog
        .load_yaml("test-bots", BOTS, &skills, &templates)
        .unwrap();
    let rt = Runtime::new(
        store.clone(),
        oclaw_bots::LiveCatalog::new(catalog),
        skills,
        templates,
        Duration::from_secs(600),
        json!({}),
    )
    .unwrap();
    Harness {
        store,
        flaky_runs,
        rt: Arc::new(rt),
        _dir: dir,
    }
}

fn options(concurrency: usize) -> WorkerOptions {
    WorkerOptions {
        id: "test-worker".into(),
        queues: vec!["default".into()],
        concurrency,
        batch_enabled: true,
        batch_max: 100,
        batch_timeout: Duration::from_millis(500),
        batch_linger: Duration::from_millis(2),
        prefetch: concurrency,
        prefetch_lease: Duration::from_secs(5),
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(5),
    }
}

async fn wait_for(
    store: &Arc<dyn Store>,
    id: oclaw_core::TaskId,
    status: TaskStatus,
) -> oclaw_core::Task {
    for _ in 0..500 {
        let t = store.get_task(id).await.unwrap().unwrap();
        if t.status == status {
            return t;
        }
        // Retries come back as scheduled; promote them as the scheduler would.
        store.promote_due(chrono::Utc::now()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "task {id} never reached {status}: {:?}",
        store.get_task(id).await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_a_batch_of_noop_tasks() {
    let h = harness().await;
    let tasks: Vec<NewTask> = (0..500)
        .map(|n| NewTask::new("noop", "default", json!({"n": n})))
        .collect();
    let ids: Vec<_> = h
        .store
        .enqueue_batch(tasks)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.task.id)
        .collect();
    let (tx, rx) = watch::channel(false);
    let worker = tokio::spawn(Worker::new(options(10), h.rt.clone()).run(rx));
    let last = wait_for(&h.store, ids[499], TaskStatus::Succeeded).await;
    assert_eq!(last.output, Some(json!({"n": 499})));
    for id in &ids {
        wait_for(&h.store, *id, TaskStatus::Succeeded).await;
    }
    tx.send(true).unwrap();
    let report = worker.await.unwrap();
    assert_eq!(report.succeeded, 500);
    assert_eq!(report.claimed, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_resumes_after_the_checkpointed_step() {
    let h = harness().await;
    let id = h
        .store
        .enqueue(NewTask::new("counter", "default", json!({"n": 7})))
        .await
        .unwrap()
        .task
        .id;
    let (tx, rx) = watch::channel(false);
    let worker = tokio::spawn(Worker::new(options(4), h.rt.clone()).run(rx));
    let t = wait_for(&h.store, id, TaskStatus::Succeeded).await;
    assert_eq!(t.attempts, 2);
    assert_eq!(h.flaky_runs.load(Ordering::SeqCst), 2);
    // The flaky step saw the checkpointed output of `count` on the retry.
    assert_eq!(t.output, Some(json!({"flaky_saw": 7})));
    // `shape` (a pure template step) wrote no checkpoint.
    assert_eq!(t.checkpoints.len(), 1);
    assert_eq!(t.checkpoints[0].step, "count");
    tx.send(true).unwrap();
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_and_timeouts_fail_the_task_not_the_worker() {
    let h = harness().await;
    let p = h
        .store
        .enqueue(NewTask {
            max_attempts: 1,
            ..NewTask::new("panicky", "default", json!({}))
        })
        .await
        .unwrap()
        .task
        .id;
    let s = h
        .store
        .enqueue(NewTask {
            max_attempts: 1,
            ..NewTask::new("slow", "default", json!({}))
        })
        .await
        .unwrap()
        .task
        .id;
    let m = h
        .store
        .enqueue(NewTask::new("ghost", "default", json!({})))
        .await
        .unwrap()
        .task
        .id;
    let (tx, rx) = watch::channel(false);
    let worker = tokio::spawn(Worker::new(options(4), h.rt.clone()).run(rx));
    let tp = wait_for(&h.store, p, TaskStatus::Dead).await;
    assert_eq!(tp.error.unwrap().code, "OC-4011");
    let ts = wait_for(&h.store, s, TaskStatus::Dead).await;
    let err = ts.error.unwrap();
    assert_eq!(err.code, "OC-4010");
    assert!(err.message.contains("200ms"), "{}", err.message);
    let tm = wait_for(&h.store, m, TaskStatus::Failed).await;
    assert_eq!(tm.error.unwrap().code, "OC-4018");
    // The worker still runs tasks afterwards.
    let ok = h
        .store
        .enqueue(NewTask::new("noop", "default", json!(1)))
        .await
        .unwrap()
        .task
        .id;
    wait_for(&h.store, ok, TaskStatus::Succeeded).await;
    tx.send(true).unwrap();
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_running_and_releases_unstarted() {
    let h = harness().await;
    let ids: Vec<_> = h
        .store
        .enqueue_batch(
            (0..6)
                .map(|n| NewTask::new("sleeper", "default", json!(n)))
                .collect(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.task.id)
        .collect();
    let (tx, rx) = watch::channel(false);
    let worker = Worker::new(options(2), h.rt.clone());
    let stats = worker.stats();
    let worker = tokio::spawn(worker.run(rx));
    // Wait until two have started (their second of sleep begun) and two more wait claimed,
    // then ask it to stop.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stats.in_flight.load(Ordering::SeqCst) < 2 || stats.claimed.load(Ordering::SeqCst) < 4 {
        assert!(std::time::Instant::now() < deadline, "{stats:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tx.send(true).unwrap();
    let report = worker.await.unwrap();
    assert_eq!(report.succeeded, 2, "{report:?}");
    // It held its 2 slots plus a prefetch of 2, never all 6; the 2 waiting go back unrun.
    assert_eq!(report.claimed, 4, "{report:?}");
    assert_eq!(report.released, 2, "{report:?}");
    let mut statuses = Vec::new();
    for id in &ids {
        let t = h.store.get_task(*id).await.unwrap().unwrap();
        statuses.push(t.status);
        if t.status == TaskStatus::Queued {
            assert_eq!(t.attempts, 0, "a released task keeps its attempt");
        }
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == TaskStatus::Succeeded)
            .count(),
        2
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == TaskStatus::Queued)
            .count(),
        4
    );
}

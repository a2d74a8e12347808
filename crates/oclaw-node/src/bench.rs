//! Built-in benchmarks (`oclaw bench drain|latency`). They run the real store, worker and
//! pipeline executor in this process against a fresh SQLite file in a temporary folder.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use oclaw_core::NewTask;
use oclaw_engine::templates::TemplateEngine;
use oclaw_engine::{BotCatalog, Runtime, Worker, WorkerOptions};
use oclaw_skills::{Skill, SkillCall, SkillContext, SkillError, SkillOrigin, SkillRegistry};
use oclaw_store::sqlite::{SqliteOptions, SqliteStore};
use oclaw_store::Store;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

pub struct DrainOptions {
    pub tasks: usize,
    pub concurrency: usize,
    pub batch: usize,
    pub batching: bool,
}

/// Records when a task's first step starts.
struct Mark(mpsc::UnboundedSender<Instant>);

#[async_trait]
impl Skill for Mark {
    fn name(&self) -> &'static str {
        "bench.mark"
    }
    fn summary(&self) -> &'static str {
        "benchmark probe: records the moment it runs"
    }
    fn fields(&self) -> &'static [&'static str] {
        &[]
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let _ = self.0.send(Instant::now());
        Ok(call.data)
    }
}

const BENCH_BOTS: &str = "
metadata: {name: bench-noop}
spec: {}
---
metadata: {name: bench-mark}
spec:
  steps: [{uses: bench.mark}]
";

struct Bench {
    store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
    _dir: tempfile::TempDir,
}

async fn setup(skills: SkillRegistry) -> Result<Bench, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("bench.db");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&path.display().to_string(), SqliteOptions::default())
            .await
            .map_err(|e| e.to_string())?,
    );
    let templates = TemplateEngine::default();
    let mut catalog = BotCatalog::default();
    catalog
        .load_yaml("bench", BENCH_BOTS, &skills, &templates)
        .map_err(|e| e.to_string())?;
    let runtime = Runtime::new(
        store.clone(),
        Arc::new(catalog),
        skills,
        templates,
        Duration::from_secs(600),
        json!({}),
    )?;
    Ok(Bench {
        store,
        runtime: Arc::new(runtime),
        _dir: dir,
    })
}

fn worker_options(concurrency: usize, batch: usize, batching: bool) -> WorkerOptions {
    WorkerOptions {
        id: "bench".into(),
        queues: vec!["default".into()],
        concurrency,
        batch_enabled: batching,
        batch_max: batch,
        batch_timeout: Duration::from_millis(500),
        batch_linger: Duration::from_millis(2),
        lease: Duration::from_secs(60),
        poll_interval: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(10),
    }
}

/// Pre-loads `tasks` no-op tasks, then times one worker draining them.
pub async fn drain(o: DrainOptions) -> Result<String, String> {
    let mut skills = SkillRegistry::builtin();
    skills.register(
        Arc::new(Mark(mpsc::unbounded_channel().0)),
        SkillOrigin::BuiltIn,
    );
    let b = setup(skills).await?;
    let load_start = Instant::now();
    let mut left = o.tasks;
    while left > 0 {
        let n = left.min(10_000);
        let batch = (0..n)
            .map(|i| NewTask::new("bench-noop", "default", json!({"i": i})))
            .collect();
        b.store
            .enqueue_batch(batch)
            .await
            .map_err(|e| e.to_string())?;
        left -= n;
    }
    let load = load_start.elapsed();
    let worker = Worker::new(
        worker_options(o.concurrency, o.batch, o.batching),
        b.runtime.clone(),
    );
    let stats = worker.stats();
    let (stop, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let handle = tokio::spawn(worker.run(stop_rx));
    let target = o.tasks as u64;
    let mut last = (0, Instant::now());
    loop {
        let done = stats.succeeded.load(Ordering::Relaxed) + stats.failed.load(Ordering::Relaxed);
        if done >= target {
            break;
        }
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) {
            let _ = stop.send(true);
            return Err(format!(
                "no progress for 30s after {done} of {target} tasks; see the log"
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed();
    let cpu = cpu_seconds() - cpu_start;
    let _ = stop.send(true);
    let report = handle.await.map_err(|e| e.to_string())?;
    let stats_now = b
        .store
        .queue_stats(chrono::Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    let left_queued: u64 = stats_now.iter().map(|q| q.queued + q.running).sum();
    Ok(format!(
        "drain: {} no-op tasks in {:.3}s = {:.0} tasks/s (concurrency {}, batch {}); succeeded {}, failed {}, left {}\n\
         CPU during the drain: {:.2}s ({:.0}% of one core); {:.1} tasks per claim, {:.1} per completion write\n\
         pre-load (enqueue_batch of 10,000): {:.0} tasks/s",
        o.tasks,
        elapsed.as_secs_f64(),
        o.tasks as f64 / elapsed.as_secs_f64(),
        o.concurrency,
        if o.batching { o.batch.to_string() } else { "off".into() },
        report.succeeded,
        report.failed,
        left_queued,
        cpu,
        100.0 * cpu / elapsed.as_secs_f64(),
        o.tasks as f64 / stats.claim_round_trips.load(Ordering::Relaxed).max(1) as f64,
        o.tasks as f64 / stats.completion_writes.load(Ordering::Relaxed).max(1) as f64,
        o.tasks as f64 / load.as_secs_f64().max(1e-9),
    ))
}

/// CPU seconds (user + system) this process has used, from /proc (0 where unavailable).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the full line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Enqueues single tasks on an idle worker and measures enqueue → first step start.
pub async fn latency(samples: usize) -> Result<String, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut skills = SkillRegistry::builtin();
    skills.register(Arc::new(Mark(tx)), SkillOrigin::BuiltIn);
    let b = setup(skills).await?;
    let worker = Worker::new(worker_options(10, 100, true), b.runtime.clone());
    let (stop, stop_rx) = watch::channel(false);
    let handle = tokio::spawn(worker.run(stop_rx));
    let mut measured = Vec::with_capacity(samples);
    let warmup = 50;
    for i in 0..samples + warmup {
        // Let the worker go idle between samples.
        tokio::time::sleep(Duration::from_millis(3)).await;
        let t0 = Instant::now();
        b.store
            .enqueue(NewTask::new("bench-mark", "default", json!({"i": i})))
            .await
            .map_err(|e| e.to_string())?;
        let started = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .map_err(|_| "a task did not start within 10s".to_string())?
            .ok_or("probe channel closed")?;
        if i >= warmup {
            measured.push(started.duration_since(t0));
        }
    }
    let _ = stop.send(true);
    let _ = handle.await;
    measured.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(format!(
        "latency: enqueue → start on an idle node, {} samples: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        measured.len(),
        ms(percentile(&measured, 0.50)),
        ms(percentile(&measured, 0.90)),
        ms(percentile(&measured, 0.99)),
        ms(*measured.last().unwrap_or(&Duration::ZERO)),
    ))
}

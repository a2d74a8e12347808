//! `oclaw bench waits`: N tasks that each park in a `wait` step, run by the real worker and
//! executor on a temporary SQLite file (or a fresh PostgreSQL schema). Measures how fast tasks
//! park, that no worker slot is held while they wait, this process's resident memory and CPU
//! before and after (idle while they wait), the store's bytes per waiting task, and the latency
//! from an event to the resumed step (p50/p99).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use oclaw_core::{NewTask, TaskStatus};
use oclaw_skills::{Skill, SkillCall, SkillContext, SkillError};
use oclaw_store::waits::NewEvent;
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub struct WaitsOptions {
    pub tasks: usize,
    pub samples: usize,
    pub storage_url: Option<String>,
}

/// Marks when the step after the wait runs, with the task's key.
struct Resumed(mpsc::UnboundedSender<(u64, Instant)>);

#[async_trait]
impl Skill for Resumed {
    fn name(&self) -> &'static str {
        "bench.resumed"
    }
    fn summary(&self) -> &'static str {
        "benchmark probe: reports when it runs"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["k"]
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let k = call.with["k"].as_u64().unwrap_or(u64::MAX);
        let _ = self.0.send((k, Instant::now()));
        Ok(json!(k))
    }
}

const BOT: &str = "metadata: {name: waiter}
spec:
  steps:
    - {id: go, wait: {event: bench.go, key: \"{{ input.k }}\"}}
    - {id: after, uses: bench.resumed, with: {k: \"{{ input.k }}\"}}
";

/// This process's resident memory.
pub(crate) fn rss_bytes() -> f64 {
    oclaw_telemetry::system::process_metrics(0.0)
        .into_iter()
        .find(|(name, ..)| *name == "process_resident_memory_bytes")
        .map(|(.., bytes)| bytes)
        .unwrap_or(0.0)
}

/// Bytes of the SQLite database files in `dir`, without the write-ahead log (which holds page
/// copies until its next checkpoint, not data).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            !name.ends_with("-wal") && !name.ends_with("-shm")
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

pub async fn waits(o: WaitsOptions) -> Result<String, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut skills = oclaw_skills::SkillRegistry::builtin();
    skills.register(Arc::new(Resumed(tx)));
    let bench = crate::drain::setup_with(skills, o.storage_url.as_deref(), BOT).await?;
    let result = async {
        let (stop, handle, stats) = bench.start_worker_with_stats(50);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_before = rss_bytes();
        let disk_before = dir_bytes(bench.dir.path());
        let started = Instant::now();
        let mut left = o.tasks;
        let mut k = 0u64;
        while left > 0 {
            let n = left.min(10_000);
            let batch = (0..n)
                .map(|_| {
                    k += 1;
                    NewTask::new("waiter", "default", json!({ "k": k }))
                })
                .collect();
            bench.store.enqueue_batch(batch).await.map_err(|e| e.to_string())?;
            left -= n;
        }
        // Every task runs its first step and parks.
        let mut last = (0, Instant::now());
        loop {
            let parked = stats.parked.load(Ordering::Relaxed);
            if parked >= o.tasks as u64 {
                break;
            }
            if parked != last.0 {
                last = (parked, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(30) {
                return Err(format!("only {parked} of {} tasks parked", o.tasks));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let parking = started.elapsed();
        let in_flight = stats.in_flight.load(Ordering::Relaxed);
        let stats_now = bench.store.queue_stats(chrono::Utc::now()).await.map_err(|e| e.to_string())?;
        let waiting: u64 = stats_now.iter().map(|q| q.waiting).sum();
        // Idle while they wait: CPU over two seconds, resident memory after.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let cpu_start = crate::drain::cpu_seconds();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_cpu = crate::drain::cpu_seconds() - cpu_start;
        let rss_after = rss_bytes();
        let disk_after = dir_bytes(bench.dir.path());
        // Event → resumed step, one event at a time on the otherwise idle node.
        let mut lat = Vec::with_capacity(o.samples);
        for key in 1..=o.samples.min(o.tasks) as u64 {
            let sent = Instant::now();
            bench
                .store
                .send_event(NewEvent {
                    name: "bench.go".into(),
                    key: key.to_string(),
                    data: json!({}),
                    retention: Duration::from_secs(60),
                })
                .await
                .map_err(|e| e.to_string())?;
            let (got, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .map_err(|_| format!("task {key} did not resume within 10s"))?
                .ok_or("the probe stopped")?;
            if got != key {
                return Err(format!("resumed {got}, expected {key}"));
            }
            lat.push(at.duration_since(sent));
        }
        lat.sort();
        let _ = stop.send(true);
        let _ = handle.await;
        let done = bench
            .store
            .list_tasks(oclaw_store::TaskFilter { status: Some(TaskStatus::Succeeded), limit: 1000, ..Default::default() })
            .await
            .map_err(|e| e.to_string())?
            .len();
        let mem_per_task = (rss_after - rss_before).max(0.0) / o.tasks as f64;
        let disk_note = if bench.store.backend() == "sqlite" {
            format!(
                "; the database file grew {:.0} bytes per waiting task (task, wait and checkpoint rows with their indexes)",
                (disk_after.saturating_sub(disk_before)) as f64 / o.tasks as f64
            )
        } else {
            String::new()
        };
        Ok(format!(
            "waits ({}): {} tasks parked in a `wait` step in {:.2}s ({:.0} parks/s); {} waiting, worker slots in use while they wait: {}\n\
             this process: RSS {:.1} MiB before, {:.1} MiB with all waiting ({:.0} bytes per waiting task){}\n\
             idle CPU while {} tasks wait: {:.3}s over 2s ({:.1}% of one core)\n\
             event → resumed step, {} samples: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} resumed tasks finished)",
            bench.store.backend(),
            o.tasks,
            parking.as_secs_f64(),
            o.tasks as f64 / parking.as_secs_f64(),
            waiting,
            in_flight,
            rss_before / 1048576.0,
            rss_after / 1048576.0,
            mem_per_task,
            disk_note,
            waiting,
            idle_cpu,
            100.0 * idle_cpu / 2.0,
            lat.len(),
            crate::drain::percentile(&lat, 0.5).as_secs_f64() * 1e3,
            crate::drain::percentile(&lat, 0.99).as_secs_f64() * 1e3,
            lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            done,
        ))
    }
    .await;
    bench.cleanup().await;
    result
}

//! `oclaw bench spread`: how a burst of slow tasks spreads over two `oclaw worker` processes,
//! and how soon the tasks of one of them come back after it is killed with SIGKILL. Run once
//! with the worker defaults (a small prefetch on a short lease) and once the way a worker
//! claimed before them (a buffer of `2 × batch + concurrency`, every task on the full lease),
//! in the same run, on PostgreSQL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use oclaw_core::{NewTask, TaskStatus};
use oclaw_store::TaskFilter;
use serde_json::json;

use crate::drain::{bench_skills, setup, spawn_worker_processes, Bench};

pub struct SpreadOptions {
    pub tasks: usize,
    /// How long each task sleeps.
    pub task_time: Duration,
    pub storage_url: String,
}

/// One configuration's result.
struct Spread {
    held: [usize; 2],
    /// SIGKILL of worker 0 → the first of its tasks back in the queue.
    first_back: Duration,
    /// SIGKILL of worker 0 → the last of its tasks back in the queue.
    all_back: Duration,
}

pub async fn spread(o: SpreadOptions) -> Result<String, String> {
    if !o.storage_url.starts_with("postgres") {
        return Err("bench spread runs worker processes: give --storage-url postgres://…".into());
    }
    let mut lines = vec![format!(
        "spread: {} tasks of {} each, submitted in one batch to 2 worker processes \
         (concurrency 10, lease 30s); worker 0 is killed with SIGKILL once both hold their share",
        o.tasks,
        oclaw_core::duration::format_duration(o.task_time)
    )];
    for (label, prefetch) in [
        ("defaults (prefetch 10, prefetch_lease 5s)", None),
        ("before (buffer of 210, full lease)", Some(210)),
    ] {
        let bench = setup(bench_skills(), Some(&o.storage_url)).await?;
        let r = run_one(&bench, &o, prefetch).await;
        bench.cleanup().await;
        let r = r?;
        lines.push(format!(
            "  {label}: held {} / {}; after the kill, worker 0's first task back in the queue in {:.1}s, its last in {:.1}s",
            r.held[0],
            r.held[1],
            r.first_back.as_secs_f64(),
            r.all_back.as_secs_f64()
        ));
    }
    Ok(lines.join("\n"))
}

async fn run_one(b: &Bench, o: &SpreadOptions, prefetch: Option<usize>) -> Result<Spread, String> {
    let url = b.pg_url.clone().ok_or("worker processes need PostgreSQL")?;
    let leases = match prefetch {
        None => String::new(),
        Some(p) => format!("  prefetch: {p}\n  prefetch_lease: 30s\n"),
    };
    let config = format!(
        "worker:\n  concurrency: 10\n  lease: 30s\n{leases}  queues: [default]\n\
         telemetry: {{log_level: error}}\n\
         bots:\n  - metadata: {{name: bench-slow}}\n    spec:\n      steps: [{{uses: sleep, with: {{duration: {}ms}}}}]\n",
        o.task_time.as_millis()
    );
    let ids = ["bench-spread-0".to_string(), "bench-spread-1".to_string()];
    let mut children = spawn_worker_processes(b, &url, &ids, &config)?;
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.store.list_nodes().await.map_err(|e| e.to_string())?.len() < 2 {
            if Instant::now() > deadline {
                return Err("the worker processes did not register".to_string());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let tasks = (0..o.tasks)
            .map(|i| NewTask::new("bench-slow", "default", json!({"i": i})))
            .collect();
        b.store
            .enqueue_batch(tasks)
            .await
            .map_err(|e| e.to_string())?;
        // Both workers have claimed what they will (or the queue is empty).
        let deadline = Instant::now() + Duration::from_secs(5);
        let held = loop {
            let held = holders(b, o.tasks).await?;
            let total = held.values().sum::<usize>();
            if total == o.tasks || Instant::now() > deadline {
                break held;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // Past the first heartbeats, so started tasks hold their full lease.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = holders(b, o.tasks)
            .await?
            .get(&ids[0])
            .copied()
            .unwrap_or(0);
        let _ = children[0].kill();
        let _ = children[0].wait();
        let killed = Instant::now();
        let mut first_back = None;
        let all_back = loop {
            // This process plays the scheduler: expired leases go back to their queue.
            b.store
                .requeue_expired(Utc::now())
                .await
                .map_err(|e| e.to_string())?;
            let held = holders(b, o.tasks)
                .await?
                .get(&ids[0])
                .copied()
                .unwrap_or(0);
            if held < before && first_back.is_none() {
                first_back = Some(killed.elapsed());
            }
            if held == 0 {
                break killed.elapsed();
            }
            if killed.elapsed() > Duration::from_secs(120) {
                return Err("worker 0's tasks were not back within 120s of the kill".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Ok(Spread {
            held: [
                held.get(&ids[0]).copied().unwrap_or(0),
                held.get(&ids[1]).copied().unwrap_or(0),
            ],
            first_back: first_back.unwrap_or(all_back),
            all_back,
        })
    }
    .await;
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    result
}

async fn list(b: &Bench, n: usize) -> Result<Vec<oclaw_core::Task>, String> {
    b.store
        .list_tasks(TaskFilter {
            limit: n,
            ..TaskFilter::default()
        })
        .await
        .map_err(|e| e.to_string())
}

/// Running tasks by the worker that holds them.
async fn holders(b: &Bench, n: usize) -> Result<HashMap<String, usize>, String> {
    let mut by = HashMap::new();
    for t in list(b, n).await? {
        if let (TaskStatus::Running, Some(w)) = (t.status, t.worker) {
            *by.entry(w).or_default() += 1;
        }
    }
    Ok(by)
}

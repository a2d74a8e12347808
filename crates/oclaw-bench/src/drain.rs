//! Built-in benchmarks (`oclaw bench drain|latency`). They run the real store, worker and
//! pipeline executor against a fresh SQLite file in a temporary folder, or against a fresh schema
//! of a PostgreSQL database (`--storage-url postgres://...`, dropped afterwards); the drain can
//! also use separate `oclaw worker` processes (`--workers N`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use oclaw_bots::templates::TemplateEngine;
use oclaw_bots::BotCatalog;
use oclaw_core::NewTask;
use oclaw_engine::{Runtime, Worker, WorkerOptions};
use oclaw_skills::{Skill, SkillCall, SkillContext, SkillError, SkillRegistry};
use oclaw_store::postgres::{PgOptions, PgStore};
use oclaw_store::sqlite::{SqliteOptions, SqliteStore};
use oclaw_store::Store;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

pub struct DrainOptions {
    pub tasks: usize,
    pub concurrency: usize,
    pub batch: usize,
    pub batching: bool,
    /// `None`: a temporary SQLite file. A `postgres://` URL: a fresh schema in that database.
    pub storage_url: Option<String>,
    /// 0 runs the worker in this process; N starts N `oclaw worker` processes (PostgreSQL only).
    pub workers: usize,
    /// Finished tasks written before the drain (PostgreSQL only), to show claims stay fast
    /// however much history the table holds.
    pub history: usize,
    /// Tasks a worker claims beyond its free slots (`worker.prefetch`).
    pub prefetch: usize,
    /// Spread the tasks over this many keys with a limit of one running task per key (what
    /// `spec.concurrency: {limit: 1}` makes); 0: no keys.
    pub keys: usize,
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

pub(crate) struct Bench {
    pub(crate) store: Arc<dyn Store>,
    runtime: Arc<Runtime>,
    /// The PostgreSQL URL with the bench's own schema, when on PostgreSQL.
    pub(crate) pg_url: Option<String>,
    pub(crate) dir: tempfile::TempDir,
}

impl Bench {
    /// Drops the bench's PostgreSQL schema.
    pub(crate) async fn cleanup(&self) {
        if let Some(url) = &self.pg_url {
            if let Ok((client, schema)) = pg_connect(url).await {
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await;
            }
        }
    }
}

/// A plain connection to the bench's database, and the bench's schema name.
async fn pg_connect(url: &str) -> Result<(tokio_postgres::Client, String), String> {
    let (base, schema) = url
        .rsplit_once("schema=")
        .map(|(b, s)| (b.trim_end_matches(['?', '&']).to_string(), s.to_string()))
        .ok_or("no schema in the bench URL")?;
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("SET search_path = \"{schema}\""))
        .await
        .map_err(|e| e.to_string())?;
    Ok((client, schema))
}

pub(crate) async fn setup(
    skills: SkillRegistry,
    storage_url: Option<&str>,
) -> Result<Bench, String> {
    setup_with(skills, storage_url, BENCH_BOTS).await
}

impl Bench {
    /// Starts one worker in this process (`concurrency` slots) on the bench's runtime.
    pub(crate) fn start_worker(
        &self,
        concurrency: usize,
    ) -> (
        watch::Sender<bool>,
        tokio::task::JoinHandle<oclaw_engine::WorkerReport>,
    ) {
        let worker = Worker::new(
            worker_options(concurrency, 100, true, 10),
            self.runtime.clone(),
        );
        let (stop, stop_rx) = watch::channel(false);
        (stop, tokio::spawn(worker.run(stop_rx)))
    }

    /// [`Bench::start_worker`], with the worker's live counters.
    pub(crate) fn start_worker_with_stats(
        &self,
        concurrency: usize,
    ) -> (
        watch::Sender<bool>,
        tokio::task::JoinHandle<oclaw_engine::WorkerReport>,
        Arc<oclaw_engine::WorkerStats>,
    ) {
        let worker = Worker::new(
            worker_options(concurrency, 100, true, 10),
            self.runtime.clone(),
        );
        let stats = worker.stats();
        let (stop, stop_rx) = watch::channel(false);
        (stop, tokio::spawn(worker.run(stop_rx)), stats)
    }
}

/// [`setup`] with these bots (YAML) instead of the drain's.
pub(crate) async fn setup_with(
    skills: SkillRegistry,
    storage_url: Option<&str>,
    bots: &str,
) -> Result<Bench, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (store, pg_url): (Arc<dyn Store>, Option<String>) = match storage_url {
        Some(url) if url.starts_with("postgres") => {
            if url.contains("schema=") {
                return Err(
                    "give the database URL without ?schema=; the bench makes its own".into(),
                );
            }
            let sep = if url.contains('?') { '&' } else { '?' };
            let url = format!("{url}{sep}schema=oclaw_bench_{}", std::process::id());
            let store = PgStore::open(
                &url,
                PgOptions {
                    pool_size: 8,
                    timeout: Duration::from_secs(10),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            (Arc::new(store), Some(url))
        }
        Some(url) if !url.starts_with("sqlite") => {
            return Err(format!(
                "unsupported storage URL `{}`",
                oclaw_store::redact_url(url)
            ))
        }
        _ => {
            let path = dir.path().join("bench.db");
            let store = SqliteStore::open(&path.display().to_string(), SqliteOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            (Arc::new(store), None)
        }
    };
    let templates = TemplateEngine::default();
    let mut catalog = BotCatalog::default();
    catalog
        .load_yaml("bench", bots, &skills, &templates)
        .map_err(|e| e.to_string())?;
    let runtime = Runtime::new(
        store.clone(),
        oclaw_bots::LiveCatalog::new(catalog),
        skills,
        templates,
        Duration::from_secs(600),
        json!({}),
    )?;
    Ok(Bench {
        store,
        runtime: Arc::new(runtime),
        pg_url,
        dir,
    })
}

fn worker_options(
    concurrency: usize,
    batch: usize,
    batching: bool,
    prefetch: usize,
) -> WorkerOptions {
    WorkerOptions {
        id: "bench".into(),
        queues: vec!["default".into()],
        concurrency,
        batch_enabled: batching,
        batch_max: batch,
        batch_timeout: Duration::from_millis(500),
        batch_linger: Duration::from_millis(2),
        prefetch,
        prefetch_lease: Duration::from_secs(5),
        lease: Duration::from_secs(60),
        poll_interval: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(10),
    }
}

/// Pre-loads `tasks` no-op tasks, then times one worker draining them.
/// The built-in skills and the bench's own (`bench.mark`, its marks unread).
pub(crate) fn bench_skills() -> SkillRegistry {
    let mut skills = SkillRegistry::builtin();
    skills.register(Arc::new(Mark(mpsc::unbounded_channel().0)));
    skills
}

pub async fn drain(o: DrainOptions) -> Result<String, String> {
    let skills = bench_skills();
    if o.workers > 0
        && o.storage_url
            .as_deref()
            .is_none_or(|u| !u.starts_with("postgres"))
    {
        return Err(
            "--workers needs --storage-url postgres://... (worker processes share the database)"
                .into(),
        );
    }
    let b = setup(skills, o.storage_url.as_deref()).await?;
    let result = drain_on(&b, &o).await;
    b.cleanup().await;
    result
}

async fn drain_on(b: &Bench, o: &DrainOptions) -> Result<String, String> {
    if o.history > 0 && b.pg_url.is_none() {
        sqlite_history(&b.dir.path().join("bench.db"), o.history)?;
    } else if let Some(url) = b.pg_url.as_deref().filter(|_| o.history > 0) {
        let (db, _) = pg_connect(url).await?;
        db.execute(
            "INSERT INTO tasks (bot, queue, status, input, output, attempts, max_attempts, trace_id, \
             created_at, run_at, started_at, finished_at, worker) \
             SELECT 'bench-noop', 'default', 'succeeded', '{}', 'null', 1, 3, 't', 0, 0, 0, 0, 'old' \
             FROM generate_series(1, $1::bigint)",
            &[&(o.history as i64)],
        )
        .await
        .map_err(|e| e.to_string())?;
        db.batch_execute("VACUUM ANALYZE tasks")
            .await
            .map_err(|e| e.to_string())?;
    }
    let load_start = Instant::now();
    let mut left = o.tasks;
    while left > 0 {
        let n = left.min(10_000);
        let batch = (0..n)
            .map(|i| {
                let mut t = NewTask::new("bench-noop", "default", json!({"i": i}));
                if o.keys > 0 {
                    t.ordering_key = Some(format!("bench-noop/k{}", (left - i) % o.keys));
                    t.key_limit = Some(1);
                }
                t
            })
            .collect();
        b.store
            .enqueue_batch(batch)
            .await
            .map_err(|e| e.to_string())?;
        left -= n;
    }
    let load = load_start.elapsed();
    if o.workers > 0 {
        return drain_processes(b, o, load).await;
    }
    let worker = Worker::new(
        worker_options(o.concurrency, o.batch, o.batching, o.prefetch),
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
        "drain ({}{}{}): {} no-op tasks in {:.3}s = {:.0} tasks/s (concurrency {}, prefetch {}, batch {}); succeeded {}, failed {}, left {}\n\
         CPU during the drain: {:.2}s ({:.0}% of one core); {:.1} tasks per claim, {:.1} per completion write\n\
         pre-load (enqueue_batch of 10,000): {:.0} tasks/s",
        b.store.backend(),
        history_note(o.history),
        if o.keys > 0 {
            format!(", over {} keys, one running per key", o.keys)
        } else {
            String::new()
        },
        o.tasks,
        elapsed.as_secs_f64(),
        o.tasks as f64 / elapsed.as_secs_f64(),
        o.concurrency,
        o.prefetch,
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

/// Writes `history` finished tasks into the bench's SQLite file (a second connection beside
/// the store's; WAL lets both in), then refreshes the planner's statistics.
fn sqlite_history(path: &std::path::Path, history: usize) -> Result<(), String> {
    let db = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    db.busy_timeout(Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    db.execute(
        "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < ?1) \
         INSERT INTO tasks (bot, queue, status, input, output, attempts, max_attempts, trace_id, \
           created_at, run_at, started_at, finished_at, worker) \
         SELECT 'bench-noop', 'default', 'succeeded', '{}', 'null', 1, 3, 't', 0, 0, 0, 0, 'old' FROM g",
        [history as i64],
    )
    .map_err(|e| e.to_string())?;
    db.execute_batch("ANALYZE").map_err(|e| e.to_string())
}

fn history_note(history: usize) -> String {
    if history > 0 {
        format!(", {history} finished tasks of history")
    } else {
        String::new()
    }
}

/// CPU seconds (user + system) this process has used, from /proc (0 where unavailable).
pub(crate) fn cpu_seconds() -> f64 {
    cpu_of_stat(std::path::Path::new("/proc/self/stat"))
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Enqueues single tasks on an idle worker and measures enqueue → first step start.
/// With `workers` > 0 (PostgreSQL only), the worker runs in another process.
pub async fn latency(
    samples: usize,
    storage_url: Option<&str>,
    workers: usize,
) -> Result<String, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut skills = SkillRegistry::builtin();
    skills.register(Arc::new(Mark(tx)));
    if workers > 0 && storage_url.is_none_or(|u| !u.starts_with("postgres")) {
        return Err("--workers needs --storage-url postgres://...".into());
    }
    let b = setup(skills, storage_url).await?;
    let result = if workers > 0 {
        latency_cross_process(&b, samples).await
    } else {
        latency_on(&b, samples, &mut rx).await
    };
    b.cleanup().await;
    result
}

async fn latency_on(
    b: &Bench,
    samples: usize,
    rx: &mut mpsc::UnboundedReceiver<Instant>,
) -> Result<String, String> {
    let worker = Worker::new(worker_options(10, 100, true, 10), b.runtime.clone());
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
    Ok(latency_report(
        &format!(
            "latency ({}): enqueue → start on an idle node",
            b.store.backend()
        ),
        &mut measured,
        3,
    ))
}

/// `<what>, N samples: p50 …, p90 …, p99 …, max …` with `decimals` digits of milliseconds.
pub(crate) fn latency_report(what: &str, measured: &mut [Duration], decimals: usize) -> String {
    measured.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let [p50, p90, p99] = [0.50, 0.90, 0.99].map(|p| ms(percentile(measured, p)));
    let max = ms(*measured.last().unwrap_or(&Duration::ZERO));
    format!(
        "{what}, {} samples: p50 {p50:.decimals$} ms, p90 {p90:.decimals$} ms, p99 {p99:.decimals$} ms, max {max:.decimals$} ms",
        measured.len()
    )
}

/// CPU seconds used so far by the processes whose command name is `comm` (PostgreSQL backends).
fn cpu_of_processes_named(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == comm))
        .map(|e| cpu_of_stat(&e.path().join("stat")))
        .sum()
}

/// User + system CPU seconds of the process whose `/proc/<pid>/stat` is at `path` (0 where
/// unavailable).
fn cpu_of_stat(path: &std::path::Path) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces); utime and
    // stime are fields 14 and 15 of the full line, 12 and 13 after the name.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Starts `n` `oclaw worker` processes on the bench's schema, running the bench bots.
fn spawn_workers(
    b: &Bench,
    url: &str,
    n: usize,
    concurrency: usize,
    batching: bool,
    batch: usize,
    prefetch: usize,
) -> Result<Vec<std::process::Child>, String> {
    let config = format!(
        "worker:\n  concurrency: {concurrency}\n  prefetch: {prefetch}\n  queues: [default]\n  batch: {{enabled: {batching}, maxSize: {batch}}}\n\
         telemetry: {{log_level: warn}}\n\
         bots:\n  - metadata: {{name: bench-noop}}\n    spec: {{}}\n"
    );
    let ids: Vec<String> = (0..n).map(|i| format!("bench-worker-{i}")).collect();
    spawn_worker_processes(b, url, &ids, &config)
}

/// Starts one `oclaw worker` process per id on the bench's schema, with this configuration.
pub(crate) fn spawn_worker_processes(
    b: &Bench,
    url: &str,
    ids: &[String],
    config: &str,
) -> Result<Vec<std::process::Child>, String> {
    static CONFIGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CONFIGS.fetch_add(1, Ordering::Relaxed);
    let path = b.dir.path().join(format!("bench-worker-{n}.yaml"));
    std::fs::write(&path, config).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    for id in ids {
        let child = std::process::Command::new(&exe)
            .args(["worker", "--node-id", id, "--config"])
            .arg(&path)
            .env("OCLAW_STORAGE__URL", url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start a worker process: {e}"))?;
        children.push(child);
    }
    Ok(children)
}

/// Enqueue → start with a worker in another process: the wake-up crosses processes through
/// LISTEN/NOTIFY. Times come from the database rows (millisecond resolution, one host's clock).
async fn latency_cross_process(b: &Bench, samples: usize) -> Result<String, String> {
    let url = b
        .pg_url
        .clone()
        .ok_or("a worker process needs PostgreSQL")?;
    let mut children = spawn_workers(b, &url, 1, 10, true, 100, 10)?;
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while b
            .store
            .list_nodes()
            .await
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            if Instant::now() > deadline {
                return Err("the worker process did not register".to_string());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut ids = Vec::with_capacity(samples);
        for i in 0..samples + 50 {
            let t = b
                .store
                .enqueue(NewTask::new("bench-noop", "default", json!({"i": i})))
                .await
                .map_err(|e| e.to_string())?;
            if i >= 50 {
                ids.push(t.task.id);
            }
            // Idle between samples: each task finds the worker waiting.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut measured = Vec::with_capacity(samples);
        for id in ids {
            let t = b
                .store
                .get_task(id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("a bench task vanished")?;
            let started = t.started_at.ok_or("a bench task never started")?;
            let waited = (started - t.created_at).num_milliseconds().max(0) as u64;
            measured.push(Duration::from_millis(waited));
        }
        Ok(latency_report(
            "latency (postgres, worker in another process): enqueue → start, 1 ms resolution",
            &mut measured,
            0,
        ))
    }
    .await;
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    result
}

/// Drains with `o.workers` separate `oclaw worker` processes on the bench's PostgreSQL schema.
/// The rate counts from the first task's start to the last task's finish, as the database
/// recorded them, so process start-up is not part of it.
async fn drain_processes(b: &Bench, o: &DrainOptions, load: Duration) -> Result<String, String> {
    let url = b.pg_url.clone().ok_or("worker processes need PostgreSQL")?;
    let (db, _) = pg_connect(&url).await?;
    let pg_cpu_start = cpu_of_processes_named("postgres");
    let mut children = spawn_workers(
        b,
        &url,
        o.workers,
        o.concurrency,
        o.batching,
        o.batch,
        o.prefetch,
    )?;
    let mut last = (-1i64, Instant::now());
    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Cheap enough not to disturb the drain: stops at the first unfinished task.
        let busy: bool = db
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM tasks WHERE status = 'queued') \
                 OR EXISTS (SELECT 1 FROM tasks WHERE status = 'running')",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        if !busy {
            break Ok(());
        }
        let done: i64 = if last.1.elapsed() > Duration::from_secs(10) {
            db.query_one("SELECT count(*) FROM tasks WHERE status = 'succeeded'", &[])
                .await
                .map_err(|e| e.to_string())?
                .get(0)
        } else {
            continue;
        };
        if done == last.0 {
            break Err(format!("no progress for 10s after {done} tasks"));
        }
        last = (done, Instant::now());
    };
    let worker_cpu: f64 = children
        .iter()
        .map(|c| cpu_of_stat(std::path::Path::new(&format!("/proc/{}/stat", c.id()))))
        .sum();
    let pg_cpu = cpu_of_processes_named("postgres") - pg_cpu_start;
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    outcome?;
    let row = db
        .query_one(
            "SELECT min(started_at), max(finished_at), count(*) FILTER (WHERE status = 'succeeded'), \
             count(*) FILTER (WHERE attempts > 1) FROM tasks WHERE worker <> 'old'",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let (first, last_done): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
    let span = (last_done.unwrap_or(0) - first.unwrap_or(0)).max(1) as f64 / 1000.0;
    let succeeded: i64 = row.get(2);
    let rerun: i64 = row.get(3);
    Ok(format!(
        "drain (postgres{}, {} worker process{}): {} no-op tasks in {:.3}s = {:.0} tasks/s \
         (concurrency {} each, prefetch {}, batch {}); succeeded {}, run more than once {}\n\
         CPU: workers {:.2}s ({:.0}% of one core), PostgreSQL {:.2}s ({:.0}% of one core) \
         over the drain and start-up\n\
         pre-load (enqueue_batch of 10,000): {:.0} tasks/s",
        history_note(o.history),
        o.workers,
        if o.workers == 1 { "" } else { "es" },
        o.tasks,
        span,
        o.tasks as f64 / span,
        o.concurrency,
        o.prefetch,
        if o.batching {
            o.batch.to_string()
        } else {
            "off".into()
        },
        succeeded,
        rerun,
        worker_cpu,
        100.0 * worker_cpu / span,
        pg_cpu,
        100.0 * pg_cpu / span,
        o.tasks as f64 / load.as_secs_f64().max(1e-9),
    ))
}

//! The worker runtime: claims task batches from its queues, runs up to `concurrency` at once,
//! heartbeats its leases, writes completions in batches (group commit), and on shutdown stops
//! claiming, finishes or releases what it holds, and returns.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use oclaw_core::config::WorkerConfig;
use oclaw_core::{ErrorCode, NewTask, TaskError, TaskId};
use oclaw_store::{ClaimRequest, ClaimedTask, Completion, KvWrite, Outcome, Store};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::JoinSet;

use crate::pipeline::{run_pipeline, Finish, Runtime};

/// How a worker claims and runs tasks.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub id: String,
    pub queues: Vec<String>,
    pub concurrency: usize,
    pub batch_enabled: bool,
    pub batch_max: usize,
    pub batch_timeout: Duration,
    /// Longest the completion writer waits for running tasks to finish so they share a write.
    pub batch_linger: Duration,
    /// Claimed tasks that may wait here beyond the free slots.
    pub prefetch: usize,
    /// Lease of a claimed task until it starts (at most `lease`).
    pub prefetch_lease: Duration,
    pub lease: Duration,
    pub poll_interval: Duration,
    pub shutdown_grace: Duration,
}

impl WorkerOptions {
    pub fn from_config(cfg: &WorkerConfig, id: String, queues: Vec<String>) -> WorkerOptions {
        WorkerOptions {
            id,
            queues,
            concurrency: cfg.concurrency.max(1),
            batch_enabled: cfg.batch.enabled,
            batch_max: cfg.batch.max_size.max(1),
            batch_timeout: cfg.batch.timeout.get(),
            batch_linger: cfg.batch.linger.get().min(cfg.batch.timeout.get()),
            prefetch: cfg.prefetch,
            prefetch_lease: cfg.prefetch_lease.get().min(cfg.lease.get()),
            lease: cfg.lease.get(),
            poll_interval: cfg.poll_interval.get(),
            shutdown_grace: cfg.shutdown_grace.get(),
        }
    }
}

/// Live counters of a worker (read by metrics and tests).
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub in_flight: AtomicUsize,
    pub claimed: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub fenced: AtomicU64,
    pub released: AtomicU64,
    /// Attempts that parked their task (a wait, an approval, a timer, a child task).
    pub parked: AtomicU64,
    /// Completion writes (each a batch), and claim round trips that returned tasks.
    pub completion_writes: AtomicU64,
    pub claim_round_trips: AtomicU64,
    /// Claim calls made, and those that failed (part of the scheduling metrics).
    pub claim_attempts: AtomicU64,
    pub claim_failures: AtomicU64,
}

/// What a worker did before it stopped.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WorkerReport {
    pub claimed: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub fenced: u64,
    pub released: u64,
}

pub struct Worker {
    opts: WorkerOptions,
    rt: Arc<Runtime>,
    stats: Arc<WorkerStats>,
}

/// The tasks a worker holds leases on: claimed and waiting for a slot, or started (running or
/// waiting for their result to be written). Waiting ones carry the short prefetch lease.
#[derive(Default)]
struct Holding {
    waiting: HashSet<TaskId>,
    started: HashSet<TaskId>,
}

type Held = Arc<Mutex<Holding>>;

/// How many tasks a worker may hold (running plus waiting), and the claimer's wake-up when room
/// frees: a finished task, or the last waiting task taken by a slot.
struct Room {
    /// Sized for the most the worker may ever hold; the claimer keeps `reserve` of it unused.
    capacity: Arc<Semaphore>,
    /// Mean run time of this worker's recent tasks, in microseconds (0 until one finished).
    mean_micros: AtomicU64,
    waiting: AtomicUsize,
    freed: Notify,
}

/// Resolves once the shutdown flag is set (never, if its sender is gone without setting it).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn hold(held: &Held, ids: impl IntoIterator<Item = TaskId>) {
    if let Ok(mut h) = held.lock() {
        h.waiting.extend(ids);
    }
}

fn start(held: &Held, id: TaskId) {
    if let Ok(mut h) = held.lock() {
        h.waiting.remove(&id);
        h.started.insert(id);
    }
}

fn unhold(held: &Held, ids: &[TaskId]) {
    if let Ok(mut h) = held.lock() {
        for id in ids {
            h.waiting.remove(id);
            h.started.remove(id);
        }
    }
}

fn all_held(held: &Held) -> Vec<TaskId> {
    held.lock()
        .map(|h| h.waiting.iter().chain(&h.started).copied().collect())
        .unwrap_or_default()
}

impl Worker {
    pub fn new(opts: WorkerOptions, rt: Arc<Runtime>) -> Worker {
        Worker {
            opts,
            rt,
            stats: Arc::new(WorkerStats::default()),
        }
    }

    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` turns true, then drains and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> WorkerReport {
        let store = self.rt.store.clone();
        let opts = Arc::new(self.opts);
        let held: Held = Arc::default();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Completion>();
        let flusher = tokio::spawn(flush_completions(
            store.clone(),
            done_rx,
            held.clone(),
            opts.clone(),
            self.stats.clone(),
        ));
        let (hb_stop_tx, hb_stop_rx) = watch::channel(false);
        let heartbeat = tokio::spawn(heartbeat_leases(
            store.clone(),
            held.clone(),
            opts.clone(),
            hb_stop_rx,
        ));
        let sem = Arc::new(Semaphore::new(opts.concurrency));
        let room = Arc::new(Room {
            capacity: Arc::new(Semaphore::new(opts.concurrency + max_prefetch(&opts))),
            mean_micros: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        });
        let mut running: JoinSet<()> = JoinSet::new();
        // Claimed tasks wait here (each with its share of the room) until a slot frees; the
        // claimer refills it while the dispatcher keeps running.
        let (task_tx, mut task_rx) =
            mpsc::unbounded_channel::<(ClaimedTask, OwnedSemaphorePermit)>();
        let (claim_stop_tx, claim_stop_rx) = watch::channel(false);
        let claimer = tokio::spawn(claim_tasks(
            store.clone(),
            opts.clone(),
            held.clone(),
            room.clone(),
            self.stats.clone(),
            task_tx,
            claim_stop_rx,
        ));
        tracing::info!(component = "worker", worker = %opts.id, queues = ?opts.queues, concurrency = opts.concurrency, "worker started");

        loop {
            let permit = tokio::select! {
                p = sem.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = stopped(&mut shutdown) => break,
            };
            let (task, share) = tokio::select! {
                t = task_rx.recv() => match t { Some(t) => t, None => break },
                _ = stopped(&mut shutdown) => break,
            };
            start(&held, task.id);
            if room.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
                room.freed.notify_one();
            }
            running.spawn(run_one(
                self.rt.clone(),
                task,
                (permit, share),
                room.clone(),
                Outlet {
                    done: done_tx.clone(),
                    worker: opts.id.clone(),
                    stats: self.stats.clone(),
                    held: held.clone(),
                },
            ));
            while running.try_join_next().is_some() {}
        }

        // Shutdown: stop claiming, give back what has not started, let running tasks finish.
        let _ = claim_stop_tx.send(true);
        let _ = claimer.await;
        let mut buffer = Vec::new();
        while let Ok((t, _share)) = task_rx.try_recv() {
            buffer.push(t);
        }
        let unstarted: Vec<TaskId> = buffer.iter().map(|t| t.id).collect();
        release(&*store, &opts.id, &unstarted, &held, &self.stats).await;
        let grace = tokio::time::sleep(opts.shutdown_grace);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = running.join_next() => if next.is_none() { break },
                _ = &mut grace => {
                    tracing::warn!(component = "worker", tasks = running.len(), "shutdown grace over; stopping running tasks and releasing them");
                    running.abort_all();
                    while running.join_next().await.is_some() {}
                    break;
                }
            }
        }
        drop(done_tx);
        let _ = flusher.await;
        let leftover = all_held(&held);
        release(&*store, &opts.id, &leftover, &held, &self.stats).await;
        let _ = hb_stop_tx.send(true);
        let _ = heartbeat.await;
        let s = &self.stats;
        let report = WorkerReport {
            claimed: s.claimed.load(Ordering::Relaxed),
            succeeded: s.succeeded.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            fenced: s.fenced.load(Ordering::Relaxed),
            released: s.released.load(Ordering::Relaxed),
        };
        tracing::info!(component = "worker", worker = %opts.id, succeeded = report.succeeded, failed = report.failed, released = report.released, "worker stopped");
        report
    }
}

/// The most a worker prefetches, whatever its tasks' run time: two claims' worth.
fn max_prefetch(opts: &WorkerOptions) -> usize {
    opts.prefetch.max(2 * opts.batch_max)
}

/// How much work a worker holds waiting beyond its slots: tasks it expects to start within
/// this long. Short tasks (a busy drain) get large claims; slow ones keep `worker.prefetch`,
/// so a burst of them spreads over every worker.
const PREFETCH_HORIZON: Duration = Duration::from_millis(50);

/// Tasks to hold waiting, from the mean run time seen so far (`prefetch` until one finished).
fn prefetch_now(opts: &WorkerOptions, mean_micros: u64) -> usize {
    if mean_micros == 0 {
        return opts.prefetch;
    }
    let fits = opts.concurrency as u128 * PREFETCH_HORIZON.as_micros() / mean_micros as u128;
    (fits.min(max_prefetch(opts) as u128) as usize).max(opts.prefetch)
}

/// Keeps the dispatch channel stocked within the worker's room (`concurrency` plus what it
/// prefetches, [`prefetch_now`]): claims when half the room is free, or at once when a slot
/// would otherwise idle; waits for a wake-up (or the poll interval) when the queues are empty.
/// Claimed tasks get the short prefetch lease; the heartbeat gives a started task the full one.
async fn claim_tasks(
    store: Arc<dyn Store>,
    opts: Arc<WorkerOptions>,
    held: Held,
    room: Arc<Room>,
    stats: Arc<WorkerStats>,
    tx: mpsc::UnboundedSender<(ClaimedTask, OwnedSemaphorePermit)>,
    mut stop: watch::Receiver<bool>,
) {
    let per_claim = if opts.batch_enabled {
        opts.batch_max
    } else {
        1
    };
    let mut backoff = Duration::from_millis(50);
    loop {
        let shares = loop {
            let extra = prefetch_now(&opts, room.mean_micros.load(Ordering::Relaxed));
            let low_water = per_claim.min(((opts.concurrency + extra) / 2).max(1));
            let reserve = max_prefetch(&opts) - extra;
            let free = room.capacity.available_permits().saturating_sub(reserve);
            if free >= low_water || (free > 0 && room.waiting.load(Ordering::Acquire) == 0) {
                match room
                    .capacity
                    .clone()
                    .try_acquire_many_owned(free.min(per_claim) as u32)
                {
                    Ok(p) => break p,
                    Err(TryAcquireError::Closed) => return,
                    Err(TryAcquireError::NoPermits) => continue,
                }
            }
            tokio::select! {
                _ = room.freed.notified() => {}
                _ = stopped(&mut stop) => return,
            }
        };
        let request = ClaimRequest {
            worker: opts.id.clone(),
            queues: opts.queues.clone(),
            limit: shares.num_permits(),
            lease: opts.prefetch_lease,
        };
        stats.claim_attempts.fetch_add(1, Ordering::Relaxed);
        match store.claim_batch(request).await {
            Ok(tasks) if tasks.is_empty() => {
                drop(shares);
                backoff = Duration::from_millis(50);
                tokio::select! {
                    _ = store.wakeups().queued.notified() => {}
                    _ = tokio::time::sleep(opts.poll_interval) => {}
                    _ = stopped(&mut stop) => return,
                }
            }
            Ok(tasks) => {
                backoff = Duration::from_millis(50);
                stats
                    .claimed
                    .fetch_add(tasks.len() as u64, Ordering::Relaxed);
                stats.claim_round_trips.fetch_add(1, Ordering::Relaxed);
                hold(&held, tasks.iter().map(|t| t.id));
                room.waiting.fetch_add(tasks.len(), Ordering::AcqRel);
                let mut shares = shares;
                for task in tasks {
                    // One share per task; the claim never returns more than it asked for.
                    let share = shares.split(1).expect("a share for each claimed task");
                    if tx.send((task, share)).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                drop(shares);
                stats.claim_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    component = "worker",
                    error_code = e.code().code(),
                    "claiming tasks failed: {e}; retrying in {backoff:?}"
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped(&mut stop) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn release(
    store: &dyn Store,
    worker: &str,
    ids: &[TaskId],
    held: &Held,
    stats: &WorkerStats,
) {
    if ids.is_empty() {
        return;
    }
    match store.release(worker, ids).await {
        Ok(n) => {
            stats.released.fetch_add(n, Ordering::Relaxed);
            tracing::info!(component = "worker", released = n, "released leased tasks back to their queues");
        }
        Err(e) => tracing::warn!(
            component = "worker",
            error_code = e.code().code(),
            "could not release {} tasks ({e}); they return to their queues when their leases expire",
            ids.len()
        ),
    }
    unhold(held, ids);
}

/// Where a finished attempt is reported: the completion writer, as this worker, in its counters,
/// and the set of leases it holds (a parked task leaves it at once).
struct Outlet {
    done: mpsc::UnboundedSender<Completion>,
    worker: String,
    stats: Arc<WorkerStats>,
    held: Held,
}

async fn run_one(
    rt: Arc<Runtime>,
    task: ClaimedTask,
    permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    room: Arc<Room>,
    out: Outlet,
) {
    let Outlet {
        done,
        worker,
        stats,
        held,
    } = out;
    stats.in_flight.fetch_add(1, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let wait = (Utc::now() - task.run_at).to_std().unwrap_or_default();
    let (outcome, kv, follow_ups) = match execute(&rt, &task, &worker).await {
        Attempt::Complete(outcome, kv, follow_ups) => (outcome, kv, follow_ups),
        Attempt::Parked => {
            stats.parked.fetch_add(1, Ordering::Relaxed);
            stats.in_flight.fetch_sub(1, Ordering::Release);
            unhold(&held, &[task.id]);
            drop(permits);
            room.freed.notify_one();
            return;
        }
    };
    // A moving mean (1/8 weight for the newest) of how long tasks take here.
    let took = (started.elapsed().as_micros() as u64).max(1);
    let mean = room.mean_micros.load(Ordering::Relaxed);
    let next = if mean == 0 {
        took
    } else {
        mean - mean / 8 + took / 8
    };
    room.mean_micros.store(next.max(1), Ordering::Relaxed);
    let succeeded = matches!(outcome, Outcome::Succeeded(_));
    rt.metrics
        .task_finished(&task.bot, succeeded, started.elapsed(), wait);
    // Leave the in-flight count before reporting, so the flusher never waits for this task.
    stats.in_flight.fetch_sub(1, Ordering::Release);
    let _ = done.send(Completion {
        id: task.id,
        worker,
        attempt: task.attempt,
        outcome,
        kv,
        follow_ups,
        parent: task.parent,
    });
    drop(permits);
    room.freed.notify_one();
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// What one attempt ended in.
pub(crate) enum Attempt {
    /// What the store should record, with the key-value writes and the follow-up tasks (a
    /// reply's delivery) that go with a success.
    Complete(Outcome, Vec<KvWrite>, Vec<NewTask>),
    /// The task waits in the store (or the park was fenced): nothing more to record.
    Parked,
}

/// Runs one attempt and decides what the store should record.
pub(crate) async fn execute(rt: &Runtime, task: &ClaimedTask, worker: &str) -> Attempt {
    let Some(bot) = rt.bot_for(task).await else {
        let error = TaskError::new(
            ErrorCode::BotMissing,
            format!("bot `{}` is not loaded on this node", task.bot),
        );
        log_failure(task, &error, false);
        let failed = Outcome::Failed {
            error,
            retry_at: None,
        };
        return Attempt::Complete(failed, Vec::new(), Vec::new());
    };
    if bot.doc.metadata.tenant != task.tenant && !rt.system.contains_key(&task.bot) {
        // A task runs only a bot of its own tenant (built-in bots serve every tenant): one
        // enqueued for another tenant's bot would run with its own tenant's secrets and data.
        let error = TaskError::new(
            ErrorCode::BotMissing,
            format!(
                "bot `{}` is not a bot of tenant `{}`",
                task.bot, task.tenant
            ),
        );
        log_failure(task, &error, false);
        let failed = Outcome::Failed {
            error,
            retry_at: None,
        };
        return Attempt::Complete(failed, Vec::new(), Vec::new());
    }
    let timeout = bot.doc.spec.timeout.get();
    let attempt = AssertUnwindSafe(run_pipeline(rt, &bot, task)).catch_unwind();
    let (error, retryable) = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(Ok(Finish::Done(output, kv)))) => {
            let follow_ups = reply_delivery(task, &output).into_iter().collect();
            return Attempt::Complete(Outcome::Succeeded(output), kv, follow_ups);
        }
        Ok(Ok(Ok(Finish::Park(request)))) => match park(rt, task, worker, *request).await {
            Ok(()) => return Attempt::Parked,
            Err(e) => (e, true),
        },
        Ok(Ok(Err(f))) => (TaskError::new(f.code, f.message), f.retryable),
        Ok(Err(panic)) => (
            TaskError::new(
                ErrorCode::SkillPanicked,
                format!("a skill panicked: {}", panic_message(&*panic)),
            ),
            true,
        ),
        Err(_) => (
            TaskError::new(
                ErrorCode::TaskTimeout,
                format!(
                    "task exceeded its timeout of {}",
                    oclaw_core::duration::format_duration(timeout)
                ),
            ),
            true,
        ),
    };
    log_failure(task, &error, retryable);
    let retry_at = retryable.then(|| {
        let wait = bot
            .doc
            .spec
            .retry
            .delay_after(task.attempt, fastrand::f64());
        Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(1))
    });
    Attempt::Complete(Outcome::Failed { error, retry_at }, Vec::new(), Vec::new())
}

/// Parks the task on the wait its step asked for (fenced on this attempt's lease).
async fn park(
    rt: &Runtime,
    task: &ClaimedTask,
    worker: &str,
    request: crate::pipeline::ParkRequest,
) -> Result<(), TaskError> {
    let step = request.wait.step.clone();
    let kind = request.wait.kind.as_str();
    let mut request = request;
    if request.wait.kind == oclaw_store::waits::WaitKind::Event {
        // Events are the tenant's own: another tenant's event of the same name never wakes it.
        if let Some(name) = request.wait.name.as_mut() {
            *name = oclaw_core::bot::scoped_event(&task.tenant, name);
        }
    }
    let parked = rt
        .store
        .park(oclaw_store::waits::Park {
            id: task.id,
            worker: worker.to_string(),
            attempt: task.attempt,
            wait: request.wait,
            child: request.child,
        })
        .await
        .map_err(|e| TaskError::new(e.code(), format!("step `{step}`: parking the task: {e}")))?;
    let task_id = task.id.to_string();
    match parked {
        oclaw_store::waits::Parked::Waiting { wait, child } => tracing::info!(
            component = "worker", task_id, bot = %task.bot, step, kind, wait,
            child = child.map(|c| c.to_string()), "task waits"
        ),
        oclaw_store::waits::Parked::Resumed { wait } => tracing::info!(
            component = "worker", task_id, bot = %task.bot, step, kind, wait,
            "task resumed at once: the event it waits for came first"
        ),
        oclaw_store::waits::Parked::Fenced => tracing::warn!(
            component = "worker", task_id, bot = %task.bot, step,
            "the task could not wait: its lease was lost (expired or cancelled)"
        ),
    }
    Ok(())
}

/// The delivery task of a channel task's reply (when its input says where the reply goes):
/// on the same queue, in the same trace, enqueued with the completion so the reply is sent
/// (with retries) exactly when the success is recorded.
fn reply_delivery(task: &ClaimedTask, output: &serde_json::Value) -> Option<NewTask> {
    use oclaw_core::channel;
    let mut input = channel::reply_delivery(&task.bot, &task.id.to_string(), &task.input, output)?;
    // When the message came in, for the reply-latency metric.
    input["received_at"] = serde_json::json!(task.created_at.timestamp_millis());
    let mut delivery = NewTask::new(channel::REPLY_BOT, task.queue.clone(), input);
    delivery.tenant.clone_from(&task.tenant);
    delivery.max_attempts = channel::REPLY_ATTEMPTS;
    delivery.trace_id = task.trace_id.clone();
    Some(delivery)
}

fn log_failure(task: &ClaimedTask, error: &TaskError, retryable: bool) {
    let last = task.attempt >= task.max_attempts || !retryable;
    let task_id = task.id.to_string();
    let (error_code, trace_id) = (error.code.as_str(), task.trace_id.as_str());
    if last {
        tracing::error!(component = "worker", task_id, error_code, trace_id, bot = %task.bot, attempt = task.attempt, "{}", error.message);
    } else {
        tracing::warn!(component = "worker", task_id, error_code, trace_id, bot = %task.bot, attempt = task.attempt, "{} (will retry)", error.message);
    }
}

fn drain_ready(
    rx: &mut mpsc::UnboundedReceiver<Completion>,
    batch: &mut Vec<Completion>,
    limit: usize,
) {
    while batch.len() < limit {
        match rx.try_recv() {
            Ok(c) => batch.push(c),
            Err(_) => break,
        }
    }
}

/// Writes completions as a group commit: whatever finished while the previous write was in
/// flight goes into the next one (up to `batch_max`), so a lone completion is written at once and
/// a busy worker writes large batches.
async fn flush_completions(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Completion>,
    held: Held,
    opts: Arc<WorkerOptions>,
    stats: Arc<WorkerStats>,
) {
    let limit = if opts.batch_enabled {
        opts.batch_max
    } else {
        1
    };
    let mut batch: Vec<Completion> = Vec::with_capacity(limit);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        drain_ready(&mut rx, &mut batch, limit);
        // While other tasks are still running, wait briefly for their results so they share
        // this write; a lone completion on an idle worker is written at once.
        let deadline = tokio::time::Instant::now() + opts.batch_linger;
        while batch.len() < limit && stats.in_flight.load(Ordering::Acquire) > 0 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(c)) => {
                    batch.push(c);
                    drain_ready(&mut rx, &mut batch, limit);
                }
                _ => break,
            }
        }
        let ids: Vec<TaskId> = batch.iter().map(|c| c.id).collect();
        let mut wait = Duration::from_millis(50);
        let give_up = tokio::time::Instant::now() + opts.lease;
        loop {
            match store.complete_batch(batch.clone()).await {
                Ok(report) => {
                    stats.completion_writes.fetch_add(1, Ordering::Relaxed);
                    let failed = batch
                        .iter()
                        .filter(|c| matches!(c.outcome, Outcome::Failed { .. }))
                        .count() as u64;
                    stats.failed.fetch_add(failed, Ordering::Relaxed);
                    stats
                        .succeeded
                        .fetch_add(batch.len() as u64 - failed, Ordering::Relaxed);
                    if !report.fenced.is_empty() {
                        stats
                            .fenced
                            .fetch_add(report.fenced.len() as u64, Ordering::Relaxed);
                        tracing::warn!(component = "worker", tasks = ?report.fenced.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                            "results not recorded: the lease was lost (expired or cancelled) and the task belongs to another attempt");
                    }
                    break;
                }
                Err(e) if tokio::time::Instant::now() + wait < give_up => {
                    tracing::error!(
                        component = "worker",
                        error_code = e.code().code(),
                        "writing {} completions failed: {e}; retrying",
                        batch.len()
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(component = "worker", error_code = e.code().code(),
                        "giving up writing {} completions: {e}; their leases will expire and the tasks run again", batch.len());
                    break;
                }
            }
        }
        unhold(&held, &ids);
        batch.clear();
    }
}

/// Renews what the worker holds: a started task's full lease, a waiting task's short one. Ticks
/// every third of the shorter lease, so a task that starts right after its claim has its full
/// lease well before the short one runs out.
async fn heartbeat_leases(
    store: Arc<dyn Store>,
    held: Held,
    opts: Arc<WorkerOptions>,
    mut stop: watch::Receiver<bool>,
) {
    let every = opts.prefetch_lease.min(opts.lease) / 3;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped(&mut stop) => return,
        }
        let (waiting, started): (Vec<TaskId>, Vec<TaskId>) = held
            .lock()
            .map(|h| {
                (
                    h.waiting.iter().copied().collect(),
                    h.started.iter().copied().collect(),
                )
            })
            .unwrap_or_default();
        for (ids, lease) in [(started, opts.lease), (waiting, opts.prefetch_lease)] {
            if ids.is_empty() {
                continue;
            }
            if let Err(e) = store.extend_leases(&opts.id, &ids, lease).await {
                tracing::warn!(
                    component = "worker",
                    error_code = e.code().code(),
                    "lease heartbeat failed: {e}"
                );
            }
        }
    }
}

//! The reply router: one subscription per process to "these tasks finished", handing each
//! finished task to whoever waits for it (a WebSocket session, a sync webhook, an MQTT message
//! that wants its reply published). Waiting costs a map entry, not a subscription per message.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oclaw_core::{NewTask, Task, TaskId};
use oclaw_store::{Enqueued, Store, StoreResult};
use tokio::sync::{broadcast, oneshot};

/// Finished ids remembered for registrations that arrive just after the finish.
const RECENT: usize = 16_384;
/// How often waiters are checked against the store, in case a notification was missed.
const SWEEP: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Inner {
    waiting: HashMap<TaskId, oneshot::Sender<Task>>,
    recent: VecDeque<TaskId>,
    recent_set: HashSet<TaskId>,
    /// When notifications were last missed (the subscription lagged): a task registered soon
    /// after may have finished unseen, so it is looked up at once instead of at the next sweep.
    lagged_at: Option<std::time::Instant>,
}

pub struct ReplyRouter {
    store: Arc<dyn Store>,
    inner: Mutex<Inner>,
}

/// A task being waited for; dropping it stops waiting.
pub struct Pending {
    pub task: Task,
    /// Whether the enqueue created the task (false: an idempotent replay).
    pub created: bool,
    rx: oneshot::Receiver<Task>,
    router: Arc<ReplyRouter>,
}

impl Pending {
    /// The finished task, or `None` when `timeout` passes first.
    pub async fn finished(mut self, timeout: Duration) -> Option<Task> {
        if self.task.status.is_terminal() {
            return Some(self.task.clone());
        }
        match tokio::time::timeout(timeout, &mut self.rx).await {
            Ok(Ok(task)) => Some(task),
            _ => None,
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.router.lock().waiting.remove(&self.task.id);
    }
}

impl ReplyRouter {
    /// Starts the router of this process (it runs until the store's wake-ups close).
    pub fn start(store: Arc<dyn Store>) -> Arc<ReplyRouter> {
        let router = Arc::new(ReplyRouter {
            store: store.clone(),
            inner: Mutex::new(Inner::default()),
        });
        let finished = store.wakeups().finished.subscribe();
        tokio::spawn(Self::run(Arc::downgrade(&router), finished));
        router
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enqueues `task` and waits for it: the returned handle yields the finished task.
    pub async fn submit(self: &Arc<Self>, task: NewTask) -> StoreResult<Pending> {
        let Enqueued { task, created } = self.store.enqueue(task).await?;
        Ok(self.wait_for(task, created))
    }

    /// Enqueues `tasks` in one store call (in order) and waits for each.
    pub async fn submit_batch(self: &Arc<Self>, tasks: Vec<NewTask>) -> StoreResult<Vec<Pending>> {
        let enqueued = self.store.enqueue_batch(tasks).await?;
        Ok(enqueued
            .into_iter()
            .map(|Enqueued { task, created }| self.wait_for(task, created))
            .collect())
    }

    /// Waits for a task that is already enqueued.
    pub fn wait_for(self: &Arc<Self>, task: Task, created: bool) -> Pending {
        let (tx, rx) = oneshot::channel();
        let finished_already = {
            let mut inner = self.lock();
            let lagged = inner
                .lagged_at
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
            let done = lagged || inner.recent_set.contains(&task.id);
            if !done {
                inner.waiting.insert(task.id, tx);
                None
            } else {
                Some(tx)
            }
        };
        if let Some(tx) = finished_already {
            self.deliver(task.id, tx);
        }
        Pending {
            task,
            created,
            rx,
            router: self.clone(),
        }
    }

    /// Looks the task up and hands it over (when finished; a task that is not, yet, is waited
    /// for again).
    fn deliver(self: &Arc<Self>, id: TaskId, tx: oneshot::Sender<Task>) {
        let me = self.clone();
        tokio::spawn(async move {
            match me.store.get_task(id).await {
                Ok(Some(task)) if task.status.is_terminal() => {
                    let _ = tx.send(task);
                }
                Ok(Some(_)) => {
                    if !tx.is_closed() {
                        me.lock().waiting.insert(id, tx);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(component = "channels", task_id = %id, error_code = e.code().code(), "reading a finished task for its reply: {e}");
                    if !tx.is_closed() {
                        me.lock().waiting.insert(id, tx);
                    }
                }
            }
        });
    }

    async fn run(
        router: std::sync::Weak<ReplyRouter>,
        mut finished: broadcast::Receiver<Arc<[TaskId]>>,
    ) {
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                r = finished.recv() => Some(r),
                _ = sweep.tick() => None,
            };
            let Some(me) = router.upgrade() else { return };
            let ready: Vec<(TaskId, oneshot::Sender<Task>)> = match event {
                Some(Ok(ids)) => {
                    let mut inner = me.lock();
                    let mut ready = Vec::new();
                    for id in ids.iter() {
                        match inner.waiting.remove(id) {
                            Some(tx) => ready.push((*id, tx)),
                            None => {
                                if inner.recent_set.insert(*id) {
                                    inner.recent.push_back(*id);
                                    if inner.recent.len() > RECENT {
                                        if let Some(old) = inner.recent.pop_front() {
                                            inner.recent_set.remove(&old);
                                        }
                                    }
                                }
                            }
                        }
                    }
                    ready
                }
                Some(Err(broadcast::error::RecvError::Closed)) => return,
                // Missed notifications, or the periodic check: look at every waiter.
                Some(Err(broadcast::error::RecvError::Lagged(_))) | None => {
                    let mut inner = me.lock();
                    if event.is_some() {
                        inner.lagged_at = Some(std::time::Instant::now());
                    }
                    inner.waiting.retain(|_, tx| !tx.is_closed());
                    inner.waiting.drain().collect()
                }
            };
            for (id, tx) in ready {
                me.deliver(id, tx);
            }
        }
    }

    /// The store the router watches.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Tasks being waited for.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use oclaw_store::{ClaimRequest, Completion, Outcome};
    use serde_json::json;

    async fn finish(store: &Arc<dyn Store>, value: serde_json::Value) {
        let claimed = store
            .claim_batch(ClaimRequest {
                worker: "w".into(),
                queues: vec![],
                limit: 10,
                lease: Duration::from_secs(30),
            })
            .await
            .unwrap();
        let done = claimed
            .iter()
            .map(|t| Completion {
                id: t.id,
                worker: "w".into(),
                attempt: t.attempt,
                outcome: Outcome::Succeeded(value.clone()),
                kv: Vec::new(),
                follow_ups: Vec::new(),
                parent: None,
            })
            .collect();
        store.complete_batch(done).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hands_each_finished_task_to_its_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store: Arc<dyn Store> = Arc::new(
            oclaw_store::sqlite::SqliteStore::open(path.to_str().unwrap(), Default::default())
                .await
                .unwrap(),
        );
        let router = ReplyRouter::start(store.clone());
        // Waiting first, finished later.
        let pending = router
            .submit(NewTask::new("b", "q", json!(1)))
            .await
            .unwrap();
        assert_eq!(router.waiting(), 1);
        finish(&store, json!("one")).await;
        let task = pending.finished(Duration::from_secs(5)).await.unwrap();
        assert_eq!(task.output, Some(json!("one")));
        // Finished before anyone waits for it: the router remembers recent finishes.
        let enqueued = store
            .enqueue(NewTask::new("b", "q", json!(2)))
            .await
            .unwrap();
        finish(&store, json!("two")).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !router.lock().recent_set.contains(&enqueued.task.id) {
            assert!(
                std::time::Instant::now() < deadline,
                "the finish was never seen"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let late = router.wait_for(enqueued.task, true);
        let task = late.finished(Duration::from_secs(5)).await.unwrap();
        assert_eq!(task.output, Some(json!("two")));
        // Not finished in time: None, and the waiter is gone once the handle is dropped.
        let slow = router
            .submit(NewTask::new("b", "q", json!(3)))
            .await
            .unwrap();
        assert!(slow.finished(Duration::from_millis(50)).await.is_none());
        assert_eq!(router.waiting(), 0);
    }
}

//! Pieces of text a running task produces before its result — a model's answer as it is
//! generated — for whoever in this process waits on the task (a WebSocket session, a streamed
//! `invoke`). Nothing is kept: a piece nobody listens for is dropped at once, and the task's
//! result carries the whole text anyway. Pieces do not cross processes: in a distributed
//! cluster they reach a waiter only when its api-server runs the worker that runs the task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::TaskId;

type Listener = Arc<dyn Fn(&str) + Send + Sync>;

/// The process's listeners, by task.
#[derive(Default)]
pub struct TaskStreams {
    listeners: Mutex<HashMap<TaskId, Vec<(u64, Listener)>>>,
    /// How many listeners exist, so publishing with none is one atomic read.
    count: AtomicUsize,
    next: AtomicU64,
}

/// Listening to one task; dropping it stops.
pub struct Subscription {
    streams: Arc<TaskStreams>,
    task: TaskId,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut map = self
            .streams
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(list) = map.get_mut(&self.task) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                map.remove(&self.task);
            }
        }
        self.streams.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl TaskStreams {
    /// The process-wide streams.
    pub fn global() -> Arc<TaskStreams> {
        static GLOBAL: OnceLock<Arc<TaskStreams>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Arc::new(TaskStreams::default()))
            .clone()
    }

    /// Calls `listener` with each piece `task` publishes from now on.
    pub fn subscribe(
        self: &Arc<Self>,
        task: TaskId,
        listener: impl Fn(&str) + Send + Sync + 'static,
    ) -> Subscription {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(task)
            .or_default()
            .push((id, Arc::new(listener)));
        self.count.fetch_add(1, Ordering::Relaxed);
        Subscription {
            streams: self.clone(),
            task,
            id,
        }
    }

    /// Hands `text` to the task's listeners, if any.
    pub fn publish(&self, task: TaskId, text: &str) {
        if self.count.load(Ordering::Relaxed) == 0 || text.is_empty() {
            return;
        }
        let listeners: Vec<Listener> = match self
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&task)
        {
            Some(list) => list.iter().map(|(_, l)| l.clone()).collect(),
            None => return,
        };
        for l in listeners {
            l(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_reach_the_tasks_listeners_until_they_stop() {
        let streams = Arc::new(TaskStreams::default());
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let sub = streams.subscribe(TaskId(7), move |t| g.lock().unwrap().push(t.to_string()));
        streams.publish(TaskId(7), "Hel");
        streams.publish(TaskId(8), "other task");
        streams.publish(TaskId(7), "lo");
        drop(sub);
        streams.publish(TaskId(7), "after");
        assert_eq!(*got.lock().unwrap(), ["Hel", "lo"]);
        assert_eq!(streams.count.load(Ordering::Relaxed), 0);
        assert!(streams.listeners.lock().unwrap().is_empty());
    }
}

//! The components a node runs — which of them (`Components`), and each one started with the
//! node's stop signal and awaited on shutdown the same way (`Running`): the worker, the
//! scheduler, the broker channels, the presence heartbeat and the API.

use std::sync::Arc;

use oclaw_core::config::NodeConfig;
use oclaw_engine::{Runtime, Worker, WorkerOptions};
use oclaw_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which components a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Components {
    pub api: bool,
    pub scheduler: bool,
    pub worker: bool,
}

impl Components {
    pub const ALL: Components = Components {
        api: true,
        scheduler: true,
        worker: true,
    };
    pub const API_SERVER: Components = Components {
        api: true,
        scheduler: false,
        worker: false,
    };
    pub const SCHEDULER: Components = Components {
        api: false,
        scheduler: true,
        worker: false,
    };
    pub const WORKER: Components = Components {
        api: false,
        scheduler: false,
        worker: true,
    };

    pub fn names(self) -> Vec<&'static str> {
        [
            (self.api, "api-server"),
            (self.scheduler, "scheduler"),
            (self.worker, "worker"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// `serve` for the embedded all-in-one node, else the single component's name.
    pub fn label(self) -> String {
        if self == Components::ALL {
            "serve".into()
        } else {
            self.names().join("+")
        }
    }
}

pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// How often a node refreshes its registry entry; an entry older than three of these shows as
/// `NotReady` in `GET /v1/cluster/nodes`.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps this node's registry entry fresh until `stop`, then removes it.
pub(crate) fn spawn_presence(
    store: Arc<dyn oclaw_store::Store>,
    node_id: String,
    info: impl Fn() -> serde_json::Value + Send + 'static,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut healthy = true;
        loop {
            match store.heartbeat_node(&node_id, &info()).await {
                Ok(()) if !healthy => {
                    healthy = true;
                    tracing::info!(component = "node", "node registry reachable again");
                }
                Ok(()) => {}
                Err(e) if healthy => {
                    healthy = false;
                    tracing::warn!(
                        component = "node",
                        error_code = e.code().code(),
                        "cannot refresh this node's registry entry: {e}"
                    );
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT) => {}
                _ = oclaw_engine::stopped(&mut stop) => break,
            }
        }
        let _ = store.remove_node(&node_id).await;
    })
}

/// The components a node runs, each a task started with the node's stop signal; on shutdown
/// they are awaited in the order they were added (the API first).
#[derive(Default)]
pub(crate) struct Running(Vec<(&'static str, JoinHandle<()>)>);

impl Running {
    pub(crate) fn add(&mut self, name: &'static str, task: JoinHandle<()>) {
        self.0.push((name, task));
    }

    pub(crate) fn first(&mut self, name: &'static str, task: JoinHandle<()>) {
        self.0.insert(0, (name, task));
    }

    /// Waits for every component to stop (the stop signal has been sent).
    pub(crate) async fn stop(self) {
        for (name, task) in self.0 {
            if let Err(e) = task.await {
                tracing::error!(component = name, "stopped abnormally: {e}");
            }
        }
    }
}

/// Starts the worker: tasks this node held when it last stopped without draining (crash,
/// `kill -9`) are requeued first, so they run now instead of after their leases run out.
pub(crate) async fn start_worker(
    config: &NodeConfig,
    store: &Arc<dyn Store>,
    node_id: &str,
    queues: &[String],
    runtime: Runtime,
    stop: &watch::Receiver<bool>,
) -> (oclaw_api::WorkerInfo, JoinHandle<()>) {
    match store.expire_leases_of(node_id).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            component = "worker",
            recovered = n,
            "requeueing tasks left running by this node's previous run"
        ),
        Err(e) => tracing::warn!(
            component = "worker",
            error_code = e.code().code(),
            "could not check for tasks of a previous run: {e}"
        ),
    }
    let opts = WorkerOptions::from_config(&config.worker, node_id.to_string(), queues.to_vec());
    let worker = Worker::new(opts, Arc::new(runtime));
    let info = oclaw_api::WorkerInfo {
        stats: worker.stats(),
        concurrency: config.worker.concurrency,
    };
    let stop = stop.clone();
    let task = tokio::spawn(async move {
        let report = worker.run(stop).await;
        tracing::debug!(component = "worker", "drained: {report:?}");
    });
    (info, task)
}

//! `oclaw serve` (api-server, scheduler and worker in one process) and the single-component
//! processes of distributed mode (`oclaw api-server`, `oclaw scheduler`, `oclaw worker`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use oclaw_api::{check_listen_safety, ApiState, ListenSafety};
use oclaw_bots::templates::TemplateEngine;
use oclaw_core::config::NodeConfig;
use oclaw_core::ErrorCode;
use oclaw_engine::{Runtime, Worker, WorkerOptions};
use oclaw_scheduler::Scheduler;
use tokio::sync::watch;

use crate::loading::{build_catalog, open_configured_store, CatalogSource, NodeError};

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

pub struct ServeOptions {
    pub config: NodeConfig,
    pub components: Components,
    /// This process's id in the node registry and on leases; default `<hostname>:serve` for the
    /// embedded node, `<hostname>:<component>:<pid>` for a single component.
    pub node_id: Option<String>,
    /// The config file's name, for error messages (`<defaults>` when none).
    pub config_file: String,
    /// Print the start-up banner on stdout.
    pub banner: bool,
}

fn startup(code: ErrorCode, message: impl Into<String>) -> NodeError {
    NodeError::Startup {
        code,
        message: message.into(),
    }
}

fn host_name() -> String {
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
fn spawn_presence(
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

/// Runs the configured components until `shutdown` resolves, then stops gracefully.
pub async fn serve(
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let started = Instant::now();
    let config = opts.config;
    let components = opts.components;
    let embedded = components == Components::ALL;
    let addr: SocketAddr = config.api.listen.parse().map_err(|_| {
        startup(
            ErrorCode::ConfigInvalidValue,
            format!("api.listen `{}` is not an address", config.api.listen),
        )
    })?;
    if !embedded && config.storage.url.starts_with("sqlite") {
        return Err(startup(
            ErrorCode::ConfigInvalidValue,
            format!(
                "oclaw {} runs one component of a distributed cluster and needs a shared \
                 storage.url (postgres://USER@HOST/DB); use `oclaw serve` for the embedded SQLite node",
                components.label()
            ),
        ));
    }
    match check_listen_safety(
        addr,
        !config.api.tokens.is_empty(),
        config.api.allow_unauthenticated,
    ) {
        ListenSafety::Ok => {}
        ListenSafety::UnauthenticatedByChoice => {
            tracing::warn!(
                component = "api-server",
                "listening on {addr} without authentication (api.allow_unauthenticated)"
            )
        }
        ListenSafety::Refused(m) => return Err(startup(ErrorCode::ConfigInvalidValue, m)),
    }
    let store = open_configured_store(&config).await?;
    let node_skills = crate::loading::build_skills(&config).await?;
    node_skills
        .plugins
        .watch(config.plugins.reload_interval.get());
    let skills = node_skills.registry.clone();
    let templates = TemplateEngine::default();
    let (catalog, source) = build_catalog(&config, &opts.config_file, &skills, &templates)?;
    let catalog = Arc::new(catalog);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        startup(
            ErrorCode::ConfigInvalidValue,
            format!("cannot listen on {addr}: {e}"),
        )
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| startup(ErrorCode::ConfigInvalidValue, e.to_string()))?;
    let api_url = format!("http://{bound}");
    let node_id = opts.node_id.unwrap_or_else(|| {
        if embedded {
            format!("{}:serve", host_name())
        } else {
            format!(
                "{}:{}:{}",
                host_name(),
                components.label(),
                std::process::id()
            )
        }
    });

    if let Some(endpoint) = &config.telemetry.otlp_endpoint {
        oclaw_telemetry::otlp::init(
            endpoint,
            &config.telemetry.service_name,
            vec![
                ("service.instance.id", node_id.clone()),
                ("service.version", env!("CARGO_PKG_VERSION").to_string()),
                ("oclaw.components", components.label()),
            ],
        );
        tracing::info!(component = "node", endpoint = %endpoint, "exporting traces over OTLP/HTTP");
    }

    let runtime = Runtime::new(
        store.clone(),
        catalog.clone(),
        skills,
        templates,
        config.cache.ttl.get(),
        serde_json::json!({"api_url": api_url, "id": node_id}),
    )
    .map_err(|m| {
        startup(
            ErrorCode::ConfigInvalidValue,
            format!("outbound HTTP client: {m}"),
        )
    })?;
    let mut runtime = runtime;
    runtime.conversation = config.channels.conversation.clone();
    let queues: Vec<String> = if config.worker.queues.is_empty() {
        let mut q = catalog.queues();
        q.insert("default".into());
        q.into_iter().collect()
    } else {
        config.worker.queues.clone()
    };
    let metrics = runtime.metrics.clone();
    metrics.start_node_sampler();
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut worker_info = None;
    let mut worker_task = None;
    if components.worker {
        // Tasks this node held when it last stopped without draining (crash, kill -9) run again
        // now instead of after their leases run out.
        match store.expire_leases_of(&node_id).await {
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
        let worker_opts =
            WorkerOptions::from_config(&config.worker, node_id.clone(), queues.clone());
        let worker = Worker::new(worker_opts, Arc::new(runtime));
        worker_info = Some(oclaw_api::WorkerInfo {
            stats: worker.stats(),
            concurrency: config.worker.concurrency,
        });
        worker_task = Some(tokio::spawn(worker.run(stop_rx.clone())));
    }
    let mut scheduler_stats = None;
    let mut scheduler_task = None;
    if components.scheduler {
        let scheduler = Scheduler::new(
            store.clone(),
            catalog.clone(),
            config.scheduler.interval.get(),
        )
        .with_leadership(node_id.clone(), config.scheduler.leader_lease.get())
        .with_retention(config.storage.retention.map(|d| d.get()));
        scheduler_stats = Some(scheduler.stats());
        scheduler_task = Some(tokio::spawn(scheduler.run(stop_rx.clone())));
    }

    let started_at = chrono::Utc::now();
    let node_info = {
        let (worker_info, scheduler_stats) = (worker_info.clone(), scheduler_stats.clone());
        let (node_id, api_url, backend) = (node_id.clone(), api_url.clone(), store.backend());
        let queues = queues.clone();
        let hostname = host_name();
        move || {
            let mut info = serde_json::json!({
                "id": node_id,
                "components": components.names(),
                "address": api_url,
                "version": env!("CARGO_PKG_VERSION"),
                "store": backend,
                "hostname": hostname,
                "pid": std::process::id(),
                "started_at": started_at,
            });
            if let Some(w) = &worker_info {
                info["queues"] = serde_json::json!(queues);
                info["concurrency"] = serde_json::json!(w.concurrency);
                info["in_flight"] =
                    serde_json::json!(w.stats.in_flight.load(std::sync::atomic::Ordering::Relaxed));
            }
            if let Some(s) = &scheduler_stats {
                info["leader"] =
                    serde_json::json!(s.leader.load(std::sync::atomic::Ordering::Relaxed));
            }
            info
        }
    };
    let state = ApiState {
        store: store.clone(),
        catalog: catalog.clone(),
        timeout: config.api.timeout.get(),
        tokens: Arc::new(config.api.tokens.clone()),
        max_body_bytes: config.api.max_body_bytes,
        body_timeout: config.api.body_timeout.get(),
        metrics,
        worker: worker_info.clone(),
        scheduler: scheduler_stats.clone(),
        // Embedded on SQLite: only this node's worker runs tasks, so other queues are refused.
        // On a shared PostgreSQL, workers elsewhere may serve any queue.
        served_queues: (embedded && store.backend() == "sqlite")
            .then(|| Arc::new(queues.iter().cloned().collect())),
        node: node_info(),
        replies: oclaw_channels::ReplyRouter::start(store.clone()),
        websocket: config.channels.websocket.clone(),
    };
    // Broker channels run with the API (channel ingress).
    let channels = if components.api {
        oclaw_channels::registry::start_brokers(
            &config.channels,
            oclaw_channels::registry::Context {
                catalog: catalog.clone(),
                router: state.replies.clone(),
                metrics: state.metrics.clone(),
                node_id: node_id.clone(),
                stop: stop_rx.clone(),
            },
        )
        .map_err(|m| startup(ErrorCode::ConfigInvalidValue, m))?
    } else {
        Vec::new()
    };
    let presence = spawn_presence(store.clone(), node_id.clone(), node_info, stop_rx.clone());
    let mut api_stop = stop_rx.clone();
    let api = tokio::spawn(async move {
        let app = if components.api {
            oclaw_api::router(state)
        } else {
            oclaw_api::probe_router(state)
        };
        // Small responses and WebSocket frames go out at once, not after a delayed ACK.
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = api_stop.wait_for(|stop| *stop).await;
            })
            .await
    });

    if opts.banner {
        print_banner(&Banner {
            components,
            started,
            api_url: &api_url,
            config: &config,
            catalog: &catalog,
            source,
            node_id: &node_id,
            queues: &queues,
        });
    }
    tracing::info!(component = "node", node = %node_id, components = %components.label(), listen = %bound, store = store.backend(), bots = catalog.len(), "node ready");

    shutdown.await;
    tracing::info!(
        component = "node",
        "shutting down: no new requests, draining the worker"
    );
    let _ = stop_tx.send(true);
    if let Ok(Err(e)) = api.await {
        tracing::error!(component = "api-server", "server error: {e}");
    }
    if let Some(w) = worker_task {
        let _ = w.await;
    }
    if let Some(s) = scheduler_task {
        let _ = s.await;
    }
    let _ = presence.await;
    for channel in channels {
        let _ = channel.await;
    }
    tracing::info!(component = "node", "stopped cleanly");
    Ok(())
}

struct Banner<'a> {
    components: Components,
    started: Instant,
    api_url: &'a str,
    config: &'a NodeConfig,
    catalog: &'a oclaw_bots::BotCatalog,
    source: CatalogSource,
    node_id: &'a str,
    queues: &'a [String],
}

fn print_banner(b: &Banner<'_>) {
    let names: Vec<&str> = b.catalog.bots().map(|b| b.name()).collect();
    let from = match b.source {
        CatalogSource::Examples => "built-in examples",
        CatalogSource::Configured => "config",
    };
    let api_url = b.api_url;
    let config = b.config;
    let what = if b.components == Components::ALL {
        "embedded: api-server + scheduler + worker".to_string()
    } else {
        format!("distributed: {}", b.components.names().join(" + "))
    };
    println!(
        "oclaw {} serving ({what}), ready in {} ms",
        env!("CARGO_PKG_VERSION"),
        b.started.elapsed().as_millis()
    );
    if b.components.api {
        println!("  API      {api_url}/v1      try: curl -s {api_url}/v1/tasks -d '{{\"bot\":\"hello\",\"input\":{{\"name\":\"Ada\"}}}}'");
    }
    if b.components.api {
        let chat: Vec<&str> = b
            .catalog
            .bots()
            .filter(|bot| bot.doc.spec.triggers.iter().any(|t| t.websocket.is_some()))
            .map(|bot| bot.name())
            .collect();
        if let Some(first) = chat.first() {
            let ws = api_url.replacen("http://", "ws://", 1);
            println!(
                "  chat     {ws}/v1/ws?bot={first}   (WebSocket; bots: {})",
                chat.join(", ")
            );
        }
    }
    println!("  health   {api_url}/healthz  {api_url}/readyz");
    println!("  metrics  {api_url}/metrics");
    println!(
        "  data     {}",
        oclaw_store::redact_url(&config.storage.url)
    );
    println!(
        "  bots     {} from {from}: {}",
        names.len(),
        names.join(", ")
    );
    println!("  node     {}", b.node_id);
    if b.components.worker {
        println!(
            "  worker   concurrency {}, queues {}, batch {} (maxSize {}, timeout {})",
            config.worker.concurrency,
            b.queues.join(","),
            if config.worker.batch.enabled {
                "on"
            } else {
                "off"
            },
            config.worker.batch.max_size,
            config.worker.batch.timeout
        );
    }
    if b.components.scheduler {
        println!(
            "  scheduler  leader election: terms of {} (standbys take over when the leader stops)",
            config.scheduler.leader_lease
        );
    }
    println!("  stop     Ctrl-C or SIGTERM (finishes running tasks, releases the rest)");
}

//! `oclaw serve`: api-server, scheduler and worker in one process.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use oclaw_api::{check_listen_safety, ApiState, ListenSafety};
use oclaw_core::config::NodeConfig;
use oclaw_core::ErrorCode;
use oclaw_engine::templates::TemplateEngine;
use oclaw_engine::{Runtime, Worker, WorkerOptions};
use oclaw_scheduler::Scheduler;
use oclaw_skills::SkillRegistry;
use tokio::sync::watch;

use crate::loading::{build_catalog, open_configured_store, CatalogSource, NodeError};

pub struct ServeOptions {
    pub config: NodeConfig,
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

/// Runs the embedded node until `shutdown` resolves, then stops gracefully.
pub async fn serve(
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let started = Instant::now();
    let config = opts.config;
    let addr: SocketAddr = config.api.listen.parse().map_err(|_| {
        startup(
            ErrorCode::ConfigInvalidValue,
            format!("api.listen `{}` is not an address", config.api.listen),
        )
    })?;
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
    let skills = SkillRegistry::builtin();
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
    let node_id = format!("{}:serve", host_name());

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
    let queues: Vec<String> = if config.worker.queues.is_empty() {
        let mut q = catalog.queues();
        q.insert("default".into());
        q.into_iter().collect()
    } else {
        config.worker.queues.clone()
    };
    // Tasks this node held when it last stopped without draining (crash, kill -9) run again now
    // instead of after their leases run out.
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

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker_opts = WorkerOptions::from_config(&config.worker, node_id.clone(), queues.clone());
    let metrics = runtime.metrics.clone();
    metrics.start_node_sampler();
    let worker = Worker::new(worker_opts, Arc::new(runtime));
    let worker_info = oclaw_api::WorkerInfo {
        stats: worker.stats(),
        concurrency: config.worker.concurrency,
    };
    let worker = tokio::spawn(worker.run(stop_rx.clone()));
    let scheduler = Scheduler::new(
        store.clone(),
        catalog.clone(),
        config.scheduler.interval.get(),
    );
    let scheduler_stats = scheduler.stats();
    let scheduler = tokio::spawn(scheduler.run(stop_rx.clone()));
    let state = ApiState {
        store: store.clone(),
        catalog: catalog.clone(),
        timeout: config.api.timeout.get(),
        tokens: Arc::new(config.api.tokens.clone()),
        max_body_bytes: config.api.max_body_bytes,
        body_timeout: config.api.body_timeout.get(),
        metrics,
        worker: Some(worker_info),
        scheduler: Some(scheduler_stats),
        served_queues: Some(Arc::new(queues.iter().cloned().collect())),
        node: serde_json::json!({
            "id": node_id,
            "components": ["api-server", "scheduler", "worker"],
            "address": api_url,
            "version": env!("CARGO_PKG_VERSION"),
            "store": store.backend(),
            "started_at": chrono::Utc::now(),
            "status": "Running",
        }),
    };
    let mut api_stop = stop_rx.clone();
    let api = tokio::spawn(async move {
        let app = oclaw_api::router(state);
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = api_stop.wait_for(|stop| *stop).await;
            })
            .await
    });

    if opts.banner {
        let names: Vec<&str> = catalog.bots().map(|b| b.name()).collect();
        let from = match source {
            CatalogSource::Examples => "built-in examples",
            CatalogSource::Configured => "config",
        };
        println!(
            "oclaw {} serving (embedded: api-server + scheduler + worker), ready in {} ms",
            env!("CARGO_PKG_VERSION"),
            started.elapsed().as_millis()
        );
        println!("  API      {api_url}/v1      try: curl -s {api_url}/v1/tasks -d '{{\"bot\":\"hello\",\"input\":{{\"name\":\"Ada\"}}}}'");
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
        println!(
            "  worker   {node_id}: concurrency {}, queues {}, batch {} (maxSize {}, timeout {})",
            config.worker.concurrency,
            queues.join(","),
            if config.worker.batch.enabled {
                "on"
            } else {
                "off"
            },
            config.worker.batch.max_size,
            config.worker.batch.timeout
        );
        println!("  stop     Ctrl-C or SIGTERM (finishes running tasks, releases the rest)");
    }
    tracing::info!(component = "api-server", listen = %bound, store = store.backend(), bots = catalog.len(), "node ready");

    shutdown.await;
    tracing::info!(
        component = "api-server",
        "shutting down: no new requests, draining the worker"
    );
    let _ = stop_tx.send(true);
    if let Ok(Err(e)) = api.await {
        tracing::error!(component = "api-server", "server error: {e}");
    }
    let _ = worker.await;
    let _ = scheduler.await;
    tracing::info!(component = "api-server", "stopped cleanly");
    Ok(())
}

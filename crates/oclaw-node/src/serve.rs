//! `oclaw serve` (api-server, scheduler and worker in one process) and the single-component
//! processes of distributed mode (`oclaw api-server`, `oclaw scheduler`, `oclaw worker`).

use std::future::Future;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use oclaw_api::{check_listen_safety, ApiState, ListenSafety};
use oclaw_bots::templates::TemplateEngine;
use oclaw_core::config::NodeConfig;
use oclaw_core::ErrorCode;
use oclaw_engine::Runtime;
use oclaw_scheduler::Scheduler;
use tokio::sync::watch;

use crate::loading::{build_catalog, open_configured_store, NodeError};

use crate::banner::{print_banner, Banner};
use crate::components::{host_name, spawn_presence, start_worker, Components, Running};

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
        !config.api.tokens.is_empty() || config.api.oidc.is_some(),
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
    let loaded = catalog.len();
    crate::loading::save_revisions(store.as_ref(), &catalog).await;
    let catalog = oclaw_bots::LiveCatalog::new(catalog);
    let tls = match &config.api.tls {
        Some(files) => Some(
            crate::tls::server_config(files)
                .map_err(|m| startup(ErrorCode::ConfigInvalidValue, m))?,
        ),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        startup(
            ErrorCode::ConfigInvalidValue,
            format!("cannot listen on {addr}: {e}"),
        )
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| startup(ErrorCode::ConfigInvalidValue, e.to_string()))?;
    let api_url = format!("{}://{bound}", if tls.is_some() { "https" } else { "http" });
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

    let export = oclaw_telemetry::otlp::Export::resolve(
        config.telemetry.otlp_endpoint.as_deref(),
        config.telemetry.otlp_protocol.map(|p| p.as_str()),
        &config.telemetry.service_name,
        &|name| std::env::var(name).ok(),
    )
    .map_err(|m| startup(ErrorCode::ConfigInvalidValue, m))?;
    if let Some(export) = export {
        let (endpoint, protocol) = (export.url.clone(), export.protocol);
        oclaw_telemetry::otlp::init(
            export,
            vec![
                ("service.instance.id", node_id.clone()),
                ("service.version", env!("CARGO_PKG_VERSION").to_string()),
                ("oclaw.components", components.label()),
            ],
        );
        tracing::info!(component = "node", endpoint = %endpoint, ?protocol, "exporting traces over OTLP/HTTP");
    }

    let reply_bot = oclaw_channels::delivery::reply_bot(&skills, &templates)?;
    let ingest_bot = oclaw_bots::LoadedBot::system(
        oclaw_knowledge::INGEST_BOT,
        oclaw_knowledge::INGEST_BOT_YAML,
        &skills,
        &templates,
    )?;
    if let Some(embedder) = &node_skills.knowledge.embedder {
        embedder
            .ready()
            .await
            .map_err(|e| startup(e.code, e.message))?;
        tracing::info!(
            component = "knowledge",
            embedder = embedder.name(),
            "knowledge embedder ready"
        );
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
    runtime.env = Runtime::template_env(&config.templates.env);
    runtime.tenant_quotas = Arc::new(config.tenants.quotas.clone());
    let oidc = match &config.api.oidc {
        Some(c) => Some(Arc::new(crate::oidc::start(c.clone()).await.map_err(
            |m| startup(ErrorCode::ConfigInvalidValue, format!("api.oidc: {m}")),
        )?)),
        None => None,
    };
    if let Some(o) = &oidc {
        crate::oidc::refresh(o.clone());
    }
    let secret_key = secret_key(&config.secrets)
        .map_err(|m| startup(ErrorCode::ConfigInvalidValue, m))?
        .map(Arc::new);
    runtime.secret_key = secret_key.clone();
    runtime
        .system
        .insert(reply_bot.name().to_string(), Arc::new(reply_bot));
    runtime
        .system
        .insert(ingest_bot.name().to_string(), Arc::new(ingest_bot));
    if source == crate::CatalogSource::Examples && components.api {
        crate::examples::seed_knowledge(store.as_ref()).await;
    }
    let _ = node_skills.delivery.catalog.set(catalog.clone());
    let _ = node_skills.delivery.metrics.set(runtime.metrics.clone());
    let _ = node_skills
        .delivery
        .channels
        .set((config.channels.clone(), node_id.clone()));
    let queues: Vec<String> = if config.worker.queues.is_empty() {
        let mut q = catalog.load().queues();
        q.insert("default".into());
        q.into_iter().collect()
    } else {
        config.worker.queues.clone()
    };
    let metrics = runtime.metrics.clone();
    metrics.start_node_sampler();
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut running = Running::default();
    let worker_info = if components.worker {
        let (info, task) =
            start_worker(&config, &store, &node_id, &queues, runtime, &stop_rx).await;
        running.add("worker", task);
        Some(info)
    } else {
        None
    };
    let scheduler_stats = if components.scheduler {
        let scheduler = Scheduler::new(
            store.clone(),
            catalog.clone(),
            config.scheduler.interval.get(),
        )
        .with_leadership(node_id.clone(), config.scheduler.leader_lease.get())
        .with_retention(config.storage.retention.map(|d| d.get()))
        .with_audit_retention(Some(config.audit.retention.get()));
        let stats = scheduler.stats();
        running.add("scheduler", tokio::spawn(scheduler.run(stop_rx.clone())));
        Some(stats)
    } else {
        None
    };

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
        event_retention: config.events.retention.get(),
        knowledge: node_skills.knowledge.clone(),
        quotas: Arc::new(oclaw_api::quotas::Quotas::new(
            config.tenants.quotas.clone(),
        )),
        secret_key,
        oidc: oidc.clone(),
        conversations: Default::default(),
        stopping: stop_rx.clone(),
        conversation_history: config.channels.conversation.history,
        conversation_ttl: config.channels.conversation.ttl.get(),
    };
    // Broker channels run with the API (channel ingress).
    if components.api {
        let brokers = oclaw_channels::registry::start_brokers(
            &config.channels,
            oclaw_channels::registry::Context {
                catalog: catalog.load(),
                router: state.replies.clone(),
                metrics: state.metrics.clone(),
                node_id: node_id.clone(),
                stop: stop_rx.clone(),
            },
        )
        .map_err(|m| startup(ErrorCode::ConfigInvalidValue, m))?;
        for task in brokers {
            running.add("channels", task);
        }
    }
    running.add(
        "presence",
        spawn_presence(store.clone(), node_id.clone(), node_info, stop_rx.clone()),
    );
    let mut api_stop = stop_rx.clone();
    let grace_stop = stop_rx.clone();
    let api = tokio::spawn(async move {
        let app = if components.api {
            oclaw_api::router(state)
        } else {
            oclaw_api::probe_router(state)
        };
        let stopped = async move {
            let _ = api_stop.wait_for(|stop| *stop).await;
        };
        let served = match tls {
            Some(tls) => match crate::tls::TlsListener::new(listener, tls) {
                // (The audit log records the client's address on plain HTTP only.)
                Ok(listener) => {
                    within_grace(
                        axum::serve(listener, app)
                            .with_graceful_shutdown(stopped)
                            .into_future(),
                        grace_stop,
                    )
                    .await
                }
                Err(e) => Err(e),
            },
            None => {
                // Small responses and WebSocket frames go out at once, not after a delayed ACK.
                use axum::serve::ListenerExt;
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                within_grace(
                    axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                    )
                    .with_graceful_shutdown(stopped)
                    .into_future(),
                    grace_stop,
                )
                .await
            }
        };
        if let Err(e) = served {
            tracing::error!(component = "api-server", "server error: {e}");
        }
    });
    // The API stops first (no new requests), then the worker drains, then the rest.
    running.first("api-server", api);

    if let Some(dir) = config.bots_dir.clone() {
        running.add(
            "bots",
            tokio::spawn(crate::reload::watch_bots(
                crate::reload::Reload {
                    live: catalog.clone(),
                    dir,
                    config: config.clone(),
                    config_file: opts.config_file.clone(),
                    skills: node_skills.registry.clone(),
                    served: queues.clone(),
                    every: config.bots_reload_interval.get(),
                    store: store.clone(),
                },
                stop_rx.clone(),
            )),
        );
    }
    if opts.banner {
        print_banner(&Banner {
            components,
            started,
            api_url: &api_url,
            config: &config,
            catalog: &catalog.load(),
            source,
            node_id: &node_id,
            queues: &queues,
            config_file: &opts.config_file,
        });
    }
    tracing::info!(component = "node", node = %node_id, components = %components.label(), listen = %bound, store = store.backend(), bots = loaded, "node ready");

    shutdown.await;
    tracing::info!(
        component = "node",
        "shutting down: no new requests, draining the worker"
    );
    let _ = stop_tx.send(true);
    running.stop().await;
    tracing::info!(component = "node", "stopped cleanly");
    Ok(())
}

/// How long the API waits after a stop for the requests still open (a long `invoke` wait, say)
/// before it closes them; live streams and chat sessions end at the stop by themselves.
const API_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The server's graceful end, but at most [`API_GRACE`] after the stop.
async fn within_grace(
    served: impl Future<Output = std::io::Result<()>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    tokio::select! {
        r = served => r,
        _ = async {
            let _ = stop.wait_for(|s| *s).await;
            tokio::time::sleep(API_GRACE).await;
        } => {
            tracing::warn!(component = "api-server", "requests still open {}s after the stop; closing them", API_GRACE.as_secs());
            Ok(())
        }
    }
}

/// The key that seals per-tenant secrets: `secrets.key`, or the first line of
/// `secrets.key_file`; none when neither is set.
fn secret_key(
    c: &oclaw_core::config::SecretsConfig,
) -> Result<Option<oclaw_store::secrets::SecretKey>, String> {
    let hex = match (&c.key, &c.key_file) {
        (Some(k), _) => k.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("secrets.key_file {}: {e}", path.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        (None, None) => return Ok(None),
    };
    oclaw_store::secrets::SecretKey::from_hex(&hex)
        .map(Some)
        .map_err(|e| format!("secrets: {e}"))
}

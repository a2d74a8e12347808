//! What every API handler can reach: the store, the bot catalogue, the node's metrics and the
//! workers' live state.

use std::sync::Arc;
use std::time::Duration;

use oclaw_bots::LiveCatalog;
use oclaw_store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub catalog: Arc<LiveCatalog>,
    /// How long `invoke` waits for a result by default (`api.timeout`).
    pub timeout: Duration,
    /// Accepted bearer tokens; empty means no authentication (loopback only).
    pub tokens: Arc<Vec<String>>,
    pub max_body_bytes: usize,
    /// Longest a client may take to send a request body.
    pub body_timeout: Duration,
    pub metrics: Arc<oclaw_telemetry::NodeMetrics>,
    /// The worker of this process, when it runs one (for worker metrics).
    pub worker: Option<WorkerInfo>,
    /// The scheduler of this process, when it runs one.
    pub scheduler: Option<Arc<oclaw_scheduler::SchedulerStats>>,
    /// Queues some worker serves, when known: a task sent elsewhere would never run, so it is
    /// refused. `None` accepts any queue (workers elsewhere may serve it).
    pub served_queues: Option<Arc<std::collections::BTreeSet<String>>>,
    /// This node as `GET /v1/cluster/nodes` shows it (id, components, address, version, started_at).
    pub node: serde_json::Value,
    /// Hands finished channel tasks to the sessions waiting for their replies.
    pub replies: Arc<oclaw_channels::ReplyRouter>,
    pub websocket: oclaw_core::config::WebsocketConfig,
    /// How long an event nobody waits for is kept (`events.retention`).
    pub event_retention: Duration,
    /// Knowledge collections: the node's embedder and in-memory vector index.
    pub knowledge: Arc<oclaw_knowledge::KnowledgeBase>,
    /// Per-tenant submission rates.
    pub quotas: Arc<crate::quotas::Quotas>,
    /// Seals per-tenant secrets; `None` refuses `/v1/secrets`.
    pub secret_key: Option<Arc<oclaw_store::secrets::SecretKey>>,
    /// Verifies OIDC bearer JWTs (`api.oidc`).
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
    /// Live WebSocket sessions by conversation, for agents' replies.
    pub conversations: Arc<crate::ConversationHub>,
    /// Turns true when the node stops: live streams and chat sessions end.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Conversation memory: how many messages are kept, and for how long
    /// (`channels.conversation`).
    pub conversation_history: usize,
    pub conversation_ttl: Duration,
}

pub use oclaw_engine::WorkerInfo;

/// Resolves when the node stops (at once when it has).
pub(crate) async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

//! The node configuration (`oclaw.yaml`) with the seed's defaults and production profile.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bot::BotDoc;
use crate::Dur;

/// Which column of the seed's tuning table supplies the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    #[default]
    Default,
    Production,
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(Profile::Default),
            "production" => Ok(Profile::Production),
            other => Err(format!(
                "unknown profile `{other}`; one of: default, production"
            )),
        }
    }
}

/// The whole node configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub storage: StorageConfig,
    pub api: ApiConfig,
    pub worker: WorkerConfig,
    pub scheduler: SchedulerConfig,
    pub cache: CacheConfig,
    /// Per-queue settings, keyed by queue name.
    pub queues: BTreeMap<String, QueueConfig>,
    /// Bots declared inline.
    pub bots: Vec<BotDoc>,
    /// A folder of bot YAML files (`*.yaml`, `*.yml`).
    pub bots_dir: Option<PathBuf>,
    /// How often a running node looks for changed files in `bots_dir` and reloads its bots
    /// (`0s`: never; a restart is then needed).
    pub bots_reload_interval: Dur,
    pub telemetry: TelemetryConfig,
    /// Connections and settings shared by bots' channel triggers.
    pub channels: ChannelsConfig,
    /// WebAssembly plugin skills: where they are installed and the node's limits for them.
    pub plugins: PluginsConfig,
    /// MCP tool servers whose tools become skills `mcp.<server>.<tool>`.
    pub mcp: McpConfig,
    /// Model providers for the `llm.chat` skill.
    pub llm: LlmConfig,
    /// Events that wake waiting tasks (`POST /v1/events`, the `event.emit` skill).
    pub events: EventsConfig,
    /// Knowledge collections: the embedder of their vectors and how documents are chunked.
    pub knowledge: KnowledgeConfig,
    /// What bot templates may read of the process.
    pub templates: TemplatesConfig,
    /// Per-tenant quotas.
    pub tenants: TenantsConfig,
    /// The audit log of changes made through the API.
    pub audit: AuditConfig,
    /// The key that seals per-tenant secrets in the store.
    pub secrets: SecretsConfig,
}

/// `secrets:` — the key per-tenant secrets are sealed with (AES-256-GCM) before they reach the
/// store. Without one, `/v1/secrets` is refused and templates see only `OCLAW_SECRET_*`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// 64 hex digits; meant for the environment (`OCLAW_SECRETS__KEY`), not the file.
    pub key: Option<String>,
    /// A file whose first line is the key (64 hex digits), e.g. a mounted Kubernetes secret.
    pub key_file: Option<PathBuf>,
}

/// `templates:` — what bot templates see of the process.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesConfig {
    /// Environment variables templates see as `env.<NAME>`; nothing else of the environment is
    /// visible, and `OCLAW_*` variables (settings, tokens, database URLs) never are.
    pub env: Vec<String>,
}

/// `tenants:` — limits per tenant (a bot's `metadata.tenant`, default `default`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TenantsConfig {
    /// Quotas by tenant name; a tenant not named has no limits.
    pub quotas: BTreeMap<String, TenantQuota>,
}

/// One tenant's limits. Unset means unlimited.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TenantQuota {
    /// Task submissions per second through each api-server (`POST /v1/tasks`, batches, invoke;
    /// a token bucket holding one second's worth); past it the API answers 429 `OC-2029` with
    /// `Retry-After`.
    pub submissions_per_second: Option<u32>,
    /// Model tokens (input + output) all the tenant's bots together may use per UTC day; a
    /// call that would pass it is refused before it is made (`OC-4036`), as a bot's own
    /// `spec.budget` is.
    pub llm_tokens_per_day: Option<u64>,
}

/// `audit:` — every change made through the API, chained by hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How long entries are kept (the leader's purge drops older ones).
    pub retention: Dur,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: Dur::secs(365 * 24 * 3600),
        }
    }
}

/// `knowledge:` — collections searched by `kb.search` (full-text, plus vectors when an embedder
/// is set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KnowledgeConfig {
    /// What turns chunks and questions into vectors: `local` (the in-process model in
    /// `model_dir`), `provider/model` (a provider's `/embeddings`, from `llm.providers`), or
    /// unset: full-text search only.
    pub embedder: Option<String>,
    /// The folder of the in-process model (`config.json`, `vocab.txt`, `model.safetensors`);
    /// `scripts/install-embedder.sh` puts all-MiniLM-L6-v2 there.
    pub model_dir: PathBuf,
    /// Largest chunk, in characters.
    pub chunk_size: u32,
    /// Characters a chunk repeats from the one before it in the same section.
    pub chunk_overlap: u32,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        KnowledgeConfig {
            embedder: None,
            model_dir: PathBuf::from("models/all-MiniLM-L6-v2"),
            chunk_size: 800,
            chunk_overlap: 120,
        }
    }
}

/// `events:` — events that wake tasks waiting in a `wait` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// How long an event nobody waits for yet is kept for a `wait` that comes later.
    pub retention: Dur,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            retention: Dur::secs(7 * 24 * 3600),
        }
    }
}

/// `llm:` — the model providers, the model a step gets when it names none, and the chain tried
/// when a provider is rate limited, failing or slow.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    pub providers: BTreeMap<String, LlmProviderConfig>,
    /// `provider/model` for steps that name no model.
    pub default: Option<String>,
    /// `provider/model`s tried in order after the chosen one answers 429 or 5xx, times out or
    /// breaks off its answer.
    pub fallback: Vec<String>,
    /// Write prompts and completions to the debug log; off, they never appear in logs.
    pub log_content: bool,
    /// Prices of `provider/model`s per million tokens, in the currency the table is written
    /// in: each call's cost goes to `oclaw_llm_cost_total` and to the `cost` of the skill's
    /// output. Models without a price have no cost.
    pub prices: BTreeMap<String, LlmPrice>,
}

/// What a model's tokens cost, per million.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmPrice {
    /// Per million input (prompt) tokens.
    pub input: f64,
    /// Per million output (completion) tokens.
    #[serde(default)]
    pub output: f64,
}

/// The API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LlmKind {
    /// OpenAI-compatible chat completions (OpenAI, vLLM, llama.cpp's server, Ollama's `/v1`,
    /// LM Studio).
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
}

/// One model provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmProviderConfig {
    pub kind: LlmKind,
    /// API root: `https://api.openai.com/v1` or `https://api.anthropic.com` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Only from secrets: `"{{ secrets.OPENAI_KEY }}"` (a literal key is refused). Local
    /// servers need none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Longest a call may take, first byte to last.
    #[serde(default = "default_llm_timeout")]
    pub timeout: Dur,
    /// Calls to this provider at once in this process; more wait for a free slot.
    #[serde(default = "default_llm_concurrency")]
    pub max_concurrent: usize,
    /// Calls per minute this process makes to the provider (a bucket that refills
    /// continuously); a call that would wait past its timeout goes down the chain as a 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute (each call's estimate, settled to the provider's count after).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u32>,
}

impl LlmConfig {
    /// Names `provider/model` must use, and keys that come only from secrets.
    pub fn check(&self) -> Result<(), String> {
        for (model, price) in &self.prices {
            let known = model
                .split_once('/')
                .is_some_and(|(p, m)| !m.is_empty() && self.providers.contains_key(p));
            if !known {
                return Err(format!(
                    "llm.prices.{model}: not provider/model of a provider in llm.providers"
                ));
            }
            let ok = |x: f64| x.is_finite() && x >= 0.0;
            if !ok(price.input) || !ok(price.output) {
                return Err(format!(
                    "llm.prices.{model}: prices are numbers of 0 or more (per million tokens)"
                ));
            }
        }
        for (name, p) in &self.providers {
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(format!(
                    "llm.providers.{name}: a provider name is letters, digits, `-` or `_`"
                ));
            }
            if let Some(key) = &p.api_key {
                if !key.contains("{{") || !key.contains("secrets.") {
                    return Err(format!(
                        "llm.providers.{name}.api_key must come from secrets, e.g. \"{{{{ secrets.{} }}}}\" (set OCLAW_SECRET_{} in the environment); a key written in the file is refused",
                        name.to_ascii_uppercase().replace('-', "_") + "_KEY",
                        name.to_ascii_uppercase().replace('-', "_") + "_KEY"
                    ));
                }
            }
            if p.max_concurrent == 0 {
                return Err(format!(
                    "llm.providers.{name}.max_concurrent must be at least 1"
                ));
            }
            if let Some(url) = &p.base_url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "llm.providers.{name}.base_url `{url}` must be an http:// or https:// URL"
                    ));
                }
            }
        }
        let names: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        for (key, model) in self
            .default
            .iter()
            .map(|m| ("llm.default", m))
            .chain(self.fallback.iter().map(|m| ("llm.fallback", m)))
        {
            self.model_ref(model).map_err(|e| {
                format!("{key}: {e}{}", {
                    let provider = model.split('/').next().unwrap_or_default();
                    crate::suggest::hint(provider, &names)
                })
            })?;
        }
        Ok(())
    }

    /// Splits `provider/model`, checking the provider exists.
    pub fn model_ref<'a>(&self, model: &'a str) -> Result<(&'a str, &'a str), String> {
        match model.split_once('/') {
            Some((p, m)) if !m.is_empty() && self.providers.contains_key(p) => Ok((p, m)),
            Some((p, m)) if !m.is_empty() => Err(format!(
                "`{model}` names provider `{p}`, which llm.providers does not have"
            )),
            _ => Err(format!("`{model}` is not provider/model")),
        }
    }
}

fn default_llm_timeout() -> Dur {
    Dur::secs(60)
}

fn default_llm_concurrency() -> usize {
    16
}

/// `plugins:` — installed WebAssembly plugins and the ceilings every plugin call runs under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Folder of installed plugins (`oclaw plugin install` writes `<dir>/<name>/`).
    pub dir: PathBuf,
    /// How often the folder is checked for new, changed or removed plugins; `0s` turns hot
    /// reload off.
    pub reload_interval: Dur,
    /// Ceiling for a plugin's linear memory (a manifest may ask for less, never more).
    pub max_memory: String,
    /// Ceiling for one plugin call's wall-clock time.
    pub max_timeout: Dur,
    /// Plugin calls running at once in this process; more wait for a free slot.
    pub max_concurrent_calls: u32,
    /// Move a plugin call that runs longer than a 2 ms tick to threads of its own, apart from
    /// those serving the API and built-in skills, so a runaway plugin cannot starve them (quick
    /// calls finish where they started). `false` keeps whole calls on the node's threads.
    pub dedicated_threads: bool,
    /// How many dedicated threads; 0 picks half the CPUs (at least one).
    pub threads: usize,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: PathBuf::from("plugins"),
            reload_interval: Dur::secs(2),
            max_memory: "256Mi".into(),
            max_timeout: Dur::secs(30),
            max_concurrent_calls: 128,
            dedicated_threads: true,
            threads: 0,
        }
    }
}

/// `mcp:` — MCP tool servers, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    pub servers: BTreeMap<String, McpServerConfig>,
}

/// One MCP server: either a `command` started over stdio (restarted when it exits) or the `url`
/// of a streamable-HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// Program to start (stdio transport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment of the started program (it inherits nothing else but `PATH` and `HOME`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory of the started program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Streamable-HTTP endpoint, for example `http://127.0.0.1:3001/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Bearer token sent to a streamable-HTTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// Limit for one tool call (and for connecting and listing tools).
    #[serde(default = "default_mcp_timeout")]
    pub timeout: Dur,
}

fn default_mcp_timeout() -> Dur {
    Dur::secs(30)
}

/// `channels:` — broker connections used by `mqtt`/`nats` triggers, WebSocket session limits and
/// conversation memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelsConfig {
    /// The MQTT broker `mqtt` triggers subscribe to.
    pub mqtt: Option<MqttConnection>,
    /// The NATS server (with JetStream) `nats` triggers consume from.
    pub nats: Option<NatsConnection>,
    pub websocket: WebsocketConfig,
    pub conversation: ConversationConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttConnection {
    /// `mqtt://HOST:PORT` (1883 by default), or `mqtts://HOST:PORT` for TLS (8883 by default).
    pub url: String,
    /// PEM file of the certificate authorities that sign the broker's certificate (`mqtts://`);
    /// the host's store when unset.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Client id; defaults to `oclaw-<node id>`. Two nodes must not share one.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// May be a template over `secrets` (`"{{ secrets.MQTT_PASSWORD }}"`).
    #[serde(default)]
    pub password: Option<String>,
    /// Shared-subscription group (`$share/<group>/<filter>`): nodes of one cluster split the
    /// messages between them instead of each getting every one. Empty subscribes plainly.
    #[serde(default = "default_share_group")]
    pub share_group: String,
}

fn default_share_group() -> String {
    "oclaw".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsConnection {
    /// `nats://HOST:PORT` (4222 by default), or `tls://HOST:PORT` to require TLS.
    pub url: String,
    /// PEM file of the certificate authorities that sign the server's certificate; setting it
    /// requires TLS. The host's store when unset.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// The JetStream stream `nats` triggers consume from; created over their subjects when missing.
    #[serde(default = "default_nats_stream")]
    pub stream: String,
}

fn default_nats_stream() -> String {
    "OCLAW".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WebsocketConfig {
    /// Messages of one session submitted and not yet answered; the session reads no further
    /// frames until one is answered.
    pub max_in_flight: usize,
    /// Frames waiting to be written to a client; a client that lets this many pile up is
    /// disconnected (close code 1008).
    pub outbound_buffer: usize,
    /// How often the server pings; a client silent for three intervals is disconnected.
    pub heartbeat: Dur,
    /// Largest frame a client may send.
    pub max_frame_bytes: usize,
}

impl Default for WebsocketConfig {
    fn default() -> Self {
        WebsocketConfig {
            max_in_flight: 32,
            outbound_buffer: 256,
            heartbeat: Dur::secs(20),
            max_frame_bytes: 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConversationConfig {
    /// Messages (user and bot) kept per conversation for `conversation.history`; 0 keeps none.
    pub history: usize,
    /// A conversation idle this long is forgotten.
    pub ttl: Dur,
}

impl Default for ConversationConfig {
    fn default() -> Self {
        ConversationConfig {
            history: 20,
            ttl: Dur::secs(7 * 24 * 3600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://PATH` (embedded, the default) or `postgres://...`.
    pub url: String,
    /// SQLite durability: `normal` survives a process crash, `full` also a power loss.
    pub sync: SyncMode,
    /// How long a store call waits for a busy or unreachable database before failing with OC-4001.
    pub busy_timeout: Dur,
    /// PostgreSQL: most connections this process opens (api-server requests, worker claims and
    /// completions share them; one more is kept for LISTEN).
    pub pool_size: usize,
    /// Finished tasks (succeeded, failed, dead, cancelled) older than this are deleted with their
    /// checkpoints, and expired key-value entries with them, by the leading scheduler. Unset keeps
    /// everything.
    pub retention: Option<Dur>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    #[default]
    Normal,
    Full,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on. Loopback by default.
    pub listen: String,
    /// How long `invoke` waits for a result.
    pub timeout: Dur,
    /// Bearer tokens accepted by the API. Required when listening beyond loopback.
    pub tokens: Vec<String>,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Listen beyond loopback without tokens (not recommended).
    pub allow_unauthenticated: bool,
    /// Longest a client may take to send a request body.
    pub body_timeout: Dur,
    /// Serve HTTPS instead of HTTP (for those without a proxy in front).
    pub tls: Option<ApiTls>,
    /// Accept JWTs of an OpenID Connect issuer as bearer tokens (the console's sign-in).
    pub oidc: Option<OidcConfig>,
}

/// `api.oidc` — JWTs signed by a key of the issuer's JWKS, for this audience, whose claims name
/// the tenant and the role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` the tokens must carry.
    pub issuer: String,
    /// The `aud` the tokens must carry (this API's client id at the provider).
    pub audience: String,
    /// The issuer's keys (a JWKS document) from a file ...
    #[serde(default)]
    pub jwks_file: Option<std::path::PathBuf>,
    /// ... or from a URL, read at start and every 10 minutes.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// The claim holding the tenant.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// The claim holding the role (`admin`, `developer`, `operator`, `viewer`).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
}

fn default_tenant_claim() -> String {
    "tenant".into()
}

fn default_role_claim() -> String {
    "role".into()
}

/// The API's own certificate: PEM files, the certificate chain (leaf first) and its private key
/// (PKCS#8, PKCS#1 or SEC1). Read at start; a restart picks up a renewed pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiTls {
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Tasks one node runs at once.
    pub concurrency: usize,
    /// Queues this worker claims from; empty means every queue a loaded bot uses.
    pub queues: Vec<String>,
    pub batch: BatchConfig,
    /// Tasks claimed beyond the free slots, waiting on this worker to start: a small buffer so
    /// a slot that frees is refilled without a round trip, small enough that a burst spreads
    /// over every worker.
    pub prefetch: usize,
    /// Lease of a claimed task that has not started (renewed while it waits): if the worker
    /// dies, another one takes it after this long instead of after `lease`.
    pub prefetch_lease: Dur,
    /// Lease length; heartbeats renew it every third of it.
    pub lease: Dur,
    /// Fallback poll period when no wake-up arrives.
    pub poll_interval: Dur,
    /// How long SIGTERM waits for running tasks before releasing them.
    pub shutdown_grace: Dur,
}

/// The seed's batching block (`batch: {enabled, maxSize, timeout}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub enabled: bool,
    /// Most tasks claimed, or completions written, per round trip.
    #[serde(rename = "maxSize", alias = "max_size")]
    pub max_size: usize,
    /// Longest a finished task's completion waits to be written with others.
    pub timeout: Dur,
    /// How long the completion writer waits for still-running tasks so their results share one
    /// write (never longer than `timeout`; a lone result on an idle worker is written at once).
    pub linger: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerConfig {
    /// Longest time between scheduler passes (wake-ups make most passes sooner).
    pub interval: Dur,
    /// How long a scheduler's leadership lasts without renewal; a standby takes over within about
    /// this long after the leader dies.
    pub leader_lease: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Default lifetime of `kv.set` entries.
    pub ttl: Dur,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Most tasks waiting (queued or scheduled) before submissions get 429.
    pub capacity: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `auto` (human on a terminal, JSON otherwise), `json` or `human`.
    pub log_format: LogFormat,
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter.
    pub log_level: String,
    /// Export traces over OTLP/HTTP to this collector, e.g. `http://127.0.0.1:4318`. Unset:
    /// the standard `OTEL_EXPORTER_OTLP_ENDPOINT` variables, else off.
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (the OTLP default) or `http/json`. Unset: `OTEL_EXPORTER_OTLP_PROTOCOL`,
    /// else protobuf.
    pub otlp_protocol: Option<OtlpProtocol>,
    /// `service.name` of the exported traces.
    pub service_name: String,
}

/// The wire format of exported traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OtlpProtocol {
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    #[serde(rename = "http/json")]
    HttpJson,
}

impl OtlpProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Auto,
    Json,
    Human,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: "sqlite://./data/oclaw.db".into(),
            sync: SyncMode::Normal,
            busy_timeout: Dur::secs(5),
            pool_size: 10,
            retention: None,
        }
    }
}
impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".into(),
            timeout: Dur::secs(30),
            tokens: Vec::new(),
            max_body_bytes: 1 << 20,
            allow_unauthenticated: false,
            tls: None,
            oidc: None,
            body_timeout: Dur::secs(30),
        }
    }
}
impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 10,
            queues: Vec::new(),
            batch: BatchConfig::default(),
            prefetch: 10,
            prefetch_lease: Dur::secs(5),
            lease: Dur::secs(30),
            poll_interval: Dur::secs(1),
            shutdown_grace: Dur::secs(10),
        }
    }
}
impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            enabled: true,
            max_size: 100,
            timeout: Dur::millis(500),
            linger: Dur::millis(2),
        }
    }
}
impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            interval: Dur::secs(5),
            leader_lease: Dur::secs(5),
        }
    }
}
impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Dur::secs(600),
        }
    }
}
impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Auto,
            log_level: "info".into(),
            otlp_endpoint: None,
            otlp_protocol: None,
            service_name: "oclaw".into(),
        }
    }
}
impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig::for_profile(Profile::Default)
    }
}

impl NodeConfig {
    /// Defaults of the seed's tuning table: the "default" or the "production" column.
    pub fn for_profile(profile: Profile) -> NodeConfig {
        let mut c = NodeConfig {
            storage: StorageConfig::default(),
            api: ApiConfig::default(),
            worker: WorkerConfig::default(),
            scheduler: SchedulerConfig::default(),
            cache: CacheConfig::default(),
            queues: BTreeMap::new(),
            bots: Vec::new(),
            bots_dir: None,
            bots_reload_interval: Dur::secs(2),
            telemetry: TelemetryConfig::default(),
            channels: ChannelsConfig::default(),
            plugins: PluginsConfig::default(),
            mcp: McpConfig::default(),
            llm: LlmConfig::default(),
            events: EventsConfig::default(),
            knowledge: KnowledgeConfig::default(),
            templates: TemplatesConfig::default(),
            tenants: TenantsConfig::default(),
            audit: AuditConfig::default(),
            secrets: SecretsConfig::default(),
        };
        if profile == Profile::Production {
            c.worker.concurrency = 50;
            c.scheduler.interval = Dur::secs(30);
            c.api.timeout = Dur::secs(120);
            c.cache.ttl = Dur::secs(3600);
        }
        c
    }

    /// Value checks serde cannot express.
    pub fn check_values(&self) -> Result<(), String> {
        if self.worker.concurrency == 0 {
            return Err("worker.concurrency must be at least 1".into());
        }
        if self.worker.batch.max_size == 0 {
            return Err("worker.batch.maxSize must be at least 1".into());
        }
        if self.worker.lease.get().as_millis() < 1000 {
            return Err("worker.lease must be at least 1s".into());
        }
        if let Some(e) = &self.telemetry.otlp_endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(format!(
                    "telemetry.otlp_endpoint `{e}` must be an http:// or https:// URL (OTLP/HTTP, e.g. http://127.0.0.1:4318)"
                ));
            }
        }
        if self.storage.pool_size == 0 {
            return Err("storage.pool_size must be at least 1".into());
        }
        self.llm.check()?;
        match self.knowledge.embedder.as_deref() {
            None | Some("local") => {}
            Some(model) => match model.split_once('/') {
                Some((provider, m)) if !m.is_empty() => {
                    if !self.llm.providers.contains_key(provider) {
                        return Err(format!(
                            "knowledge.embedder `{model}` names provider `{provider}`, which llm.providers does not have"
                        ));
                    }
                }
                _ => {
                    return Err(format!(
                        "knowledge.embedder `{model}` must be `local` or provider/model"
                    ))
                }
            },
        }
        if self.knowledge.chunk_size < 64 {
            return Err("knowledge.chunk_size must be at least 64 characters".into());
        }
        if self.knowledge.chunk_overlap * 2 > self.knowledge.chunk_size {
            return Err(
                "knowledge.chunk_overlap must be at most half of knowledge.chunk_size".into(),
            );
        }
        if self.scheduler.leader_lease.get() < std::time::Duration::from_secs(1) {
            return Err("scheduler.leader_lease must be at least 1s".into());
        }
        if self.scheduler.interval.get().is_zero() {
            return Err("scheduler.interval must be greater than 0".into());
        }
        if self.api.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!(
                "api.listen `{}` is not an address like 127.0.0.1:8080",
                self.api.listen
            ));
        }
        if !(self.storage.url.starts_with("sqlite:") || self.storage.url.starts_with("postgres")) {
            return Err(format!(
                "storage.url `{}` must start with sqlite:// or postgres://",
                self.storage.url
            ));
        }
        Ok(())
    }
}

/// The JSON Schema of `oclaw.yaml`, generated from these types.
/// The JSON Schema of a bot file (`kind: Bot`; `oclaw config schema --bot`).
pub fn bot_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(crate::bot::BotDoc);
    serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
}

pub fn node_config_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(NodeConfig);
    serde_json::to_value(schema).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_name_a_configured_provider_and_are_not_negative() {
        let llm = |prices: serde_json::Value| -> LlmConfig {
            serde_json::from_value(serde_json::json!({
                "providers": {"local": {"kind": "openai"}},
                "prices": prices,
            }))
            .unwrap()
        };
        assert!(
            llm(serde_json::json!({"local/m": {"input": 0.5, "output": 1.5}}))
                .check()
                .is_ok()
        );
        let unknown = llm(serde_json::json!({"cloud/m": {"input": 1.0}})).check();
        assert!(unknown.unwrap_err().contains("llm.prices.cloud/m"));
        let negative = llm(serde_json::json!({"local/m": {"input": -1.0}})).check();
        assert!(negative.unwrap_err().contains("0 or more"));
    }

    #[test]
    fn defaults_are_the_seeds() {
        let c = NodeConfig::default();
        assert_eq!(c.worker.concurrency, 10);
        assert_eq!(c.scheduler.interval, Dur::secs(5));
        assert_eq!(c.api.timeout, Dur::secs(30));
        assert_eq!(c.cache.ttl, Dur::secs(600));
        assert!(c.worker.batch.enabled);
        assert_eq!(c.worker.batch.max_size, 100);
        assert_eq!(c.worker.batch.timeout, Dur::millis(500));
        assert_eq!(c.api.listen, "127.0.0.1:8080");
    }

    #[test]
    fn production_profile_is_the_seeds_production_column() {
        let c = NodeConfig::for_profile(Profile::Production);
        assert_eq!(c.worker.concurrency, 50);
        assert_eq!(c.scheduler.interval, Dur::secs(30));
        assert_eq!(c.api.timeout, Dur::secs(120));
        assert_eq!(c.cache.ttl, Dur::secs(3600));
    }

    #[test]
    fn schema_names_the_seed_keys() {
        let s = node_config_schema().to_string();
        for key in ["concurrency", "maxSize", "interval", "ttl", "capacity"] {
            assert!(s.contains(key), "schema lacks {key}");
        }
    }
}

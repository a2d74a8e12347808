//! MCP tool servers as skill providers (the official Rust SDK, `rmcp`): each configured server is
//! reached over stdio (a child process the node starts, and starts again when it has exited) or
//! streamable HTTP; its tools become skills `mcp.<server>.<tool>`. Every call has a time limit;
//! a server that hangs, crashes or answers garbage fails the step with a clear code and leaves
//! the node running.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use oclaw_core::config::{McpConfig, McpServerConfig};
use oclaw_core::ErrorCode;
use oclaw_skills::{
    intern, Skill, SkillCall, SkillContext, SkillError, SkillOrigin, SkillRegistry,
};
use rmcp::model::{CallToolRequestParams, ContentBlock, Tool};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::ServiceExt;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::Mutex;

use crate::PluginError;

type Client = RunningService<RoleClient, ()>;

/// Waits at least this long between two starts of a server that keeps failing.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// Whether the connection has ended (the process exited, the session closed, or it was
/// cancelled).
fn gone(c: &Client) -> bool {
    c.is_closed() || c.is_transport_closed()
}

/// One configured server and its live connection.
pub struct McpServer {
    pub name: String,
    config: McpServerConfig,
    client: Mutex<Option<Arc<Client>>>,
    last_start: Mutex<Option<Instant>>,
    /// Tools listed at the last (re)connection.
    tools: std::sync::RwLock<Vec<Tool>>,
    /// How many times the server was (re)started or reconnected.
    pub starts: std::sync::atomic::AtomicU64,
}

fn unavailable(message: String) -> PluginError {
    SkillError::transient(ErrorCode::PluginUnavailable, message)
}

impl McpServer {
    fn new(name: &str, config: &McpServerConfig) -> Result<McpServer, String> {
        match (&config.command, &config.url) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(format!(
                    "mcp.servers.{name}: set exactly one of `command` (stdio) or `url` (streamable HTTP)"
                ))
            }
        }
        if let Some(url) = &config.url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| format!("mcp.servers.{name}.url: `{url}`: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("mcp.servers.{name}.url: must be http or https"));
            }
        }
        Ok(McpServer {
            name: name.to_string(),
            config: config.clone(),
            client: Mutex::new(None),
            last_start: Mutex::new(None),
            tools: std::sync::RwLock::new(Vec::new()),
            starts: Default::default(),
        })
    }

    fn timeout(&self) -> Duration {
        self.config.timeout.get()
    }

    /// The tools listed at the last connection.
    pub fn tools(&self) -> Vec<Tool> {
        self.tools.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The answer to `step`, or why there is none (no answer within the timeout, or an error).
    fn answered<T, E: std::fmt::Display>(
        &self,
        step: &str,
        outcome: Result<Result<T, E>, tokio::time::error::Elapsed>,
    ) -> Result<T, PluginError> {
        let name = &self.name;
        match outcome {
            Err(_) => Err(unavailable(format!(
                "MCP server `{name}`: no answer to {step} within {:?}",
                self.timeout()
            ))),
            Ok(Err(e)) => Err(unavailable(format!(
                "MCP server `{name}`: {step} failed: {e}"
            ))),
            Ok(Ok(v)) => Ok(v),
        }
    }

    async fn start(&self) -> Result<Client, PluginError> {
        let name = &self.name;
        let client = if let Some(command) = &self.config.command {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(&self.config.args).env_clear();
            for key in ["PATH", "HOME"] {
                if let Some(v) = std::env::var_os(key) {
                    cmd.env(key, v);
                }
            }
            cmd.envs(&self.config.env);
            if let Some(dir) = &self.config.cwd {
                cmd.current_dir(dir);
            }
            let (transport, stderr) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| {
                    unavailable(format!(
                        "MCP server `{name}`: cannot start `{command}`: {e}"
                    ))
                })?;
            if let Some(stderr) = stderr {
                let server = name.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        tracing::debug!(component = "mcp", server = %server, "stderr: {line}");
                    }
                });
            }
            tokio::time::timeout(self.timeout(), ().serve(transport)).await
        } else {
            let url = self.config.url.clone().unwrap_or_default();
            let mut cfg = StreamableHttpClientTransportConfig::with_uri(url);
            if let Some(token) = &self.config.bearer_token {
                cfg = cfg.auth_header(token.clone());
            }
            let transport = StreamableHttpClientTransport::from_config(cfg);
            tokio::time::timeout(self.timeout(), ().serve(transport)).await
        };
        let client = self.answered("initialize", client)?;
        let tools = self.answered(
            "tools/list",
            tokio::time::timeout(self.timeout(), client.list_all_tools()).await,
        )?;
        *self.tools.write().unwrap_or_else(|e| e.into_inner()) = tools;
        let n = self
            .starts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n > 0 {
            tracing::warn!(component = "mcp", server = %name, starts = n + 1, "MCP server reconnected");
        } else {
            tracing::info!(component = "mcp", server = %name, tools = self.tools().len(), "MCP server connected");
        }
        Ok(client)
    }

    /// The live client, started (again) when there is none or the old one has closed (the
    /// process exited, the HTTP session ended).
    async fn client(&self) -> Result<Arc<Client>, PluginError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            if !gone(c) {
                return Ok(c.clone());
            }
            tracing::warn!(component = "mcp", server = %self.name, error_code = %ErrorCode::PluginUnavailable,
                "MCP server connection closed (process exited or session ended); starting it again");
            *slot = None;
        }
        {
            let mut last = self.last_start.lock().await;
            if let Some(at) = *last {
                let since = at.elapsed();
                if since < RESTART_BACKOFF {
                    tokio::time::sleep(RESTART_BACKOFF - since).await;
                }
            }
            *last = Some(Instant::now());
        }
        let client = Arc::new(self.start().await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Calls `tool` with `arguments`.
    pub async fn call(&self, tool: &str, arguments: Value) -> Result<Value, PluginError> {
        let who = format!("MCP tool `{tool}` of server `{}`", self.name);
        let Value::Object(args) = arguments else {
            return Err(SkillError::invalid(format!(
                "{who}: the input must be a mapping of the tool's arguments"
            )));
        };
        if let Some(t) = self.tools().iter().find(|t| t.name == tool) {
            let schema = Value::Object((*t.input_schema).clone());
            crate::schema::validate(&schema, &Value::Object(args.clone())).map_err(|e| {
                SkillError::invalid(format!("{who}: arguments do not match its schema: {e}"))
            })?;
        }
        let client = self.client().await?;
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
        let result = match tokio::time::timeout(self.timeout(), client.call_tool(params)).await {
            Err(_) => {
                return Err(SkillError::permanent(
                    ErrorCode::PluginTimeout,
                    format!("{who}: no answer within {:?}", self.timeout()),
                ))
            }
            Ok(Err(e)) => {
                let closed = gone(&client)
                    || matches!(
                        e,
                        rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_)
                    );
                if closed {
                    let mut slot = self.client.lock().await;
                    if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, &client)) {
                        *slot = None;
                    }
                }
                let message = format!("{who}: {e}");
                return Err(match e {
                    rmcp::ServiceError::McpError(_) => {
                        SkillError::permanent(ErrorCode::McpToolFailed, message)
                    }
                    rmcp::ServiceError::UnexpectedResponse => {
                        SkillError::permanent(ErrorCode::PluginBadOutput, message)
                    }
                    _ if closed => unavailable(format!(
                        "{message} (the server went away; it is started again on the next call)"
                    )),
                    _ => unavailable(message),
                });
            }
            Ok(Ok(r)) => r,
        };
        let text: Vec<&str> = result
            .content
            .iter()
            .filter_map(ContentBlock::as_text)
            .map(|t| t.text.as_str())
            .collect();
        if result.is_error == Some(true) {
            return Err(SkillError::permanent(
                ErrorCode::McpToolFailed,
                format!("{who}: {}", text.join("\n")),
            ));
        }
        if let Some(structured) = result.structured_content {
            return Ok(structured);
        }
        let content = serde_json::to_value(&result.content).unwrap_or(Value::Null);
        Ok(serde_json::json!({"text": text.join("\n"), "content": content}))
    }
}

/// Every configured MCP server.
#[derive(Default)]
pub struct McpHub {
    servers: BTreeMap<String, Arc<McpServer>>,
}

impl McpHub {
    /// Servers from `mcp.servers` (nothing is started yet).
    pub fn new(config: &McpConfig) -> Result<McpHub, String> {
        // The streamable-HTTP client needs a TLS provider even for plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut servers = BTreeMap::new();
        for (name, cfg) in &config.servers {
            if name.is_empty() || name.contains('.') {
                return Err(format!(
                    "mcp.servers: server name `{name}` must be non-empty and without `.`"
                ));
            }
            servers.insert(name.clone(), Arc::new(McpServer::new(name, cfg)?));
        }
        Ok(McpHub { servers })
    }

    pub fn servers(&self) -> impl Iterator<Item = &Arc<McpServer>> {
        self.servers.values()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<McpServer>> {
        self.servers.get(name)
    }

    /// Connects to every server, lists its tools and registers them as `mcp.<server>.<tool>`.
    /// A server that cannot be reached fails the whole start: bots that use it could not run.
    pub async fn connect_and_register(&self, registry: &mut SkillRegistry) -> Result<(), String> {
        for server in self.servers.values() {
            server.client().await.map_err(|e| e.message)?;
            for tool in server.tools() {
                let name = format!("mcp.{}.{}", server.name, tool.name);
                let summary = tool
                    .description
                    .as_deref()
                    .map(|d| d.lines().next().unwrap_or("").to_string())
                    .unwrap_or_default();
                registry.register(Arc::new(McpSkill {
                    server: server.clone(),
                    tool: tool.name.to_string(),
                    name: intern(&name),
                    summary: intern(&summary),
                }));
            }
        }
        Ok(())
    }
}

struct McpSkill {
    server: Arc<McpServer>,
    tool: String,
    name: &'static str,
    summary: &'static str,
}

#[async_trait]
impl Skill for McpSkill {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn fields(&self) -> &'static [&'static str] {
        &[]
    }
    fn input_schema(&self) -> Value {
        self.server
            .tools()
            .iter()
            .find(|t| t.name == self.tool)
            .map(|t| Value::Object((*t.input_schema).clone()))
            .unwrap_or_else(|| serde_json::json!({"type": "object"}))
    }
    /// Unless the server marks the tool read-only, it may change anything.
    fn side_effects(&self) -> bool {
        !self
            .server
            .tools()
            .iter()
            .find(|t| t.name == self.tool)
            .and_then(|t| t.annotations.as_ref())
            .and_then(|a| a.read_only_hint)
            .unwrap_or(false)
    }
    fn origin(&self) -> SkillOrigin {
        SkillOrigin::Mcp {
            server: self.server.name.clone(),
        }
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let input = crate::step_input(call);
        self.server.call(&self.tool, input).await
    }
}

//! Opening the configured store and loading the configured bots, with errors that carry codes.

use std::sync::Arc;
use std::time::Duration;

use oclaw_bots::templates::TemplateEngine;
use oclaw_bots::BotCatalog;
use oclaw_core::config::{NodeConfig, SyncMode};
use oclaw_core::config_load::ConfigError;
use oclaw_core::ErrorCode;
use oclaw_skills::SkillRegistry;
use oclaw_store::postgres::PgOptions;
use oclaw_store::sqlite::SqliteOptions;
use oclaw_store::{Store, StoreError, StoreOptions};

use crate::EXAMPLE_BOTS;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{code} opening the store: {0}", code = .0.code())]
    Store(#[from] StoreError),
    #[error("{code} {message}")]
    Startup { code: ErrorCode, message: String },
}

impl NodeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            NodeError::Config(e) => e.code,
            NodeError::Store(e) => e.code(),
            NodeError::Startup { code, .. } => *code,
        }
    }
}

/// Where the loaded bots came from (for the banner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogSource {
    Configured,
    Examples,
}

/// Opens `storage.url` with the configured durability and sets queue capacities.
pub async fn open_configured_store(config: &NodeConfig) -> Result<Arc<dyn Store>, NodeError> {
    let timeout = config
        .storage
        .busy_timeout
        .get()
        .max(Duration::from_millis(1));
    let options = StoreOptions {
        sqlite: SqliteOptions {
            full_sync: config.storage.sync == SyncMode::Full,
            busy_timeout: timeout,
            ..Default::default()
        },
        postgres: PgOptions {
            pool_size: config.storage.pool_size,
            timeout,
        },
    };
    let store = oclaw_store::open_store(&config.storage.url, options).await?;
    for (queue, q) in &config.queues {
        store.set_queue_capacity(queue, q.capacity);
    }
    Ok(store)
}

/// Keeps every loaded bot's definition under its revision (key-value namespace
/// [`oclaw_engine::REVISIONS`]), so a task stamped with it runs to its end on it after the bot
/// changes. A failure is logged: tasks then run on the bot as loaded.
pub async fn save_revisions(store: &dyn oclaw_store::Store, catalog: &BotCatalog) {
    for bot in catalog.bots() {
        if let Err(e) = store
            .kv_set(
                oclaw_engine::REVISIONS,
                &bot.revision,
                &bot.definition,
                None,
            )
            .await
        {
            tracing::warn!(component = "bots", bot = bot.name(), error_code = e.code().code(),
                "could not keep the bot's revision ({e}); its tasks run on the bot as loaded when they run");
        }
    }
}

/// Bots from the config (`bots`, `bots_dir`); the built-in examples when neither is set.
pub fn build_catalog(
    config: &NodeConfig,
    config_file: &str,
    skills: &SkillRegistry,
    templates: &TemplateEngine,
) -> Result<(BotCatalog, CatalogSource), NodeError> {
    let mut catalog = BotCatalog::default();
    let configured = !config.bots.is_empty() || config.bots_dir.is_some();
    // The config file's text only serves to locate errors (file:line) in inline bots.
    let text = (!config.bots.is_empty())
        .then(|| std::fs::read_to_string(config_file).ok())
        .flatten();
    for bot in &config.bots {
        catalog.add(bot.clone(), config_file, text.as_deref(), skills, templates)?;
    }
    if let Some(dir) = &config.bots_dir {
        catalog.load_dir(dir, skills, templates)?;
    }
    if configured {
        catalog.check_calls()?;
        return Ok((catalog, CatalogSource::Configured));
    }
    let models = !config.llm.providers.is_empty() && config.llm.default.is_some();
    let examples = EXAMPLE_BOTS.iter().chain(
        models
            .then_some(crate::examples::MODEL_EXAMPLE_BOTS)
            .into_iter()
            .flatten(),
    );
    for (name, text) in examples {
        let text = crate::examples::example_yaml(name, text);
        catalog.load_yaml(name, &text, skills, templates)?;
    }
    catalog.check_calls()?;
    Ok((catalog, CatalogSource::Examples))
}

/// The skills a node runs: built-ins, the installed plugins (`plugins.dir`) and the tools of the
/// configured MCP servers.
pub struct NodeSkills {
    pub registry: SkillRegistry,
    pub plugins: Arc<oclaw_plugins::PluginHost>,
    pub mcp: Arc<oclaw_plugins::mcp::McpHub>,
    /// What `channel.reply` (reply delivery) needs once the node has built it.
    pub delivery: Arc<oclaw_channels::delivery::DeliveryContext>,
    /// Knowledge collections (`kb.search`, `kb.ingest`, the `/v1/kb` routes).
    pub knowledge: Arc<oclaw_knowledge::KnowledgeBase>,
}

/// Loads plugins and connects to MCP servers. A plugin that fails to load is logged and left
/// out (bots that use it are then refused with the unknown-skill error); an MCP server that does
/// not answer fails the start.
pub async fn build_skills(config: &NodeConfig) -> Result<NodeSkills, NodeError> {
    let fail = |code: ErrorCode, message: String| NodeError::Startup { code, message };
    let mut registry = SkillRegistry::builtin();
    registry.register(std::sync::Arc::new(oclaw_skills::waits::EventEmit {
        retention: config.events.retention.get(),
    }));
    let llm = oclaw_llm::Llm::from_config(&config.llm, &|name| std::env::var(name).ok())
        .map_err(|m| fail(ErrorCode::ConfigInvalidValue, m))?;
    let llm = Arc::new(llm);
    let tools = oclaw_llm::ToolRegistry::default();
    let delivery = Arc::new(oclaw_channels::delivery::DeliveryContext::default());
    registry.register(Arc::new(oclaw_channels::delivery::ChannelReply {
        context: delivery.clone(),
    }));
    registry.register(Arc::new(oclaw_llm::LlmChat { llm: llm.clone() }));
    registry.register(Arc::new(oclaw_llm::LlmEmbed { llm: llm.clone() }));
    let knowledge = Arc::new(oclaw_knowledge::KnowledgeBase::from_config(
        &config.knowledge,
        Some(llm.clone()),
        std::path::Path::new("."),
    ));
    oclaw_knowledge::skills::register(&mut registry, knowledge.clone());
    registry.register(Arc::new(oclaw_llm::Agent {
        llm,
        tools: tools.clone(),
    }));
    let plugins = Arc::new(
        oclaw_plugins::PluginHost::new(&config.plugins)
            .map_err(|m| fail(ErrorCode::ConfigInvalidValue, m))?,
    );
    let host = plugins.clone();
    let report = tokio::task::spawn_blocking(move || host.reload())
        .await
        .unwrap_or_default();
    if !report.added.is_empty() {
        tracing::info!(component = "plugins", dir = %config.plugins.dir.display(),
            plugins = %report.added.join(", "), "plugins loaded");
    }
    plugins
        .register_skills(&mut registry)
        .map_err(|m| fail(ErrorCode::PluginInvalid, m))?;
    let mcp = Arc::new(
        oclaw_plugins::mcp::McpHub::new(&config.mcp)
            .map_err(|m| fail(ErrorCode::ConfigInvalidValue, m))?,
    );
    mcp.connect_and_register(&mut registry)
        .await
        .map_err(|m| fail(ErrorCode::PluginUnavailable, m))?;
    // The agent's tools are every skill registered by now.
    *tools.write().unwrap_or_else(|p| p.into_inner()) = Some(registry.clone());
    Ok(NodeSkills {
        registry,
        plugins,
        mcp,
        delivery,
        knowledge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_load() {
        let mut skills = SkillRegistry::builtin();
        oclaw_knowledge::skills::register(
            &mut skills,
            Arc::new(oclaw_knowledge::KnowledgeBase::text_only()),
        );
        let (c, source) = build_catalog(
            &NodeConfig::default(),
            "<defaults>",
            &skills,
            &TemplateEngine::default(),
        )
        .unwrap();
        assert_eq!(source, CatalogSource::Examples);
        assert!(c.get("hello").is_some());
        assert!(c.get("catalog-collector").is_some());
        assert!(c.get("health-monitor").is_some());
    }
}

//! The start-up banner: where the node listens, what it loaded and from where, what to try first.

use std::time::Instant;

use oclaw_core::config::NodeConfig;

use crate::components::Components;
use crate::loading::CatalogSource;

pub(crate) struct Banner<'a> {
    pub components: Components,
    pub started: Instant,
    pub api_url: &'a str,
    pub config: &'a NodeConfig,
    pub catalog: &'a oclaw_bots::BotCatalog,
    pub source: CatalogSource,
    pub node_id: &'a str,
    pub queues: &'a [String],
    /// The configuration file read (`<defaults>` when none).
    pub config_file: &'a str,
}

pub(crate) fn print_banner(b: &Banner<'_>) {
    let names: Vec<&str> = b.catalog.bots().map(|b| b.name()).collect();
    let from = match b.source {
        CatalogSource::Examples => {
            // Say where the example knowledge is read, so a user knows what an edit changes.
            let knowledge = crate::EXAMPLE_BOTS
                .iter()
                .find(|(n, _)| n.ends_with("faq-bot.yaml"))
                .and_then(|(n, _)| crate::examples::knowledge_on_disk(n));
            match knowledge {
                Some(file) => format!(
                    "built-in examples (faq-bot reads {}: edits apply at once; set bots_dir for your own bots)",
                    file.display()
                ),
                None => "built-in examples (compiled in; set bots_dir for your own bots)".into(),
            }
        }
        CatalogSource::Configured => "config".into(),
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
        println!("  console  {api_url}/ui/   (open in a browser: nodes, queues, tasks, bots, chat, hand-offs)");
        // The example to try names a bot that is loaded: `hello` when it is, else the first.
        let try_it = if b.catalog.get("hello").is_some() {
            Some(r#"{"bot":"hello","input":{"name":"Ada"}}"#.to_string())
        } else {
            b.catalog
                .bots()
                .next()
                .map(|bot| format!(r#"{{"bot":"{}","input":{{}}}}"#, bot.name()))
        };
        match try_it {
            Some(body) => {
                println!("  API      {api_url}/v1      try: curl -s {api_url}/v1/tasks -d '{body}'")
            }
            None => println!("  API      {api_url}/v1"),
        }
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
    println!(
        "  config   {}",
        match b.config_file {
            "<defaults>" =>
                "none found (./oclaw.yaml, /etc/oclaw/oclaw.yaml): the defaults".to_string(),
            f => f.to_string(),
        }
    );
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
    if b.source == CatalogSource::Examples && b.catalog.get("support-assistant").is_none() {
        let waiting: Vec<&str> = crate::examples::MODEL_EXAMPLE_BOTS
            .iter()
            .filter_map(|(n, _)| n.rsplit('/').next()?.strip_suffix(".yaml"))
            .collect();
        println!(
            "  models   none configured: {} load once llm.providers and llm.default are set (docs/agents.md)",
            waiting.join(", ")
        );
    }
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

//! Bot reload: a running node looks at its `bots_dir` every `bots_reload_interval` and, when a
//! bot file changed, loads the bots again and swaps them in whole. A folder that no longer loads
//! (a typo mid-edit) is reported with its code and file:line, and the node keeps the bots it
//! had. Tasks already running finish on the definition they started with.
//!
//! What a reload does not change: the broker subscriptions (MQTT, NATS) and the queues this
//! worker claims from are set when the node starts; a reload that needs them different says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oclaw_bots::templates::TemplateEngine;
use oclaw_bots::{BotCatalog, LiveCatalog};
use oclaw_core::config::NodeConfig;
use oclaw_skills::SkillRegistry;
use tokio::sync::watch;

use crate::loading::build_catalog;

pub(crate) struct Reload {
    pub live: Arc<LiveCatalog>,
    pub dir: PathBuf,
    pub config: NodeConfig,
    pub config_file: String,
    pub skills: SkillRegistry,
    /// The queues this node's worker claims from (empty without a worker).
    pub served: Vec<String>,
    pub every: Duration,
    /// Where the bots' revisions are kept (tasks run to their end on the revision they began).
    pub store: Arc<dyn oclaw_store::Store>,
}

type Stamp = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// The bot files of a folder with their sizes and modification times.
fn stamp(dir: &Path) -> Stamp {
    let mut out: Stamp = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let size = meta.as_ref().map_or(0, |m| m.len());
            (p, size, meta.and_then(|m| m.modified().ok()))
        })
        .collect();
    out.sort();
    out
}

pub(crate) async fn watch_bots(r: Reload, mut stop: watch::Receiver<bool>) {
    if r.every.is_zero() {
        return;
    }
    let templates = TemplateEngine::default();
    let mut last = stamp(&r.dir);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(r.every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = stamp(&r.dir);
        if now == last {
            continue;
        }
        last = now;
        match build_catalog(&r.config, &r.config_file, &r.skills, &templates) {
            Ok((next, _)) => {
                // Saved before the bots are swapped in, so no task is stamped with a revision
                // a worker cannot find.
                crate::loading::save_revisions(r.store.as_ref(), &next).await;
                apply(&r, next)
            }
            Err(e) => tracing::error!(
                component = "bots",
                error_code = e.code().code(),
                dir = %r.dir.display(),
                "bots not reloaded, the node keeps the bots it had: {e}"
            ),
        }
    }
}

fn apply(r: &Reload, next: BotCatalog) {
    let before = r.live.load();
    for bot in next.bots() {
        let old = before.get(bot.name());
        let brokers_changed = old.is_none_or(|o| o.mqtt != bot.mqtt || o.nats != bot.nats);
        if brokers_changed && (!bot.mqtt.is_empty() || !bot.nats.is_empty()) {
            tracing::warn!(component = "bots", bot = bot.name(),
                "the bot's MQTT/NATS triggers changed; broker subscriptions are made at start, so restart the node for them");
        }
        let queue = &bot.doc.spec.queue;
        if !r.served.is_empty() && !r.served.contains(queue) {
            tracing::warn!(component = "bots", bot = bot.name(), queue = %queue,
                "this node's worker does not claim from queue `{queue}`; restart it (or set worker.queues) to run the bot here");
        }
    }
    let d = r.live.replace(next);
    if d.is_empty() {
        return;
    }
    tracing::info!(
        component = "bots",
        added = %d.added.join(","),
        changed = %d.changed.join(","),
        removed = %d.removed.join(","),
        "bots reloaded from {}",
        r.dir.display()
    );
}

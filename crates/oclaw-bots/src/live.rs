//! The bots a node runs now, swapped whole when its bot files change. Readers take a snapshot
//! (`load`) and keep it for what they do; a task holds the `Arc<LoadedBot>` it started with, so
//! a reload never changes a run in flight.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use crate::BotCatalog;

#[derive(Default)]
pub struct LiveCatalog {
    current: RwLock<Arc<BotCatalog>>,
}

/// What a reload changed, by bot name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CatalogDiff {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl CatalogDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl LiveCatalog {
    pub fn new(catalog: BotCatalog) -> Arc<LiveCatalog> {
        Arc::new(LiveCatalog {
            current: RwLock::new(Arc::new(catalog)),
        })
    }

    /// The bots as they are now.
    pub fn load(&self) -> Arc<BotCatalog> {
        self.current
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Puts `next` in place of the current bots; returns what changed.
    pub fn replace(&self, next: BotCatalog) -> CatalogDiff {
        let next = Arc::new(next);
        let previous = {
            let mut slot = self.current.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *slot, next.clone())
        };
        diff(&previous, &next)
    }
}

/// Bots added, changed (their definition differs) and removed from `old` to `new`.
pub fn diff(old: &BotCatalog, new: &BotCatalog) -> CatalogDiff {
    let names =
        |c: &BotCatalog| -> BTreeSet<String> { c.bots().map(|b| b.name().to_string()).collect() };
    let (before, after) = (names(old), names(new));
    CatalogDiff {
        added: after.difference(&before).cloned().collect(),
        removed: before.difference(&after).cloned().collect(),
        changed: after
            .intersection(&before)
            .filter(|n| old.get(n).map(|b| b.doc.clone()) != new.get(n).map(|b| b.doc.clone()))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::TemplateEngine;
    use oclaw_skills::SkillRegistry;

    fn catalog(yaml: &str) -> BotCatalog {
        let mut c = BotCatalog::default();
        c.load_yaml(
            "t.yaml",
            yaml,
            &SkillRegistry::builtin(),
            &TemplateEngine::default(),
        )
        .unwrap();
        c
    }

    #[test]
    fn a_snapshot_taken_before_a_reload_keeps_the_old_bots() {
        let one = "metadata: {name: a}\nspec:\n  steps: [{uses: log, with: {message: one}}]\n---\nmetadata: {name: b}\nspec: {}\n";
        let two = "metadata: {name: a}\nspec:\n  steps: [{uses: log, with: {message: two}}]\n---\nmetadata: {name: c}\nspec: {}\n";
        let live = LiveCatalog::new(catalog(one));
        let before = live.load();
        let running = before.get("a").unwrap();
        let d = live.replace(catalog(two));
        assert_eq!(d.added, ["c"]);
        assert_eq!(d.changed, ["a"]);
        assert_eq!(d.removed, ["b"]);
        assert_eq!(running.doc.spec.steps[0].with["message"], "one");
        assert_eq!(
            live.load().get("a").unwrap().doc.spec.steps[0].with["message"],
            "two"
        );
        assert!(before.get("b").is_some() && live.load().get("b").is_none());
        assert!(live.replace(catalog(two)).is_empty());
    }
}

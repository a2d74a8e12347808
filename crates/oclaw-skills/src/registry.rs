use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::{SkillCall, SkillContext, SkillError};

/// Where a skill comes from (shown by skill listings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkillOrigin {
    BuiltIn,
}

impl std::fmt::Display for SkillOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkillOrigin::BuiltIn => f.write_str("built-in"),
        }
    }
}

/// A named, typed pipeline step.
#[async_trait]
pub trait Skill: Send + Sync {
    fn name(&self) -> &'static str;
    /// One line for listings and docs.
    fn summary(&self) -> &'static str;
    /// Fields `with` may hold; anything else is rejected when the bot is loaded.
    fn fields(&self) -> &'static [&'static str];
    /// Checks that need no template rendering (run when the bot is loaded). `with` holds the
    /// literal (unrendered) values.
    fn check_literal(&self, _with: &Value) -> Result<(), SkillError> {
        Ok(())
    }
    /// Whether the output depends on the input alone, with no effect outside: a retry may
    /// simply run it again, so no checkpoint is written after it (one write fewer per step).
    fn pure(&self) -> bool {
        false
    }
    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError>;
}

/// Every skill a node can run, by name.
#[derive(Clone)]
pub struct SkillRegistry {
    skills: BTreeMap<&'static str, (Arc<dyn Skill>, SkillOrigin)>,
}

impl SkillRegistry {
    /// The built-in skills.
    pub fn builtin() -> SkillRegistry {
        let mut r = SkillRegistry {
            skills: BTreeMap::new(),
        };
        let builtins: Vec<Arc<dyn Skill>> = vec![
            Arc::new(crate::http_request::HttpRequest),
            Arc::new(crate::http_request::NotifyWebhook),
            Arc::new(crate::transform::Transform),
            Arc::new(crate::template::Template),
            Arc::new(crate::log::Log),
            Arc::new(crate::sleep::Sleep),
            Arc::new(crate::kv::KvGet),
            Arc::new(crate::kv::KvSet),
            Arc::new(crate::faq::FaqMatch::default()),
            Arc::new(crate::enqueue::TaskEnqueue),
        ];
        for s in builtins {
            r.register(s, SkillOrigin::BuiltIn);
        }
        r
    }

    pub fn register(&mut self, skill: Arc<dyn Skill>, origin: SkillOrigin) {
        self.skills.insert(skill.name(), (skill, origin));
    }

    /// The skill called `name`, or an error that lists what exists.
    pub fn get(&self, name: &str) -> Result<Arc<dyn Skill>, String> {
        match self.skills.get(name) {
            Some((s, _)) => Ok(s.clone()),
            None => {
                let names: Vec<&str> = self.skills.keys().copied().collect();
                Err(format!(
                    "unknown skill `{name}`{}; available: {}",
                    oclaw_core::suggest::hint(name, &names),
                    names.join(", ")
                ))
            }
        }
    }

    /// Name, origin and summary of every skill, sorted by name.
    pub fn list(&self) -> Vec<(&'static str, SkillOrigin, &'static str)> {
        self.skills
            .iter()
            .map(|(n, (s, o))| (*n, o.clone(), s.summary()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_skill_lists_and_suggests() {
        let r = SkillRegistry::builtin();
        let err = r.get("http.reqest").err().unwrap();
        assert!(err.contains("did you mean `http.request`"), "{err}");
        assert!(err.contains("kv.get"));
        assert!(r.get("transform").is_ok());
        assert_eq!(r.list().len(), 10);
    }
}

//! The skill registry: every skill a pipeline step may name (`type:`), built-in, from a plugin or
//! from an MCP server, with where it comes from; one place to look a skill up by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::{SkillCall, SkillContext, SkillError};

/// Where a skill comes from (shown by skill listings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkillOrigin {
    BuiltIn,
    /// A WebAssembly plugin, at the version loaded now.
    Plugin {
        name: String,
        version: String,
    },
    /// A tool of an MCP server.
    Mcp {
        server: String,
    },
}

impl std::fmt::Display for SkillOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkillOrigin::BuiltIn => f.write_str("built-in"),
            SkillOrigin::Plugin { name, version } => write!(f, "plugin {name}@{version}"),
            SkillOrigin::Mcp { server } => write!(f, "mcp {server}"),
        }
    }
}

/// A `&'static str` for a name known only at run time (plugin and MCP skill names and
/// summaries). Each distinct string is kept once for the life of the process, so reloading a
/// plugin does not grow memory.
pub fn intern(s: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(found) = names.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// A named, typed pipeline step.
#[async_trait]
pub trait Skill: Send + Sync {
    fn name(&self) -> &'static str;
    /// One line for listings and docs.
    fn summary(&self) -> &'static str;
    /// Fields `with` may hold; anything else is rejected when the bot is loaded.
    fn fields(&self) -> &'static [&'static str];
    /// Fields of `with` that name a file: a literal relative path is resolved from the bot's
    /// file when the bot is loaded, and a missing file is refused then.
    fn file_fields(&self) -> &'static [&'static str] {
        &[]
    }
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
    /// Where the skill comes from; plugins answer with the version loaded now.
    fn origin(&self) -> SkillOrigin {
        SkillOrigin::BuiltIn
    }
    /// JSON Schema of `with`, offered to a model when an agent may call the skill as a tool.
    /// By default an object of the skill's `fields`.
    fn input_schema(&self) -> Value {
        let properties: serde_json::Map<String, Value> = self
            .fields()
            .iter()
            .map(|f| (f.to_string(), serde_json::json!({})))
            .collect();
        serde_json::json!({"type": "object", "properties": properties, "additionalProperties": false})
    }
    /// Skills this one calls with parts of its `with` (an agent's tools with preset fields):
    /// `(JSON pointer of that part, skill name)`, so loading checks their file fields too.
    fn nested_calls(&self, _with: &Value) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Whether a call changes something outside the task (calls out, notifies, enqueues): an
    /// agent calls such a tool only when its bot allows it by name (`side_effects`).
    fn side_effects(&self) -> bool {
        false
    }
    /// Whether the step parks its task (`wait`, `approval`, `timer`, `bot.call`): `run` checks
    /// the rendered `with` and answers the wait it asks for, which the engine parks the task on.
    fn parks(&self) -> bool {
        false
    }
    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError>;
}

/// Every skill a node can run, by name.
#[derive(Clone)]
pub struct SkillRegistry {
    skills: BTreeMap<&'static str, Arc<dyn Skill>>,
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
            Arc::new(crate::switch::Switch),
            Arc::new(crate::waits::Wait),
            Arc::new(crate::waits::Approval),
            Arc::new(crate::waits::Timer),
            Arc::new(crate::waits::BotCall),
            Arc::new(crate::waits::EventEmit::default()),
        ];
        for s in builtins {
            r.register(s);
        }
        r
    }

    /// Adds a skill; a skill of the same name is replaced.
    pub fn register(&mut self, skill: Arc<dyn Skill>) {
        self.skills.insert(skill.name(), skill);
    }

    /// Whether a skill of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.skills.contains_key(name)
    }

    /// The skill called `name`, or an error that lists what exists.
    pub fn get(&self, name: &str) -> Result<Arc<dyn Skill>, String> {
        match self.skills.get(name) {
            Some(s) => Ok(s.clone()),
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
            .map(|(n, s)| (*n, s.origin(), s.summary()))
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
        assert_eq!(r.list().len(), 16);
    }
}

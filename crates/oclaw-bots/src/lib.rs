//! The bots of OpenClaw as loaded: the catalogue (bot YAML inline in the node config, from a
//! folder, or the built-in examples, each checked against the skill registry when it loads), the
//! template engine the steps and replies use, and the parsed form of every trigger a bot declares
//! ([`triggers`]). The executor (`oclaw-engine`), the scheduler and the channels read bots from
//! here; nothing here runs a task.

pub mod catalog;
pub mod templates;
pub mod triggers;

pub use catalog::{BotCatalog, BotLoadError, LoadedBot};

//! The bots of OpenClaw as loaded: the catalogue (bot YAML inline in the node config, from a
//! folder, or the built-in examples, each checked against the skill registry when it loads), the
//! template engine the steps and replies use, and the parsed form of every trigger a bot declares
//! ([`triggers`]), and the live catalogue a node swaps when its bot files change ([`live`]).
//! The executor (`oclaw-engine`), the scheduler and the channels read bots from
//! here; nothing here runs a task.

pub mod catalog;
pub mod live;
pub mod templates;
pub mod triggers;

pub use catalog::{BotCatalog, BotLoadError, LoadedBot};
pub use live::{CatalogDiff, LiveCatalog};

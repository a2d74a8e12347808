//! A node: the store, the bot catalogue, the worker, the scheduler and the API put together,
//! started, and stopped gracefully. Also the built-in benchmarks (`oclaw bench`).

pub mod bench;
pub mod bench_chat;
pub mod bench_http;
pub mod bench_plugin;
mod examples;
mod loading;
pub mod monitoring;
mod serve;

pub use examples::EXAMPLE_BOTS;
pub use loading::{
    build_catalog, build_skills, open_configured_store, CatalogSource, NodeError, NodeSkills,
};
pub use serve::{serve, Components, ServeOptions, HEARTBEAT};

//! A node: the store, the bot catalogue, the worker, the scheduler and the API put together,
//! started, and stopped gracefully. The benchmarks that drive a node live in `oclaw-bench`.

mod banner;
mod components;
mod examples;
mod loading;
mod oidc;
mod reload;
mod serve;
mod tls;

pub use components::{Components, HEARTBEAT};
pub use examples::{example_yaml, EXAMPLE_BOTS};
pub use loading::{
    build_catalog, build_skills, open_configured_store, CatalogSource, NodeError, NodeSkills,
};
pub use serve::{serve, ServeOptions};

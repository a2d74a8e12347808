//! The execution side of OpenClaw: the bot catalogue (loading and validating bot YAML), the
//! template engine, the pipeline executor that runs a bot's steps for one task, and the worker
//! runtime that claims, runs, heartbeats and completes tasks in batches.

pub mod broker_triggers;
pub mod catalog;
pub mod conversation;
mod pipeline;
pub mod platform_triggers;
pub mod templates;
pub mod triggers;
pub mod webhooks;
mod worker;

pub use catalog::{BotCatalog, BotLoadError, LoadedBot};
pub use pipeline::{run_pipeline, RunFailure, Runtime};
pub use worker::{stopped, Worker, WorkerOptions, WorkerReport, WorkerStats};

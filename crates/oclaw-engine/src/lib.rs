//! The execution side of OpenClaw: the pipeline executor that runs a bot's steps (from the
//! catalogue in `oclaw-bots`) for one task, the conversation memory those steps share, and the
//! worker runtime that claims, runs, heartbeats and completes tasks in batches.

pub mod conversation;
mod metrics;
mod pipeline;
mod worker;

pub use metrics::WorkerInfo;
pub use pipeline::{run_pipeline, Finish, ParkRequest, RunFailure, Runtime, REVISIONS};
pub use worker::{stopped, Worker, WorkerOptions, WorkerReport, WorkerStats};

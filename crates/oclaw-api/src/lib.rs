//! The HTTP API of a node: `/v1` routes for tasks, bots and queues, `/healthz`, `/readyz`,
//! and the demo data the example bots read. Errors use one shape with an `OC-2xxx`/`OC-4xxx` code.

pub mod audit;
pub mod auth;
mod body;
mod error;
pub mod oidc;
pub mod openapi;
pub mod quotas;
mod routes;
mod state;
mod trace;
pub mod ui;

pub use auth::{check_listen_safety, ListenSafety};
pub use error::ApiError;
pub use routes::conversations::Hub as ConversationHub;
pub use routes::{probe_router, router};
pub use state::{ApiState, WorkerInfo};

//! The Kubernetes driver: the manifests a cluster becomes (`render`, always built: `--dry-run`
//! needs no client), and with the `kubernetes` feature the driver that applies them by
//! server-side apply (`driver`) and its canary rollouts (`canary`).

#[cfg(feature = "kubernetes")]
pub mod canary;
#[cfg(feature = "kubernetes")]
mod driver;
pub mod render;
#[cfg(feature = "kubernetes")]
mod status;

#[cfg(feature = "kubernetes")]
pub use driver::{KubeDriver, FIELD_MANAGER};
pub use render::*;

//! Cluster operations: the `OpenClawCluster` file (the seed's §3.1, accepted exactly as written,
//! with optional extensions), its validation, and the pure step of each driver that turns it into
//! the objects to apply (for Kubernetes: manifests). Applying, supervising and upgrading are the
//! drivers' other steps.

pub mod driver;
pub mod kubernetes;
pub mod local;
pub mod model;
pub mod nomad;
pub use oclaw_core::quantity;
pub mod rollout;

pub use model::{ClusterError, OpenClawCluster};

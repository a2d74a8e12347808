//! Cluster operations: the `OpenClawCluster` file (the deployment guide's, accepted exactly as
//! written, with optional extensions) and its validation (`model`); the driver trait and its
//! pipeline (`driver`); the drivers, one folder each (`drivers/{local,kubernetes}`,
//! `drivers/nomad.rs`) and the enum that picks one ([`AnyDriver`]); the release orchestration
//! on any driver (`release`: deploy, upgrade, rollback, canary, teardown); the canary state
//! machine (`rollout`) and the metrics it reads (`analysis`); `diagnose` and `upgrade_checks`.
//! Nothing here prints but the supervisor's own log: commands get progress through
//! [`release::Progress`] and reports as values.

pub mod analysis;
pub mod diagnose;
pub mod driver;
pub mod drivers;
pub mod model;
pub use oclaw_core::quantity;
pub mod release;
pub mod revision;
pub mod rollout;
pub mod upgrade_checks;

pub use drivers::kubernetes::render as kubernetes;
pub use drivers::local::render as local;
pub use drivers::nomad;
pub use drivers::{AnyDriver, DriverKind};
pub use model::{ClusterError, OpenClawCluster};

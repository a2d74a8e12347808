//! The release commands, the same on every driver: `deploy core`, `upgrade --rollout-strategy
//! all-in --confirm`, `rollback --revision N`, a canary (`upgrade --rollout-strategy canary`)
//! and `teardown`. Each deploy is a new revision recorded by the driver, then one run of the
//! driver pipeline ([`crate::driver::converge`]), then — with a wait — the rollout watched until
//! every replica of every component runs the new revision and is ready; when it is not within
//! the wait, the revision is marked failed and the one deployed before is deployed again (as a
//! new revision, as every rollback is).
//!
//! Nothing here prints: progress lines and the result document go to a [`Progress`] the command
//! line gives (stdout, or stderr when the result is JSON).

mod canary;
mod deploy;
mod teardown;

pub use canary::{
    canary_in_progress, rollout_progress, start_canary, turn, upgrade, CanaryRequest,
    RolloutPlatform,
};
pub use deploy::{deploy, rollback, run_pipeline, upgrade_all_in, wait_rolled, Deploy};
pub use teardown::{teardown, DatabaseAfter, TornDown};

use crate::driver::RevisionStatus;
use crate::driver::{DriverError, Revision};
use crate::model::OpenClawCluster;

/// Where a release command's progress and result go.
pub trait Progress: Sync {
    /// A progress line.
    fn say(&self, line: &str);
    /// A line for the operator beside the progress (a rollback starting, a warning).
    fn note(&self, line: &str);
    /// The command's result, one JSON document (shown with `-o json`).
    fn result(&self, value: &serde_json::Value);
}

/// A cluster file's text, parsed (errors carry the file's own code and location).
pub fn parse(cluster_text: &str) -> Result<OpenClawCluster, DriverError> {
    OpenClawCluster::parse("cluster file", cluster_text).map_err(DriverError::from)
}

/// The revision deployed now, in `history`.
pub fn deployed<'a>(history: &'a [Revision], namespace: &str) -> Result<&'a Revision, DriverError> {
    history
        .iter()
        .rev()
        .find(|r| r.status == RevisionStatus::Deployed)
        .ok_or_else(|| {
            DriverError::unavailable(format!(
                "nothing is deployed in {namespace}; run `oclaw deploy core` first"
            ))
        })
}

/// Seconds since the epoch, as the rollout state machine counts time.
pub(crate) fn unix_now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

//! A cluster's history: each revision as recorded (what was deployed, by which command), where
//! it stands, and what marking one deployed does to the one before it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::driver::RenderOptions;
use crate::model::OpenClawCluster;

/// Where a revision stands; only this changes once a revision is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevisionStatus {
    /// Recorded, not yet rolled out.
    Pending,
    /// Running on a share of the pods, under analysis.
    Canary,
    /// What the cluster runs.
    Deployed,
    /// Deployed once, replaced by a later revision.
    Superseded,
    /// Did not roll out (or was rolled back).
    Failed,
}

impl RevisionStatus {
    pub const ALL: [RevisionStatus; 5] = [
        RevisionStatus::Pending,
        RevisionStatus::Canary,
        RevisionStatus::Deployed,
        RevisionStatus::Superseded,
        RevisionStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RevisionStatus::Pending => "pending",
            RevisionStatus::Canary => "canary",
            RevisionStatus::Deployed => "deployed",
            RevisionStatus::Superseded => "superseded",
            RevisionStatus::Failed => "failed",
        }
    }

    /// The status a record names, if it is one.
    pub fn parse(s: &str) -> Option<RevisionStatus> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for RevisionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The command that made a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseAction {
    Deploy,
    Upgrade,
    Rollback,
}

impl ReleaseAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseAction::Deploy => "deploy",
            ReleaseAction::Upgrade => "upgrade",
            ReleaseAction::Rollback => "rollback",
        }
    }
}

impl std::fmt::Display for ReleaseAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One immutable entry of a cluster's history: what was deployed, by which action. Its
/// cluster file is stored beside it; only `status` ever changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub revision: u64,
    pub created_at: DateTime<Utc>,
    pub action: ReleaseAction,
    pub version: String,
    pub components: Vec<String>,
    pub ha: bool,
    pub status: RevisionStatus,
    pub description: String,
}

impl Revision {
    /// The next revision after `history` (numbers start at 1 and never repeat).
    pub fn next(
        history: &[Revision],
        cluster: &OpenClawCluster,
        action: ReleaseAction,
        options: &RenderOptions,
        description: String,
    ) -> Revision {
        Revision {
            revision: history.iter().map(|r| r.revision).max().unwrap_or(0) + 1,
            created_at: Utc::now(),
            action,
            version: cluster.version(),
            components: options.components.clone(),
            ha: options.ha,
            status: RevisionStatus::Pending,
            description,
        }
    }
}

/// What marking revision `n` with `status` changes: `n` itself, and when `n` becomes
/// `deployed`, the revision deployed before it becomes `superseded`.
pub fn mark_plan(
    history: &[Revision],
    n: u64,
    status: RevisionStatus,
) -> Vec<(u64, RevisionStatus)> {
    use RevisionStatus::{Deployed, Superseded};
    history
        .iter()
        .filter_map(|r| {
            if r.revision == n {
                (r.status != status).then_some((n, status))
            } else if status == Deployed && r.status == Deployed {
                Some((r.revision, Superseded))
            } else {
                None
            }
        })
        .collect()
}

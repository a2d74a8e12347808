//! `oclaw teardown`: a cluster's objects removed from its platform. Locally the supervisor stops
//! (and its pods with it); on Kubernetes every object of the last revision's cluster is deleted
//! and its Namespace and revision history stay, so a later deploy continues the numbering.

use oclaw_core::ErrorCode;

use super::Progress;
use crate::driver::DriverError;
use crate::drivers::DriverKind;

/// What a teardown removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TornDown {
    /// The local supervisor that was stopped; `None` when none was running.
    Supervisor(Option<u32>),
    /// On Kubernetes: the objects deleted, the cluster's name, the revisions kept.
    Objects {
        deleted: usize,
        cluster: String,
        revisions: u64,
    },
}

/// Tears down the cluster in `namespace` (`confirm` is required beyond the local driver).
pub async fn teardown(
    kind: DriverKind,
    namespace: &str,
    confirm: bool,
    p: &dyn Progress,
) -> Result<TornDown, DriverError> {
    if kind == DriverKind::Local {
        return crate::drivers::local::process::stop_supervisor(namespace)
            .map(TornDown::Supervisor);
    }
    if !confirm {
        return Err(DriverError::new(
            ErrorCode::InvalidField,
            format!("teardown deletes every object of the cluster in {namespace}; add --confirm"),
        ));
    }
    if kind == DriverKind::Nomad {
        return Err(crate::drivers::nomad::not_built());
    }
    #[cfg(feature = "kubernetes")]
    {
        use crate::driver::{prune_plan, Driver, COMPONENTS};
        let d = crate::drivers::kubernetes::KubeDriver::connect(namespace).await?;
        let Some(last) = d.revisions().await?.pop() else {
            return Err(DriverError::unavailable(format!(
                "no cluster is recorded in {namespace}"
            )));
        };
        let cluster = super::parse(&d.cluster_text(last.revision).await?)?;
        let all: Vec<String> = COMPONENTS.iter().map(|c| c.to_string()).collect();
        let observed = d.observe(&cluster).await?;
        let plan = prune_plan(&observed, &[], &all);
        for o in &plan {
            d.delete(o).await?;
            p.say(&format!("  deleted {o}"));
        }
        d.delete_rollout(&cluster.metadata.name).await?;
        Ok(TornDown::Objects {
            deleted: plan.len(),
            cluster: cluster.metadata.name,
            revisions: last.revision,
        })
    }
    #[cfg(not(feature = "kubernetes"))]
    {
        let _ = p;
        Err(crate::drivers::kubernetes_not_built())
    }
}

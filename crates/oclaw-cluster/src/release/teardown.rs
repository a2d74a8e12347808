//! `oclaw teardown`: a cluster's objects removed from its platform. Locally the supervisor stops
//! (and its pods with it), then the cluster's own database if it has one (its data kept unless
//! `purge`); on Kubernetes every object of the last revision's cluster is deleted
//! and its Namespace and revision history stay, so a later deploy continues the numbering.

use oclaw_core::ErrorCode;

use super::Progress;
use crate::driver::DriverError;
use crate::drivers::DriverKind;

/// What a teardown removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TornDown {
    /// Locally: the supervisor that was stopped (`None` when none was running), and what
    /// became of the cluster's own database.
    Local {
        supervisor: Option<u32>,
        database: DatabaseAfter,
    },
    /// On Kubernetes: the objects deleted, the cluster's name, the revisions kept.
    Objects {
        deleted: usize,
        cluster: String,
        revisions: u64,
    },
}

/// The cluster's own database after a local teardown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseAfter {
    /// The cluster uses an outside database (or had none made).
    None,
    /// Stopped, its data kept for the next `init`.
    Stopped,
    /// Stopped and its data deleted (`--purge`).
    Purged,
}

/// Tears down the cluster in `namespace` (`confirm` is required beyond the local driver;
/// `purge` deletes the local cluster's own database).
pub async fn teardown(
    kind: DriverKind,
    namespace: &str,
    confirm: bool,
    purge: bool,
    p: &dyn Progress,
) -> Result<TornDown, DriverError> {
    if kind == DriverKind::Local {
        use crate::drivers::local::{database::Database, process, record::cluster_dir};
        let supervisor = process::stop_supervisor(namespace)?;
        let db = Database::of(&cluster_dir(namespace));
        let database = match (db.url().is_some(), purge) {
            (false, _) => DatabaseAfter::None,
            (true, false) => {
                db.stop()?;
                DatabaseAfter::Stopped
            }
            (true, true) => {
                db.purge()?;
                DatabaseAfter::Purged
            }
        };
        return Ok(TornDown::Local {
            supervisor,
            database,
        });
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

//! The drivers, one folder each: `local` (supervised processes on this host), `kubernetes`
//! (manifests; applying them through the API server is behind the `kubernetes` cargo feature,
//! on by default) and `nomad` (the job rendered; submitting is not built). [`AnyDriver`] is the one
//! the command line picks by name.

pub mod kubernetes;
pub mod local;
pub mod nomad;

use crate::driver::RevisionStatus;
use crate::driver::{
    ClusterStatus, Driver, DriverError, Object, ObjectRef, PodStatus, Release, Revision, Step,
};
use crate::model::OpenClawCluster;

/// Which driver (`--driver`, `OCLAW_DRIVER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    Local,
    Kubernetes,
    Nomad,
}

/// A driver of any kind, opened for one namespace.
pub enum AnyDriver {
    Local(local::LocalDriver),
    #[cfg(feature = "kubernetes")]
    Kubernetes(kubernetes::KubeDriver),
    Nomad(nomad::NomadDriver),
}

/// The answer of a build without the `kubernetes` feature.
#[cfg(not(feature = "kubernetes"))]
pub fn kubernetes_not_built() -> DriverError {
    DriverError::unavailable(
        "this oclaw was built without the kubernetes driver (cargo feature `kubernetes`); render the manifests with --dry-run and apply them with kubectl",
    )
}

impl AnyDriver {
    /// The driver of `kind` for the cluster in `namespace`: the local cluster `init` wrote, the
    /// Kubernetes API server of the current kubeconfig, or Nomad's rendering.
    pub async fn open(kind: DriverKind, namespace: &str) -> Result<AnyDriver, DriverError> {
        Ok(match kind {
            DriverKind::Local => AnyDriver::Local(local::LocalDriver::open(namespace)?),
            #[cfg(feature = "kubernetes")]
            DriverKind::Kubernetes => {
                AnyDriver::Kubernetes(kubernetes::KubeDriver::connect(namespace).await?)
            }
            #[cfg(not(feature = "kubernetes"))]
            DriverKind::Kubernetes => return Err(kubernetes_not_built()),
            DriverKind::Nomad => AnyDriver::Nomad(nomad::NomadDriver),
        })
    }
}

/// `$d.$call` on whichever driver `$self` holds.
macro_rules! each {
    ($self:ident, |$d:ident| $call:expr) => {
        match $self {
            AnyDriver::Local($d) => $call,
            #[cfg(feature = "kubernetes")]
            AnyDriver::Kubernetes($d) => $call,
            AnyDriver::Nomad($d) => $call,
        }
    };
}

impl Driver for AnyDriver {
    fn name(&self) -> &'static str {
        each!(self, |d| d.name())
    }
    fn poll_interval(&self) -> std::time::Duration {
        each!(self, |d| d.poll_interval())
    }
    async fn preflight(&self) -> Result<(), DriverError> {
        each!(self, |d| d.preflight().await)
    }
    async fn observe(&self, cluster: &OpenClawCluster) -> Result<Vec<ObjectRef>, DriverError> {
        each!(self, |d| d.observe(cluster).await)
    }
    fn desired(
        &self,
        cluster: &OpenClawCluster,
        release: &Release,
    ) -> Result<Vec<Object>, DriverError> {
        each!(self, |d| d.desired(cluster, release))
    }
    async fn apply(
        &self,
        objects: &[Object],
        release: &Release,
        progress: &mut dyn FnMut(Step<'_>),
    ) -> Result<(), DriverError> {
        each!(self, |d| d.apply(objects, release, progress).await)
    }
    async fn delete(&self, object: &ObjectRef) -> Result<(), DriverError> {
        each!(self, |d| d.delete(object).await)
    }
    async fn status(&self) -> Result<ClusterStatus, DriverError> {
        each!(self, |d| d.status().await)
    }
    async fn revisions(&self) -> Result<Vec<Revision>, DriverError> {
        each!(self, |d| d.revisions().await)
    }
    async fn record(
        &self,
        revision: &Revision,
        cluster_text: &str,
    ) -> Result<Vec<String>, DriverError> {
        each!(self, |d| d.record(revision, cluster_text).await)
    }
    async fn set_status(&self, revision: u64, status: RevisionStatus) -> Result<(), DriverError> {
        each!(self, |d| d.set_status(revision, status).await)
    }
    async fn cluster_text(&self, revision: u64) -> Result<String, DriverError> {
        each!(self, |d| d.cluster_text(revision).await)
    }
    async fn logs(&self, pod: &str, previous: bool) -> Result<Option<String>, DriverError> {
        each!(self, |d| d.logs(pod, previous).await)
    }
    async fn metrics(&self, pod: &PodStatus) -> Result<Option<String>, DriverError> {
        each!(self, |d| d.metrics(pod).await)
    }
}

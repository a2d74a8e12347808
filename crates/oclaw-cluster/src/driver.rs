//! What every driver does, as one pipeline: **observe** the objects this cluster has on its
//! platform → compute the **desired** objects from the cluster file (pure) → **apply** them →
//! **prune** what was observed and is no longer desired → report **status**. A driver also keeps
//! the cluster's revision history where the cluster lives (files for the local driver,
//! ConfigMaps on Kubernetes), so `upgrade history` and `rollback` work the same on each.
//!
//! The pipeline ([`converge`]) and the decisions in it ([`prune_plan`], [`mark_plan`],
//! [`ClusterStatus::rolled_out`]) are here, without I/O; the drivers (in `drivers/`)
//! implement the platform steps.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use oclaw_core::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::OpenClawCluster;
pub use crate::revision::{mark_plan, ReleaseAction, Revision, RevisionStatus};

/// The components a deployment may name.
pub const COMPONENTS: &[&str] = &["api-server", "scheduler", "worker"];

/// What to render.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Components to include (`deploy core --components`); shared objects always come.
    pub components: Vec<String>,
    /// `--ha-mode`: replicas as the file says; false runs one of each (and no HPA floor above 1).
    pub ha: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            components: COMPONENTS.iter().map(|c| c.to_string()).collect(),
            ha: true,
        }
    }
}

/// One object a driver applies: a Kubernetes manifest, a local pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub id: ObjectRef,
    pub body: Value,
}

impl Object {
    /// A manifest, identified by its own fields.
    pub fn manifest(body: Value) -> Object {
        Object {
            id: ObjectRef::of_manifest(&body),
            body,
        }
    }
}

/// Which object: enough to apply, find and delete it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// The component it belongs to (`api-server`, `scheduler`, `worker`); none when shared.
    pub component: Option<String>,
}

impl ObjectRef {
    /// The identity of a manifest (`apiVersion`, `kind`, `metadata.name`, component label).
    pub fn of_manifest(o: &Value) -> ObjectRef {
        let s = |v: &Value| v.as_str().unwrap_or("").to_string();
        ObjectRef {
            api_version: s(&o["apiVersion"]),
            kind: s(&o["kind"]),
            name: s(&o["metadata"]["name"]),
            component: o["metadata"]["labels"]["app.kubernetes.io/component"]
                .as_str()
                .map(str::to_string),
        }
    }

    fn key(&self) -> (&str, &str, &str) {
        (&self.api_version, &self.kind, &self.name)
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// What one run of the pipeline deploys.
#[derive(Debug, Clone)]
pub struct Release {
    /// The revision the objects carry (0: none, as `init` applies the shared objects).
    pub revision: u64,
    pub options: RenderOptions,
    /// Replace every pod at once instead of one at a time (`rollback --force`).
    pub force: bool,
}

/// A driver step that failed, with the code the command reports and, where a client library
/// failed beneath it, that error as its source.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct DriverError {
    pub code: ErrorCode,
    pub message: String,
    #[source]
    pub source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

/// Two errors are the same when they report the same code and message.
impl PartialEq for DriverError {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code && self.message == other.message
    }
}

impl DriverError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        DriverError {
            code,
            message: message.into(),
            source: None,
        }
    }

    /// Whether the operator's input is at fault (the cluster file or configuration, OC-1xxx and
    /// OC-5001, or an argument) rather than the platform: commands exit 2 for it, 1 otherwise.
    pub fn bad_input(&self) -> bool {
        self.code.code().starts_with("OC-1")
            || matches!(
                self.code,
                ErrorCode::ClusterInvalid | ErrorCode::InvalidField
            )
    }

    /// The same error, caused by `source`.
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// The platform cannot be reached or refused the step.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::DriverUnavailable, message)
    }
}

/// A cluster file that does not parse: its location and message (the code stays the file's).
impl From<crate::model::ClusterError> for DriverError {
    fn from(e: crate::model::ClusterError) -> Self {
        let text = e.to_string();
        let message = text
            .strip_prefix(e.code.code())
            .unwrap_or(&text)
            .trim_start()
            .to_string();
        DriverError::new(e.code, message)
    }
}

/// One pod as its platform reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PodStatus {
    pub name: String,
    pub component: String,
    pub ready: bool,
    /// `Pending`, `Running`, `CrashLoopBackOff`, or the platform's reason.
    pub status: String,
    pub restarts: u32,
    pub started_at: Option<DateTime<Utc>>,
    /// Why its container last stopped (`killed by signal 9 (SIGKILL)`, `OOMKilled (exit 137)`).
    pub last_exit: Option<String>,
    /// The revision it runs, when the platform says.
    pub revision: Option<u64>,
    /// Port of its API (api-server) or probes and metrics.
    #[serde(default)]
    pub port: Option<u16>,
    /// Why it is not running, when the platform says (`0/3 nodes are available: …`).
    #[serde(default)]
    pub detail: Option<String>,
}

/// One component's replicas, counted as `kubectl rollout status` counts them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub name: String,
    /// Replicas it should have.
    pub desired: u32,
    /// Replicas it has, on any revision.
    pub current: u32,
    /// Replicas on the revision being rolled out.
    pub updated: u32,
    /// Replicas on that revision that are ready.
    pub ready: u32,
}

impl ComponentStatus {
    /// Every replica runs the new revision and is ready, and no old one is left.
    pub fn rolled_out(&self) -> bool {
        self.updated >= self.desired && self.ready >= self.desired && self.current <= self.desired
    }
}

/// One server of the cluster's own database, as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseMember {
    pub name: String,
    /// `leader` (takes writes) or `replica`.
    pub role: String,
    /// `Running` or `Stopped`.
    pub status: String,
    pub port: u16,
    pub pid: Option<u32>,
}

/// A cluster as its driver sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub driver: String,
    pub namespace: String,
    /// The revision the platform is asked to run (0 when none is recorded).
    pub revision: u64,
    pub components: Vec<ComponentStatus>,
    pub pods: Vec<PodStatus>,
    /// A canary rollout in progress.
    #[serde(default)]
    pub rollout: Option<crate::rollout::Rollout>,
    /// Things the operator should know (the local supervisor is not running, …).
    pub warnings: Vec<String>,
    /// The cluster's own database servers (none when it uses an outside database).
    #[serde(default)]
    pub database: Vec<DatabaseMember>,
}

impl ClusterStatus {
    /// Every component is rolled out (and there is at least one).
    pub fn rolled_out(&self) -> bool {
        !self.components.is_empty() && self.components.iter().all(|c| c.rolled_out())
    }

    /// (ready, desired) summed over the components.
    pub fn ready_of_desired(&self) -> (u32, u32) {
        self.components.iter().fold((0, 0), |(r, d), c| {
            (r + c.ready.min(c.desired), d + c.desired)
        })
    }
}

/// The observed objects to delete: those no longer desired that belong to a deployed
/// component (or to none: shared objects). Objects of components left out of this deploy stay;
/// namespaces are never pruned.
pub fn prune_plan(
    observed: &[ObjectRef],
    desired: &[Object],
    components: &[String],
) -> Vec<ObjectRef> {
    let wanted: BTreeSet<(&str, &str, &str)> = desired.iter().map(|o| o.id.key()).collect();
    let mut out: Vec<ObjectRef> = observed
        .iter()
        .filter(|o| o.kind != "Namespace")
        .filter(|o| match &o.component {
            Some(c) => components.iter().any(|d| d == c),
            None => true,
        })
        .filter(|o| !wanted.contains(&o.key()))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Progress of a pipeline run, for the command to show.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    Observed(usize),
    Applied {
        index: usize,
        total: usize,
        object: &'a ObjectRef,
    },
    Pruned(&'a ObjectRef),
}

/// What a pipeline run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Converged {
    pub applied: Vec<ObjectRef>,
    pub pruned: Vec<ObjectRef>,
    pub status: ClusterStatus,
}

/// A platform the cluster runs on. The steps are called by [`converge`] in pipeline order;
/// the history methods by the release commands (deploy, upgrade, rollback, history).
#[allow(async_fn_in_trait)]
pub trait Driver {
    /// `local`, `kubernetes`, `nomad`.
    fn name(&self) -> &'static str;
    /// How often to read status while waiting for a rollout.
    fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(250)
    }
    /// Whether the platform can take a deploy now (checked before a revision is recorded).
    async fn preflight(&self) -> Result<(), DriverError> {
        Ok(())
    }
    /// Step 1: the objects `cluster` has on the platform now.
    async fn observe(&self, cluster: &OpenClawCluster) -> Result<Vec<ObjectRef>, DriverError>;
    /// Step 2 (pure): the objects `cluster` wants for `release`.
    fn desired(
        &self,
        cluster: &OpenClawCluster,
        release: &Release,
    ) -> Result<Vec<Object>, DriverError>;
    /// Step 3: make the platform run `objects` (in order), reporting each.
    async fn apply(
        &self,
        objects: &[Object],
        release: &Release,
        progress: &mut dyn FnMut(Step<'_>),
    ) -> Result<(), DriverError>;
    /// Step 4: delete one object (prune).
    async fn delete(&self, object: &ObjectRef) -> Result<(), DriverError>;
    /// Step 5: what runs, component by component and pod by pod.
    async fn status(&self) -> Result<ClusterStatus, DriverError>;

    /// The recorded revisions, oldest first.
    async fn revisions(&self) -> Result<Vec<Revision>, DriverError>;
    /// Stores a new revision with its cluster file; answers warnings for the operator.
    async fn record(
        &self,
        revision: &Revision,
        cluster_text: &str,
    ) -> Result<Vec<String>, DriverError>;
    /// Changes a stored revision's status (the only thing that changes).
    async fn set_status(&self, revision: u64, status: RevisionStatus) -> Result<(), DriverError>;
    /// The cluster file a revision deployed.
    async fn cluster_text(&self, revision: u64) -> Result<String, DriverError>;

    /// A pod's log (with `previous`, the run before its last restart); `None` when it has none.
    async fn logs(&self, pod: &str, previous: bool) -> Result<Option<String>, DriverError>;
    /// A pod's `/metrics` page; `None` when it does not answer.
    async fn metrics(&self, pod: &PodStatus) -> Result<Option<String>, DriverError>;
}

/// One pipeline run: observe → desired → apply → prune → status.
pub async fn converge<D: Driver>(
    driver: &D,
    cluster: &OpenClawCluster,
    release: &Release,
    progress: &mut dyn FnMut(Step<'_>),
) -> Result<Converged, DriverError> {
    let observed = driver.observe(cluster).await?;
    progress(Step::Observed(observed.len()));
    let desired = driver.desired(cluster, release)?;
    driver.apply(&desired, release, progress).await?;
    let prune = prune_plan(&observed, &desired, &release.options.components);
    for o in &prune {
        driver.delete(o).await?;
        progress(Step::Pruned(o));
    }
    let status = driver.status().await?;
    Ok(Converged {
        applied: desired.into_iter().map(|o| o.id).collect(),
        pruned: prune,
        status,
    })
}

/// Marks revision `n` with `status` (and supersedes the one deployed before).
pub async fn mark<D: Driver>(
    driver: &D,
    n: u64,
    status: RevisionStatus,
) -> Result<(), DriverError> {
    let history = driver.revisions().await?;
    for (r, s) in mark_plan(&history, n, status) {
        driver.set_status(r, s).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::future::Future;

    use super::*;
    use crate::model::SEED_EXAMPLE;

    fn obj(kind: &str, name: &str, component: Option<&str>) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            component: component.map(str::to_string),
        }
    }

    fn rev(n: u64, status: RevisionStatus) -> Revision {
        Revision {
            revision: n,
            created_at: Utc::now(),
            action: ReleaseAction::Deploy,
            version: "v1".into(),
            components: vec![],
            ha: true,
            status,
            description: String::new(),
        }
    }

    #[test]
    fn prune_takes_what_is_gone_from_deployed_components_only() {
        let desired = vec![Object {
            id: obj("Deployment", "api-server", Some("api-server")),
            body: Value::Null,
        }];
        let observed = vec![
            obj("Deployment", "api-server", Some("api-server")),
            obj("Deployment", "old-api", Some("api-server")),
            obj("Deployment", "worker", Some("worker")),
            obj("ConfigMap", "retired-shared", None),
            obj("Namespace", "oclaw-system", None),
        ];
        let plan = prune_plan(&observed, &desired, &["api-server".into()]);
        assert_eq!(
            plan,
            vec![
                obj("ConfigMap", "retired-shared", None),
                obj("Deployment", "old-api", Some("api-server")),
            ]
        );
    }

    #[test]
    fn a_driver_error_keeps_its_cause() {
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = DriverError::unavailable("listing Deployment on https://k8s").caused_by(cause);
        assert_eq!(e.to_string(), "listing Deployment on https://k8s");
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("refused"));
        assert_eq!(
            e,
            DriverError::unavailable("listing Deployment on https://k8s")
        );
    }

    #[test]
    fn a_deployed_revision_supersedes_the_one_before() {
        use RevisionStatus::*;
        let h = vec![rev(1, Superseded), rev(2, Deployed), rev(3, Pending)];
        assert_eq!(
            mark_plan(&h, 3, Deployed),
            vec![(2, Superseded), (3, Deployed)]
        );
        assert_eq!(mark_plan(&h, 3, Failed), vec![(3, Failed)]);
        assert!(mark_plan(&h, 2, Deployed).is_empty());
        // The records spell each status as the history shows it.
        for s in RevisionStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(RevisionStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn rollout_completes_only_with_every_replica_new_and_ready() {
        let c = |desired, current, updated, ready| ComponentStatus {
            name: "worker".into(),
            desired,
            current,
            updated,
            ready,
        };
        assert!(c(3, 3, 3, 3).rolled_out());
        assert!(!c(3, 4, 3, 3).rolled_out(), "an old replica is left");
        assert!(!c(3, 3, 2, 3).rolled_out());
        assert!(!c(3, 3, 3, 2).rolled_out());
        let s = ClusterStatus {
            components: vec![c(3, 3, 3, 3), c(2, 2, 2, 1)],
            ..Default::default()
        };
        assert!(!s.rolled_out());
        assert_eq!(s.ready_of_desired(), (4, 5));
        assert!(!ClusterStatus::default().rolled_out());
    }

    /// A driver whose platform is a list in memory: records the order of the steps.
    #[derive(Default)]
    struct Memory {
        objects: RefCell<Vec<ObjectRef>>,
        calls: RefCell<Vec<String>>,
    }

    impl Driver for Memory {
        fn name(&self) -> &'static str {
            "memory"
        }
        async fn observe(&self, _: &OpenClawCluster) -> Result<Vec<ObjectRef>, DriverError> {
            self.calls.borrow_mut().push("observe".into());
            Ok(self.objects.borrow().clone())
        }
        fn desired(
            &self,
            cluster: &OpenClawCluster,
            release: &Release,
        ) -> Result<Vec<Object>, DriverError> {
            Ok(crate::kubernetes::render(cluster, &release.options)
                .into_iter()
                .map(Object::manifest)
                .collect())
        }
        async fn apply(
            &self,
            objects: &[Object],
            _: &Release,
            progress: &mut dyn FnMut(Step<'_>),
        ) -> Result<(), DriverError> {
            for (i, o) in objects.iter().enumerate() {
                self.calls.borrow_mut().push(format!("apply {}", o.id));
                if !self.objects.borrow().contains(&o.id) {
                    self.objects.borrow_mut().push(o.id.clone());
                }
                progress(Step::Applied {
                    index: i,
                    total: objects.len(),
                    object: &o.id,
                });
            }
            Ok(())
        }
        async fn delete(&self, object: &ObjectRef) -> Result<(), DriverError> {
            self.calls.borrow_mut().push(format!("delete {object}"));
            self.objects.borrow_mut().retain(|o| o != object);
            Ok(())
        }
        async fn status(&self) -> Result<ClusterStatus, DriverError> {
            self.calls.borrow_mut().push("status".into());
            Ok(ClusterStatus {
                driver: "memory".into(),
                ..Default::default()
            })
        }
        async fn revisions(&self) -> Result<Vec<Revision>, DriverError> {
            Ok(vec![])
        }
        async fn record(&self, _: &Revision, _: &str) -> Result<Vec<String>, DriverError> {
            Ok(Vec::new())
        }
        async fn set_status(&self, _: u64, _: RevisionStatus) -> Result<(), DriverError> {
            Ok(())
        }
        async fn cluster_text(&self, _: u64) -> Result<String, DriverError> {
            Ok(String::new())
        }
        async fn logs(&self, _: &str, _: bool) -> Result<Option<String>, DriverError> {
            Ok(None)
        }
        async fn metrics(&self, _: &PodStatus) -> Result<Option<String>, DriverError> {
            Ok(None)
        }
    }

    /// Runs a future that never waits (the memory driver's).
    fn ready<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the memory driver never waits"),
        }
    }

    #[test]
    fn the_pipeline_observes_applies_prunes_then_reports() {
        let cluster = OpenClawCluster::parse("p.yaml", SEED_EXAMPLE).unwrap();
        let d = Memory::default();
        d.objects.borrow_mut().push(ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "retired".into(),
            component: Some("worker".into()),
        });
        let release = Release {
            revision: 1,
            options: RenderOptions::default(),
            force: false,
        };
        let mut steps = Vec::new();
        let done = ready(converge(&d, &cluster, &release, &mut |s| {
            steps.push(format!("{s:?}"))
        }))
        .unwrap();
        let calls = d.calls.borrow().clone();
        assert_eq!(calls.first().unwrap(), "observe");
        assert_eq!(calls[1], "apply Namespace oclaw-system");
        assert_eq!(calls[calls.len() - 2], "delete Deployment retired");
        assert_eq!(calls.last().unwrap(), "status");
        assert_eq!(done.pruned.len(), 1);
        assert_eq!(done.applied.len(), calls.len() - 3);
        assert!(steps[0].starts_with("Observed(1)"));
        assert!(d.objects.borrow().iter().all(|o| o.name != "retired"));
        // A second run changes nothing: nothing left to prune.
        let again = ready(converge(&d, &cluster, &release, &mut |_| {})).unwrap();
        assert!(again.pruned.is_empty());
    }
}

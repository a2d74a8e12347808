//! The local driver's pipeline steps. Its platform is the cluster directory and the supervisor
//! that `init` started: apply writes `desired.json` (components, HA mode, revision) and the
//! supervisor converges the pods to it; observe and status read the supervisor's record
//! (`state.json`); a pruned pod is one the supervisor has stopped. Revisions are files under
//! `revisions/`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use oclaw_core::ErrorCode;

use super::process::supervisor_pid;
use super::record::{
    cluster_dir, node_yaml, read_json, revision_cluster, revision_files, revisions, revisions_dir,
    save_revision, target_revision, version_binary, write_atomic, write_json, Desired, State,
};
use super::render::desired_pods;
use crate::driver::RevisionStatus;
use crate::driver::{
    ClusterStatus, ComponentStatus, Driver, DriverError, Object, ObjectRef, PodStatus, Release,
    RenderOptions, Revision, Step,
};
use crate::model::OpenClawCluster;

/// The kind of a local pod object.
const POD_API: &str = "oclaw.dev/local";

pub struct LocalDriver {
    pub dir: PathBuf,
    pub namespace: String,
}

fn io(what: impl std::fmt::Display, e: std::io::Error) -> DriverError {
    DriverError::unavailable(format!("{what}: {e}"))
}

impl LocalDriver {
    /// The initialised cluster of `namespace` (`oclaw init` wrote it).
    pub fn open(namespace: &str) -> Result<Self, DriverError> {
        let dir = cluster_dir(namespace);
        if !dir.join("cluster.yaml").exists() {
            return Err(DriverError::unavailable(format!(
                "no local cluster in namespace {namespace} (looked in {}); run `oclaw init --config FILE` first",
                dir.display()
            )));
        }
        Ok(LocalDriver {
            dir,
            namespace: namespace.to_string(),
        })
    }

    fn require_supervisor(&self) -> Result<(), DriverError> {
        match supervisor_pid(&self.dir) {
            Some(_) => Ok(()),
            None => Err(DriverError::unavailable(format!(
                "the supervisor of {} is not running; run `oclaw init` again to start it",
                self.namespace
            ))),
        }
    }

    fn state(&self) -> State {
        read_json(&self.dir.join("state.json")).unwrap_or_default()
    }
}

impl Driver for LocalDriver {
    fn name(&self) -> &'static str {
        "local"
    }

    /// Status is a file the supervisor rewrites every round: cheap to read often.
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(100)
    }

    async fn preflight(&self) -> Result<(), DriverError> {
        self.require_supervisor()
    }

    async fn observe(&self, _: &OpenClawCluster) -> Result<Vec<ObjectRef>, DriverError> {
        self.require_supervisor()?;
        Ok(self
            .state()
            .pods
            .iter()
            .map(|p| ObjectRef {
                api_version: POD_API.into(),
                kind: "Pod".into(),
                name: p.name.clone(),
                component: Some(p.component.clone()),
            })
            .collect())
    }

    fn desired(
        &self,
        cluster: &OpenClawCluster,
        release: &Release,
    ) -> Result<Vec<Object>, DriverError> {
        Ok(desired_pods(cluster, &release.options)
            .into_iter()
            .map(|p| Object {
                id: ObjectRef {
                    api_version: POD_API.into(),
                    kind: "Pod".into(),
                    name: p.name.clone(),
                    component: Some(p.component.clone()),
                },
                body: serde_json::json!({"pod": p, "revision": release.revision}),
            })
            .collect())
    }

    async fn apply(
        &self,
        objects: &[Object],
        release: &Release,
        progress: &mut dyn FnMut(Step<'_>),
    ) -> Result<(), DriverError> {
        self.require_supervisor()?;
        // A cluster file without a database URL: the cluster's own database, made now if it
        // does not exist yet (three replicated members in HA mode).
        let own_database = revision_cluster(&self.dir, release.revision)
            .or_else(|| revision_cluster(&self.dir, 0))
            .is_some_and(|c| c.spec.storage.url.is_none());
        if own_database {
            let (dir, ha) = (self.dir.clone(), release.options.ha);
            let made = tokio::task::spawn_blocking(move || {
                super::database::Database::of(&dir).provision(ha)
            })
            .await
            .map_err(|e| DriverError::unavailable(e.to_string()))??;
            if let Some(note) = made.1 {
                eprintln!("warning: {note}");
            }
        }
        let desired = Desired {
            components: release.options.components.clone(),
            ha: release.options.ha,
            revision: release.revision,
            force: release.force,
            canary: None,
        };
        let path = self.dir.join("desired.json");
        write_json(&path, &desired).map_err(|e| io(path.display(), e))?;
        for (index, o) in objects.iter().enumerate() {
            progress(Step::Applied {
                index,
                total: objects.len(),
                object: &o.id,
            });
        }
        Ok(())
    }

    /// The supervisor stops a pod `desired.json` no longer wants (workers drain first): this
    /// waits until it has.
    async fn delete(&self, object: &ObjectRef) -> Result<(), DriverError> {
        let deadline = Instant::now() + Duration::from_secs(45);
        while self.state().pods.iter().any(|p| p.name == object.name) {
            if Instant::now() > deadline {
                return Err(DriverError::unavailable(format!(
                    "the supervisor did not stop pod {} within 45s",
                    object.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    async fn status(&self) -> Result<ClusterStatus, DriverError> {
        let state = self.state();
        let desired: Desired = read_json(&self.dir.join("desired.json")).unwrap_or_default();
        let want = revision_cluster(&self.dir, desired.revision)
            .or_else(|| revision_cluster(&self.dir, 0))
            .map(|c| {
                desired_pods(
                    &c,
                    &RenderOptions {
                        components: desired.components.clone(),
                        ha: desired.ha,
                    },
                )
            })
            .unwrap_or_default();
        let mut components: Vec<ComponentStatus> = Vec::new();
        for w in &want {
            let i = match components.iter().position(|c| c.name == w.component) {
                Some(i) => i,
                None => {
                    components.push(ComponentStatus {
                        name: w.component.clone(),
                        ..Default::default()
                    });
                    components.len() - 1
                }
            };
            let c = &mut components[i];
            c.desired += 1;
            if let Some(p) = state
                .pods
                .iter()
                .find(|p| p.name == w.name && p.pid.is_some())
            {
                c.current += 1;
                if p.revision == target_revision(w, &want, &desired) {
                    c.updated += 1;
                    c.ready += u32::from(p.ready);
                }
            }
        }
        let mut warnings = Vec::new();
        if supervisor_pid(&self.dir).is_none() {
            warnings.push(
                "the supervisor is not running; this is its last record (run `oclaw init` to start it)"
                    .to_string(),
            );
        }
        Ok(ClusterStatus {
            driver: "local".into(),
            namespace: self.namespace.clone(),
            revision: desired.revision,
            components,
            pods: state
                .pods
                .iter()
                .map(|p| PodStatus {
                    name: p.name.clone(),
                    component: p.component.clone(),
                    ready: p.ready,
                    status: p.status.clone(),
                    restarts: p.restarts,
                    started_at: p.started_at,
                    last_exit: p.last_exit.clone(),
                    revision: Some(p.revision),
                    port: Some(p.port),
                    detail: None,
                })
                .collect(),
            rollout: read_json::<crate::rollout::Rollout>(&self.dir.join("rollout.json"))
                .filter(|r| !r.status.finished()),
            warnings,
            database: super::database::Database::of(&self.dir).members(),
        })
    }

    async fn revisions(&self) -> Result<Vec<Revision>, DriverError> {
        Ok(revisions(&self.dir))
    }

    async fn record(
        &self,
        revision: &Revision,
        cluster_text: &str,
    ) -> Result<Vec<String>, DriverError> {
        let cluster = OpenClawCluster::parse(
            &self.dir.join("cluster.yaml").display().to_string(),
            cluster_text,
        )
        .map_err(DriverError::from)?;
        let version = cluster.version();
        let v = version.trim_start_matches('v');
        let binary = version_binary(v);
        let mut warnings = Vec::new();
        if v != env!("CARGO_PKG_VERSION") && !binary.is_file() {
            warnings.push(format!(
                "no oclaw {v} installed at {}: the pods of revision {} run this binary ({}); install that version's binary there to run it",
                binary.display(),
                revision.revision,
                env!("CARGO_PKG_VERSION")
            ));
        }
        let rd = revisions_dir(&self.dir);
        std::fs::create_dir_all(&rd).map_err(|e| io(rd.display(), e))?;
        let (file, node) = revision_files(&self.dir, revision.revision);
        write_atomic(&file, cluster_text)
            .and_then(|_| write_atomic(&node, &node_yaml(&cluster)))
            .and_then(|_| save_revision(&self.dir, revision))
            .map_err(|e| io(rd.display(), e))?;
        Ok(warnings)
    }

    async fn set_status(&self, revision: u64, status: RevisionStatus) -> Result<(), DriverError> {
        let Some(mut r) = revisions(&self.dir)
            .into_iter()
            .find(|r| r.revision == revision)
        else {
            return Err(DriverError::new(
                ErrorCode::InvalidField,
                format!("{} has no revision {revision}", self.namespace),
            ));
        };
        r.status = status;
        save_revision(&self.dir, &r).map_err(|e| io(self.dir.display(), e))
    }

    async fn cluster_text(&self, revision: u64) -> Result<String, DriverError> {
        let (file, _) = revision_files(&self.dir, revision);
        std::fs::read_to_string(&file).map_err(|e| io(file.display(), e))
    }

    async fn logs(&self, pod: &str, previous: bool) -> Result<Option<String>, DriverError> {
        let name = if previous {
            format!("{pod}.previous.log")
        } else {
            format!("{pod}.log")
        };
        Ok(std::fs::read(self.dir.join("logs").join(name))
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    async fn metrics(&self, pod: &PodStatus) -> Result<Option<String>, DriverError> {
        let Some(port) = pod.port else {
            return Ok(None);
        };
        let page = match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            Ok(r) => r.text().await.ok(),
            Err(_) => None,
        };
        Ok(page)
    }
}

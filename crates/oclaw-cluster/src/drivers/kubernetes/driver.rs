//! The kubernetes driver: the pipeline's platform steps against an API server, through `kube`.
//! Apply is server-side apply (field manager `oclaw`, conflicts forced: the cluster file owns
//! these fields); observe and prune look at the objects labelled managed-by=oclaw and
//! instance=<cluster name>; status reads the Deployments and Pods; the revision history is kept
//! in the namespace as immutable ConfigMaps (`<cluster>-revision-<n>`, labelled
//! `oclaw.dev/revision`), their status in an annotation. The API server comes from `KUBECONFIG`
//! / `~/.kube/config` or the in-cluster service account.

use super::render::{self, REVISION_LABEL, REVISION_STATUS, ROLLOUT_LABEL, TRACK_LABEL};
use super::status::{component_status, pod_status};
use crate::driver::RevisionStatus;
use crate::driver::{
    ClusterStatus, ComponentStatus, Driver, DriverError, Object, ObjectRef, PodStatus, Release,
    Revision, Step,
};
use crate::OpenClawCluster;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use oclaw_core::ErrorCode;
use serde_json::Value;

/// Field manager of everything the driver applies.
pub const FIELD_MANAGER: &str = "oclaw";

/// Kinds the renderer produces: (apiVersion, kind, plural, namespaced). Observe looks at these.
const KINDS: &[(&str, &str, &str, bool)] = &[
    ("v1", "Namespace", "namespaces", false),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    ("v1", "ConfigMap", "configmaps", true),
    ("apps/v1", "Deployment", "deployments", true),
    (
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    ("v1", "Service", "services", true),
    (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        "servicemonitors",
        true,
    ),
    (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        "prometheusrules",
        true,
    ),
    (
        "monitoring.coreos.com/v1",
        "PodMonitor",
        "podmonitors",
        true,
    ),
    // The cluster's own database, for the CloudNativePG operator.
    ("postgresql.cnpg.io/v1", "Cluster", "clusters", true),
    ("v1", "Pod", "pods", true),
];

fn resource(api_version: &str, kind: &str) -> Result<(ApiResource, bool), DriverError> {
    let (_, _, plural, namespaced) = KINDS
        .iter()
        .find(|(v, k, _, _)| *v == api_version && *k == kind)
        .ok_or_else(|| {
            DriverError::unavailable(format!(
                "the driver does not know how to apply {api_version} {kind}"
            ))
        })?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Ok((ApiResource::from_gvk_with_plural(&gvk, plural), *namespaced))
}

fn to_value(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

/// A cluster's objects on one API server.
pub struct KubeDriver {
    pub(super) client: kube::Client,
    pub(super) server: String,
    /// One cluster per namespace: history and status look at every object oclaw manages in it.
    pub(super) namespace: String,
}

impl KubeDriver {
    /// Connects to the API server of the current kubeconfig context (nothing is sent yet).
    pub async fn connect(namespace: &str) -> Result<Self, DriverError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = kube::Config::infer().await.map_err(|e| {
            DriverError::unavailable(format!(
                "no Kubernetes API server configured ({e}); set KUBECONFIG or run inside a cluster, or print the objects with --dry-run"
            ))
        })?;
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| {
            DriverError::unavailable(format!("Kubernetes client for {server}: {e}"))
        })?;
        Ok(KubeDriver {
            client,
            server,
            namespace: namespace.to_string(),
        })
    }

    pub(super) fn api(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Api<DynamicObject>, DriverError> {
        let (ar, namespaced) = resource(api_version, kind)?;
        Ok(if namespaced {
            Api::namespaced_with(self.client.clone(), &self.namespace, &ar)
        } else {
            Api::all_with(self.client.clone(), &ar)
        })
    }

    /// Objects this driver manages; `extra` narrows further.
    pub(super) fn selector(&self, extra: &str) -> String {
        let mut s = "app.kubernetes.io/managed-by=oclaw".to_string();
        if !extra.is_empty() {
            s.push(',');
            s.push_str(extra);
        }
        s
    }

    pub(super) fn failed(&self, what: impl std::fmt::Display, e: kube::Error) -> DriverError {
        DriverError::unavailable(format!("{what} on {}: {e}", self.server)).caused_by(e)
    }

    /// Lists one kind; a kind the server does not serve (no Prometheus operator) is empty.
    pub(super) async fn list(
        &self,
        api_version: &str,
        kind: &str,
        extra: &str,
    ) -> Result<Vec<Value>, DriverError> {
        let lp = ListParams::default().labels(&self.selector(extra));
        match self.api(api_version, kind)?.list(&lp).await {
            Ok(l) => Ok(l.items.iter().map(to_value).collect()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
            Err(e) => Err(self.failed(format_args!("listing {kind}"), e)),
        }
    }

    async fn revision_maps(&self, extra: &str) -> Result<Vec<Value>, DriverError> {
        self.list("v1", "ConfigMap", &format!("{REVISION_LABEL}{extra}"))
            .await
    }

    async fn revision_map(&self, n: u64) -> Result<Value, DriverError> {
        self.revision_maps(&format!("={n}"))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                DriverError::new(
                    ErrorCode::InvalidField,
                    format!(
                        "{} has no revision {n}; see oclaw upgrade history",
                        self.namespace
                    ),
                )
            })
    }
}

impl Driver for KubeDriver {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    /// Each status is two lists on the API server.
    fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(1)
    }

    async fn observe(&self, cluster: &OpenClawCluster) -> Result<Vec<ObjectRef>, DriverError> {
        // This cluster's objects; stored revisions are history, not objects to prune.
        let only = format!(
            "app.kubernetes.io/instance={},!{REVISION_LABEL},!{ROLLOUT_LABEL}",
            cluster.metadata.name
        );
        let mut out = Vec::new();
        for (api_version, kind, _, _) in KINDS.iter().filter(|k| k.3 && k.1 != "Pod") {
            for o in self.list(api_version, kind, &only).await? {
                out.push(ObjectRef::of_manifest(&o));
            }
        }
        Ok(out)
    }

    fn desired(
        &self,
        cluster: &OpenClawCluster,
        release: &Release,
    ) -> Result<Vec<Object>, DriverError> {
        let mut objects = render::render(cluster, &release.options);
        objects.extend(render::prometheus_rule(cluster)?);
        if release.revision > 0 {
            render::stamp_revision(&mut objects, release.revision);
        }
        Ok(objects.into_iter().map(Object::manifest).collect())
    }

    async fn apply(
        &self,
        objects: &[Object],
        release: &Release,
        progress: &mut dyn FnMut(Step<'_>),
    ) -> Result<(), DriverError> {
        for (i, o) in objects.iter().enumerate() {
            self.apply_one(o).await?;
            progress(Step::Applied {
                index: i,
                total: objects.len(),
                object: &o.id,
            });
        }
        if release.force && release.revision > 0 {
            // Every pod of an older revision goes at once; the Deployments start the new ones.
            let lp = ListParams::default()
                .labels(&self.selector(&format!("{REVISION_LABEL}!={}", release.revision)));
            self.api("v1", "Pod")?
                .delete_collection(&DeleteParams::default(), &lp)
                .await
                .map_err(|e| self.failed("deleting the pods of older revisions", e))?;
        }
        Ok(())
    }

    async fn delete(&self, object: &ObjectRef) -> Result<(), DriverError> {
        self.api(&object.api_version, &object.kind)?
            .delete(&object.name, &DeleteParams::default())
            .await
            .map_err(|e| self.failed(format_args!("pruning {object}"), e))?;
        Ok(())
    }

    async fn status(&self) -> Result<ClusterStatus, DriverError> {
        let deployments = self.list("apps/v1", "Deployment", "").await?;
        let revision = deployments
            .iter()
            .filter(|d| d["metadata"]["labels"].get(TRACK_LABEL).is_none())
            .filter_map(|d| d["metadata"]["annotations"][REVISION_LABEL].as_str())
            .filter_map(|r| r.parse().ok())
            .max()
            .unwrap_or(0);
        // The rollout guard is not a component: it is not rolled out, canaried or counted.
        let mut components: Vec<ComponentStatus> = deployments
            .iter()
            .filter(|d| d["metadata"]["labels"].get(render::ROLE_LABEL).is_none())
            .map(component_status)
            .collect();
        components.sort_by(|a, b| a.name.cmp(&b.name));
        let mut pods: Vec<PodStatus> = self
            .list("v1", "Pod", "")
            .await?
            .iter()
            .map(pod_status)
            .collect();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ClusterStatus {
            driver: "kubernetes".into(),
            namespace: self.namespace.clone(),
            revision,
            components,
            pods,
            rollout: self.load_rollout().await?.filter(|r| !r.status.finished()),
            warnings: Vec::new(),
            database: Vec::new(),
        })
    }

    async fn revisions(&self) -> Result<Vec<Revision>, DriverError> {
        let mut out: Vec<Revision> = self
            .revision_maps("")
            .await?
            .iter()
            .filter_map(render::revision_of_config_map)
            .collect();
        out.sort_by_key(|r| r.revision);
        Ok(out)
    }

    async fn record(
        &self,
        revision: &Revision,
        cluster_text: &str,
    ) -> Result<Vec<String>, DriverError> {
        let cluster =
            OpenClawCluster::parse("cluster file", cluster_text).map_err(DriverError::from)?;
        let map = render::revision_config_map(&cluster, revision, cluster_text);
        let obj: DynamicObject = serde_json::from_value(map)
            .map_err(|e| DriverError::new(ErrorCode::ClusterInvalid, e.to_string()))?;
        // Create, not apply: two deploys racing for the same number — one of them fails.
        match self
            .api("v1", "ConfigMap")?
            .create(&PostParams::default(), &obj)
            .await
        {
            Ok(_) => Ok(Vec::new()),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(DriverError::new(
                ErrorCode::TaskStateConflict,
                format!(
                    "revision {} was recorded by someone else meanwhile; run the command again",
                    revision.revision
                ),
            )),
            Err(e) => Err(self.failed(format_args!("recording revision {}", revision.revision), e)),
        }
    }

    async fn set_status(&self, revision: u64, status: RevisionStatus) -> Result<(), DriverError> {
        let map = self.revision_map(revision).await?;
        let name = map["metadata"]["name"].as_str().unwrap_or("");
        let patch =
            serde_json::json!({"metadata": {"annotations": {REVISION_STATUS: status.as_str()}}});
        self.api("v1", "ConfigMap")?
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| self.failed(format_args!("marking revision {revision} {status}"), e))?;
        Ok(())
    }

    async fn cluster_text(&self, revision: u64) -> Result<String, DriverError> {
        let map = self.revision_map(revision).await?;
        map["data"]["cluster.yaml"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                DriverError::unavailable(format!("revision {revision}'s cluster file is missing"))
            })
    }

    async fn logs(&self, pod: &str, previous: bool) -> Result<Option<String>, DriverError> {
        let api: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let params = kube::api::LogParams {
            previous,
            tail_lines: Some(1000),
            ..Default::default()
        };
        match api.logs(pod, &params).await {
            Ok(text) => Ok(Some(text)),
            // No such pod, or no previous run.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 400 => Ok(None),
            Err(e) => Err(self.failed(format_args!("reading the log of {pod}"), e)),
        }
    }

    /// Through the API server's pod proxy (`pods/<name>:<port>/proxy/metrics`).
    async fn metrics(&self, pod: &PodStatus) -> Result<Option<String>, DriverError> {
        let Some(port) = pod.port else {
            return Ok(None);
        };
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}:{port}/proxy/metrics",
            self.namespace, pod.name
        );
        let request = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| DriverError::unavailable(e.to_string()))?;
        Ok(self.client.request_text(request).await.ok())
    }
}

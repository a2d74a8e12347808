//! The kubernetes driver: the pipeline's platform steps against an API server, through `kube`.
//! Apply is server-side apply (field manager `oclaw`, conflicts forced: the cluster file owns
//! these fields); observe and prune look at the objects labelled managed-by=oclaw and
//! instance=<cluster name>; status reads the Deployments and Pods; the revision history is kept
//! in the namespace as immutable ConfigMaps (`<cluster>-revision-<n>`, labelled
//! `oclaw.dev/revision`), their status in an annotation. The API server comes from `KUBECONFIG`
//! / `~/.kube/config` or the in-cluster service account.

use chrono::{DateTime, Utc};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use oclaw_cluster::driver::{
    ClusterStatus, ComponentStatus, Driver, DriverError, Object, ObjectRef, PodStatus, Release,
    Revision, Step,
};
use oclaw_cluster::kubernetes::{
    self, REVISION_LABEL, REVISION_STATUS, ROLLOUT_LABEL, TRACK_LABEL,
};
use oclaw_cluster::rollout::Rollout;
use oclaw_cluster::OpenClawCluster;
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

fn u32_at(v: &Value) -> u32 {
    v.as_u64().unwrap_or(0) as u32
}

/// A cluster's objects on one API server.
pub struct KubeDriver {
    client: kube::Client,
    server: String,
    /// One cluster per namespace: history and status look at every object oclaw manages in it.
    namespace: String,
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

    fn api(&self, api_version: &str, kind: &str) -> Result<Api<DynamicObject>, DriverError> {
        let (ar, namespaced) = resource(api_version, kind)?;
        Ok(if namespaced {
            Api::namespaced_with(self.client.clone(), &self.namespace, &ar)
        } else {
            Api::all_with(self.client.clone(), &ar)
        })
    }

    /// Objects this driver manages; `extra` narrows further.
    fn selector(&self, extra: &str) -> String {
        let mut s = "app.kubernetes.io/managed-by=oclaw".to_string();
        if !extra.is_empty() {
            s.push(',');
            s.push_str(extra);
        }
        s
    }

    fn failed(&self, what: impl std::fmt::Display, e: kube::Error) -> DriverError {
        DriverError::unavailable(format!("{what} on {}: {e}", self.server))
    }

    /// Lists one kind; a kind the server does not serve (no Prometheus operator) is empty.
    async fn list(
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

/// With monitoring, the shipped alert rules as a PrometheusRule, labelled as the cluster's
/// other shared objects (so prune and teardown find it).
pub fn prometheus_rule(cluster: &OpenClawCluster) -> Result<Option<Value>, DriverError> {
    if !cluster.spec.monitoring.enabled {
        return Ok(None);
    }
    let invalid = |e: String| DriverError::new(ErrorCode::ConfigInvalidValue, e);
    let text =
        oclaw_node::monitoring::prometheus_rule(&cluster.metadata.namespace).map_err(invalid)?;
    let mut rule: Value = serde_yaml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let labels = &mut rule["metadata"]["labels"];
    if let Some(l) = labels.as_object_mut() {
        l.remove("app.kubernetes.io/component");
    }
    labels["app.kubernetes.io/instance"] = serde_json::json!(cluster.metadata.name);
    labels["app.kubernetes.io/managed-by"] = serde_json::json!("oclaw");
    Ok(Some(rule))
}

fn pod_status(p: &Value) -> PodStatus {
    let containers = p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ready = p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    // A waiting container's reason (CrashLoopBackOff, ImagePullBackOff) says more than the phase.
    let waiting = containers
        .iter()
        .find_map(|c| c["state"]["waiting"]["reason"].as_str());
    let last_exit = containers.iter().find_map(|c| {
        let t = &c["lastState"]["terminated"];
        t.is_object().then(|| {
            format!(
                "{} (exit {})",
                t["reason"].as_str().unwrap_or("Terminated"),
                t["exitCode"].as_i64().unwrap_or(0)
            )
        })
    });
    PodStatus {
        name: p["metadata"]["name"].as_str().unwrap_or("").to_string(),
        component: p["metadata"]["labels"]["app.kubernetes.io/component"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        ready,
        status: waiting
            .or(p["status"]["phase"].as_str())
            .unwrap_or("Unknown")
            .to_string(),
        restarts: containers.iter().map(|c| u32_at(&c["restartCount"])).sum(),
        started_at: p["status"]["startTime"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
        last_exit,
        revision: p["metadata"]["labels"][REVISION_LABEL]
            .as_str()
            .and_then(|r| r.parse().ok()),
        port: p["spec"]["containers"][0]["ports"][0]["containerPort"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok()),
        // Why it cannot be scheduled or started: the condition's or the waiting container's
        // message.
        detail: p["status"]["conditions"]
            .as_array()
            .and_then(|c| {
                c.iter()
                    .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
                    .and_then(|c| c["message"].as_str())
            })
            .or_else(|| {
                containers
                    .iter()
                    .find_map(|c| c["state"]["waiting"]["message"].as_str())
            })
            .map(str::to_string),
    }
}

/// A Deployment's replicas; a status the controller has not caught up with counts nothing as
/// updated.
fn component_status(d: &Value) -> ComponentStatus {
    let status = &d["status"];
    let seen = status["observedGeneration"].as_i64().unwrap_or(0)
        >= d["metadata"]["generation"].as_i64().unwrap_or(0);
    ComponentStatus {
        // The Deployment's name: the component, or `<component>-canary`.
        name: d["metadata"]["name"].as_str().unwrap_or("").to_string(),
        desired: u32_at(&d["spec"]["replicas"]),
        current: u32_at(&status["replicas"]),
        updated: if seen {
            u32_at(&status["updatedReplicas"])
        } else {
            0
        },
        ready: if seen {
            u32_at(&status["readyReplicas"])
        } else {
            0
        },
    }
}

/// Canary rollouts (`super::kube_canary`): the rollout record and the canary Deployments.
impl KubeDriver {
    /// The rollout recorded in the namespace, if any.
    pub async fn load_rollout(&self) -> Result<Option<Rollout>, DriverError> {
        Ok(self
            .list("v1", "ConfigMap", ROLLOUT_LABEL)
            .await?
            .iter()
            .find_map(|m| serde_json::from_str(m["data"]["rollout.json"].as_str()?).ok()))
    }

    /// Records `rollout` (one ConfigMap per cluster, `<name>-rollout`).
    pub async fn save_rollout(&self, cluster: &str, rollout: &Rollout) -> Result<(), DriverError> {
        let map = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{cluster}-rollout"), "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "oclaw", "app.kubernetes.io/instance": cluster, ROLLOUT_LABEL: "true"}},
            "data": {"rollout.json": serde_json::to_string(rollout).unwrap_or_default()}});
        self.apply_one(&Object::manifest(map)).await
    }

    async fn apply_one(&self, o: &Object) -> Result<(), DriverError> {
        let obj: DynamicObject = serde_json::from_value(o.body.clone())
            .map_err(|e| DriverError::new(ErrorCode::ClusterInvalid, format!("{}: {e}", o.id)))?;
        self.api(&o.id.api_version, &o.id.kind)?
            .patch(
                &o.id.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await
            .map_err(|e| self.failed(format_args!("applying {}", o.id), e))?;
        Ok(())
    }

    /// Starts (or resizes) the canary Deployments of `release` beside the stable ones.
    pub async fn apply_canary(
        &self,
        cluster: &OpenClawCluster,
        release: &Release,
        percent: u8,
        status: &ClusterStatus,
    ) -> Result<Vec<String>, DriverError> {
        let objects: Vec<Value> = self
            .desired(cluster, release)?
            .into_iter()
            .map(|o| o.body)
            .collect();
        let stable = |name: &str| {
            status
                .components
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.desired)
                .unwrap_or(1)
        };
        let mut names = Vec::new();
        for d in kubernetes::canary_deployments(&objects, stable, percent) {
            let o = Object::manifest(d);
            self.apply_one(&o).await?;
            names.push(format!(
                "{} ({} pods)",
                o.id.name, o.body["spec"]["replicas"]
            ));
        }
        Ok(names)
    }

    /// Forgets the rollout record of `cluster` (none is fine).
    pub async fn delete_rollout(&self, cluster: &str) -> Result<(), DriverError> {
        let name = format!("{cluster}-rollout");
        match self
            .api("v1", "ConfigMap")?
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.failed(format_args!("deleting ConfigMap {name}"), e)),
        }
    }

    /// Deletes every canary Deployment (their pods go with them).
    pub async fn delete_canary(&self) -> Result<(), DriverError> {
        for d in self
            .list("apps/v1", "Deployment", &format!("{TRACK_LABEL}=canary"))
            .await?
        {
            self.delete(&ObjectRef::of_manifest(&d)).await?;
        }
        Ok(())
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
        let mut objects = kubernetes::render(cluster, &release.options);
        objects.extend(prometheus_rule(cluster)?);
        if release.revision > 0 {
            kubernetes::stamp_revision(&mut objects, release.revision);
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
            .filter(|d| {
                d["metadata"]["labels"]
                    .get(kubernetes::ROLE_LABEL)
                    .is_none()
            })
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
        })
    }

    async fn revisions(&self) -> Result<Vec<Revision>, DriverError> {
        let mut out: Vec<Revision> = self
            .revision_maps("")
            .await?
            .iter()
            .filter_map(kubernetes::revision_of_config_map)
            .collect();
        out.sort_by_key(|r| r.revision);
        Ok(out)
    }

    async fn record(&self, revision: &Revision, cluster_text: &str) -> Result<(), DriverError> {
        let cluster =
            OpenClawCluster::parse("cluster file", cluster_text).map_err(DriverError::from)?;
        let map = kubernetes::revision_config_map(&cluster, revision, cluster_text);
        let obj: DynamicObject = serde_json::from_value(map)
            .map_err(|e| DriverError::new(ErrorCode::ClusterInvalid, e.to_string()))?;
        // Create, not apply: two deploys racing for the same number — one of them fails.
        match self
            .api("v1", "ConfigMap")?
            .create(&PostParams::default(), &obj)
            .await
        {
            Ok(_) => Ok(()),
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

    async fn set_status(&self, revision: u64, status: &str) -> Result<(), DriverError> {
        let map = self.revision_map(revision).await?;
        let name = map["metadata"]["name"].as_str().unwrap_or("");
        let patch = serde_json::json!({"metadata": {"annotations": {REVISION_STATUS: status}}});
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_report_readiness_restarts_and_the_last_exit() {
        let p = json!({"metadata": {"name": "worker-5d8-abc", "labels": {"app.kubernetes.io/component": "worker", "oclaw.dev/revision": "3"}},
            "status": {"phase": "Running", "startTime": "2026-11-26T01:00:00Z",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}});
        let s = pod_status(&p);
        assert_eq!(
            (
                s.name.as_str(),
                s.component.as_str(),
                s.ready,
                s.status.as_str(),
                s.restarts,
                s.revision
            ),
            (
                "worker-5d8-abc",
                "worker",
                false,
                "CrashLoopBackOff",
                4,
                Some(3)
            )
        );
        assert_eq!(s.last_exit.as_deref(), Some("OOMKilled (exit 137)"));
        assert!(s.started_at.is_some());
    }

    #[test]
    fn a_pod_that_cannot_be_scheduled_says_why() {
        let p = json!({"metadata": {"name": "api-server-5d8-x", "labels": {"app.kubernetes.io/component": "api-server"}},
            "spec": {"containers": [{"ports": [{"containerPort": 8080}]}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu."}]}});
        let s = pod_status(&p);
        assert_eq!(s.status, "Pending");
        assert_eq!(s.port, Some(8080));
        assert_eq!(
            s.detail.as_deref(),
            Some("0/3 nodes are available: 3 Insufficient cpu.")
        );
        assert!(!s.ready && s.restarts == 0 && s.last_exit.is_none());
    }

    #[test]
    fn a_deployment_the_controller_has_not_seen_counts_nothing_updated() {
        let d = json!({"metadata": {"name": "api-server", "generation": 3, "labels": {"app.kubernetes.io/component": "api-server"}},
            "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3}});
        let c = component_status(&d);
        assert_eq!((c.desired, c.current, c.updated, c.ready), (3, 3, 0, 0));
        let mut seen = d.clone();
        seen["status"]["observedGeneration"] = json!(3);
        assert!(component_status(&seen).rolled_out());
    }
}

//! The Kubernetes driver's pure step: an `OpenClawCluster` becomes the objects to apply —
//! Namespace, ServiceAccount and RBAC, the node config as a ConfigMap, a Deployment per
//! component (api-server spread across zones with a PodDisruptionBudget, scheduler leader +
//! standbys, workers under the seed's HorizontalPodAutoscaler), the Services, and with
//! monitoring a ServiceMonitor (the PrometheusRule comes from the shipped rule file).

use serde_json::{json, Map, Value};

use crate::driver::DriverError;
pub use crate::driver::{RenderOptions, COMPONENTS};
use crate::model::{OpenClawCluster, ServiceType};
use oclaw_core::ErrorCode;

/// Port of the probes and metrics of schedulers and workers.
const PROBE_PORT: u16 = 9090;
const CONFIG_PATH: &str = "/etc/oclaw/oclaw.yaml";

fn labels(c: &OpenClawCluster, component: Option<&str>) -> Value {
    let mut l = json!({
        "app.kubernetes.io/name": "oclaw",
        "app.kubernetes.io/instance": c.metadata.name,
        "app.kubernetes.io/version": c.version(),
        "app.kubernetes.io/managed-by": "oclaw",
    });
    if let Some(comp) = component {
        l["app.kubernetes.io/component"] = json!(comp);
    }
    l
}

fn selector(c: &OpenClawCluster, component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "oclaw",
        "app.kubernetes.io/instance": c.metadata.name,
        "app.kubernetes.io/component": component,
    })
}

fn meta(c: &OpenClawCluster, name: &str, component: Option<&str>) -> Value {
    json!({"name": name, "namespace": c.metadata.namespace, "labels": labels(c, component)})
}

/// The node config every component reads: the file's `spec.config`, with the listen address
/// and metrics the cluster needs.
fn node_config(c: &OpenClawCluster) -> String {
    let mut config = c.spec.config.clone().unwrap_or_else(|| json!({}));
    if let Value::Object(m) = &mut config {
        let api = m.entry("api").or_insert_with(|| json!({}));
        if let Value::Object(a) = api {
            a.insert(
                "listen".into(),
                json!(format!("0.0.0.0:{}", c.spec.network.port)),
            );
        }
    }
    serde_saphyr::to_string(&config).unwrap_or_default()
}

/// The CloudNativePG cluster of a cluster file without a database of its own.
pub fn database_name(c: &OpenClawCluster) -> String {
    format!("{}-db", c.metadata.name)
}

fn own_database(c: &OpenClawCluster) -> bool {
    c.spec.storage.url.is_none() && c.spec.storage.secret.is_none()
}

fn env(c: &OpenClawCluster) -> Value {
    let from = |name: &str, key: &str| json!({"name": "OCLAW_STORAGE__URL", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}});
    let storage = match (&c.spec.storage.url, &c.spec.storage.secret) {
        (Some(url), _) => json!({"name": "OCLAW_STORAGE__URL", "value": url}),
        (None, Some(secret)) => from(secret, "url"),
        // The operator's application Secret of the cluster's own database.
        (None, None) => from(&format!("{}-app", database_name(c)), "uri"),
    };
    json!([
        storage,
        // Beyond loopback the API requires tokens: they come from a Secret, never the file.
        {"name": "OCLAW_API__TOKENS", "valueFrom": {"secretKeyRef": {"name": "oclaw-api-tokens", "key": "tokens"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ])
}

fn container(c: &OpenClawCluster, component: &str, port: u16) -> Value {
    let r = &c.spec.resources;
    let mut args = vec![
        json!(component),
        json!("--config"),
        json!(CONFIG_PATH),
        json!("--listen"),
        json!(format!("0.0.0.0:{port}")),
    ];
    args.extend([json!("--node-id"), json!("$(POD_NAME)")]);
    json!({
        "name": component,
        "image": c.image(),
        "args": args,
        "ports": [{"name": "http", "containerPort": port}],
        "env": env(c),
        "resources": {
            "requests": {"cpu": r.requests.cpu, "memory": r.requests.memory},
            "limits": {"cpu": r.limits.cpu, "memory": r.limits.memory},
        },
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5, "failureThreshold": 2},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/oclaw", "readOnly": true}],
        "securityContext": restricted(),
    })
}

/// A container's security context meeting the "restricted" Pod Security Standard: not root
/// (the image's own non-root user, 65532), no privilege escalation, every capability dropped,
/// the runtime's default seccomp profile, and a read-only root filesystem.
fn restricted() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

fn deployment(
    c: &OpenClawCluster,
    component: &str,
    replicas: Option<u32>,
    port: u16,
    extra: Map<String, Value>,
) -> Value {
    let mut pod_spec = json!({
        "serviceAccountName": "oclaw",
        "containers": [container(c, component, port)],
        "volumes": [{"name": "config", "configMap": {"name": "oclaw-config"}}],
    });
    if let Value::Object(p) = &mut pod_spec {
        p.extend(extra);
    }
    let mut spec = json!({
        "selector": {"matchLabels": selector(c, component)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": labels(c, Some(component)), "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": port.to_string()}},
            "spec": pod_spec,
        },
    });
    if let Some(n) = replicas {
        spec["replicas"] = json!(n);
    }
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(c, component, Some(component)), "spec": spec})
}

/// Spread replicas across zones (and hosts) when the cluster has them.
fn spread(c: &OpenClawCluster, component: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "topologySpreadConstraints".into(),
        json!([
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": selector(c, component)}},
        ]),
    );
    m.insert(
        "affinity".into(),
        json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector(c, component)}}}
        ]}}),
    );
    m
}

/// Label of the rollout guard's objects.
pub const ROLE_LABEL: &str = "oclaw.dev/role";

/// The rollout guard (`oclaw rollout-guard`): one small pod that keeps stepping a canary rollout
/// while no `oclaw upgrade` runs, so its timeout and analysis hold after the CLI has returned.
/// It only aborts (deletes canary Deployments, marks the revision failed) — starting and
/// promoting stay with `oclaw upgrade` — so its Role is narrow: no Roles, no Services, nothing
/// it could escalate with.
fn rollout_guard(c: &OpenClawCluster) -> Vec<Value> {
    let name = "oclaw-rollout-guard";
    let mut labels = labels(c, None);
    labels[ROLE_LABEL] = json!("rollout-guard");
    let meta = json!({"name": name, "namespace": c.metadata.namespace, "labels": labels});
    let mut selector = selector(c, "rollout-guard");
    if let Value::Object(m) = &mut selector {
        m.remove("app.kubernetes.io/component");
        m.insert(ROLE_LABEL.into(), json!("rollout-guard"));
    }
    let container = json!({
        "name": "rollout-guard",
        "image": c.image(),
        "args": ["rollout-guard", "--namespace", c.metadata.namespace],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}},
        "securityContext": restricted(),
    });
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
        "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "delete"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "patch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": c.metadata.namespace}]}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": 1, "selector": {"matchLabels": selector},
                "strategy": {"type": "Recreate"},
                "template": {"metadata": {"labels": labels},
                    "spec": {"serviceAccountName": name, "containers": [container]}}}}),
    ]
}

/// The cluster's own database for the CloudNativePG operator: one instance, or three with one
/// synchronous replica in HA mode, on the file's storage class and size, with a database and
/// owner `oclaw` (the operator writes their URL to the Secret `<name>-db-app`, key `uri`), and
/// a PodMonitor for its metrics when monitoring is on.
fn database(c: &OpenClawCluster, ha: bool) -> Vec<Value> {
    let name = database_name(c);
    let mut spec = json!({
        "instances": if ha { 3 } else { 1 },
        "storage": {"storageClass": c.spec.storage.class, "size": c.spec.storage.size},
        "bootstrap": {"initdb": {"database": "oclaw", "owner": "oclaw"}},
    });
    if ha {
        spec["minSyncReplicas"] = json!(1);
        spec["maxSyncReplicas"] = json!(1);
    }
    let mut out = vec![
        json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": meta(c, &name, None), "spec": spec}),
    ];
    if c.spec.monitoring.enabled {
        out.push(json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": meta(c, &name, None),
            "spec": {"selector": {"matchLabels": {"cnpg.io/cluster": name}}, "podMetricsEndpoints": [{"port": "metrics"}]}}));
    }
    out
}

/// Every object, in apply order.
pub fn render(c: &OpenClawCluster, o: &RenderOptions) -> Vec<Value> {
    let ns = &c.metadata.namespace;
    let wants = |name: &str| o.components.iter().any(|x| x == name);
    let ha = |n: u32| if o.ha { n } else { 1 };
    let mut out = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels(c, None)}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(c, "oclaw", None), "automountServiceAccountToken": false}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta(c, "oclaw", None),
            "rules": [{"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(c, "oclaw", None),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "oclaw"},
            "subjects": [{"kind": "ServiceAccount", "name": "oclaw", "namespace": ns}]}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(c, "oclaw-config", None), "data": {"oclaw.yaml": node_config(c)}}),
    ];
    if own_database(c) {
        out.extend(database(c, o.ha));
    }
    let port = c.spec.network.port;
    if wants("api-server") {
        let replicas = ha(c.api_replicas());
        out.push(deployment(
            c,
            "api-server",
            Some(replicas),
            port,
            spread(c, "api-server"),
        ));
        out.push(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(c, "api-server", Some("api-server")),
            "spec": {"minAvailable": replicas.saturating_sub(1).max(1), "selector": {"matchLabels": selector(c, "api-server")}}}));
        let service_type = match c.spec.network.service_type {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        };
        out.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(c, "oclaw-api", Some("api-server")),
            "spec": {"type": service_type, "selector": selector(c, "api-server"),
                     "ports": [{"name": "http", "port": port, "targetPort": "http"}]}}));
    }
    if wants("scheduler") {
        let replicas = ha(c.spec.components.scheduler.replicas);
        out.push(deployment(
            c,
            "scheduler",
            Some(replicas),
            PROBE_PORT,
            spread(c, "scheduler"),
        ));
    }
    if wants("worker") {
        let w = &c.spec.components.worker;
        let (min, max) = if o.ha {
            (w.min_replicas, w.max_replicas)
        } else {
            (1, w.max_replicas.max(1))
        };
        let mut extra = spread(c, "worker");
        // SIGTERM drains: claims stop, running tasks finish within shutdown_grace, the rest go back.
        extra.insert("terminationGracePeriodSeconds".into(), json!(60));
        // No `replicas`: the HPA owns the count. Set here, every apply (forced) would reset
        // an autoscaled worker Deployment to the floor.
        out.push(deployment(c, "worker", None, PROBE_PORT, extra));
        out.push(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(c, "worker", Some("worker")),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(c, "worker")}}}));
        out.push(json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta(c, "worker-hpa", Some("worker")),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
                     "minReplicas": min, "maxReplicas": max,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": w.target_cpu_utilization}}}]}}));
    }
    out.extend(rollout_guard(c));
    // Every component's /metrics, for Prometheus.
    out.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(c, "oclaw-metrics", None),
        "spec": {"clusterIP": "None", "selector": {"app.kubernetes.io/name": "oclaw", "app.kubernetes.io/instance": c.metadata.name},
                 "ports": [{"name": "http", "port": PROBE_PORT, "targetPort": "http"}]}}));
    if c.spec.monitoring.enabled {
        out.push(json!({"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": meta(c, "oclaw", None),
            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "oclaw", "app.kubernetes.io/instance": c.metadata.name}},
                     "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}]}}));
    }
    out
}

/// Label (on pod templates) and annotation (on Deployments) naming the revision an apply
/// deployed; a new revision changes the pod template, so its pods roll even when only the
/// ConfigMap changed.
pub const REVISION_LABEL: &str = "oclaw.dev/revision";
/// Annotation holding a stored revision's status.
pub const REVISION_STATUS: &str = "oclaw.dev/status";

/// Marks rendered objects with `revision` (pod templates and Deployments).
pub fn stamp_revision(objects: &mut [Value], revision: u64) {
    for o in objects.iter_mut().filter(|o| o["kind"] == "Deployment") {
        o["metadata"]["annotations"][REVISION_LABEL] = json!(revision.to_string());
        o["spec"]["template"]["metadata"]["labels"][REVISION_LABEL] = json!(revision.to_string());
    }
}

/// Label of a canary Deployment and its pods.
pub const TRACK_LABEL: &str = "oclaw.dev/track";
/// Label of the ConfigMap holding a rollout in progress.
pub const ROLLOUT_LABEL: &str = "oclaw.dev/rollout";

/// The canary Deployments for the rendered (and revision-stamped) `objects`: for each
/// Deployment `<name>`, a `<name>-canary` running `percent` of `stable_replicas(name)` (at least
/// one), its pods and selector labelled `oclaw.dev/track: canary`. The pods keep the component's
/// labels, so the component's Service sends them their share of the traffic; they are owned by
/// the canary's ReplicaSet, so the stable Deployment does not adopt them.
pub fn canary_deployments(
    objects: &[Value],
    stable_replicas: impl Fn(&str) -> u32,
    percent: u8,
) -> Vec<Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
        .filter(|o| o["metadata"]["labels"]["app.kubernetes.io/component"].is_string())
        .map(|o| {
            let mut d = o.clone();
            let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
            let n = crate::rollout::canary_count(stable_replicas(&name).max(1) as usize, percent);
            d["metadata"]["name"] = json!(format!("{name}-canary"));
            d["metadata"]["labels"][TRACK_LABEL] = json!("canary");
            d["spec"]["replicas"] = json!(n);
            d["spec"]["selector"]["matchLabels"][TRACK_LABEL] = json!("canary");
            d["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] = json!("canary");
            d
        })
        .collect()
}

/// A revision stored in the cluster: an immutable ConfigMap holding the record and the cluster
/// file, its status in an annotation (the one thing that changes).
pub fn revision_config_map(
    c: &OpenClawCluster,
    revision: &crate::driver::Revision,
    cluster_text: &str,
) -> Value {
    let mut labels = labels(c, None);
    labels[REVISION_LABEL] = json!(revision.revision.to_string());
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{}-revision-{}", c.metadata.name, revision.revision),
                     "namespace": c.metadata.namespace, "labels": labels,
                     "annotations": {REVISION_STATUS: revision.status}},
        "immutable": true,
        "data": {"revision.json": serde_json::to_string(revision).unwrap_or_default(),
                 "cluster.yaml": cluster_text}})
}

/// The revision a ConfigMap from [`revision_config_map`] holds, with its current status.
pub fn revision_of_config_map(o: &Value) -> Option<crate::driver::Revision> {
    let mut r: crate::driver::Revision =
        serde_json::from_str(o["data"]["revision.json"].as_str()?).ok()?;
    if let Some(s) = o["metadata"]["annotations"][REVISION_STATUS]
        .as_str()
        .and_then(crate::driver::RevisionStatus::parse)
    {
        r.status = s;
    }
    Some(r)
}

/// Objects as one multi-document YAML stream.
pub fn to_yaml(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| serde_saphyr::to_string(o).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// With monitoring, the shipped alert rules as a PrometheusRule, labelled as the cluster's
/// other shared objects (so prune and teardown find it).
pub fn prometheus_rule(cluster: &OpenClawCluster) -> Result<Option<Value>, DriverError> {
    if !cluster.spec.monitoring.enabled {
        return Ok(None);
    }
    let invalid = |e: String| DriverError::new(ErrorCode::ConfigInvalidValue, e);
    let text = oclaw_telemetry::alert_rules::prometheus_rule(&cluster.metadata.namespace)
        .map_err(invalid)?;
    let mut rule: Value = serde_saphyr::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let labels = &mut rule["metadata"]["labels"];
    if let Some(l) = labels.as_object_mut() {
        l.remove("app.kubernetes.io/component");
    }
    labels["app.kubernetes.io/instance"] = serde_json::json!(cluster.metadata.name);
    labels["app.kubernetes.io/managed-by"] = serde_json::json!("oclaw");
    Ok(Some(rule))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SEED_EXAMPLE;

    fn seed() -> OpenClawCluster {
        OpenClawCluster::parse("production.yaml", SEED_EXAMPLE).unwrap()
    }

    fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
        objs.iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind}/{name}"))
    }

    /// Every container of every workload passes the "restricted" Pod Security Standard's
    /// checks (Kubernetes docs, Pod Security Standards, v1.32): non-root, no privilege
    /// escalation, all capabilities dropped, seccomp RuntimeDefault (or Localhost).
    #[test]
    fn every_rendered_container_meets_the_restricted_pod_security_standard() {
        let objs = render(&seed(), &RenderOptions::default());
        let mut checked = 0;
        for o in &objs {
            let Some(pod) = o["spec"]["template"]["spec"].as_object() else {
                continue;
            };
            let pod_ctx = pod.get("securityContext").cloned().unwrap_or(json!({}));
            for c in pod["containers"].as_array().unwrap() {
                let ctx = &c["securityContext"];
                let name = format!("{}/{}", o["metadata"]["name"], c["name"]);
                let non_root = ctx["runAsNonRoot"] == true || pod_ctx["runAsNonRoot"] == true;
                assert!(non_root, "{name}: runAsNonRoot");
                assert_ne!(ctx["runAsUser"], 0, "{name}: runAsUser 0");
                assert_eq!(ctx["allowPrivilegeEscalation"], false, "{name}");
                assert!(
                    ctx["capabilities"]["drop"]
                        .as_array()
                        .is_some_and(|d| d.contains(&json!("ALL"))),
                    "{name}: drop ALL"
                );
                assert!(
                    ctx["capabilities"]["add"]
                        .as_array()
                        .is_none_or(|a| a.iter().all(|c| c == "NET_BIND_SERVICE")),
                    "{name}: adds capabilities"
                );
                let seccomp = ctx["seccompProfile"]["type"]
                    .as_str()
                    .or(pod_ctx["seccompProfile"]["type"].as_str());
                assert!(
                    matches!(seccomp, Some("RuntimeDefault" | "Localhost")),
                    "{name}: seccomp {seccomp:?}"
                );
                assert_ne!(ctx["privileged"], true, "{name}");
                checked += 1;
            }
        }
        assert!(
            checked >= 4,
            "api-server, scheduler, worker and the rollout guard: {checked}"
        );
    }

    #[test]
    fn the_seed_cluster_renders_its_replicas_resources_service_and_hpa() {
        let objs = render(&seed(), &RenderOptions::default());
        let api = find(&objs, "Deployment", "api-server");
        assert_eq!(api["spec"]["replicas"], 3);
        let ctr = &api["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(ctr["resources"]["requests"]["cpu"], "2000m");
        assert_eq!(ctr["resources"]["limits"]["memory"], "8Gi");
        assert_eq!(ctr["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(
            find(&objs, "Service", "oclaw-api")["spec"]["type"],
            "LoadBalancer"
        );
        assert_eq!(
            find(&objs, "Service", "oclaw-api")["spec"]["ports"][0]["port"],
            8080
        );
        assert!(
            find(&objs, "Deployment", "worker")["spec"]
                .get("replicas")
                .is_none(),
            "the HPA owns the worker count"
        );
        let hpa = find(&objs, "HorizontalPodAutoscaler", "worker-hpa");
        assert_eq!(
            (
                hpa["spec"]["minReplicas"].clone(),
                hpa["spec"]["maxReplicas"].clone()
            ),
            (json!(3), json!(20))
        );
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            70
        );
        assert_eq!(
            find(&objs, "Deployment", "scheduler")["spec"]["replicas"],
            2
        );
        assert_eq!(
            find(&objs, "PodDisruptionBudget", "api-server")["spec"]["minAvailable"],
            2
        );
        find(&objs, "ServiceMonitor", "oclaw");
        assert!(objs
            .iter()
            .all(|o| o["kind"] == "Namespace" || o["metadata"]["namespace"] == "oclaw-system"));
    }

    #[test]
    fn components_and_ha_mode_choose_what_is_rendered() {
        let o = RenderOptions {
            components: vec!["worker".into()],
            ha: false,
        };
        let objs = render(&seed(), &o);
        assert!(objs.iter().all(|x| x["metadata"]["name"] != "api-server"));
        assert_eq!(
            find(&objs, "HorizontalPodAutoscaler", "worker-hpa")["spec"]["minReplicas"],
            1
        );
    }

    #[test]
    fn a_revision_rolls_the_pods_and_round_trips_through_its_config_map() {
        let c = seed();
        let mut objs = render(&c, &RenderOptions::default());
        stamp_revision(&mut objs, 7);
        let api = find(&objs, "Deployment", "api-server");
        assert_eq!(
            api["spec"]["template"]["metadata"]["labels"][REVISION_LABEL],
            "7"
        );
        assert_eq!(api["metadata"]["annotations"][REVISION_LABEL], "7");
        assert!(api["spec"]["selector"]["matchLabels"]
            .get(REVISION_LABEL)
            .is_none());
        let rev = crate::driver::Revision {
            revision: 7,
            created_at: chrono::Utc::now(),
            action: crate::driver::ReleaseAction::Upgrade,
            version: "v2".into(),
            components: vec!["worker".into()],
            ha: true,
            status: crate::driver::RevisionStatus::Pending,
            description: "d".into(),
        };
        let mut cm = revision_config_map(&c, &rev, SEED_EXAMPLE);
        assert_eq!(cm["metadata"]["name"], "production-cluster-revision-7");
        assert_eq!(cm["immutable"], true);
        assert_eq!(cm["data"]["cluster.yaml"], SEED_EXAMPLE);
        cm["metadata"]["annotations"][REVISION_STATUS] = json!("deployed");
        let back = revision_of_config_map(&cm).unwrap();
        assert_eq!(back.status, crate::driver::RevisionStatus::Deployed);
        assert_eq!(back.revision, 7);
        assert_eq!(back.components, vec!["worker".to_string()]);
    }

    #[test]
    fn canary_deployments_run_a_share_of_each_component_beside_it() {
        let c = seed();
        let mut objs = render(&c, &RenderOptions::default());
        stamp_revision(&mut objs, 2);
        let canaries = canary_deployments(&objs, |n| if n == "worker" { 10 } else { 3 }, 20);
        let names: Vec<&str> = canaries
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["api-server-canary", "scheduler-canary", "worker-canary"]
        );
        let api = &canaries[0];
        assert_eq!(api["spec"]["replicas"], 1);
        assert_eq!(canaries[2]["spec"]["replicas"], 2, "20 % of 10 workers");
        assert_eq!(
            api["spec"]["selector"]["matchLabels"][TRACK_LABEL],
            "canary"
        );
        let pod_labels = &api["spec"]["template"]["metadata"]["labels"];
        assert_eq!(pod_labels[TRACK_LABEL], "canary");
        assert_eq!(pod_labels[REVISION_LABEL], "2");
        // The Service still selects them.
        let service = find(&objs, "Service", "oclaw-api");
        for (k, v) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&pod_labels[k], v);
        }
    }
}

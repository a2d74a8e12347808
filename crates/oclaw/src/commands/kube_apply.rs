//! The kubernetes driver's apply step: every rendered object is sent to the API server with
//! server-side apply (field manager `oclaw`, conflicts forced: the cluster file owns these
//! fields), then objects this cluster manages that the file no longer asks for are pruned.
//! The API server comes from `KUBECONFIG` / `~/.kube/config` or the in-cluster service account.

use std::collections::BTreeSet;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use oclaw_core::ErrorCode;
use serde_json::Value;

/// Field manager of everything the driver applies.
pub const FIELD_MANAGER: &str = "oclaw";

/// Kinds the renderer produces: (apiVersion, kind, plural, namespaced). Pruning looks at these.
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
];

/// What an apply did.
#[derive(Debug, Default)]
pub struct Applied {
    pub applied: Vec<String>,
    pub pruned: Vec<String>,
}

fn resource(api_version: &str, kind: &str) -> Result<(ApiResource, bool), String> {
    let (_, _, plural, namespaced) = KINDS
        .iter()
        .find(|(v, k, _, _)| *v == api_version && *k == kind)
        .ok_or_else(|| format!("the driver does not know how to apply {api_version} {kind}"))?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Ok((ApiResource::from_gvk_with_plural(&gvk, plural), *namespaced))
}

fn api(client: &kube::Client, ar: &ApiResource, namespaced: bool, ns: &str) -> Api<DynamicObject> {
    if namespaced {
        Api::namespaced_with(client.clone(), ns, ar)
    } else {
        Api::all_with(client.clone(), ar)
    }
}

fn label<'a>(o: &'a Value, key: &str) -> Option<&'a str> {
    o["metadata"]["labels"][key].as_str()
}

/// Applies `objects` (as rendered) and prunes what this cluster (`instance`) manages in
/// `namespace` among `components` that is not among them. Prints one line per object.
pub async fn apply(
    objects: &[Value],
    instance: &str,
    namespace: &str,
    components: &[String],
) -> Result<Applied, (ErrorCode, String)> {
    let unavailable = |m: String| (ErrorCode::DriverUnavailable, m);
    let config = kube::Config::infer().await.map_err(|e| {
        unavailable(format!(
            "no Kubernetes API server configured ({e}); set KUBECONFIG or run inside a cluster, or print the objects with --dry-run"
        ))
    })?;
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .map_err(|e| unavailable(format!("Kubernetes client for {server}: {e}")))?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut done = Applied::default();
    let mut wanted = BTreeSet::new();
    for (i, o) in objects.iter().enumerate() {
        let api_version = o["apiVersion"].as_str().unwrap_or("");
        let kind = o["kind"].as_str().unwrap_or("");
        let name = o["metadata"]["name"].as_str().unwrap_or("");
        let ns = o["metadata"]["namespace"].as_str().unwrap_or(namespace);
        let (ar, namespaced) = resource(api_version, kind).map_err(unavailable)?;
        let id = if namespaced {
            format!("{kind} {ns}/{name}")
        } else {
            format!("{kind} {name}")
        };
        let obj: DynamicObject = serde_json::from_value(o.clone())
            .map_err(|e| (ErrorCode::ClusterInvalid, format!("{id}: {e}")))?;
        api(&client, &ar, namespaced, ns)
            .patch(name, &params, &Patch::Apply(&obj))
            .await
            .map_err(|e| unavailable(format!("applying {id} on {server}: {e}")))?;
        println!("[{}/{}] applied {id}", i + 1, objects.len());
        wanted.insert((api_version.to_string(), kind.to_string(), name.to_string()));
        done.applied.push(id);
    }
    // Prune: objects of this cluster, of the components deployed now (or shared), gone from the
    // file. Namespaces are never pruned.
    let selector =
        format!("app.kubernetes.io/managed-by=oclaw,app.kubernetes.io/instance={instance}");
    for (api_version, kind, _, namespaced) in KINDS.iter().filter(|k| k.3) {
        let (ar, _) = resource(api_version, kind).map_err(unavailable)?;
        let listed = match api(&client, &ar, *namespaced, namespace)
            .list(&ListParams::default().labels(&selector))
            .await
        {
            Ok(l) => l,
            // A kind the server does not serve (no Prometheus operator): nothing to prune.
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(unavailable(format!("listing {kind} on {server}: {e}"))),
        };
        for item in listed.items {
            let value = serde_json::to_value(&item).unwrap_or(Value::Null);
            let name = item.metadata.name.clone().unwrap_or_default();
            let ours = match label(&value, "app.kubernetes.io/component") {
                Some(c) => components.iter().any(|d| d == c),
                None => true,
            };
            if !ours || wanted.contains(&(api_version.to_string(), kind.to_string(), name.clone()))
            {
                continue;
            }
            api(&client, &ar, *namespaced, namespace)
                .delete(&name, &DeleteParams::default())
                .await
                .map_err(|e| unavailable(format!("pruning {kind} {namespace}/{name}: {e}")))?;
            println!("pruned {kind} {namespace}/{name} (no longer in the cluster file)");
            done.pruned.push(format!("{kind} {namespace}/{name}"));
        }
    }
    Ok(done)
}

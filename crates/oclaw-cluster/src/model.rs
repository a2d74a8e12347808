//! The `OpenClawCluster` file. The seed's example (§3.1) is accepted exactly as written; the
//! optional extensions name what a real rollout also needs (namespace, image, version, database
//! URL, per-component replicas and autoscaling bounds, node config).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use oclaw_core::config_load::{yaml_error, ConfigError};
use oclaw_core::ErrorCode;

use crate::quantity::{bytes, cpu_millis};

pub type ClusterError = ConfigError;

/// A cluster file: `apiVersion: v1` (the seed's) or `oclaw.io/v1`, `kind: OpenClawCluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenClawCluster {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ClusterSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Cluster name: lowercase letters, digits and dashes (a DNS label).
    pub name: String,
    /// Namespace of every object; `oclaw-system` by default.
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_namespace() -> String {
    "oclaw-system".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    /// API server replicas (the seed's `replica`).
    pub replica: u32,
    /// Requests and limits of every component container.
    pub resources: Resources,
    pub storage: Storage,
    pub network: Network,
    #[serde(default)]
    pub monitoring: Monitoring,
    /// Release to run; this binary's version by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Container image repository (`oclaw init --image-registry` sets it); the tag is the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Per-component settings.
    #[serde(default)]
    pub components: Components,
    /// Node configuration (`oclaw.yaml` keys) given to every component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub requests: ResourceList,
    pub limits: ResourceList,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceList {
    /// CPU: cores or millicores (`2`, `2000m`).
    pub cpu: String,
    /// Memory with a unit (`4Gi`).
    pub memory: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// StorageClass for volumes the cluster claims.
    pub class: String,
    /// Size of those volumes (`100Gi`).
    pub size: String,
    /// An outside database (`postgres://…`). Unset (and no `secret`): the cluster runs its
    /// own — on Kubernetes a CloudNativePG `Cluster` of `class` and `size`, locally a
    /// PostgreSQL under `$OCLAW_HOME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Kubernetes: a Secret whose key `url` holds an outside database's URL, so it never sits
    /// in the cluster file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Network {
    /// How the API is exposed: `ClusterIP`, `NodePort` or `LoadBalancer`.
    pub service_type: ServiceType,
    /// API port.
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Monitoring {
    /// Adds a ServiceMonitor and the alert rules as a PrometheusRule.
    #[serde(default)]
    pub enabled: bool,
    /// The Prometheus the cluster's checks (`check-upgrade`, canary analysis) query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_endpoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Components {
    #[serde(default)]
    pub api_server: ApiServerSpec,
    #[serde(default)]
    pub scheduler: SchedulerSpec,
    #[serde(default)]
    pub worker: WorkerSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ApiServerSpec {
    /// Overrides `spec.replica`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSpec {
    /// One leader and standbys; 2 by default.
    #[serde(default = "two")]
    pub replicas: u32,
}

impl Default for SchedulerSpec {
    fn default() -> Self {
        SchedulerSpec { replicas: 2 }
    }
}

fn two() -> u32 {
    2
}

/// Worker autoscaling, the seed's §3.3 by default: 3 to 20 replicas at 70 % CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkerSpec {
    #[serde(default = "three")]
    pub min_replicas: u32,
    #[serde(default = "twenty")]
    pub max_replicas: u32,
    #[serde(default = "seventy")]
    pub target_cpu_utilization: u32,
}

impl Default for WorkerSpec {
    fn default() -> Self {
        WorkerSpec {
            min_replicas: 3,
            max_replicas: 20,
            target_cpu_utilization: 70,
        }
    }
}

fn three() -> u32 {
    3
}
fn twenty() -> u32 {
    20
}
fn seventy() -> u32 {
    70
}

fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl OpenClawCluster {
    /// Reads and checks a cluster file; errors carry the file, the line where known, and
    /// `OC-5001` (or `OC-1003` for an unknown key, with a suggestion).
    pub fn parse(file: &str, text: &str) -> Result<OpenClawCluster, ClusterError> {
        let c: OpenClawCluster = serde_saphyr::from_str(text).map_err(|e| {
            let mut err = yaml_error(file, &e);
            if err.code == ErrorCode::ConfigInvalidValue {
                err.code = ErrorCode::ClusterInvalid;
            }
            err
        })?;
        c.check().map_err(|(needle, m)| {
            let mut e = ConfigError::new(ErrorCode::ClusterInvalid, m).in_file(file);
            e.line = text
                .find(needle.as_str())
                .map(|pos| text[..pos].matches('\n').count() + 1);
            e
        })?;
        Ok(c)
    }

    /// Checks beyond the shape; the error names the key to point at.
    fn check(&self) -> Result<(), (String, String)> {
        let at = |k: &str, m: String| Err((k.to_string(), m));
        if !matches!(self.api_version.as_str(), "v1" | "oclaw.io/v1") {
            return at(
                "apiVersion",
                format!("apiVersion `{}` is not v1 or oclaw.io/v1", self.api_version),
            );
        }
        if self.kind != "OpenClawCluster" {
            return at(
                "kind",
                format!("kind is `{}`, expected `OpenClawCluster`", self.kind),
            );
        }
        if !dns_label(&self.metadata.name) {
            return at(
                "name:",
                format!(
                    "metadata.name `{}` must be a DNS label (lowercase letters, digits, `-`)",
                    self.metadata.name
                ),
            );
        }
        if !dns_label(&self.metadata.namespace) {
            return at(
                "namespace:",
                format!(
                    "metadata.namespace `{}` must be a DNS label",
                    self.metadata.namespace
                ),
            );
        }
        let s = &self.spec;
        if s.replica == 0 {
            return at("replica:", "spec.replica must be at least 1".into());
        }
        let r = &s.resources;
        for (what, list) in [("requests", &r.requests), ("limits", &r.limits)] {
            if let Err(m) = cpu_millis(&list.cpu) {
                return at(&list.cpu, format!("spec.resources.{what}.cpu: {m}"));
            }
            if let Err(m) = bytes(&list.memory) {
                return at(&list.memory, format!("spec.resources.{what}.memory: {m}"));
            }
        }
        let cpu = (cpu_millis(&r.requests.cpu), cpu_millis(&r.limits.cpu));
        if let (Ok(req), Ok(lim)) = cpu {
            if req > lim {
                return at(
                    "limits:",
                    format!(
                        "spec.resources: the CPU request {} is above the limit {}",
                        r.requests.cpu, r.limits.cpu
                    ),
                );
            }
        }
        if let (Ok(req), Ok(lim)) = (bytes(&r.requests.memory), bytes(&r.limits.memory)) {
            if req > lim {
                return at(
                    "limits:",
                    format!(
                        "spec.resources: the memory request {} is above the limit {}",
                        r.requests.memory, r.limits.memory
                    ),
                );
            }
        }
        if let Err(m) = bytes(&s.storage.size) {
            return at("size:", format!("spec.storage.size: {m}"));
        }
        if s.storage.url.is_some() && s.storage.secret.is_some() {
            return at(
                "secret:",
                "spec.storage: give url or secret, not both".into(),
            );
        }
        if let Some(url) = &s.storage.url {
            if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
                return at("url:", "spec.storage.url must be a postgres:// URL: a cluster's components share one PostgreSQL".into());
            }
        }
        if s.network.port == 0 {
            return at("port:", "spec.network.port must be 1-65535".into());
        }
        let w = &s.components.worker;
        if w.min_replicas == 0 || w.min_replicas > w.max_replicas {
            return at(
                "minReplicas",
                format!(
                    "spec.components.worker: minReplicas {} must be 1..=maxReplicas {}",
                    w.min_replicas, w.max_replicas
                ),
            );
        }
        if !(1..=100).contains(&w.target_cpu_utilization) {
            return at(
                "targetCpuUtilization",
                "spec.components.worker.targetCpuUtilization is a percentage, 1-100".into(),
            );
        }
        if s.components.scheduler.replicas == 0 {
            return at(
                "scheduler",
                "spec.components.scheduler.replicas must be at least 1".into(),
            );
        }
        if let Some(endpoint) = &s.monitoring.prometheus_endpoint {
            if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                return at(
                    "prometheusEndpoint",
                    "spec.monitoring.prometheusEndpoint must be an http(s) URL".into(),
                );
            }
        }
        if let Some(c) = &s.config {
            if !c.is_object() {
                return at(
                    "config:",
                    "spec.config holds oclaw.yaml keys (a mapping)".into(),
                );
            }
        }
        Ok(())
    }

    /// API server replicas.
    pub fn api_replicas(&self) -> u32 {
        self.spec
            .components
            .api_server
            .replicas
            .unwrap_or(self.spec.replica)
    }

    /// The release this cluster runs.
    pub fn version(&self) -> String {
        self.spec
            .version
            .clone()
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
    }

    /// The container image (`repository:version`).
    pub fn image(&self) -> String {
        let repo = self.spec.image.as_deref().unwrap_or("ghcr.io/oclaw/oclaw");
        format!("{}:{}", repo.trim_end_matches('/'), self.version())
    }
}

/// The seed's example cluster file (§3.1), as written.
pub const SEED_EXAMPLE: &str = "apiVersion: v1
kind: OpenClawCluster
metadata:
  name: production-cluster
spec:
  replica: 3
  resources:
    requests:
      cpu: \"2000m\"
      memory: \"4Gi\"
    limits:
      cpu: \"4000m\"
      memory: \"8Gi\"
  storage:
    class: \"ssd-provisioner\"
    size: \"100Gi\"
  network:
    serviceType: \"LoadBalancer\"
    port: 8080
  monitoring:
    enabled: true
    prometheusEndpoint: \"http://prometheus-server:9090\"
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_example_is_accepted_as_written() {
        let c = OpenClawCluster::parse("production.yaml", SEED_EXAMPLE).unwrap();
        assert_eq!(c.metadata.name, "production-cluster");
        assert_eq!(c.metadata.namespace, "oclaw-system");
        assert_eq!(c.api_replicas(), 3);
        assert_eq!(c.spec.network.service_type, ServiceType::LoadBalancer);
        assert_eq!(c.spec.components.worker, WorkerSpec::default());
        assert!(c.spec.monitoring.enabled);
    }

    #[test]
    fn bad_files_get_located_errors() {
        let bad = |from: &str, to: &str| {
            OpenClawCluster::parse("c.yaml", &SEED_EXAMPLE.replace(from, to)).unwrap_err()
        };
        let e = bad("replica: 3", "replicas: 3");
        assert_eq!(e.code, ErrorCode::ConfigUnknownKey, "{e}");
        assert!(e.message.contains("did you mean `replica`"), "{e}");
        let e = bad("\"4000m\"", "\"1000m\"");
        assert_eq!(e.code, ErrorCode::ClusterInvalid);
        assert!(e.message.contains("above the limit"), "{e}");
        let e = bad("\"8Gi\"", "\"8GB\"");
        assert!(e.message.contains("byte quantity"), "{e}");
        assert_eq!(e.line, Some(13), "{e}");
        let e = bad("LoadBalancer", "Ingress");
        assert!(
            e.to_string().contains("serviceType") || e.to_string().contains("variant"),
            "{e}"
        );
        let e = bad("kind: OpenClawCluster", "kind: Cluster");
        assert_eq!(e.code, ErrorCode::ClusterInvalid);
        let e = bad("production-cluster", "Production_Cluster");
        assert!(e.message.contains("DNS label"), "{e}");
        let e = bad("port: 8080", "port: 0");
        assert!(e.message.contains("1-65535"), "{e}");
    }
}

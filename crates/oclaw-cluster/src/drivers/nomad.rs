//! The Nomad driver's render step (for dev/test clusters): one job, in the JSON form of Nomad's
//! API (`nomad job run -json`), with a group per component, an `update` block that canaries and
//! auto-reverts, health checks on `/readyz`, and the worker group's scaling bounds. Secrets come
//! from Nomad variables (`oclaw/storage` key `url` unless the file gives one, `oclaw/api` key
//! `tokens`). Built with serde, so every value is escaped as JSON; a URL from the file enters the
//! secrets template as a quoted template string, so its `{{` stays text. Golden-file tested;
//! `nomad job run` is the operator's.

use serde_json::{json, Value};

use crate::driver::RenderOptions;
use crate::driver::RevisionStatus;
use crate::driver::{
    ClusterStatus, Driver, DriverError, Object, ObjectRef, PodStatus, Release, Revision, Step,
};
use crate::drivers::local::desired_pods;
use crate::model::OpenClawCluster;
use crate::quantity::{bytes, cpu_millis};

/// Nomad's API takes durations in nanoseconds.
const fn secs(n: u64) -> u64 {
    n * 1_000_000_000
}

/// A literal inside a template: a Go template string (JSON's escapes are a subset of Go's).
fn template_literal(text: &str) -> String {
    format!("{{{{ {} }}}}", Value::String(text.to_string()))
}

/// The job, as Nomad's API JSON (`{"Job": ...}`, as `nomad job run -output` prints it).
pub fn render(c: &OpenClawCluster, o: &RenderOptions) -> Value {
    let pods = desired_pods(c, o);
    let count = |component: &str| pods.iter().filter(|p| p.component == component).count();
    // Nomad's CPU is in MHz; one core counts as 1000 here. Memory in MiB.
    let cpu = cpu_millis(&c.spec.resources.requests.cpu).unwrap_or(1000);
    let memory = bytes(&c.spec.resources.requests.memory).unwrap_or(1 << 30) >> 20;
    let memory_max = bytes(&c.spec.resources.limits.memory).unwrap_or(1 << 30) >> 20;
    // The database URL from the file, else from the Nomad variable `oclaw/storage` (key `url`).
    let storage = match &c.spec.storage.url {
        Some(url) => template_literal(url),
        None => r#"{{ with nomadVar "oclaw/storage" }}{{ .url }}{{ end }}"#.to_string(),
    };
    let env = format!(
        "OCLAW_STORAGE__URL={storage}\nOCLAW_API__TOKENS={{{{ with nomadVar \"oclaw/api\" }}}}{{{{ .tokens }}}}{{{{ end }}}}\n"
    );
    let mut groups = Vec::new();
    for component in ["api-server", "scheduler", "worker"] {
        let n = count(component);
        if n == 0 {
            continue;
        }
        let api = component == "api-server";
        let port = if api { c.spec.network.port } else { 9090 };
        let ports = if api {
            json!({"ReservedPorts": [{"Label": "http", "Value": port, "To": port}]})
        } else {
            json!({"DynamicPorts": [{"Label": "http", "To": port}]})
        };
        let mut group = json!({
            "Name": component,
            "Count": n,
            "Networks": [ports],
            "Services": [{
                "Name": format!("oclaw-{component}"),
                "PortLabel": "http",
                "Provider": "nomad",
                "Checks": [{
                    "Name": "readyz",
                    "Type": "http",
                    "Path": "/readyz",
                    "Interval": secs(10),
                    "Timeout": secs(2),
                }],
            }],
            "Tasks": [{
                "Name": component,
                "Driver": "docker",
                "KillTimeout": secs(60),
                "Config": {
                    "image": c.image(),
                    "args": [component, "--listen", format!("0.0.0.0:{port}"), "--node-id", "${NOMAD_ALLOC_ID}"],
                    "ports": ["http"],
                },
                "Templates": [{
                    "DestPath": "secrets/env",
                    "Envvars": true,
                    "EmbeddedTmpl": env,
                }],
                "Resources": {"CPU": cpu, "MemoryMB": memory, "MemoryMaxMB": memory_max},
            }],
        });
        if component == "worker" {
            let w = &c.spec.components.worker;
            group["Scaling"] = json!({
                "Min": n.max(1),
                "Max": (w.max_replicas as usize).max(n),
                "Enabled": true,
            });
        }
        groups.push(group);
    }
    json!({"Job": {
        "ID": c.metadata.name,
        "Name": c.metadata.name,
        "Namespace": c.metadata.namespace,
        "Type": "service",
        "Datacenters": ["*"],
        "Meta": {"rendered-by": "oclaw deploy core --driver nomad --dry-run"},
        "Update": {
            "MaxParallel": 1,
            "Canary": 1,
            "AutoPromote": false,
            "AutoRevert": true,
            "MinHealthyTime": secs(10),
            "HealthyDeadline": secs(300),
            "ProgressDeadline": secs(600),
        },
        "TaskGroups": groups,
    }})
}

/// The job as the text `--dry-run` prints.
pub fn render_text(c: &OpenClawCluster, o: &RenderOptions) -> String {
    let mut text = serde_json::to_string_pretty(&render(c, o)).unwrap_or_default();
    text.push('\n');
    text
}

/// The Nomad driver: its pure step (the job) behind the same trait as the others; the platform
/// steps (submitting to a Nomad agent, reading allocations) are not built and say what to run
/// instead.
pub struct NomadDriver;

/// What every platform step answers.
pub fn not_built() -> DriverError {
    DriverError::unavailable(
        "submitting to Nomad is not built yet; render the job and run it yourself: oclaw deploy core --driver nomad --dry-run > oclaw.nomad.json && nomad job run -json oclaw.nomad.json",
    )
}

impl Driver for NomadDriver {
    fn name(&self) -> &'static str {
        "nomad"
    }
    async fn preflight(&self) -> Result<(), DriverError> {
        Err(not_built())
    }
    async fn observe(&self, _: &OpenClawCluster) -> Result<Vec<ObjectRef>, DriverError> {
        Err(not_built())
    }
    /// One object: the job, as Nomad's API JSON.
    fn desired(
        &self,
        cluster: &OpenClawCluster,
        release: &Release,
    ) -> Result<Vec<Object>, DriverError> {
        Ok(vec![Object {
            id: ObjectRef {
                api_version: "nomad/v1".into(),
                kind: "Job".into(),
                name: "oclaw".into(),
                component: None,
            },
            body: render(cluster, &release.options),
        }])
    }
    async fn apply(
        &self,
        _: &[Object],
        _: &Release,
        _: &mut dyn FnMut(Step<'_>),
    ) -> Result<(), DriverError> {
        Err(not_built())
    }
    async fn delete(&self, _: &ObjectRef) -> Result<(), DriverError> {
        Err(not_built())
    }
    async fn status(&self) -> Result<ClusterStatus, DriverError> {
        Err(not_built())
    }
    async fn revisions(&self) -> Result<Vec<Revision>, DriverError> {
        Err(not_built())
    }
    async fn record(&self, _: &Revision, _: &str) -> Result<Vec<String>, DriverError> {
        Err(not_built())
    }
    async fn set_status(&self, _: u64, _: RevisionStatus) -> Result<(), DriverError> {
        Err(not_built())
    }
    async fn cluster_text(&self, _: u64) -> Result<String, DriverError> {
        Err(not_built())
    }
    async fn logs(&self, _: &str, _: bool) -> Result<Option<String>, DriverError> {
        Err(not_built())
    }
    async fn metrics(&self, _: &PodStatus) -> Result<Option<String>, DriverError> {
        Err(not_built())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SEED_EXAMPLE;

    #[test]
    fn the_driver_desires_the_job_and_builds_no_platform_step() {
        let c = OpenClawCluster::parse("p.yaml", SEED_EXAMPLE).unwrap();
        let release = Release {
            revision: 1,
            options: RenderOptions::default(),
            force: false,
        };
        let job = NomadDriver.desired(&c, &release).unwrap();
        assert_eq!(job.len(), 1);
        assert_eq!(job[0].body, render(&c, &RenderOptions::default()));
        // Its platform steps never wait: poll once.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut status = std::pin::pin!(NomadDriver.status());
        match std::future::Future::poll(status.as_mut(), &mut cx) {
            std::task::Poll::Ready(Err(e)) => {
                assert_eq!(e.code, oclaw_core::ErrorCode::DriverUnavailable);
                assert!(e.message.contains("nomad job run"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn groups_follow_the_components_and_values_stay_text() {
        let mut c = OpenClawCluster::parse("p.yaml", SEED_EXAMPLE).unwrap();
        let all = render(&c, &RenderOptions::default());
        let groups = all["Job"]["TaskGroups"].as_array().unwrap();
        let counts: Vec<(&str, u64)> = groups
            .iter()
            .map(|g| (g["Name"].as_str().unwrap(), g["Count"].as_u64().unwrap()))
            .collect();
        assert_eq!(counts, [("api-server", 3), ("scheduler", 2), ("worker", 3)]);
        assert_eq!(all["Job"]["Update"]["AutoRevert"], true);
        assert_eq!(groups[0]["Networks"][0]["ReservedPorts"][0]["Value"], 8080);
        let one = render(
            &c,
            &RenderOptions {
                components: vec!["worker".into()],
                ha: false,
            },
        );
        let groups = one["Job"]["TaskGroups"].as_array().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(
            (groups[0]["Name"].as_str(), groups[0]["Count"].as_u64()),
            (Some("worker"), Some(1))
        );
        // A URL with template and interpolation markers stays a literal of the template.
        c.spec.storage.url = Some("postgres://u:p{{x}}\"q${y}@db/oclaw".into());
        let job = render(&c, &RenderOptions::default());
        let tmpl = job["Job"]["TaskGroups"][0]["Tasks"][0]["Templates"][0]["EmbeddedTmpl"]
            .as_str()
            .unwrap();
        assert!(
            tmpl.starts_with(r#"OCLAW_STORAGE__URL={{ "postgres://u:p{{x}}\"q${y}@db/oclaw" }}"#),
            "{tmpl}"
        );
    }
}

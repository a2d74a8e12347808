//! The Nomad driver's render step (for dev/test clusters): one job with a group per component,
//! an `update` stanza that canaries and auto-reverts, health checks on `/readyz`, and the
//! worker group's scaling bounds. Secrets come from Nomad variables (`oclaw/storage` key `url`
//! unless the file gives one, `oclaw/api` key `tokens`). Golden-file tested; `nomad job run` is
//! the operator's.

use std::fmt::Write;

use crate::driver::RenderOptions;
use crate::driver::RevisionStatus;
use crate::driver::{
    ClusterStatus, Driver, DriverError, Object, ObjectRef, PodStatus, Release, Revision, Step,
};
use crate::drivers::local::desired_pods;
use crate::model::OpenClawCluster;
use crate::quantity::{bytes, cpu_millis};

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The job as HCL.
pub fn render(c: &OpenClawCluster, o: &RenderOptions) -> String {
    let pods = desired_pods(c, o);
    let count = |component: &str| pods.iter().filter(|p| p.component == component).count();
    // Nomad's CPU is in MHz; one core counts as 1000 here. Memory in MiB.
    let cpu = cpu_millis(&c.spec.resources.requests.cpu).unwrap_or(1000);
    let memory = bytes(&c.spec.resources.requests.memory).unwrap_or(1 << 30) >> 20;
    let memory_max = bytes(&c.spec.resources.limits.memory).unwrap_or(1 << 30) >> 20;
    // The database URL from the file, else from the Nomad variable `oclaw/storage` (key `url`).
    let storage = match &c.spec.storage.url {
        Some(url) => url.clone(),
        None => r#"{{ with nomadVar "oclaw/storage" }}{{ .url }}{{ end }}"#.to_string(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Rendered by `oclaw deploy core --driver nomad --dry-run` from cluster {}.",
        c.metadata.name
    );
    let _ = writeln!(out, "job {} {{", quote(&c.metadata.name));
    let _ = writeln!(out, "  namespace   = {}", quote(&c.metadata.namespace));
    let _ = writeln!(out, "  type        = \"service\"");
    let _ = writeln!(out, "  datacenters = [\"*\"]");
    let _ = writeln!(out, "\n  update {{\n    max_parallel      = 1\n    canary            = 1\n    auto_promote      = false\n    auto_revert       = true\n    min_healthy_time  = \"10s\"\n    healthy_deadline  = \"5m\"\n    progress_deadline = \"10m\"\n  }}");
    for component in ["api-server", "scheduler", "worker"] {
        let n = count(component);
        if n == 0 {
            continue;
        }
        let api = component == "api-server";
        let _ = writeln!(out, "\n  group {} {{", quote(component));
        let _ = writeln!(out, "    count = {n}");
        if component == "worker" {
            let w = &c.spec.components.worker;
            let _ = writeln!(out, "\n    scaling {{\n      min     = {}\n      max     = {}\n      enabled = true\n    }}", n.max(1), w.max_replicas.max(n as u32));
        }
        let port = if api {
            format!("        static = {}\n", c.spec.network.port)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\n    network {{\n      port \"http\" {{\n{port}        to = {}\n      }}\n    }}",
            if api { c.spec.network.port } else { 9090 }
        );
        let _ = writeln!(
            out,
            "\n    service {{\n      name     = {}\n      port     = \"http\"\n      provider = \"nomad\"\n\n      check {{\n        type     = \"http\"\n        path     = \"/readyz\"\n        interval = \"10s\"\n        timeout  = \"2s\"\n      }}\n    }}",
            quote(&format!("oclaw-{component}"))
        );
        let _ = writeln!(
            out,
            "\n    task {} {{\n      driver       = \"docker\"\n      kill_timeout = \"60s\"\n",
            quote(component)
        );
        let listen = format!("0.0.0.0:{}", if api { c.spec.network.port } else { 9090 });
        let _ = writeln!(
            out,
            "      config {{\n        image = {}\n        args  = [{}, \"--listen\", {}, \"--node-id\", \"${{NOMAD_ALLOC_ID}}\"]\n        ports = [\"http\"]\n      }}",
            quote(&c.image()),
            quote(component),
            quote(&listen)
        );
        let _ = writeln!(out, "\n      template {{\n        destination = \"secrets/env\"\n        env         = true\n        data        = <<-EOT\n          OCLAW_STORAGE__URL={storage}\n          OCLAW_API__TOKENS={{{{ with nomadVar \"oclaw/api\" }}}}{{{{ .tokens }}}}{{{{ end }}}}\n        EOT\n      }}");
        let _ = writeln!(out, "\n      resources {{\n        cpu        = {cpu}\n        memory     = {memory}\n        memory_max = {memory_max}\n      }}\n    }}\n  }}");
    }
    out.push_str("}\n");
    out
}

/// The Nomad driver: its pure step (the job) behind the same trait as the others; the platform
/// steps (submitting to a Nomad agent, reading allocations) are not built and say what to run
/// instead.
pub struct NomadDriver;

/// What every platform step answers.
pub fn not_built() -> DriverError {
    DriverError::unavailable(
        "submitting to Nomad is not built yet; render the job and run it yourself: oclaw deploy core --driver nomad --dry-run > oclaw.nomad.hcl && nomad job run oclaw.nomad.hcl",
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
    /// One object: the job, as HCL.
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
            body: serde_json::Value::String(render(cluster, &release.options)),
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
        assert_eq!(
            job[0].body.as_str().unwrap(),
            render(&c, &RenderOptions::default())
        );
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
    fn groups_follow_the_components() {
        let c = OpenClawCluster::parse("p.yaml", SEED_EXAMPLE).unwrap();
        let all = render(&c, &RenderOptions::default());
        assert!(
            all.contains("group \"api-server\" {\n    count = 3"),
            "{all}"
        );
        assert!(all.contains("group \"worker\" {\n    count = 3"), "{all}");
        assert!(all.contains("auto_revert       = true"));
        assert!(all.contains("static = 8080"));
        let one = render(
            &c,
            &RenderOptions {
                components: vec!["worker".into()],
                ha: false,
            },
        );
        assert!(
            !one.contains("api-server") && one.contains("count = 1"),
            "{one}"
        );
    }
}

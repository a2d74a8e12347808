//! The local driver's pure step: the pods (processes on this host) a cluster wants. Pods are
//! named as on Kubernetes (`api-server-0`, `scheduler-1`, `worker-2`); api-servers listen on the
//! cluster's port and the next ones, schedulers and workers serve their probes on ports after
//! those.

use serde::{Deserialize, Serialize};

use crate::driver::RenderOptions;
use crate::model::OpenClawCluster;

/// One process the supervisor keeps running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSpec {
    pub name: String,
    pub component: String,
    /// Loopback port of its API (api-server) or probes (scheduler, worker).
    pub port: u16,
}

/// The pods for `options` (components and HA mode), in start order: schedulers, workers,
/// api-servers.
pub fn desired_pods(c: &OpenClawCluster, o: &RenderOptions) -> Vec<PodSpec> {
    let wants = |name: &str| o.components.iter().any(|x| x == name);
    let ha = |n: u32| if o.ha { n } else { 1 };
    let api = if wants("api-server") {
        ha(c.api_replicas())
    } else {
        0
    };
    let schedulers = if wants("scheduler") {
        ha(c.spec.components.scheduler.replicas)
    } else {
        0
    };
    // Locally there is no autoscaler: workers run at the floor of their range.
    let workers = if wants("worker") {
        ha(c.spec.components.worker.min_replicas)
    } else {
        0
    };
    let base = c.spec.network.port;
    let mut pods = Vec::new();
    let mut next_probe = base.saturating_add(100);
    for (component, n) in [("scheduler", schedulers), ("worker", workers)] {
        for i in 0..n {
            pods.push(PodSpec {
                name: format!("{component}-{i}"),
                component: component.into(),
                port: next_probe,
            });
            next_probe = next_probe.saturating_add(1);
        }
    }
    for i in 0..api {
        pods.push(PodSpec {
            name: format!("api-server-{i}"),
            component: "api-server".into(),
            port: base.saturating_add(i as u16),
        });
    }
    pods
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SEED_EXAMPLE;

    #[test]
    fn pods_follow_components_and_ha_mode() {
        let c = OpenClawCluster::parse("p.yaml", SEED_EXAMPLE).unwrap();
        let all = desired_pods(&c, &RenderOptions::default());
        let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "scheduler-0",
                "scheduler-1",
                "worker-0",
                "worker-1",
                "worker-2",
                "api-server-0",
                "api-server-1",
                "api-server-2"
            ]
        );
        assert_eq!(
            all.iter().find(|p| p.name == "api-server-1").unwrap().port,
            8081
        );
        let one = desired_pods(
            &c,
            &RenderOptions {
                components: vec!["worker".into()],
                ha: false,
            },
        );
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "worker-0");
    }
}

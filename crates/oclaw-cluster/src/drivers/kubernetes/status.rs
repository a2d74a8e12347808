//! What the API server says of a cluster's pods and Deployments, as driver statuses: readiness,
//! restarts, the last exit and why a pod cannot be scheduled; replicas counted as `kubectl
//! rollout status` counts them.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::render::REVISION_LABEL;
use crate::driver::{ComponentStatus, PodStatus};

pub(super) fn u32_at(v: &Value) -> u32 {
    v.as_u64().unwrap_or(0) as u32
}

pub(super) fn pod_status(p: &Value) -> PodStatus {
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
pub(super) fn component_status(d: &Value) -> ComponentStatus {
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

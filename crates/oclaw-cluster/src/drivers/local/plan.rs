//! The supervisor's decisions, without I/O: which stale pods to replace this round, whether
//! every pod is settled on its revision, how long a crashed pod waits before its restart, and
//! how an exit is described.

use std::collections::HashMap;
use std::time::Duration;

use super::record::{target_revision, Desired, PodState};
use super::render::PodSpec;

/// The pods to replace onto their target revision this round. A stale pod that is not ready
/// serves nothing and is replaced at once (a canary that crash-loops must not block its own
/// rollback); a stale pod that serves is replaced one at a time, only while every pod is ready;
/// with `force` every stale pod goes at once. A replaced pod is not a restart.
pub fn replacements(
    want: &[PodSpec],
    pods: &HashMap<String, PodState>,
    desired: &Desired,
) -> Vec<String> {
    let stale: Vec<String> = want
        .iter()
        .filter(|w| {
            pods.get(&w.name)
                .is_some_and(|p| p.pid.is_some() && p.revision != target_revision(w, want, desired))
        })
        .map(|w| w.name.clone())
        .collect();
    let all_ready = want
        .iter()
        .all(|w| pods.get(&w.name).is_some_and(|p| p.ready));
    let (broken, serving): (Vec<String>, Vec<String>) = stale
        .into_iter()
        .partition(|n| pods.get(n).is_some_and(|p| !p.ready));
    if desired.force {
        broken.into_iter().chain(serving).collect()
    } else if all_ready {
        serving.into_iter().take(1).collect()
    } else {
        broken
    }
}

/// Every wanted pod runs, is ready and is on its target revision.
pub fn settled(want: &[PodSpec], pods: &HashMap<String, PodState>, desired: &Desired) -> bool {
    want.iter().all(|w| {
        pods.get(&w.name).is_some_and(|p| {
            p.ready && p.pid.is_some() && p.revision == target_revision(w, want, desired)
        })
    })
}

/// The wait before restart number `restarts`: 1 s, doubling, at most 30 s.
pub fn backoff(restarts: u32) -> Duration {
    Duration::from_secs(1u64 << restarts.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// How a pod's process ended, as `status` shows it.
pub fn exit_reason(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!(
            "killed by signal {sig}{}",
            if sig == 9 { " (SIGKILL)" } else { "" }
        ),
        _ => "exited".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::local::record::Canary;

    fn spec(name: &str, component: &str) -> PodSpec {
        PodSpec {
            name: name.into(),
            component: component.into(),
            port: 0,
        }
    }

    fn pod(name: &str, revision: u64, ready: bool) -> (String, PodState) {
        (
            name.to_string(),
            PodState {
                name: name.into(),
                component: "worker".into(),
                port: 0,
                pid: Some(1),
                status: "Running".into(),
                ready,
                restarts: 0,
                started_at: None,
                last_exit: None,
                revision,
            },
        )
    }

    fn want() -> Vec<PodSpec> {
        vec![
            spec("worker-0", "worker"),
            spec("worker-1", "worker"),
            spec("worker-2", "worker"),
        ]
    }

    fn on(revision: u64) -> Desired {
        Desired {
            revision,
            ..Desired::default()
        }
    }

    #[test]
    fn serving_stale_pods_are_replaced_one_at_a_time_while_all_are_ready() {
        let pods: HashMap<_, _> = [
            pod("worker-0", 1, true),
            pod("worker-1", 1, true),
            pod("worker-2", 2, true),
        ]
        .into();
        assert_eq!(replacements(&want(), &pods, &on(2)), vec!["worker-0"]);
        // One not ready: no serving pod is taken away.
        let pods: HashMap<_, _> = [
            pod("worker-0", 1, true),
            pod("worker-1", 1, true),
            pod("worker-2", 2, false),
        ]
        .into();
        assert!(replacements(&want(), &pods, &on(2)).is_empty());
    }

    #[test]
    fn stale_pods_that_serve_nothing_go_at_once_and_force_takes_every_stale_pod() {
        let pods: HashMap<_, _> = [
            pod("worker-0", 1, false),
            pod("worker-1", 1, true),
            pod("worker-2", 1, false),
        ]
        .into();
        assert_eq!(
            replacements(&want(), &pods, &on(2)),
            vec!["worker-0", "worker-2"]
        );
        let forced = Desired {
            force: true,
            ..on(2)
        };
        assert_eq!(
            replacements(&want(), &pods, &forced),
            vec!["worker-0", "worker-2", "worker-1"]
        );
        // Nothing stale, nothing replaced.
        assert!(replacements(&want(), &pods, &on(1)).is_empty());
    }

    #[test]
    fn a_canary_keeps_its_share_of_pods_on_the_new_revision() {
        let canary = Desired {
            revision: 1,
            canary: Some(Canary {
                revision: 2,
                percent: 20,
            }),
            ..Desired::default()
        };
        let pods: HashMap<_, _> = [
            pod("worker-0", 2, true),
            pod("worker-1", 1, true),
            pod("worker-2", 1, true),
        ]
        .into();
        assert!(replacements(&want(), &pods, &canary).is_empty());
        assert!(settled(&want(), &pods, &canary));
        // Promoted: the canary's revision everywhere, one pod at a time.
        assert_eq!(replacements(&want(), &pods, &on(2)), vec!["worker-1"]);
        assert!(!settled(&want(), &pods, &on(2)));
    }

    #[test]
    fn a_missing_or_stopped_pod_is_not_settled() {
        let mut pods: HashMap<_, _> = [pod("worker-0", 1, true), pod("worker-1", 1, true)].into();
        assert!(!settled(&want(), &pods, &on(1)));
        pods.extend([pod("worker-2", 1, true)]);
        assert!(settled(&want(), &pods, &on(1)));
        if let Some(p) = pods.get_mut("worker-2") {
            p.pid = None;
        }
        assert!(!settled(&want(), &pods, &on(1)));
    }

    #[test]
    fn restarts_back_off_from_one_second_to_thirty() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn exits_are_described_by_code_or_signal() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            exit_reason(std::process::ExitStatus::from_raw(2 << 8)),
            "exited with code 2"
        );
        assert_eq!(
            exit_reason(std::process::ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            exit_reason(std::process::ExitStatus::from_raw(15)),
            "killed by signal 15"
        );
    }
}

//! The canary rollout as a pure state machine: `step(status, spec, observation, now)` answers
//! the next status and the actions the driver must take. No I/O here, so every path — healthy
//! canary, failed analysis, timeout, promotion — is unit-tested. The drivers observe (pods
//! ready, the canary pods' own metrics) and act (run the canary, promote, roll back).
//!
//! Phases: `Pending` → `Canary` (the canary pods start) → `Analyzing` (their metrics are
//! watched for `analysis_window`) → `Paused` (healthy; waits for `upgrade --rollout-strategy
//! all-in --confirm`) → `Promoting` (every pod moves) → `Succeeded`. Any failed analysis, a canary
//! pod that stops being ready, or `timeout` passing before `Succeeded` → `Aborted` with a
//! rollback to the revision before.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a rollout is judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutSpec {
    /// Share of each component's pods that run the new revision first (at least one).
    pub canary_percent: u8,
    /// From the start of the rollout to `Succeeded`; past it, the rollout is aborted.
    pub timeout: Duration,
    /// How long healthy canary pods are watched before the rollout pauses for confirmation.
    pub analysis_window: Duration,
    /// Failed task attempts / all attempts on the canary pods above which analysis fails.
    pub max_task_error_rate: f64,
    /// API P99 latency of the canary api-servers above which analysis fails (the seed's 0.5 s).
    pub max_api_p99: Duration,
    /// Scheduling failures / attempts above which analysis fails (the seed's 5 %).
    pub max_scheduling_failure_rate: f64,
    /// Fewer task attempts than this are not enough to judge an error rate.
    pub min_tasks: u64,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec {
            canary_percent: 20,
            timeout: Duration::from_secs(3600),
            analysis_window: Duration::from_secs(60),
            max_task_error_rate: 0.05,
            max_api_p99: Duration::from_millis(500),
            max_scheduling_failure_rate: 0.05,
            min_tasks: 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Pending,
    Canary,
    Analyzing,
    Paused,
    Promoting,
    Succeeded,
    Aborted,
}

/// Where a rollout stands; `now` values are seconds on the driver's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStatus {
    pub phase: Phase,
    /// The revision being rolled out, and the one it replaces.
    pub revision: u64,
    pub from_revision: u64,
    pub started_at: f64,
    pub analysis_since: Option<f64>,
    /// Why it aborted, or a note on how it passed.
    pub reason: Option<String>,
}

impl RolloutStatus {
    pub fn new(revision: u64, from_revision: u64, now: f64) -> RolloutStatus {
        RolloutStatus {
            phase: Phase::Pending,
            revision,
            from_revision,
            started_at: now,
            analysis_since: None,
            reason: None,
        }
    }

    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Succeeded | Phase::Aborted)
    }
}

/// A rollout in progress as a driver stores it (local: `rollout.json`; Kubernetes: a
/// ConfigMap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub status: RolloutStatus,
    pub spec: RolloutSpec,
    /// `upgrade --rollout-strategy all-in --confirm` was given.
    pub confirmed: bool,
}

/// What the driver saw since the rollout started.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    pub canary_pods: usize,
    pub canary_ready: usize,
    pub pods: usize,
    /// Pods running the new revision and ready.
    pub new_ready: usize,
    /// Task attempts finished on the canary pods, and how many failed.
    pub tasks: u64,
    pub failed_tasks: u64,
    pub api_p99: Option<Duration>,
    pub scheduling_attempts: u64,
    pub scheduling_failures: u64,
    /// `upgrade --rollout-strategy all-in --confirm` was given.
    pub confirmed: bool,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    RunCanary { revision: u64, percent: u8 },
    Promote { revision: u64 },
    Rollback { to_revision: u64, reason: String },
    MarkDeployed { revision: u64 },
    MarkFailed { revision: u64 },
}

fn abort(s: &RolloutStatus, reason: String) -> (RolloutStatus, Vec<Action>) {
    let next = RolloutStatus {
        phase: Phase::Aborted,
        reason: Some(reason.clone()),
        ..s.clone()
    };
    let actions = vec![
        Action::MarkFailed {
            revision: s.revision,
        },
        Action::Rollback {
            to_revision: s.from_revision,
            reason,
        },
    ];
    (next, actions)
}

/// The `q` quantile of a Prometheus histogram, as `histogram_quantile` computes it: `buckets` are
/// (upper bound, cumulative count) pairs — several series may repeat a bound, they are added —
/// with the `+Inf` bucket holding the total. Linear within the bucket the rank falls in; `None`
/// without observations.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut by_bound: Vec<(f64, f64)> = Vec::new();
    for &(le, count) in buckets {
        match by_bound.iter_mut().find(|(b, _)| *b == le) {
            Some(slot) => slot.1 += count,
            None => by_bound.push((le, count)),
        }
    }
    by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = by_bound.last().filter(|b| b.0.is_infinite())?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in &by_bound {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            if count <= below {
                return Some(le);
            }
            return Some(lower + (le - lower) * (rank - below) / (count - below));
        }
        lower = le;
        below = count;
    }
    Some(lower)
}

/// Why the canary's metrics fail analysis, if they do.
fn analysis_failure(spec: &RolloutSpec, o: &Observation) -> Option<String> {
    if o.canary_ready < o.canary_pods {
        return Some(format!(
            "{} of {} canary pods are not ready",
            o.canary_pods - o.canary_ready,
            o.canary_pods
        ));
    }
    if o.tasks >= spec.min_tasks {
        let rate = o.failed_tasks as f64 / o.tasks as f64;
        if rate > spec.max_task_error_rate {
            return Some(format!(
                "task error rate {:.1} % on the canary is above {:.1} %",
                rate * 100.0,
                spec.max_task_error_rate * 100.0
            ));
        }
    }
    if let Some(p99) = o.api_p99 {
        if p99 > spec.max_api_p99 {
            return Some(format!(
                "API P99 {} ms on the canary is above {} ms",
                p99.as_millis(),
                spec.max_api_p99.as_millis()
            ));
        }
    }
    if o.scheduling_attempts >= spec.min_tasks {
        let rate = o.scheduling_failures as f64 / o.scheduling_attempts as f64;
        if rate > spec.max_scheduling_failure_rate {
            return Some(format!(
                "scheduling failure rate {:.1} % is above {:.1} %",
                rate * 100.0,
                spec.max_scheduling_failure_rate * 100.0
            ));
        }
    }
    None
}

/// One step of the rollout.
pub fn step(
    s: &RolloutStatus,
    spec: &RolloutSpec,
    o: &Observation,
    now: f64,
) -> (RolloutStatus, Vec<Action>) {
    if s.finished() {
        return (s.clone(), Vec::new());
    }
    if now - s.started_at > spec.timeout.as_secs_f64() {
        return abort(
            s,
            format!(
                "the rollout did not finish within {}s",
                spec.timeout.as_secs()
            ),
        );
    }
    let with = |phase: Phase| RolloutStatus { phase, ..s.clone() };
    match s.phase {
        Phase::Pending => (
            with(Phase::Canary),
            vec![Action::RunCanary {
                revision: s.revision,
                percent: spec.canary_percent,
            }],
        ),
        Phase::Canary => {
            if o.canary_pods > 0 && o.canary_ready == o.canary_pods {
                (
                    RolloutStatus {
                        phase: Phase::Analyzing,
                        analysis_since: Some(now),
                        ..s.clone()
                    },
                    Vec::new(),
                )
            } else {
                (s.clone(), Vec::new())
            }
        }
        Phase::Analyzing => {
            if let Some(why) = analysis_failure(spec, o) {
                return abort(s, why);
            }
            let since = s.analysis_since.unwrap_or(now);
            if now - since < spec.analysis_window.as_secs_f64() {
                return (s.clone(), Vec::new());
            }
            let note = if o.tasks < spec.min_tasks {
                format!(
                    "passed, but only {} ran on the canary: too few to judge its error rate",
                    oclaw_core::suggest::counted(o.tasks, "task")
                )
            } else {
                format!("passed: {} tasks, {} failed", o.tasks, o.failed_tasks)
            };
            let paused = RolloutStatus {
                phase: Phase::Paused,
                reason: Some(note),
                ..s.clone()
            };
            if o.confirmed {
                return (
                    RolloutStatus {
                        phase: Phase::Promoting,
                        ..paused
                    },
                    vec![Action::Promote {
                        revision: s.revision,
                    }],
                );
            }
            (paused, Vec::new())
        }
        Phase::Paused => {
            // The canary keeps serving while paused: it must stay healthy.
            if let Some(why) = analysis_failure(spec, o) {
                return abort(s, why);
            }
            if o.confirmed {
                (
                    with(Phase::Promoting),
                    vec![Action::Promote {
                        revision: s.revision,
                    }],
                )
            } else {
                (s.clone(), Vec::new())
            }
        }
        Phase::Promoting => {
            if o.pods > 0 && o.new_ready == o.pods {
                (
                    with(Phase::Succeeded),
                    vec![Action::MarkDeployed {
                        revision: s.revision,
                    }],
                )
            } else {
                (s.clone(), Vec::new())
            }
        }
        Phase::Succeeded | Phase::Aborted => (s.clone(), Vec::new()),
    }
}

/// How many of `n` pods run the canary: `percent` of them, at least one.
pub fn canary_count(n: usize, percent: u8) -> usize {
    if n == 0 {
        return 0;
    }
    ((n * percent as usize).div_ceil(100)).clamp(1, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RolloutSpec {
        RolloutSpec {
            timeout: Duration::from_secs(600),
            analysis_window: Duration::from_secs(60),
            ..Default::default()
        }
    }

    #[test]
    fn histogram_quantile_interpolates_like_prometheus() {
        // 100 requests: 90 under 10 ms, 9 more under 100 ms, 1 under 1 s; two series.
        let buckets = [
            (0.01, 50.0),
            (0.1, 54.0),
            (1.0, 55.0),
            (f64::INFINITY, 55.0),
            (0.01, 40.0),
            (0.1, 45.0),
            (1.0, 45.0),
            (f64::INFINITY, 45.0),
        ];
        let p50 = histogram_quantile(0.5, &buckets).unwrap();
        assert!((p50 - 0.01 * 50.0 / 90.0).abs() < 1e-9, "{p50}");
        let p99 = histogram_quantile(0.99, &buckets).unwrap();
        assert!((p99 - 0.1).abs() < 1e-9, "{p99}");
        let p995 = histogram_quantile(0.995, &buckets).unwrap();
        assert!((p995 - 0.55).abs() < 1e-9, "{p995}");
        assert_eq!(
            histogram_quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 0.0)]),
            None
        );
        assert_eq!(
            histogram_quantile(0.99, &[(0.1, 3.0)]),
            None,
            "no +Inf bucket"
        );
        // Everything above the largest finite bound: the answer is that bound.
        assert_eq!(
            histogram_quantile(0.99, &[(0.5, 0.0), (f64::INFINITY, 10.0)]),
            Some(0.5)
        );
    }

    fn healthy() -> Observation {
        Observation {
            canary_pods: 2,
            canary_ready: 2,
            pods: 8,
            new_ready: 2,
            tasks: 100,
            failed_tasks: 1,
            api_p99: Some(Duration::from_millis(40)),
            ..Default::default()
        }
    }

    /// Runs observations at the given times; answers every status and all actions.
    fn run(steps: &[(f64, Observation)]) -> (Vec<Phase>, Vec<Action>) {
        let mut s = RolloutStatus::new(2, 1, 0.0);
        let mut phases = Vec::new();
        let mut actions = Vec::new();
        for (now, o) in steps {
            let (next, mut a) = step(&s, &spec(), o, *now);
            phases.push(next.phase);
            actions.append(&mut a);
            s = next;
        }
        (phases, actions)
    }

    #[test]
    fn a_healthy_canary_pauses_then_promotes_on_confirmation() {
        let starting = Observation {
            canary_pods: 2,
            canary_ready: 0,
            ..healthy()
        };
        let confirmed = Observation {
            confirmed: true,
            ..healthy()
        };
        let promoted = Observation {
            new_ready: 8,
            ..confirmed.clone()
        };
        let (phases, actions) = run(&[
            (0.0, starting.clone()),
            (5.0, starting),
            (10.0, healthy()),
            (40.0, healthy()),
            (71.0, healthy()),
            (300.0, healthy()),
            (310.0, confirmed.clone()),
            (320.0, confirmed),
            (330.0, promoted),
        ]);
        use Phase::*;
        assert_eq!(
            phases,
            [
                Canary, Canary, Analyzing, Analyzing, Paused, Paused, Promoting, Promoting,
                Succeeded
            ]
        );
        assert_eq!(
            actions,
            [
                Action::RunCanary {
                    revision: 2,
                    percent: 20
                },
                Action::Promote { revision: 2 },
                Action::MarkDeployed { revision: 2 }
            ]
        );
    }

    #[test]
    fn failed_analysis_aborts_and_rolls_back() {
        let failing = Observation {
            failed_tasks: 30,
            ..healthy()
        };
        let (phases, actions) = run(&[(0.0, healthy()), (1.0, healthy()), (20.0, failing)]);
        assert_eq!(phases.last(), Some(&Phase::Aborted));
        assert_eq!(actions[1], Action::MarkFailed { revision: 2 });
        match &actions[2] {
            Action::Rollback {
                to_revision: 1,
                reason,
            } => assert!(reason.contains("error rate 30.0 %"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // Slow API, failing scheduling and a canary pod going down fail it too.
        for bad in [
            Observation {
                api_p99: Some(Duration::from_millis(900)),
                ..healthy()
            },
            Observation {
                scheduling_attempts: 100,
                scheduling_failures: 10,
                ..healthy()
            },
            Observation {
                canary_ready: 1,
                ..healthy()
            },
        ] {
            let (phases, _) = run(&[(0.0, healthy()), (1.0, healthy()), (2.0, bad)]);
            assert_eq!(phases.last(), Some(&Phase::Aborted));
        }
        // Errors among too few tasks do not judge the canary.
        let few = Observation {
            tasks: 5,
            failed_tasks: 5,
            ..healthy()
        };
        let (phases, _) = run(&[(0.0, healthy()), (1.0, healthy()), (70.0, few)]);
        assert_eq!(phases.last(), Some(&Phase::Paused));
    }

    #[test]
    fn the_timeout_aborts_even_a_paused_rollout() {
        let (phases, actions) = run(&[
            (0.0, healthy()),
            (1.0, healthy()),
            (70.0, healthy()),
            (601.0, healthy()),
        ]);
        assert_eq!(
            phases,
            [
                Phase::Canary,
                Phase::Analyzing,
                Phase::Paused,
                Phase::Aborted
            ]
        );
        assert!(
            matches!(actions.last(), Some(Action::Rollback { to_revision: 1, reason }) if reason.contains("600s"))
        );
        // Finished rollouts stay finished.
        let done = RolloutStatus {
            phase: Phase::Aborted,
            ..RolloutStatus::new(2, 1, 0.0)
        };
        assert_eq!(
            step(&done, &spec(), &healthy(), 9999.0),
            (done.clone(), vec![])
        );
    }

    #[test]
    fn canary_share_is_at_least_one_pod() {
        assert_eq!(canary_count(3, 20), 1);
        assert_eq!(canary_count(10, 20), 2);
        assert_eq!(canary_count(10, 25), 3);
        assert_eq!(canary_count(1, 0), 1);
        assert_eq!(canary_count(0, 50), 0);
        assert_eq!(canary_count(4, 100), 4);
    }
}

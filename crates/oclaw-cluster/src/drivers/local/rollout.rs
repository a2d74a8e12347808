//! Canary rollouts on the local driver. The supervisor turns the shared rollout loop
//! ([`crate::release::turn`]) once a second over this platform: it observes the pods on the canary
//! revision (readiness, their `/metrics`), steps, and acts on `desired.json` (the canary's share of
//! pods, promotion, abort).
//! The `oclaw upgrade` process only starts a rollout (`begin`), promotes one (`promote`) and
//! follows `rollout.json` until it pauses or ends.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use oclaw_core::ErrorCode;

use super::record::{mark, read_json, target_revision, write_json, Canary, Desired, PodState};
use super::render::PodSpec;
use super::LocalDriver;
use crate::driver::DriverError;
use crate::driver::RevisionStatus;
use crate::release::{rollout_progress, turn, unix_now, Progress, RolloutPlatform};
use crate::rollout::{Action, Observation, Rollout, RolloutStatus};

/// A pod's `/metrics` page (empty when it does not answer).
async fn metrics_page(http: &reqwest::Client, port: u16) -> String {
    match http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The rollout loop as the local supervisor turns it: the record is `rollout.json`, the canary is
/// a share of the pods in `desired.json`, observed through the pods' state and `/metrics`.
struct Supervised<'a> {
    dir: &'a Path,
    want: &'a [PodSpec],
    pods: &'a HashMap<String, PodState>,
    http: &'a reqwest::Client,
}

impl Supervised<'_> {
    fn desired(&self) -> Desired {
        read_json(&self.dir.join("desired.json")).unwrap_or_default()
    }
}

impl RolloutPlatform for Supervised<'_> {
    /// The revision the rollout rolls out.
    type Seen = u64;

    async fn load(&self) -> Result<Option<Rollout>, DriverError> {
        Ok(read_json(&self.dir.join("rollout.json")))
    }

    async fn observe(&self, r: &Rollout) -> Result<(Observation, u64), DriverError> {
        let (want, desired) = (self.want, self.desired());
        let rev = r.status.revision;
        let canary_pods = want
            .iter()
            .filter(|w| target_revision(w, want, &desired) == rev && desired.canary.is_some())
            .count();
        let on_new: Vec<&PodState> = want
            .iter()
            .filter_map(|w| self.pods.get(&w.name))
            .filter(|p| p.revision == rev)
            .collect();
        let mut o = Observation {
            canary_pods,
            canary_ready: on_new.iter().filter(|p| p.ready).count().min(canary_pods),
            pods: want.len(),
            new_ready: on_new.iter().filter(|p| p.ready).count(),
            confirmed: r.confirmed,
            ..Default::default()
        };
        let mut pages = Vec::new();
        for p in on_new.iter().filter(|p| p.pid.is_some()) {
            pages.push(metrics_page(self.http, p.port).await);
        }
        crate::analysis::canary_metrics(&pages, r.spec.min_tasks, &mut o);
        Ok((o, rev))
    }

    async fn act(&self, rev: &u64, action: Action) -> Result<(), DriverError> {
        let mut desired = self.desired();
        match action {
            Action::RunCanary { revision, percent } => {
                desired.canary = Some(Canary { revision, percent })
            }
            Action::Promote { revision } => {
                desired.revision = revision;
                desired.canary = None;
            }
            Action::Rollback { reason, .. } => {
                slog!("canary of revision {rev} aborted: {reason}");
                desired.canary = None;
            }
            Action::MarkDeployed { revision } => {
                mark(self.dir, revision, RevisionStatus::Deployed);
                return Ok(());
            }
            Action::MarkFailed { revision } => {
                mark(self.dir, revision, RevisionStatus::Failed);
                return Ok(());
            }
        }
        let path = self.dir.join("desired.json");
        write_json(&path, &desired)
            .map_err(|e| DriverError::unavailable(format!("{}: {e}", path.display())))
    }

    async fn save(&self, r: &Rollout, _before: &RolloutStatus) -> Result<(), DriverError> {
        slog!(
            "rollout of revision {}: {:?}",
            r.status.revision,
            r.status.phase
        );
        let path = self.dir.join("rollout.json");
        write_json(&path, r)
            .map_err(|e| DriverError::unavailable(format!("{}: {e}", path.display())))
    }
}

/// One turn of the rollout loop, if a rollout is in progress (the supervisor calls it once a
/// second); a failure is logged and the next turn tries again.
pub(super) async fn drive_rollout(
    dir: &Path,
    want: &[PodSpec],
    pods: &HashMap<String, PodState>,
    http: &reqwest::Client,
) {
    let platform = Supervised {
        dir,
        want,
        pods,
        http,
    };
    if let Err(e) = turn(&platform, unix_now()).await {
        slog!(
            "rollout step failed: error[{}]: {}",
            e.code.code(),
            e.message
        );
    }
}

/// The canary rollout in progress, if any.
pub fn pending(d: &LocalDriver) -> Option<Rollout> {
    read_json::<Rollout>(&d.dir.join("rollout.json")).filter(|r| !r.status.finished())
}

/// `all-in --confirm` while a canary is in progress: confirmed, and followed until every pod
/// runs it.
pub fn promote(
    d: &LocalDriver,
    mut r: Rollout,
    timeout: Duration,
    p: &dyn Progress,
) -> Result<(), DriverError> {
    r.confirmed = true;
    let path = d.dir.join("rollout.json");
    write_json(&path, &r)
        .map_err(|e| DriverError::unavailable(format!("{}: {e}", path.display())))?;
    p.say(&format!(
        "promoting revision {} to every pod",
        r.status.revision
    ));
    follow(&d.dir, timeout, true, p)
}

/// Hands a started canary to the supervisor and follows it until it pauses or ends.
pub fn begin(
    d: &LocalDriver,
    rollout: &Rollout,
    timeout: Duration,
    p: &dyn Progress,
) -> Result<(), DriverError> {
    let path = d.dir.join("rollout.json");
    write_json(&path, rollout)
        .map_err(|e| DriverError::unavailable(format!("{}: {e}", path.display())))?;
    follow(&d.dir, timeout, false, p)
}

/// Follows a canary rollout, showing each phase, until it pauses for confirmation (unless
/// `to_the_end`), succeeds or aborts.
fn follow(
    dir: &Path,
    timeout: Duration,
    to_the_end: bool,
    p: &dyn Progress,
) -> Result<(), DriverError> {
    let deadline = Instant::now() + timeout + Duration::from_secs(10);
    let mut shown = None;
    loop {
        if let Some(r) = read_json::<Rollout>(&dir.join("rollout.json")) {
            if let Some(end) = rollout_progress(&r, &mut shown, to_the_end, p) {
                return end;
            }
        }
        if Instant::now() > deadline {
            return Err(DriverError::new(
                ErrorCode::RolloutFailed,
                "the rollout did not finish in time; see oclaw upgrade history",
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

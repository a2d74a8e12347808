//! Canary upgrades on any driver: the canary revision recorded and its rollout started, a
//! second canary refused, `all-in --confirm` promoting one in progress, and the rollout's phases
//! followed until it pauses or ends. Both drivers turn the same loop ([`turn`]: load, observe,
//! step the state machine [`crate::rollout::step`], act, save) over their own platform
//! ([`RolloutPlatform`]).

use std::path::PathBuf;
use std::time::Duration;

use oclaw_core::ErrorCode;

use super::{deployed, parse, unix_now, Progress};
use crate::driver::ReleaseAction;
use crate::driver::RevisionStatus;
use crate::driver::{Driver, DriverError, RenderOptions, Revision};
use crate::drivers::AnyDriver;
use crate::rollout::{step, Action, Observation, Phase, Rollout, RolloutSpec, RolloutStatus};

/// `oclaw upgrade`: the new cluster file and how to roll it out.
#[derive(Debug, Clone)]
pub struct CanaryRequest {
    /// The new cluster file.
    pub config: PathBuf,
    pub namespace: String,
    /// `canary`, else all-in.
    pub canary: bool,
    pub canary_percent: u8,
    /// Seconds of analysis before the canary pauses for promotion.
    pub analysis_window: u64,
    /// Seconds the rollout may take.
    pub timeout: u64,
}

/// `oclaw upgrade --rollout-strategy canary|all-in` on any driver: a canary started (or refused
/// while one is in progress), a canary in progress promoted by all-in, else a plain all-in
/// release.
pub async fn upgrade(
    d: &AnyDriver,
    req: &CanaryRequest,
    p: &dyn Progress,
) -> Result<(), DriverError> {
    let timeout = Duration::from_secs(req.timeout);
    match d {
        AnyDriver::Local(local) => {
            if let Some(r) = crate::drivers::local::rollout::pending(local) {
                if req.canary {
                    return Err(canary_in_progress(&r));
                }
                return crate::drivers::local::rollout::promote(local, r, timeout, p);
            }
            if req.canary {
                let rollout = start_canary(d, req, p).await?;
                return crate::drivers::local::rollout::begin(local, &rollout, timeout, p);
            }
        }
        #[cfg(feature = "kubernetes")]
        AnyDriver::Kubernetes(k) => {
            if crate::drivers::kubernetes::canary::upgrade(k, req, p).await? {
                return Ok(());
            }
        }
        AnyDriver::Nomad(_) => return Err(crate::drivers::nomad::not_built()),
    }
    let text = std::fs::read_to_string(&req.config).map_err(|e| {
        DriverError::new(
            ErrorCode::ConfigUnreadable,
            format!("{}: {e}", req.config.display()),
        )
    })?;
    super::upgrade_all_in(d, &text, &req.namespace, timeout, p).await
}

/// Starts a canary rollout of `args.config` on what is deployed: a new revision (status
/// `canary`) and the rollout record the driver then stores and follows.
pub async fn start_canary<D: Driver>(
    d: &D,
    args: &CanaryRequest,
    p: &dyn Progress,
) -> Result<Rollout, DriverError> {
    let text = std::fs::read_to_string(&args.config).map_err(|e| {
        DriverError::new(
            ErrorCode::ConfigUnreadable,
            format!("{}: {e}", args.config.display()),
        )
    })?;
    let new = parse(&text)?;
    if new.metadata.namespace != args.namespace {
        return Err(DriverError::new(
            ErrorCode::ClusterInvalid,
            format!(
                "{} is for namespace {}, not {}",
                args.config.display(),
                new.metadata.namespace,
                args.namespace
            ),
        ));
    }
    let history = d.revisions().await?;
    let current = deployed(&history, &args.namespace)?;
    d.preflight().await?;
    let rev = Revision::next(
        &history,
        &new,
        ReleaseAction::Upgrade,
        &RenderOptions {
            components: current.components.clone(),
            ha: current.ha,
        },
        format!(
            "canary {}%: upgrade from revision {} (version {}) to version {}",
            args.canary_percent,
            current.revision,
            current.version,
            new.version()
        ),
    );
    for warning in d.record(&rev, &text).await? {
        p.note(&format!("warning: {warning}"));
    }
    d.set_status(rev.revision, RevisionStatus::Canary).await?;
    p.say(&format!(
        "revision {} (version {}): canary on {}% of the pods, analysis for {}s",
        rev.revision, rev.version, args.canary_percent, args.analysis_window
    ));
    Ok(Rollout {
        status: RolloutStatus::new(rev.revision, current.revision, unix_now()),
        spec: RolloutSpec {
            canary_percent: args.canary_percent,
            timeout: Duration::from_secs(args.timeout),
            analysis_window: Duration::from_secs(args.analysis_window),
            ..Default::default()
        },
        confirmed: false,
    })
}

/// A second canary while one is in progress.
pub fn canary_in_progress(r: &Rollout) -> DriverError {
    DriverError::new(
        ErrorCode::TaskStateConflict,
        format!("revision {} is already in a canary ({:?}); promote it with --rollout-strategy all-in --confirm, or wait for it to finish", r.status.revision, r.status.phase),
    )
}

/// Shows a rollout's phase when it changed (`shown` is the last one shown) and answers how the
/// command ends at this phase: `None` to keep following.
pub fn rollout_progress(
    r: &Rollout,
    shown: &mut Option<Phase>,
    to_the_end: bool,
    p: &dyn Progress,
) -> Option<Result<(), DriverError>> {
    if *shown != Some(r.status.phase) {
        let why = r
            .status
            .reason
            .as_deref()
            .map(|x| format!(": {x}"))
            .unwrap_or_default();
        p.say(&format!("  {:?}{why}", r.status.phase));
        *shown = Some(r.status.phase);
    }
    if matches!(r.status.phase, Phase::Succeeded | Phase::Aborted)
        || (r.status.phase == Phase::Paused && !to_the_end)
    {
        p.result(&serde_json::to_value(r).unwrap_or_default());
    }
    match r.status.phase {
        Phase::Succeeded => Some(Ok(())),
        Phase::Aborted => Some(Err(DriverError::new(
            ErrorCode::RolloutFailed,
            format!(
                "the canary of revision {} was aborted and rolled back: {}",
                r.status.revision,
                r.status.reason.as_deref().unwrap_or_default()
            ),
        ))),
        Phase::Paused if !to_the_end => {
            p.say("canary healthy; promote it with: oclaw upgrade --rollout-strategy all-in --confirm");
            Some(Ok(()))
        }
        _ => None,
    }
}

/// What a driver does for the rollout loop: where the rollout is recorded, what its canary looks
/// like now, and how each decision of the state machine is carried out.
#[allow(async_fn_in_trait)] // used with static dispatch only, inside this crate
pub trait RolloutPlatform {
    /// What `observe` saw beyond the observation, for `act` (the platform's status).
    type Seen;
    /// The rollout as recorded, if there is one.
    async fn load(&self) -> Result<Option<Rollout>, DriverError>;
    /// Whether this loop steps `r` at all (by default: while it has not finished).
    fn watches(&self, r: &Rollout) -> bool {
        !r.status.finished()
    }
    /// The canary's pods, readiness and metrics now.
    async fn observe(&self, r: &Rollout) -> Result<(Observation, Self::Seen), DriverError>;
    /// Whether this loop carries out the step to `next` (by default: every step).
    fn takes(&self, _next: &RolloutStatus, _actions: &[Action]) -> bool {
        true
    }
    /// Carries out one decision.
    async fn act(&self, seen: &Self::Seen, action: Action) -> Result<(), DriverError>;
    /// Records the rollout after a step that changed it.
    async fn save(&self, r: &Rollout, before: &RolloutStatus) -> Result<(), DriverError>;
}

/// One turn of the rollout loop: the record loaded, the canary observed, one step of the state
/// machine at `now`, its actions carried out, and the record saved when the step changed it.
/// Answers the rollout as it stands after the turn (`None`: nothing is recorded).
pub async fn turn<P: RolloutPlatform>(
    platform: &P,
    now: f64,
) -> Result<Option<Rollout>, DriverError> {
    let Some(mut r) = platform.load().await? else {
        return Ok(None);
    };
    if !platform.watches(&r) {
        return Ok(Some(r));
    }
    let (o, seen) = platform.observe(&r).await?;
    let (next, actions) = step(&r.status, &r.spec, &o, now);
    if !platform.takes(&next, &actions) {
        return Ok(Some(r));
    }
    for a in actions {
        platform.act(&seen, a).await?;
    }
    if next != r.status {
        let before = std::mem::replace(&mut r.status, next);
        platform.save(&r, &before).await?;
    }
    Ok(Some(r))
}

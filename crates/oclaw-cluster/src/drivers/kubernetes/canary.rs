//! Canary rollouts on the kubernetes driver. The same state machine as the local driver's
//! (`crate::rollout::step`), driven here by the `oclaw upgrade` process: each second it
//! observes (the canary pods' readiness, their `/metrics` through the API server's pod proxy),
//! steps, and acts — canary Deployments beside the stable ones (`<component>-canary`, a share of
//! the pods behind the same Services), promotion through the driver pipeline (which prunes the
//! canary Deployments), or deleting them on abort — the shared loop (`crate::release::turn`)
//! over this platform. The rollout is recorded in the ConfigMap
//! `<cluster>-rollout`, so `all-in --confirm` resumes it from another shell; while no `oclaw
//! upgrade` runs, the rollout guard (`oclaw rollout-guard`, a pod the cluster runs) keeps
//! stepping it and carries out an abort.

use std::sync::Mutex;
use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use oclaw_core::ErrorCode;
use serde_json::Value;

use super::render::{self, ROLLOUT_LABEL, TRACK_LABEL};
use super::KubeDriver;
use super::FIELD_MANAGER;
use crate::driver::RevisionStatus;
use crate::driver::{
    mark, ClusterStatus, Driver, DriverError, Object, ObjectRef, PodStatus, Release, RenderOptions,
};
use crate::model::OpenClawCluster;
use crate::release::{
    canary_in_progress, parse, rollout_progress, run_pipeline, start_canary, turn, unix_now as now,
    CanaryRequest, Progress, RolloutPlatform,
};
use crate::rollout::{Action, Observation, Phase, Rollout, RolloutStatus};

/// `upgrade --rollout-strategy canary`, or `all-in --confirm` with a canary in progress
/// (promotes it). `false`: an all-in with no canary in progress, a plain release for the caller.
pub async fn upgrade(
    d: &KubeDriver,
    args: &CanaryRequest,
    p: &dyn Progress,
) -> Result<bool, DriverError> {
    let pending = d.load_rollout().await?.filter(|r| !r.status.finished());
    if let Some(mut r) = pending {
        if args.canary {
            return Err(canary_in_progress(&r));
        }
        r.confirmed = true;
        p.say(&format!(
            "promoting revision {} to every pod",
            r.status.revision
        ));
        return follow(d, r, true, p).await.map(|_| true);
    }
    if !args.canary {
        return Ok(false);
    }
    let rollout = start_canary(d, args, p).await?;
    follow(d, rollout, false, p).await.map(|_| true)
}

/// What the platform shows of rollout `r` now: its canary pods, their readiness and metrics,
/// and whether the stable Deployments run the new revision.
async fn observe(d: &KubeDriver, r: &Rollout) -> Result<(Observation, ClusterStatus), DriverError> {
    let rev = r.status.revision;
    let s = d.status().await?;
    let canary = |name: &str| name.ends_with("-canary");
    let on_new: Vec<&PodStatus> = s
        .pods
        .iter()
        .filter(|p| p.revision == Some(rev) && !p.component.is_empty())
        .collect();
    let canary_pods: u32 = s
        .components
        .iter()
        .filter(|c| canary(&c.name))
        .map(|c| c.desired)
        .sum();
    let stable: Vec<_> = s.components.iter().filter(|c| !canary(&c.name)).collect();
    let pods: u32 = stable.iter().map(|c| c.desired).sum();
    let promoted = s.revision == rev && stable.iter().all(|c| c.rolled_out());
    let mut o = Observation {
        canary_pods: canary_pods as usize,
        canary_ready: on_new
            .iter()
            .filter(|p| p.ready)
            .count()
            .min(canary_pods as usize),
        pods: pods as usize,
        new_ready: if promoted { pods as usize } else { 0 },
        confirmed: r.confirmed,
        ..Default::default()
    };
    let mut pages = Vec::new();
    for p in on_new.iter().filter(|p| p.ready) {
        if let Some(page) = d.metrics(p).await? {
            pages.push(page);
        }
    }
    crate::analysis::canary_metrics(&pages, r.spec.min_tasks, &mut o);
    Ok((o, s))
}

/// The rollout loop on Kubernetes, as `oclaw upgrade` turns it: the record is the ConfigMap
/// (read back each turn: the rollout guard may have aborted it), canaries are Deployments beside
/// the stable ones, promotion is the driver pipeline.
struct Upgrading<'a> {
    d: &'a KubeDriver,
    cluster: OpenClawCluster,
    release: Release,
    /// The rollout as this process last knew it.
    current: Mutex<Rollout>,
    p: &'a dyn Progress,
}

impl Upgrading<'_> {
    fn current(&self) -> std::sync::MutexGuard<'_, Rollout> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RolloutPlatform for Upgrading<'_> {
    type Seen = ClusterStatus;

    async fn load(&self) -> Result<Option<Rollout>, DriverError> {
        let mut r = self.current().clone();
        let rev = r.status.revision;
        if let Some(stored) = self
            .d
            .load_rollout()
            .await?
            .filter(|s| s.status.revision == rev)
        {
            r.status = stored.status;
            r.confirmed |= stored.confirmed;
        }
        *self.current() = r.clone();
        Ok(Some(r))
    }

    async fn observe(&self, r: &Rollout) -> Result<(Observation, ClusterStatus), DriverError> {
        observe(self.d, r).await
    }

    async fn act(&self, s: &ClusterStatus, action: Action) -> Result<(), DriverError> {
        let d = self.d;
        match action {
            Action::RunCanary { percent, .. } => {
                for name in d
                    .apply_canary(&self.cluster, &self.release, percent, s)
                    .await?
                {
                    self.p.say(&format!("  canary {name}"));
                }
            }
            Action::Promote { .. } => {
                run_pipeline(d, &self.cluster, &self.release, self.p).await?;
            }
            Action::Rollback { .. } => d.delete_canary().await?,
            Action::MarkDeployed { revision } => {
                mark(d, revision, RevisionStatus::Deployed).await?
            }
            Action::MarkFailed { revision } => mark(d, revision, RevisionStatus::Failed).await?,
        }
        Ok(())
    }

    async fn save(&self, r: &Rollout, _before: &RolloutStatus) -> Result<(), DriverError> {
        *self.current() = r.clone();
        self.d.save_rollout(&self.cluster.metadata.name, r).await
    }
}

/// Turns the rollout loop once a second until the rollout pauses for confirmation (unless
/// `to_the_end`), succeeds or aborts.
async fn follow(
    d: &KubeDriver,
    r: Rollout,
    to_the_end: bool,
    p: &dyn Progress,
) -> Result<(), DriverError> {
    let rev = r.status.revision;
    let cluster = parse(&d.cluster_text(rev).await?)?;
    let record = d
        .revisions()
        .await?
        .into_iter()
        .find(|x| x.revision == rev)
        .ok_or_else(|| DriverError::unavailable(format!("revision {rev} is not recorded")))?;
    let release = Release {
        revision: rev,
        options: RenderOptions {
            components: record.components,
            ha: record.ha,
        },
        force: false,
    };
    d.save_rollout(&cluster.metadata.name, &r).await?;
    let platform = Upgrading {
        d,
        cluster,
        release,
        current: Mutex::new(r),
        p,
    };
    let mut shown = None;
    loop {
        let r = match turn(&platform, now()).await? {
            Some(r) => r,
            None => platform.current().clone(),
        };
        if let Some(end) = rollout_progress(&r, &mut shown, to_the_end, p) {
            return end;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `oclaw rollout-guard`: every `every`, steps a canary rollout nobody is promoting and
/// carries out an abort (timeout passed, analysis failed, a canary pod not ready). Starting and
/// promoting stay with `oclaw upgrade`.
pub async fn guard(d: &KubeDriver, namespace: &str, every: Duration) -> Result<(), DriverError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| DriverError::unavailable(e.to_string()))?;
    println!(
        "rollout guard of {namespace} running (every {}s)",
        every.as_secs_f64()
    );
    let guard = Guard { d };
    loop {
        if let Err(e) = turn(&guard, now()).await {
            eprintln!("error[{}]: {}", e.code.code(), e.message);
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The rollout loop as the guard turns it: only a rollout nobody has confirmed, in a phase that
/// can fail, and only the steps that abort it (or change nothing but its record).
struct Guard<'a> {
    d: &'a KubeDriver,
}

impl RolloutPlatform for Guard<'_> {
    type Seen = ();

    async fn load(&self) -> Result<Option<Rollout>, DriverError> {
        self.d.load_rollout().await
    }

    fn watches(&self, r: &Rollout) -> bool {
        let watched = matches!(
            r.status.phase,
            Phase::Canary | Phase::Analyzing | Phase::Paused
        );
        !r.status.finished() && !r.confirmed && watched
    }

    async fn observe(&self, r: &Rollout) -> Result<(Observation, ()), DriverError> {
        Ok((observe(self.d, r).await?.0, ()))
    }

    fn takes(&self, next: &RolloutStatus, actions: &[Action]) -> bool {
        next.phase == Phase::Aborted || actions.is_empty()
    }

    async fn act(&self, _: &(), action: Action) -> Result<(), DriverError> {
        match action {
            Action::Rollback { .. } => self.d.delete_canary().await,
            Action::MarkFailed { revision } => mark(self.d, revision, RevisionStatus::Failed).await,
            _ => Ok(()),
        }
    }

    async fn save(&self, r: &Rollout, _before: &RolloutStatus) -> Result<(), DriverError> {
        let next = &r.status;
        println!(
            "rollout of revision {}: {:?}{}",
            next.revision,
            next.phase,
            next.reason
                .as_deref()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        );
        let cluster = parse(&self.d.cluster_text(next.revision).await?)?;
        self.d.save_rollout(&cluster.metadata.name, r).await
    }
}

/// The rollout record and the canary Deployments.
impl KubeDriver {
    /// The rollout recorded in the namespace, if any.
    pub async fn load_rollout(&self) -> Result<Option<Rollout>, DriverError> {
        Ok(self
            .list("v1", "ConfigMap", ROLLOUT_LABEL)
            .await?
            .iter()
            .find_map(|m| serde_json::from_str(m["data"]["rollout.json"].as_str()?).ok()))
    }

    /// Records `rollout` (one ConfigMap per cluster, `<name>-rollout`).
    pub async fn save_rollout(&self, cluster: &str, rollout: &Rollout) -> Result<(), DriverError> {
        let map = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{cluster}-rollout"), "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "oclaw", "app.kubernetes.io/instance": cluster, ROLLOUT_LABEL: "true"}},
            "data": {"rollout.json": serde_json::to_string(rollout).unwrap_or_default()}});
        self.apply_one(&Object::manifest(map)).await
    }

    pub(super) async fn apply_one(&self, o: &Object) -> Result<(), DriverError> {
        let obj: DynamicObject = serde_json::from_value(o.body.clone())
            .map_err(|e| DriverError::new(ErrorCode::ClusterInvalid, format!("{}: {e}", o.id)))?;
        self.api(&o.id.api_version, &o.id.kind)?
            .patch(
                &o.id.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&obj),
            )
            .await
            .map_err(|e| self.failed(format_args!("applying {}", o.id), e))?;
        Ok(())
    }

    /// Starts (or resizes) the canary Deployments of `release` beside the stable ones.
    pub async fn apply_canary(
        &self,
        cluster: &OpenClawCluster,
        release: &Release,
        percent: u8,
        status: &ClusterStatus,
    ) -> Result<Vec<String>, DriverError> {
        let objects: Vec<Value> = self
            .desired(cluster, release)?
            .into_iter()
            .map(|o| o.body)
            .collect();
        let stable = |name: &str| {
            status
                .components
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.desired)
                .unwrap_or(1)
        };
        let mut names = Vec::new();
        for d in render::canary_deployments(&objects, stable, percent) {
            let o = Object::manifest(d);
            self.apply_one(&o).await?;
            names.push(format!(
                "{} ({} pods)",
                o.id.name, o.body["spec"]["replicas"]
            ));
        }
        Ok(names)
    }

    /// Forgets the rollout record of `cluster` (none is fine).
    pub async fn delete_rollout(&self, cluster: &str) -> Result<(), DriverError> {
        let name = format!("{cluster}-rollout");
        match self
            .api("v1", "ConfigMap")?
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.failed(format_args!("deleting ConfigMap {name}"), e)),
        }
    }

    /// Deletes every canary Deployment (their pods go with them).
    pub async fn delete_canary(&self) -> Result<(), DriverError> {
        for d in self
            .list("apps/v1", "Deployment", &format!("{TRACK_LABEL}=canary"))
            .await?
        {
            self.delete(&ObjectRef::of_manifest(&d)).await?;
        }
        Ok(())
    }
}

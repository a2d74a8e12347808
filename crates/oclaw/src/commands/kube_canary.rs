//! Canary rollouts on the kubernetes driver. The same state machine as the local driver's
//! (`oclaw_cluster::rollout::step`), driven here by the `oclaw upgrade` process: each second it
//! observes (the canary pods' readiness, their `/metrics` through the API server's pod proxy),
//! steps, and acts — canary Deployments beside the stable ones (`<component>-canary`, a share of
//! the pods behind the same Services), promotion through the driver pipeline (which prunes the
//! canary Deployments), or deleting them on abort. The rollout is recorded in the ConfigMap
//! `<cluster>-rollout`, so `all-in --confirm` resumes it from another shell; while no `oclaw
//! upgrade` runs, the rollout guard (`oclaw rollout-guard`, a pod the cluster runs) keeps
//! stepping it and carries out an abort.

use std::process::ExitCode;
use std::time::Duration;

use oclaw_cluster::driver::{mark, ClusterStatus, Driver, DriverError, PodStatus, Release};
use oclaw_cluster::kubernetes::RenderOptions;
use oclaw_cluster::rollout::{step, Action, Observation, Phase, Rollout};

use super::kube_driver::KubeDriver;
use super::release::{parse, say};
use crate::cli::UpgradeArgs;

fn now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

/// `upgrade --rollout-strategy canary` (`canary`), or `all-in --confirm` with a canary in
/// progress (promotes it). `None`: an all-in with no canary in progress, a plain release.
pub async fn upgrade(
    d: &KubeDriver,
    args: &UpgradeArgs,
    canary: bool,
) -> Result<Option<ExitCode>, DriverError> {
    let pending = d.load_rollout().await?.filter(|r| !r.status.finished());
    if let Some(mut r) = pending {
        if canary {
            return Err(super::release::canary_in_progress(&r));
        }
        r.confirmed = true;
        say!("promoting revision {} to every pod", r.status.revision);
        return follow(d, r, true).await.map(Some);
    }
    if !canary {
        return Ok(None);
    }
    let rollout = super::release::start_canary(d, args).await?;
    follow(d, rollout, false).await.map(Some)
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
    super::diagnose::canary_metrics(&pages, r.spec.min_tasks, &mut o);
    Ok((o, s))
}

/// Steps the rollout once a second until it pauses for confirmation (unless `to_the_end`),
/// succeeds or aborts. The record is read back each time: the rollout guard may have aborted it.
async fn follow(d: &KubeDriver, mut r: Rollout, to_the_end: bool) -> Result<ExitCode, DriverError> {
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
    let mut shown = None;
    loop {
        if let Some(stored) = d.load_rollout().await?.filter(|s| s.status.revision == rev) {
            r.status = stored.status;
            r.confirmed |= stored.confirmed;
        }
        if !r.status.finished() {
            let (o, s) = observe(d, &r).await?;
            let (next, actions) = step(&r.status, &r.spec, &o, now());
            for a in actions {
                match a {
                    Action::RunCanary { percent, .. } => {
                        for name in d.apply_canary(&cluster, &release, percent, &s).await? {
                            say!("  canary {name}");
                        }
                    }
                    Action::Promote { .. } => {
                        super::release::run_pipeline(d, &cluster, &release).await?;
                    }
                    Action::Rollback { .. } => d.delete_canary().await?,
                    Action::MarkDeployed { revision } => mark(d, revision, "deployed").await?,
                    Action::MarkFailed { revision } => mark(d, revision, "failed").await?,
                }
            }
            r.status = next;
            d.save_rollout(&cluster.metadata.name, &r).await?;
        }
        if let Some(end) = super::release::rollout_progress(&r, &mut shown, to_the_end) {
            return end;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `oclaw rollout-guard`: every `every`, steps a canary rollout nobody is promoting and
/// carries out an abort (timeout passed, analysis failed, a canary pod not ready). Starting and
/// promoting stay with `oclaw upgrade`.
pub async fn guard(
    d: &KubeDriver,
    namespace: &str,
    every: Duration,
) -> Result<ExitCode, DriverError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| DriverError::unavailable(e.to_string()))?;
    println!(
        "rollout guard of {namespace} running (every {}s)",
        every.as_secs_f64()
    );
    loop {
        if let Err(e) = guard_once(d).await {
            eprintln!("error[{}]: {}", e.code.code(), e.message);
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = term.recv() => return Ok(ExitCode::SUCCESS),
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

async fn guard_once(d: &KubeDriver) -> Result<(), DriverError> {
    let Some(mut r) = d.load_rollout().await? else {
        return Ok(());
    };
    let watched = matches!(
        r.status.phase,
        Phase::Canary | Phase::Analyzing | Phase::Paused
    );
    if r.status.finished() || r.confirmed || !watched {
        return Ok(());
    }
    let (o, _) = observe(d, &r).await?;
    let (next, actions) = step(&r.status, &r.spec, &o, now());
    if next.phase != Phase::Aborted && !actions.is_empty() {
        return Ok(());
    }
    for a in actions {
        match a {
            Action::Rollback { .. } => d.delete_canary().await?,
            Action::MarkFailed { revision } => mark(d, revision, "failed").await?,
            _ => {}
        }
    }
    if next != r.status {
        println!(
            "rollout of revision {}: {:?}{}",
            next.revision,
            next.phase,
            next.reason
                .as_deref()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        );
        r.status = next;
        let cluster = parse(&d.cluster_text(r.status.revision).await?)?;
        d.save_rollout(&cluster.metadata.name, &r).await?;
    }
    Ok(())
}

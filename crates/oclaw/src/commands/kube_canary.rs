//! Canary rollouts on the kubernetes driver. The same state machine as the local driver's
//! (`oclaw_cluster::rollout::step`), driven here by the `oclaw upgrade` process: each second it
//! observes (the canary pods' readiness, their `/metrics` through the API server's pod proxy),
//! steps, and acts — canary Deployments beside the stable ones (`<component>-canary`, a share of
//! the pods behind the same Services), promotion through the driver pipeline (which prunes the
//! canary Deployments), or deleting them on abort. The rollout is recorded in the ConfigMap
//! `<cluster>-rollout`, so `all-in --confirm` resumes it from another shell; while nobody runs
//! `oclaw upgrade`, nothing acts on it, and the next `upgrade` aborts it if its timeout passed.

use std::process::ExitCode;
use std::time::Duration;

use oclaw_cluster::driver::{mark, Driver, DriverError, Release};
use oclaw_cluster::kubernetes::RenderOptions;
use oclaw_cluster::rollout::{step, Action, Observation, Rollout, RolloutSpec, RolloutStatus};
use oclaw_cluster::OpenClawCluster;
use oclaw_core::ErrorCode;

use super::kube_driver::KubeDriver;
use crate::cli::UpgradeArgs;

fn now() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

fn parse(text: &str) -> Result<OpenClawCluster, DriverError> {
    OpenClawCluster::parse("cluster file", text).map_err(DriverError::from)
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
            return Err(DriverError::new(
                ErrorCode::TaskStateConflict,
                format!("revision {} is already in a canary ({:?}); promote it with --rollout-strategy all-in --confirm, or wait for it to finish", r.status.revision, r.status.phase),
            ));
        }
        r.confirmed = true;
        println!("promoting revision {} to every pod", r.status.revision);
        return follow(d, r, true).await.map(Some);
    }
    if !canary {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&args.config).map_err(|e| {
        DriverError::new(
            ErrorCode::ConfigUnreadable,
            format!("{}: {e}", args.config.display()),
        )
    })?;
    let new = parse(&text)?;
    let current = super::release::deployed(d, &args.namespace).await?;
    let history = d.revisions().await?;
    let rev = oclaw_cluster::driver::Revision::next(
        &history,
        &new,
        "upgrade",
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
    d.record(&rev, &text).await?;
    d.set_status(rev.revision, "canary").await?;
    let rollout = Rollout {
        status: RolloutStatus::new(rev.revision, current.revision, now()),
        spec: RolloutSpec {
            canary_percent: args.canary_percent,
            timeout: Duration::from_secs(args.timeout),
            analysis_window: Duration::from_secs(args.analysis_window),
            ..Default::default()
        },
        confirmed: false,
    };
    d.save_rollout(&new.metadata.name, &rollout).await?;
    println!(
        "revision {} (version {}): canary on {}% of the pods, analysis for {}s",
        rev.revision, rev.version, args.canary_percent, args.analysis_window
    );
    follow(d, rollout, false).await.map(Some)
}

/// Steps the rollout once a second until it pauses for confirmation (unless `to_the_end`),
/// succeeds or aborts.
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
    let mut shown = None;
    loop {
        let s = d.status().await?;
        let canary = |name: &str| name.ends_with("-canary");
        let on_new: Vec<_> = s.pods.iter().filter(|p| p.revision == Some(rev)).collect();
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
        let (next, actions) = step(&r.status, &r.spec, &o, now());
        for a in actions {
            match a {
                Action::RunCanary { percent, .. } => {
                    for name in d.apply_canary(&cluster, &release, percent, &s).await? {
                        println!("  canary {name}");
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
        if let Some(end) = super::release::rollout_progress(&r, &mut shown, to_the_end) {
            return end;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

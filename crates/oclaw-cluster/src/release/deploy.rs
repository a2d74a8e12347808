//! Deploy, rollback and all-in upgrade: a new revision recorded, the pipeline run, the rollout
//! waited for, and an automatic rollback when it does not become ready.

use std::time::{Duration, Instant};

use oclaw_core::ErrorCode;

use super::{deployed, parse, Progress};
use crate::driver::ReleaseAction;
use crate::driver::RevisionStatus;
use crate::driver::{
    converge, mark, Converged, Driver, DriverError, ObjectRef, Release, RenderOptions, Revision,
    Step,
};
use crate::model::OpenClawCluster;

/// What to deploy as a new revision.
pub struct Deploy<'a> {
    pub cluster_text: &'a str,
    pub action: ReleaseAction,
    pub options: RenderOptions,
    pub force: bool,
    pub description: String,
    /// Wait for the rollout (and roll back when it does not finish).
    pub wait: Option<Duration>,
}

/// One pipeline run, printing its steps.
pub async fn run_pipeline<D: Driver>(
    d: &D,
    cluster: &OpenClawCluster,
    release: &Release,
    p: &dyn Progress,
) -> Result<Converged, DriverError> {
    let mut show = |s: Step<'_>| match s {
        Step::Observed(n) => p.say(&format!(
            "  found {n} object{} of this cluster on {}",
            if n == 1 { "" } else { "s" },
            d.name()
        )),
        Step::Applied {
            index,
            total,
            object,
        } => p.say(&format!("  [{}/{total}] applied {object}", index + 1)),
        Step::Pruned(o) => p.say(&format!("  pruned {o} (no longer in the cluster file)")),
    };
    let done = converge(d, cluster, release, &mut show).await?;
    p.say(&format!(
        "{} objects applied, {} pruned ({} driver, namespace {})",
        done.applied.len(),
        done.pruned.len(),
        d.name(),
        cluster.metadata.namespace
    ));
    Ok(done)
}

/// The JSON result of a release: the revision, what the pipeline did, how it ended.
fn release_result<D: Driver>(
    d: &D,
    rev: &Revision,
    done: &Converged,
    status: RevisionStatus,
) -> serde_json::Value {
    let names = |v: &[ObjectRef]| -> Vec<String> { v.iter().map(|o| o.to_string()).collect() };
    serde_json::json!({
        "driver": d.name(),
        "revision": rev.revision,
        "action": rev.action,
        "version": rev.version,
        "status": status,
        "applied": names(&done.applied),
        "pruned": names(&done.pruned),
    })
}

/// Records a revision and runs the pipeline for it; with a wait, waits for the rollout.
async fn deploy_once<D: Driver>(
    d: &D,
    history: &[Revision],
    job: &Deploy<'_>,
    p: &dyn Progress,
) -> Result<(Revision, bool, serde_json::Value), DriverError> {
    let cluster = parse(job.cluster_text)?;
    d.preflight().await?;
    let rev = Revision::next(
        history,
        &cluster,
        job.action,
        &job.options,
        job.description.clone(),
    );
    for warning in d.record(&rev, job.cluster_text).await? {
        p.note(&format!("warning: {warning}"));
    }
    p.say(&format!(
        "revision {} ({}, version {}) → {} driver, namespace {}",
        rev.revision,
        job.action,
        rev.version,
        d.name(),
        cluster.metadata.namespace
    ));
    let release = Release {
        revision: rev.revision,
        options: job.options.clone(),
        force: job.force,
    };
    let done = match run_pipeline(d, &cluster, &release, p).await {
        Ok(done) => done,
        Err(e) => {
            let _ = mark(d, rev.revision, RevisionStatus::Failed).await;
            return Err(e);
        }
    };
    let rolled = match job.wait {
        Some(wait) => wait_rolled(d, rev.revision, wait, p).await?,
        None => true,
    };
    let status = if rolled {
        RevisionStatus::Deployed
    } else {
        RevisionStatus::Failed
    };
    mark(d, rev.revision, status).await?;
    let summary = release_result(d, &rev, &done, status);
    Ok((rev, rolled, summary))
}

/// Deploys a new revision; when it does not roll out within the wait, deploys the revision
/// deployed before it again.
pub async fn deploy<D: Driver>(
    d: &D,
    job: Deploy<'_>,
    p: &dyn Progress,
) -> Result<(), DriverError> {
    let history = d.revisions().await?;
    let previous = history
        .iter()
        .rev()
        .find(|r| r.status == RevisionStatus::Deployed)
        .cloned();
    let (rev, rolled, mut summary) = deploy_once(d, &history, &job, p).await?;
    if rolled {
        p.result(&summary);
        return Ok(());
    }
    let wait = job.wait.unwrap_or_default();
    let Some(prev) = previous else {
        return Err(DriverError::new(
            ErrorCode::RolloutFailed,
            format!(
                "revision {} did not become ready within {}s; see oclaw status and oclaw diagnose",
                rev.revision,
                wait.as_secs()
            ),
        ));
    };
    p.note(&format!(
        "revision {} did not become ready within {}s: rolling back to revision {}",
        rev.revision,
        wait.as_secs(),
        prev.revision
    ));
    let text = d.cluster_text(prev.revision).await?;
    let back = Deploy {
        cluster_text: &text,
        action: ReleaseAction::Rollback,
        options: RenderOptions {
            components: prev.components.clone(),
            ha: prev.ha,
        },
        force: true,
        description: format!(
            "automatic rollback of revision {} to {}",
            rev.revision, prev.revision
        ),
        wait: job.wait,
    };
    let (back_rev, ok, _) = deploy_once(d, &d.revisions().await?, &back, p).await?;
    summary["rolled_back_to"] = serde_json::json!(prev.revision);
    summary["rollback_revision"] = serde_json::json!(back_rev.revision);
    p.result(&summary);
    Err(DriverError::new(
        ErrorCode::RolloutFailed,
        format!(
            "revision {} did not become ready within {}s and was rolled back (revision {}{})",
            rev.revision,
            wait.as_secs(),
            back_rev.revision,
            if ok {
                ""
            } else {
                ", which is not ready either"
            }
        ),
    ))
}

/// Waits until every replica runs `revision` and is ready, printing progress.
pub async fn wait_rolled<D: Driver>(
    d: &D,
    revision: u64,
    wait: Duration,
    p: &dyn Progress,
) -> Result<bool, DriverError> {
    let deadline = Instant::now() + wait;
    let mut last = None;
    loop {
        let s = d.status().await?;
        let counts = s.ready_of_desired();
        if last != Some(counts) {
            p.say(&format!("  pods ready {}/{}", counts.0, counts.1));
            last = Some(counts);
        }
        if s.revision == revision && s.rolled_out() {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(d.poll_interval()).await;
    }
}

/// `oclaw rollback --revision N [--force]`: revision N's file and components, as a new
/// revision.
pub async fn rollback<D: Driver>(
    d: &D,
    revision: u64,
    force: bool,
    wait: Duration,
    p: &dyn Progress,
) -> Result<(), DriverError> {
    let Some(target) = d
        .revisions()
        .await?
        .into_iter()
        .find(|r| r.revision == revision)
    else {
        return Err(DriverError::new(
            ErrorCode::InvalidField,
            format!("there is no revision {revision}; see oclaw upgrade history"),
        ));
    };
    let text = d.cluster_text(revision).await?;
    deploy(
        d,
        Deploy {
            cluster_text: &text,
            action: ReleaseAction::Rollback,
            options: RenderOptions {
                components: target.components,
                ha: target.ha,
            },
            force,
            description: format!(
                "rollback to revision {revision}{}",
                if force { " (forced)" } else { "" }
            ),
            wait: Some(wait),
        },
        p,
    )
    .await
}

/// `oclaw upgrade --rollout-strategy all-in --confirm`: the new file on the components and HA
/// mode deployed now, every replica replaced (one at a time, unless the driver's platform
/// decides otherwise).
pub async fn upgrade_all_in<D: Driver>(
    d: &D,
    cluster_text: &str,
    namespace: &str,
    timeout: Duration,
    p: &dyn Progress,
) -> Result<(), DriverError> {
    let new = parse(cluster_text)?;
    if new.metadata.namespace != namespace {
        return Err(DriverError::new(
            ErrorCode::ClusterInvalid,
            format!(
                "the cluster file is for namespace {}, not {namespace}",
                new.metadata.namespace
            ),
        ));
    }
    let history = d.revisions().await?;
    let current = deployed(&history, namespace)?;
    deploy(
        d,
        Deploy {
            cluster_text,
            action: ReleaseAction::Upgrade,
            options: RenderOptions {
                components: current.components.clone(),
                ha: current.ha,
            },
            force: false,
            description: format!(
                "upgrade from revision {} (version {}) to version {}",
                current.revision,
                current.version,
                new.version()
            ),
            wait: Some(timeout),
        },
        p,
    )
    .await
}

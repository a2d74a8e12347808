//! The release commands, the same on every driver: `deploy core`, `upgrade --rollout-strategy
//! all-in --confirm`, `rollback --revision N`, `upgrade history` and `status`. Each deploy is a
//! new revision recorded by the driver, then one run of the driver pipeline
//! (`oclaw_cluster::driver::converge`), then — with a wait — the rollout watched until every
//! replica of every component runs the new revision and is ready; when it is not within the
//! wait, the revision is marked failed and the one deployed before is deployed again (as a new
//! revision, as every rollback is).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use oclaw_cluster::driver::{
    converge, mark, ClusterStatus, Driver, DriverError, Release, Revision, Step,
};
use oclaw_cluster::kubernetes::RenderOptions;
use oclaw_cluster::OpenClawCluster;
use oclaw_core::ErrorCode;

use super::{EXIT_FAILURE, EXIT_INVALID};
use crate::cli::DriverArg;

/// With `-o json` a release command's progress goes to stderr and its result, one JSON
/// document, to stdout.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn json_output(on: bool) {
    JSON.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// A progress line: stdout, or stderr when the result is JSON.
macro_rules! say {
    ($($t:tt)*) => {
        if super::release::json() {
            eprintln!($($t)*)
        } else {
            println!($($t)*)
        }
    };
}
pub(crate) use say;

/// Prints a command's result when the output is JSON.
pub fn result(value: serde_json::Value) {
    if json() {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    }
}

/// Reports a driver error with its code; bad input exits 2, the rest 1.
pub fn report(e: &DriverError) -> ExitCode {
    eprintln!("error[{}]: {}", e.code.code(), e.message);
    // Bad input: the cluster file or configuration (OC-1xxx, OC-5001), or an argument.
    let invalid = e.code.code().starts_with("OC-1")
        || matches!(e.code, ErrorCode::ClusterInvalid | ErrorCode::InvalidField);
    ExitCode::from(if invalid { EXIT_INVALID } else { EXIT_FAILURE })
}

/// Runs `$body` with `$d` bound to the driver `$arg` names, on a fresh runtime (the Nomad
/// driver answers its platform steps with what to run instead).
macro_rules! on_driver {
    ($arg:expr, $namespace:expr, |$d:ident| $body:expr) => {{
        let run = async {
            match $arg {
                crate::cli::DriverArg::Local => {
                    let $d = super::local_driver::LocalDriver::open($namespace)?;
                    $body.await
                }
                crate::cli::DriverArg::Kubernetes => {
                    let $d = super::kube_driver::KubeDriver::connect($namespace).await?;
                    $body.await
                }
                crate::cli::DriverArg::Nomad => {
                    let $d = oclaw_cluster::nomad::NomadDriver;
                    $body.await
                }
            }
        };
        super::release::block_on(run)
    }};
}
pub(crate) use on_driver;

/// Runs a release command on a fresh runtime; its error is reported with its code.
pub fn block_on(run: impl std::future::Future<Output = Result<ExitCode, DriverError>>) -> ExitCode {
    match super::runtime() {
        Ok(rt) => rt.block_on(run).unwrap_or_else(|e| report(&e)),
        Err(code) => code,
    }
}

pub fn parse(cluster_text: &str) -> Result<OpenClawCluster, DriverError> {
    OpenClawCluster::parse("cluster file", cluster_text).map_err(DriverError::from)
}

/// What to deploy as a new revision.
pub struct Deploy<'a> {
    pub cluster_text: &'a str,
    /// `deploy`, `upgrade`, `rollback`.
    pub action: &'a str,
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
) -> Result<oclaw_cluster::driver::Converged, DriverError> {
    let mut show = |s: Step<'_>| match s {
        Step::Observed(n) => say!(
            "  found {n} object{} of this cluster on {}",
            if n == 1 { "" } else { "s" },
            d.name()
        ),
        Step::Applied {
            index,
            total,
            object,
        } => say!("  [{}/{total}] applied {object}", index + 1),
        Step::Pruned(o) => say!("  pruned {o} (no longer in the cluster file)"),
    };
    let done = converge(d, cluster, release, &mut show).await?;
    say!(
        "{} objects applied, {} pruned ({} driver, namespace {})",
        done.applied.len(),
        done.pruned.len(),
        d.name(),
        cluster.metadata.namespace
    );
    Ok(done)
}

/// The JSON result of a release: the revision, what the pipeline did, how it ended.
fn release_result<D: Driver>(
    d: &D,
    rev: &Revision,
    done: &oclaw_cluster::driver::Converged,
    status: &str,
) -> serde_json::Value {
    let names = |v: &[oclaw_cluster::driver::ObjectRef]| -> Vec<String> {
        v.iter().map(|o| o.to_string()).collect()
    };
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
    d.record(&rev, job.cluster_text).await?;
    say!(
        "revision {} ({}, version {}) → {} driver, namespace {}",
        rev.revision,
        job.action,
        rev.version,
        d.name(),
        cluster.metadata.namespace
    );
    let release = Release {
        revision: rev.revision,
        options: job.options.clone(),
        force: job.force,
    };
    let done = match run_pipeline(d, &cluster, &release).await {
        Ok(done) => done,
        Err(e) => {
            let _ = mark(d, rev.revision, "failed").await;
            return Err(e);
        }
    };
    let rolled = match job.wait {
        Some(wait) => wait_rolled(d, rev.revision, wait).await?,
        None => true,
    };
    let status = if rolled { "deployed" } else { "failed" };
    mark(d, rev.revision, status).await?;
    let summary = release_result(d, &rev, &done, status);
    Ok((rev, rolled, summary))
}

/// Deploys a new revision; when it does not roll out within the wait, deploys the revision
/// deployed before it again.
pub async fn deploy<D: Driver>(d: &D, job: Deploy<'_>) -> Result<ExitCode, DriverError> {
    let history = d.revisions().await?;
    let previous = history
        .iter()
        .rev()
        .find(|r| r.status == "deployed")
        .cloned();
    let (rev, rolled, mut summary) = deploy_once(d, &history, &job).await?;
    if rolled {
        result(summary);
        return Ok(ExitCode::SUCCESS);
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
    eprintln!(
        "revision {} did not become ready within {}s: rolling back to revision {}",
        rev.revision,
        wait.as_secs(),
        prev.revision
    );
    let text = d.cluster_text(prev.revision).await?;
    let back = Deploy {
        cluster_text: &text,
        action: "rollback",
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
    let (back_rev, ok, _) = deploy_once(d, &d.revisions().await?, &back).await?;
    summary["rolled_back_to"] = serde_json::json!(prev.revision);
    summary["rollback_revision"] = serde_json::json!(back_rev.revision);
    result(summary);
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
) -> Result<bool, DriverError> {
    let deadline = Instant::now() + wait;
    let mut last = None;
    loop {
        let s = d.status().await?;
        let counts = s.ready_of_desired();
        if last != Some(counts) {
            say!("  pods ready {}/{}", counts.0, counts.1);
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
) -> Result<ExitCode, DriverError> {
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
            action: "rollback",
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
) -> Result<ExitCode, DriverError> {
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
            action: "upgrade",
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
    )
    .await
}

/// The revision deployed now, in `history`.
pub fn deployed<'a>(history: &'a [Revision], namespace: &str) -> Result<&'a Revision, DriverError> {
    history
        .iter()
        .rev()
        .find(|r| r.status == "deployed")
        .ok_or_else(|| {
            DriverError::unavailable(format!(
                "nothing is deployed in {namespace}; run `oclaw deploy core` first"
            ))
        })
}

/// Starts a canary rollout of `args.config` on what is deployed: a new revision (status
/// `canary`) and the rollout record the driver then stores and follows.
pub async fn start_canary<D: Driver>(
    d: &D,
    args: &crate::cli::UpgradeArgs,
) -> Result<oclaw_cluster::rollout::Rollout, DriverError> {
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
    say!(
        "revision {} (version {}): canary on {}% of the pods, analysis for {}s",
        rev.revision,
        rev.version,
        args.canary_percent,
        args.analysis_window
    );
    Ok(oclaw_cluster::rollout::Rollout {
        status: oclaw_cluster::rollout::RolloutStatus::new(
            rev.revision,
            current.revision,
            Utc::now().timestamp_millis() as f64 / 1000.0,
        ),
        spec: oclaw_cluster::rollout::RolloutSpec {
            canary_percent: args.canary_percent,
            timeout: Duration::from_secs(args.timeout),
            analysis_window: Duration::from_secs(args.analysis_window),
            ..Default::default()
        },
        confirmed: false,
    })
}

/// A second canary while one is in progress.
pub fn canary_in_progress(r: &oclaw_cluster::rollout::Rollout) -> DriverError {
    DriverError::new(
        ErrorCode::TaskStateConflict,
        format!("revision {} is already in a canary ({:?}); promote it with --rollout-strategy all-in --confirm, or wait for it to finish", r.status.revision, r.status.phase),
    )
}

/// Shows a rollout's phase when it changed (`shown` is the last one shown) and answers how the
/// command ends at this phase: `None` to keep following.
pub fn rollout_progress(
    r: &oclaw_cluster::rollout::Rollout,
    shown: &mut Option<oclaw_cluster::rollout::Phase>,
    to_the_end: bool,
) -> Option<Result<ExitCode, DriverError>> {
    use oclaw_cluster::rollout::Phase;
    if *shown != Some(r.status.phase) {
        let why = r
            .status
            .reason
            .as_deref()
            .map(|x| format!(": {x}"))
            .unwrap_or_default();
        say!("  {:?}{why}", r.status.phase);
        *shown = Some(r.status.phase);
    }
    if matches!(r.status.phase, Phase::Succeeded | Phase::Aborted)
        || (r.status.phase == Phase::Paused && !to_the_end)
    {
        result(serde_json::to_value(r).unwrap_or_default());
    }
    match r.status.phase {
        Phase::Succeeded => Some(Ok(ExitCode::SUCCESS)),
        Phase::Aborted => Some(Err(DriverError::new(
            ErrorCode::RolloutFailed,
            format!(
                "the canary of revision {} was aborted and rolled back: {}",
                r.status.revision,
                r.status.reason.as_deref().unwrap_or_default()
            ),
        ))),
        Phase::Paused if !to_the_end => {
            say!(
                "canary healthy; promote it with: oclaw upgrade --rollout-strategy all-in --confirm"
            );
            Some(Ok(ExitCode::SUCCESS))
        }
        _ => None,
    }
}

fn age(since: Option<DateTime<Utc>>) -> String {
    let Some(s) = since else { return "-".into() };
    let secs = (Utc::now() - s).num_seconds().max(0);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

/// `oclaw status`: NAME READY STATUS RESTARTS AGE, or the whole status as JSON.
pub fn print_status(s: &ClusterStatus, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
        return;
    }
    let width = s
        .pods
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0)
        .max(13)
        + 1;
    println!(
        "{:<width$} {:<7} {:<17} {:<9} AGE",
        "NAME", "READY", "STATUS", "RESTARTS"
    );
    for p in &s.pods {
        println!(
            "{:<width$} {:<7} {:<17} {:<9} {}",
            p.name,
            if p.ready { "1/1" } else { "0/1" },
            p.status,
            p.restarts,
            age(p.started_at)
        );
    }
    if let Some(r) = &s.rollout {
        let st = &r.status;
        println!(
            "\nrollout: revision {} (from {}) {:?}, canary {}%{}{}",
            st.revision,
            st.from_revision,
            st.phase,
            r.spec.canary_percent,
            st.reason
                .as_deref()
                .map(|x| format!(" — {x}"))
                .unwrap_or_default(),
            if st.phase == oclaw_cluster::rollout::Phase::Paused {
                "; promote it with: oclaw upgrade --rollout-strategy all-in --confirm"
            } else {
                ""
            }
        );
    }
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
}

/// `oclaw upgrade history`.
pub fn print_history(list: &[Revision], json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(list).unwrap_or_default());
        return;
    }
    println!(
        "{:<9} {:<21} {:<11} {:<9} {:<9} DESCRIPTION",
        "REVISION", "UPDATED", "STATUS", "ACTION", "VERSION"
    );
    for r in list {
        println!(
            "{:<9} {:<21} {:<11} {:<9} {:<9} {}",
            r.revision,
            r.created_at.format("%Y-%m-%d %H:%M:%S"),
            r.status,
            r.action,
            r.version,
            r.description
        );
    }
}

pub fn status(driver: DriverArg, namespace: &str, json: bool) -> ExitCode {
    on_driver!(driver, namespace, |d| async {
        print_status(&d.status().await?, json);
        Ok(ExitCode::SUCCESS)
    })
}

pub fn history(driver: DriverArg, namespace: &str, json: bool) -> ExitCode {
    on_driver!(driver, namespace, |d| async {
        print_history(&d.revisions().await?, json);
        Ok(ExitCode::SUCCESS)
    })
}

pub fn rollback_command(
    driver: DriverArg,
    namespace: &str,
    revision: u64,
    force: bool,
) -> ExitCode {
    on_driver!(driver, namespace, |d| rollback(
        &d,
        revision,
        force,
        Duration::from_secs(180)
    ))
}

/// `oclaw upgrade --rollout-strategy canary|all-in`.
pub fn upgrade(driver: DriverArg, args: crate::cli::UpgradeArgs) -> ExitCode {
    use crate::cli::RolloutArg;
    let Some(strategy) = args.rollout_strategy else {
        return report(&DriverError::new(
            ErrorCode::InvalidField,
            "give --rollout-strategy canary|all-in (or `oclaw upgrade history`)",
        ));
    };
    if strategy == RolloutArg::AllIn && !args.confirm {
        return report(&DriverError::new(
            ErrorCode::InvalidField,
            "all-in replaces every pod; add --confirm",
        ));
    }
    let canary = strategy == RolloutArg::Canary;
    let timeout = Duration::from_secs(args.timeout);
    let read = |config: &std::path::Path| {
        std::fs::read_to_string(config).map_err(|e| {
            DriverError::new(
                ErrorCode::ConfigUnreadable,
                format!("{}: {e}", config.display()),
            )
        })
    };
    match driver {
        DriverArg::Local => {
            if let Some(code) = super::local::canary_upgrade(&args, canary) {
                return code;
            }
            if canary {
                let started = match super::runtime() {
                    Ok(rt) => rt.block_on(async {
                        let d = super::local_driver::LocalDriver::open(&args.namespace)?;
                        start_canary(&d, &args).await
                    }),
                    Err(code) => return code,
                };
                return match started {
                    Ok(rollout) => super::local::begin_canary(&args.namespace, &rollout, timeout),
                    Err(e) => report(&e),
                };
            }
            let namespace = args.namespace.clone();
            on_driver!(driver, &namespace, |d| async {
                upgrade_all_in(&d, &read(&args.config)?, &namespace, timeout).await
            })
        }
        DriverArg::Kubernetes => {
            let run = async {
                let d = super::kube_driver::KubeDriver::connect(&args.namespace).await?;
                if let Some(code) = super::kube_canary::upgrade(&d, &args, canary).await? {
                    return Ok(code);
                }
                upgrade_all_in(&d, &read(&args.config)?, &args.namespace, timeout).await
            };
            block_on(run)
        }
        DriverArg::Nomad => report(&oclaw_cluster::nomad::not_built()),
    }
}

pub fn diagnose(driver: DriverArg, namespace: &str) -> ExitCode {
    on_driver!(driver, namespace, |d| super::diagnose::run(&d))
}

/// `oclaw logs POD [--previous]`.
pub fn logs(driver: DriverArg, namespace: &str, pod: &str, previous: bool) -> ExitCode {
    on_driver!(driver, namespace, |d| async {
        match d.logs(pod, previous).await? {
            Some(text) => {
                use std::io::Write;
                let _ = std::io::stdout().write_all(text.as_bytes());
                Ok(ExitCode::SUCCESS)
            }
            None => Err(DriverError::new(
                ErrorCode::NotFound,
                format!(
                    "no {}log for pod {pod} in {namespace}",
                    if previous { "previous " } else { "" }
                ),
            )),
        }
    })
}

/// `oclaw teardown --driver kubernetes`: every object the cluster of the last revision has is
/// deleted (its Namespace and revision history stay, so a later deploy continues the numbering).
pub fn teardown(driver: DriverArg, namespace: &str, confirm: bool) -> ExitCode {
    if !confirm {
        return report(&DriverError::new(
            ErrorCode::InvalidField,
            format!("teardown deletes every object of the cluster in {namespace}; add --confirm"),
        ));
    }
    if driver != DriverArg::Kubernetes {
        return report(&oclaw_cluster::nomad::not_built());
    }
    let run = async {
        let d = super::kube_driver::KubeDriver::connect(namespace).await?;
        let Some(last) = d.revisions().await?.pop() else {
            return Err(DriverError::unavailable(format!(
                "no cluster is recorded in {namespace}"
            )));
        };
        let cluster = parse(&d.cluster_text(last.revision).await?)?;
        let all: Vec<String> = oclaw_cluster::kubernetes::COMPONENTS
            .iter()
            .map(|c| c.to_string())
            .collect();
        let observed = d.observe(&cluster).await?;
        let plan = oclaw_cluster::driver::prune_plan(&observed, &[], &all);
        for o in &plan {
            d.delete(o).await?;
            println!("  deleted {o}");
        }
        d.delete_rollout(&cluster.metadata.name).await?;
        println!(
            "{namespace}: {} objects of cluster {} deleted; the namespace and {} revisions kept",
            plan.len(),
            cluster.metadata.name,
            last.revision
        );
        Ok(ExitCode::SUCCESS)
    };
    block_on(run)
}

/// `oclaw rollout-guard` (Kubernetes).
pub fn rollout_guard(namespace: &str, every: f64) -> ExitCode {
    if !(every > 0.0 && every.is_finite()) {
        return report(&DriverError::new(
            ErrorCode::InvalidField,
            "--every is a number of seconds above 0",
        ));
    }
    let run = async {
        let d = super::kube_driver::KubeDriver::connect(namespace).await?;
        super::kube_canary::guard(&d, namespace, Duration::from_secs_f64(every)).await
    };
    block_on(run)
}

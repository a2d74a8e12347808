//! The release commands on any driver — `status`, `upgrade history`, `upgrade`, `rollback`,
//! `logs`, `diagnose`, `teardown`, and the long-running `supervise` (local) and `rollout-guard`
//! (Kubernetes) — wired to `oclaw_cluster`: a driver opened by kind, the orchestration run with
//! an [`Output`], its error reported with its code.

use std::process::ExitCode;
use std::time::Duration;

use oclaw_cluster::driver::{Driver, DriverError};
use oclaw_cluster::release::{self, CanaryRequest, DatabaseAfter, TornDown};
use oclaw_cluster::{AnyDriver, DriverKind};
use oclaw_core::ErrorCode;

use super::output::{print_history, print_status, report, Output};
use crate::cli::{DriverArg, RolloutArg, UpgradeArgs};

impl From<DriverArg> for DriverKind {
    fn from(d: DriverArg) -> DriverKind {
        match d {
            DriverArg::Local => DriverKind::Local,
            DriverArg::Kubernetes => DriverKind::Kubernetes,
            DriverArg::Nomad => DriverKind::Nomad,
        }
    }
}

/// Runs a release command on a fresh runtime; its error is reported with its code.
pub fn block_on(run: impl std::future::Future<Output = Result<(), DriverError>>) -> ExitCode {
    match super::runtime() {
        Ok(rt) => match rt.block_on(run) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => report(&e),
        },
        Err(code) => code,
    }
}

/// Runs `body` on the driver `driver` names, opened for `namespace`.
pub fn on_driver<F, Fut>(driver: DriverArg, namespace: &str, body: F) -> ExitCode
where
    F: FnOnce(AnyDriver) -> Fut,
    Fut: std::future::Future<Output = Result<(), DriverError>>,
{
    block_on(async move { body(AnyDriver::open(driver.into(), namespace).await?).await })
}

pub fn status(driver: DriverArg, namespace: &str, json: bool) -> ExitCode {
    on_driver(driver, namespace, |d| async move {
        print_status(&d.status().await?, json);
        Ok(())
    })
}

pub fn history(driver: DriverArg, namespace: &str, json: bool) -> ExitCode {
    on_driver(driver, namespace, |d| async move {
        print_history(&d.revisions().await?, json);
        Ok(())
    })
}

pub fn rollback(
    driver: DriverArg,
    namespace: &str,
    revision: u64,
    force: bool,
    out: Output,
) -> ExitCode {
    on_driver(driver, namespace, |d| async move {
        schema_guard(&d.revisions().await?, revision, force)?;
        release::rollback(&d, revision, force, Duration::from_secs(180), &out).await
    })
}

/// Refuses a rollback to a release that cannot run on the store as the later revisions left it
/// (a migration it does not understand: docs/migrations.md); with `--force`, warns instead.
/// Releases whose binary is not here to ask (an image on Kubernetes) are not checked.
fn schema_guard(
    revisions: &[oclaw_cluster::revision::Revision],
    revision: u64,
    force: bool,
) -> Result<(), DriverError> {
    use super::schema_facts::{of_version, runs_on};
    let Some(target) = revisions.iter().find(|r| r.revision == revision) else {
        return Ok(()); // the rollback itself says there is no such revision
    };
    let Some(target_facts) = of_version(&target.version) else {
        eprintln!(
            "warning: no oclaw {} binary here to ask for its store schema; the rollback is not checked against the store's migrations",
            target.version
        );
        return Ok(());
    };
    // Every release deployed since, even a canary rolled back, may have migrated the store.
    let mut problems = Vec::new();
    for later in revisions.iter().filter(|r| r.revision > revision) {
        let Some(Ok(facts)) = of_version(&later.version) else {
            continue;
        };
        let verdict = match &target_facts {
            Ok(t) => runs_on(t, &facts),
            Err(e) if later.version != target.version => Err(e.clone()),
            Err(_) => Ok(()),
        };
        if let Err(why) = verdict {
            if !problems.contains(&why) {
                problems.push(why);
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let message = format!(
        "rollback to revision {revision} (oclaw {}): {}",
        target.version,
        problems.join("; ")
    );
    if force {
        eprintln!("warning: {message}; going on because of --force");
        return Ok(());
    }
    Err(DriverError::new(
        ErrorCode::StoreSchemaTooNew,
        format!(
            "{message}. Roll back to a revision whose release runs on this schema, restore the backup taken before the upgrade, or pass --force if you know better"
        ),
    ))
}

/// `oclaw upgrade --rollout-strategy canary|all-in`.
pub fn upgrade(args: UpgradeArgs, out: Output) -> ExitCode {
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
    if args.driver == DriverArg::Nomad {
        return report(&oclaw_cluster::nomad::not_built());
    }
    let request = CanaryRequest {
        config: args.config,
        namespace: args.namespace,
        canary: strategy == RolloutArg::Canary,
        canary_percent: args.canary_percent,
        analysis_window: args.analysis_window,
        timeout: args.timeout,
    };
    on_driver(args.driver, &request.namespace.clone(), |d| async move {
        release::upgrade(&d, &request, &out).await
    })
}

pub fn diagnose(driver: DriverArg, namespace: &str) -> ExitCode {
    on_driver(driver, namespace, |d| async move {
        let out = super::output::Output { json: false };
        oclaw_cluster::diagnose::diagnose(&d, &out).await?;
        Ok(())
    })
}

/// `oclaw logs POD [--previous]`.
pub fn logs(driver: DriverArg, namespace: &str, pod: &str, previous: bool) -> ExitCode {
    on_driver(driver, namespace, |d| async move {
        match d.logs(pod, previous).await? {
            Some(text) => {
                use std::io::Write;
                let _ = std::io::stdout().write_all(text.as_bytes());
                Ok(())
            }
            None => Err(DriverError::new(
                ErrorCode::PodLogMissing,
                format!(
                    "no {}log for pod {pod} in {namespace}",
                    if previous { "previous " } else { "" }
                ),
            )),
        }
    })
}

/// `oclaw teardown`: locally the supervisor and its pods stop; on Kubernetes every object of
/// the cluster is deleted (its Namespace and revision history stay).
pub fn teardown(driver: DriverArg, namespace: &str, confirm: bool, purge: bool) -> ExitCode {
    let out = Output::HUMAN;
    block_on(async move {
        match release::teardown(driver.into(), namespace, confirm, purge, &out).await? {
            TornDown::Local {
                supervisor,
                database,
            } => {
                match supervisor {
                    None => println!("no supervisor running for {namespace}"),
                    Some(_) => println!("{namespace}: supervisor and pods stopped"),
                }
                match database {
                    DatabaseAfter::None => {}
                    DatabaseAfter::Stopped => println!(
                        "{namespace}: database stopped, its data kept (the next `oclaw init` starts it again; `oclaw teardown --purge` deletes it)"
                    ),
                    DatabaseAfter::Purged => println!("{namespace}: database stopped and its data deleted"),
                }
            }
            TornDown::Objects {
                deleted,
                cluster,
                revisions,
            } => println!(
                "{namespace}: {deleted} objects of cluster {cluster} deleted; the namespace and {revisions} revisions kept"
            ),
        }
        Ok(())
    })
}

/// `oclaw supervise --namespace NS` (local; started by `init`).
pub fn supervise(namespace: &str) -> ExitCode {
    match oclaw_cluster::drivers::local::supervisor::supervise(namespace) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// `oclaw rollout-guard` (Kubernetes).
pub fn rollout_guard(namespace: &str, every: f64) -> ExitCode {
    if !(every > 0.0 && every.is_finite()) {
        return report(&DriverError::new(
            ErrorCode::InvalidField,
            "--every is a number of seconds above 0",
        ));
    }
    block_on(async move {
        #[cfg(feature = "kubernetes")]
        {
            let d = oclaw_cluster::drivers::kubernetes::KubeDriver::connect(namespace).await?;
            oclaw_cluster::drivers::kubernetes::canary::guard(
                &d,
                namespace,
                Duration::from_secs_f64(every),
            )
            .await
        }
        #[cfg(not(feature = "kubernetes"))]
        {
            let _ = namespace;
            Err(oclaw_cluster::drivers::kubernetes_not_built())
        }
    })
}

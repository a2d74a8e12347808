//! `oclaw check-upgrade --from-version A --to-version B`: the checks to pass before an upgrade,
//! each PASS, WARN or FAIL — the version path, the store schema, deprecated configuration, and
//! the deployed revision and the health of the cluster (through its driver). Exit 0 when all pass, 3 with warnings, 1 with a
//! failure, 2 for bad arguments.

use std::process::ExitCode;

use oclaw_cluster::driver::{Driver, DriverError};

use crate::cli::DriverArg;

type Check = (&'static str, Verdict, String);

/// Configuration keys that still load but are going away: (key path, what to use instead).
const DEPRECATED: &[(&str, &str)] = &[];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Pass,
    Warn,
    Fail,
}

fn semver(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.trim().trim_start_matches('v');
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((
        it.next()??,
        it.next().unwrap_or(Some(0))?,
        it.next().unwrap_or(Some(0))?,
    ))
}

/// The version-path check, pure.
fn version_path(from: (u64, u64, u64), to: (u64, u64, u64)) -> (Verdict, String) {
    if to == from {
        return (
            Verdict::Warn,
            "the versions are the same: nothing to upgrade".into(),
        );
    }
    if to < from {
        return (
            Verdict::Fail,
            "the target is older: that is a rollback (oclaw rollback --revision N), not an upgrade"
                .into(),
        );
    }
    if to.0 > from.0 + 1 {
        return (
            Verdict::Fail,
            format!(
                "{} major versions at once; upgrade through {}.x first",
                to.0 - from.0,
                from.0 + 1
            ),
        );
    }
    if to.0 == from.0 + 1 {
        return (
            Verdict::Warn,
            "a major upgrade: read the release notes for breaking changes".into(),
        );
    }
    if to.1 > from.1 + 1 {
        return (
            Verdict::Warn,
            format!(
                "skips {} minor versions; upgrading one minor at a time keeps each migration small",
                to.1 - from.1 - 1
            ),
        );
    }
    (Verdict::Pass, "a supported step".into())
}

fn deprecated_keys(config: &serde_json::Value) -> Vec<String> {
    DEPRECATED
        .iter()
        .filter(|(path, _)| path.split('.').try_fold(config, |v, k| v.get(k)).is_some())
        .map(|(path, instead)| format!("`{path}` is deprecated; use {instead}"))
        .collect()
}

pub fn run(from: &str, to: &str, namespace: &str, driver: DriverArg) -> ExitCode {
    let (Some(f), Some(t)) = (semver(from), semver(to)) else {
        eprintln!("error[OC-2002]: --from-version and --to-version are versions like 1.2.0");
        return ExitCode::from(super::EXIT_INVALID);
    };
    let mut checks: Vec<Check> = Vec::new();
    let (v, m) = version_path(f, t);
    checks.push(("version path", v, format!("{from} -> {to}: {m}")));

    let this = env!("CARGO_PKG_VERSION");
    let schema = format!(
        "this binary ({this}) writes SQLite schema {} and PostgreSQL schema {}; migrations run forward only at start, and an older binary refuses a newer schema (OC-4003): take a backup before upgrading, and roll back only to a revision with this schema",
        oclaw_store::sqlite::SCHEMA_VERSION,
        oclaw_store::postgres::SCHEMA_VERSION
    );
    checks.push((
        "store schema",
        if semver(this) == Some(t) { Verdict::Pass } else { Verdict::Warn },
        if semver(this) == Some(t) { schema } else { format!("{schema}; this binary is not {to}, so its schema says nothing about {to}'s — check with the {to} binary") },
    ));

    let cluster = match super::runtime() {
        Ok(rt) => rt.block_on(cluster_checks(driver, namespace, f, from, to)),
        Err(code) => return code,
    };
    checks.extend(cluster);
    println!("{:<18} {:<6} DETAIL", "CHECK", "RESULT");
    for (name, v, detail) in &checks {
        let r = match v {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        };
        println!("{name:<18} {r:<6} {detail}");
    }
    match checks.iter().map(|c| c.1).max() {
        Some(Verdict::Fail) => ExitCode::from(1),
        Some(Verdict::Warn) => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    }
}

/// The checks that need the cluster: the deployed revision's configuration and version, and
/// the pods' health. A cluster the driver cannot reach is a warning: not checked.
async fn cluster_checks(
    driver: DriverArg,
    namespace: &str,
    from: (u64, u64, u64),
    from_text: &str,
    to_text: &str,
) -> Vec<Check> {
    let result = match driver {
        DriverArg::Local => match super::local_driver::LocalDriver::open(namespace) {
            Ok(d) => checks_on(&d, from, from_text).await.map(|mut c| {
                c.push(local_binary(to_text));
                c
            }),
            Err(e) => Err(e),
        },
        DriverArg::Kubernetes => match super::kube_driver::KubeDriver::connect(namespace).await {
            Ok(d) => checks_on(&d, from, from_text).await,
            Err(e) => Err(e),
        },
        DriverArg::Nomad => Err(oclaw_cluster::nomad::not_built()),
    };
    result.unwrap_or_else(|e| {
        vec![(
            "cluster",
            Verdict::Warn,
            format!("{}; health and configuration not checked", e.message),
        )]
    })
}

/// The local driver runs a version's pods from its installed binary.
fn local_binary(to: &str) -> Check {
    let v = to.trim_start_matches('v');
    let path = super::local::version_binary(v);
    if v == env!("CARGO_PKG_VERSION") {
        ("binary", Verdict::Pass, format!("this binary is {v}"))
    } else if path.is_file() {
        (
            "binary",
            Verdict::Pass,
            format!("{v} installed at {}", path.display()),
        )
    } else {
        (
            "binary",
            Verdict::Warn,
            format!(
                "no oclaw {v} at {}: the pods would run this binary ({}); install {v} there first",
                path.display(),
                env!("CARGO_PKG_VERSION")
            ),
        )
    }
}

async fn checks_on<D: Driver>(
    d: &D,
    from: (u64, u64, u64),
    from_text: &str,
) -> Result<Vec<Check>, DriverError> {
    let mut checks = Vec::new();
    let deployed = d
        .revisions()
        .await?
        .into_iter()
        .rev()
        .find(|r| r.status == "deployed");
    let config = match &deployed {
        Some(r) => serde_yaml::from_str::<serde_json::Value>(&d.cluster_text(r.revision).await?)
            .ok()
            .and_then(|v| v.pointer("/spec/config").cloned())
            .unwrap_or_default(),
        None => serde_json::Value::Null,
    };
    let found = deprecated_keys(&config);
    checks.push(match found.is_empty() {
        true => (
            "deprecated config",
            Verdict::Pass,
            "no deprecated keys in spec.config".into(),
        ),
        false => ("deprecated config", Verdict::Warn, found.join("; ")),
    });
    checks.push(match &deployed {
        Some(r) if semver(&r.version) != Some(from) => (
            "deployed version",
            Verdict::Warn,
            format!(
                "revision {} runs {}, not {from_text}",
                r.revision, r.version
            ),
        ),
        Some(r) => (
            "deployed version",
            Verdict::Pass,
            format!("revision {} runs {from_text}", r.revision),
        ),
        None => (
            "deployed version",
            Verdict::Fail,
            "nothing is deployed yet".into(),
        ),
    });
    let pods = d.status().await?.pods;
    let unready: Vec<String> = pods
        .iter()
        .filter(|p| !p.ready)
        .map(|p| format!("{} ({})", p.name, p.status))
        .collect();
    let restarting: Vec<String> = pods
        .iter()
        .filter(|p| p.restarts > 0)
        .map(|p| format!("{} x{}", p.name, p.restarts))
        .collect();
    checks.push(if pods.is_empty() {
        (
            "cluster health",
            Verdict::Fail,
            "no pods are running".into(),
        )
    } else if !unready.is_empty() {
        (
            "cluster health",
            Verdict::Fail,
            format!(
                "not ready: {}; an upgrade would stall (see oclaw status)",
                unready.join(", ")
            ),
        )
    } else if !restarting.is_empty() {
        (
            "cluster health",
            Verdict::Warn,
            format!("all ready, but restarted before: {}", restarting.join(", ")),
        )
    } else {
        (
            "cluster health",
            Verdict::Pass,
            format!("{} pods ready", pods.len()),
        )
    });
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_paths() {
        let v = |a: &str, b: &str| version_path(semver(a).unwrap(), semver(b).unwrap()).0;
        assert_eq!(v("1.2.0", "1.3.0"), Verdict::Pass);
        assert_eq!(v("1.2.0", "1.2.5"), Verdict::Pass);
        assert_eq!(v("1.2.0", "1.5.0"), Verdict::Warn);
        assert_eq!(v("1.2.0", "2.0.0"), Verdict::Warn);
        assert_eq!(v("1.2.0", "3.0.0"), Verdict::Fail);
        assert_eq!(v("1.3.0", "1.2.0"), Verdict::Fail);
        assert_eq!(semver("v1.3.0-rc.1"), Some((1, 3, 0)));
        assert_eq!(semver("one"), None);
    }
}

//! The checks `oclaw check-upgrade --from-version A --to-version B` runs before an upgrade,
//! each PASS, WARN or FAIL: the version path, deprecated configuration, the deployed revision,
//! the health of the cluster (through its driver) and, locally, the target's binary. (The store
//! schema check is the command's: it knows the store.)

use crate::driver::RevisionStatus;
use crate::driver::{Driver, DriverError};
use crate::drivers::{AnyDriver, DriverKind};

/// One check: its name, verdict and detail.
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

impl Check {
    pub fn new(name: &'static str, verdict: Verdict, detail: String) -> Check {
        Check {
            name,
            verdict,
            detail,
        }
    }
}

/// Configuration keys that still load but are going away: (key path, what to use instead).
const DEPRECATED: &[(&str, &str)] = &[];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

pub fn semver(v: &str) -> Option<(u64, u64, u64)> {
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
pub fn version_path(from: (u64, u64, u64), to: (u64, u64, u64)) -> (Verdict, String) {
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

/// The checks that need the cluster: the deployed revision's configuration and version, and
/// the pods' health. A cluster the driver cannot reach is a warning: not checked.
pub async fn cluster_checks(
    kind: DriverKind,
    namespace: &str,
    from: (u64, u64, u64),
    from_text: &str,
    to_text: &str,
) -> Vec<Check> {
    let result = match AnyDriver::open(kind, namespace).await {
        Ok(AnyDriver::Nomad(_)) => Err(crate::drivers::nomad::not_built()),
        Ok(d) => checks_on(&d, from, from_text).await.map(|mut c| {
            if kind == DriverKind::Local {
                c.push(local_binary(to_text));
            }
            c
        }),
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| {
        vec![Check::new(
            "cluster",
            Verdict::Warn,
            format!("{}; health and configuration not checked", e.message),
        )]
    })
}

/// The local driver runs a version's pods from its installed binary.
fn local_binary(to: &str) -> Check {
    let v = to.trim_start_matches('v');
    let path = crate::drivers::local::record::version_binary(v);
    if v == env!("CARGO_PKG_VERSION") {
        Check::new("binary", Verdict::Pass, format!("this binary is {v}"))
    } else if path.is_file() {
        Check::new(
            "binary",
            Verdict::Pass,
            format!("{v} installed at {}", path.display()),
        )
    } else {
        Check::new(
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
        .find(|r| r.status == RevisionStatus::Deployed);
    let config = match &deployed {
        Some(r) => serde_yaml::from_str::<serde_json::Value>(&d.cluster_text(r.revision).await?)
            .ok()
            .and_then(|v| v.pointer("/spec/config").cloned())
            .unwrap_or_default(),
        None => serde_json::Value::Null,
    };
    let found = deprecated_keys(&config);
    checks.push(match found.is_empty() {
        true => Check::new(
            "deprecated config",
            Verdict::Pass,
            "no deprecated keys in spec.config".into(),
        ),
        false => Check::new("deprecated config", Verdict::Warn, found.join("; ")),
    });
    checks.push(match &deployed {
        Some(r) if semver(&r.version) != Some(from) => Check::new(
            "deployed version",
            Verdict::Warn,
            format!(
                "revision {} runs {}, not {from_text}",
                r.revision, r.version
            ),
        ),
        Some(r) => Check::new(
            "deployed version",
            Verdict::Pass,
            format!("revision {} runs {from_text}", r.revision),
        ),
        None => Check::new(
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
        Check::new(
            "cluster health",
            Verdict::Fail,
            "no pods are running".into(),
        )
    } else if !unready.is_empty() {
        Check::new(
            "cluster health",
            Verdict::Fail,
            format!(
                "not ready: {}; an upgrade would stall (see oclaw status)",
                unready.join(", ")
            ),
        )
    } else if !restarting.is_empty() {
        Check::new(
            "cluster health",
            Verdict::Warn,
            format!("all ready, but restarted before: {}", restarting.join(", ")),
        )
    } else {
        Check::new(
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

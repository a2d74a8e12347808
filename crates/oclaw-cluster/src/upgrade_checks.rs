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

/// A release version as semantic versioning orders it: `1.3.0-rc.1` < `1.3.0-rc.2` <
/// `1.3.0`; build metadata (`+…`) is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Pre-release identifiers (`rc`, `1`); empty for a release.
    pub pre: Vec<PreIdent>,
}

/// One dot-separated pre-release identifier: numeric ones order numerically and before
/// alphanumeric ones, which order as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PreIdent {
    Num(u64),
    Text(String),
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                // A pre-release comes before its release.
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        for (i, p) in self.pre.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            match p {
                PreIdent::Num(n) => write!(f, "{n}")?,
                PreIdent::Text(t) => f.write_str(t)?,
            }
        }
        Ok(())
    }
}

pub fn semver(v: &str) -> Option<Version> {
    let v = v.trim().trim_start_matches('v');
    let v = v.split('+').next()?;
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    let (major, minor, patch) = (
        it.next()??,
        it.next().unwrap_or(Some(0))?,
        it.next().unwrap_or(Some(0))?,
    );
    if it.next().is_some() {
        return None;
    }
    let pre = match pre {
        None => Vec::new(),
        Some(p) => p
            .split('.')
            .map(|id| match id.parse::<u64>() {
                Ok(n) => Some(PreIdent::Num(n)),
                Err(_)
                    if !id.is_empty()
                        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
                {
                    Some(PreIdent::Text(id.to_string()))
                }
                Err(_) => None,
            })
            .collect::<Option<Vec<_>>>()?,
    };
    Some(Version {
        major,
        minor,
        patch,
        pre,
    })
}

/// The version-path check, pure.
pub fn version_path(from: &Version, to: &Version) -> (Verdict, String) {
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
    if to.major > from.major + 1 {
        return (
            Verdict::Fail,
            format!(
                "{} major versions at once; upgrade through {}.x first",
                to.major - from.major,
                from.major + 1
            ),
        );
    }
    if to.major == from.major + 1 {
        return (
            Verdict::Warn,
            "a major upgrade: read the release notes for breaking changes".into(),
        );
    }
    if to.major == from.major && to.minor > from.minor + 1 {
        return (
            Verdict::Warn,
            format!(
                "skips {} minor versions; upgrading one minor at a time keeps each migration small",
                to.minor - from.minor - 1
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
    from: Version,
    from_text: &str,
    to_text: &str,
) -> Vec<Check> {
    let result = match AnyDriver::open(kind, namespace).await {
        Ok(AnyDriver::Nomad(_)) => Err(crate::drivers::nomad::not_built()),
        Ok(d) => checks_on(&d, &from, from_text).await.map(|mut c| {
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
    from: &Version,
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
        Some(r) => serde_saphyr::from_str::<serde_json::Value>(&d.cluster_text(r.revision).await?)
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
        Some(r) if semver(&r.version).as_ref() != Some(from) => Check::new(
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
        let v = |a: &str, b: &str| version_path(&semver(a).unwrap(), &semver(b).unwrap()).0;
        assert_eq!(v("1.2.0", "1.3.0"), Verdict::Pass);
        assert_eq!(v("1.2.0", "1.2.5"), Verdict::Pass);
        assert_eq!(v("1.2.0", "1.5.0"), Verdict::Warn);
        assert_eq!(v("1.2.0", "2.0.0"), Verdict::Warn);
        assert_eq!(v("1.2.0", "3.0.0"), Verdict::Fail);
        assert_eq!(v("1.3.0", "1.2.0"), Verdict::Fail);
        assert_eq!(semver("one"), None);
        // Pre-releases order before their release, numerically by number.
        assert_eq!(v("1.3.0-rc.1", "1.3.0"), Verdict::Pass);
        assert_eq!(
            v("1.3.0", "1.3.0-rc.1"),
            Verdict::Fail,
            "back to a pre-release"
        );
        let order = [
            "1.3.0-alpha",
            "1.3.0-alpha.1",
            "1.3.0-alpha.beta",
            "1.3.0-beta.2",
            "1.3.0-beta.11",
            "1.3.0-rc.1",
            "1.3.0",
            "1.3.1",
        ];
        for w in order.windows(2) {
            assert!(
                semver(w[0]).unwrap() < semver(w[1]).unwrap(),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        assert_eq!(
            semver("v1.3.0-rc.1+build.7").unwrap().to_string(),
            "1.3.0-rc.1"
        );
        assert!(semver("1.3.0-").is_none() && semver("1.2.3.4").is_none());
    }
}

//! `oclaw check-upgrade --from-version A --to-version B`: the checks to pass before an upgrade,
//! each PASS, WARN or FAIL — the version path, the store schema, deprecated configuration, and
//! the deployed revision and the health of the cluster (through its driver). Exit 0 when all pass, 3 with warnings, 1 with a
//! failure, 2 for bad arguments.

use std::process::ExitCode;

use oclaw_cluster::upgrade_checks::{cluster_checks, semver, version_path, Check, Verdict};

use crate::cli::DriverArg;

pub fn run(from: &str, to: &str, namespace: &str, driver: DriverArg) -> ExitCode {
    let (Some(f), Some(t)) = (semver(from), semver(to)) else {
        eprintln!(
            "error[{}]: --from-version and --to-version are versions like 1.2.0",
            oclaw_core::ErrorCode::InvalidField.code()
        );
        return ExitCode::from(super::EXIT_INVALID);
    };
    let mut checks: Vec<Check> = Vec::new();
    let (v, m) = version_path(&f, &t);
    checks.push(Check::new(
        "version path",
        v,
        format!("{from} -> {to}: {m}"),
    ));

    checks.push(store_check(from, to));

    let cluster = match super::runtime() {
        Ok(rt) => rt.block_on(cluster_checks(driver.into(), namespace, f, from, to)),
        Err(code) => return code,
    };
    checks.extend(cluster);
    println!("{:<18} {:<6} DETAIL", "CHECK", "RESULT");
    for Check {
        name,
        verdict,
        detail,
    } in &checks
    {
        let r = match verdict {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        };
        println!("{name:<18} {r:<6} {detail}");
    }
    match checks.iter().map(|c| c.verdict).max() {
        Some(Verdict::Fail) => ExitCode::from(1),
        Some(Verdict::Warn) => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    }
}

/// Whether `to`'s migrations can be undone by a rollback to `from`: `from`'s schema must be at
/// least the oldest that `to`'s schema serves (`min_compatible`). Asks each release's binary
/// (this one, or one installed for the local driver); a release with no binary here is named.
fn store_check(from: &str, to: &str) -> Check {
    use super::schema_facts::{of_version, runs_on};
    let describe = |f: &super::schema_facts::Facts| {
        format!(
            "{} writes SQLite schema {} and PostgreSQL schema {} (runs on stores from schema {}/{} on)",
            f.version, f.schema.0, f.schema.1, f.min_compatible.0, f.min_compatible.1
        )
    };
    match (of_version(from), of_version(to)) {
        (Some(Ok(a)), Some(Ok(b))) => match runs_on(&a, &b) {
            Ok(()) => Check::new(
                "store schema",
                Verdict::Pass,
                format!(
                    "{}; {}: a rollback to {from} runs on the store {to} migrates (take a backup anyway)",
                    describe(&a),
                    describe(&b)
                ),
            ),
            Err(why) => Check::new(
                "store schema",
                Verdict::Warn,
                format!(
                    "not reversible by a rollback: {why}. Take a backup before upgrading; going back means restoring it"
                ),
            ),
        },
        (Some(Err(e)), _) | (_, Some(Err(e))) => Check::new("store schema", Verdict::Warn, e),
        (a, b) => {
            let missing: Vec<&str> = [(from, a.is_none()), (to, b.is_none())]
                .into_iter()
                .filter(|(_, m)| *m)
                .map(|(v, _)| v)
                .collect();
            Check::new(
                "store schema",
                Verdict::Warn,
                format!(
                    "no binary of {} here to ask for its schema (this is {}; install others under $OCLAW_HOME/versions/<version>/oclaw): whether a rollback can run on the migrated store is unknown — take a backup before upgrading",
                    missing.join(" and "),
                    env!("CARGO_PKG_VERSION")
                ),
            )
        }
    }
}

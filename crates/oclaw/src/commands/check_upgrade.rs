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

    let this = env!("CARGO_PKG_VERSION");
    let schema = format!(
        "this binary ({this}) writes SQLite schema {} and PostgreSQL schema {}; migrations run forward only at start, and an older binary refuses a newer schema (OC-4003): take a backup before upgrading, and roll back only to a revision with this schema",
        oclaw_store::sqlite::SCHEMA_VERSION,
        oclaw_store::postgres::SCHEMA_VERSION
    );
    checks.push(Check::new(
        "store schema",
        if semver(this).as_ref() == Some(&t) { Verdict::Pass } else { Verdict::Warn },
        if semver(this).as_ref() == Some(&t) { schema } else { format!("{schema}; this binary is not {to}, so its schema says nothing about {to}'s — check with the {to} binary") },
    ));

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

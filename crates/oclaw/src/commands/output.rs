//! How the cluster commands show what happened: an [`Output`] mode (human, or `-o json` with the
//! progress on stderr and the result on stdout) passed to the release orchestration as its
//! progress sink, the `error[OC-…]` report with its exit code, and the status and history tables.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use oclaw_cluster::driver::{ClusterStatus, DriverError, Revision};
use oclaw_cluster::release::Progress;
use oclaw_core::ErrorCode;

use super::{EXIT_FAILURE, EXIT_INVALID};

/// Where a command's progress and result go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// `-o json`: one JSON result on stdout, progress on stderr.
    pub json: bool,
}

impl Output {
    pub const HUMAN: Output = Output { json: false };
}

impl Progress for Output {
    fn say(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    fn note(&self, line: &str) {
        eprintln!("{line}");
    }
    fn result(&self, value: &serde_json::Value) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        }
    }
}

/// Reports a driver error with its code; bad input exits 2, the rest 1.
pub fn report(e: &DriverError) -> ExitCode {
    eprintln!("error[{}]: {}", e.code.code(), e.message);
    ExitCode::from(if e.bad_input() {
        EXIT_INVALID
    } else {
        EXIT_FAILURE
    })
}

/// Reports an error with an exit code of the caller's choosing.
pub fn fail(code: ErrorCode, message: impl std::fmt::Display, exit: u8) -> ExitCode {
    eprintln!("error[{}]: {message}", code.code());
    ExitCode::from(exit)
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
    if !s.database.is_empty() {
        println!(
            "\n{:<width$} {:<7} {:<17} PORT",
            "DATABASE", "ROLE", "STATUS"
        );
        for m in &s.database {
            println!(
                "{:<width$} {:<7} {:<17} {}",
                m.name, m.role, m.status, m.port
            );
        }
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

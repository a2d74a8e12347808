//! What a release's binary says about the store schemas it writes (`oclaw version --json`), and
//! whether a release can run on a store another release migrated: the facts `rollback` and
//! `check-upgrade` compare (docs/migrations.md).

use std::path::Path;

use serde_json::{json, Value};

/// The schema facts of one release.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub version: String,
    /// Schema versions it writes: SQLite, PostgreSQL.
    pub schema: (i64, i64),
    /// The oldest schema versions whose binaries run on its schemas.
    pub min_compatible: (i64, i64),
}

fn this_facts() -> Facts {
    Facts {
        version: env!("CARGO_PKG_VERSION").to_string(),
        schema: (
            oclaw_store::sqlite::schema_version(),
            oclaw_store::postgres::schema_version(),
        ),
        min_compatible: (
            oclaw_store::sqlite::min_compatible(),
            oclaw_store::postgres::min_compatible(),
        ),
    }
}

/// This binary's facts, as `oclaw version --json` prints them.
pub fn this() -> Value {
    let f = this_facts();
    json!({
        "version": f.version,
        "schema": {"sqlite": f.schema.0, "postgres": f.schema.1},
        "min_compatible": {"sqlite": f.min_compatible.0, "postgres": f.min_compatible.1},
    })
}

fn parse(v: &Value) -> Option<Facts> {
    Some(Facts {
        version: v["version"].as_str()?.to_string(),
        schema: (
            v["schema"]["sqlite"].as_i64()?,
            v["schema"]["postgres"].as_i64()?,
        ),
        min_compatible: (
            v["min_compatible"]["sqlite"].as_i64()?,
            v["min_compatible"]["postgres"].as_i64()?,
        ),
    })
}

/// Asks a release's binary for its facts.
pub fn of_binary(binary: &Path) -> Result<Facts, String> {
    let out = std::process::Command::new(binary)
        .args(["version", "--json"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} does not report its schema (`version --json`): it predates schema compatibility records, and such a binary refuses any store schema newer than its own",
            binary.display()
        ));
    }
    serde_json::from_slice(&out.stdout)
        .ok()
        .as_ref()
        .and_then(parse)
        .ok_or_else(|| format!("{} printed no schema facts", binary.display()))
}

/// The facts of `version`: this binary's for its own version, else those of the binary
/// installed for the local driver (`$OCLAW_HOME/versions/<version>/oclaw`); `None` when no
/// binary of that version is here to ask (an image on Kubernetes, say).
pub fn of_version(version: &str) -> Option<Result<Facts, String>> {
    let v = version.trim_start_matches('v');
    if v == env!("CARGO_PKG_VERSION") {
        return Some(Ok(this_facts()));
    }
    let binary = oclaw_cluster::drivers::local::record::version_binary(v);
    binary.is_file().then(|| of_binary(&binary))
}

/// Whether `target` runs on a store that `current` has migrated: its schema must be at least the
/// oldest that `current`'s schema still serves. `Err` says why not.
pub fn runs_on(target: &Facts, current: &Facts) -> Result<(), String> {
    let mut why = Vec::new();
    if target.schema.0 < current.min_compatible.0 {
        why.push(format!(
            "SQLite schema {} < {} (the oldest that {}'s schema {} serves)",
            target.schema.0, current.min_compatible.0, current.version, current.schema.0
        ));
    }
    if target.schema.1 < current.min_compatible.1 {
        why.push(format!(
            "PostgreSQL schema {} < {} (the oldest that {}'s schema {} serves)",
            target.schema.1, current.min_compatible.1, current.version, current.schema.1
        ));
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "oclaw {} cannot run on a store migrated by oclaw {}: {}",
            target.version,
            current.version,
            why.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(version: &str, schema: i64, min: i64) -> Facts {
        Facts {
            version: version.into(),
            schema: (schema, schema - 1),
            min_compatible: (min, min - 1),
        }
    }

    #[test]
    fn an_additive_release_can_be_rolled_back_and_a_breaking_one_cannot() {
        // B adds a table (min_compatible stays at A's schema): A runs on B's store.
        assert!(runs_on(&f("1.0.0", 4, 4), &f("1.1.0", 5, 4)).is_ok());
        // C drops what A reads (min_compatible is C's own schema): A cannot.
        let e = runs_on(&f("1.0.0", 4, 4), &f("1.2.0", 6, 6)).unwrap_err();
        assert!(
            e.contains("SQLite schema 4 < 6") && e.contains("1.2.0"),
            "{e}"
        );
        assert_eq!(parse(&this()), Some(this_facts()));
    }
}

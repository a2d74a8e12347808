//! Support for tests that run against the real PostgreSQL: `OCLAW_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) names the database; every caller gets a schema of
//! its own. Outside CI an unreachable database skips the test with a message; under `CI=true` it
//! fails the test, so CI never passes by skipping.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::OnceCell;

pub const POSTGRES_URL_VAR: &str = "OCLAW_TEST_POSTGRES_URL";
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test database's URL as configured.
pub fn postgres_base_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

static CLEANED: OnceCell<()> = OnceCell::const_new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let connecting = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, connection) = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(client)
}

/// This process's PID namespace (the inode of `/proc/self/ns/pid`): a process id means
/// something only there.
fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Whether the test schema `name` (`oclaw_t_<pid>_<n>_<pid namespace>_<created>`) was left by a
/// test process that no longer runs: one of this PID namespace whose process is gone, or one
/// of another namespace (where its process cannot be seen) older than a day.
fn is_stale(name: &str, namespace: u64, now: u64, alive: impl Fn(&str) -> bool) -> bool {
    let parts: Vec<&str> = name.split('_').collect();
    match parts.as_slice() {
        ["oclaw", "t", pid, _, ns, created] => {
            let (Ok(ns), Ok(created)) = (ns.parse::<u64>(), created.parse::<u64>()) else {
                return false;
            };
            if ns == namespace {
                !alive(pid)
            } else {
                now.saturating_sub(created) > 24 * 3600
            }
        }
        // Names from before the namespace was part of them.
        ["oclaw", "t", pid, _] => !alive(pid),
        _ => false,
    }
}

/// Drops test schemas left by test processes that no longer run.
async fn drop_stale_schemas(client: &tokio_postgres::Client) {
    let Ok(rows) = client
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'oclaw_t\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    let (namespace, now) = (pid_namespace(), now_secs());
    let alive = |pid: &str| std::path::Path::new(&format!("/proc/{pid}")).exists();
    for row in rows {
        let name: String = row.get(0);
        if is_stale(&name, namespace, now, alive) {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                .await;
        }
    }
}

/// A `storage.url` for a new, empty schema in the test database; `None` when the database is
/// unreachable outside CI (the caller skips). Panics under `CI=true` when it is unreachable.
pub async fn fresh_postgres_url() -> Option<String> {
    let base = postgres_base_url();
    let client = match connect(&base).await {
        Ok(c) => c,
        Err(e) => {
            if oclaw_core::ci::under_ci() {
                panic!("PostgreSQL at {base} is required under CI=true but unreachable: {e}");
            }
            eprintln!("skipped: PostgreSQL at {base} unreachable ({e}); set {POSTGRES_URL_VAR}");
            return None;
        }
    };
    CLEANED.get_or_init(|| drop_stale_schemas(&client)).await;
    let schema = format!(
        "oclaw_t_{}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        pid_namespace(),
        now_secs()
    );
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}schema={schema}"))
}

/// A value of the store's own facts (`oclaw_meta`) in the schema a `fresh_postgres_url` names.
pub async fn postgres_meta(url: &str, key: &str) -> Option<String> {
    let schema = url.split("schema=").nth(1)?.split('&').next()?.to_string();
    let client = connect(&postgres_base_url()).await.ok()?;
    client
        .query_opt(
            &format!("SELECT value FROM \"{schema}\".oclaw_meta WHERE key = $1"),
            &[&key],
        )
        .await
        .ok()?
        .map(|r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_schemas_of_gone_processes_are_stale() {
        let alive = |pid: &str| pid == "10";
        let now = 1_000_000;
        // This namespace: by whether the process runs.
        assert!(!is_stale("oclaw_t_10_0_7_999990", 7, now, alive));
        assert!(is_stale("oclaw_t_11_0_7_999990", 7, now, alive));
        // Another namespace: its pids mean nothing here; only a day's age counts.
        assert!(!is_stale("oclaw_t_11_0_8_999990", 7, now, alive));
        assert!(is_stale("oclaw_t_11_0_8_900000", 7, now, alive));
        // The older names, and names of no test schema.
        assert!(is_stale("oclaw_t_11_3", 7, now, alive));
        assert!(!is_stale("oclaw_t_10_3", 7, now, alive));
        assert!(!is_stale("oclaw_t_x", 7, now, alive));
    }
}

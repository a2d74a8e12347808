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
    for row in rows {
        let name: String = row.get(0);
        let pid = name.split('_').nth(2).unwrap_or("");
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
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
        "oclaw_t_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}schema={schema}"))
}

//! The distributed backend: PostgreSQL shared by every api-server, scheduler and worker.
//!
//! Claims take a batch in one statement with `FOR UPDATE SKIP LOCKED`; completions and bulk
//! enqueues are one statement each over `unnest` arrays; wake-ups travel as `NOTIFY` (one per
//! statement, never one per task) to a `LISTEN` connection in every process, with polling as the
//! fallback. Losing the database makes calls fail with `OC-4001`; the pool and the listener
//! reconnect by themselves when it is back.

mod coordination;
mod kv;
mod listener;
mod queue;
mod rows;
mod schema;
mod store_impl;
mod transitions;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::{StoreError, StoreResult, Wakeups};

pub use schema::SCHEMA_VERSION;

/// How the PostgreSQL backend connects.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most pooled connections (the LISTEN connection is extra).
    pub pool_size: usize,
    /// Longest wait for a connection (new or from the pool) before a call fails with OC-4001.
    pub timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 10,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Names derived from the schema, so stores in different schemas of one database never see each
/// other's wake-ups.
#[derive(Debug, Clone)]
pub(crate) struct Channels {
    pub queued: String,
    pub scheduled: String,
    pub finished: String,
}

impl Channels {
    fn for_schema(schema: &str) -> Channels {
        let prefix = if schema == "public" {
            "oclaw".to_string()
        } else {
            format!("oclaw_{schema}")
        };
        Channels {
            queued: format!("{prefix}_queued"),
            scheduled: format!("{prefix}_scheduled"),
            finished: format!("{prefix}_finished"),
        }
    }
}

pub(crate) struct Inner {
    pub pool: Pool,
    pub schema: String,
    pub channels: Channels,
    pub wakeups: Wakeups,
    pub capacities: crate::rows::Capacities,
    /// Which queue the next multi-queue claim starts at (round robin).
    pub claim_rotation: std::sync::atomic::AtomicUsize,
}

/// A store in one schema of a PostgreSQL database.
pub struct PgStore {
    pub(crate) inner: Arc<Inner>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Splits our own `schema=` parameter off a PostgreSQL URL; the rest goes to the driver.
fn split_schema(url: &str) -> StoreResult<(String, String)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), "public".into()));
    };
    let mut schema = "public".to_string();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("schema=") {
            Some(s) => schema = s.to_string(),
            None => rest.push(pair),
        }
    }
    let valid = !schema.is_empty()
        && schema.len() <= 40
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(StoreError::Unsupported(format!(
            "storage.url schema `{schema}` must be lowercase letters, digits and _ (at most 40)"
        )));
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, schema))
}

impl PgStore {
    /// Connects, creates the schema if needed and brings it up to date (under a lock, so nodes
    /// starting together do not race), then starts listening for wake-ups.
    /// `url` is `postgres://user[:password]@host[:port]/db[?schema=name&...]`.
    pub async fn open(url: &str, options: PgOptions) -> StoreResult<PgStore> {
        let (url, schema) = split_schema(url)?;
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            StoreError::Unsupported(format!(
                "storage.url `{}` is not a PostgreSQL URL: {e}",
                crate::redact_url(&url)
            ))
        })?;
        config
            .connect_timeout(options.timeout)
            .application_name("oclaw")
            .options(format!("-c search_path={schema}"));
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(|e| StoreError::Internal(format!("connection pool: {e}")))?;
        {
            let mut client = pool.get().await.map_err(pool_err)?;
            schema::migrate(&mut client, &schema).await?;
        }
        let inner = Arc::new(Inner {
            pool,
            channels: Channels::for_schema(&schema),
            schema,
            wakeups: Wakeups::default(),
            capacities: Default::default(),
            claim_rotation: Default::default(),
        });
        let listener = listener::spawn(config, inner.clone()).await?;
        Ok(PgStore { inner, listener })
    }

    /// The schema this store lives in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }
}

/// Maps a driver error to the store's error kinds: connection trouble is `Unavailable`
/// (OC-4001, retried by components), lock conflicts `Locked`, a full disk `DiskFull`.
pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let msg = format!("{} ({code})", db.message());
        return match code {
            "53100" => StoreError::DiskFull(msg),
            "23505" => StoreError::Duplicate(msg),
            "40001" | "40P01" | "55P03" => StoreError::Locked(msg),
            c if c.starts_with("08") || c.starts_with("57P") || c == "53300" => {
                StoreError::Unavailable(msg)
            }
            _ => StoreError::Internal(msg),
        };
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    let text = e.to_string();
    if io || e.is_closed() || text.contains("connect") || text.contains("timed out") {
        StoreError::Unavailable(format!("PostgreSQL: {text}"))
    } else {
        StoreError::Internal(format!("PostgreSQL: {text}"))
    }
}

pub(crate) fn pool_err(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg_err(e),
        PoolError::Timeout(_) => {
            StoreError::Unavailable("no PostgreSQL connection within the timeout".into())
        }
        other => StoreError::Unavailable(format!("PostgreSQL connection pool: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parameter_is_ours() {
        assert_eq!(
            split_schema("postgres://u@h/db?schema=ops&sslmode=disable").unwrap(),
            ("postgres://u@h/db?sslmode=disable".into(), "ops".into())
        );
        assert_eq!(
            split_schema("postgres://u@h/db").unwrap(),
            ("postgres://u@h/db".into(), "public".into())
        );
        assert!(split_schema("postgres://u@h/db?schema=Drop;Table").is_err());
        assert_eq!(Channels::for_schema("public").queued, "oclaw_queued");
        assert_eq!(Channels::for_schema("t1").finished, "oclaw_t1_finished");
    }
}

//! The distributed backend: PostgreSQL shared by every api-server, scheduler and worker.
//!
//! Claims take a batch in one statement with `FOR UPDATE SKIP LOCKED`; completions and bulk
//! enqueues are one statement each over `unnest` arrays; wake-ups travel as `NOTIFY` (one per
//! statement, never one per task) to a `LISTEN` connection in every process, with polling as the
//! fallback. Losing the database makes calls fail with `OC-4001`; the pool and the listener
//! reconnect by themselves when it is back.

mod access;
mod coordination;
mod knowledge;
mod kv;
mod listener;
mod queue;
mod rows;
mod schema;
mod store_impl;
mod tls;
mod transitions;
mod waits;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};

use crate::{StoreError, StoreResult, Wakeups};

pub use schema::{min_compatible, schema_version};

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
    /// The tenants with tasks queued on each queue, as claims last found them.
    pub tenant_cache: crate::rows::TenantCache,
}

/// A store in one schema of a PostgreSQL database.
pub struct PgStore {
    pub(crate) inner: Arc<Inner>,
    listener: tokio::task::JoinHandle<()>,
    migrations_applied: usize,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// The parameters of `storage.url` that are ours rather than the driver's.
#[derive(Debug, PartialEq)]
struct UrlParts {
    /// The URL the driver gets.
    url: String,
    schema: String,
    tls: tls::Tls,
}

/// Splits our own parameters off a PostgreSQL URL: `schema=`, and `sslmode`/`sslrootcert` (the
/// driver knows only some `sslmode` values); the rest goes to the driver.
fn split_url(url: &str) -> StoreResult<UrlParts> {
    let mut parts = UrlParts {
        url: url.to_string(),
        schema: "public".into(),
        tls: tls::Tls::default(),
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok(parts);
    };
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "schema" {
            parts.schema = value.to_string();
        } else if !parts.tls.take(key, value)? {
            rest.push(pair);
        }
    }
    let schema = &parts.schema;
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
    parts.url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok(parts)
}

impl PgStore {
    /// Connects, creates the schema if needed and brings it up to date (under a lock, so nodes
    /// starting together do not race), then starts listening for wake-ups.
    /// `url` is `postgres://user[:password]@host[:port]/db[?schema=name&...]`.
    pub async fn open(url: &str, options: PgOptions) -> StoreResult<PgStore> {
        let UrlParts { url, schema, tls } = split_url(url)?;
        let connector = tls.connector()?;
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| {
            StoreError::Unsupported(format!(
                "storage.url `{}` is not a PostgreSQL URL: {e}",
                crate::redact_url(&url)
            ))
        })?;
        config
            .connect_timeout(options.timeout)
            .application_name("oclaw")
            .ssl_mode(tls.driver_mode())
            .options(format!("-c search_path={schema}"));
        let manager = Manager::from_config(
            config.clone(),
            connector.clone(),
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
        let migrations_applied = {
            let mut client = pool.get().await.map_err(pool_err)?;
            schema::migrate(&mut client, &schema).await?
        };
        let inner = Arc::new(Inner {
            pool,
            channels: Channels::for_schema(&schema),
            schema,
            wakeups: Wakeups::default(),
            capacities: Default::default(),
            claim_rotation: Default::default(),
            tenant_cache: Default::default(),
        });
        let listener = listener::spawn(config, connector, inner.clone()).await?;
        Ok(PgStore {
            inner,
            listener,
            migrations_applied,
        })
    }

    /// Schema migrations this store applied when it opened (0 when another node had).
    pub fn migrations_applied(&self) -> usize {
        self.migrations_applied
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
    // The driver's message names the step ("error performing TLS handshake"); its sources say
    // what went wrong ("invalid peer certificate: UnknownIssuer").
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
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
    fn schema_and_tls_parameters_are_ours() {
        let parts =
            split_url("postgres://u@h/db?schema=ops&sslmode=verify-full&sslrootcert=/ca.pem&connect_timeout=3")
                .unwrap();
        assert_eq!(parts.url, "postgres://u@h/db?connect_timeout=3");
        assert_eq!(parts.schema, "ops");
        assert_eq!(parts.tls.mode, tls::Mode::VerifyFull);
        assert_eq!(parts.tls.root.as_deref(), Some("/ca.pem"));
        let plain = split_url("postgres://u@h/db").unwrap();
        assert_eq!(
            (plain.url.as_str(), plain.schema.as_str()),
            ("postgres://u@h/db", "public")
        );
        assert_eq!(plain.tls, tls::Tls::default());
        assert!(split_url("postgres://u@h/db?schema=Drop;Table").is_err());
        assert_eq!(Channels::for_schema("public").queued, "oclaw_queued");
        assert_eq!(Channels::for_schema("t1").finished, "oclaw_t1_finished");
    }
}

//! Durable state of OpenClaw: one [`Store`] trait, the embedded SQLite backend, the PostgreSQL
//! backend (cargo feature `postgres`, on by default), and the conformance suite every backend
//! passes (`conformance`, with `testing`'s database helpers: compiled for tests only, through the
//! `conformance` feature that the test builds turn on).

pub mod access;
mod codec;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod error;
pub mod knowledge;
mod migrations;
#[cfg(feature = "postgres")]
pub mod postgres;
mod rows;
pub mod secrets;
pub mod sqlite;
mod store;
#[cfg(any(test, feature = "conformance"))]
pub mod testing;
mod types;
pub mod waits;

pub use error::{StoreError, StoreResult};
pub use store::{Access, Coordination, Knowledge, KvStore, Store, TaskQueue, Waits};
pub use types::*;

/// How to open a store; each backend reads its own part.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    pub sqlite: sqlite::SqliteOptions,
    #[cfg(feature = "postgres")]
    pub postgres: postgres::PgOptions,
}

/// Opens the backend named by a `storage.url`.
pub async fn open_store(
    url: &str,
    options: StoreOptions,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PgStore::open(url, options.postgres).await?;
        return Ok(std::sync::Arc::new(store));
    }
    let options = options.sqlite;
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let store = sqlite::SqliteStore::open(path, options).await?;
        return Ok(std::sync::Arc::new(store));
    }
    Err(StoreError::Unsupported(format!(
        "storage.url `{}` names a backend this build does not have; use sqlite://PATH or postgres://USER@HOST/DB",
        redact_url(url)
    )))
}

/// A URL with any password replaced, safe to log.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            super::redact_url("sqlite://./data/x.db"),
            "sqlite://./data/x.db"
        );
    }
}

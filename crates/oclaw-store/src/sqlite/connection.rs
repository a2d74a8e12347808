//! Opening the SQLite file, its pragmas, the connection pool and the mapping of SQLite errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode as SqliteCode, OpenFlags};

use crate::{StoreError, StoreResult, Wakeups};

/// Settings of the embedded backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// `synchronous=FULL` (survives power loss) instead of `NORMAL` (survives a process crash).
    pub full_sync: bool,
    /// How long to wait for a lock held by another process before failing.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            full_sync: false,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

pub(super) struct Inner {
    pub writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    options: SqliteOptions,
    pub capacities: RwLock<HashMap<String, u64>>,
    pub wakeups: Wakeups,
}

/// The embedded SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    pub(super) inner: Arc<Inner>,
}

pub(super) fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg) => {
            let text = msg.clone().unwrap_or_else(|| f.to_string());
            match f.code {
                SqliteCode::DatabaseBusy | SqliteCode::DatabaseLocked => StoreError::Locked(text),
                SqliteCode::DatabaseCorrupt | SqliteCode::NotADatabase => StoreError::Corrupt(text),
                SqliteCode::DiskFull => StoreError::DiskFull(text),
                SqliteCode::CannotOpen
                | SqliteCode::SystemIoFailure
                | SqliteCode::PermissionDenied
                | SqliteCode::ReadOnly => StoreError::Unavailable(text),
                _ => StoreError::Internal(text),
            }
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

fn open_connection(path: &Path, options: &SqliteOptions) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
    conn.busy_timeout(options.busy_timeout).map_err(map_err)?;
    let sync = if options.full_sync { "FULL" } else { "NORMAL" };
    // journal_mode reads the file header: a corrupt file fails here with NotADatabase.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(map_err)?;
    if !mode.eq_ignore_ascii_case("wal") && path.as_os_str() != ":memory:" {
        return Err(StoreError::Unavailable(format!(
            "could not switch {} to WAL mode (got {mode})",
            path.display()
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA temp_store = MEMORY; PRAGMA foreign_keys = OFF;"
    ))
    .map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating when missing) the database at `path` and migrates its schema.
    pub async fn open(path: &str, options: SqliteOptions) -> StoreResult<SqliteStore> {
        let path = PathBuf::from(path);
        tokio::task::spawn_blocking(move || Self::open_blocking(path, options))
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    fn open_blocking(path: PathBuf, options: SqliteOptions) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create data folder {}: {e}", dir.display()))
            })?;
        }
        let mut writer = open_connection(&path, &options)?;
        super::schema::migrate(&mut writer)?;
        // A quick structural check so a damaged file is reported at start, not mid-run.
        let check: String = writer
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(map_err)?;
        if check != "ok" {
            return Err(StoreError::Corrupt(check));
        }
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                path,
                options,
                capacities: RwLock::new(HashMap::new()),
                wakeups: Wakeups::default(),
            }),
        })
    }

    /// Runs `f` with the single writer connection on a blocking thread.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Inner) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner
                .writer
                .lock()
                .map_err(|_| StoreError::Internal("writer lock poisoned".into()))?;
            f(&mut conn, &inner)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    /// Runs `f` with a reader connection (WAL lets readers run beside the writer).
    pub(super) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Inner) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path, &inner.options)?,
            };
            let result = f(&conn, &inner);
            if let Ok(mut pool) = inner.readers.lock() {
                if pool.len() < 4 {
                    pool.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }
}

impl SqliteStore {
    /// Limits the file to `pages` pages, as a full disk would; used by fault tests.
    #[doc(hidden)]
    pub async fn cap_pages_for_test(&self, pages: i64) {
        let _ = self
            .write(move |c, _| {
                c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                    .map_err(map_err)
            })
            .await;
    }
}

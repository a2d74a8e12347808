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

/// State the writer thread and the readers share.
pub(super) struct Shared {
    pub capacities: RwLock<HashMap<String, u64>>,
    pub wakeups: Wakeups,
}

type WriteJob = Box<dyn FnOnce(&mut Connection, &Shared) + Send>;

pub(super) struct Inner {
    /// Jobs for the one writer thread, which owns the writer connection: every write runs on the
    /// same thread, keeping SQLite's state warm in one core's cache.
    writer: std::sync::mpsc::Sender<WriteJob>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
    options: SqliteOptions,
    pub shared: Arc<Shared>,
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

/// A write transaction on cached `BEGIN IMMEDIATE`/`COMMIT` statements; rolled back when
/// dropped without a successful commit.
pub(super) struct Tx<'c> {
    conn: &'c Connection,
    committed: bool,
}

impl<'c> Tx<'c> {
    pub fn begin(conn: &'c Connection) -> StoreResult<Tx<'c>> {
        conn.prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(map_err)?;
        Ok(Tx {
            conn,
            committed: false,
        })
    }

    pub fn commit(mut self) -> StoreResult<()> {
        self.conn
            .prepare_cached("COMMIT")
            .and_then(|mut s| s.execute([]))
            .map_err(map_err)?;
        self.committed = true;
        Ok(())
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.committed && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// Copies the WAL back into the database file every 200 ms (passive: never blocks the writer or
/// readers). Stops when the database file is no longer reachable.
fn spawn_checkpointer(path: &Path, options: &SqliteOptions) -> StoreResult<()> {
    let conn = open_connection(path, options)?;
    std::thread::Builder::new()
        .name("oclaw-sqlite-checkpoint".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            let result: rusqlite::Result<(i64, i64, i64)> =
                conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                });
            if let Err(e) = result {
                tracing::warn!(component = "store", "WAL checkpoint failed: {e}");
                std::thread::sleep(Duration::from_secs(5));
            }
        })
        .map_err(|e| StoreError::Internal(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(())
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
        // Checkpoints run on their own thread so the writer never pauses for them.
        writer
            .execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(map_err)?;
        spawn_checkpointer(&path, &options)?;
        let shared = Arc::new(Shared {
            capacities: RwLock::new(HashMap::new()),
            wakeups: Wakeups::default(),
        });
        let (tx, rx) = std::sync::mpsc::channel::<WriteJob>();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("oclaw-sqlite-writer".into())
            .spawn(move || {
                let mut conn = writer;
                // Ends when the last handle of the store is dropped.
                while let Ok(job) = rx.recv() {
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        job(&mut conn, &thread_shared)
                    }));
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: tx,
                readers: Mutex::new(Vec::new()),
                path,
                options,
                shared,
            }),
        })
    }

    /// Runs `f` on the writer thread with the single writer connection.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Shared) -> StoreResult<T> + Send + 'static,
    {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move |conn, shared| {
            let _ = done_tx.send(f(conn, shared));
        });
        self.inner
            .writer
            .send(job)
            .map_err(|_| StoreError::Internal("the database writer thread has stopped".into()))?;
        done_rx
            .await
            .map_err(|_| StoreError::Internal("a database write panicked".into()))?
    }

    /// Runs `f` with a reader connection (WAL lets readers run beside the writer).
    pub(super) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Shared) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path, &inner.options)?,
            };
            let result = f(&conn, &inner.shared);
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

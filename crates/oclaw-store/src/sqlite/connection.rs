//! Opening the SQLite file, its pragmas, the connection pool and the mapping of SQLite errors.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
    /// Size of the write-ahead log past which the writer checkpoints it itself, between its
    /// jobs, so the next write starts the log over; the file is cut back to this size then.
    pub wal_limit_bytes: u64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            full_sync: false,
            busy_timeout: Duration::from_secs(5),
            wal_limit_bytes: 64 << 20,
        }
    }
}

/// Reads that may run at once (each on its own pooled connection).
const READERS: usize = 8;

/// State the writer thread and the readers share.
pub(super) struct Shared {
    pub capacities: crate::rows::Capacities,
    pub wakeups: Wakeups,
    /// Which queue the next multi-queue claim starts at (round robin).
    pub claim_rotation: std::sync::atomic::AtomicUsize,
    /// The tenants with tasks queued on each queue, as claims last found them.
    pub tenant_cache: crate::rows::TenantCache,
    /// While a group commit is open, wake-ups wait here until it is durable.
    deferred: Mutex<Option<Vec<Notice>>>,
    /// Set by the checkpoint thread when the log has outgrown `wal_limit_bytes`.
    wal_restart: std::sync::atomic::AtomicBool,
}

/// A wake-up to send once the write that caused it is committed.
pub(super) enum Notice {
    Queued,
    Scheduled,
    Finished(Vec<oclaw_core::TaskId>),
}

impl Shared {
    pub fn notify(&self, notice: Notice) {
        if let Ok(mut d) = self.deferred.lock() {
            if let Some(pending) = d.as_mut() {
                pending.push(notice);
                return;
            }
        }
        self.send(notice);
    }

    fn send(&self, notice: Notice) {
        match notice {
            Notice::Queued => self.wakeups.queued.notify_one(),
            Notice::Scheduled => self.wakeups.scheduled.notify_one(),
            Notice::Finished(ids) => self.wakeups.notify_finished(&ids),
        }
    }

    fn defer(&self) {
        if let Ok(mut d) = self.deferred.lock() {
            *d = Some(Vec::new());
        }
    }

    /// Ends deferral; sends the held wake-ups when `committed`, drops them otherwise.
    fn release(&self, committed: bool) {
        let held = self
            .deferred
            .lock()
            .ok()
            .and_then(|mut d| d.take())
            .unwrap_or_default();
        if committed {
            for n in held {
                self.send(n);
            }
        }
    }
}

/// What a write job hands back: a function told whether the job's work was committed.
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type WriteJob = Box<dyn FnOnce(&mut Connection, &Shared) -> Reply + Send>;

/// Most jobs one group commit takes.
const GROUP_MAX: usize = 256;

/// The writer thread: runs jobs in arrival order. Jobs that arrive while it is busy are run
/// together in one transaction (group commit), each inside a savepoint, and answered only once
/// that transaction is committed — many small writes cost one commit.
fn run_writer(mut conn: Connection, shared: Arc<Shared>, rx: std::sync::mpsc::Receiver<WriteJob>) {
    let run = |job: WriteJob, conn: &mut Connection| -> Option<Reply> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn, &shared))).ok()
    };
    loop {
        if shared
            .wal_restart
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            restart_wal(&conn);
        }
        let Ok(first) = rx.recv() else {
            return;
        };
        let mut jobs = vec![first];
        while jobs.len() < GROUP_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let grouped = jobs.len() > 1
            && conn
                .prepare_cached("BEGIN IMMEDIATE")
                .and_then(|mut s| s.execute([]))
                .is_ok();
        if !grouped {
            for job in jobs {
                if let Some(reply) = run(job, &mut conn) {
                    reply(Ok(()));
                }
            }
            continue;
        }
        shared.defer();
        let mut pending: Vec<Reply> = Vec::with_capacity(jobs.len());
        let mut in_group = true;
        for job in jobs {
            if in_group && conn.is_autocommit() {
                // SQLite rolled the group back (disk full, I/O error): what ran so far is lost.
                shared.release(false);
                for r in pending.drain(..) {
                    r(Err(StoreError::Internal(
                        "the write was rolled back with its group; retry".into(),
                    )));
                }
                in_group = false;
            }
            if let Some(reply) = run(job, &mut conn) {
                if in_group {
                    pending.push(reply);
                } else {
                    reply(Ok(()));
                }
            }
        }
        if !in_group {
            continue;
        }
        let commit = if conn.is_autocommit() {
            Err(StoreError::Internal(
                "the write was rolled back with its group; retry".into(),
            ))
        } else {
            conn.prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
                .map(|_| ())
                .map_err(map_err)
        };
        if commit.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        shared.release(commit.is_ok());
        for r in pending {
            r(commit.clone());
        }
    }
}

pub(super) struct Inner {
    /// Jobs for the one writer thread, which owns the writer connection: every write runs on the
    /// same thread, keeping SQLite's state warm in one core's cache.
    writer: std::sync::mpsc::Sender<WriteJob>,
    readers: Mutex<Vec<Connection>>,
    /// At most [`READERS`] reads run at once, each on a pooled connection: opening one per
    /// read under load (and parsing the schema each time) cost more than the reads.
    reader_slots: tokio::sync::Semaphore,
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
    // Claims are cached per queue and batch size (see claim_from_queue).
    conn.set_prepared_statement_cache_capacity(512);
    Ok(conn)
}

/// A write transaction on cached statements, rolled back when dropped without a commit. Inside
/// a group commit it is a savepoint, so a failing job undoes only its own work.
pub(super) struct Tx<'c> {
    conn: &'c Connection,
    committed: bool,
    nested: bool,
}

impl<'c> Tx<'c> {
    pub fn begin(conn: &'c Connection) -> StoreResult<Tx<'c>> {
        let nested = !conn.is_autocommit();
        let sql = if nested {
            "SAVEPOINT oclaw_job"
        } else {
            "BEGIN IMMEDIATE"
        };
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map_err(map_err)?;
        Ok(Tx {
            conn,
            committed: false,
            nested,
        })
    }

    pub fn commit(mut self) -> StoreResult<()> {
        let sql = if self.nested {
            "RELEASE oclaw_job"
        } else {
            "COMMIT"
        };
        self.conn
            .prepare_cached(sql)
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
        if self.committed || self.conn.is_autocommit() {
            return;
        }
        let sql = if self.nested {
            "ROLLBACK TO oclaw_job; RELEASE oclaw_job"
        } else {
            "ROLLBACK"
        };
        let _ = self.conn.execute_batch(sql);
    }
}

/// `PRAGMA wal_checkpoint(mode)`: (busy, frames in the log, frames copied back).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

/// Checkpoints the whole log on the writer's own connection, between jobs: no frame can be
/// appended meanwhile, so the checkpoint completes (waiting, within the busy timeout, for
/// readers still on old frames) and the next write starts the log over.
fn restart_wal(conn: &Connection) {
    match checkpoint(conn, "RESTART") {
        Ok((0, _, _)) => {}
        Ok((_, log, done)) => tracing::debug!(
            component = "store",
            "WAL restart waited out its busy timeout ({done} of {log} frames copied); trying again later"
        ),
        Err(e) => tracing::warn!(component = "store", "WAL restart failed: {e}"),
    }
}

/// Copies the WAL back into the database file every 200 ms (passive: never blocks the writer or
/// readers). Under steady writes a passive checkpoint never catches the writer, and a log that
/// is never fully copied is never started over: past `wal_limit_bytes` the writer is asked to
/// restart it (it grew without bound before: 6 GB in 20 minutes at 200 tasks/s). Stops when
/// the database file is no longer reachable.
fn spawn_checkpointer(
    path: &Path,
    options: &SqliteOptions,
    shared: Arc<Shared>,
) -> StoreResult<()> {
    let conn = open_connection(path, options)?;
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(map_err)?;
    let limit_frames = (options.wal_limit_bytes / page.max(512) as u64).max(1) as i64;
    std::thread::Builder::new()
        .name("oclaw-sqlite-checkpoint".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(200));
            match checkpoint(&conn, "PASSIVE") {
                Ok((_, log, _)) if log > limit_frames => shared
                    .wal_restart
                    .store(true, std::sync::atomic::Ordering::Relaxed),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(component = "store", "WAL checkpoint failed: {e}");
                    std::thread::sleep(Duration::from_secs(5));
                }
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
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = {}",
                options.wal_limit_bytes.min(i64::MAX as u64)
            ))
            .map_err(map_err)?;
        let shared = Arc::new(Shared {
            capacities: Default::default(),
            wakeups: Wakeups::default(),
            claim_rotation: Default::default(),
            tenant_cache: Default::default(),
            deferred: Mutex::new(None),
            wal_restart: Default::default(),
        });
        spawn_checkpointer(&path, &options, shared.clone())?;
        let (tx, rx) = std::sync::mpsc::channel::<WriteJob>();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("oclaw-sqlite-writer".into())
            // Ends when the last handle of the store is dropped.
            .spawn(move || run_writer(writer, thread_shared, rx))
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                writer: tx,
                readers: Mutex::new(Vec::new()),
                reader_slots: tokio::sync::Semaphore::new(READERS),
                path,
                options,
                shared,
            }),
        })
    }

    /// Runs `f` on the writer thread with the single writer connection; answers once the work
    /// is committed.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Shared) -> StoreResult<T> + Send + 'static,
    {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move |conn, shared| {
            let result = f(conn, shared);
            Box::new(move |committed: Result<(), StoreError>| {
                let _ = done_tx.send(result.and_then(|v| committed.map(|_| v)));
            })
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
        let slot = self
            .inner
            .reader_slots
            .acquire()
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let result = tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path, &inner.options)?,
            };
            let result = f(&conn, &inner.shared);
            if let Ok(mut pool) = inner.readers.lock() {
                if pool.len() < READERS {
                    pool.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?;
        drop(slot);
        result
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

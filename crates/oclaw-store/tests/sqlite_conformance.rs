//! The store conformance suite against the embedded SQLite backend, plus SQLite-specific faults.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use oclaw_store::sqlite::{SqliteOptions, SqliteStore};
use oclaw_store::{Store, StoreError, TaskQueue};

async fn open_fresh() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oclaw.db");
    // Keep the folder for the life of the test process.
    std::mem::forget(dir);
    Arc::new(
        SqliteStore::open(path.to_str().unwrap(), SqliteOptions::default())
            .await
            .unwrap(),
    )
}

oclaw_store::store_conformance_tests!(open_fresh());

#[tokio::test]
async fn reopening_keeps_tasks_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.db");
    let p = path.to_str().unwrap();
    let id = {
        let s = SqliteStore::open(p, SqliteOptions::default())
            .await
            .unwrap();
        s.enqueue(oclaw_core::NewTask::new(
            "b",
            "default",
            serde_json::json!(1),
        ))
        .await
        .unwrap()
        .task
        .id
    };
    let s = SqliteStore::open(p, SqliteOptions::default())
        .await
        .unwrap();
    assert!(s.get_task(id).await.unwrap().is_some());
}

#[tokio::test]
async fn refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let p = path.to_str().unwrap();
    drop(
        SqliteStore::open(p, SqliteOptions::default())
            .await
            .unwrap(),
    );
    // A later release's additive migration (min_compatible at or below ours): this binary runs
    // on it unchanged.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 999; CREATE TABLE from_the_future (id INTEGER)")
        .unwrap();
    drop(conn);
    let s = SqliteStore::open(p, SqliteOptions::default())
        .await
        .unwrap();
    let id = s
        .enqueue(oclaw_core::NewTask::new("b", "q", serde_json::json!({})))
        .await
        .unwrap()
        .task
        .id;
    assert!(s.get_task(id).await.unwrap().is_some());
    drop(s);
    // One this binary cannot read: refused, naming the release to upgrade to.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE oclaw_meta SET value = '998' WHERE key = 'min_compatible'; \
         UPDATE oclaw_meta SET value = '9.9.0' WHERE key = 'written_by'",
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(p, SqliteOptions::default())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 999,
                needs: 998,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("oclaw 9.9.0"), "{err}");
    assert_eq!(err.code().code(), "OC-4003");
}

#[tokio::test]
async fn refuses_a_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(path.to_str().unwrap(), SqliteOptions::default())
        .await
        .err()
        .unwrap();
    assert_eq!(err.code().code(), "OC-4002", "{err:?}");
}

#[tokio::test]
async fn refuses_another_programs_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE invoices (id INTEGER)")
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(path.to_str().unwrap(), SqliteOptions::default())
        .await
        .err()
        .unwrap();
    assert_eq!(err.code().code(), "OC-4002", "{err:?}");
}

#[tokio::test]
async fn locked_database_times_out_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let p = path.to_str().unwrap();
    let opts = SqliteOptions {
        busy_timeout: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    let s = SqliteStore::open(p, opts).await.unwrap();
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = s
        .enqueue(oclaw_core::NewTask::new(
            "b",
            "default",
            serde_json::json!(1),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code().code(), "OC-4005", "{err:?}");
    assert!(err.is_transient());
    holder.execute_batch("COMMIT").unwrap();
    s.enqueue(oclaw_core::NewTask::new(
        "b",
        "default",
        serde_json::json!(1),
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn full_disk_refuses_the_write_and_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full.db");
    let p = path.to_str().unwrap();
    let s = SqliteStore::open(p, SqliteOptions::default())
        .await
        .unwrap();
    let acknowledged = s
        .enqueue(oclaw_core::NewTask::new(
            "b",
            "default",
            serde_json::json!(1),
        ))
        .await
        .unwrap();
    // Cap the file at its current size so the next big write finds no room, as on a full disk.
    let pages: i64 = {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap()
    };
    s.cap_pages_for_test(pages).await;
    let big = serde_json::json!({"blob": "x".repeat(200_000)});
    let err = s
        .enqueue(oclaw_core::NewTask::new("b", "default", big))
        .await
        .unwrap_err();
    assert_eq!(err.code().code(), "OC-4004", "{err:?}");
    let still = s.get_task(acknowledged.task.id).await.unwrap().unwrap();
    assert_eq!(still.input, serde_json::json!(1));
}

/// Under steady writes the write-ahead log stays near `wal_limit_bytes`: a passive checkpoint
/// on its own never catches a busy writer, and a log never fully copied is never started over
/// (a node soaked at 200 tasks/s grew one to 6 GB in 20 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_bounded_under_steady_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let limit: u64 = 256 << 10;
    let opts = SqliteOptions {
        wal_limit_bytes: limit,
        ..Default::default()
    };
    let s = Arc::new(
        SqliteStore::open(path.to_str().unwrap(), opts)
            .await
            .unwrap(),
    );
    let wal = dir.path().join("wal.db-wal");
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..2_500 {
                    let input = serde_json::json!({"w": w, "i": i, "pad": "x".repeat(200)});
                    let t = s
                        .enqueue(oclaw_core::NewTask::new("b", "default", input))
                        .await
                        .unwrap();
                    s.get_task(t.task.id).await.unwrap().unwrap();
                }
            })
        })
        .collect();
    // How far the log grows between restarts depends on the machine's speed; that it is
    // started over and cut back while the writers never pause does not.
    let (mut largest, mut last, mut cut_back) = (0, 0, 0);
    while !writers.iter().all(|w| w.is_finished()) {
        let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        if len < last && last > limit {
            cut_back += 1;
        }
        (largest, last) = (largest.max(len), len);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        cut_back > 0,
        "the log grew to {largest} bytes and was never started over (limit {limit})"
    );
    let n: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 10_000, "every acknowledged task is there");
}

//! Schema migrations, applied in order at open. `PRAGMA user_version` holds the version.

use rusqlite::Connection;

use crate::{StoreError, StoreResult};

/// Marks the file as an OpenClaw database (`PRAGMA application_id`, "OCLW").
pub const APPLICATION_ID: i64 = 0x4f43_4c57;

/// Each migration with its `min_compatible`: the oldest schema version whose binaries still run
/// on the schema the migration leaves (docs/migrations.md has the rule).
const MIGRATIONS: &[crate::migrations::Migration] = &[
    // 1: tasks, checkpoints, key-value, trigger marks.
    ("CREATE TABLE tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        bot TEXT NOT NULL,
        queue TEXT NOT NULL,
        status TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        input TEXT NOT NULL,
        output TEXT,
        error_code TEXT,
        error_message TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        idempotency_key TEXT UNIQUE,
        trace_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        run_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        worker TEXT,
        lease_until INTEGER
    );
    CREATE INDEX tasks_ready ON tasks (queue, priority DESC, id) WHERE status = 'queued';
    CREATE INDEX tasks_due ON tasks (run_at) WHERE status = 'scheduled';
    CREATE INDEX tasks_leased ON tasks (lease_until) WHERE status = 'running';
    CREATE INDEX tasks_parked ON tasks (queue) WHERE status IN ('dead', 'failed');
    CREATE TABLE task_checkpoints (
        task_id INTEGER NOT NULL,
        step TEXT NOT NULL,
        idx INTEGER NOT NULL,
        output TEXT NOT NULL,
        at INTEGER NOT NULL,
        PRIMARY KEY (task_id, step)
    ) WITHOUT ROWID;
    CREATE TABLE kv (
        ns TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (ns, key)
    ) WITHOUT ROWID;
    CREATE TABLE trigger_marks (
        key TEXT PRIMARY KEY,
        fired_at INTEGER NOT NULL
    ) WITHOUT ROWID;", 1),
    // 2: node registry and leadership terms.
    ("CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        info TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        heartbeat_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE leaders (
        role TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until INTEGER NOT NULL
    ) WITHOUT ROWID;", 2),
    // 3: ordering keys (a conversation's tasks run one at a time, in order).
    ("ALTER TABLE tasks ADD COLUMN ordering_key TEXT;
    CREATE INDEX tasks_ordered ON tasks (ordering_key, id)
        WHERE ordering_key IS NOT NULL AND status IN ('queued', 'scheduled', 'running');", 3),
    // 4: waiting tasks (waits, kept events, a child's parent) and the store's own facts
    // (min_compatible, written_by). Binaries of schema 3 read `waiting` as a state they do not
    // know, so this one is not rollback-compatible (and those binaries refuse it anyway).
    ("ALTER TABLE tasks ADD COLUMN parent_id INTEGER;
    CREATE INDEX tasks_children ON tasks (parent_id) WHERE parent_id IS NOT NULL;
    CREATE INDEX tasks_waiting ON tasks (queue) WHERE status = 'waiting';
    CREATE TABLE waits (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id INTEGER NOT NULL,
        step TEXT NOT NULL,
        idx INTEGER NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        name TEXT,
        key TEXT,
        deadline INTEGER,
        on_timeout TEXT NOT NULL,
        detail TEXT NOT NULL,
        decisions TEXT NOT NULL DEFAULT '[]',
        output TEXT,
        created_at INTEGER NOT NULL,
        resolved_at INTEGER
    );
    CREATE INDEX waits_event ON waits (name, key) WHERE status = 'pending' AND kind = 'event';
    CREATE INDEX waits_child ON waits (key) WHERE status = 'pending' AND kind = 'child';
    CREATE INDEX waits_deadline ON waits (deadline) WHERE status = 'pending' AND deadline IS NOT NULL;
    CREATE INDEX waits_task ON waits (task_id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        key TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX events_by_key ON events (name, key, id);
    CREATE INDEX events_expiry ON events (expires_at);
    CREATE TABLE oclaw_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;", 4),
    // 5: per-key limits above one (`spec.concurrency`), the bot revision a task runs on,
    // debounce keys and rate keys. Additive: a binary of schema 4 ignores them (it runs every key one at a
    // time, a task on the bot as loaded, and does not fold debounced tasks), so min_compatible
    // stays 4.
    ("ALTER TABLE tasks ADD COLUMN key_limit INTEGER;
    ALTER TABLE tasks ADD COLUMN bot_rev TEXT;
    ALTER TABLE tasks ADD COLUMN debounce_key TEXT;
    CREATE INDEX tasks_debounce ON tasks (debounce_key) WHERE debounce_key IS NOT NULL AND status = 'scheduled';
    ALTER TABLE tasks ADD COLUMN rate_key TEXT;
    ALTER TABLE tasks ADD COLUMN rate_limit INTEGER;
    ALTER TABLE tasks ADD COLUMN rate_per BIGINT;
    CREATE INDEX tasks_rated ON tasks (rate_key, started_at) WHERE rate_key IS NOT NULL;", 4),
    // 6: knowledge collections, documents, chunks (text and vector) and the chunks' full-text
    // index (FTS5: the collection's token in `kb`, the analysed terms in `terms`; its term
    // counts through `kb_fts_vocab`). New tables
    // only, so min_compatible stays 4.
    ("CREATE TABLE kb_collections (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        embedder TEXT,
        dimensions INTEGER,
        revision INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        UNIQUE (tenant, name)
    );
    CREATE TABLE kb_documents (
        kb_id INTEGER NOT NULL,
        id TEXT NOT NULL,
        title TEXT,
        source TEXT,
        metadata TEXT NOT NULL,
        hash TEXT NOT NULL,
        chunks INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (kb_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE kb_chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kb_id INTEGER NOT NULL,
        document TEXT NOT NULL,
        ordinal INTEGER NOT NULL,
        text TEXT NOT NULL,
        vector BLOB
    );
    CREATE INDEX kb_chunks_document ON kb_chunks (kb_id, document, ordinal);
    CREATE VIRTUAL TABLE kb_fts USING fts5(kb, terms, tokenize = 'unicode61 remove_diacritics 0');
    CREATE VIRTUAL TABLE kb_fts_vocab USING fts5vocab(kb_fts, row);", 4),
    // 7: tenants, tokens, the audit log and per-tenant secrets (sealed). Every task carries its bot's tenant; the ready index
    // leads with (queue, tenant) so claims share a queue fairly among tenants. A binary of
    // schema 6 still claims correctly on it (sorting instead of walking the index) and never
    // sees the new tables, so min_compatible stays 4.
    ("ALTER TABLE tasks ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
    DROP INDEX tasks_ready;
    CREATE INDEX tasks_ready ON tasks (queue, tenant, priority DESC, id) WHERE status = 'queued';
    CREATE INDEX tasks_tenant ON tasks (tenant, id);
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        tenant TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        source TEXT NOT NULL,
        result TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_tenant ON audit (tenant, id);
    CREATE TABLE secrets (
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        sealed BLOB NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, name)
    );", 4),
];

/// The migrations this binary applies (with the tests' extra one when asked for).
fn migrations() -> Vec<crate::migrations::Migration> {
    crate::migrations::with_test_next(MIGRATIONS)
}

/// The schema version this binary writes.
pub fn schema_version() -> i64 {
    migrations().len() as i64
}

/// The oldest schema version whose binaries run on this binary's schema: a rollback to a
/// release older than that cannot start on a store this binary has migrated.
pub fn min_compatible() -> i64 {
    crate::migrations::min_compatible(&migrations())
}

/// Brings the schema up to date; refuses files that are newer or not ours.
pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let app_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(super::connection::map_err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(super::connection::map_err)?;
    if app_id != 0 && app_id != APPLICATION_ID {
        return Err(StoreError::Corrupt(format!(
            "application id {app_id:#x} belongs to another program"
        )));
    }
    if app_id == 0 {
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(super::connection::map_err)?;
        if tables > 0 {
            return Err(StoreError::Corrupt(
                "the file holds tables of another program".into(),
            ));
        }
    }
    let migrations = migrations();
    let supported = migrations.len() as i64;
    if version > supported {
        let meta = |key: &str| -> Option<String> {
            conn.query_row("SELECT value FROM oclaw_meta WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .ok()
        };
        let needs = meta("min_compatible")
            .and_then(|v| v.parse().ok())
            .unwrap_or(version);
        if needs <= supported {
            tracing::warn!(
                component = "store",
                found = version,
                supported,
                "the database schema is newer than this binary's but compatible with it; running on it unchanged"
            );
            return Ok(());
        }
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported,
            needs,
            written_by: meta("written_by"),
        });
    }
    for (i, (sql, min_compatible)) in migrations.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction().map_err(super::connection::map_err)?;
        tx.execute_batch(sql).map_err(super::connection::map_err)?;
        if i + 1 >= 4 {
            tx.execute(
                "INSERT INTO oclaw_meta (key, value) VALUES ('min_compatible', ?1), ('written_by', ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                rusqlite::params![min_compatible.to_string(), env!("CARGO_PKG_VERSION")],
            )
            .map_err(super::connection::map_err)?;
        }
        tx.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {};",
            i + 1
        ))
        .map_err(super::connection::map_err)?;
        tx.commit().map_err(super::connection::map_err)?;
        tracing::info!(
            component = "store",
            version = i + 1,
            "applied schema migration"
        );
    }
    Ok(())
}

#[cfg(test)]
mod compat_tests {
    #[test]
    fn min_compatible_never_goes_back_and_never_passes_its_own_version() {
        crate::migrations::assert_well_formed(super::MIGRATIONS);
    }
}

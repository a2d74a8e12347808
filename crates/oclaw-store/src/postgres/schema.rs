//! Schema migrations for PostgreSQL, applied at open under a transaction-scoped advisory lock,
//! so nodes that start together apply each migration once. `oclaw_meta.schema_version` holds
//! the version.

use deadpool_postgres::Client;

use super::pg_err;
use crate::{StoreError, StoreResult};

/// Each migration with its `min_compatible`: the oldest schema version whose binaries still run
/// on the schema the migration leaves (docs/migrations.md has the rule).
const MIGRATIONS: &[crate::migrations::Migration] = &[
    // 1: tasks (partial indexes keep claims fast however much history piles up), checkpoints,
    // key-value, trigger marks, node registry, leadership terms.
    ("CREATE TABLE tasks (
        id BIGSERIAL PRIMARY KEY,
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
        idempotency_key TEXT,
        trace_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        run_at BIGINT NOT NULL,
        started_at BIGINT,
        finished_at BIGINT,
        worker TEXT,
        lease_until BIGINT
    ) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
    CREATE UNIQUE INDEX tasks_idempotency ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX tasks_ready ON tasks (queue, priority DESC, id) WHERE status = 'queued';
    CREATE INDEX tasks_due ON tasks (run_at) WHERE status = 'scheduled';
    CREATE INDEX tasks_leased ON tasks (lease_until) WHERE status = 'running';
    CREATE INDEX tasks_parked ON tasks (queue) WHERE status IN ('dead', 'failed');
    CREATE TABLE task_checkpoints (
        task_id BIGINT NOT NULL,
        step TEXT NOT NULL,
        idx INTEGER NOT NULL,
        output TEXT NOT NULL,
        at BIGINT NOT NULL,
        PRIMARY KEY (task_id, step)
    );
    CREATE TABLE kv (
        ns TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        expires_at BIGINT,
        PRIMARY KEY (ns, key)
    );
    CREATE TABLE trigger_marks (
        key TEXT PRIMARY KEY,
        fired_at BIGINT NOT NULL
    );
    CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        info TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL
    );
    CREATE TABLE leaders (
        role TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until BIGINT NOT NULL
    );", 1),
    // 2: ordering keys (a conversation's tasks run one at a time, in order).
    ("ALTER TABLE tasks ADD COLUMN ordering_key TEXT;
    CREATE INDEX tasks_ordered ON tasks (ordering_key, id)
        WHERE ordering_key IS NOT NULL AND status IN ('queued', 'scheduled', 'running');", 2),
    // 3: waiting tasks (waits, kept events, a child's parent). Binaries of schema 2 read
    // `waiting` as a state they do not know, so this one is not rollback-compatible (and those
    // binaries refuse it anyway).
    ("ALTER TABLE tasks ADD COLUMN parent_id BIGINT;
    CREATE INDEX tasks_children ON tasks (parent_id) WHERE parent_id IS NOT NULL;
    CREATE INDEX tasks_waiting ON tasks (queue) WHERE status = 'waiting';
    CREATE TABLE waits (
        id BIGSERIAL PRIMARY KEY,
        task_id BIGINT NOT NULL,
        step TEXT NOT NULL,
        idx INTEGER NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        name TEXT,
        key TEXT,
        deadline BIGINT,
        on_timeout TEXT NOT NULL,
        detail TEXT NOT NULL,
        decisions TEXT NOT NULL DEFAULT '[]',
        output TEXT,
        created_at BIGINT NOT NULL,
        resolved_at BIGINT
    );
    CREATE INDEX waits_event ON waits (name, key) WHERE status = 'pending' AND kind = 'event';
    CREATE INDEX waits_child ON waits (key) WHERE status = 'pending' AND kind = 'child';
    CREATE INDEX waits_deadline ON waits (deadline) WHERE status = 'pending' AND deadline IS NOT NULL;
    CREATE INDEX waits_task ON waits (task_id);
    CREATE TABLE events (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL,
        key TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX events_by_key ON events (name, key, id);
    CREATE INDEX events_expiry ON events (expires_at);", 3),
    // 4: per-key limits above one (`spec.concurrency`), the bot revision a task runs on,
    // debounce keys and rate keys. Additive: a binary of schema 3 ignores them (it runs every key one at a
    // time, a task on the bot as loaded, and does not fold debounced tasks), so min_compatible
    // stays 3.
    ("ALTER TABLE tasks ADD COLUMN key_limit INTEGER;
    ALTER TABLE tasks ADD COLUMN bot_rev TEXT;
    ALTER TABLE tasks ADD COLUMN debounce_key TEXT;
    CREATE INDEX tasks_debounce ON tasks (debounce_key) WHERE debounce_key IS NOT NULL AND status = 'scheduled';
    ALTER TABLE tasks ADD COLUMN rate_key TEXT;
    ALTER TABLE tasks ADD COLUMN rate_limit INTEGER;
    ALTER TABLE tasks ADD COLUMN rate_per BIGINT;
    CREATE INDEX tasks_rated ON tasks (rate_key, started_at) WHERE rate_key IS NOT NULL;", 3),
    // 5: knowledge collections, documents, chunks (text, vector, and the analysed terms as a
    // tsvector under a GIN index), and how many chunks of a collection hold each term. New tables only, so min_compatible stays 3.
    ("CREATE TABLE kb_collections (
        id BIGSERIAL PRIMARY KEY,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        embedder TEXT,
        dimensions INTEGER,
        revision BIGINT NOT NULL DEFAULT 0,
        chunks BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        UNIQUE (tenant, name)
    );
    CREATE TABLE kb_documents (
        kb_id BIGINT NOT NULL REFERENCES kb_collections (id) ON DELETE CASCADE,
        id TEXT NOT NULL,
        title TEXT,
        source TEXT,
        metadata JSONB NOT NULL,
        hash TEXT NOT NULL,
        chunks INTEGER NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (kb_id, id)
    );
    CREATE TABLE kb_chunks (
        id BIGSERIAL PRIMARY KEY,
        kb_id BIGINT NOT NULL REFERENCES kb_collections (id) ON DELETE CASCADE,
        document TEXT NOT NULL,
        ordinal INTEGER NOT NULL,
        text TEXT NOT NULL,
        terms TSVECTOR NOT NULL,
        vector BYTEA
    );
    CREATE INDEX kb_chunks_document ON kb_chunks (kb_id, document, ordinal);
    CREATE INDEX kb_chunks_terms ON kb_chunks USING GIN (terms);
    CREATE TABLE kb_terms (
        kb_id BIGINT NOT NULL REFERENCES kb_collections (id) ON DELETE CASCADE,
        term TEXT NOT NULL,
        chunks INTEGER NOT NULL,
        PRIMARY KEY (kb_id, term)
    );", 3),
    // 6: tenants, tokens, the audit log and secrets (see the SQLite schema's 7). Additive for binaries
    // of schema 5, so min_compatible stays 3.
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
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at BIGINT
    );
    CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
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
        sealed BYTEA NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (tenant, name)
    );", 3),
    // 7: the tenant index holds the tasks of tenants other than `default` only. Every row version
    // of a task added an entry to the full index — a task is written three times (enqueue, claim,
    // finish) — which was a sixth of a drain's database time; a listing of the default tenant's
    // tasks walks the primary key instead. Queries stay valid for schema 6, so min_compatible
    // stays 3.
    ("DROP INDEX tasks_tenant;
    CREATE INDEX tasks_tenant ON tasks (tenant, id) WHERE tenant <> 'default';", 3),
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

/// Applies the migrations the schema lacks; answers how many it applied.
pub(super) async fn migrate(client: &mut Client, schema: &str) -> StoreResult<usize> {
    let tx = client.transaction().await.map_err(pg_err)?;
    // Serializes concurrent starts (released at commit).
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('oclaw-migrate:' || $1))",
        &[&schema],
    )
    .await
    .map_err(pg_err)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         CREATE TABLE IF NOT EXISTS \"{schema}\".oclaw_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    ))
    .await
    .map_err(pg_err)?;
    let version: i64 = tx
        .query_opt(
            "SELECT value::bigint FROM oclaw_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(pg_err)?
        .map(|r| r.get(0))
        .unwrap_or(0);
    let migrations = migrations();
    let supported = migrations.len() as i64;
    if version > supported {
        let mut meta = std::collections::HashMap::new();
        for r in tx
            .query(
                "SELECT key, value FROM oclaw_meta WHERE key IN ('min_compatible', 'written_by')",
                &[],
            )
            .await
            .map_err(pg_err)?
        {
            meta.insert(r.get::<_, String>(0), r.get::<_, String>(1));
        }
        let needs = meta
            .get("min_compatible")
            .and_then(|v| v.parse().ok())
            .unwrap_or(version);
        if needs <= supported {
            tracing::warn!(
                component = "store",
                found = version,
                supported,
                schema,
                "the database schema is newer than this binary's but compatible with it; running on it unchanged"
            );
            tx.commit().await.map_err(pg_err)?;
            return Ok(0);
        }
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported,
            needs,
            written_by: meta.remove("written_by"),
        });
    }
    if version == 0 {
        let foreign: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
                 WHERE table_schema = $1 AND table_name = 'tasks')",
                &[&schema],
            )
            .await
            .map_err(pg_err)?
            .get(0);
        if foreign {
            return Err(StoreError::Corrupt(format!(
                "schema `{schema}` holds a `tasks` table of another program; use ?schema=NAME in storage.url"
            )));
        }
    }
    let mut applied = 0;
    for (i, (sql, min_compatible)) in migrations.iter().enumerate().skip(version as usize) {
        applied += 1;
        tx.batch_execute(sql).await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO oclaw_meta (key, value) VALUES ('schema_version', $1), \
             ('min_compatible', $2), ('written_by', $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[
                &(i + 1).to_string(),
                &min_compatible.to_string(),
                &env!("CARGO_PKG_VERSION"),
            ],
        )
        .await
        .map_err(pg_err)?;
        tracing::info!(
            component = "store",
            version = i + 1,
            schema,
            "applied schema migration"
        );
    }
    tx.commit().await.map_err(pg_err)?;
    Ok(applied)
}

#[cfg(test)]
mod compat_tests {
    #[test]
    fn min_compatible_never_goes_back_and_never_passes_its_own_version() {
        crate::migrations::assert_well_formed(super::MIGRATIONS);
    }
}

//! [`Access`] on SQLite: tokens and the audit log. The single writer connection orders appends,
//! so each entry is chained to the one before it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::connection::{map_err, SqliteStore, Tx};
use super::rows::{ms, SqlRow};
use crate::access::{
    audit_from, token_from, AuditEntry, AuditFilter, NewAudit, NewToken, TokenRecord,
    AUDIT_COLUMNS, AUDIT_PAGE_MAX, GENESIS, TOKEN_COLUMNS,
};
use crate::secrets::SecretInfo;
use crate::{Access, StoreError, StoreResult};

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    token_from(&SqlRow(r))
}

fn audit_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    audit_from(&SqlRow(r))
}

#[async_trait]
impl Access for SqliteStore {
    async fn token_create(&self, t: NewToken) -> StoreResult<TokenRecord> {
        self.write(move |c, _| {
            let n = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO api_tokens (id, name, hash, tenant, role, created_at, created_by) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut s| {
                    s.execute(params![t.id, t.name, t.hash, t.tenant, t.role, ms(Utc::now()), t.created_by])
                })
                .map_err(map_err)?;
            if n == 0 {
                return Err(StoreError::Duplicate(format!("token `{}` exists", t.id)));
            }
            c.prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"))
                .and_then(|mut s| s.query_row([&t.id], token_row))
                .map_err(map_err)
        })
        .await
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        let hash = hash.to_string();
        self.read(move |c, _| {
            c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?1"
            ))
            .and_then(|mut s| s.query_row([hash], token_row).optional())
            .map_err(map_err)
        })
        .await
    }

    async fn token_list(&self, tenant: Option<&str>) -> StoreResult<Vec<TokenRecord>> {
        let tenant = tenant.map(str::to_string);
        self.read(move |c, _| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE ?1 IS NULL OR tenant = ?1 \
                     ORDER BY created_at, id"
                ))
                .map_err(map_err)?;
            let rows = s.query_map([tenant], token_row).map_err(map_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
        })
        .await
    }

    async fn token_revoke(
        &self,
        id: &str,
        tenant: Option<&str>,
    ) -> StoreResult<Option<TokenRecord>> {
        let (id, tenant) = (id.to_string(), tenant.map(str::to_string));
        self.write(move |c, _| {
            c.prepare_cached(&format!(
                "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?3) \
                 WHERE id = ?1 AND (?2 IS NULL OR tenant = ?2) RETURNING {TOKEN_COLUMNS}"
            ))
            .and_then(|mut s| {
                s.query_row(params![id, tenant, ms(Utc::now())], token_row)
                    .optional()
            })
            .map_err(map_err)
        })
        .await
    }

    async fn audit_append(&self, e: NewAudit) -> StoreResult<AuditEntry> {
        self.write(move |conn, _| {
            let tx = Tx::begin(conn)?;
            let last: Option<(i64, String)> = tx
                .prepare_cached("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
                .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                .map_err(map_err)?;
            // AUTOINCREMENT never reuses an id, even after retention empties the table.
            let next: i64 = tx
                .query_row(
                    "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0) + 1",
                    [],
                    |r| r.get(0),
                )
                .map_err(map_err)?;
            let prev = last.map(|l| l.1).unwrap_or_else(|| GENESIS.to_string());
            let at = crate::codec::from_ms(ms(e.at));
            let change = NewAudit { at, ..e };
            let hash = change.hash(next, &prev);
            tx.prepare_cached(
                "INSERT INTO audit (id, at, actor, tenant, action, target, source, result, prev_hash, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    next,
                    ms(change.at),
                    change.actor,
                    change.tenant,
                    change.action,
                    change.target,
                    change.source,
                    change.result,
                    prev,
                    hash
                ])
            })
            .map_err(map_err)?;
            tx.commit()?;
            Ok(AuditEntry {
                id: next,
                change,
                prev_hash: prev,
                hash,
            })
        })
        .await
    }

    async fn audit_list(&self, f: AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        self.read(move |c, _| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit WHERE (?1 IS NULL OR tenant = ?1) AND id > ?2 \
                     ORDER BY id LIMIT ?3"
                ))
                .map_err(map_err)?;
            let rows = s
                .query_map(
                    params![
                        f.tenant,
                        f.after.unwrap_or(0),
                        f.limit.clamp(1, AUDIT_PAGE_MAX) as i64
                    ],
                    audit_row,
                )
                .map_err(map_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
        })
        .await
    }

    async fn secret_put(&self, tenant: &str, name: &str, sealed: Vec<u8>) -> StoreResult<bool> {
        let (tenant, name) = (tenant.to_string(), name.to_string());
        self.write(move |c, _| {
            let existed: bool = c
                .prepare_cached("SELECT 1 FROM secrets WHERE tenant = ?1 AND name = ?2")
                .and_then(|mut s| s.exists(params![tenant, name]))
                .map_err(map_err)?;
            c.prepare_cached(
                "INSERT OR REPLACE INTO secrets (tenant, name, sealed, updated_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![tenant, name, sealed, ms(Utc::now())]))
            .map_err(map_err)?;
            Ok(!existed)
        })
        .await
    }

    async fn secret_list(&self, tenant: &str) -> StoreResult<Vec<SecretInfo>> {
        let tenant = tenant.to_string();
        self.read(move |c, _| {
            let mut s = c
                .prepare_cached(
                    "SELECT name, updated_at FROM secrets WHERE tenant = ?1 ORDER BY name",
                )
                .map_err(map_err)?;
            let rows = s
                .query_map([tenant], |r| {
                    Ok(SecretInfo {
                        name: r.get(0)?,
                        updated_at: crate::codec::from_ms(r.get(1)?),
                    })
                })
                .map_err(map_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
        })
        .await
    }

    async fn secret_sealed(&self, tenant: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let tenant = tenant.to_string();
        self.read(move |c, _| {
            let mut s = c
                .prepare_cached("SELECT name, sealed FROM secrets WHERE tenant = ?1 ORDER BY name")
                .map_err(map_err)?;
            let rows = s
                .query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(map_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
        })
        .await
    }

    async fn secret_delete(&self, tenant: &str, name: &str) -> StoreResult<bool> {
        let (tenant, name) = (tenant.to_string(), name.to_string());
        self.write(move |c, _| {
            c.prepare_cached("DELETE FROM secrets WHERE tenant = ?1 AND name = ?2")
                .and_then(|mut s| s.execute(params![tenant, name]))
                .map(|n| n > 0)
                .map_err(map_err)
        })
        .await
    }

    async fn audit_purge(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.write(move |c, _| {
            c.prepare_cached("DELETE FROM audit WHERE at < ?1 AND id < (SELECT max(id) FROM audit)")
                .and_then(|mut s| s.execute([ms(before)]))
                .map(|n| n as u64)
                .map_err(map_err)
        })
        .await
    }
}

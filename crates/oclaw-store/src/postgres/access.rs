//! [`Access`] on PostgreSQL: tokens and the audit log. Appends from every api-server take one
//! advisory lock in turn, so each entry is chained to the one before it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::PgRow;
use super::{pg_err, pool_err, PgStore};
use crate::access::{
    audit_from, token_from, AuditEntry, AuditFilter, NewAudit, NewToken, TokenRecord,
    AUDIT_COLUMNS, AUDIT_PAGE_MAX, GENESIS, TOKEN_COLUMNS,
};
use crate::codec::{from_ms, ms};
use crate::secrets::SecretInfo;
use crate::{Access, StoreError, StoreResult};

fn token_row(r: &tokio_postgres::Row) -> StoreResult<TokenRecord> {
    token_from(&PgRow(r)).map_err(pg_err)
}

fn audit_row(r: &tokio_postgres::Row) -> StoreResult<AuditEntry> {
    audit_from(&PgRow(r)).map_err(pg_err)
}

#[async_trait]
impl Access for PgStore {
    async fn token_create(&self, t: NewToken) -> StoreResult<TokenRecord> {
        let rows = self
            .query(
                &format!(
                    "INSERT INTO api_tokens (id, name, hash, tenant, role, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING {TOKEN_COLUMNS}"
                ),
                &[
                    &t.id,
                    &t.name,
                    &t.hash,
                    &t.tenant,
                    &t.role,
                    &ms(Utc::now()),
                    &t.created_by,
                ],
            )
            .await?;
        match rows.first() {
            Some(r) => token_row(r),
            None => Err(StoreError::Duplicate(format!("token `{}` exists", t.id))),
        }
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        let rows = self
            .query(
                &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = $1"),
                &[&hash],
            )
            .await?;
        rows.first().map(token_row).transpose()
    }

    async fn token_list(&self, tenant: Option<&str>) -> StoreResult<Vec<TokenRecord>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE $1::text IS NULL OR tenant = $1 \
                     ORDER BY created_at, id"
                ),
                &[&tenant],
            )
            .await?;
        rows.iter().map(token_row).collect()
    }

    async fn token_revoke(
        &self,
        id: &str,
        tenant: Option<&str>,
    ) -> StoreResult<Option<TokenRecord>> {
        let rows = self
            .query(
                &format!(
                    "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $3) \
                     WHERE id = $1 AND ($2::text IS NULL OR tenant = $2) RETURNING {TOKEN_COLUMNS}"
                ),
                &[&id, &tenant, &ms(Utc::now())],
            )
            .await?;
        rows.first().map(token_row).transpose()
    }

    async fn audit_append(&self, e: NewAudit) -> StoreResult<AuditEntry> {
        let mut client = self.inner.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        // Every api-server appends to one chain: one at a time (released at commit).
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('oclaw-audit'))", &[])
            .await
            .map_err(pg_err)?;
        let prev: String = tx
            .query_opt("SELECT hash FROM audit ORDER BY id DESC LIMIT 1", &[])
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0))
            .unwrap_or_else(|| GENESIS.to_string());
        let id: i64 = tx
            .query_one("SELECT nextval(pg_get_serial_sequence('audit', 'id'))", &[])
            .await
            .map_err(pg_err)?
            .get(0);
        let change = NewAudit {
            at: from_ms(ms(e.at)),
            ..e
        };
        let hash = change.hash(id, &prev);
        tx.execute(
            "INSERT INTO audit (id, at, actor, tenant, action, target, source, result, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &id,
                &ms(change.at),
                &change.actor,
                &change.tenant,
                &change.action,
                &change.target,
                &change.source,
                &change.result,
                &prev,
                &hash,
            ],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(AuditEntry {
            id,
            change,
            prev_hash: prev,
            hash,
        })
    }

    async fn audit_list(&self, f: AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        let limit = f.limit.clamp(1, AUDIT_PAGE_MAX) as i64;
        let rows = self
            .query(
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit WHERE ($1::text IS NULL OR tenant = $1) AND id > $2 \
                     ORDER BY id LIMIT $3"
                ),
                &[&f.tenant, &f.after.unwrap_or(0), &limit],
            )
            .await?;
        rows.iter().map(audit_row).collect()
    }

    async fn secret_put(&self, tenant: &str, name: &str, sealed: Vec<u8>) -> StoreResult<bool> {
        let rows = self
            .query(
                "INSERT INTO secrets (tenant, name, sealed, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at \
                 RETURNING xmax = 0",
                &[&tenant, &name, &sealed, &ms(Utc::now())],
            )
            .await?;
        Ok(rows.first().is_some_and(|r| r.get::<_, bool>(0)))
    }

    async fn secret_list(&self, tenant: &str) -> StoreResult<Vec<SecretInfo>> {
        let rows = self
            .query(
                "SELECT name, updated_at FROM secrets WHERE tenant = $1 ORDER BY name",
                &[&tenant],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| SecretInfo {
                name: r.get(0),
                updated_at: from_ms(r.get(1)),
            })
            .collect())
    }

    async fn secret_sealed(&self, tenant: &str) -> StoreResult<Vec<(String, Vec<u8>)>> {
        let rows = self
            .query(
                "SELECT name, sealed FROM secrets WHERE tenant = $1 ORDER BY name",
                &[&tenant],
            )
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn secret_delete(&self, tenant: &str, name: &str) -> StoreResult<bool> {
        Ok(self
            .exec(
                "DELETE FROM secrets WHERE tenant = $1 AND name = $2",
                &[&tenant, &name],
            )
            .await?
            > 0)
    }

    async fn audit_purge(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        self.exec(
            "DELETE FROM audit WHERE at < $1 AND id < (SELECT max(id) FROM audit)",
            &[&ms(before)],
        )
        .await
    }
}

//! [`KvStore`] on PostgreSQL: key-value entries with expiry, and trigger marks.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::PgStore;
use crate::codec::{from_ms, ms, parse_json, to_json};
use crate::{KvStore, StoreResult};

#[async_trait]
impl KvStore for PgStore {
    async fn kv_get(
        &self,
        namespace: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Value>> {
        let rows = self
            .query(
                "SELECT value FROM kv WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3)",
                &[&namespace, &key, &ms(now)],
            )
            .await?;
        Ok(rows.first().map(|r| parse_json(r.get(0))))
    }

    async fn kv_list(
        &self,
        namespace: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Value)>> {
        let rows = self
            .query(
                "SELECT key, value FROM kv WHERE ns = $1 AND (expires_at IS NULL OR expires_at > $2) \
                 ORDER BY key LIMIT $3",
                &[&namespace, &ms(now), &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), parse_json(r.get(1))))
            .collect())
    }

    async fn kv_set(
        &self,
        namespace: &str,
        key: &str,
        value: &Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        self.exec(
            "INSERT INTO kv (ns, key, value, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            &[&namespace, &key, &to_json(value), &expires_at.map(ms)],
        )
        .await
        .map(|_| ())
    }

    async fn kv_add(
        &self,
        namespace: &str,
        key: &str,
        delta: i64,
        limit: Option<i64>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<i64>> {
        // One statement: an absent or expired counter starts from 0 with the new expiry; the
        // row lock of the upsert orders concurrent additions.
        let rows = self
            .query(
                "INSERT INTO kv AS k (ns, key, value, expires_at) \
                 SELECT $1, $2, ($3::bigint)::text, $5::bigint \
                 WHERE $3::bigint <= 0 OR $4::bigint IS NULL OR $3::bigint <= $4::bigint \
                 ON CONFLICT (ns, key) DO UPDATE SET \
                   value = (CASE WHEN k.expires_at IS NOT NULL AND k.expires_at <= $6::bigint THEN 0 ELSE k.value::bigint END + $3::bigint)::text, \
                   expires_at = CASE WHEN k.expires_at IS NOT NULL AND k.expires_at <= $6::bigint THEN excluded.expires_at ELSE k.expires_at END \
                 WHERE $3::bigint <= 0 OR $4::bigint IS NULL \
                   OR CASE WHEN k.expires_at IS NOT NULL AND k.expires_at <= $6::bigint THEN 0 ELSE k.value::bigint END + $3::bigint <= $4::bigint \
                 RETURNING value::bigint",
                &[&namespace, &key, &delta, &limit, &expires_at.map(ms), &ms(now)],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    async fn trigger_marks(&self) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        let rows = self
            .query("SELECT key, fired_at FROM trigger_marks", &[])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), from_ms(r.get(1)))).collect())
    }

    async fn set_trigger_mark(&self, key: &str, fired_at: DateTime<Utc>) -> StoreResult<()> {
        self.exec(
            "INSERT INTO trigger_marks (key, fired_at) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET fired_at = excluded.fired_at",
            &[&key, &ms(fired_at)],
        )
        .await
        .map(|_| ())
    }
}

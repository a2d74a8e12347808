//! [`KvStore`] on SQLite: key-value entries with expiry, and trigger marks.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use super::connection::{map_err, SqliteStore};
use super::rows::{from_ms, ms, parse_json, to_json};
use crate::{KvStore, StoreResult};

#[async_trait]
impl KvStore for SqliteStore {
    async fn kv_get(
        &self,
        namespace: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Value>> {
        let (ns, key) = (namespace.to_string(), key.to_string());
        self.read(move |c, _| {
            let v: Option<String> = c
                .prepare_cached(
                    "SELECT value FROM kv WHERE ns = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
                )
                .and_then(|mut s| s.query_row(params![ns, key, ms(now)], |r| r.get(0)).optional())
                .map_err(map_err)?;
            Ok(v.as_deref().map(parse_json))
        })
        .await
    }

    async fn kv_list(
        &self,
        namespace: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Value)>> {
        let ns = namespace.to_string();
        self.read(move |c, _| {
            let mut s = c
                .prepare_cached(
                    "SELECT key, value FROM kv WHERE ns = ?1 AND (expires_at IS NULL OR expires_at > ?2) \
                     ORDER BY key LIMIT ?3",
                )
                .map_err(map_err)?;
            let rows = s
                .query_map(params![ns, ms(now), limit as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(map_err)?;
            rows.map(|r| r.map(|(k, v)| (k, parse_json(&v))).map_err(map_err))
                .collect()
        })
        .await
    }

    async fn kv_set(
        &self,
        namespace: &str,
        key: &str,
        value: &Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()> {
        let (ns, key, value) = (namespace.to_string(), key.to_string(), to_json(value));
        self.write(move |c, _| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO kv (ns, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![ns, key, value, expires_at.map(ms)]))
            .map_err(map_err)?;
            Ok(())
        })
        .await
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
        let (ns, key) = (namespace.to_string(), key.to_string());
        // One writer at a time: the read and the write are one step.
        self.write(move |c, _| {
            let current: Option<(String, Option<i64>)> = c
                .prepare_cached(
                    "SELECT value, expires_at FROM kv WHERE ns = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
                )
                .and_then(|mut s| {
                    s.query_row(params![ns, key, ms(now)], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(map_err)?;
            let (value, expires) = match &current {
                Some((v, e)) => (v.trim().parse::<i64>().unwrap_or(0), *e),
                None => (0, expires_at.map(ms)),
            };
            let next = value.saturating_add(delta);
            if delta > 0 && limit.is_some_and(|l| next > l) {
                return Ok(None);
            }
            c.prepare_cached(
                "INSERT OR REPLACE INTO kv (ns, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![ns, key, next.to_string(), expires]))
            .map_err(map_err)?;
            Ok(Some(next))
        })
        .await
    }

    async fn trigger_marks(&self) -> StoreResult<HashMap<String, DateTime<Utc>>> {
        self.read(|c, _| {
            let mut stmt = c
                .prepare_cached("SELECT key, fired_at FROM trigger_marks")
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, from_ms(r.get(1)?))))
                .map_err(map_err)?;
            rows.collect::<Result<HashMap<_, _>, _>>().map_err(map_err)
        })
        .await
    }

    async fn set_trigger_mark(&self, key: &str, fired_at: DateTime<Utc>) -> StoreResult<()> {
        let key = key.to_string();
        self.write(move |c, _| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO trigger_marks (key, fired_at) VALUES (?1, ?2)",
            )
            .and_then(|mut s| s.execute(params![key, ms(fired_at)]))
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }
}

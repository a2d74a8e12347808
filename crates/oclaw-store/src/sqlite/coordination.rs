//! [`Coordination`] on SQLite: the node registry and leadership terms.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use super::connection::{map_err, SqliteStore};
use super::rows::{from_ms, ms, parse_json, to_json};
use crate::{Coordination, NodeRecord, StoreResult};

#[async_trait]
impl Coordination for SqliteStore {
    async fn heartbeat_node(&self, id: &str, info: &Value) -> StoreResult<()> {
        let (id, info) = (id.to_string(), to_json(info));
        self.write(move |c, _| {
            let now = ms(Utc::now());
            c.prepare_cached(
                "INSERT INTO nodes (id, info, started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?3) \
                 ON CONFLICT (id) DO UPDATE SET info = excluded.info, heartbeat_at = excluded.heartbeat_at",
            )
            .and_then(|mut s| s.execute(params![id, info, now]))
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn remove_node(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |c, _| {
            c.prepare_cached("DELETE FROM nodes WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn list_nodes(&self) -> StoreResult<Vec<NodeRecord>> {
        self.read(|c, _| {
            let mut stmt = c
                .prepare_cached("SELECT id, info, started_at, heartbeat_at FROM nodes ORDER BY id")
                .map_err(map_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(NodeRecord {
                        id: r.get(0)?,
                        info: parse_json(&r.get::<_, String>(1)?),
                        started_at: from_ms(r.get(2)?),
                        heartbeat_at: from_ms(r.get(3)?),
                    })
                })
                .map_err(map_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
        })
        .await
    }

    async fn acquire_leadership(
        &self,
        role: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let (role, holder) = (role.to_string(), holder.to_string());
        self.write(move |c, _| {
            let now = ms(Utc::now());
            let won = c
                .prepare_cached(
                    "INSERT INTO leaders (role, holder, until) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                     WHERE leaders.holder = excluded.holder OR leaders.until < ?4 RETURNING holder",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![role, holder, now + ttl.as_millis() as i64, now],
                        |_| Ok(()),
                    )
                    .optional()
                })
                .map_err(map_err)?;
            Ok(won.is_some())
        })
        .await
    }

    async fn resign_leadership(&self, role: &str, holder: &str) -> StoreResult<()> {
        let (role, holder) = (role.to_string(), holder.to_string());
        self.write(move |c, _| {
            c.prepare_cached("DELETE FROM leaders WHERE role = ?1 AND holder = ?2")
                .and_then(|mut s| s.execute([role, holder]))
                .map_err(map_err)?;
            Ok(())
        })
        .await
    }
}

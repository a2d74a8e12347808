//! [`Coordination`] on PostgreSQL: the node registry and leadership terms.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;

use super::PgStore;
use crate::codec::{from_ms, ms, parse_json, to_json};
use crate::{Coordination, NodeRecord, StoreResult};

#[async_trait]
impl Coordination for PgStore {
    async fn heartbeat_node(&self, id: &str, info: &Value) -> StoreResult<()> {
        self.exec(
            "INSERT INTO nodes (id, info, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET info = excluded.info, heartbeat_at = excluded.heartbeat_at",
            &[&id, &to_json(info), &ms(Utc::now())],
        )
        .await
        .map(|_| ())
    }

    async fn remove_node(&self, id: &str) -> StoreResult<()> {
        self.exec("DELETE FROM nodes WHERE id = $1", &[&id])
            .await
            .map(|_| ())
    }

    async fn list_nodes(&self) -> StoreResult<Vec<NodeRecord>> {
        let rows = self
            .query(
                "SELECT id, info, started_at, heartbeat_at FROM nodes ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| NodeRecord {
                id: r.get(0),
                info: parse_json(r.get(1)),
                started_at: from_ms(r.get(2)),
                heartbeat_at: from_ms(r.get(3)),
            })
            .collect())
    }

    async fn acquire_leadership(
        &self,
        role: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        // Terms run on the database's clock, so schedulers on hosts with skewed clocks agree.
        let ttl_ms = ttl.as_millis() as i64;
        let rows = self
            .query(
                "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms) \
                 INSERT INTO leaders (role, holder, until) SELECT $1, $2, ms + $3 FROM now \
                 ON CONFLICT (role) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                 WHERE leaders.holder = excluded.holder OR leaders.until < (SELECT ms FROM now) \
                 RETURNING holder",
                &[&role, &holder, &ttl_ms],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn resign_leadership(&self, role: &str, holder: &str) -> StoreResult<()> {
        self.exec(
            "DELETE FROM leaders WHERE role = $1 AND holder = $2",
            &[&role, &holder],
        )
        .await
        .map(|_| ())
    }
}

//! [`Store`] on PostgreSQL: the backend's name, its wake-ups, the health check and the purge.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::PgStore;
use crate::codec::ms;
use crate::{Store, StoreResult, Wakeups};

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn wakeups(&self) -> &Wakeups {
        &self.inner.wakeups
    }

    async fn ping(&self) -> StoreResult<()> {
        self.query("SELECT 1", &[]).await.map(|_| ())
    }

    async fn purge(
        &self,
        finished_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<u64> {
        let rows = self
            .query(
                "WITH doomed AS (SELECT id FROM tasks \
                   WHERE status IN ('succeeded', 'failed', 'dead', 'cancelled') AND finished_at < $1 \
                   ORDER BY id LIMIT $2), \
                 c AS (DELETE FROM task_checkpoints WHERE task_id IN (SELECT id FROM doomed)), \
                 w AS (DELETE FROM waits WHERE task_id IN (SELECT id FROM doomed)), \
                 t AS (DELETE FROM tasks WHERE id IN (SELECT id FROM doomed) RETURNING 1) \
                 SELECT count(*) FROM t",
                &[&ms(finished_before), &(limit as i64)],
            )
            .await?;
        self.exec(
            "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= $1",
            &[&ms(now)],
        )
        .await?;
        self.exec("DELETE FROM events WHERE expires_at <= $1", &[&ms(now)])
            .await?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0) as u64)
    }
}

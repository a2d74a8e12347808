//! [`Store`] on SQLite: the backend's name, its wake-ups, the health check and the purge.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;

use super::connection::{map_err, SqliteStore, Tx};
use super::rows::ms;
use crate::{Store, StoreResult, Wakeups};

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn wakeups(&self) -> &Wakeups {
        &self.inner.shared.wakeups
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|c, _| c.query_row("SELECT 1", [], |_| Ok(())).map_err(map_err))
            .await
    }

    async fn purge(
        &self,
        finished_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<u64> {
        self.write(move |conn, _| {
            let tx = Tx::begin(conn)?;
            let ids: Vec<i64> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id FROM tasks WHERE status IN ('succeeded', 'failed', 'dead', 'cancelled') \
                         AND finished_at < ?1 ORDER BY id LIMIT ?2",
                    )
                    .map_err(map_err)?;
                let rows = stmt
                    .query_map(params![ms(finished_before), limit as i64], |r| r.get(0))
                    .map_err(map_err)?;
                rows.collect::<Result<_, _>>().map_err(map_err)?
            };
            for id in &ids {
                tx.prepare_cached("DELETE FROM task_checkpoints WHERE task_id = ?1")
                    .and_then(|mut s| s.execute([id]))
                    .map_err(map_err)?;
                tx.prepare_cached("DELETE FROM waits WHERE task_id = ?1")
                    .and_then(|mut s| s.execute([id]))
                    .map_err(map_err)?;
                tx.prepare_cached("DELETE FROM tasks WHERE id = ?1")
                    .and_then(|mut s| s.execute([id]))
                    .map_err(map_err)?;
            }
            tx.prepare_cached("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?1")
                .and_then(|mut s| s.execute([ms(now)]))
                .map_err(map_err)?;
            tx.prepare_cached("DELETE FROM events WHERE expires_at <= ?1")
                .and_then(|mut s| s.execute([ms(now)]))
                .map_err(map_err)?;
            tx.commit()?;
            Ok(ids.len() as u64)
        })
        .await
    }
}

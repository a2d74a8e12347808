//! PostgreSQL rows read through the shared [`crate::rows`] conversions, and the loads by id.

use deadpool_postgres::GenericClient;
use oclaw_core::{Checkpoint, Task, TaskId};
use tokio_postgres::Row;

use super::pg_err;
use crate::rows::{checkpoint_from, claimed_from, task_from, Columns, CHECKPOINT_COLUMNS};
use crate::{ClaimedTask, StoreError, StoreResult};

pub(super) use crate::rows::TASK_COLUMNS;

pub(super) struct PgRow<'a>(pub &'a Row);

impl Columns for PgRow<'_> {
    type Error = tokio_postgres::Error;
    fn int(&self, i: usize) -> Result<i64, Self::Error> {
        self.0.try_get(i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error> {
        self.0.try_get(i)
    }
    fn small(&self, i: usize) -> Result<i32, Self::Error> {
        self.0.try_get(i)
    }
    fn text(&self, i: usize) -> Result<String, Self::Error> {
        self.0.try_get(i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error> {
        self.0.try_get(i)
    }
}

/// A row of [`TASK_COLUMNS`], without checkpoints.
pub(super) fn task_from_row(r: &Row) -> StoreResult<Task> {
    task_from(&PgRow(r)).map_err(pg_err)
}

/// A row of the claim's `RETURNING` list.
pub(super) fn claimed_from_row(r: &Row) -> StoreResult<(ClaimedTask, bool)> {
    claimed_from(&PgRow(r)).map_err(pg_err)
}

pub(super) async fn load_checkpoints(
    c: &impl GenericClient,
    id: TaskId,
) -> StoreResult<Vec<Checkpoint>> {
    let rows = c
        .query(
            &format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM task_checkpoints WHERE task_id = $1 ORDER BY idx"
            ),
            &[&id.0],
        )
        .await
        .map_err(pg_err)?;
    rows.iter()
        .map(|r| checkpoint_from(&PgRow(r)).map_err(pg_err))
        .collect()
}

pub(super) async fn load_task(c: &impl GenericClient, id: TaskId) -> StoreResult<Option<Task>> {
    let row = c
        .query_opt(
            &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"),
            &[&id.0],
        )
        .await
        .map_err(pg_err)?;
    match row {
        Some(r) => {
            let mut t = task_from_row(&r)?;
            t.checkpoints = load_checkpoints(c, id).await?;
            Ok(Some(t))
        }
        None => Ok(None),
    }
}

pub(super) async fn require_task(c: &impl GenericClient, id: TaskId) -> StoreResult<Task> {
    load_task(c, id).await?.ok_or(StoreError::NotFound(id))
}

//! Row ↔ domain conversions for the SQLite backend.

use oclaw_core::{Checkpoint, Task, TaskId};
use rusqlite::{Connection, OptionalExtension, Row};

use super::connection::map_err;
use crate::rows::Columns;
use crate::{StoreError, StoreResult};

pub use crate::codec::{from_ms, ms, parse_json, to_json};
pub(crate) use crate::rows::{
    checkpoint_from, claimed_from, task_from, Admission, Start, CHECKPOINT_COLUMNS,
    CLAIMED_COLUMNS, TASK_COLUMNS,
};

/// A result row, read through the shared [`crate::rows`] conversions.
pub struct SqlRow<'a, 'b>(pub &'a Row<'b>);

impl Columns for SqlRow<'_, '_> {
    type Error = rusqlite::Error;
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.0.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.0.get(i)
    }
    fn small(&self, i: usize) -> rusqlite::Result<i32> {
        self.0.get(i)
    }
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.0.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.0.get(i)
    }
}

/// A row of [`TASK_COLUMNS`] (the shape `query_row` takes).
pub fn task_from_row(row: &Row<'_>) -> rusqlite::Result<Task> {
    task_from(&SqlRow(row))
}

pub fn load_checkpoints(conn: &Connection, id: TaskId) -> StoreResult<Vec<Checkpoint>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM task_checkpoints WHERE task_id = ?1 ORDER BY idx"
        ))
        .map_err(map_err)?;
    let rows = stmt
        .query_map([id.0], |r| checkpoint_from(&SqlRow(r)))
        .map_err(map_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
}

pub fn load_task(
    conn: &Connection,
    id: TaskId,
    with_checkpoints: bool,
) -> StoreResult<Option<Task>> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))
        .map_err(map_err)?;
    let task = stmt
        .query_row([id.0], task_from_row)
        .optional()
        .map_err(map_err)?;
    match task {
        Some(mut t) => {
            if with_checkpoints {
                t.checkpoints = load_checkpoints(conn, id)?;
            }
            Ok(Some(t))
        }
        None => Ok(None),
    }
}

pub fn require_task(conn: &Connection, id: TaskId) -> StoreResult<Task> {
    load_task(conn, id, true)?.ok_or(StoreError::NotFound(id))
}

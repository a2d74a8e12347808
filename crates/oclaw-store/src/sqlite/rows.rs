//! Row ↔ domain conversions for the SQLite backend.

use oclaw_core::{Checkpoint, Task, TaskError, TaskId, TaskStatus};
use rusqlite::{Connection, OptionalExtension, Row};

use super::connection::map_err;
use crate::{StoreError, StoreResult};

pub const TASK_COLUMNS: &str = "id, bot, queue, status, priority, input, output, error_code, \
    error_message, attempts, max_attempts, idempotency_key, trace_id, created_at, run_at, started_at, \
    finished_at, worker";

pub use crate::codec::{from_ms, ms, parse_json, to_json};

pub fn task_from_row(row: &Row<'_>) -> rusqlite::Result<Task> {
    let status: String = row.get(3)?;
    let input: String = row.get(5)?;
    let output: Option<String> = row.get(6)?;
    let error_code: Option<String> = row.get(7)?;
    let error_message: Option<String> = row.get(8)?;
    Ok(Task {
        id: TaskId(row.get(0)?),
        bot: row.get(1)?,
        queue: row.get(2)?,
        status: status.parse().unwrap_or(TaskStatus::Failed),
        priority: row.get(4)?,
        input: parse_json(&input),
        output: output.as_deref().map(parse_json),
        error: error_code.map(|code| TaskError {
            code,
            message: error_message.unwrap_or_default(),
        }),
        attempts: row.get(9)?,
        max_attempts: row.get(10)?,
        idempotency_key: row.get(11)?,
        trace_id: row.get(12)?,
        created_at: from_ms(row.get(13)?),
        run_at: from_ms(row.get(14)?),
        started_at: row.get::<_, Option<i64>>(15)?.map(from_ms),
        finished_at: row.get::<_, Option<i64>>(16)?.map(from_ms),
        worker: row.get(17)?,
        checkpoints: Vec::new(),
    })
}

pub fn load_checkpoints(conn: &Connection, id: TaskId) -> StoreResult<Vec<Checkpoint>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT step, idx, output, at FROM task_checkpoints WHERE task_id = ?1 ORDER BY idx",
        )
        .map_err(map_err)?;
    let rows = stmt
        .query_map([id.0], |r| {
            let output: String = r.get(2)?;
            Ok(Checkpoint {
                step: r.get(0)?,
                index: r.get(1)?,
                output: parse_json(&output),
                at: from_ms(r.get(3)?),
            })
        })
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

//! The store's errors, each mapped to one `OC-xxxx` code.

use oclaw_core::{ErrorCode, TaskId, TaskStatus};

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything a store call can fail with. Each maps to one `OC-xxxx` code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("database connection timeout: {0}")]
    Unavailable(String),
    #[error("database is locked by another process ({0}); stop the other process or wait for it")]
    Locked(String),
    #[error("database is corrupt or not an OpenClaw database: {0}")]
    Corrupt(String),
    #[error("database schema version {found} is newer than this binary supports ({supported}) and needs at least schema {needs}{}; upgrade oclaw", written_by.as_deref().map(|w| format!(" (it was migrated by oclaw {w}: upgrade to that release or later)")).unwrap_or_default())]
    SchemaTooNew {
        found: i64,
        supported: i64,
        /// The oldest schema whose binaries can run on it (`min_compatible`).
        needs: i64,
        /// The release that applied its last migration.
        written_by: Option<String>,
    },
    #[error("disk full: {0}; free space, nothing was written")]
    DiskFull(String),
    #[error("queue `{queue}` is at capacity ({capacity} waiting tasks); retry later")]
    QueueFull { queue: String, capacity: u64 },
    #[error("task {0} not found")]
    NotFound(TaskId),
    #[error("task {id} is {status}; cannot {operation} it")]
    Conflict {
        id: TaskId,
        status: TaskStatus,
        operation: &'static str,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("approval {0} not found")]
    WaitNotFound(i64),
    #[error("{0}")]
    NotAllowed(String),
    #[error("approval {id} is {status} already")]
    WaitNotPending { id: i64, status: &'static str },
    /// A unique key is taken (PostgreSQL SQLSTATE 23505): an idempotency key another node
    /// inserted first, for example.
    #[error("duplicate key: {0}")]
    Duplicate(String),
    #[error("no knowledge collection `{0}`; create it with `oclaw kb create {0}`")]
    KbNotFound(String),
    #[error("{0}")]
    KbEmbedderMismatch(String),
    #[error("unexpected database error: {0}")]
    Internal(String),
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Unavailable(_) => ErrorCode::StoreUnavailable,
            StoreError::Locked(_) => ErrorCode::StoreLocked,
            StoreError::Corrupt(_) => ErrorCode::StoreCorrupt,
            StoreError::SchemaTooNew { .. } => ErrorCode::StoreSchemaTooNew,
            StoreError::DiskFull(_) => ErrorCode::StoreDiskFull,
            StoreError::QueueFull { .. } => ErrorCode::QueueFull,
            StoreError::NotFound(_) => ErrorCode::TaskNotFound,
            StoreError::Conflict { .. } => ErrorCode::TaskStateConflict,
            StoreError::Unsupported(_) => ErrorCode::ConfigInvalidValue,
            StoreError::WaitNotFound(_) => ErrorCode::ApprovalNotFound,
            StoreError::NotAllowed(_) => ErrorCode::ApprovalNotAllowed,
            StoreError::WaitNotPending { .. } => ErrorCode::ApprovalNotPending,
            StoreError::KbNotFound(_) => ErrorCode::KbNotFound,
            StoreError::KbEmbedderMismatch(_) => ErrorCode::KbEmbedderMismatch,
            StoreError::Duplicate(_) | StoreError::Internal(_) => ErrorCode::StoreInternal,
        }
    }

    /// True when retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::Locked(_)
                | StoreError::DiskFull(_)
                | StoreError::QueueFull { .. }
        )
    }
}

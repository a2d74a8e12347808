//! The durable state every backend keeps, one trait per concern: [`TaskQueue`] (tasks, their
//! checkpoints and claims under leases), [`KvStore`] (key-value entries and trigger marks),
//! [`Coordination`] (the node registry and leadership), and [`Store`], their sum, which callers
//! hold as `Arc<dyn Store>`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use oclaw_core::{NewTask, Task, TaskId};
use serde_json::Value;

use crate::access::{AuditEntry, AuditFilter, NewAudit, NewToken, TokenRecord};
use crate::knowledge::{
    ChunkRecord, ChunkScore, CollectionInfo, DocumentInfo, DocumentWrite, MetadataFilter,
    PutOutcome, Revision, StoredVectors,
};
use crate::secrets::SecretInfo;
use crate::waits::{Decision, EventReport, NewEvent, Park, Parked, WaitFilter, WaitRecord};
use crate::{
    ClaimRequest, ClaimedTask, Completion, CompletionReport, Enqueued, ExpiredReport, NodeRecord,
    QueueStats, StoreResult, TaskFilter, Wakeups,
};

/// Durable state of tasks, checkpoints, key-value entries, trigger marks and coordination.
/// Every backend passes the suite in `conformance` (compiled for tests).
#[async_trait]
pub trait Store:
    TaskQueue + KvStore + Coordination + Waits + Knowledge + Access + Send + Sync + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    fn wakeups(&self) -> &Wakeups;

    /// Succeeds when the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Deletes up to `limit` finished tasks (succeeded, failed, dead, cancelled) that finished
    /// before `finished_before`, oldest first, with their checkpoints, and every key-value entry
    /// expired at `now`. Answers how many tasks it deleted.
    async fn purge(
        &self,
        finished_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<u64>;
}

/// Tasks: enqueue, read, claim under leases, complete, and the transitions time makes.
#[async_trait]
pub trait TaskQueue: Send + Sync {
    /// Limits waiting tasks (queued + scheduled) of a queue; `None` removes the limit.
    fn set_queue_capacity(&self, queue: &str, capacity: Option<u64>);

    /// Makes a task durable. An idempotency key that already exists returns that task instead.
    async fn enqueue(&self, task: NewTask) -> StoreResult<Enqueued>;
    /// Enqueues all tasks in one transaction: all are durable, or none (e.g. capacity exceeded).
    async fn enqueue_batch(&self, tasks: Vec<NewTask>) -> StoreResult<Vec<Enqueued>>;

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>>;
    /// Newest first, without checkpoints.
    async fn list_tasks(&self, filter: TaskFilter) -> StoreResult<Vec<Task>>;

    /// Leases up to `limit` queued tasks, highest priority then oldest first.
    async fn claim_batch(&self, request: ClaimRequest) -> StoreResult<Vec<ClaimedTask>>;
    /// Heartbeat: renews the leases `worker` still holds; returns how many it renewed. A
    /// lease whose row another write holds at that moment (a completion in flight) is left to
    /// the next heartbeat rather than waited for.
    async fn extend_leases(
        &self,
        worker: &str,
        ids: &[TaskId],
        lease: Duration,
    ) -> StoreResult<u64>;
    /// Records finished attempts in one transaction. Attempts whose lease is gone are fenced.
    async fn complete_batch(&self, completions: Vec<Completion>) -> StoreResult<CompletionReport>;
    /// Gives leased tasks back unrun (graceful shutdown): queued again, attempt not counted.
    async fn release(&self, worker: &str, ids: &[TaskId]) -> StoreResult<u64>;
    /// Ends every lease `worker` holds now, so its tasks are requeued on the next expiry pass.
    /// Used when a worker restarts under the same id after a crash.
    async fn expire_leases_of(&self, worker: &str) -> StoreResult<u64>;
    /// Saves a completed step's output for the attempt that holds the lease.
    async fn save_checkpoint(
        &self,
        id: TaskId,
        step: &str,
        index: u32,
        output: &Value,
    ) -> StoreResult<()>;

    /// Cancels a task that has not finished.
    async fn cancel(&self, id: TaskId) -> StoreResult<Task>;
    /// Queues a dead, failed or cancelled task again with fresh attempts (checkpoints kept).
    async fn redrive(&self, id: TaskId) -> StoreResult<Task>;

    /// Moves scheduled tasks whose `run_at` has come to queued, and ends the waits whose
    /// deadline has come (each as its `on_timeout` says).
    async fn promote_due(&self, now: DateTime<Utc>) -> StoreResult<u64>;
    /// Requeues running tasks whose lease ended before `now` (dead when out of attempts).
    async fn requeue_expired(&self, now: DateTime<Utc>) -> StoreResult<ExpiredReport>;
    /// The earliest `run_at` among scheduled tasks, or deadline among pending waits.
    async fn next_due_at(&self) -> StoreResult<Option<DateTime<Utc>>>;
    async fn queue_stats(&self, now: DateTime<Utc>) -> StoreResult<Vec<QueueStats>>;
}

/// Key-value entries with an optional expiry, and the last fire time of every trigger.
#[async_trait]
pub trait KvStore: Send + Sync {
    async fn kv_get(
        &self,
        namespace: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Value>>;
    async fn kv_set(
        &self,
        namespace: &str,
        key: &str,
        value: &Value,
        expires_at: Option<DateTime<Utc>>,
    ) -> StoreResult<()>;

    /// The live entries of a namespace, in key order, at most `limit` (the console's list of
    /// handed-off conversations).
    async fn kv_list(
        &self,
        namespace: &str,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(String, Value)>>;

    /// Adds `delta` to the integer counter at `key` (0 when absent or expired) in one atomic
    /// step, unless that would take it past `limit` (a decrease always applies). The counter
    /// expires at `expires_at` (set when it is made). Answers the new value, or `None` when the
    /// limit refused the addition (nothing changed). Budgets reserve and settle tokens with it.
    async fn kv_add(
        &self,
        namespace: &str,
        key: &str,
        delta: i64,
        limit: Option<i64>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<i64>>;

    /// Last fire time of every trigger (keyed `bot/trigger-index`).
    async fn trigger_marks(&self) -> StoreResult<HashMap<String, DateTime<Utc>>>;
    async fn set_trigger_mark(&self, key: &str, fired_at: DateTime<Utc>) -> StoreResult<()>;
}

/// The node registry and leadership terms of a cluster.
#[async_trait]
pub trait Coordination: Send + Sync {
    /// Registers a node or refreshes its entry (a heartbeat); `info` replaces the previous one.
    async fn heartbeat_node(&self, id: &str, info: &Value) -> StoreResult<()>;
    /// Takes a node out of the registry (clean shutdown).
    async fn remove_node(&self, id: &str) -> StoreResult<()>;
    /// Every registered node, by id.
    async fn list_nodes(&self) -> StoreResult<Vec<NodeRecord>>;
    /// Takes or renews the leadership of `role` for `holder` until `ttl` from now (the database's
    /// clock where it has one). True when `holder` leads; false while another holder's term runs.
    async fn acquire_leadership(
        &self,
        role: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<bool>;
    /// Ends `holder`'s term at once so a standby can take over without waiting for it to run out.
    async fn resign_leadership(&self, role: &str, holder: &str) -> StoreResult<()>;
}

/// Waiting tasks: parked on an event, an approval, a timer or a child task, holding no lease and
/// no worker slot, and queued again (with the wait's outcome as the step's checkpoint) by what
/// they wait for. Deadlines are kept by `promote_due`; a child's end wakes its parent in the
/// transaction that ends the child; cancelling a task cancels its children.
#[async_trait]
pub trait Waits: Send + Sync {
    /// Parks a running task (fenced like a completion). An event kept for the wait resumes the
    /// task at once; a `bot.call`'s child is created in the same transaction.
    async fn park(&self, park: Park) -> StoreResult<Parked>;
    /// Wakes every task waiting for `name` with `key`; kept for `retention` when none waits.
    async fn send_event(&self, event: NewEvent) -> StoreResult<EventReport>;
    /// Records a decision on a pending approval; the approval is decided when enough allowed
    /// approvers agree or one rejects. A decision by someone not named is recorded and
    /// refused (`NotAllowed`).
    async fn decide(&self, wait: i64, decision: Decision) -> StoreResult<WaitRecord>;
    async fn get_wait(&self, id: i64) -> StoreResult<Option<WaitRecord>>;
    /// Newest first.
    async fn list_waits(&self, filter: WaitFilter) -> StoreResult<Vec<WaitRecord>>;
    /// Queues a finished, failed, dead or cancelled task again with fresh attempts, dropping
    /// the checkpoints of the step at `from_index` and every later one (earlier ones kept).
    async fn retry_from(&self, id: TaskId, from_index: u32) -> StoreResult<Task>;
}

/// Knowledge collections (per tenant): documents, their chunks, full-text terms and vectors.
/// Searching returns ranked chunk ids per leg; fusing the legs is the caller's.
#[async_trait]
pub trait Knowledge: Send + Sync {
    /// Creates an empty collection; `Duplicate` when the tenant has one of that name.
    async fn kb_create(&self, tenant: &str, name: &str) -> StoreResult<CollectionInfo>;
    async fn kb_get(&self, tenant: &str, name: &str) -> StoreResult<Option<CollectionInfo>>;
    /// The collection's revision, embedder and dimensions without counting its documents (what
    /// a search needs first).
    async fn kb_revision(&self, tenant: &str, name: &str) -> StoreResult<Option<Revision>>;
    /// By name.
    async fn kb_list(&self, tenant: &str) -> StoreResult<Vec<CollectionInfo>>;
    /// Removes a collection with its documents and chunks; false when there was none.
    async fn kb_drop(&self, tenant: &str, name: &str) -> StoreResult<bool>;

    /// The content hash of a document, to skip re-embedding an unchanged one.
    async fn kb_document_hash(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> StoreResult<Option<String>>;
    /// Writes a document and its chunks in one transaction, replacing the old chunks; with the
    /// same content hash only title, source and metadata change. `KbNotFound` without the
    /// collection; `KbEmbedderMismatch` when the vectors come from another embedder.
    async fn kb_put_document(&self, write: DocumentWrite) -> StoreResult<PutOutcome>;
    /// False when there was no such document.
    async fn kb_remove_document(
        &self,
        tenant: &str,
        collection: &str,
        id: &str,
    ) -> StoreResult<bool>;
    /// By id, after `after`.
    async fn kb_documents(
        &self,
        tenant: &str,
        collection: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DocumentInfo>>;

    /// Full-text leg: chunks holding any of `terms`, best first (BM25 on SQLite, `ts_rank` on
    /// PostgreSQL), among documents whose metadata matches `filter`.
    async fn kb_text_search(
        &self,
        tenant: &str,
        collection: &str,
        terms: &[String],
        filter: &MetadataFilter,
        limit: usize,
    ) -> StoreResult<Vec<ChunkScore>>;
    /// Every vector of the collection (for the in-memory vector index).
    async fn kb_vectors(&self, tenant: &str, collection: &str) -> StoreResult<StoredVectors>;
    /// The chunks with these ids (in any order), with their documents' title, source, metadata.
    async fn kb_chunks(&self, ids: &[i64]) -> StoreResult<Vec<ChunkRecord>>;
    /// The stored vectors of these chunks (in any order; chunks without one are left out), for
    /// the exact rescoring of a vector search's candidates.
    async fn kb_chunk_vectors(&self, ids: &[i64]) -> StoreResult<Vec<(i64, Vec<f32>)>>;
}

/// API tokens (kept hashed) and the audit log (hash-chained, append-only).
#[async_trait]
pub trait Access: Send + Sync {
    /// Keeps a new token; `Duplicate` when its id or hash exists.
    async fn token_create(&self, token: NewToken) -> StoreResult<TokenRecord>;
    /// The token with this hash, revoked or not.
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>>;
    /// Every token, or one tenant's, oldest first.
    async fn token_list(&self, tenant: Option<&str>) -> StoreResult<Vec<TokenRecord>>;
    /// Revokes a token (of `tenant` when given); `None` when there is no such token. Revoking
    /// twice keeps the first time.
    async fn token_revoke(
        &self,
        id: &str,
        tenant: Option<&str>,
    ) -> StoreResult<Option<TokenRecord>>;
    /// Appends an entry after the last one, chained to its hash (one writer at a time, on
    /// every backend).
    async fn audit_append(&self, entry: NewAudit) -> StoreResult<AuditEntry>;
    /// Oldest first.
    async fn audit_list(&self, filter: AuditFilter) -> StoreResult<Vec<AuditEntry>>;
    /// Keeps a tenant's secret (sealed by the caller); true when it is new.
    async fn secret_put(&self, tenant: &str, name: &str, sealed: Vec<u8>) -> StoreResult<bool>;
    /// A tenant's secrets by name, without values.
    async fn secret_list(&self, tenant: &str) -> StoreResult<Vec<SecretInfo>>;
    /// A tenant's secrets, sealed, by name.
    async fn secret_sealed(&self, tenant: &str) -> StoreResult<Vec<(String, Vec<u8>)>>;
    /// Removes a secret; false when there was none.
    async fn secret_delete(&self, tenant: &str, name: &str) -> StoreResult<bool>;
    /// Drops entries older than `before`, except the newest (the chain goes on from it);
    /// answers how many.
    async fn audit_purge(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}

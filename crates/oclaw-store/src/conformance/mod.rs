//! The behaviour every [`Store`] backend must have, written as test functions.
//!
//! A backend runs the whole suite with [`store_conformance_tests!`], giving an expression that
//! opens a fresh, empty store (`async` block returning `Arc<dyn Store>`).
//! These are test assertions: they panic on failure by design. The cases are grouped by concern:
//! `queue` (enqueue, claim, order, capacity), `leases` (attempts, fencing, retries),
//! `kv` (entries, trigger marks, purge) and `coordination` (nodes, leadership).
#![allow(clippy::unwrap_used)]

mod access;
mod coordination;
mod knowledge;
mod kv;
mod leases;
mod queue;
mod waits;

pub use access::*;
pub use coordination::*;
pub use knowledge::*;
pub use kv::*;
pub use leases::*;
pub use queue::*;
pub use waits::*;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use oclaw_core::{NewTask, TaskError, TaskId};
use serde_json::json;

use crate::{ClaimRequest, Completion, Outcome, Store};

pub type DynStore = Arc<dyn Store>;

pub(crate) fn task(bot: &str, queue: &str, n: i64) -> NewTask {
    NewTask::new(bot, queue, json!({ "n": n }))
}

pub(crate) fn claim(worker: &str, queues: &[&str], limit: usize) -> ClaimRequest {
    ClaimRequest {
        worker: worker.into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        limit,
        lease: Duration::from_secs(30),
    }
}

pub(crate) fn success(worker: &str, id: TaskId, attempt: u32, v: serde_json::Value) -> Completion {
    Completion {
        id,
        worker: worker.into(),
        attempt,
        outcome: Outcome::Succeeded(v),
        kv: Vec::new(),
        follow_ups: Vec::new(),
        parent: None,
    }
}

pub(crate) fn failure(worker: &str, id: TaskId, attempt: u32, retry: bool) -> Completion {
    Completion {
        id,
        worker: worker.into(),
        attempt,
        outcome: Outcome::Failed {
            error: TaskError {
                code: oclaw_core::ErrorCode::SkillFailed.code().into(),
                message: "boom".into(),
            },
            retry_at: retry.then(|| Utc::now() + chrono::Duration::hours(1)),
        },
        kv: Vec::new(),
        follow_ups: Vec::new(),
        parent: None,
    }
}

/// Generates one `#[tokio::test]` per conformance case; `$open` is an async expression that
/// yields a fresh, empty `Arc<dyn Store>`.
#[macro_export]
macro_rules! store_conformance_tests {
    ($open:expr) => {
        $crate::store_conformance_tests!(@all $open; cases);
    };
    // `$open` yields `Option<Arc<dyn Store>>`; `None` skips the case (a backend that is absent).
    (optional $open:expr) => {
        $crate::store_conformance_tests!(@all $open; optional_cases);
    };
    (@all $open:expr; $mode:ident) => {
        $crate::store_conformance_tests!(@$mode $open;
            enqueue_then_get, idempotency_key_returns_the_same_task,
            claim_respects_priority_then_age_and_limit, claim_only_from_named_queues,
            batch_enqueue_and_batch_complete, failure_retries_then_dead_letters,
            permanent_failure_is_failed, redrive_dead_task, cancel_fences_the_worker,
            expired_lease_is_requeued_and_old_holder_fenced, expired_lease_on_last_attempt_is_dead,
            heartbeat_extends_only_own_leases, crashed_worker_leases_end_at_once, release_gives_tasks_back_without_counting_an_attempt,
            delayed_task_waits_for_run_at, capacity_refuses_then_accepts, concurrent_writes_succeed_or_fail_alone, checkpoints_come_back_on_retry,
            queue_stats_count_each_state, list_tasks_filters_and_pages, kv_with_ttl, kv_add_counts_within_a_limit_atomically, trigger_marks_persist,
            wakeups_fire_on_enqueue, nodes_register_heartbeat_and_leave,
            leadership_is_exclusive_until_it_lapses, purge_removes_old_finished_tasks_only,
            ordering_key_runs_tasks_one_at_a_time_in_order, completion_kv_writes_commit_with_a_success_only,
            completion_follow_ups_are_enqueued_with_a_success_only,
            a_parked_task_holds_no_lease_and_an_event_resumes_it_with_its_data,
            an_event_that_comes_first_is_kept_for_the_wait, a_park_without_the_lease_is_fenced,
            approvals_count_allowed_approvers_and_record_refusals, deadlines_end_waits_as_on_timeout_says,
            a_child_wakes_its_parent_with_its_output_or_fails_it,
            cancelling_a_parent_cancels_its_children_and_their_waits,
            retry_from_a_step_keeps_only_earlier_checkpoints,
            a_key_limit_above_one_runs_that_many_at_once_in_order,
            debounced_tasks_fold_into_the_one_not_started,
            a_rate_key_starts_at_most_its_limit_in_a_window,
            kb_collections_are_created_listed_and_dropped_per_tenant,
            kb_documents_are_added_replaced_when_changed_and_removed,
            kb_text_search_ranks_filters_and_matches_cjk_terms,
            kb_vectors_come_back_with_metadata_and_other_embedders_are_refused,
            kb_common_terms_are_left_out_of_queries_on_large_collections,
            claims_share_a_queue_fairly_among_tenants, tokens_are_kept_hashed_listed_and_revoked,
            the_audit_log_is_a_chain_of_hashes, secrets_are_kept_per_tenant,
            a_burst_of_due_tasks_is_promoted_whole);
    };
    (@cases $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $open.await;
                $crate::conformance::$case(store).await;
            }
        )*
    };
    (@optional_cases $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(store) = $open.await {
                    $crate::conformance::$case(store).await;
                }
            }
        )*
    };
}

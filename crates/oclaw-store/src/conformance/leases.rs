//! Attempts under leases: retries and dead letters, redrive, cancel, expiry and fencing, heartbeats,
//! crashed and stopping workers, checkpoints, key-value writes that commit with a success.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::Utc;
use oclaw_core::{NewTask, TaskId, TaskStatus};
use serde_json::json;

use super::{claim, failure, success, task, DynStore};
use crate::StoreError;

pub async fn failure_retries_then_dead_letters(s: DynStore) {
    let id = s
        .enqueue(NewTask {
            max_attempts: 2,
            ..task("b", "default", 1)
        })
        .await
        .unwrap()
        .task
        .id;
    let c = s.claim_batch(claim("w", &["default"], 1)).await.unwrap();
    s.complete_batch(vec![failure("w", id, c[0].attempt, true)])
        .await
        .unwrap();
    let t = s.get_task(id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Scheduled);
    assert_eq!(t.error.as_ref().unwrap().code, "OC-4013");
    assert!(t.run_at > Utc::now());
    assert_eq!(s.next_due_at().await.unwrap(), Some(t.run_at));
    // Not due yet: nothing to claim.
    assert_eq!(s.promote_due(Utc::now()).await.unwrap(), 0);
    assert_eq!(s.promote_due(t.run_at).await.unwrap(), 1);
    let c = s.claim_batch(claim("w", &["default"], 1)).await.unwrap();
    assert_eq!(c[0].attempt, 2);
    let report = s
        .complete_batch(vec![failure("w", id, 2, true)])
        .await
        .unwrap();
    assert_eq!(report.finished, vec![id]);
    let t = s.get_task(id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Dead);
    assert_eq!(t.attempts, 2);
}

pub async fn permanent_failure_is_failed(s: DynStore) {
    let id = s.enqueue(task("b", "default", 1)).await.unwrap().task.id;
    let c = s.claim_batch(claim("w", &["default"], 1)).await.unwrap();
    s.complete_batch(vec![failure("w", id, c[0].attempt, false)])
        .await
        .unwrap();
    assert_eq!(
        s.get_task(id).await.unwrap().unwrap().status,
        TaskStatus::Failed
    );
}

pub async fn redrive_dead_task(s: DynStore) {
    let id = s
        .enqueue(NewTask {
            max_attempts: 1,
            ..task("b", "default", 1)
        })
        .await
        .unwrap()
        .task
        .id;
    let c = s.claim_batch(claim("w", &["default"], 1)).await.unwrap();
    s.complete_batch(vec![failure("w", id, c[0].attempt, true)])
        .await
        .unwrap();
    assert_eq!(
        s.get_task(id).await.unwrap().unwrap().status,
        TaskStatus::Dead
    );
    let t = s.redrive(id).await.unwrap();
    assert_eq!(t.status, TaskStatus::Queued);
    assert_eq!(t.attempts, 0);
    assert!(t.error.is_none());
    let again = s.claim_batch(claim("w", &["default"], 1)).await.unwrap();
    assert_eq!(again[0].id, id);
    assert_eq!(again[0].attempt, 1);
    let err = s.redrive(id).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                status: TaskStatus::Running,
                ..
            }
        ),
        "{err:?}"
    );
}

pub async fn cancel_fences_the_worker(s: DynStore) {
    let queued = s.enqueue(task("b", "default", 1)).await.unwrap().task.id;
    assert_eq!(
        s.cancel(queued).await.unwrap().status,
        TaskStatus::Cancelled
    );
    assert!(matches!(
        s.cancel(queued).await.unwrap_err(),
        StoreError::Conflict { .. }
    ));
    let running = s.enqueue(task("b", "default", 2)).await.unwrap().task.id;
    let c = s.claim_batch(claim("w", &["default"], 10)).await.unwrap();
    assert_eq!(c.len(), 1, "a cancelled task is never claimed");
    s.cancel(running).await.unwrap();
    let report = s
        .complete_batch(vec![success("w", running, 1, json!(1))])
        .await
        .unwrap();
    assert_eq!(report.fenced, vec![running]);
    assert_eq!(
        s.get_task(running).await.unwrap().unwrap().status,
        TaskStatus::Cancelled
    );
    assert!(matches!(
        s.cancel(TaskId(987_654)).await.unwrap_err(),
        StoreError::NotFound(_)
    ));
}

pub async fn expired_lease_is_requeued_and_old_holder_fenced(s: DynStore) {
    let id = s.enqueue(task("b", "default", 1)).await.unwrap().task.id;
    let c = s.claim_batch(claim("w1", &["default"], 1)).await.unwrap();
    assert_eq!(s.requeue_expired(Utc::now()).await.unwrap().requeued, 0);
    let later = Utc::now() + chrono::Duration::minutes(5);
    let report = s.requeue_expired(later).await.unwrap();
    assert_eq!(report.requeued, 1);
    let t = s.get_task(id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Queued);
    assert_eq!(t.error.unwrap().code, "OC-3001");
    let c2 = s.claim_batch(claim("w2", &["default"], 1)).await.unwrap();
    assert_eq!(c2[0].attempt, 2);
    let fenced = s
        .complete_batch(vec![success("w1", id, c[0].attempt, json!("late"))])
        .await
        .unwrap();
    assert_eq!(fenced.fenced, vec![id]);
    let ok = s
        .complete_batch(vec![success("w2", id, 2, json!("ok"))])
        .await
        .unwrap();
    assert_eq!(ok.applied, 1);
    assert_eq!(
        s.get_task(id).await.unwrap().unwrap().output,
        Some(json!("ok"))
    );
}

pub async fn expired_lease_on_last_attempt_is_dead(s: DynStore) {
    let id = s
        .enqueue(NewTask {
            max_attempts: 1,
            ..task("b", "default", 1)
        })
        .await
        .unwrap()
        .task
        .id;
    s.claim_batch(claim("w1", &["default"], 1)).await.unwrap();
    let report = s
        .requeue_expired(Utc::now() + chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(report.dead, 1);
    assert_eq!(
        s.get_task(id).await.unwrap().unwrap().status,
        TaskStatus::Dead
    );
}

pub async fn heartbeat_extends_only_own_leases(s: DynStore) {
    let id = s.enqueue(task("b", "default", 1)).await.unwrap().task.id;
    s.claim_batch(claim("w1", &["default"], 1)).await.unwrap();
    assert_eq!(
        s.extend_leases("w2", &[id], Duration::from_secs(60))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.extend_leases("w1", &[id], Duration::from_secs(600))
            .await
            .unwrap(),
        1
    );
    let report = s
        .requeue_expired(Utc::now() + chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(report.requeued, 0, "the extended lease is still valid");
}

pub async fn crashed_worker_leases_end_at_once(s: DynStore) {
    let id = s.enqueue(task("b", "default", 1)).await.unwrap().task.id;
    s.claim_batch(claim("node-a", &["default"], 1))
        .await
        .unwrap();
    assert_eq!(s.expire_leases_of("node-b").await.unwrap(), 0);
    assert_eq!(s.expire_leases_of("node-a").await.unwrap(), 1);
    let report = s.requeue_expired(Utc::now()).await.unwrap();
    assert_eq!(report.requeued, 1);
    let t = s.get_task(id).await.unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Queued, 1));
}

pub async fn release_gives_tasks_back_without_counting_an_attempt(s: DynStore) {
    let id = s.enqueue(task("b", "default", 1)).await.unwrap().task.id;
    s.claim_batch(claim("w1", &["default"], 1)).await.unwrap();
    assert_eq!(s.release("w2", &[id]).await.unwrap(), 0);
    assert_eq!(s.release("w1", &[id]).await.unwrap(), 1);
    let t = s.get_task(id).await.unwrap().unwrap();
    assert_eq!((t.status, t.attempts), (TaskStatus::Queued, 0));
}

pub async fn checkpoints_come_back_on_retry(s: DynStore) {
    let id = s.enqueue(task("b", "default", 1)).await.unwrap().task.id;
    let c = s.claim_batch(claim("w", &["default"], 1)).await.unwrap();
    assert!(c[0].checkpoints.is_empty());
    s.save_checkpoint(id, "fetch", 0, &json!({"rows": 3}))
        .await
        .unwrap();
    s.complete_batch(vec![failure("w", id, 1, true)])
        .await
        .unwrap();
    s.promote_due(Utc::now() + chrono::Duration::hours(2))
        .await
        .unwrap();
    let c = s.claim_batch(claim("w", &["default"], 1)).await.unwrap();
    assert_eq!(c[0].checkpoints.len(), 1);
    assert_eq!(c[0].checkpoints[0].step, "fetch");
    assert_eq!(c[0].checkpoints[0].output, json!({"rows": 3}));
    let t = s.get_task(id).await.unwrap().unwrap();
    assert_eq!(t.checkpoints.len(), 1);
}

pub async fn completion_kv_writes_commit_with_a_success_only(s: DynStore) {
    let write = |v: i64| crate::KvWrite {
        namespace: "conversation".into(),
        key: "c1".into(),
        value: json!(v),
        expires_at: None,
    };
    let id = s.enqueue(task("b", "q", 1)).await.unwrap().task.id;
    let t = s
        .claim_batch(claim("w", &["q"], 1))
        .await
        .unwrap()
        .remove(0);
    // A fenced completion (wrong worker) writes nothing.
    let mut fenced = success("other", id, t.attempt, json!("x"));
    fenced.kv = vec![write(1)];
    let report = s.complete_batch(vec![fenced]).await.unwrap();
    assert_eq!(report.fenced, vec![id]);
    assert_eq!(
        s.kv_get("conversation", "c1", Utc::now()).await.unwrap(),
        None
    );
    // A failure writes nothing either.
    let mut failed = failure("w", id, t.attempt, true);
    failed.kv = vec![write(2)];
    s.complete_batch(vec![failed]).await.unwrap();
    assert_eq!(
        s.kv_get("conversation", "c1", Utc::now()).await.unwrap(),
        None
    );
    // A success writes, in the same batch as a completion without writes.
    let a = s.enqueue(task("b", "q", 2)).await.unwrap().task.id;
    let b = s.enqueue(task("b", "q", 3)).await.unwrap().task.id;
    let got = s.claim_batch(claim("w", &["q"], 2)).await.unwrap();
    assert_eq!(got.len(), 2);
    let mut ok = success("w", a, 1, json!("done"));
    ok.kv = vec![write(3)];
    let report = s
        .complete_batch(vec![ok, success("w", b, 1, json!("done"))])
        .await
        .unwrap();
    assert_eq!(report.applied, 2);
    assert_eq!(
        s.kv_get("conversation", "c1", Utc::now()).await.unwrap(),
        Some(json!(3))
    );
}

/// A completion's follow-up tasks exist exactly when its success is recorded: not for a fenced
/// completion nor a failure, once for a success (even on a queue at capacity), and a replay of
/// the same completion adds none.
pub async fn completion_follow_ups_are_enqueued_with_a_success_only(s: DynStore) {
    let follow = |n: i64| NewTask::new("reply", "out", json!({ "reply_to": n }));
    let count_out = |s: DynStore| async move {
        s.list_tasks(crate::TaskFilter {
            queue: Some("out".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
    };
    let id = s.enqueue(task("b", "q", 1)).await.unwrap().task.id;
    let t = s
        .claim_batch(claim("w", &["q"], 1))
        .await
        .unwrap()
        .remove(0);
    let mut fenced = success("other", id, t.attempt, json!("x"));
    fenced.follow_ups = vec![follow(1)];
    assert_eq!(
        s.complete_batch(vec![fenced]).await.unwrap().fenced,
        vec![id]
    );
    let mut failed = failure("w", id, t.attempt, true);
    failed.follow_ups = vec![follow(2)];
    s.complete_batch(vec![failed]).await.unwrap();
    assert!(count_out(s.clone()).await.is_empty());

    // A full queue does not refuse a follow-up.
    s.set_queue_capacity("out", Some(1));
    s.enqueue(NewTask::new("filler", "out", json!(0)))
        .await
        .unwrap();
    let a = s.enqueue(task("b", "q", 2)).await.unwrap().task.id;
    let b = s.enqueue(task("b", "q", 3)).await.unwrap().task.id;
    assert_eq!(s.claim_batch(claim("w", &["q"], 2)).await.unwrap().len(), 2);
    let mut ok = success("w", a, 1, json!("done"));
    ok.follow_ups = vec![follow(3), follow(4)];
    let done = ok.clone();
    let report = s
        .complete_batch(vec![ok, success("w", b, 1, json!("done"))])
        .await
        .unwrap();
    assert_eq!(report.applied, 2);
    // The same completion again is fenced and adds nothing.
    assert_eq!(s.complete_batch(vec![done]).await.unwrap().fenced, vec![a]);
    let mut inputs: Vec<serde_json::Value> = count_out(s.clone())
        .await
        .into_iter()
        .filter(|t| t.bot == "reply")
        .map(|t| {
            assert_eq!(t.status, TaskStatus::Queued);
            t.input
        })
        .collect();
    inputs.sort_by_key(|v| v["reply_to"].as_i64());
    assert_eq!(inputs, vec![json!({"reply_to": 3}), json!({"reply_to": 4})]);
    s.set_queue_capacity("out", None);
    // Follow-ups are claimable like any task.
    assert_eq!(
        s.claim_batch(claim("w2", &["out"], 10))
            .await
            .unwrap()
            .len(),
        3
    );
}

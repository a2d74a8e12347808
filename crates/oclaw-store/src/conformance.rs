//! The behaviour every [`Store`] backend must have, written as test functions.
//!
//! A backend runs the whole suite with [`store_conformance_tests!`], giving an expression that
//! opens a fresh, empty store (`async` block returning `Arc<dyn Store>`).
//! These are test assertions: they panic on failure by design.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use oclaw_core::{NewTask, TaskError, TaskId, TaskStatus};
use serde_json::json;

use crate::{ClaimRequest, Completion, Outcome, Store, StoreError, TaskFilter};

pub type DynStore = Arc<dyn Store>;

fn task(bot: &str, queue: &str, n: i64) -> NewTask {
    NewTask::new(bot, queue, json!({ "n": n }))
}

fn claim(worker: &str, queues: &[&str], limit: usize) -> ClaimRequest {
    ClaimRequest {
        worker: worker.into(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        limit,
        lease: Duration::from_secs(30),
    }
}

fn success(worker: &str, id: TaskId, attempt: u32, v: serde_json::Value) -> Completion {
    Completion {
        id,
        worker: worker.into(),
        attempt,
        outcome: Outcome::Succeeded(v),
        kv: Vec::new(),
    }
}

fn failure(worker: &str, id: TaskId, attempt: u32, retry: bool) -> Completion {
    Completion {
        id,
        worker: worker.into(),
        attempt,
        outcome: Outcome::Failed {
            error: TaskError {
                code: "OC-4013".into(),
                message: "boom".into(),
            },
            retry_at: retry.then(|| Utc::now() + chrono::Duration::hours(1)),
        },
        kv: Vec::new(),
    }
}

pub async fn enqueue_then_get(s: DynStore) {
    let e = s.enqueue(task("b", "default", 1)).await.unwrap();
    assert!(e.created);
    assert_eq!(e.task.status, TaskStatus::Queued);
    let got = s.get_task(e.task.id).await.unwrap().unwrap();
    assert_eq!(got.input, json!({"n": 1}));
    assert_eq!(got.bot, "b");
    assert_eq!(got.attempts, 0);
    assert_eq!(got.trace_id, e.task.trace_id);
    assert!(s.get_task(TaskId(999_999)).await.unwrap().is_none());
}

pub async fn idempotency_key_returns_the_same_task(s: DynStore) {
    let mut t = task("b", "default", 1);
    t.idempotency_key = Some("order-42".into());
    let first = s.enqueue(t.clone()).await.unwrap();
    let second = s.enqueue(t).await.unwrap();
    assert!(first.created && !second.created);
    assert_eq!(first.task.id, second.task.id);
    let batch = s
        .enqueue_batch(vec![
            NewTask {
                idempotency_key: Some("k2".into()),
                ..task("b", "default", 2)
            },
            NewTask {
                idempotency_key: Some("k2".into()),
                ..task("b", "default", 3)
            },
        ])
        .await
        .unwrap();
    assert_eq!(batch[0].task.id, batch[1].task.id);
    assert_eq!(batch[1].task.input, json!({"n": 2}));
}

pub async fn claim_respects_priority_then_age_and_limit(s: DynStore) {
    let low = s.enqueue(task("b", "q", 1)).await.unwrap().task.id;
    let high = s
        .enqueue(NewTask {
            priority: 10,
            ..task("b", "q", 2)
        })
        .await
        .unwrap()
        .task
        .id;
    let low2 = s.enqueue(task("b", "q", 3)).await.unwrap().task.id;
    let got = s.claim_batch(claim("w1", &["q"], 2)).await.unwrap();
    assert_eq!(
        got.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![high, low]
    );
    assert!(got.iter().all(|t| t.attempt == 1));
    let rest = s.claim_batch(claim("w2", &["q"], 10)).await.unwrap();
    assert_eq!(rest.iter().map(|t| t.id).collect::<Vec<_>>(), vec![low2]);
    assert!(s
        .claim_batch(claim("w2", &["q"], 10))
        .await
        .unwrap()
        .is_empty());
    let running = s.get_task(high).await.unwrap().unwrap();
    assert_eq!(running.status, TaskStatus::Running);
    assert_eq!(running.worker.as_deref(), Some("w1"));
}

pub async fn claim_only_from_named_queues(s: DynStore) {
    s.enqueue(task("b", "a", 1)).await.unwrap();
    s.enqueue(task("b", "b", 2)).await.unwrap();
    let got = s.claim_batch(claim("w", &["b"], 10)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].queue, "b");
    let both = s.claim_batch(claim("w", &["a", "b"], 10)).await.unwrap();
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].queue, "a");
}

pub async fn batch_enqueue_and_batch_complete(s: DynStore) {
    let tasks: Vec<NewTask> = (0..250).map(|n| task("b", "default", n)).collect();
    let created = s.enqueue_batch(tasks).await.unwrap();
    assert_eq!(created.len(), 250);
    let mut done = 0;
    loop {
        let batch = s.claim_batch(claim("w", &["default"], 100)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 100);
        let completions = batch
            .iter()
            .map(|t| success("w", t.id, t.attempt, t.input.clone()))
            .collect();
        let report = s.complete_batch(completions).await.unwrap();
        assert_eq!(report.applied, batch.len());
        assert_eq!(report.finished.len(), batch.len());
        done += batch.len();
    }
    assert_eq!(done, 250);
    let t = s.get_task(created[7].task.id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Succeeded);
    assert_eq!(t.output, Some(json!({"n": 7})));
    assert!(t.finished_at.is_some());
}

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

pub async fn delayed_task_waits_for_run_at(s: DynStore) {
    let at = Utc::now() + chrono::Duration::seconds(30);
    let e = s
        .enqueue(NewTask {
            run_at: Some(at),
            ..task("b", "default", 1)
        })
        .await
        .unwrap();
    assert_eq!(e.task.status, TaskStatus::Scheduled);
    assert!(s
        .claim_batch(claim("w", &["default"], 10))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.promote_due(at + chrono::Duration::milliseconds(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.claim_batch(claim("w", &["default"], 10))
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn capacity_refuses_then_accepts(s: DynStore) {
    s.set_queue_capacity("small", Some(2));
    s.enqueue(task("b", "small", 1)).await.unwrap();
    s.enqueue(task("b", "small", 2)).await.unwrap();
    let err = s.enqueue(task("b", "small", 3)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::QueueFull { capacity: 2, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    // A batch that would overflow is refused whole.
    s.set_queue_capacity("small", Some(3));
    let err = s
        .enqueue_batch(vec![task("b", "small", 4), task("b", "small", 5)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::QueueFull { .. }));
    let stats = s.queue_stats(Utc::now()).await.unwrap();
    let small = stats.iter().find(|q| q.name == "small").unwrap();
    assert_eq!((small.queued, small.capacity), (2, Some(3)));
    // Claiming frees room.
    s.claim_batch(claim("w", &["small"], 1)).await.unwrap();
    s.enqueue(task("b", "small", 6)).await.unwrap();
    s.enqueue(task("b", "small", 7)).await.unwrap();
    // Other queues are not limited.
    s.enqueue_batch((0..10).map(|n| task("b", "big", n)).collect())
        .await
        .unwrap();
}

pub async fn concurrent_writes_succeed_or_fail_alone(s: DynStore) {
    s.set_queue_capacity("g", Some(5));
    let mut handles = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            if i % 4 == 0 {
                // A batch that overflows the capped queue after inserting its first task.
                s.enqueue_batch(vec![
                    task("b", "h", i),
                    task("b", "g", i),
                    task("b", "g", i + 1000),
                ])
                .await
                .map(|v| v.len())
            } else if i % 2 == 0 {
                s.enqueue(task("b", "g", i)).await.map(|_| 1)
            } else {
                s.enqueue(task("b", "h", i)).await.map(|_| 1)
            }
        }));
    }
    let mut ok_h = 0;
    for (i, h) in handles.into_iter().enumerate() {
        match (i % 4, h.await.unwrap()) {
            (1 | 3, r) => {
                r.unwrap();
                ok_h += 1;
            }
            (0, Ok(n)) => ok_h += n - 2,
            (_, Ok(_)) => {}
            (_, Err(e)) => assert!(matches!(e, StoreError::QueueFull { .. }), "{e:?}"),
        }
    }
    let stats = s.queue_stats(Utc::now()).await.unwrap();
    let count = |q: &str| {
        stats
            .iter()
            .find(|x| x.name == q)
            .map(|x| x.queued)
            .unwrap_or(0)
    };
    assert_eq!(count("g"), 5, "the capped queue holds exactly its capacity");
    assert_eq!(
        count("h") as usize,
        ok_h,
        "a refused batch leaves none of its tasks behind"
    );
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

pub async fn queue_stats_count_each_state(s: DynStore) {
    s.enqueue_batch((0..3).map(|n| task("b", "stats", n)).collect())
        .await
        .unwrap();
    s.enqueue(NewTask {
        run_at: Some(Utc::now() + chrono::Duration::hours(1)),
        ..task("b", "stats", 9)
    })
    .await
    .unwrap();
    let dead = s
        .enqueue(NewTask {
            max_attempts: 1,
            priority: 5,
            ..task("b", "stats", 8)
        })
        .await
        .unwrap()
        .task
        .id;
    let c = s.claim_batch(claim("w", &["stats"], 2)).await.unwrap();
    assert_eq!(c[0].id, dead);
    s.complete_batch(vec![failure("w", dead, 1, true)])
        .await
        .unwrap();
    let stats = s
        .queue_stats(Utc::now() + chrono::Duration::seconds(10))
        .await
        .unwrap();
    let q = stats.iter().find(|q| q.name == "stats").unwrap();
    assert_eq!((q.queued, q.running, q.scheduled, q.dead), (2, 1, 1, 1));
    assert!(q.oldest_queued_age_seconds >= 9.0);
}

pub async fn list_tasks_filters_and_pages(s: DynStore) {
    for n in 0..5 {
        s.enqueue(task(if n % 2 == 0 { "even" } else { "odd" }, "default", n))
            .await
            .unwrap();
    }
    let page1 = s
        .list_tasks(TaskFilter {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page1.len(), 2);
    assert!(page1[0].id > page1[1].id);
    let page2 = s
        .list_tasks(TaskFilter {
            limit: 10,
            before: Some(page1[1].id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page2.len(), 3);
    let evens = s
        .list_tasks(TaskFilter {
            bot: Some("even".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(evens.len(), 3);
    let none = s
        .list_tasks(TaskFilter {
            status: Some(TaskStatus::Dead),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

pub async fn kv_with_ttl(s: DynStore) {
    let now = Utc::now();
    s.kv_set(
        "bot",
        "k",
        &json!({"v": 1}),
        Some(now + chrono::Duration::seconds(60)),
    )
    .await
    .unwrap();
    assert_eq!(
        s.kv_get("bot", "k", now).await.unwrap(),
        Some(json!({"v": 1}))
    );
    assert_eq!(s.kv_get("other", "k", now).await.unwrap(), None);
    assert_eq!(
        s.kv_get("bot", "k", now + chrono::Duration::seconds(61))
            .await
            .unwrap(),
        None
    );
    s.kv_set("bot", "forever", &json!(2), None).await.unwrap();
    assert_eq!(
        s.kv_get("bot", "forever", now + chrono::Duration::days(999))
            .await
            .unwrap(),
        Some(json!(2))
    );
}

pub async fn trigger_marks_persist(s: DynStore) {
    let at = Utc::now();
    s.set_trigger_mark("bot/0", at).await.unwrap();
    let marks = s.trigger_marks().await.unwrap();
    assert_eq!(marks["bot/0"].timestamp_millis(), at.timestamp_millis());
}

pub async fn wakeups_fire_on_enqueue(s: DynStore) {
    let notified = s.wakeups().queued.notified();
    s.enqueue(task("b", "default", 1)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), notified)
        .await
        .expect("queued wake-up");
    let mut finished = s.wakeups().finished.subscribe();
    let c = s.claim_batch(claim("w", &["default"], 1)).await.unwrap();
    s.complete_batch(vec![success("w", c[0].id, 1, json!(null))])
        .await
        .unwrap();
    let ids = tokio::time::timeout(Duration::from_secs(5), finished.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&ids[..], &[c[0].id]);
}

pub async fn nodes_register_heartbeat_and_leave(s: DynStore) {
    s.heartbeat_node("w1", &json!({"components": ["worker"]}))
        .await
        .unwrap();
    s.heartbeat_node("a1", &json!({"components": ["api-server"]}))
        .await
        .unwrap();
    let first = s.list_nodes().await.unwrap();
    assert_eq!(
        first.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        ["a1", "w1"]
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.heartbeat_node("w1", &json!({"components": ["worker"], "in_flight": 3}))
        .await
        .unwrap();
    let nodes = s.list_nodes().await.unwrap();
    let w1 = nodes.iter().find(|n| n.id == "w1").unwrap();
    assert_eq!(w1.info["in_flight"], 3, "a heartbeat replaces the info");
    assert_eq!(w1.started_at, first[1].started_at, "start time is kept");
    assert!(w1.heartbeat_at > first[1].heartbeat_at);
    s.remove_node("w1").await.unwrap();
    assert_eq!(s.list_nodes().await.unwrap().len(), 1);
}

pub async fn leadership_is_exclusive_until_it_lapses(s: DynStore) {
    let term = Duration::from_millis(400);
    assert!(s.acquire_leadership("scheduler", "a", term).await.unwrap());
    assert!(!s.acquire_leadership("scheduler", "b", term).await.unwrap());
    assert!(
        s.acquire_leadership("scheduler", "a", term).await.unwrap(),
        "renewal"
    );
    // Other roles are independent.
    assert!(s.acquire_leadership("other", "b", term).await.unwrap());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        s.acquire_leadership("scheduler", "b", term).await.unwrap(),
        "a lapsed term can be taken"
    );
    assert!(!s.acquire_leadership("scheduler", "a", term).await.unwrap());
    s.resign_leadership("scheduler", "a").await.unwrap(); // not the holder: no effect
    assert!(!s.acquire_leadership("scheduler", "a", term).await.unwrap());
    s.resign_leadership("scheduler", "b").await.unwrap();
    assert!(
        s.acquire_leadership("scheduler", "a", term).await.unwrap(),
        "resigning hands over at once"
    );
}

pub async fn purge_removes_old_finished_tasks_only(s: DynStore) {
    let ids: Vec<TaskId> = s
        .enqueue_batch((0..4).map(|n| task("b", "default", n)).collect())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.task.id)
        .collect();
    let c = s.claim_batch(claim("w", &["default"], 3)).await.unwrap();
    assert_eq!(c.len(), 3);
    s.save_checkpoint(ids[0], "first", 0, &json!(1))
        .await
        .unwrap();
    s.complete_batch(vec![
        success("w", ids[0], 1, json!("old")),
        failure("w", ids[1], 1, false),
    ])
    .await
    .unwrap();
    s.kv_set(
        "ns",
        "stale",
        &json!(1),
        Some(Utc::now() - chrono::Duration::seconds(1)),
    )
    .await
    .unwrap();
    s.kv_set("ns", "kept", &json!(2), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Finished after the cutoff: kept. Still running (ids[2]) and queued (ids[3]): kept.
    let late = s.enqueue(task("b", "other", 9)).await.unwrap().task.id;
    let c2 = s.claim_batch(claim("w", &["other"], 1)).await.unwrap();
    s.complete_batch(vec![success("w", c2[0].id, 1, json!("new"))])
        .await
        .unwrap();
    assert_eq!(s.purge(cutoff, Utc::now(), 100).await.unwrap(), 2);
    assert!(s.get_task(ids[0]).await.unwrap().is_none());
    assert!(s.get_task(ids[1]).await.unwrap().is_none());
    for kept in [ids[2], ids[3], late] {
        assert!(
            s.get_task(kept).await.unwrap().is_some(),
            "{kept} was purged"
        );
    }
    assert_eq!(
        s.kv_get("ns", "stale", Utc::now() - chrono::Duration::hours(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.kv_get("ns", "kept", Utc::now()).await.unwrap(),
        Some(json!(2))
    );
    assert_eq!(s.purge(cutoff, Utc::now(), 100).await.unwrap(), 0);
}

/// Generates one `#[tokio::test]` per conformance case; `$open` is an async expression that
/// yields a fresh, empty `Arc<dyn Store>`.
pub async fn ordering_key_runs_tasks_one_at_a_time_in_order(s: DynStore) {
    let keyed = |n: i64, key: &str| NewTask {
        ordering_key: Some(key.into()),
        ..task("b", "q", n)
    };
    let a1 = s.enqueue(keyed(1, "conv-a")).await.unwrap().task.id;
    let a2 = s.enqueue(keyed(2, "conv-a")).await.unwrap().task.id;
    let a3 = s.enqueue(keyed(3, "conv-a")).await.unwrap().task.id;
    let b1 = s.enqueue(keyed(4, "conv-b")).await.unwrap().task.id;
    let free = s.enqueue(task("b", "q", 5)).await.unwrap().task.id;
    // One task per key at a time; tasks without a key are not held back.
    let got: Vec<TaskId> = s
        .claim_batch(claim("w", &["q"], 10))
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(got, vec![a1, b1, free]);
    assert!(
        s.claim_batch(claim("w2", &["q"], 10))
            .await
            .unwrap()
            .is_empty(),
        "a2 waits while a1 runs"
    );
    // A failure scheduled for retry still holds the key: a2 must not overtake a1.
    s.complete_batch(vec![failure("w", a1, 1, true)])
        .await
        .unwrap();
    assert!(
        s.claim_batch(claim("w2", &["q"], 10))
            .await
            .unwrap()
            .is_empty(),
        "a2 waits for a1's retry"
    );
    s.cancel(a1).await.unwrap();
    let got: Vec<TaskId> = s
        .claim_batch(claim("w2", &["q"], 10))
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(got, vec![a2]);
    // Finishing a keyed task wakes the claimers: its successor is ready now, not at the next poll.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = tokio::time::timeout(Duration::from_millis(10), s.wakeups().queued.notified()).await;
    s.complete_batch(vec![success("w2", a2, 1, json!(2))])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), s.wakeups().queued.notified())
        .await
        .expect("a queued wake-up when a keyed task finishes");
    let got: Vec<TaskId> = s
        .claim_batch(claim("w2", &["q"], 10))
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(got, vec![a3]);
    // Batch enqueue keeps the key too.
    let batch = s
        .enqueue_batch(vec![keyed(6, "conv-c"), keyed(7, "conv-c")])
        .await
        .unwrap();
    let got: Vec<TaskId> = s
        .claim_batch(claim("w3", &["q"], 10))
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(got, vec![batch[0].task.id]);
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
            queue_stats_count_each_state, list_tasks_filters_and_pages, kv_with_ttl, trigger_marks_persist,
            wakeups_fire_on_enqueue, nodes_register_heartbeat_and_leave,
            leadership_is_exclusive_until_it_lapses, purge_removes_old_finished_tasks_only,
            ordering_key_runs_tasks_one_at_a_time_in_order, completion_kv_writes_commit_with_a_success_only);
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

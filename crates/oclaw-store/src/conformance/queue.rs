//! Enqueueing and claiming: idempotency, priority and age, named queues, batches, delays, capacity,
//! concurrent writers, ordering keys, listing and statistics, wake-ups.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::Utc;
use oclaw_core::{NewTask, TaskId, TaskStatus};
use serde_json::json;

use super::{claim, failure, success, task, DynStore};
use crate::{StoreError, TaskFilter};

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

pub async fn a_key_limit_above_one_runs_that_many_at_once_in_order(s: DynStore) {
    let keyed = |n: i64, key: &str| NewTask {
        ordering_key: Some(key.into()),
        key_limit: Some(2),
        ..task("b", "q", n)
    };
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(s.enqueue(keyed(n, "cust-a")).await.unwrap().task.id);
    }
    let other = s.enqueue(keyed(9, "cust-b")).await.unwrap().task.id;
    let got = ids_claimed(&s, "w").await;
    assert_eq!(
        got,
        vec![ids[0], ids[1], other],
        "two of cust-a, and cust-b is not held up"
    );
    // A second claimer (another worker) gets nothing of cust-a while two run.
    assert!(s
        .claim_batch(claim("w2", &["q"], 10))
        .await
        .unwrap()
        .is_empty());
    s.complete_batch(vec![success("w", ids[1], 1, json!(1))])
        .await
        .unwrap();
    let got = ids_claimed(&s, "w2").await;
    assert_eq!(got, vec![ids[2]], "the next in order, one slot freed");
    // A parked task holds no slot of its key.
    s.park(crate::waits::Park {
        id: ids[0],
        worker: "w".into(),
        attempt: 1,
        wait: crate::waits::NewWait {
            step: "s".into(),
            index: 0,
            kind: crate::waits::WaitKind::Sleep,
            name: None,
            key: None,
            deadline: None,
            on_timeout: crate::waits::OnTimeout::Output(json!(null)),
            detail: json!({}),
        },
        child: None,
    })
    .await
    .unwrap();
    let got = ids_claimed(&s, "w2").await;
    assert_eq!(got, vec![ids[3]]);
}

pub async fn debounced_tasks_fold_into_the_one_not_started(s: DynStore) {
    let soon = |n: i64, ms: i64| NewTask {
        debounce_key: Some("b/door".into()),
        run_at: Some(Utc::now() + chrono::Duration::milliseconds(ms)),
        ..task("b", "q", n)
    };
    let first = s.enqueue(soon(1, 60_000)).await.unwrap();
    assert!(first.created);
    let second = s.enqueue(soon(2, 120_000)).await.unwrap();
    assert!(!second.created, "folded into the pending one");
    assert_eq!(second.task.id, first.task.id);
    assert_eq!(second.task.input, json!({"n": 2}), "the newest input");
    assert!(
        second.task.run_at > first.task.run_at,
        "the quiet period starts again"
    );
    // Another key is its own task; so is the same key in one batch after a fold.
    let other = s
        .enqueue(NewTask {
            debounce_key: Some("b/window".into()),
            ..soon(3, 60_000)
        })
        .await
        .unwrap();
    assert!(other.created);
    let batch = s.enqueue_batch(vec![soon(4, 1), soon(5, 1)]).await.unwrap();
    assert!(batch
        .iter()
        .all(|e| e.task.id == first.task.id && !e.created));
    // Once it has started, a new task of the key is a new run.
    s.promote_due(Utc::now() + chrono::Duration::minutes(5))
        .await
        .unwrap();
    let c = s.claim_batch(claim("w", &["q"], 10)).await.unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(
        c.iter().find(|t| t.id == first.task.id).unwrap().input,
        json!({"n": 5})
    );
    let later = s.enqueue(soon(6, 60_000)).await.unwrap();
    assert!(later.created && later.task.id != first.task.id);
}

pub async fn a_rate_key_starts_at_most_its_limit_in_a_window(s: DynStore) {
    let rated = |n: i64, key: &str, limit: u32, per_ms: u64| NewTask {
        rate_key: Some(key.into()),
        rate: Some((limit, per_ms)),
        ..task("b", "q", n)
    };
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(
            s.enqueue(rated(n, "api", 2, 3_600_000))
                .await
                .unwrap()
                .task
                .id,
        );
    }
    let free = s.enqueue(task("b", "q", 9)).await.unwrap().task.id;
    let got = ids_claimed(&s, "w").await;
    assert_eq!(
        got,
        vec![ids[0], ids[1], free],
        "two starts of the key in one claim, in order"
    );
    s.complete_batch(vec![
        success("w", ids[0], 1, json!(0)),
        success("w", ids[1], 1, json!(1)),
    ])
    .await
    .unwrap();
    assert!(
        s.claim_batch(claim("w2", &["q"], 10))
            .await
            .unwrap()
            .is_empty(),
        "finished or not, two started within the hour"
    );
    // A short window opens again once it has passed.
    let a = s.enqueue(rated(10, "fast", 1, 150)).await.unwrap().task.id;
    let b = s.enqueue(rated(11, "fast", 1, 150)).await.unwrap().task.id;
    let got = ids_claimed(&s, "w").await;
    assert_eq!(got, vec![a]);
    assert!(s
        .claim_batch(claim("w", &["q"], 10))
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let got = ids_claimed(&s, "w").await;
    assert_eq!(got, vec![b]);
}

/// The ids a claim of up to ten tasks from queue `q` by `worker` leases, in claim order.
async fn ids_claimed(s: &DynStore, worker: &str) -> Vec<TaskId> {
    s.claim_batch(claim(worker, &["q"], 10))
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect()
}

/// A burst of tasks due at one instant is promoted whole by one call (however the backend cuts
/// it into steps), earliest due first, and a task not yet due stays scheduled.
pub async fn a_burst_of_due_tasks_is_promoted_whole(s: DynStore) {
    let at = Utc::now() + chrono::Duration::minutes(10);
    let burst: Vec<NewTask> = (0..5_000)
        .map(|i| NewTask {
            run_at: Some(at + chrono::Duration::milliseconds(i % 7)),
            ..task("b", "burst", i)
        })
        .collect();
    s.enqueue_batch(burst).await.unwrap();
    let later = s
        .enqueue(NewTask {
            run_at: Some(at + chrono::Duration::hours(1)),
            ..task("b", "burst", -1)
        })
        .await
        .unwrap()
        .task
        .id;
    assert_eq!(
        s.promote_due(at + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        5_000
    );
    let stats = s.queue_stats(at).await.unwrap();
    let burst = stats.iter().find(|q| q.name == "burst").unwrap();
    assert_eq!((burst.queued, burst.scheduled), (5_000, 1));
    assert_eq!(
        s.get_task(later).await.unwrap().unwrap().status,
        TaskStatus::Scheduled
    );
    assert_eq!(
        s.promote_due(at + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        0
    );
}

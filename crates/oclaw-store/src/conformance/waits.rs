//! Waiting tasks: parks that hold no lease, events (early ones kept), approvals (who may decide,
//! N of M, refusals recorded), deadlines, child tasks waking their parents, cancelling a tree,
//! and retrying from a step.

use std::time::Duration;

use chrono::Utc;
use oclaw_core::{TaskId, TaskStatus};
use serde_json::{json, Value};

use super::{claim, failure, success, task, DynStore};
use crate::waits::{
    Decision, NewEvent, NewWait, OnTimeout, Park, Parked, WaitFilter, WaitKind, WaitStatus,
};
use crate::StoreError;

fn wait(kind: WaitKind, step: &str, index: u32) -> NewWait {
    NewWait {
        step: step.into(),
        index,
        kind,
        name: None,
        key: None,
        deadline: None,
        on_timeout: OnTimeout::Output(Value::Null),
        detail: json!({}),
    }
}

fn event_wait(name: &str, key: &str) -> NewWait {
    NewWait {
        name: Some(name.into()),
        key: Some(key.into()),
        ..wait(WaitKind::Event, "delivered", 1)
    }
}

fn event(name: &str, key: &str, data: Value) -> NewEvent {
    NewEvent {
        name: name.into(),
        key: key.into(),
        data,
        retention: Duration::from_secs(3600),
    }
}

/// Enqueues a task on queue `q`, claims it as `w`, and parks it on `wait`.
async fn parked(
    s: &DynStore,
    q: &str,
    w: NewWait,
    child: Option<oclaw_core::NewTask>,
) -> (TaskId, Parked) {
    let id = s.enqueue(task("b", q, 1)).await.unwrap().task.id;
    let c = s.claim_batch(claim("w", &[q], 1)).await.unwrap();
    assert_eq!(c[0].id, id);
    let p = s
        .park(Park {
            id,
            worker: "w".into(),
            attempt: c[0].attempt,
            wait: w,
            child,
        })
        .await
        .unwrap();
    (id, p)
}

async fn status(s: &DynStore, id: TaskId) -> TaskStatus {
    s.get_task(id).await.unwrap().unwrap().status
}

pub async fn a_parked_task_holds_no_lease_and_an_event_resumes_it_with_its_data(s: DynStore) {
    let (id, p) = parked(&s, "q", event_wait("parcel.delivered", "o-1"), None).await;
    assert!(matches!(p, Parked::Waiting { child: None, .. }), "{p:?}");
    let t = s.get_task(id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Waiting);
    assert_eq!(t.attempts, 0, "a park is not a failed attempt");
    assert!(t.worker.is_none());
    // Not claimable, not requeued by lease expiry.
    assert!(s
        .claim_batch(claim("w2", &["q"], 10))
        .await
        .unwrap()
        .is_empty());
    s.requeue_expired(Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(status(&s, id).await, TaskStatus::Waiting);
    let stats = s.queue_stats(Utc::now()).await.unwrap();
    assert_eq!(stats.iter().find(|q| q.name == "q").unwrap().waiting, 1);
    // Another key wakes nobody (and is kept).
    let other = s
        .send_event(event("parcel.delivered", "o-2", json!({})))
        .await
        .unwrap();
    assert!(other.woke.is_empty() && other.kept.is_some());
    assert_eq!(status(&s, id).await, TaskStatus::Waiting);
    let r = s
        .send_event(event("parcel.delivered", "o-1", json!({"at": "door"})))
        .await
        .unwrap();
    assert_eq!(r.woke, vec![id]);
    assert!(r.kept.is_none());
    assert_eq!(status(&s, id).await, TaskStatus::Queued);
    let again = s.claim_batch(claim("w2", &["q"], 1)).await.unwrap();
    assert_eq!(again[0].id, id);
    assert_eq!(again[0].attempt, 1);
    let cp = again[0]
        .checkpoints
        .iter()
        .find(|c| c.step == "delivered")
        .expect("the wait's outcome is the step's checkpoint");
    assert_eq!(cp.output, json!({"at": "door"}));
    assert_eq!(cp.index, 1);
    let waits = s
        .list_waits(WaitFilter {
            task: Some(id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0].status, WaitStatus::Done);
    assert_eq!(waits[0].output, Some(json!({"at": "door"})));
}

pub async fn an_event_that_comes_first_is_kept_for_the_wait(s: DynStore) {
    let kept = s
        .send_event(event("paid", "inv-9", json!({"amount": 5})))
        .await
        .unwrap();
    assert!(kept.kept.is_some());
    let (id, p) = parked(&s, "q", event_wait("paid", "inv-9"), None).await;
    assert!(matches!(p, Parked::Resumed { .. }), "{p:?}");
    assert_eq!(status(&s, id).await, TaskStatus::Queued);
    // The kept event was used once: a second wait on the key waits.
    let (second, p) = parked(&s, "q2", event_wait("paid", "inv-9"), None).await;
    assert!(matches!(p, Parked::Waiting { .. }), "{p:?}");
    assert_eq!(status(&s, second).await, TaskStatus::Waiting);
    // An expired event is not kept for a wait.
    s.send_event(NewEvent {
        retention: Duration::ZERO,
        ..event("late", "k", json!(1))
    })
    .await
    .unwrap();
    let (third, p) = parked(&s, "q3", event_wait("late", "k"), None).await;
    assert!(matches!(p, Parked::Waiting { .. }), "{p:?}");
    assert_eq!(status(&s, third).await, TaskStatus::Waiting);
}

pub async fn a_park_without_the_lease_is_fenced(s: DynStore) {
    let id = s.enqueue(task("b", "q", 1)).await.unwrap().task.id;
    let c = s.claim_batch(claim("w", &["q"], 1)).await.unwrap();
    s.cancel(id).await.unwrap();
    let p = s
        .park(Park {
            id,
            worker: "w".into(),
            attempt: c[0].attempt,
            wait: event_wait("e", "k"),
            child: None,
        })
        .await
        .unwrap();
    assert_eq!(p, Parked::Fenced);
    assert_eq!(status(&s, id).await, TaskStatus::Cancelled);
    assert!(s
        .list_waits(WaitFilter {
            task: Some(id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
}

pub async fn approvals_count_allowed_approvers_and_record_refusals(s: DynStore) {
    let w = NewWait {
        detail: json!({"message": "Refund 900?", "approvers": ["ann", "bob", "cy"], "required": 2}),
        ..wait(WaitKind::Approval, "ok", 0)
    };
    let (id, p) = parked(&s, "q", w, None).await;
    let Parked::Waiting { wait: aid, .. } = p else {
        panic!("{p:?}")
    };
    let pending = s
        .list_waits(WaitFilter {
            kind: Some(WaitKind::Approval),
            status: Some(WaitStatus::Pending),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].detail["message"], "Refund 900?");
    assert_eq!(pending[0].bot, "b");
    let d = |by: &str, approve| Decision {
        by: by.into(),
        approve,
        comment: Some(format!("{by} says")),
    };
    let r = s.decide(aid, d("ann", true)).await.unwrap();
    assert_eq!(r.status, WaitStatus::Pending);
    let err = s.decide(aid, d("eve", true)).await.unwrap_err();
    assert!(matches!(err, StoreError::NotAllowed(_)), "{err:?}");
    assert_eq!(err.code().code(), "OC-2019");
    assert_eq!(status(&s, id).await, TaskStatus::Waiting);
    let r = s.decide(aid, d("bob", true)).await.unwrap();
    assert_eq!(r.status, WaitStatus::Done);
    let out = r.output.unwrap();
    assert_eq!(out["approved"], true);
    assert_eq!(out["by"], "bob");
    assert_eq!(out["approvers"], json!(["ann", "bob"]));
    let decisions = r.decisions.as_array().unwrap();
    assert_eq!(
        decisions.len(),
        3,
        "the refusal is recorded too: {decisions:?}"
    );
    assert_eq!(decisions[1]["by"], "eve");
    assert_eq!(decisions[1]["allowed"], false);
    assert!(decisions[0]["at"].is_string());
    assert_eq!(status(&s, id).await, TaskStatus::Queued);
    let late = s.decide(aid, d("cy", false)).await.unwrap_err();
    assert!(
        matches!(late, StoreError::WaitNotPending { .. }),
        "{late:?}"
    );
    assert_eq!(late.code().code(), "OC-2020");
    let none = s.decide(aid + 1000, d("ann", true)).await.unwrap_err();
    assert_eq!(none.code().code(), "OC-2018");
}

pub async fn deadlines_end_waits_as_on_timeout_says(s: DynStore) {
    let past = Utc::now() - chrono::Duration::seconds(1);
    let (going_on, _) = parked(
        &s,
        "q1",
        NewWait {
            deadline: Some(past),
            on_timeout: OnTimeout::Output(json!({"approved": false})),
            ..wait(WaitKind::Approval, "ok", 2)
        },
        None,
    )
    .await;
    let (failing, _) = parked(
        &s,
        "q2",
        NewWait {
            deadline: Some(past),
            on_timeout: OnTimeout::Fail(oclaw_core::TaskError {
                code: "OC-4041".into(),
                message: "no event".into(),
            }),
            ..event_wait("e", "k")
        },
        None,
    )
    .await;
    let (later, _) = parked(
        &s,
        "q3",
        NewWait {
            deadline: Some(Utc::now() + chrono::Duration::hours(1)),
            ..wait(WaitKind::Sleep, "nap", 0)
        },
        None,
    )
    .await;
    let due = s
        .next_due_at()
        .await
        .unwrap()
        .expect("deadlines are due times");
    assert!(
        due <= past + chrono::Duration::milliseconds(1),
        "{due} vs {past}"
    );
    s.promote_due(Utc::now()).await.unwrap();
    assert_eq!(status(&s, going_on).await, TaskStatus::Queued);
    let f = s.get_task(failing).await.unwrap().unwrap();
    assert_eq!(f.status, TaskStatus::Failed);
    assert_eq!(f.error.unwrap().code, "OC-4041");
    assert_eq!(status(&s, later).await, TaskStatus::Waiting);
    let w = s
        .list_waits(WaitFilter {
            task: Some(going_on),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(w[0].status, WaitStatus::TimedOut);
    // A decision after the timeout is refused.
    let err = s
        .decide(
            w[0].id,
            Decision {
                by: "ann".into(),
                approve: true,
                comment: None,
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::WaitNotPending {
                status: "timed_out",
                ..
            }
        ),
        "{err:?}"
    );
    let c = s.claim_batch(claim("w2", &["q1"], 1)).await.unwrap();
    assert_eq!(c[0].checkpoints[0].output, json!({"approved": false}));
}

pub async fn a_child_wakes_its_parent_with_its_output_or_fails_it(s: DynStore) {
    let child = oclaw_core::NewTask::new("child", "kids", json!({"order": 7}));
    let (parent, p) = parked(
        &s,
        "q",
        wait(WaitKind::Child, "invoice", 3),
        Some(child.clone()),
    )
    .await;
    let Parked::Waiting {
        child: Some(kid), ..
    } = p
    else {
        panic!("{p:?}")
    };
    assert_eq!(s.get_task(kid).await.unwrap().unwrap().parent, Some(parent));
    let c = s.claim_batch(claim("k", &["kids"], 1)).await.unwrap();
    assert_eq!(c[0].parent, Some(parent));
    let mut done = success("k", kid, c[0].attempt, json!({"invoice": "INV-7"}));
    done.parent = c[0].parent;
    s.complete_batch(vec![done]).await.unwrap();
    assert_eq!(status(&s, parent).await, TaskStatus::Queued);
    let again = s.claim_batch(claim("w", &["q"], 1)).await.unwrap();
    assert_eq!(again[0].checkpoints[0].output, json!({"invoice": "INV-7"}));

    // A child that fails permanently fails its parent.
    let (parent2, p) = parked(
        &s,
        "q2",
        wait(WaitKind::Child, "invoice", 3),
        Some(child.clone()),
    )
    .await;
    let Parked::Waiting {
        child: Some(kid2), ..
    } = p
    else {
        panic!("{p:?}")
    };
    let c = s.claim_batch(claim("k", &["kids"], 1)).await.unwrap();
    let mut failed = failure("k", kid2, c[0].attempt, false);
    failed.parent = c[0].parent;
    s.complete_batch(vec![failed]).await.unwrap();
    let t = s.get_task(parent2).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Failed);
    let e = t.error.unwrap();
    assert_eq!(e.code, "OC-4042");
    assert!(
        e.message.contains(&kid2.to_string()) && e.message.contains("OC-4013"),
        "{}",
        e.message
    );

    // A child whose lease runs out on its last attempt dies, and so fails its parent.
    let one = oclaw_core::NewTask {
        max_attempts: 1,
        ..child.clone()
    };
    let (parent3, p) = parked(&s, "q3", wait(WaitKind::Child, "invoice", 3), Some(one)).await;
    let Parked::Waiting { child: Some(_), .. } = p else {
        panic!("{p:?}")
    };
    s.claim_batch(claim("k", &["kids"], 1)).await.unwrap();
    s.requeue_expired(Utc::now() + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(status(&s, parent3).await, TaskStatus::Failed);
}

pub async fn cancelling_a_parent_cancels_its_children_and_their_waits(s: DynStore) {
    let child = oclaw_core::NewTask::new("child", "kids", json!({}));
    let (parent, p) = parked(&s, "q", wait(WaitKind::Child, "call", 0), Some(child)).await;
    let Parked::Waiting {
        child: Some(kid), ..
    } = p
    else {
        panic!("{p:?}")
    };
    // The child runs and parks on an approval of its own.
    let c = s.claim_batch(claim("k", &["kids"], 1)).await.unwrap();
    s.park(Park {
        id: kid,
        worker: "k".into(),
        attempt: c[0].attempt,
        wait: wait(WaitKind::Approval, "ok", 0),
        child: None,
    })
    .await
    .unwrap();
    let t = s.cancel(parent).await.unwrap();
    assert_eq!(t.status, TaskStatus::Cancelled);
    assert_eq!(status(&s, kid).await, TaskStatus::Cancelled);
    let pending = s
        .list_waits(WaitFilter {
            status: Some(WaitStatus::Pending),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");

    // Cancelling a child fails its waiting parent.
    let child = oclaw_core::NewTask::new("child", "kids2", json!({}));
    let (parent2, p) = parked(&s, "q2", wait(WaitKind::Child, "call", 0), Some(child)).await;
    let Parked::Waiting {
        child: Some(kid2), ..
    } = p
    else {
        panic!("{p:?}")
    };
    s.cancel(kid2).await.unwrap();
    let t = s.get_task(parent2).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.error.unwrap().code, "OC-4042");
}

pub async fn retry_from_a_step_keeps_only_earlier_checkpoints(s: DynStore) {
    let id = s.enqueue(task("b", "q", 1)).await.unwrap().task.id;
    let c = s.claim_batch(claim("w", &["q"], 1)).await.unwrap();
    for (i, step) in ["a", "b", "c"].iter().enumerate() {
        s.save_checkpoint(id, step, i as u32, &json!(i))
            .await
            .unwrap();
    }
    s.save_checkpoint(id, "b@0", 1, &json!("item"))
        .await
        .unwrap();
    let err = s.retry_from(id, 1).await.unwrap_err();
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
    s.complete_batch(vec![success("w", id, c[0].attempt, json!("out"))])
        .await
        .unwrap();
    let t = s.retry_from(id, 1).await.unwrap();
    assert_eq!(t.status, TaskStatus::Queued);
    assert!(t.output.is_none());
    let kept: Vec<&str> = t.checkpoints.iter().map(|c| c.step.as_str()).collect();
    assert_eq!(kept, vec!["a"]);
    let again = s.claim_batch(claim("w", &["q"], 1)).await.unwrap();
    assert_eq!(
        again[0].checkpoints.len(),
        1,
        "a retried task resumes after the kept checkpoints"
    );
}

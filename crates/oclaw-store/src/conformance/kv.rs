//! Key-value entries with expiry, trigger marks, and the purge of old tasks and expired entries.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::Utc;
use oclaw_core::TaskId;
use serde_json::json;

use super::{claim, failure, success, task, DynStore};

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
    // A namespace's live entries, in key order, never another namespace's or an expired one.
    s.kv_set("list", "b", &json!("second"), None).await.unwrap();
    s.kv_set("list", "a", &json!({"first": true}), None)
        .await
        .unwrap();
    s.kv_set(
        "list",
        "c",
        &json!(3),
        Some(now + chrono::Duration::seconds(5)),
    )
    .await
    .unwrap();
    let later = now + chrono::Duration::seconds(10);
    assert_eq!(
        s.kv_list("list", later, 10).await.unwrap(),
        vec![
            ("a".to_string(), json!({"first": true})),
            ("b".to_string(), json!("second"))
        ]
    );
    assert_eq!(s.kv_list("list", now, 10).await.unwrap().len(), 3);
    assert_eq!(s.kv_list("list", now, 1).await.unwrap().len(), 1);
}

pub async fn kv_add_counts_within_a_limit_atomically(s: DynStore) {
    let now = Utc::now();
    let day = Some(now + chrono::Duration::seconds(60));
    assert_eq!(
        s.kv_add("b", "n", 40, Some(100), day, now).await.unwrap(),
        Some(40)
    );
    assert_eq!(
        s.kv_add("b", "n", 50, Some(100), day, now).await.unwrap(),
        Some(90)
    );
    // Past the limit: refused, nothing changed; a decrease (a settlement) always applies.
    assert_eq!(
        s.kv_add("b", "n", 20, Some(100), day, now).await.unwrap(),
        None
    );
    assert_eq!(
        s.kv_add("b", "n", -30, Some(100), day, now).await.unwrap(),
        Some(60)
    );
    assert_eq!(s.kv_get("b", "n", now).await.unwrap(), Some(json!(60)));
    // Expired: counts from zero again, with a new expiry.
    let later = now + chrono::Duration::seconds(61);
    let next_day = Some(later + chrono::Duration::seconds(60));
    assert_eq!(
        s.kv_add("b", "n", 70, Some(100), next_day, later)
            .await
            .unwrap(),
        Some(70)
    );
    assert_eq!(
        s.kv_add(
            "b",
            "n",
            30,
            Some(100),
            next_day,
            later + chrono::Duration::seconds(30)
        )
        .await
        .unwrap(),
        Some(100)
    );
    // Concurrent additions neither lose one nor pass the limit.
    let adds: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.kv_add("b", "c", 7, Some(100), None, Utc::now())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut granted = 0;
    for a in adds {
        if a.await.unwrap().is_some() {
            granted += 1;
        }
    }
    assert_eq!(granted, 14, "100 / 7 additions fit");
    assert_eq!(
        s.kv_get("b", "c", Utc::now()).await.unwrap(),
        Some(json!(98))
    );
}

pub async fn trigger_marks_persist(s: DynStore) {
    let at = Utc::now();
    s.set_trigger_mark("bot/0", at).await.unwrap();
    let marks = s.trigger_marks().await.unwrap();
    assert_eq!(marks["bot/0"].timestamp_millis(), at.timestamp_millis());
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

//! The node registry and leadership terms.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::json;

use super::DynStore;

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
    // Terms long enough that no pause of a busy machine lapses them between two calls.
    let term = Duration::from_secs(30);
    assert!(s.acquire_leadership("scheduler", "a", term).await.unwrap());
    assert!(!s.acquire_leadership("scheduler", "b", term).await.unwrap());
    assert!(
        s.acquire_leadership("scheduler", "a", term).await.unwrap(),
        "renewal"
    );
    // Other roles are independent.
    assert!(s.acquire_leadership("other", "b", term).await.unwrap());
    // A renewal with a short term, left to lapse: then it can be taken.
    let short = Duration::from_millis(200);
    assert!(s.acquire_leadership("scheduler", "a", short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
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

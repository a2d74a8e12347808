//! The store conformance suite against the real PostgreSQL (`OCLAW_TEST_POSTGRES_URL`, default
//! the machine's `test` database), each case in a schema of its own, plus PostgreSQL-specific
//! behaviour: migrations racing, wake-ups across processes (two stores), schema refusal.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use oclaw_store::postgres::{PgOptions, PgStore};
use oclaw_store::testing::fresh_postgres_url;
use oclaw_store::{Store, StoreError, TaskQueue};

async fn open_fresh() -> Option<Arc<dyn Store>> {
    let url = fresh_postgres_url().await?;
    Some(Arc::new(
        PgStore::open(&url, PgOptions::default()).await.unwrap(),
    ))
}

oclaw_store::store_conformance_tests!(optional open_fresh());

#[tokio::test]
async fn nodes_starting_together_migrate_once() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let opens = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PgStore::open(&url, PgOptions::default()).await })
    });
    let mut applied = 0;
    for o in opens {
        applied += o.await.unwrap().unwrap().migrations_applied();
    }
    // Every migration applied by exactly one of them; a fifth start finds nothing to do.
    assert_eq!(applied as i64, oclaw_store::postgres::schema_version());
    let again = PgStore::open(&url, PgOptions::default()).await.unwrap();
    assert_eq!(again.migrations_applied(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakeups_cross_between_processes() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    // Two stores on one schema stand for two processes: what one writes wakes the other.
    let a = PgStore::open(&url, PgOptions::default()).await.unwrap();
    let b = PgStore::open(&url, PgOptions::default()).await.unwrap();
    let queued = b.wakeups().queued.notified();
    let mut finished = b.wakeups().finished.subscribe();
    let t = a
        .enqueue(oclaw_core::NewTask::new("bot", "q", serde_json::json!({})))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), queued)
        .await
        .expect("queued wake-up reaches the other store");
    let claimed = b
        .claim_batch(oclaw_store::ClaimRequest {
            worker: "w".into(),
            queues: vec!["q".into()],
            limit: 10,
            lease: Duration::from_secs(30),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    b.complete_batch(vec![oclaw_store::Completion {
        id: t.task.id,
        worker: "w".into(),
        attempt: 1,
        outcome: oclaw_store::Outcome::Succeeded(serde_json::json!(1)),
        kv: Vec::new(),
        follow_ups: Vec::new(),
        parent: None,
    }])
    .await
    .unwrap();
    let ids = tokio::time::timeout(Duration::from_secs(5), finished.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&ids[..], &[t.task.id]);
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let s = PgStore::open(&url, PgOptions::default()).await.unwrap();
    let schema = s.schema().to_string();
    drop(s);
    let (client, conn) = tokio_postgres::connect(
        &oclaw_store::testing::postgres_base_url(),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    // A later release's additive migration (min_compatible at or below ours): this binary runs
    // on it unchanged.
    client
        .batch_execute(&format!(
            "UPDATE \"{schema}\".oclaw_meta SET value = '99' WHERE key = 'schema_version'; \
             CREATE TABLE \"{schema}\".from_the_future (id BIGINT)"
        ))
        .await
        .unwrap();
    let s = PgStore::open(&url, PgOptions::default()).await.unwrap();
    assert_eq!(s.migrations_applied(), 0);
    let id = s
        .enqueue(oclaw_core::NewTask::new("b", "q", serde_json::json!({})))
        .await
        .unwrap()
        .task
        .id;
    assert!(s.get_task(id).await.unwrap().is_some());
    drop(s);
    // One this binary cannot read: refused, naming the release to upgrade to.
    client
        .batch_execute(&format!(
            "UPDATE \"{schema}\".oclaw_meta SET value = '98' WHERE key = 'min_compatible'; \
             UPDATE \"{schema}\".oclaw_meta SET value = '9.9.0' WHERE key = 'written_by'"
        ))
        .await
        .unwrap();
    let err = PgStore::open(&url, PgOptions::default())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                needs: 98,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("oclaw 9.9.0"), "{err}");
    assert_eq!(err.code().code(), "OC-4003");
}

#[tokio::test]
async fn unreachable_database_is_oc_4001() {
    let err = PgStore::open(
        "postgres://postgres@127.0.0.1:1/test",
        PgOptions {
            pool_size: 2,
            timeout: Duration::from_secs(2),
        },
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.code().code(), "OC-4001", "{err:?}");
    assert!(err.is_transient());
}

/// Nodes racing to insert one idempotency key: the unique index refuses all but one insert
/// (SQLSTATE 23505, `StoreError::Duplicate`), and each loser answers the winner's task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_racing_on_one_idempotency_key_get_one_task() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let mut stores = Vec::new();
    for _ in 0..6 {
        stores.push(Arc::new(
            PgStore::open(&url, PgOptions::default()).await.unwrap(),
        ));
    }
    for round in 0..10 {
        let key = format!("race-{round}");
        let barrier = Arc::new(tokio::sync::Barrier::new(stores.len()));
        let racers: Vec<_> = stores
            .iter()
            .map(|s| {
                let (s, key, barrier) = (s.clone(), key.clone(), barrier.clone());
                tokio::spawn(async move {
                    let mut t = oclaw_core::NewTask::new("b", "q", serde_json::json!({}));
                    t.idempotency_key = Some(key);
                    barrier.wait().await;
                    s.enqueue(t).await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for r in racers {
            answers.push(r.await.unwrap().unwrap());
        }
        let created = answers.iter().filter(|a| a.created).count();
        assert_eq!(
            created, 1,
            "round {round}: {created} tasks created for one key"
        );
        assert!(
            answers.iter().all(|a| a.task.id == answers[0].task.id),
            "round {round}: different tasks for one key"
        );
    }
}

/// A heartbeat never waits for a row another transaction holds: a worker's heartbeat and its
/// own completion write had locked overlapping tasks in opposite orders, and PostgreSQL broke
/// the cycle by failing the completion (40P01, seen under load with two worker processes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_skip_rows_a_completion_holds() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let s = PgStore::open(&url, PgOptions::default()).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let t = oclaw_core::NewTask::new("b", "q", serde_json::json!({}));
        ids.push(s.enqueue(t).await.unwrap().task.id);
    }
    let claimed = s
        .claim_batch(oclaw_store::ClaimRequest {
            worker: "w1".into(),
            queues: vec!["q".into()],
            limit: 2,
            lease: Duration::from_secs(30),
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let (mut client, conn) = tokio_postgres::connect(
        &oclaw_store::testing::postgres_base_url(),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    // The first task's row locked, as a completion holds it until it commits.
    let tx = client.transaction().await.unwrap();
    tx.execute(
        &format!(
            "UPDATE \"{}\".tasks SET error_message = error_message WHERE id = $1",
            s.schema()
        ),
        &[&ids[0].0],
    )
    .await
    .unwrap();
    let renewed = tokio::time::timeout(
        Duration::from_secs(10),
        s.extend_leases("w1", &ids, Duration::from_secs(60)),
    )
    .await
    .expect("the heartbeat does not wait for the locked row")
    .unwrap();
    assert_eq!(
        renewed, 1,
        "the row not held is renewed, the held one skipped"
    );
    tx.rollback().await.unwrap();
    assert_eq!(
        s.extend_leases("w1", &ids, Duration::from_secs(60))
            .await
            .unwrap(),
        2,
        "once the lock is gone, the next heartbeat renews both"
    );
}

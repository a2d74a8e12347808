//! Tenants, tokens and the audit log: fair claims across tenants, tokens kept hashed and
//! revoked, an audit chain that holds and tells an edit.

use std::collections::HashMap;

use chrono::Utc;
use oclaw_core::NewTask;

use super::{claim, task, DynStore};
use crate::access::{token_hash, verify_chain, AuditFilter, NewAudit, NewToken, GENESIS};
use crate::StoreError;

fn of(tenant: &str, n: i64) -> NewTask {
    NewTask {
        tenant: tenant.into(),
        ..task("b", "shared", n)
    }
}

pub async fn claims_share_a_queue_fairly_among_tenants(store: DynStore) {
    // Tenant `big` floods the queue first; `small` comes after with a handful.
    store
        .enqueue_batch((0..500).map(|n| of("big", n)).collect())
        .await
        .unwrap();
    let small: Vec<_> = store
        .enqueue_batch((0..4).map(|n| of("small", n)).collect())
        .await
        .unwrap();
    let got = store
        .claim_batch(claim("w", &["shared"], 10))
        .await
        .unwrap();
    assert_eq!(got.len(), 10, "the limit is filled");
    let order: Vec<i64> = got.iter().map(|t| t.input["n"].as_i64().unwrap()).collect();
    // The batch starts with the tenants taking turns: big's first, small's first, big's second...
    let firsts: Vec<bool> = got
        .iter()
        .take(8)
        .map(|t| small.iter().any(|s| s.task.id == t.id))
        .collect();
    assert_eq!(
        firsts,
        [false, true, false, true, false, true, false, true],
        "{order:?}"
    );
    let mut per: HashMap<String, usize> = HashMap::new();
    for t in &got {
        let task = store.get_task(t.id).await.unwrap().unwrap();
        *per.entry(task.tenant).or_default() += 1;
    }
    assert_eq!(
        per.get("small"),
        Some(&4),
        "every queued task of the small tenant is claimed at once: {per:?}"
    );
    assert_eq!(
        per.get("big"),
        Some(&6),
        "the rest of the batch goes to the tenant with more"
    );
    let stored = store.get_task(small[0].task.id).await.unwrap().unwrap();
    assert_eq!(stored.tenant, "small");
    // Each tenant keeps its own order (oldest first).
    let big: Vec<i64> = got
        .iter()
        .filter(|t| {
            t.input["n"].as_i64().unwrap() < 500 && !small.iter().any(|s| s.task.id == t.id)
        })
        .map(|t| t.input["n"].as_i64().unwrap())
        .collect();
    assert_eq!(big, vec![0, 1, 2, 3, 4, 5]);
    // A single tenant takes the whole batch.
    let next = store
        .claim_batch(claim("w", &["shared"], 50))
        .await
        .unwrap();
    assert_eq!(next.len(), 50);
}

pub async fn tokens_are_kept_hashed_listed_and_revoked(store: DynStore) {
    let hash = token_hash("oct_secret-one");
    assert_ne!(hash, "oct_secret-one");
    let made = store
        .token_create(NewToken {
            id: "tok_1".into(),
            name: "ci".into(),
            hash: hash.clone(),
            tenant: "acme".into(),
            role: "operator".into(),
            created_by: "config".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        (made.tenant.as_str(), made.role.as_str()),
        ("acme", "operator")
    );
    assert!(made.revoked_at.is_none());
    let again = store
        .token_create(NewToken {
            id: "tok_1".into(),
            name: "again".into(),
            hash: token_hash("other"),
            tenant: "acme".into(),
            role: "viewer".into(),
            created_by: "config".into(),
        })
        .await;
    assert!(matches!(again, Err(StoreError::Duplicate(_))), "{again:?}");
    store
        .token_create(NewToken {
            id: "tok_2".into(),
            name: "other team".into(),
            hash: token_hash("oct_secret-two"),
            tenant: "globex".into(),
            role: "viewer".into(),
            created_by: "tok_0".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        store.token_by_hash(&hash).await.unwrap().unwrap().id,
        "tok_1"
    );
    assert!(store
        .token_by_hash(&token_hash("nope"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.token_list(None).await.unwrap().len(), 2);
    let acme = store.token_list(Some("acme")).await.unwrap();
    assert_eq!(
        acme.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["tok_1"]
    );
    // Another tenant cannot revoke it; its own tenant can.
    assert!(store
        .token_revoke("tok_1", Some("globex"))
        .await
        .unwrap()
        .is_none());
    let revoked = store
        .token_revoke("tok_1", Some("acme"))
        .await
        .unwrap()
        .unwrap();
    let at = revoked.revoked_at.expect("revoked");
    let twice = store.token_revoke("tok_1", None).await.unwrap().unwrap();
    assert_eq!(
        twice.revoked_at,
        Some(at),
        "the first revocation time is kept"
    );
    assert!(store
        .token_by_hash(&hash)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    assert!(store.token_revoke("tok_9", None).await.unwrap().is_none());
}

fn change(tenant: &str, action: &str) -> NewAudit {
    NewAudit {
        at: Utc::now(),
        actor: "tok_1".into(),
        tenant: tenant.into(),
        action: action.into(),
        target: "/v1/tasks/7".into(),
        source: "127.0.0.1".into(),
        result: "200".into(),
    }
}

pub async fn the_audit_log_is_a_chain_of_hashes(store: DynStore) {
    let first = store
        .audit_append(change("acme", "POST /v1/tasks"))
        .await
        .unwrap();
    assert_eq!(first.prev_hash, GENESIS);
    // Appends from many callers at once still form one chain.
    let mut joins = Vec::new();
    for i in 0..8 {
        let s = store.clone();
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        joins.push(tokio::spawn(async move {
            s.audit_append(change(tenant, "POST /v1/tasks/7/cancel"))
                .await
                .unwrap()
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
    let all = store
        .audit_list(AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 9);
    assert_eq!(all[0], first);
    assert_eq!(verify_chain(&all), Ok(9));
    let acme = store
        .audit_list(AuditFilter {
            tenant: Some("acme".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(acme.len(), 5);
    assert!(acme.iter().all(|e| e.change.tenant == "acme"));
    let page = store
        .audit_list(AuditFilter {
            after: Some(all[6].id),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    // Retention drops the oldest; what is left still verifies from its first entry.
    let dropped = store
        .audit_purge(Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        dropped, 8,
        "the newest entry is always kept, so the chain goes on from it"
    );
    let after = store
        .audit_append(change("acme", "DELETE /v1/kb/x"))
        .await
        .unwrap();
    assert_eq!(after.prev_hash, all[8].hash);
    let left = store
        .audit_list(AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 2);
    assert_eq!(verify_chain(&left), Ok(2));
}

pub async fn secrets_are_kept_per_tenant(store: DynStore) {
    assert!(store
        .secret_put("acme", "API_KEY", vec![1, 2, 3])
        .await
        .unwrap());
    assert!(
        !store
            .secret_put("acme", "API_KEY", vec![4, 5])
            .await
            .unwrap(),
        "replaced"
    );
    assert!(store
        .secret_put("globex", "API_KEY", vec![9])
        .await
        .unwrap());
    assert!(store.secret_put("acme", "B", vec![0; 64]).await.unwrap());
    let listed = store.secret_list("acme").await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["API_KEY", "B"]
    );
    assert_eq!(
        store.secret_sealed("acme").await.unwrap(),
        vec![
            ("API_KEY".to_string(), vec![4, 5]),
            ("B".to_string(), vec![0; 64])
        ]
    );
    assert_eq!(
        store.secret_sealed("globex").await.unwrap(),
        vec![("API_KEY".to_string(), vec![9])]
    );
    assert!(store.secret_delete("acme", "API_KEY").await.unwrap());
    assert!(!store.secret_delete("acme", "API_KEY").await.unwrap());
    assert_eq!(store.secret_list("acme").await.unwrap().len(), 1);
    assert_eq!(store.secret_list("globex").await.unwrap().len(), 1);
    assert!(store.secret_list("nobody").await.unwrap().is_empty());
}

//! Property test of request decoding: thousands of mutated, truncated and random bodies and
//! paths go through the real router; none may panic or answer 5xx, and every error answer has
//! the documented shape.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use oclaw_api::{router, ApiState};
use oclaw_bots::templates::TemplateEngine;
use oclaw_bots::BotCatalog;
use tower::ServiceExt;

const SEEDS: &[&str] = &[
    r#"{"bot": "hello", "input": {"name": "Ada"}}"#,
    r#"{"bot": "hello", "input": [1, 2, {"a": null}], "priority": 5, "delay": "5s", "idempotency_key": "k"}"#,
    r#"{"tasks": [{"bot": "hello"}, {"bot": "hello", "run_at": "2030-01-01T00:00:00Z"}]}"#,
    r#"{"input": {"deep": [[[[[[[[[[1]]]]]]]]]]}}"#,
];

fn mutate(rng: &mut fastrand::Rng, seed: &str) -> Vec<u8> {
    let mut b = seed.as_bytes().to_vec();
    match rng.u8(0..6) {
        0 => b.truncate(rng.usize(0..=b.len())),
        1 => {
            for _ in 0..rng.usize(1..8) {
                let i = rng.usize(0..b.len());
                b[i] = rng.u8(..);
            }
        }
        2 => {
            let i = rng.usize(0..=b.len());
            let junk: Vec<u8> = (0..rng.usize(1..16))
                .map(|_| *rng.choice(b"{}[]\",:0123456789.eEtrufalsn\\ ").unwrap())
                .collect();
            b.splice(i..i, junk);
        }
        3 => b = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect(),
        4 => {
            b = format!(
                "{}1{}",
                "[".repeat(rng.usize(100..3000)),
                "]".repeat(rng.usize(0..3000))
            )
            .into_bytes()
        }
        _ => {
            let s = seed
                .replace("hello", &"x".repeat(rng.usize(0..300)))
                .replace("5s", "-1s");
            b = s.into_bytes();
        }
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_panics_or_answers_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let store = oclaw_store::sqlite::SqliteStore::open(
        dir.path().join("f.db").to_str().unwrap(),
        Default::default(),
    )
    .await
    .unwrap();
    let mut catalog = BotCatalog::default();
    catalog
        .load_yaml(
            "t",
            "metadata: {name: hello}\nspec: {}\n",
            &oclaw_skills::SkillRegistry::builtin(),
            &TemplateEngine::default(),
        )
        .unwrap();
    let store: Arc<dyn oclaw_store::Store> = Arc::new(store);
    let state = ApiState {
        replies: oclaw_channels::ReplyRouter::start(store.clone()),
        websocket: Default::default(),
        store,
        catalog: oclaw_bots::LiveCatalog::new(catalog),
        timeout: std::time::Duration::from_millis(50),
        tokens: Arc::new(Vec::new()),
        max_body_bytes: 64 * 1024,
        body_timeout: std::time::Duration::from_secs(5),
        metrics: Arc::default(),
        worker: None,
        scheduler: None,
        served_queues: None,
        node: serde_json::json!({}),
        event_retention: std::time::Duration::from_secs(60),
        knowledge: std::sync::Arc::new(oclaw_knowledge::KnowledgeBase::text_only()),
        quotas: Default::default(),
        secret_key: None,
        oidc: None,
        conversations: Default::default(),
        stopping: tokio::sync::watch::channel(false).1,
        conversation_history: 20,
        conversation_ttl: std::time::Duration::from_secs(60),
    };
    let app = router(state);
    let mut rng = fastrand::Rng::with_seed(0x0c1a);
    let paths = [
        "/v1/tasks",
        "/v1/tasks/batch",
        "/v1/bots/hello/invoke?timeout=10ms",
        "/v1/tasks?limit=5&cursor=T1",
        "/v1/tasks/T1/cancel",
        "/v1/events",
        "/v1/approvals/1/approve",
        "/v1/approvals/1/reject",
    ];
    for i in 0..3000 {
        let seed = SEEDS[i % SEEDS.len()];
        let body = mutate(&mut rng, seed);
        let mut path = paths[rng.usize(0..paths.len())].to_string();
        if rng.u8(0..10) == 0 {
            path = format!(
                "/v1/tasks/{}",
                String::from_utf8_lossy(&mutate(&mut rng, "T12"))
                    .replace(['/', '?', '#', ' ', '%'], "_")
            );
        }
        let method = if path.contains("limit=") {
            "GET"
        } else {
            "POST"
        };
        let Ok(req) = Request::builder()
            .method(method)
            .uri(&path)
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
        else {
            continue;
        };
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(
            status < 500,
            "{method} {path} with {:?} answered {status}: {}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&bytes)
        );
        if status >= 400 {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "error body is not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            });
            let code = v["error"]["code"]
                .as_str()
                .unwrap_or_else(|| panic!("no error code: {v}"));
            assert!(
                code.starts_with("OC-2"),
                "input errors use OC-2xxx codes, got {code} for {path}"
            );
        }
    }
}

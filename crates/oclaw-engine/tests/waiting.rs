//! Waiting steps in the engine, on a real SQLite store and a real worker: an approval, a wait
//! for an event, a durable sleep and a child bot, each parking its task without a worker slot
//! and resuming where it stopped; steps before a wait are not run again; the load-time checks.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oclaw_bots::templates::TemplateEngine;
use oclaw_bots::BotCatalog;
use oclaw_core::{NewTask, TaskId, TaskStatus};
use oclaw_engine::{Runtime, Worker, WorkerOptions, WorkerStats};
use oclaw_skills::{Skill, SkillCall, SkillContext, SkillError, SkillRegistry};
use oclaw_store::sqlite::{SqliteOptions, SqliteStore};
use oclaw_store::waits::{Decision, NewEvent, WaitFilter, WaitKind, WaitStatus};
use oclaw_store::Store;
use serde_json::{json, Value};
use tokio::sync::watch;

/// Counts its calls (a side effect a resumed task must not repeat).
struct Counter(Arc<AtomicU32>);

#[async_trait]
impl Skill for Counter {
    fn name(&self) -> &'static str {
        "test.count"
    }
    fn summary(&self) -> &'static str {
        "counts its calls"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["v"]
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(json!({"v": call.with["v"], "calls": n}))
    }
}

const BOTS: &str = r#"
apiVersion: openclaw.io/v1
kind: Bot
metadata: {name: order}
spec:
  steps:
    - id: lookup
      uses: test.count
      with: {v: "{{ input.order }}"}
    - id: ok
      approval: {message: "Refund {{ input.amount }}?", approvers: [ann, bob], timeout: 1h}
    - id: stop
      if: "{{ not steps.ok.output.approved }}"
      uses: transform
      with: {jq: '{refused: true}'}
      next: end
    - id: delivered
      wait: {event: parcel.delivered, key: "{{ input.order }}", timeout: 1h}
    - id: invoice
      uses: bot.call
      with: {bot: invoice, input: {order: "{{ input.order }}", where: "{{ steps.delivered.output.where }}"}}
    - id: done
      uses: transform
      with:
        jq: '{approved_by: .by}'
      if: "{{ false }}"
    - id: out
      uses: template
      with:
        text: "{{ steps.ok.output.by }}|{{ steps.delivered.output.where }}|{{ steps.invoice.output.number }}|{{ steps.lookup.output.calls }}"
---
apiVersion: openclaw.io/v1
kind: Bot
metadata: {name: invoice}
spec:
  steps:
    - uses: transform
      with: {jq: '{number: ("INV-" + .order), where: .where}'}
---
apiVersion: openclaw.io/v1
kind: Bot
metadata: {name: nap}
spec:
  steps:
    - id: rest
      sleep: 200ms
    - uses: transform
      with: {jq: '{rested: true}'}
"#;

struct Harness {
    store: Arc<dyn Store>,
    calls: Arc<AtomicU32>,
    stats: Arc<WorkerStats>,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// A worker on `rt` (four slots, quick polls), started; its stop switch and counters.
fn spawn_worker(rt: Runtime) -> (watch::Sender<bool>, Arc<WorkerStats>) {
    let opts = WorkerOptions {
        id: "w".into(),
        queues: vec!["default".into()],
        concurrency: 4,
        batch_enabled: true,
        batch_max: 100,
        batch_timeout: Duration::from_millis(500),
        batch_linger: Duration::from_millis(2),
        prefetch: 4,
        prefetch_lease: Duration::from_secs(5),
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(5),
    };
    let (stop, stop_rx) = watch::channel(false);
    let worker = Worker::new(opts, Arc::new(rt));
    let stats = worker.stats();
    tokio::spawn(worker.run(stop_rx));
    (stop, stats)
}

fn skills(calls: &Arc<AtomicU32>) -> SkillRegistry {
    let mut skills = SkillRegistry::builtin();
    skills.register(Arc::new(Counter(calls.clone())));
    skills
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(
            dir.path().join("w.db").to_str().unwrap(),
            SqliteOptions::default(),
        )
        .await
        .unwrap(),
    );
    let calls = Arc::new(AtomicU32::new(0));
    let skills = skills(&calls);
    let templates = TemplateEngine::default();
    let mut catalog = BotCatalog::default();
    catalog
        .load_yaml("test-bots", BOTS, &skills, &templates)
        .unwrap();
    catalog.check_calls().unwrap();
    let rt = Runtime::new(
        store.clone(),
        oclaw_bots::LiveCatalog::new(catalog),
        skills,
        templates,
        Duration::from_secs(600),
        json!({}),
    )
    .unwrap();
    let (stop, stats) = spawn_worker(rt);
    Harness {
        store,
        calls,
        stats,
        stop,
        _dir: dir,
    }
}

/// Enqueues a task for `bot` on the default queue; its id.
async fn submit(h: &Harness, bot: &str, input: Value) -> TaskId {
    h.store
        .enqueue(NewTask::new(bot, "default", input))
        .await
        .unwrap()
        .task
        .id
}

/// Waits (promoting due work as the scheduler would) until the task is in `status`.
async fn until(h: &Harness, id: TaskId, status: TaskStatus) -> oclaw_core::Task {
    for _ in 0..1000 {
        let t = h.store.get_task(id).await.unwrap().unwrap();
        if t.status == status {
            return t;
        }
        if t.status.is_terminal() {
            panic!(
                "task {id} ended {} while waiting for {status}: {t:?}",
                t.status
            );
        }
        h.store.promote_due(chrono::Utc::now()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("task {id} never became {status}");
}

async fn pending(h: &Harness, id: TaskId) -> oclaw_store::waits::WaitRecord {
    let w = h
        .store
        .list_waits(WaitFilter {
            task: Some(id),
            status: Some(WaitStatus::Pending),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    w.into_iter().next().expect("a pending wait")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_waits_for_its_approval_its_event_and_its_child_without_a_worker() {
    let h = harness().await;
    let id = submit(&h, "order", json!({"order": "o-7", "amount": 900})).await;
    let t = until(&h, id, TaskStatus::Waiting).await;
    assert!(t.worker.is_none());
    let approval = pending(&h, id).await;
    assert_eq!(approval.kind, WaitKind::Approval);
    assert_eq!(approval.step, "ok");
    assert_eq!(approval.detail["message"], "Refund 900?");
    assert!(approval.deadline.is_some());
    // Nothing runs while it waits.
    assert_eq!(h.stats.in_flight.load(Ordering::SeqCst), 0);
    assert_eq!(h.stats.parked.load(Ordering::SeqCst), 1);

    h.store
        .decide(
            approval.id,
            Decision {
                by: "bob".into(),
                approve: true,
                comment: Some("fine".into()),
            },
        )
        .await
        .unwrap();
    // Resumes, skips the refusal branch, and waits for the parcel.
    for _ in 0..500 {
        if h.store
            .list_waits(WaitFilter {
                task: Some(id),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .len()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    until(&h, id, TaskStatus::Waiting).await;
    let wait = pending(&h, id).await;
    assert_eq!(wait.kind, WaitKind::Event);
    assert_eq!(wait.name.as_deref(), Some("parcel.delivered"));
    assert_eq!(wait.key.as_deref(), Some("o-7"));

    let sent = h
        .store
        .send_event(NewEvent {
            name: "parcel.delivered".into(),
            key: "o-7".into(),
            data: json!({"where": "porch"}),
            retention: Duration::from_secs(60),
        })
        .await
        .unwrap();
    assert_eq!(sent.woke, vec![id]);
    let t = until(&h, id, TaskStatus::Succeeded).await;
    assert_eq!(t.output, Some(json!("bob|porch|INV-o-7|1")), "{t:?}");
    // The lookup ran once across three resumptions (its checkpoint was kept).
    assert_eq!(h.calls.load(Ordering::SeqCst), 1);
    let children = h
        .store
        .list_tasks(oclaw_store::TaskFilter {
            bot: Some("invoice".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].parent, Some(id));
    assert_eq!(
        children[0].trace_id, t.trace_id,
        "a child shares its parent's trace"
    );
    let waits = h
        .store
        .list_waits(WaitFilter {
            task: Some(id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(waits.len(), 3);
    assert!(
        waits.iter().all(|w| w.status == WaitStatus::Done),
        "{waits:?}"
    );
    let _ = h.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_takes_the_other_branch_and_a_durable_sleep_parks() {
    let h = harness().await;
    let id = submit(&h, "order", json!({"order": "o-8", "amount": 5})).await;
    until(&h, id, TaskStatus::Waiting).await;
    let approval = pending(&h, id).await;
    let refused = h
        .store
        .decide(
            approval.id,
            Decision {
                by: "mallory".into(),
                approve: true,
                comment: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code().code(), "OC-2019");
    h.store
        .decide(
            approval.id,
            Decision {
                by: "ann".into(),
                approve: false,
                comment: Some("no".into()),
            },
        )
        .await
        .unwrap();
    let t = until(&h, id, TaskStatus::Succeeded).await;
    assert_eq!(t.output, Some(json!({"refused": true})));

    let nap = submit(&h, "nap", json!({})).await;
    let t = until(&h, nap, TaskStatus::Waiting).await;
    assert!(t.worker.is_none());
    assert_eq!(pending(&h, nap).await.kind, WaitKind::Sleep);
    let t = until(&h, nap, TaskStatus::Succeeded).await;
    assert_eq!(t.output, Some(json!({"rested": true})));
    let slept = &t
        .checkpoints
        .iter()
        .find(|c| c.step == "rest")
        .unwrap()
        .output;
    assert!(slept["slept_until"].is_string(), "{slept}");
    let _ = h.stop.send(true);
}

fn load(text: &str) -> Result<usize, String> {
    let calls = Arc::new(AtomicU32::new(0));
    let skills = skills(&calls);
    let mut catalog = BotCatalog::default();
    catalog
        .load_yaml("t", text, &skills, &TemplateEngine::default())
        .map_err(|e| e.to_string())?;
    catalog.check_calls().map_err(|e| e.to_string())?;
    Ok(catalog.len())
}

#[test]
fn cycles_of_bot_calls_unknown_callees_and_fanned_out_waits_are_refused_at_load() {
    let bot = |name: &str, callee: &str| {
        format!(
            "apiVersion: openclaw.io/v1\nkind: Bot\nmetadata: {{name: {name}}}\nspec:\n  steps:\n    - uses: bot.call\n      with: {{bot: {callee}}}\n"
        )
    };
    let cycle = format!(
        "{}---\n{}---\n{}",
        bot("a", "b"),
        bot("b", "c"),
        bot("c", "a")
    );
    let e = load(&cycle).unwrap_err();
    assert!(e.contains("cycle") && e.contains("a → b → c → a"), "{e}");
    assert!(e.contains("OC-1005"), "{e}");
    let e = load(&bot("a", "nobody")).unwrap_err();
    assert!(e.contains("`nobody`, which is not loaded"), "{e}");
    let e = load(&bot("a", "\"{{ input.bot }}\"")).unwrap_err();
    assert!(e.contains("literal bot name"), "{e}");
    let fanned = "apiVersion: openclaw.io/v1\nkind: Bot\nmetadata: {name: f}\nspec:\n  steps:\n    - for_each: \"{{ input.xs }}\"\n      approval: {message: hi}\n";
    let e = load(fanned).unwrap_err();
    assert!(e.contains("cannot fan out"), "{e}");
    let both = "apiVersion: openclaw.io/v1\nkind: Bot\nmetadata: {name: f}\nspec:\n  steps:\n    - uses: log\n      wait: {event: e, key: k}\n";
    let e = load(both).unwrap_err();
    assert!(
        e.contains("more than one of uses, approval, wait and sleep"),
        "{e}"
    );
    let bad = "apiVersion: openclaw.io/v1\nkind: Bot\nmetadata: {name: f}\nspec:\n  steps:\n    - approval: {message: hi, approvers: [a], required: 2}\n";
    let e = load(bad).unwrap_err();
    assert!(e.contains("required is 2"), "{e}");
    assert!(load(&format!(
        "{}---\n{}",
        bot("a", "b"),
        "apiVersion: openclaw.io/v1\nkind: Bot\nmetadata: {name: b}\nspec: {}\n"
    ))
    .is_ok());
}

const V1: &str = r#"
apiVersion: openclaw.io/v1
kind: Bot
metadata: {name: versioned}
spec:
  steps:
    - id: ok
      approval: {message: "go?"}
    - id: out
      uses: template
      with: {value: "v1 {{ steps.ok.output.by }}"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_to_its_end_on_the_bot_revision_it_began_with() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(
            dir.path().join("v.db").to_str().unwrap(),
            SqliteOptions::default(),
        )
        .await
        .unwrap(),
    );
    let calls = Arc::new(AtomicU32::new(0));
    let skills = skills(&calls);
    let templates = TemplateEngine::default();
    let catalog = |text: &str| {
        let mut c = BotCatalog::default();
        c.load_yaml("v", text, &skills, &templates).unwrap();
        c
    };
    let keep = |c: &BotCatalog| {
        let bot = c.get("versioned").unwrap();
        (bot.revision.clone(), bot.definition.clone())
    };
    let v1 = catalog(V1);
    let v2_text = V1.replace("v1 {{", "v2 {{");
    let v2 = catalog(&v2_text);
    let (rev1, def1) = keep(&v1);
    let (rev2, def2) = keep(&v2);
    assert_ne!(rev1, rev2);
    assert_eq!(
        rev1,
        keep(&catalog(V1)).0,
        "a revision is a hash of the definition"
    );
    for (rev, def) in [(&rev1, &def1), (&rev2, &def2)] {
        store
            .kv_set(oclaw_engine::REVISIONS, rev, def, None)
            .await
            .unwrap();
    }
    let live = oclaw_bots::LiveCatalog::new(v1);
    let rt = Runtime::new(
        store.clone(),
        live.clone(),
        skills.clone(),
        TemplateEngine::default(),
        Duration::from_secs(60),
        json!({}),
    )
    .unwrap();
    let (stop, stats) = spawn_worker(rt);
    let h = Harness {
        store: store.clone(),
        calls,
        stats,
        stop,
        _dir: dir,
    };
    let submit = |live: &Arc<oclaw_bots::LiveCatalog>| {
        let mut t = NewTask::new("versioned", "default", json!({}));
        live.load().get("versioned").unwrap().stamp(&mut t);
        t
    };
    let old = store.enqueue(submit(&live)).await.unwrap().task.id;
    until(&h, old, TaskStatus::Waiting).await;
    // The bot changes while the task waits.
    live.replace(catalog(&v2_text));
    let new = store.enqueue(submit(&live)).await.unwrap().task.id;
    until(&h, new, TaskStatus::Waiting).await;
    for id in [old, new] {
        let a = pending(&h, id).await;
        store
            .decide(
                a.id,
                Decision {
                    by: "ann".into(),
                    approve: true,
                    comment: None,
                },
            )
            .await
            .unwrap();
    }
    let t = until(&h, old, TaskStatus::Succeeded).await;
    assert_eq!(
        t.output,
        Some(json!("v1 ann")),
        "the old task finished on its revision"
    );
    let t = until(&h, new, TaskStatus::Succeeded).await;
    assert_eq!(t.output, Some(json!("v2 ann")));
    let _ = h.stop.send(true);
}

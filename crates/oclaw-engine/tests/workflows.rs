//! Workflow steps in the engine, on a real SQLite store: `for_each` fan-out (item order,
//! concurrency, checkpoints per item so a retry runs only what is not done, the two failure
//! policies, bad input), branching with `switch` and `next`, and the load-time checks.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use oclaw_bots::templates::TemplateEngine;
use oclaw_bots::BotCatalog;
use oclaw_core::{NewTask, TaskStatus};
use oclaw_engine::{Runtime, Worker, WorkerOptions};
use oclaw_skills::{Skill, SkillCall, SkillContext, SkillError, SkillRegistry};
use oclaw_store::sqlite::{SqliteOptions, SqliteStore};
use oclaw_store::Store;
use serde_json::{json, Value};
use tokio::sync::watch;

#[derive(Default)]
struct Log {
    /// `(index, value)` of every call, in the order the calls started.
    calls: Vec<(u64, Value)>,
    in_flight: usize,
    most_at_once: usize,
    /// Calls per index.
    tries: HashMap<u64, u32>,
}

/// Records each call; fails items listed in `fail_once` on their first call and those in
/// `fail_always` every time. Each call waits (up to 5 s) until some other call has been in
/// flight with it, so a fan-out that runs items one at a time shows `most_at_once == 1`.
struct Item {
    log: Arc<Mutex<Log>>,
    wait_for_company: bool,
}

#[async_trait]
impl Skill for Item {
    fn name(&self) -> &'static str {
        "test.item"
    }
    fn summary(&self) -> &'static str {
        "records its calls"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["i", "v", "fail_once", "fail_always"]
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let i = call.with["i"].as_u64().unwrap();
        let tries = {
            let mut log = self.log.lock().unwrap();
            log.calls.push((i, call.with["v"].clone()));
            log.in_flight += 1;
            log.most_at_once = log.most_at_once.max(log.in_flight);
            let t = log.tries.entry(i).or_default();
            *t += 1;
            *t
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.wait_for_company
            && self.log.lock().unwrap().most_at_once < 2
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.log.lock().unwrap().in_flight -= 1;
        let listed = |field: &str| {
            call.with[field]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x.as_u64() == Some(i)))
        };
        if listed("fail_always") || (listed("fail_once") && tries == 1) {
            return Err(SkillError::transient(
                oclaw_core::ErrorCode::SkillFailed,
                format!("item {i} failed"),
            ));
        }
        Ok(json!({"i": i, "v": call.with["v"]}))
    }
}

const BOTS: &str = r#"
metadata: {name: route}
spec:
  steps:
    - id: kind
      uses: switch
      with: {value: "{{ input.kind }}", cases: {refund: refund, question: answer, "7": stop}, default: fallback}
    - {id: refund, uses: test.item, with: {i: 1, v: refund}, next: done}
    - {id: answer, uses: test.item, with: {i: 2, v: answer}, next: done}
    - {id: fallback, uses: test.item, with: {i: 3, v: fallback}}
    - {id: stop, uses: test.item, with: {i: 4, v: stop}, next: end}
    - {id: done, uses: test.item, with: {i: 5, v: "{{ data.v }}"}}
---
metadata: {name: fan}
spec:
  steps:
    - id: each
      for_each: "{{ input.items }}"
      concurrency: 3
      uses: test.item
      with: {i: "{{ index }}", v: "{{ item }}"}
    - id: after
      uses: template
      with: {value: "{{ steps.each.output | length }}"}
---
metadata: {name: resume}
spec:
  retry: {max_attempts: 3, initial: 10ms, max: 20ms, jitter: false}
  steps:
    - id: each
      for_each: "{{ input.items }}"
      uses: test.item
      with: {i: "{{ index }}", v: "{{ item }}", fail_once: [3]}
---
metadata: {name: collect}
spec:
  steps:
    - id: each
      for_each: "{{ input.items }}"
      on_item_error: collect
      uses: test.item
      with: {i: "{{ index }}", v: "{{ item }}", fail_always: [1]}
---
metadata: {name: doubles}
spec:
  steps:
    - {id: each, for_each: "{{ input.items }}", concurrency: 2, uses: transform, with: {jq: ". * 2"}}
---
metadata: {name: not-a-list}
spec:
  steps:
    - id: each
      for_each: "{{ input.items }}"
      uses: test.item
      with: {i: "{{ index }}", v: "{{ item }}"}
"#;

struct Harness {
    store: Arc<dyn Store>,
    log: Arc<Mutex<Log>>,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn harness(wait_for_company: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(path.to_str().unwrap(), SqliteOptions::default())
            .await
            .unwrap(),
    );
    let log = Arc::new(Mutex::new(Log::default()));
    let mut skills = SkillRegistry::builtin();
    skills.register(Arc::new(Item {
        log: log.clone(),
        wait_for_company,
    }));
    let templates = TemplateEngine::default();
    let mut catalog = BotCatalog::default();
    catalog
        .load_yaml("test-bots", BOTS, &skills, &templates)
        .unwrap();
    let rt = Runtime::new(
        store.clone(),
        oclaw_bots::LiveCatalog::new(catalog),
        skills,
        templates,
        Duration::from_secs(600),
        json!({}),
    )
    .unwrap();
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
    tokio::spawn(Worker::new(opts, Arc::new(rt)).run(stop_rx));
    Harness {
        store,
        log,
        stop,
        _dir: dir,
    }
}

async fn finish(h: &Harness, bot: &str, input: Value) -> oclaw_core::Task {
    let id = h
        .store
        .enqueue(NewTask::new(bot, "default", input))
        .await
        .unwrap()
        .task
        .id;
    for _ in 0..1000 {
        let t = h.store.get_task(id).await.unwrap().unwrap();
        if t.status.is_terminal() {
            return t;
        }
        // Retries come back as scheduled; promote them as the scheduler would.
        h.store.promote_due(chrono::Utc::now()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("task {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_each_runs_every_item_with_its_index_at_most_concurrency_at_once_in_item_order() {
    let h = harness(true).await;
    let items = json!(["a", "b", "c", "d", "e", "f", "g"]);
    let t = finish(&h, "fan", json!({"items": items})).await;
    assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
    // The step's output is every item's result in item order; the next step sees it.
    assert_eq!(t.output, Some(json!(7)));
    let each = t.checkpoints.iter().find(|c| c.step == "each").unwrap();
    let expected: Vec<Value> = "abcdefg"
        .chars()
        .enumerate()
        .map(|(i, c)| json!({"i": i, "v": c.to_string()}))
        .collect();
    assert_eq!(each.output, Value::Array(expected));
    let log = h.log.lock().unwrap();
    assert_eq!(log.calls.len(), 7);
    assert!(
        (2..=3).contains(&log.most_at_once),
        "at most 3 at once, and more than one: {}",
        log.most_at_once
    );
    let _ = h.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_item_fails_the_step_and_the_retry_runs_only_the_items_not_done() {
    let h = harness(false).await;
    let t = finish(&h, "resume", json!({"items": [10, 11, 12, 13, 14]})).await;
    assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
    assert_eq!(t.attempts, 2);
    // One at a time: 0..3 ran, 3 failed (4 never started); the retry ran 3 and 4 only.
    let order: Vec<u64> = h.log.lock().unwrap().calls.iter().map(|c| c.0).collect();
    assert_eq!(order, vec![0, 1, 2, 3, 3, 4]);
    let out: Vec<u64> = t
        .output
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["v"].as_u64().unwrap())
        .collect();
    assert_eq!(out, vec![10, 11, 12, 13, 14]);
    let _ = h.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_finishes_the_other_items_and_marks_the_failed_one() {
    let h = harness(false).await;
    let t = finish(&h, "collect", json!({"items": ["x", "y", "z"]})).await;
    assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
    assert_eq!(t.attempts, 1);
    let out = t.output.unwrap();
    assert_eq!(out[0], json!({"i": 0, "v": "x"}));
    assert_eq!(out[1]["error"]["code"], "OC-4013", "{out}");
    assert_eq!(out[1]["error"]["message"], "item 1 failed");
    assert_eq!(out[2], json!({"i": 2, "v": "z"}));
    let _ = h.stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_for_each_that_is_not_a_list_fails_at_once_with_its_code() {
    let h = harness(false).await;
    let t = finish(&h, "not-a-list", json!({"items": {"a": 1}})).await;
    assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
    assert_eq!(t.attempts, 1, "bad input is not retried");
    let error = t.error.unwrap();
    assert_eq!(error.code, "OC-4040");
    assert!(
        error.message.contains("an object, not a list"),
        "{}",
        error.message
    );
    // The item is the call's data: transform works on it.
    let t = finish(&h, "doubles", json!({"items": [1, 2, 3]})).await;
    assert_eq!(t.output, Some(json!([2, 4, 6])), "{t:?}");
    // An empty list is a list: nothing runs, the output is empty.
    let t = finish(&h, "not-a-list", json!({"items": []})).await;
    assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
    assert_eq!(t.output, Some(json!([])));
    assert!(h.log.lock().unwrap().calls.is_empty());
    let _ = h.stop.send(true);
}

#[test]
fn for_each_fields_are_checked_when_the_bot_loads() {
    let skills = SkillRegistry::builtin();
    let load = |yaml: &str| {
        BotCatalog::default()
            .load_yaml("b.yaml", yaml, &skills, &TemplateEngine::default())
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = load("metadata: {name: b}\nspec:\n  steps:\n    - {uses: log, concurrency: 2, with: {message: hi}}\n");
    assert!(e.contains("belong to a `for_each` step"), "{e}");
    let e = load("metadata: {name: b}\nspec:\n  steps:\n    - {uses: log, for_each: \"{{ input.x\", with: {message: hi}}\n");
    assert!(e.contains("does not compile"), "{e}");
    let e = load("metadata: {name: b}\nspec:\n  steps:\n    - {uses: log, for_each: \"{{ steps.later.output }}\", with: {message: hi}}\n");
    assert!(e.contains("steps.later") || e.contains("later"), "{e}");
    let e = load("metadata: {name: b}\nspec:\n  steps:\n    - {uses: log, for_each: \"{{ input.x }}\", concurrency: 0, with: {message: hi}}\n");
    assert!(e.contains("at least 1"), "{e}");
    let e = load("metadata: {name: b}\nspec:\n  steps:\n    - {uses: log, for_each: \"{{ input.x }}\", on_item_error: ignore, with: {message: hi}}\n");
    assert!(
        e.contains("on_item_error") || e.contains("fail_fast"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_takes_one_path_and_next_jumps_over_the_others() {
    let h = harness(false).await;
    let mut paths = Vec::new();
    for kind in [json!("refund"), json!("question"), json!("other"), json!(7)] {
        let before = h.log.lock().unwrap().calls.len();
        let t = finish(&h, "route", json!({ "kind": kind })).await;
        assert_eq!(t.status, TaskStatus::Succeeded, "{t:?}");
        let ran: Vec<u64> = h.log.lock().unwrap().calls[before..]
            .iter()
            .map(|c| c.0)
            .collect();
        paths.push((ran, t.output.unwrap()["v"].clone()));
    }
    assert_eq!(
        paths,
        vec![
            (vec![1, 5], json!("refund")), // refund, then `next: done`
            (vec![2, 5], json!("answer")), // answer, then `next: done`
            (vec![3, 4], json!("stop")),   // default: fallback, then on to stop, which ends
            (vec![4], json!("stop")),      // a number matches the case "7"; `next: end`
        ]
    );
    let _ = h.stop.send(true);
}

#[test]
fn jumps_are_checked_when_the_bot_loads() {
    let skills = SkillRegistry::builtin();
    let load = |steps: &str| {
        BotCatalog::default()
            .load_yaml(
                "b.yaml",
                &format!("metadata: {{name: b}}\nspec:\n  steps:\n{steps}"),
                &skills,
                &TemplateEngine::default(),
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let log = |id: &str| format!("    - {{id: {id}, uses: log, with: {{message: hi}}}}\n");
    let e = load(&format!(
        "    - {{id: s, uses: switch, with: {{value: x, cases: {{a: fallbak}}}}}}\n{}",
        log("fallback")
    ))
    .unwrap_err();
    assert!(
        e.contains("`fallbak`") && e.contains("did you mean `fallback`"),
        "{e}"
    );
    let e = load(&format!(
        "{}    - {{id: b, uses: log, with: {{message: hi}}, next: a}}\n",
        log("a")
    ))
    .unwrap_err();
    assert!(e.contains("is not after it"), "{e}");
    let e = load("    - {id: a, uses: log, with: {message: hi}, next: nowhere}\n").unwrap_err();
    assert!(e.contains("`nowhere`, is not a step"), "{e}");
    let e = load("    - {id: end, uses: log, with: {message: hi}}\n").unwrap_err();
    assert!(e.contains("`end` is not a step id"), "{e}");
    let e = load("    - {id: s, uses: switch, with: {value: x}}\n").unwrap_err();
    assert!(e.contains("cases"), "{e}");
    assert!(load(&format!(
        "    - {{id: a, uses: log, with: {{message: hi}}, next: end}}\n{}",
        log("b")
    ))
    .is_ok());
}

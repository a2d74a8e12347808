//! Distributed mode against the real PostgreSQL: api-servers, schedulers and workers as separate
//! `oclaw` processes on loopback, and the faults they must survive — a worker, the leader
//! scheduler or an api-server killed with SIGKILL, and PostgreSQL itself stopped under load
//! (that one on a private PostgreSQL instance this test starts, so other tests keep theirs).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{client, get, post, start_process, Node};
use oclaw_store::testing::fresh_postgres_url;
use serde_json::{json, Value};

const CONFIG: &str = r#"
scheduler:
  interval: 1s
  leader_lease: 2s
worker:
  concurrency: 10
  lease: 2s
  batch: {maxSize: 20}
bots:
  - metadata: {name: slow}
    spec:
      steps:
        - {id: nap, uses: sleep, with: {duration: 300ms}}
  - metadata: {name: quick}
    spec:
      steps:
        - {id: echo, uses: template, with: {value: "{{ input.i }}"}}
  - metadata: {name: bulk}
    spec:
      queue: bulk
      steps:
        - {id: nap, uses: sleep, with: {duration: 200ms}}
  - metadata: {name: keyed}
    spec:
      concurrency: {key: "{{ input.customer }}", limit: 1}
      steps:
        - {id: nap, uses: sleep, with: {duration: 150ms}}
  - metadata: {name: ticker}
    spec:
      triggers: [{every: 1s}]
      steps:
        - {id: echo, uses: template, with: {value: "{{ input.trigger.scheduled_at }}"}}
"#;

fn api_server(dir: &Path, url: &str) -> Node {
    start_process(dir, CONFIG, &["api-server", "--listen", "127.0.0.1:0"], url)
}

fn component(dir: &Path, url: &str, which: &str, id: &str) -> Node {
    start_process(dir, CONFIG, &[which, "--node-id", id], url)
}

/// Every task of the cluster, through one api-server.
async fn all_tasks(c: &reqwest::Client, base: &str, bot: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/tasks?limit=1000&bot={bot}");
        if let Some(cur) = &cursor {
            url.push_str(&format!("&cursor={cur}"));
        }
        let (code, page) = get(c, &url).await;
        assert_eq!(code, 200, "{page}");
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
}

/// Waits until every task of `bot` succeeded and there are `count` of them.
async fn wait_all_succeeded(
    c: &reqwest::Client,
    base: &str,
    bot: &str,
    count: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let tasks = all_tasks(c, base, bot).await;
        if tasks.len() == count && tasks.iter().all(|t| t["status"] == "succeeded") {
            return tasks;
        }
        if Instant::now() > deadline {
            let states: HashMap<String, usize> = tasks.iter().fold(HashMap::new(), |mut m, t| {
                *m.entry(t["status"].as_str().unwrap_or("?").to_string())
                    .or_default() += 1;
                m
            });
            panic!(
                "not all {count} tasks succeeded: {} tasks, {states:?}",
                tasks.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn nodes(c: &reqwest::Client, base: &str) -> Vec<Value> {
    let (code, body) = get(c, &format!("{base}/v1/cluster/nodes")).await;
    assert_eq!(code, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_holding_tasks_loses_nothing() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let api = api_server(dir.path(), &url);
    let _scheduler = component(dir.path(), &url, "scheduler", "sched-1");
    let mut a = component(dir.path(), &url, "worker", "worker-a");
    let c = client();
    let tasks: Vec<Value> = (0..60)
        .map(|i| json!({"bot": "slow", "input": {"i": i}}))
        .collect();
    let (code, body, _) = post(
        &c,
        &format!("{}/v1/tasks/batch", api.url),
        &json!({ "tasks": tasks }).to_string(),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    // Wait until worker-a is running tasks, then kill it mid-flight.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let running = all_tasks(&c, &api.url, "slow").await;
        if running
            .iter()
            .any(|t| t["status"] == "running" && t["worker"] == "worker-a")
        {
            break;
        }
        assert!(Instant::now() < deadline, "worker-a never ran a task");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill9();
    let _b = component(dir.path(), &url, "worker", "worker-b");
    let done = wait_all_succeeded(&c, &api.url, "slow", 60).await;
    let ids: HashSet<&str> = done.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 60, "each submitted task exactly once");
    let rerun: Vec<&Value> = done.iter().filter(|t| t["attempts"] == 2).collect();
    assert!(
        !rerun.is_empty(),
        "worker-a held tasks when killed; they must have run again elsewhere"
    );
    for t in &rerun {
        assert_eq!(t["worker"], "worker-b", "{t}");
        assert_eq!(
            t["error"],
            Value::Null,
            "a success clears the lease error: {t}"
        );
    }
    assert!(done.iter().all(|t| t["attempts"].as_u64().unwrap() <= 2));
}

/// Tasks of `bot` that `worker` holds (running or claimed and waiting for a slot).
async fn held_by(c: &reqwest::Client, base: &str, bot: &str, worker: &str) -> usize {
    all_tasks(c, base, bot)
        .await
        .iter()
        .filter(|t| t["status"] == "running" && t["worker"] == worker)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_spreads_over_two_workers_and_a_killed_workers_unstarted_tasks_move_first() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    // A long lease for started tasks, a short one for claimed tasks waiting for a slot.
    let config = r#"
scheduler: {interval: 500ms}
worker:
  concurrency: 10
  prefetch: 10
  prefetch_lease: 1s
  lease: 60s
bots:
  - metadata: {name: long}
    spec:
      timeout: 5m
      steps:
        - {id: nap, uses: sleep, with: {duration: 3m}}
"#;
    let dir = tempfile::tempdir().unwrap();
    let api = start_process(
        dir.path(),
        config,
        &["api-server", "--listen", "127.0.0.1:0"],
        &url,
    );
    let _scheduler = start_process(
        dir.path(),
        config,
        &["scheduler", "--node-id", "sched-1"],
        &url,
    );
    let mut a = start_process(
        dir.path(),
        config,
        &["worker", "--node-id", "worker-a"],
        &url,
    );
    let _b = start_process(
        dir.path(),
        config,
        &["worker", "--node-id", "worker-b"],
        &url,
    );
    let c = client();
    let tasks: Vec<Value> = (0..40)
        .map(|i| json!({"bot": "long", "input": {"i": i}}))
        .collect();
    let (code, body, _) = post(
        &c,
        &format!("{}/v1/tasks/batch", api.url),
        &json!({ "tasks": tasks }).to_string(),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    // Each worker holds at most its 10 slots plus 10 waiting, so the burst of 40 splits evenly
    // (before, one worker claimed all 40 and the other idled).
    let deadline = Instant::now() + Duration::from_secs(30);
    let (held_a, held_b) = loop {
        let held = (
            held_by(&c, &api.url, "long", "worker-a").await,
            held_by(&c, &api.url, "long", "worker-b").await,
        );
        if held.0 + held.1 == 40 {
            break held;
        }
        assert!(
            Instant::now() < deadline,
            "the 40 tasks were never all claimed: {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (held_a, held_b),
        (20, 20),
        "a burst of 40 spreads over both workers"
    );
    // worker-a dies running 10 and holding 10 that never started. Those 10 come back after
    // their short lease, while the 10 it started stay leased (60 s) to the dead worker. (A
    // started task has its full lease from the first heartbeat after it starts, a third of the
    // prefetch lease: wait past that before the kill.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.kill9();
    let deadline = Instant::now() + Duration::from_secs(50);
    loop {
        let held = held_by(&c, &api.url, "long", "worker-a").await;
        if held < 20 {
            assert_eq!(
                held, 10,
                "only the tasks worker-a never started leave it early; the started ones keep their lease"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker-a's waiting tasks never returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back: Vec<Value> = all_tasks(&c, &api.url, "long")
        .await
        .into_iter()
        .filter(|t| t["status"] == "queued" || t["worker"] == "worker-b")
        .collect();
    assert_eq!(
        back.len(),
        30,
        "worker-b's 20 and the 10 returned: {back:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_monitor_on_a_worker_says_it_cannot_see_rather_than_healthy() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bots");
    let config = format!("bots_dir: {}\n", examples.display());
    let dir = tempfile::tempdir().unwrap();
    let api = start_process(
        dir.path(),
        &config,
        &["api-server", "--listen", "127.0.0.1:0"],
        &url,
    );
    let _worker = start_process(
        dir.path(),
        &config,
        &["worker", "--node-id", "worker-m"],
        &url,
    );
    let c = client();
    // The api-server takes the task once it sees a worker serving the monitoring queue.
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (code, body, _) = post(
            &c,
            &format!("{}/v1/tasks", api.url),
            r#"{"bot": "health-monitor"}"#,
        )
        .await;
        if code == 202 {
            break body;
        }
        assert!(Instant::now() < deadline, "{code} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let id = body["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let task = loop {
        let (_, t) = get(&c, &format!("{}/v1/tasks/{id}", api.url)).await;
        if t["status"] == "succeeded" {
            break t;
        }
        assert!(Instant::now() < deadline, "the monitor never finished: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let out = &task["output"];
    assert_eq!(out["status"], "unknown", "{task}");
    assert_eq!(out["healthy"], Value::Null, "{task}");
    let alerts = out["alerts"].as_array().unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.as_str().unwrap().contains("cannot see the queues")
                && a.as_str().unwrap().contains("404")),
        "{task}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_scheduler_killed_standby_takes_over_without_double_or_missed_fires() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let api = api_server(dir.path(), &url);
    let mut first = component(dir.path(), &url, "scheduler", "sched-a");
    let c = client();
    // sched-a leads before sched-b exists.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !nodes(&c, &api.url)
        .await
        .iter()
        .any(|n| n["id"] == "sched-a" && n["leader"] == true)
    {
        assert!(Instant::now() < deadline, "sched-a never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = component(dir.path(), &url, "scheduler", "sched-b");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leaders: Vec<Value> = nodes(&c, &api.url)
        .await
        .into_iter()
        .filter(|n| n["leader"] == true)
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one leader: {leaders:?}");
    first.kill9();
    let killed = Instant::now();
    loop {
        let list = nodes(&c, &api.url).await;
        if list
            .iter()
            .any(|n| n["id"] == "sched-b" && n["leader"] == true)
        {
            break;
        }
        // A generous deadline for "eventually", not a bound on failover (its time is printed
        // below and measured by the benchmarks).
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "no standby took over: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "standby led {} ms after the leader was killed (leader_lease 2s, heartbeat 2s)",
        killed.elapsed().as_millis()
    );
    let (code, metrics) = get(&c, &format!("{}/metrics", second.url)).await;
    assert_eq!(code, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(
        metrics.contains("\noclaw_scheduler_leader 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\noclaw_scheduler_elections_total 1\n"),
        "{metrics}"
    );
    // Once the dead leader misses its heartbeats it is NotReady, and what it last said of its
    // leadership is not shown any more: one leader, the live one.
    let deadline = Instant::now() + Duration::from_secs(30);
    let list = loop {
        let list = nodes(&c, &api.url).await;
        if list
            .iter()
            .any(|n| n["id"] == "sched-a" && n["status"] == "NotReady")
        {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "sched-a never turned NotReady: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let dead = list.iter().find(|n| n["id"] == "sched-a").unwrap();
    assert!(dead.get("leader").is_none(), "{dead}");
    assert!(
        dead["heartbeat_age_seconds"].as_f64().unwrap() > 5.0,
        "{dead}"
    );
    let leaders: Vec<&Value> = list.iter().filter(|n| n["leader"] == true).collect();
    assert_eq!(leaders.len(), 1, "{list:?}");
    assert_eq!(leaders[0]["id"], "sched-b");
    let out = Command::new(env!("CARGO_BIN_EXE_oclaw"))
        .args(["node", "list", "--server", &api.url])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("sched-a"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("NotReady") && !row.contains("yes"), "{table}");
    assert!(
        row.trim_end().ends_with(" ago"),
        "LAST-SEEN column: {table}"
    );
    let tasks = all_tasks(&c, &api.url, "ticker").await;
    let mut ticks: Vec<i64> = tasks
        .iter()
        .map(|t| {
            let at = t["input"]["trigger"]["scheduled_at"].as_str().unwrap();
            chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .timestamp()
        })
        .collect();
    ticks.sort_unstable();
    assert!(ticks.len() >= 6, "{ticks:?}");
    for w in ticks.windows(2) {
        assert_eq!(
            w[1] - w[0],
            1,
            "a tick fired twice or not at all: {ticks:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_killed_under_load_loses_no_acknowledged_task() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut apis: Vec<Node> = (0..3).map(|_| api_server(dir.path(), &url)).collect();
    let bases: Vec<String> = apis.iter().map(|a| a.url.clone()).collect();
    let _scheduler = component(dir.path(), &url, "scheduler", "sched-1");
    let _worker = component(dir.path(), &url, "worker", "worker-1");
    let acknowledged: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let c = client();
    let mut clients = Vec::new();
    for k in 0..6usize {
        let (c, bases, acknowledged) = (c.clone(), bases.clone(), acknowledged.clone());
        clients.push(tokio::spawn(async move {
            for n in 0..60usize {
                let key = format!("c{k}-{n}");
                let body = json!({"bot": "quick", "input": {"i": n}, "idempotency_key": key});
                // A client that loses its server retries the same request on the next one.
                let mut server = (k + n) % bases.len();
                let mut tries = 0;
                loop {
                    let sent = c
                        .post(format!("{}/v1/tasks", bases[server]))
                        .json(&body)
                        .send()
                        .await;
                    if let Ok(r) = sent {
                        if r.status().as_u16() == 202 || r.status().as_u16() == 200 {
                            let t: Value = r.json().await.unwrap();
                            let id = t["id"].as_str().unwrap().to_string();
                            acknowledged.lock().unwrap().insert(key.clone(), id);
                            break;
                        }
                    }
                    tries += 1;
                    assert!(tries < 20, "no api-server accepted {key}");
                    server = (server + 1) % bases.len();
                }
            }
        }));
    }
    // Kill one api-server while the clients are mid-way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().unwrap().len() < 100 {
        assert!(Instant::now() < deadline, "submissions stalled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    apis[0].kill9();
    for h in clients {
        h.await.unwrap();
    }
    // invoke on one api-server returns the result a worker in another process wrote.
    let (code, answer, _) = post(
        &c,
        &format!("{}/v1/bots/quick/invoke", bases[2]),
        r#"{"input": {"i": "via-invoke"}}"#,
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["status"], "succeeded");
    assert_eq!(answer["output"], "via-invoke");
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(acknowledged.len(), 360);
    let done = wait_all_succeeded(&c, &bases[1], "quick", 361).await;
    let by_id: HashMap<&str, &Value> = done
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t))
        .collect();
    for (key, id) in &acknowledged {
        let t = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("acknowledged {id} lost"));
        assert_eq!(t["idempotency_key"], key.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_queue_does_not_starve_another_queue_of_the_same_worker() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let api = api_server(dir.path(), &url);
    let _worker = component(dir.path(), &url, "worker", "worker-1");
    let c = client();
    // 300 tasks of 200 ms on `bulk` are 6 s of work for a worker of concurrency 10.
    let flood: Vec<Value> = (0..300)
        .map(|i| json!({"bot": "bulk", "input": {"i": i}}))
        .collect();
    let (code, body, _) = post(
        &c,
        &format!("{}/v1/tasks/batch", api.url),
        &json!({ "tasks": flood }).to_string(),
    )
    .await;
    assert_eq!(code, 202, "{body}");
    let (code, t, _) = post(
        &c,
        &format!("{}/v1/tasks", api.url),
        r#"{"bot": "quick", "input": {"i": 1}}"#,
    )
    .await;
    assert_eq!(code, 202, "{t}");
    common::wait_status(
        &c,
        &api.url,
        t["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(30),
    )
    .await;
    // The order the store recorded: the quick task started before most of the flood, which
    // was submitted first (a claimer draining one queue at a time would start it last).
    let (_, quick) = get(
        &c,
        &format!("{}/v1/tasks/{}", api.url, t["id"].as_str().unwrap()),
    )
    .await;
    let quick_started = quick["started_at"].as_str().unwrap().to_string();
    let mut before = 0;
    let mut cursor = String::new();
    loop {
        let (_, page) = get(
            &c,
            &format!("{}/v1/tasks?bot=bulk&limit=100&cursor={cursor}", api.url),
        )
        .await;
        for b in page["items"].as_array().unwrap() {
            // RFC 3339 times of one clock and format compare as text.
            if b["started_at"]
                .as_str()
                .is_some_and(|s| s < quick_started.as_str())
            {
                before += 1;
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert!(
        before < 150,
        "{before} of the 300 flood tasks started before the other queue's task"
    );
}

/// A PostgreSQL server of this test's own, so it can be stopped and started under load.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn as_postgres(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let root = std::env::var("USER").as_deref() == Ok("root")
            || Command::new("id")
                .arg("-u")
                .output()
                .map(|o| o.stdout.starts_with(b"0"))
                .unwrap_or(false);
        if root {
            // PostgreSQL refuses to run as root.
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start() -> Result<PrivatePostgres, String> {
        let versions = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("no PostgreSQL binaries: {e}"))?;
        let bin = versions
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .ok_or("no initdb under /usr/lib/postgresql")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let pg = PrivatePostgres { dir, bin, port };
        let run = |mut c: Command| -> Result<(), String> {
            let out = c.output().map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        };
        run({
            let mut c = Command::new("chmod");
            c.arg("755").arg(pg.dir.path());
            c
        })?;
        let _ = Command::new("chown")
            .arg("postgres")
            .arg(pg.dir.path())
            .status();
        run({
            let mut c = pg.as_postgres("initdb");
            c.arg("-D")
                .arg(pg.data())
                .args(["-A", "trust", "-U", "postgres", "--no-sync"]);
            c
        })?;
        pg.ctl("start")?;
        Ok(pg)
    }

    fn ctl(&self, action: &str) -> Result<(), String> {
        let mut c = self.as_postgres("pg_ctl");
        c.arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "fast", "-l"])
            .arg(self.dir.path().join("log"));
        c.arg("-o").arg(format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        ));
        let out = c.arg(action).output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl {action}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_components_recover_by_themselves() {
    let pg = match PrivatePostgres::start() {
        Ok(pg) => pg,
        Err(e) if oclaw_core::ci::under_ci() => {
            panic!("a private PostgreSQL is required under CI=true: {e}")
        }
        Err(e) => {
            eprintln!("skipped: cannot start a private PostgreSQL: {e}");
            return;
        }
    };
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let mut api = api_server(dir.path(), &url);
    let mut scheduler = component(dir.path(), &url, "scheduler", "sched-1");
    let mut worker = component(dir.path(), &url, "worker", "worker-1");
    let c = client();
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let submitter = {
        let (c, base, stop, acknowledged, failures) = (
            c.clone(),
            api.url.clone(),
            stop.clone(),
            acknowledged.clone(),
            failures.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let body =
                    json!({"bot": "quick", "input": {"i": n}, "idempotency_key": format!("k{n}")});
                let sent = c.post(format!("{base}/v1/tasks")).json(&body).send().await;
                match sent {
                    Ok(r) if r.status().as_u16() == 202 || r.status().as_u16() == 200 => {
                        let t: Value = r.json().await.unwrap();
                        acknowledged
                            .lock()
                            .unwrap()
                            .push(t["id"].as_str().unwrap().to_string());
                        n += 1;
                    }
                    Ok(r) => {
                        // While the database is away: 503 with OC-4001, never a silent loss.
                        assert_eq!(r.status().as_u16(), 503);
                        let e: Value = r.json().await.unwrap();
                        assert_eq!(e["error"]["code"], "OC-4001", "{e}");
                        failures.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("the api-server itself must stay up: {e}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = acknowledged.lock().unwrap().len();
    assert!(before > 0, "no submissions before the outage");
    pg.ctl("stop").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body) = get(&c, &format!("{}/readyz", api.url)).await;
        if code == 503 {
            assert_eq!(body["error"]["code"], "OC-4001", "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readyz stayed {code} with the database down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.ctl("start").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(&c, &format!("{}/readyz", api.url)).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "api-server did not become ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = acknowledged.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    submitter.await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > during, "submissions did not resume");
    assert!(
        failures.load(Ordering::Relaxed) > 0,
        "the outage was not seen"
    );
    let done = wait_all_succeeded(&c, &api.url, "quick", acknowledged.len()).await;
    let ids: HashSet<&str> = done.iter().map(|t| t["id"].as_str().unwrap()).collect();
    for id in &acknowledged {
        assert!(ids.contains(id.as_str()), "acknowledged {id} lost");
    }
    for (name, node) in [
        ("api-server", &mut api),
        ("scheduler", &mut scheduler),
        ("worker", &mut worker),
    ] {
        assert!(
            node.child.try_wait().unwrap().is_none(),
            "{name} exited instead of recovering: {}",
            node.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_key_limit_holds_across_two_worker_processes() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let api = api_server(dir.path(), &url);
    let _w1 = component(dir.path(), &url, "worker", "keyed-w1");
    let _w2 = component(dir.path(), &url, "worker", "keyed-w2");
    let c = client();
    for i in 0..4 {
        for customer in ["ann", "bob", "cy"] {
            let body = json!({"bot": "keyed", "input": {"customer": customer, "i": i}}).to_string();
            let (code, t, _) = post(&c, &format!("{}/v1/tasks", api.url), &body).await;
            assert_eq!(code, 202, "{t}");
        }
    }
    let tasks = wait_all_succeeded(&c, &api.url, "keyed", 12).await;
    let at =
        |t: &Value, f: &str| chrono::DateTime::parse_from_rfc3339(t[f].as_str().unwrap()).unwrap();
    let mut workers = HashSet::new();
    for customer in ["ann", "bob", "cy"] {
        let mut mine: Vec<&Value> = tasks
            .iter()
            .filter(|t| t["input"]["customer"] == customer)
            .collect();
        mine.sort_by_key(|t| t["input"]["i"].as_i64().unwrap());
        for pair in mine.windows(2) {
            // One at a time, in the order they came: each starts after the one before finished.
            assert!(
                at(pair[1], "started_at") >= at(pair[0], "finished_at"),
                "{customer}: {} started before {} finished",
                pair[1]["id"],
                pair[0]["id"]
            );
        }
        workers.extend(
            mine.iter()
                .map(|t| t["worker"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(
        workers.len(),
        2,
        "both workers ran keyed tasks: {workers:?}"
    );
    // Different keys ran side by side: the whole took far less than 12 runs in a row would.
    let first = tasks.iter().map(|t| at(t, "started_at")).min().unwrap();
    let last = tasks.iter().map(|t| at(t, "finished_at")).max().unwrap();
    let overlapping = tasks.iter().any(|a| {
        tasks.iter().any(|b| {
            a["input"]["customer"] != b["input"]["customer"]
                && at(a, "started_at") < at(b, "finished_at")
                && at(b, "started_at") < at(a, "finished_at")
        })
    });
    assert!(overlapping, "keys ran in parallel (span {})", last - first);
}

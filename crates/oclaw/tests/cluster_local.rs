//! The local driver end to end, on real processes and the real PostgreSQL
//! (`OCLAW_TEST_POSTGRES_URL`): the seed's §3.2 sequence — init, deploy core in HA mode
//! (3 api-servers, 2 schedulers, 3 workers), status — then load, a pod killed with `kill -9`
//! (the supervisor restarts it and RESTARTS counts it, its previous log kept), no acknowledged
//! task lost, and teardown.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oclaw_store::testing::fresh_postgres_url;
use serde_json::{json, Value};

struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn oclaw(&self, args: &[&str]) -> (bool, String) {
        let (code, text) = self.oclaw_code(args);
        (code == Some(0), text)
    }

    fn oclaw_code(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = common::oclaw()
            .args(args)
            .current_dir(self.dir.path())
            .env("OCLAW_HOME", self.home())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    fn state(&self) -> Value {
        let path = self.home().join("clusters/oclaw-system/state.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default())
            .unwrap_or(Value::Null)
    }

    fn pod(&self, name: &str) -> Value {
        self.state()["pods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Stop the supervisor and its pods even when the test failed.
        let _ = self.oclaw(&["teardown", "--purge"]);
    }
}

/// The seed's cluster file with the database and a free port.
fn cluster_file(dir: &Path, storage: &str, port: u16) {
    std::fs::create_dir_all(dir.join("config")).unwrap();
    let text = oclaw_cluster::model::SEED_EXAMPLE
        .replace(
            "    size: \"100Gi\"\n",
            &format!("    size: \"100Gi\"\n    url: \"{storage}\"\n"),
        )
        .replace("port: 8080", &format!("port: {port}"));
    assert!(text.contains(storage), "{text}");
    std::fs::write(dir.join("config/production.yaml"), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_sequence_on_real_processes_with_a_pod_killed_under_load() {
    let Some(storage) = fresh_postgres_url().await else {
        return;
    };
    let cluster = Cluster {
        dir: tempfile::tempdir().unwrap(),
    };
    // 3 api-servers on port.., 2 schedulers and 3 workers on port + 100..
    let port = common::free_port_block(0, &[0, 1, 2, 100, 101, 102, 103, 104]);
    cluster_file(cluster.dir.path(), &storage, port);

    let (ok, text) = cluster.oclaw(&[
        "init",
        "--config",
        "config/production.yaml",
        "--image-registry",
        "registry.example.com/oclaw",
        "--network-plugin",
        "cni",
    ]);
    assert!(ok, "{text}");
    assert!(!text.contains("ephemeral range"), "{text}");
    let (ok, text) = cluster.oclaw(&[
        "deploy",
        "core",
        "--components",
        "[api-server,worker,scheduler]",
        "--ha-mode",
        "true",
        "--wait",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("pods ready 8/8"), "{text}");
    let (ok, table) = cluster.oclaw(&["status", "--namespace", "oclaw-system"]);
    assert!(ok, "{table}");
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("NAME")
            && header.contains("READY")
            && header.contains("RESTARTS")
            && header.ends_with("AGE"),
        "{table}"
    );
    for pod in [
        "api-server-0",
        "api-server-1",
        "api-server-2",
        "scheduler-0",
        "scheduler-1",
        "worker-0",
        "worker-1",
        "worker-2",
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(pod))
            .unwrap_or_else(|| panic!("{pod} missing: {table}"));
        assert!(line.contains("1/1") && line.contains("Running"), "{line}");
    }

    // Load through all three api-servers while a worker is killed.
    let c = common::client();
    let mut ids = Vec::new();
    for i in 0..90u16 {
        if i == 30 {
            let pid = cluster.pod("worker-1")["pid"].as_u64().unwrap();
            std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
        }
        let api = format!("http://127.0.0.1:{}", port + i % 3);
        let body = json!({"bot": "hello", "input": {"name": format!("n{i}")}, "idempotency_key": format!("load-{i}")}).to_string();
        let (code, task, _) = common::post(&c, &format!("{api}/v1/tasks"), &body).await;
        assert!(code == 202 || code == 200, "{code} {task}");
        ids.push(task["id"].as_str().unwrap().to_string());
    }
    let api = format!("http://127.0.0.1:{port}");
    for id in &ids {
        common::wait_status(&c, &api, id, "succeeded", Duration::from_secs(60)).await;
    }

    // The supervisor restarted the killed worker and counts it.
    let supervisor_log = || {
        std::fs::read_to_string(cluster.home().join("clusters/oclaw-system/supervisor.log"))
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let restarts = loop {
        let w = cluster.pod("worker-1");
        if w["restarts"].as_u64() >= Some(1) && w["ready"] == true {
            assert!(w["last_exit"].as_str().unwrap().contains("signal 9"), "{w}");
            let n = w["restarts"].as_u64().unwrap();
            // Killed once here, and the supervisor's own kills are never counted: any other
            // restart came from outside (the OOM killer, another process). Keep its log.
            if n != 1 {
                let kept =
                    common::workspace_root().join("target/test-logs/cluster_local-supervisor.log");
                let _ = std::fs::create_dir_all(kept.parent().unwrap());
                let _ = std::fs::write(&kept, supervisor_log());
                panic!(
                    "worker-1 restarted {n} times, killed once by this test: {w}\nsupervisor log kept in {}",
                    kept.display()
                );
            }
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "worker-1 was not restarted: {w}\nsupervisor log:\n{}",
            supervisor_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (_, table) = cluster.oclaw(&["status"]);
    let line = table.lines().find(|l| l.starts_with("worker-1")).unwrap();
    assert!(
        line.split_whitespace().nth(3) == Some(restarts.to_string().as_str()),
        "RESTARTS column: {line}"
    );
    let (ok, previous) = cluster.oclaw(&["logs", "worker-1", "--previous"]);
    assert!(ok && previous.contains("node ready"), "{previous}");

    // The troubleshooting walk and the upgrade pre-check see the restart.
    let (_, report) = cluster.oclaw(&["diagnose"]);
    assert!(
        report.contains(&format!("worker-1 restarted {restarts}x"))
            && report.contains("SIGKILL")
            && report.contains("Q3"),
        "{report}"
    );
    let this = env!("CARGO_PKG_VERSION");
    let (code, checks) = cluster.oclaw_code(&[
        "check-upgrade",
        "--from-version",
        this,
        "--to-version",
        "0.2.0",
    ]);
    assert_eq!(code, Some(3), "warnings only: {checks}");
    let line = |name: &str| {
        checks
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("version path").contains("PASS"), "{checks}");
    assert!(
        line("cluster health").contains("WARN") && line("cluster health").contains("worker-1"),
        "{checks}"
    );
    assert!(line("deployed version").contains("PASS"), "{checks}");
    assert!(
        line("binary").contains("WARN") && line("binary").contains("no oclaw 0.2.0"),
        "{checks}"
    );
    let (code, checks) = cluster.oclaw_code(&[
        "check-upgrade",
        "--from-version",
        "0.2.0",
        "--to-version",
        "0.1.0",
    ]);
    assert_eq!(code, Some(1), "a downgrade fails: {checks}");

    // Upgrade all-in to a new revision while clients keep submitting: nothing acknowledged is
    // lost, every pod ends on the new revision, the history records it.
    let v2 = std::fs::read_to_string(cluster.dir.path().join("config/production.yaml"))
        .unwrap()
        .replace(
            "  replica: 3\n",
            "  replica: 3\n  version: \"0.2.0\"\n  config: {worker: {concurrency: 20}}\n",
        );
    std::fs::write(cluster.dir.path().join("config/v2.yaml"), &v2).unwrap();
    let load = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..150u16 {
                let body = json!({"bot": "hello", "input": {"name": format!("u{i}")}, "idempotency_key": format!("upgrade-{i}")}).to_string();
                // An api-server being replaced refuses connections: try the next one.
                for attempt in 0..30u16 {
                    let api = format!("http://127.0.0.1:{}/v1/tasks", port + (i + attempt) % 3);
                    let sent = c
                        .post(&api)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    if let Ok(r) = sent {
                        if r.status().is_success() {
                            let t: Value = r.json().await.unwrap();
                            acked.push(t["id"].as_str().unwrap().to_string());
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            acked
        })
    };
    // Version 0.2.0's binary, installed where the local driver looks for it: this oclaw
    // behind a wrapper that marks its processes and gives it one more migration (a table and a
    // column, additive), as a later release would have.
    let installed = cluster.home().join("versions/0.2.0/oclaw");
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::write(
        &installed,
        format!(
            "#!/bin/sh\nOCLAW_TEST_BINARY=0.2.0 OCLAW_TEST_NEXT_SCHEMA=additive exec '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_oclaw")
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &installed,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // Its migration is reversible by a rollback, and check-upgrade says so beforehand.
    let (_, checks) = cluster.oclaw(&[
        "check-upgrade",
        "--from-version",
        this,
        "--to-version",
        "0.2.0",
    ]);
    let store_line = checks
        .lines()
        .find(|l| l.starts_with("store schema"))
        .unwrap_or_default();
    assert!(
        store_line.contains("PASS") && store_line.contains("a rollback to"),
        "{checks}"
    );
    let schema = oclaw_store::postgres::schema_version();
    let (ok, text) = cluster.oclaw(&[
        "upgrade",
        "--rollout-strategy",
        "all-in",
        "--confirm",
        "--config",
        "config/v2.yaml",
        "--timeout",
        "120",
    ]);
    assert!(ok, "{text}");
    assert!(!text.contains("warning: no oclaw"), "{text}");
    assert_eq!(
        oclaw_store::testing::postgres_meta(&storage, "schema_version").await,
        Some((schema + 1).to_string()),
        "release 0.2.0 migrated the store"
    );
    for p in cluster.state()["pods"].as_array().unwrap() {
        let pid = p["pid"].as_u64().unwrap();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        assert!(
            String::from_utf8_lossy(&environ).contains("OCLAW_TEST_BINARY=0.2.0"),
            "{} does not run the installed 0.2.0 binary",
            p["name"]
        );
    }
    let acked = load.await.unwrap();
    assert_eq!(
        acked.len(),
        150,
        "every submission was acknowledged by some api-server"
    );
    for id in &acked {
        common::wait_status(&c, &api, id, "succeeded", Duration::from_secs(60)).await;
    }
    assert!(
        cluster.state()["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["revision"] == 2),
        "{}",
        cluster.state()
    );
    // A bad revision (its config does not load) never becomes ready: rolled back on timeout.
    let bad = v2
        .replace("0.2.0", "0.3.0")
        .replace("concurrency: 20", "concurency: 20");
    std::fs::write(cluster.dir.path().join("config/bad.yaml"), bad).unwrap();
    let (ok, text) = cluster.oclaw(&[
        "upgrade",
        "--rollout-strategy",
        "all-in",
        "--confirm",
        "--config",
        "config/bad.yaml",
        "--timeout",
        "15",
    ]);
    assert!(!ok && text.contains("rolling back to revision 2"), "{text}");
    assert!(
        text.contains("warning: no oclaw 0.3.0 installed"),
        "a version without its binary is named: {text}"
    );
    // And back to the first revision on request: release A on the store release B migrated
    // (the rollback's schema check passes: B's migration only added).
    let (ok, text) = cluster.oclaw(&["rollback", "--revision", "1"]);
    assert!(ok, "{text}");
    assert_eq!(
        oclaw_store::testing::postgres_meta(&storage, "schema_version").await,
        Some((schema + 1).to_string()),
        "a rollback does not undo a migration"
    );
    let (_, log) = cluster.oclaw(&["logs", "api-server-0"]);
    assert!(
        log.contains("running on it unchanged"),
        "release A runs on B's schema: {log}"
    );
    let (_, history) = cluster.oclaw(&["upgrade", "history", "-o", "json"]);
    let history: Vec<Value> = serde_json::from_str(&history).unwrap();
    let rows: Vec<(u64, &str, &str, &str)> = history
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["action"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["version"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, "deploy", "superseded", this),
            (2, "upgrade", "superseded", "0.2.0"),
            (3, "upgrade", "failed", "0.3.0"),
            (4, "rollback", "superseded", "0.2.0"),
            (5, "rollback", "deployed", this),
        ]
    );
    let (_, table) = cluster.oclaw(&["upgrade", "history"]);
    assert!(
        table.starts_with("REVISION") && table.contains("automatic rollback of revision 3 to 2"),
        "{table}"
    );
    // Canary: a healthy revision pauses for confirmation, then all-in promotes it.
    let (ok, text) = cluster.oclaw(&[
        "upgrade",
        "--rollout-strategy",
        "canary",
        "--canary-percent",
        "20",
        "--timeout",
        "120",
        "--analysis-window",
        "3",
        "--config",
        "config/v2.yaml",
    ]);
    assert!(
        ok && text.contains("Paused") && text.contains("canary healthy"),
        "{text}"
    );
    let revs: Vec<(String, u64)> = cluster.state()["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["revision"].as_u64().unwrap(),
            )
        })
        .collect();
    for (name, rev) in &revs {
        let canary = name.ends_with("-0");
        assert_eq!(*rev, if canary { 6 } else { 5 }, "{name}: {revs:?}");
    }
    let (_, table) = cluster.oclaw(&["status"]);
    assert!(
        table.contains("rollout: revision 6 (from 5) Paused, canary 20%"),
        "{table}"
    );
    // Tasks submitted while the canary (release B) runs beside release A on B's schema are
    // taken by either and all finish.
    let mut during = Vec::new();
    for i in 0..30u16 {
        let api = format!("http://127.0.0.1:{}/v1/tasks", port + i % 3);
        let body = json!({"bot": "hello", "input": {"name": format!("canary-{i}")}}).to_string();
        let (code, t, _) = common::post(&c, &api, &body).await;
        assert_eq!(code, 202, "{t}");
        during.push(t["id"].as_str().unwrap().to_string());
    }
    for id in &during {
        common::wait_status(&c, &api, id, "succeeded", Duration::from_secs(60)).await;
    }
    let (ok, text) = cluster.oclaw(&[
        "upgrade",
        "--rollout-strategy",
        "all-in",
        "--confirm",
        "--timeout",
        "120",
    ]);
    assert!(ok && text.contains("Succeeded"), "{text}");
    assert!(
        cluster.state()["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["revision"] == 6),
        "{}",
        cluster.state()
    );
    // A canary whose tasks fail is aborted by its own metrics and rolled back.
    let failing = v2.replace("0.2.0", "0.4.0").replace(
        "  config: {worker: {concurrency: 20}}\n",
        "  config:\n    bots:\n      - metadata: {name: hello}\n        spec:\n          retry: {max_attempts: 1}\n          steps: [{uses: http.request, with: {url: \"http://127.0.0.1:1/\"}}]\n",
    );
    std::fs::write(cluster.dir.path().join("config/failing.yaml"), failing).unwrap();
    let traffic = {
        let c = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            for i in 0..200u16 {
                let api = format!("http://127.0.0.1:{}/v1/tasks", port + i % 3);
                let body = json!({"bot": "hello", "input": {"name": format!("c{i}")}}).to_string();
                let _ = c
                    .post(&api)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let (ok, text) = cluster.oclaw(&[
        "upgrade",
        "--rollout-strategy",
        "canary",
        "--canary-percent",
        "20",
        "--timeout",
        "120",
        "--analysis-window",
        "30",
        "--config",
        "config/failing.yaml",
    ]);
    traffic.abort();
    assert!(
        !ok && text.contains("Aborted") && text.contains("error rate"),
        "{text}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cluster.state()["pods"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["revision"] == 6 && p["ready"] == true)
    {
        assert!(
            Instant::now() < deadline,
            "canary pods not rolled back: {}",
            cluster.state()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, history) = cluster.oclaw(&["upgrade", "history", "-o", "json"]);
    let history: Vec<Value> = serde_json::from_str(&history).unwrap();
    let tail: Vec<(&str, &str)> = history[5..]
        .iter()
        .map(|r| {
            (
                r["version"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(tail, vec![("0.2.0", "deployed"), ("0.4.0", "failed")]);

    let (code, task, _) = common::post(
        &c,
        &format!("{api}/v1/tasks"),
        r#"{"bot": "hello", "input": {"name": "after"}}"#,
    )
    .await;
    assert_eq!(code, 202, "{task}");
    common::wait_status(
        &c,
        &api,
        task["id"].as_str().unwrap(),
        "succeeded",
        Duration::from_secs(30),
    )
    .await;

    // Teardown stops every pod.
    let pids: Vec<u64> = cluster.state()["pods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["pid"].as_u64())
        .collect();
    let (ok, text) = cluster.oclaw(&["teardown"]);
    assert!(ok, "{text}");
    for pid in pids {
        let alive = std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive, "pod process {pid} outlived teardown");
    }
    // Without its supervisor the cluster takes no deploy, and records no revision for it.
    let (_, before) = cluster.oclaw(&["upgrade", "history", "-o", "json"]);
    let (code, text) = cluster.oclaw_code(&["deploy", "core"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("OC-5002") && text.contains("supervisor"),
        "{text}"
    );
    let (_, after) = cluster.oclaw(&["upgrade", "history", "-o", "json"]);
    assert_eq!(before, after);
}

/// The guide's sequence on the guide's file as written (only its port moved to a free block
/// with these offsets): `init`, then `deploy core` of every component in the given HA mode.
/// The cluster gets a database of its own; the folder is reachable by `postgres` (the
/// database's user when the tests run as root).
fn guide_sequence(region: u16, offsets: &[u16], ha: bool) -> (Cluster, u16) {
    let cluster = Cluster {
        dir: tempfile::tempdir().unwrap(),
    };
    let _ = std::process::Command::new("chmod")
        .arg("755")
        .arg(cluster.dir.path())
        .status();
    let port = common::free_port_block(region, offsets);
    std::fs::create_dir_all(cluster.dir.path().join("config")).unwrap();
    let text = oclaw_cluster::model::SEED_EXAMPLE.replace("port: 8080", &format!("port: {port}"));
    assert!(!text.contains("url:"), "the guide's file names no database");
    std::fs::write(cluster.dir.path().join("config/production.yaml"), &text).unwrap();
    let (ok, out) = cluster.oclaw(&[
        "init",
        "--config",
        "config/production.yaml",
        "--image-registry",
        "registry.example.com/oclaw",
        "--network-plugin",
        "cni",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("database: the cluster's own PostgreSQL"),
        "{out}"
    );
    let (ok, out) = cluster.oclaw(&[
        "deploy",
        "core",
        "--components",
        "[api-server,worker,scheduler]",
        "--ha-mode",
        if ha { "true" } else { "false" },
        "--wait",
    ]);
    assert!(ok, "{out}");
    let url =
        std::fs::read_to_string(cluster.home().join("clusters/oclaw-system/postgres/url")).unwrap();
    let password = url.split(':').nth(2).unwrap().split('@').next().unwrap();
    assert!(
        !out.contains(password),
        "the password is not printed: {out}"
    );
    (cluster, port)
}

/// The deployment guide's cluster file as written (only its port moved to a free one) names no
/// database URL: `init` makes the cluster a PostgreSQL of its own from this host's server
/// binaries, `status` lists it, the supervisor starts it again after a `kill -9`, and `teardown`
/// keeps its data unless `--purge`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_file_as_written_runs_on_a_database_of_its_own() {
    if oclaw_cluster::drivers::local::database::server_binaries().is_err() {
        assert!(
            !oclaw_core::ci::under_ci(),
            "PostgreSQL server binaries are missing under CI=true"
        );
        eprintln!("skipped: no PostgreSQL server binaries");
        return;
    }
    let (cluster, port) = guide_sequence(1, &[0, 100, 101], false);
    let status = |cluster: &Cluster| -> Value {
        let (ok, out) = cluster.oclaw(&["status", "-o", "json"]);
        assert!(ok, "{out}");
        serde_json::from_str(&out).unwrap()
    };
    let s = status(&cluster);
    let db = &s["database"][0];
    assert_eq!(
        (
            db["name"].as_str(),
            db["role"].as_str(),
            db["status"].as_str()
        ),
        (Some("postgres-0"), Some("leader"), Some("Running")),
        "{s}"
    );
    let (_, table) = cluster.oclaw(&["status"]);
    assert!(
        table.contains("DATABASE")
            && table.lines().any(|l| l.starts_with("postgres-0")
                && l.contains("leader")
                && l.contains("Running")),
        "{table}"
    );

    let c = common::client();
    let api = format!("http://127.0.0.1:{port}");
    let submit = |i: u32| {
        let (c, api) = (c.clone(), api.clone());
        async move {
            let body = json!({"bot": "hello", "input": {"name": format!("n{i}")}}).to_string();
            let (code, task, _) = common::post(&c, &format!("{api}/v1/tasks"), &body).await;
            assert_eq!(code, 202, "{task}");
            task["id"].as_str().unwrap().to_string()
        }
    };
    let first = submit(1).await;
    common::wait_status(&c, &api, &first, "succeeded", Duration::from_secs(60)).await;

    // The database dies; the supervisor starts it again and the components reconnect.
    let pid = db["pid"].as_u64().unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&cluster);
        let m = &s["database"][0];
        if m["status"] == "Running" && m["pid"].as_u64() != Some(pid) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the database was not started again: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let second = loop {
        let body = json!({"bot": "hello", "input": {"name": "again"}}).to_string();
        let (code, task, _) = common::post(&c, &format!("{api}/v1/tasks"), &body).await;
        if code == 202 {
            break task["id"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the api-server did not reconnect: {code} {task}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    common::wait_status(&c, &api, &second, "succeeded", Duration::from_secs(60)).await;

    // Teardown keeps the data; --purge deletes it.
    let (ok, out) = cluster.oclaw(&["teardown"]);
    assert!(
        ok && out.contains("database stopped, its data kept"),
        "{out}"
    );
    let data = cluster.home().join("clusters/oclaw-system/postgres/data");
    assert!(data.join("PG_VERSION").exists());
    assert_eq!(status(&cluster)["database"][0]["status"], "Stopped");
    let (ok, out) = cluster.oclaw(&["teardown", "--purge"]);
    assert!(ok && out.contains("data deleted"), "{out}");
    assert!(!data.exists());
}

/// The guide's sequence as written, `--ha-mode true` included: the cluster's own database is
/// three PostgreSQL servers under Patroni (etcd for its election, one synchronous replica).
/// Under continuous submissions the leader is killed with SIGKILL (Patroni and PostgreSQL): a
/// replica is promoted, the components follow it without restarts, every acknowledged task
/// succeeds, and the killed member comes back as a replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_ha_sequence_survives_losing_the_database_leader() {
    let tools = oclaw_cluster::drivers::local::database::server_binaries()
        .and(oclaw_cluster::drivers::local::replicated::ha_programs());
    if let Err(e) = tools {
        assert!(!oclaw_core::ci::under_ci(), "under CI=true: {e}");
        eprintln!("skipped: {e}");
        return;
    }
    let (cluster, port) = guide_sequence(2, &[0, 1, 2, 100, 101, 102, 103, 104], true);
    let members = |cluster: &Cluster| -> Vec<Value> {
        let (ok, out) = cluster.oclaw(&["status", "-o", "json"]);
        assert!(ok, "{out}");
        let s: Value = serde_json::from_str(&out).unwrap();
        s["database"].as_array().cloned().unwrap_or_default()
    };
    let leader_of = |list: &[Value]| {
        list.iter()
            .find(|m| m["role"] == "leader" && m["status"] == "Running")
            .map(|m| m["name"].as_str().unwrap().to_string())
    };
    // Three servers (one leader, the others replicas, one of them synchronous) and three etcd.
    let deadline = Instant::now() + Duration::from_secs(60);
    let list = loop {
        let list = members(&cluster);
        let running = list.iter().filter(|m| m["status"] == "Running").count();
        if running == 6
            && list.iter().any(|m| m["role"] == "sync-replica")
            && leader_of(&list).is_some()
        {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "the database never settled: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let first = leader_of(&list).unwrap();
    assert_eq!(
        list.iter().filter(|m| m["role"] == "etcd").count(),
        3,
        "{list:?}"
    );
    let (_, table) = cluster.oclaw(&["status"]);
    assert!(
        table.contains("DATABASE") && table.contains("sync-replica"),
        "{table}"
    );

    // Continuous submissions through the three api-servers, each retried under its
    // idempotency key until acknowledged.
    let c = common::client();
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let submitter = {
        let (c, acknowledged, stop) = (c.clone(), acknowledged.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let api = format!("http://127.0.0.1:{}", port + (i % 3) as u16);
                let body = json!({"bot": "hello", "input": {"name": format!("n{i}")}, "idempotency_key": format!("ha-{i}")}).to_string();
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    common::post(&c, &format!("{api}/v1/tasks"), &body),
                )
                .await
                {
                    Ok((202 | 200, task, _)) => {
                        acknowledged
                            .lock()
                            .unwrap()
                            .push(task["id"].as_str().unwrap().to_string());
                        i += 1;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(100)).await,
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };
    let count = |a: &std::sync::Arc<std::sync::Mutex<Vec<String>>>| a.lock().unwrap().len();
    while count(&acknowledged) < 30 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Kill the leader: its Patroni and its PostgreSQL.
    let db_dir = cluster.home().join("clusters/oclaw-system/postgres");
    let patroni = std::fs::read_to_string(db_dir.join(format!("{first}.pid"))).unwrap();
    let postmaster =
        std::fs::read_to_string(db_dir.join(format!("{first}/postmaster.pid"))).unwrap();
    let postmaster = postmaster.lines().next().unwrap().trim().to_string();
    std::process::Command::new("kill")
        .args(["-9", patroni.trim(), &postmaster])
        .status()
        .unwrap();
    let before = count(&acknowledged);
    let deadline = Instant::now() + Duration::from_secs(90);
    let second = loop {
        let list = members(&cluster);
        if let Some(l) = leader_of(&list).filter(|l| *l != first) {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "no replica was promoted: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // Submissions go on against the new leader.
    let deadline = Instant::now() + Duration::from_secs(90);
    while count(&acknowledged) < before + 30 {
        assert!(
            Instant::now() < deadline,
            "submissions did not resume after the failover to {second}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    submitter.await.unwrap();
    let ids = acknowledged.lock().unwrap().clone();
    let api = format!("http://127.0.0.1:{port}");
    for id in &ids {
        common::wait_status(&c, &api, id, "succeeded", Duration::from_secs(90)).await;
    }
    // The supervisor restarted the killed member; it rejoins as a replica.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = members(&cluster);
        let m = list.iter().find(|m| m["name"] == first.as_str()).unwrap();
        if m["status"] == "Running" && m["role"].as_str().unwrap().ends_with("replica") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{first} did not rejoin: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // No pod restarted: the components followed the failover by themselves.
    let (_, table) = cluster.oclaw(&["status"]);
    for line in table.lines().filter(|l| {
        l.starts_with("api-server") || l.starts_with("worker") || l.starts_with("scheduler")
    }) {
        assert_eq!(
            line.split_whitespace().nth(3),
            Some("0"),
            "a pod restarted: {table}"
        );
    }
    // The guide's §7 on the cluster's own database: an all-in upgrade and a forced rollback
    // replace every pod, and leave the database alone (same members, same processes); the new
    // pods reach it through the same multi-host URL.
    let pids = |list: &[Value]| -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = list
            .iter()
            .filter(|m| m["role"] != "etcd")
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_string(),
                    m["pid"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        v.sort();
        v
    };
    let db_before = pids(&members(&cluster));
    let file = cluster.dir.path().join("config/production.yaml");
    let v2 = std::fs::read_to_string(&file).unwrap().replace(
        "  replica: 3\n",
        "  replica: 3\n  config: {worker: {concurrency: 20}}\n",
    );
    std::fs::write(cluster.dir.path().join("config/v2.yaml"), v2).unwrap();
    let (ok, text) = cluster.oclaw(&[
        "upgrade",
        "--rollout-strategy",
        "all-in",
        "--confirm",
        "--config",
        "config/v2.yaml",
        "--timeout",
        "120",
    ]);
    assert!(ok, "{text}");
    let submit_one = |name: &'static str| {
        let (c, api) = (c.clone(), api.clone());
        async move {
            let body = json!({"bot": "hello", "input": {"name": name}}).to_string();
            let (code, task, _) = common::post(&c, &format!("{api}/v1/tasks"), &body).await;
            assert_eq!(code, 202, "{task}");
            let id = task["id"].as_str().unwrap().to_string();
            common::wait_status(&c, &api, &id, "succeeded", Duration::from_secs(60)).await;
        }
    };
    submit_one("after the upgrade").await;
    let (ok, text) = cluster.oclaw(&["rollback", "--revision", "1", "--force"]);
    assert!(ok, "{text}");
    submit_one("after the rollback").await;
    let (_, history) = cluster.oclaw(&["upgrade", "history", "-o", "json"]);
    let history: Value = serde_json::from_str(&history).unwrap();
    let kinds: Vec<(u64, &str, &str)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["action"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (1, "deploy", "superseded"),
            (2, "upgrade", "superseded"),
            (3, "rollback", "deployed")
        ],
        "{history}"
    );
    assert_eq!(
        pids(&members(&cluster)),
        db_before,
        "the database was not touched"
    );
    let (ok, out) = cluster.oclaw(&["teardown", "--purge"]);
    assert!(ok && out.contains("data deleted"), "{out}");
    assert!(!db_dir.exists());
}

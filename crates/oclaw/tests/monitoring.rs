//! The monitoring kit under `deploy/` against the real tools: the alert rules pass promtool's unit
//! tests, every metric the rules and the Grafana dashboard name exists on a live node, and a real
//! Prometheus scraping a real node fires the backlog alert. `promtool` and `prometheus` come from
//! Debian's `prometheus` package (`.ci/install-tools` installs it); without them the tests skip
//! outside CI and fail under `CI=true`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, get, post, start};
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rules_path() -> PathBuf {
    repo().join("deploy/prometheus/oclaw-rules.yml")
}

fn dashboard_path() -> PathBuf {
    repo().join("deploy/grafana/oclaw-dashboard.json")
}

/// The tool's path, or `None` (skip) outside CI when it is not installed.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.exists())
    });
    if found.is_none() {
        if oclaw_core::ci::under_ci() {
            panic!("`{name}` is required under CI=true; run .ci/install-tools");
        }
        eprintln!("skipped: `{name}` not installed (apt-get install prometheus)");
    }
    found
}

/// Every PromQL expression of the rule file.
fn rule_exprs() -> Vec<(String, String)> {
    let doc: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(rules_path()).unwrap()).unwrap();
    let mut out = Vec::new();
    for group in doc["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            out.push((
                rule["alert"].as_str().unwrap().to_string(),
                rule["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// Every PromQL expression of the dashboard, with its `$job` variable at its default.
fn dashboard_exprs() -> Vec<(String, String)> {
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(dashboard_path()).unwrap()).unwrap();
    let mut out = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            out.push((
                panel["title"].as_str().unwrap().to_string(),
                target["expr"].as_str().unwrap().replace("$job", "oclaw.*"),
            ));
        }
    }
    out
}

/// Metric names in a PromQL expression (ours, the process metrics, and `up`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        if is_word(bytes[i]) && (i == 0 || !is_word(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && is_word(bytes[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            // A label name or value inside {...} or by (...) is followed by = ~ , ) — metric names
            // are followed by { [ or whitespace and start with our prefixes.
            if word.starts_with("oclaw_") || word.starts_with("process_") || word == "up" {
                let next = expr[i..].trim_start().chars().next();
                if matches!(next, Some('{') | Some('[') | Some(')') | None)
                    || next.is_some_and(|c| c.is_whitespace() || "<>=!*/+-".contains(c))
                {
                    names.insert(word.to_string());
                }
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn alert_rules_pass_promtool_unit_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let check = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(rules_path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let test = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(repo().join("deploy/prometheus/tests/oclaw-rules.test.yml"))
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    // The PrometheusRule for Kubernetes carries the same rules, and they pass promtool too.
    let rendered = common::oclaw()
        .args(["docs", "alert-rules", "--prometheus-rule", "oclaw-system"])
        .output()
        .unwrap();
    assert!(rendered.status.success());
    let resource: serde_json::Value = serde_saphyr::from_slice(&rendered.stdout).unwrap();
    assert_eq!(resource["kind"], "PrometheusRule");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("from-prometheusrule.yml");
    std::fs::write(&spec, serde_saphyr::to_string(&resource["spec"]).unwrap()).unwrap();
    let check = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&spec)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let found = format!("{} rules found", rule_exprs().len());
    assert!(String::from_utf8_lossy(&check.stdout).contains(&found));
    // Every alert of the rule file has a firing case in the unit tests.
    let tests =
        std::fs::read_to_string(repo().join("deploy/prometheus/tests/oclaw-rules.test.yml"))
            .unwrap();
    for (alert, _) in rule_exprs() {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "{alert} has no unit test"
        );
    }
}

#[test]
fn dashboard_queries_are_valid_promql() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    // promtool checks PromQL through a rule file: one recording rule per dashboard query.
    let rules: Vec<Value> = dashboard_exprs()
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| json!({"record": format!("dashboard:query_{i}"), "expr": expr}))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(
        &file,
        serde_saphyr::to_string(&json!({"groups": [{"name": "dashboard", "rules": rules}]}))
            .unwrap(),
    )
    .unwrap();
    let check = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

const NODE_CONFIG: &str = r#"
worker:
  concurrency: 1
bots:
  - metadata: {name: quick}
    spec:
      steps:
        - {id: echo, uses: template, with: {value: "{{ input.i }}"}}
  - metadata: {name: jam}
    spec:
      queue: jam
      steps:
        - {id: nap, uses: sleep, with: {duration: 60s}}
"#;

/// Sample names exported by a live `/metrics`.
async fn live_metric_names(c: &reqwest::Client, base: &str) -> BTreeSet<String> {
    let (code, body) = get(c, &format!("{base}/metrics")).await;
    assert_eq!(code, 200);
    body.as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_dashboard_name_exists() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), NODE_CONFIG);
    let c = client();
    // Traffic, so per-bot series exist.
    let (code, body, _) = post(
        &c,
        &format!("{}/v1/bots/quick/invoke", node.url),
        r#"{"input": {"i": 1}}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let live = live_metric_names(&c, &node.url).await;
    let mut named = BTreeSet::new();
    for (what, expr) in rule_exprs().into_iter().chain(dashboard_exprs()) {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "no metric found in {what}: {expr}");
        named.extend(names);
    }
    // `up` is made by Prometheus itself, not exported.
    named.remove("up");
    let missing: Vec<&String> = named.iter().filter(|n| !live.contains(*n)).collect();
    assert!(missing.is_empty(), "named but not exported: {missing:?}");
    // The four seed metrics are among them.
    for seed in [
        "oclaw_api_request_duration_seconds_bucket",
        "oclaw_queue_backlog",
        "oclaw_scheduling_failures_total",
        "oclaw_node_cpu_utilization_ratio",
    ] {
        assert!(named.contains(seed), "{seed} is used by no rule or panel");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus or Alertmanager server for one test, killed when dropped; its log goes to
/// `dir/log`.
struct Service(std::process::Child);

impl Service {
    fn start(program: &Path, args: &[String], dir: &Path, log: &str) -> Service {
        let log = std::fs::File::create(dir.join(log)).unwrap();
        Service(
            Command::new(program)
                .args(args)
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_fires_the_backlog_alert_on_a_real_node() {
    let Some(prometheus) = tool("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), NODE_CONFIG);
    let c = client();
    // 1,500 tasks on a queue whose one worker slot sleeps for a minute: the worker holds a few
    // hundred under lease (its claim buffer), the rest wait — a backlog above 1,000.
    for chunk in 0..3 {
        let tasks: Vec<Value> = (0..500)
            .map(|i| json!({"bot": "jam", "input": {"i": chunk * 500 + i}}))
            .collect();
        let (code, body, _) = post(
            &c,
            &format!("{}/v1/tasks/batch", node.url),
            &json!({ "tasks": tasks }).to_string(),
        )
        .await;
        assert_eq!(code, 202, "{body}");
    }
    // The shipped rules with `for:` shortened to 2s; thresholds unchanged.
    let rules = std::fs::read_to_string(rules_path()).unwrap();
    let rules: String = rules
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for:") {
            Some(_) => format!("{}for: 2s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
    let target = node.url.trim_start_matches("http://");
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [rules.yml]\n\
             scrape_configs:\n  - job_name: oclaw\n    static_configs: [{{targets: ['{target}']}}]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let _prom = Service::start(
        &prometheus,
        &[
            format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        dir.path(),
        "prometheus.log",
    );
    let api = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut states = Vec::new();
    let firing = loop {
        if let Ok(r) = c.get(format!("{api}/api/v1/alerts")).send().await {
            if let Ok(body) = r.json::<Value>().await {
                let backlog: Vec<Value> = body["data"]["alerts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|a| a["labels"]["alertname"] == "OclawQueueBacklogHigh")
                    .collect();
                for a in &backlog {
                    let s = a["state"].as_str().unwrap_or("").to_string();
                    if states.last() != Some(&s) {
                        states.push(s);
                    }
                }
                if let Some(a) = backlog.iter().find(|a| a["state"] == "firing") {
                    break a.clone();
                }
            }
        }
        if Instant::now() > deadline {
            let seen = c
                .get(format!("{api}/api/v1/query?query=oclaw_queue_backlog"))
                .send()
                .await
                .map(|r| r.status().to_string());
            let rules = match c.get(format!("{api}/api/v1/rules")).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            panic!(
                "the backlog alert did not fire (states seen {states:?}); backlog query {seen:?}; rules {rules}; prometheus log: {}",
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(firing["labels"]["queue"], "jam", "{firing}");
    assert_eq!(firing["labels"]["severity"], "warning");
    assert!(
        firing["value"].as_str().unwrap().parse::<f64>().unwrap() > 1000.0,
        "{firing}"
    );
    assert_eq!(
        states.first().map(String::as_str),
        Some("pending"),
        "{states:?}"
    );
    // The other queue is not in the alert, and the dashboard's queries all evaluate.
    for (title, expr) in dashboard_exprs() {
        let r: Value = c
            .get(format!("{api}/api/v1/query"))
            .query(&[("query", expr.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["status"], "success", "{title}: {expr}: {r}");
    }
}

#[test]
fn metric_names_are_found_in_expressions() {
    let names = metric_names(
        "sum by (le) (rate(oclaw_api_request_duration_seconds_bucket{job=~\"oclaw.*\"}[5m])) / up == 0",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["oclaw_api_request_duration_seconds_bucket", "up"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_alertmanager_notifications_are_handled_by_the_example_bot() {
    let Some(alertmanager) = tool("prometheus-alertmanager") else {
        return;
    };
    let route = common::recorder().await; // stands in for a chat/paging webhook
    let fixer = common::recorder().await; // stands in for a remediation endpoint
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("sqlite://{}", dir.path().join("oclaw.db").display());
    // No bots configured: the built-in examples, alert-handler among them.
    let node = common::start_process_env(
        dir.path(),
        "{}\n",
        &["serve", "--listen", "127.0.0.1:0"],
        &storage,
        &[(
            "OCLAW_SECRET_ALERT_WEBHOOK_URL",
            &format!("{}/chat", route.url),
        )],
    );
    std::fs::write(
        dir.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: oclaw\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 2s\n\
             receivers:\n  - name: oclaw\n    webhook_configs:\n      - url: {}/hooks/alertmanager\n        send_resolved: true\n",
            node.url
        ),
    )
    .unwrap();
    let port = free_port();
    let _am = Service::start(
        &alertmanager,
        &[
            format!(
                "--config.file={}",
                dir.path().join("alertmanager.yml").display()
            ),
            format!("--storage.path={}", dir.path().join("am").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".to_string(),
        ],
        dir.path(),
        "alertmanager.log",
    );
    let am = format!("http://127.0.0.1:{port}");
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .get(format!("{am}/-/ready"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "alertmanager did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alert = |ends: Option<chrono::DateTime<chrono::Utc>>| {
        let mut a = json!({
            "labels": {"alertname": "OclawQueueBacklogHigh", "severity": "critical", "queue": "jam"},
            "annotations": {"summary": "queue jam has 1500 tasks waiting", "remediate_url": format!("{}/scale", fixer.url)},
            "startsAt": (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339(),
        });
        if let Some(e) = ends {
            a["endsAt"] = json!(e.to_rfc3339());
        }
        json!([a])
    };
    let r = c
        .post(format!("{am}/api/v2/alerts"))
        .json(&alert(None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Alertmanager notifies, then repeats every 2 s: wait for at least two notifications.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, tasks) = get(
            &c,
            &format!("{}/v1/tasks?bot=alert-handler&status=succeeded", node.url),
        )
        .await;
        if tasks["items"].as_array().unwrap().len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alertmanager did not notify twice: {tasks}; log: {}",
            std::fs::read_to_string(dir.path().join("alertmanager.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Routed and remediated once, though notified more often.
    {
        let routed = route.requests.lock().unwrap();
        assert_eq!(routed.len(), 1, "{routed:?}");
        assert_eq!(routed[0].0, "/chat");
        assert!(
            routed[0].1["text"]
                .as_str()
                .unwrap()
                .starts_with("[FIRING] firing: 1 alert (OclawQueueBacklogHigh)"),
            "{routed:?}"
        );
        assert_eq!(routed[0].1["alerts"][0]["where"], "jam");
        // The remediation waits for a person's approval.
        assert!(fixer.requests.lock().unwrap().is_empty());
    }
    let (_, approvals) = get(&c, &format!("{}/v1/approvals?status=pending", node.url)).await;
    let approvals = approvals["items"].as_array().unwrap().clone();
    assert_eq!(
        approvals.len(),
        1,
        "one approval for the remediation: {approvals:?}"
    );
    assert!(
        approvals[0]["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("OclawQueueBacklogHigh"),
        "{approvals:?}"
    );
    let (code, decided, _) = common::post(
        &c,
        &format!("{}/v1/approvals/{}/approve", node.url, approvals[0]["id"]),
        r#"{"by": "oncall"}"#,
    )
    .await;
    assert_eq!(code, 200, "{decided}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while fixer.requests.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the approved remediation did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let fixed = fixer.requests.lock().unwrap();
        assert_eq!(fixed.len(), 1, "{fixed:?}");
        assert_eq!(fixed[0].0, "/scale");
    }
    assert!(
        node.logs()
            .contains("PAGE: 1 critical alert(s): OclawQueueBacklogHigh jam"),
        "critical alerts page"
    );
    // Resolving the alert routes the resolution once more, without remediation.
    let r = c
        .post(format!("{am}/api/v2/alerts"))
        .json(&alert(Some(chrono::Utc::now())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if route.requests.lock().unwrap().len() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the resolution was not routed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let routed = route.requests.lock().unwrap();
    assert!(
        routed[1].1["text"]
            .as_str()
            .unwrap()
            .starts_with("[RESOLVED]"),
        "{routed:?}"
    );
    assert_eq!(fixer.requests.lock().unwrap().len(), 1);
}

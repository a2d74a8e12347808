//! WebAssembly plugins in a real `oclaw serve`: the example plugins built from C (clang/lld) and
//! AssemblyScript, capability grants, the `oclaw plugin` CLI, misbehaving plugins (each fails its
//! step with its own code and the node stays healthy) and hot reload with a call in flight.
//! The misbehaving plugins are small WebAssembly text modules written here.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

/// A plugin folder with a text-format module: `oclaw_call` runs `body` (locals: `$i`); data at
/// 16 is `{"version":"<version>"}`, at 64 `{not json`.
fn wat_plugin(
    root: &Path,
    name: &str,
    version: &str,
    imports: &str,
    body: &str,
    caps: &[&str],
    limits: &str,
) -> PathBuf {
    let data = format!(
        r#"(data (i32.const 16) "{{\"version\":\"{version}\"}}") (data (i32.const 64) "{{not json")"#
    );
    let wat = oclaw_plugins::wat::module(imports, &data, body);
    oclaw_plugins::wat::write_plugin(root, name, version, &wat, caps, limits).unwrap()
}

/// Hands over `{"version":"<v>"}` (15 bytes at offset 16 for a one-character version).
const ANSWER: &str = "(call $output (i32.const 16) (i32.const 15)) (i32.const 0)";

fn install(dir: &Path, src: &Path) -> std::process::Output {
    common::oclaw()
        .args(["plugin", "install", "--dir"])
        .arg(dir)
        .arg(src)
        .output()
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

use common::{assert_failed, invoke};

#[test]
fn plugin_cli_installs_lists_inspects_removes_and_refuses_bad_plugins() {
    let Some(examples) = common::example_plugins() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plugins");
    for name in ["text-tools", "link-check"] {
        let o = install(&dir, &examples.join(name));
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stdout(&o).contains(&format!("installed {name} 1.0.0")),
            "{}",
            stdout(&o)
        );
    }
    let o = common::oclaw()
        .args(["plugin", "list", "-o", "json", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["link-check", "text-tools"]);
    assert!(
        list.as_array().unwrap().iter().all(|p| p["status"] == "ok"),
        "{list}"
    );
    assert_eq!(
        list[1]["skills"],
        json!([
            "text-tools.slugify",
            "text-tools.word_count",
            "text-tools.count"
        ])
    );

    let o = common::oclaw()
        .args(["plugin", "inspect", "text-tools", "-o", "json", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["digest_verified"], true);
    assert_eq!(doc["capabilities"], json!(["log", "kv"]));
    let mut imports: Vec<&str> = doc["host_imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    imports.sort();
    assert_eq!(imports, ["kv_get", "kv_set", "log", "output"]);
    assert_eq!(doc["limits"]["memory_bytes"], 2 * 1024 * 1024);

    // Refused, each with OC-4027 and a reason, and nothing written.
    let bad = tmp.path().join("bad");
    let corrupt = bad.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(
        corrupt.join("m.wasm"),
        b"\0asm\x01\0\0\0garbage that is not a module",
    )
    .unwrap();
    let digest =
        oclaw_plugins::manifest::sha256_hex(b"\0asm\x01\0\0\0garbage that is not a module");
    std::fs::write(
        corrupt.join("plugin.yaml"),
        format!("name: corrupt\nversion: 1.0.0\nabi: 1\nmodule: m.wasm\nsha256: \"{digest}\"\nskills: [{{name: run}}]\n"),
    )
    .unwrap();
    let not_plugin = bad.join("empty");
    std::fs::create_dir_all(&not_plugin).unwrap();
    std::fs::write(
        not_plugin.join("m.wat"),
        "(module (memory (export \"memory\") 1))",
    )
    .unwrap();
    std::fs::write(
        not_plugin.join("plugin.yaml"),
        format!(
            "name: empty\nversion: 1.0.0\nabi: 1\nmodule: m.wat\nsha256: \"{}\"\nskills: [{{name: run}}]\n",
            oclaw_plugins::manifest::sha256_hex(b"(module (memory (export \"memory\") 1))")
        ),
    )
    .unwrap();
    let wasi = wat_plugin(
        &bad,
        "wasi",
        "1",
        r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
        ANSWER,
        &[],
        "{}",
    );
    let undeclared = wat_plugin(
        &bad,
        "sneaky",
        "1",
        r#"(import "oclaw" "http_fetch" (func (param i32 i32) (result i64)))"#,
        ANSWER,
        &["log"],
        "{}",
    );
    let tampered = wat_plugin(&bad, "tampered", "1", "", ANSWER, &[], "{}");
    std::fs::write(tampered.join("module.wat"), "(module)").unwrap();
    let cases: [(&Path, &str); 5] = [
        (&corrupt, "not valid WebAssembly"),
        (&not_plugin, "does not export function `oclaw_abi_v1`"),
        (&wasi, "imports `wasi_snapshot_preview1.fd_write`"),
        (&undeclared, "does not ask for capability `http`"),
        (&tampered, "has SHA-256"),
    ];
    for (src, why) in cases {
        let o = install(&dir, src);
        assert!(!o.status.success(), "{} was installed", src.display());
        let err = stderr(&o);
        assert!(
            err.contains("OC-4027") && err.contains(why),
            "{}: {err}",
            src.display()
        );
    }
    let installed: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(installed.len(), 2, "{installed:?}");

    let o = common::oclaw()
        .args(["plugin", "remove", "link-check", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("removed link-check 1.0.0"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.join("link-check").exists());
    let o = common::oclaw()
        .args(["plugin", "remove", "link-check", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        !o.status.success() && stderr(&o).contains("OC-4028"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_plugins_run_in_bots_within_their_grants() {
    let Some(examples) = common::example_plugins() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plugins");
    for name in ["text-tools", "link-check"] {
        assert!(install(&dir, &examples.join(name)).status.success());
    }
    let site = common::recorder_answering(r#"{"up": true}"#).await;
    let host = site.url.trim_start_matches("http://").to_string();
    let config = format!(
        r#"
plugins: {{dir: plugins}}
bots:
  - metadata: {{name: slug}}
    spec:
      steps:
        - {{id: s, uses: text-tools.slugify, with: {{text: "{{{{ input.text }}}}"}}}}
        - {{id: w, uses: text-tools.word_count, with: {{text: "{{{{ input.text }}}}"}}}}
  - metadata: {{name: raw}}
    spec:
      steps: [{{id: s, uses: text-tools.slugify}}]
  - metadata: {{name: counter}}
    spec:
      grants: {{text-tools: {{capabilities: [kv, log]}}}}
      steps: [{{id: c, uses: text-tools.count, with: {{key: "{{{{ input.key }}}}"}}}}]
  - metadata: {{name: counter-ungranted}}
    spec:
      grants: {{text-tools: {{capabilities: [log]}}}}
      steps: [{{id: c, uses: text-tools.count, with: {{key: k}}}}]
  - metadata: {{name: links}}
    spec:
      allow_private_network: true
      grants: {{link-check: {{capabilities: [http, log], http_allow: ["{host}"]}}}}
      steps: [{{id: l, uses: link-check.status, with: {{url: "{{{{ input.url }}}}"}}}}]
  - metadata: {{name: links-elsewhere}}
    spec:
      allow_private_network: true
      grants: {{link-check: {{capabilities: [http, log], http_allow: ["example.com"]}}}}
      steps: [{{id: l, uses: link-check.status, with: {{url: "{{{{ input.url }}}}"}}}}]
"#
    );
    let node = common::start(tmp.path(), &config);
    let base = node.url.clone();

    let a = invoke(&base, "slug", json!({"text": "Hello, World! 你好 2026"})).await;
    assert_eq!(a["status"], "succeeded", "{a}");
    // The task's output is the last step's; the first step's slug is checked through `raw`.
    assert_eq!(a["output"], json!({"words": 4, "chars": 21}));
    let a = invoke(&base, "raw", json!({"text": "Hello, World! 你好 2026"})).await;
    assert_eq!(a["output"], json!({"slug": "hello-world-你好-2026"}), "{a}");
    // The input schema is checked before the call.
    let a = invoke(&base, "raw", json!({"title": "no text"})).await;
    assert_failed(&a, "OC-4012", "\"text\" is a required property");

    for expected in 1..=3 {
        let a = invoke(&base, "counter", json!({"key": "visits"})).await;
        assert_eq!(
            a["output"],
            json!({"key": "visits", "count": expected}),
            "{a}"
        );
    }
    let a = invoke(&base, "counter-ungranted", json!({})).await;
    assert_failed(&a, "OC-4024", "capability `kv`");

    let a = invoke(
        &base,
        "links",
        json!({"url": format!("{}/health", site.url)}),
    )
    .await;
    assert_eq!(
        a["output"],
        json!({"url": format!("{}/health", site.url), "status": 200, "ok": true}),
        "{a}"
    );
    assert_eq!(site.requests.lock().unwrap().len(), 1);
    let a = invoke(
        &base,
        "links-elsewhere",
        json!({"url": format!("{}/x", site.url)}),
    )
    .await;
    assert_failed(&a, "OC-4024", "http_allow");
    assert_eq!(
        site.requests.lock().unwrap().len(),
        1,
        "a refused request must not be sent"
    );

    let logs = node.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("\"component\":\"plugin\"") && l.contains("counted visits = 3")),
        "plugin log lines carry component=plugin:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_plugins_fail_with_their_codes_and_the_node_stays_healthy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plugins");
    let src = tmp.path().join("src");
    let kv_get = r#"(import "oclaw" "kv_get" (func $kv_get (param i32 i32) (result i64)))"#;
    let plugins = [
        (
            "spin",
            "",
            "(loop $l (br $l)) (i32.const 0)",
            vec![],
            "{timeout: 300ms}",
        ),
        (
            "spin-fuel",
            "",
            "(loop $l (br $l)) (i32.const 0)",
            vec![],
            "{timeout: 10s, fuel: 1000000}",
        ),
        (
            "hog",
            "",
            "(loop $l (drop (memory.grow (i32.const 16))) (br $l)) (i32.const 0)",
            vec![],
            "{memory: 1Mi}",
        ),
        ("crash", "", "unreachable", vec![], "{}"),
        (
            "babble",
            "",
            "(call $output (i32.const 64) (i32.const 9)) (i32.const 0)",
            vec![],
            "{}",
        ),
        (
            "snoop",
            kv_get,
            "(drop (call $kv_get (i32.const 16) (i32.const 4))) (i32.const 0)",
            vec!["kv"],
            "{}",
        ),
        ("good", "", ANSWER, vec![], "{}"),
    ];
    let mut bots = String::new();
    for (name, imports, body, caps, limits) in &plugins {
        let p = wat_plugin(&src, name, "1", imports, body, caps, limits);
        let o = install(&dir, &p);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        bots.push_str(&format!(
            "  - metadata: {{name: {name}}}\n    spec:\n      retry: {{max_attempts: 1}}\n      steps: [{{id: run, uses: {name}.run}}]\n"
        ));
    }
    bots.push_str("  - metadata: {name: plain}\n    spec:\n      steps: [{id: echo, uses: template, with: {value: \"{{ input.x }}\"}}]\n");
    let config = format!("plugins: {{dir: plugins}}\nworker: {{concurrency: 12}}\nbots:\n{bots}");
    let node = common::start(tmp.path(), &config);
    let base = node.url.clone();

    let expect = [
        ("spin", "OC-4022", "ran longer than its limit"),
        ("spin-fuel", "OC-4022", "ran out of fuel"),
        ("hog", "OC-4023", "past its limit of 1048576 bytes"),
        ("crash", "OC-4025", "trapped"),
        ("babble", "OC-4026", "not valid JSON"),
        ("snoop", "OC-4024", "capability `kv`"),
    ];
    for (bot, code, text) in expect {
        let a = invoke(&base, bot, json!({})).await;
        assert_failed(&a, code, text);
    }

    // Side by side: a built-in bot's invokes before and while eight runaway plugin calls are in
    // flight (printed, not asserted: tests never assert times; `oclaw bench plugin --noisy`
    // measures it), and a well-behaved plugin bot that keeps answering.
    let c = common::client();
    async fn latencies(base: &str, bot: &str, n: usize) -> Vec<Duration> {
        let mut all = Vec::new();
        for _ in 0..n {
            let started = std::time::Instant::now();
            let a = invoke(base, bot, json!({"x": 1})).await;
            assert_eq!(a["status"], "succeeded", "{bot}: {a}");
            all.push(started.elapsed());
        }
        all.sort();
        all
    }
    let quiet = latencies(&base, "plain", 30).await;
    let mut spinning = Vec::new();
    for _ in 0..8 {
        let (s, t, _) = common::post(
            &c,
            &format!("{base}/v1/tasks"),
            r#"{"bot": "spin", "input": {}}"#,
        )
        .await;
        assert_eq!(s, 202, "{t}");
        spinning.push(t["id"].as_str().unwrap().to_string());
    }
    let busy = latencies(&base, "plain", 30).await;
    eprintln!(
        "built-in bot invoke: quiet p50 {:?} max {:?}; beside 8 runaway plugin calls p50 {:?} max {:?}",
        quiet[15], quiet[29], busy[15], busy[29]
    );
    for _ in 0..5 {
        let a = invoke(&base, "good", json!({})).await;
        assert_eq!(a["output"], json!({"version": "1"}), "{a}");
    }
    for id in &spinning {
        let t = common::wait_status(&c, &base, id, "failed", Duration::from_secs(20)).await;
        assert_eq!(t["error"]["code"], "OC-4022", "{t}");
    }
    let (s, _) = common::get(&c, &format!("{base}/healthz")).await;
    assert_eq!(s, 200);
    let (s, _) = common::get(&c, &format!("{base}/readyz")).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_is_loaded_while_a_call_of_the_old_one_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plugins");
    let src = tmp.path().join("src");
    // Version 1 counts to 3 billion before it answers (seconds); version 2 answers at once.
    let slow = format!(
        "(loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (i32.const 3000000000)))) {ANSWER}"
    );
    let v1 = wat_plugin(&src, "swap", "1", "", &slow, &[], "{timeout: 30s}");
    let v2 = wat_plugin(&src, "swap", "2", "", ANSWER, &[], "{timeout: 30s}");
    assert!(install(&dir, &v1).status.success());
    let config = "plugins: {dir: plugins, reload_interval: 200ms}\nbots:\n  - metadata: {name: swap}\n    spec:\n      steps: [{id: run, uses: swap.run}]\n";
    let node = common::start(tmp.path(), config);
    let base = node.url.clone();
    let c = common::client();
    let (_, t, _) = common::post(
        &c,
        &format!("{base}/v1/tasks"),
        r#"{"bot": "swap", "input": {}}"#,
    )
    .await;
    let first = t["id"].as_str().unwrap().to_string();
    common::wait_status(&c, &base, &first, "running", Duration::from_secs(10)).await;
    let o = install(&dir, &v2);
    assert!(
        stdout(&o).contains("upgraded swap 1 -> 2"),
        "{}",
        stderr(&o)
    );
    // The node loads version 2 (its log says so) while the call of version 1 still runs. (New
    // calls of version 2 may queue behind it for the plugin threads: one on two cores.)
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !node
        .logs()
        .lines()
        .any(|l| l.contains("plugin loaded") && l.contains("\"version\":\"2\""))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "version 2 was not loaded: {}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, during) = common::get(&c, &format!("{base}/v1/tasks/{first}")).await;
    assert_eq!(
        during["status"], "running",
        "the call of version 1 was still in flight when version 2 was loaded: {during}"
    );
    let done = common::wait_status(&c, &base, &first, "succeeded", Duration::from_secs(60)).await;
    assert_eq!(
        done["output"],
        json!({"version": "1"}),
        "the call in flight finishes on its version"
    );
    assert!(node.logs().contains("plugin loaded"), "{}", node.logs());
}

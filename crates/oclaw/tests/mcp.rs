//! MCP tool servers as skills in a real `oclaw serve`: the reference "everything" server from
//! npm over stdio and over streamable HTTP, and a stdio server written here whose tools hang,
//! crash, answer garbage or report errors (`tests/fixtures/mcp_misbehaving.cjs`).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::{assert_failed, invoke};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_server_tools_run_as_skills_over_stdio_and_streamable_http() {
    let Some(everything) = common::mcp_everything() else {
        return;
    };
    let port = common::free_port();
    let _http_server = common::PrivateServer::start_env(
        "node",
        &[everything.to_str().unwrap(), "streamableHttp"],
        &[("PORT", &port.to_string())],
        port,
    );
    // The port opens before the server answers HTTP: wait for an answer (any status).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while common::client()
        .get(format!("http://127.0.0.1:{port}/mcp"))
        .send()
        .await
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the MCP server never answered HTTP"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
mcp:
  servers:
    everything: {{command: node, args: ["{entry}", stdio], timeout: 20s}}
    remote: {{url: "http://127.0.0.1:{port}/mcp", timeout: 20s}}
bots:
  - metadata: {{name: sum}}
    spec:
      steps: [{{id: add, uses: mcp.everything.get-sum, with: {{a: 2, b: 3}}}}]
  - metadata: {{name: echo}}
    spec:
      steps: [{{id: echo, uses: mcp.everything.echo}}]
  - metadata: {{name: remote-sum}}
    spec:
      steps: [{{id: add, uses: mcp.remote.get-sum, with: {{a: 40, b: 2}}}}]
"#,
        entry = everything.display()
    );
    std::fs::write(tmp.path().join("skills.yaml"), &config).unwrap();
    let o = common::oclaw()
        .args(["skill", "list", "-o", "json", "--config", "skills.yaml"])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let skills: Value = serde_json::from_slice(&o.stdout).unwrap();
    let origin = |name: &str| {
        skills
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["origin"].clone())
    };
    assert_eq!(origin("mcp.everything.echo"), Some(json!("mcp everything")));
    assert_eq!(origin("mcp.remote.get-sum"), Some(json!("mcp remote")));
    assert_eq!(origin("transform"), Some(json!("built-in")));

    let node = common::start(tmp.path(), &config);
    let base = node.url.clone();
    let a = invoke(&base, "sum", json!({"a": 2})).await;
    assert_eq!(a["status"], "succeeded", "{a}");
    assert!(a["output"]["text"].as_str().unwrap().contains('5'), "{a}");
    let a = invoke(&base, "echo", json!({"message": "hello over stdio"})).await;
    assert!(
        a["output"]["text"]
            .as_str()
            .unwrap()
            .contains("hello over stdio"),
        "{a}"
    );
    // Arguments are checked against the tool's input schema before the call.
    let a = invoke(&base, "echo", json!({"text": "wrong field"})).await;
    assert_failed(&a, "OC-4012", "do not match its schema");
    let a = invoke(&base, "remote-sum", json!({})).await;
    assert_eq!(a["status"], "succeeded", "{a}");
    assert!(a["output"]["text"].as_str().unwrap().contains("42"), "{a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_hangs_crashes_or_answers_garbage_fails_the_step_and_comes_back() {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        common::missing::<()>("node (Node.js) is needed for the MCP test server");
        return;
    }
    let fixture = common::workspace_root()
        .join("crates/oclaw/tests/fixtures/mcp_misbehaving.cjs")
        .canonicalize()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut bots = String::new();
    for tool in ["ok", "hang", "crash", "garbage", "fail"] {
        bots.push_str(&format!(
            "  - metadata: {{name: {tool}}}\n    spec:\n      retry: {{max_attempts: 1}}\n      steps: [{{id: t, uses: mcp.flaky.{tool}, with: {{}}}}]\n"
        ));
    }
    let config = format!(
        "mcp:\n  servers:\n    flaky: {{command: node, args: [\"{}\"], timeout: 1s}}\nbots:\n{bots}",
        fixture.display()
    );
    let node = common::start(tmp.path(), &config);
    let base = node.url.clone();

    let first = invoke(&base, "ok", json!({})).await;
    let pid = first["output"]["text"].as_str().unwrap().to_string();
    assert!(pid.starts_with("pid "), "{first}");

    let a = invoke(&base, "hang", json!({})).await;
    assert_failed(&a, "OC-4022", "no answer within");
    let a = invoke(&base, "fail", json!({})).await;
    assert_failed(&a, "OC-4029", "failed on purpose");
    let a = invoke(&base, "garbage", json!({})).await;
    assert_failed(&a, "OC-4026", "Unexpected response");
    // The same server still answers after hang and garbage.
    let a = invoke(&base, "ok", json!({})).await;
    assert_eq!(a["output"]["text"], pid.as_str(), "{a}");

    let a = invoke(&base, "crash", json!({})).await;
    assert_failed(&a, "OC-4028", "went away");
    // The crashed server is started again for the next call: another process answers.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let a = invoke(&base, "ok", json!({})).await;
        if a["status"] == "succeeded" {
            let again = a["output"]["text"].as_str().unwrap();
            assert!(again.starts_with("pid ") && again != pid, "{a}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not restarted: {a}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, _) = common::get(&common::client(), &format!("{base}/readyz")).await;
    assert_eq!(s, 200);
}

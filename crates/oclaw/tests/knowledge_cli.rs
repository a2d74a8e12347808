//! Knowledge through the real binary: a folder added with one command (`oclaw kb add`, with
//! progress), searched in English and Chinese with the real in-process embedding model,
//! re-added unchanged, a document removed, a bad file reported; an import killed (-9) half-way
//! finishing after a restart without duplicate chunks; a URL to a private address refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{client, get, post, start};
use serde_json::{json, Value};

use common::cli;

/// The embedding model installed by `.ci/install-tools`, or `None` outside CI without it.
fn model_dir() -> Option<PathBuf> {
    let dir = common::workspace_root().join("target/test-models/all-MiniLM-L6-v2");
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    common::missing("the embedding model (target/test-models/all-MiniLM-L6-v2)")
}

fn knowledge_config(model: &Option<PathBuf>) -> String {
    match model {
        Some(dir) => format!(
            "knowledge: {{embedder: local, model_dir: \"{}\"}}\n",
            dir.display()
        ),
        None => "{}\n".into(),
    }
}

fn first_document(search_json: &str) -> String {
    let v: Value = serde_json::from_str(search_json).unwrap();
    v["hits"][0]["document"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_added_with_one_command_answers_english_and_chinese_questions() {
    let model = model_dir();
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &knowledge_config(&model));
    let folder = common::workspace_root().join("examples/knowledge/support");
    let (code, out, err) = cli(&node.url, &["kb", "add", "docs", folder.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("created collection docs"), "{err}");
    assert!(err.contains("15/15 documents"), "progress: {err}");
    assert!(
        out.contains("docs: 15 added, 0 updated, 0 unchanged, 0 failed"),
        "{out}"
    );

    let (code, out, _) = cli(&node.url, &["kb", "list"]);
    assert_eq!(code, 0);
    let row = out.lines().find(|l| l.starts_with("docs ")).unwrap();
    assert!(row.split_whitespace().nth(1) == Some("15"), "{out}");
    if model.is_some() {
        assert!(row.contains("local/all-MiniLM-L6-v2 (384)"), "{out}");
    } else {
        assert!(row.contains("none (full-text)"), "{out}");
    }

    let search = |q: &str| {
        let (code, out, err) = cli(&node.url, &["kb", "search", "docs", q, "-o", "json"]);
        assert_eq!(code, 0, "{err}");
        out
    };
    let english = search("When do I get my money back after sending something back?");
    assert_eq!(first_document(&english), "refunds.md", "{english}");
    let mode: Value = serde_json::from_str(&english).unwrap();
    assert_eq!(
        mode["mode"],
        if model.is_some() {
            "hybrid"
        } else {
            "full-text"
        }
    );
    let chinese = search("退货以后钱多久能回到卡里？");
    assert_eq!(first_document(&chinese), "refunds-zh.md", "{chinese}");
    let hit: Value = serde_json::from_str(&chinese).unwrap();
    assert_eq!(hit["hits"][0]["title"], "退款说明");
    assert!(hit["hits"][0]["source"]
        .as_str()
        .unwrap()
        .ends_with("support/refunds-zh.md"));
    // The table for people.
    let (_, table, _) = cli(&node.url, &["kb", "search", "docs", "password reset link"]);
    assert!(
        table.lines().nth(1).unwrap().contains("account.md"),
        "{table}"
    );

    // The same folder again: nothing changed, nothing indexed again.
    let (code, out, _) = cli(&node.url, &["kb", "add", "docs", folder.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("0 added, 0 updated, 15 unchanged"), "{out}");

    // A bad file is reported with its code and the rest goes in.
    let extra = dir.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    std::fs::write(
        extra.join("good.md"),
        "# Gift wrap\n\nWe wrap gifts for $3.",
    )
    .unwrap();
    std::fs::write(extra.join("bad.md"), b"caf\xe9").unwrap();
    std::fs::write(
        extra.join("empty.html"),
        "<html><script>x()</script></html>",
    )
    .unwrap();
    let (code, out, _) = cli(&node.url, &["kb", "add", "docs", extra.to_str().unwrap()]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("1 added") && out.contains("2 failed"), "{out}");
    assert!(out.contains("bad.md: OC-2025"), "{out}");
    assert!(out.contains("empty.html: OC-2025"), "{out}");
    assert_eq!(first_document(&search("gift wrapping price")), "good.md");

    // Removing a document.
    let (code, _, err) = cli(&node.url, &["kb", "remove", "docs", "refunds.md"]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(
        first_document(&search("money back after a return")),
        "refunds.md"
    );
    let (code, _, err) = cli(&node.url, &["kb", "remove", "docs", "refunds.md"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("OC-2023"), "{err}");

    // Removing the collection needs --yes.
    let (code, _, err) = cli(&node.url, &["kb", "remove", "docs"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = cli(&node.url, &["kb", "remove", "docs", "--yes"]);
    assert_eq!(code, 0);
    let (code, _, err) = cli(&node.url, &["kb", "search", "docs", "refund"]);
    assert_eq!(code, 3);
    assert!(err.contains("OC-2022"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_half_way_finishes_after_a_restart_without_duplicate_chunks() {
    let model = model_dir();
    let dir = tempfile::tempdir().unwrap();
    let config = knowledge_config(&model);
    let mut node = start(dir.path(), &config);
    let folder = dir.path().join("many");
    std::fs::create_dir(&folder).unwrap();
    let n = 300;
    for i in 0..n {
        // Two sections each: two chunks per document.
        std::fs::write(
            folder.join(format!("doc-{i:03}.md")),
            format!("# Part A of {i}\n\nArticle {i} talks about item {i}.\n\n# Part B of {i}\n\nMore on {i}."),
        )
        .unwrap();
    }
    let (code, out, err) = cli(
        &node.url,
        &["kb", "add", "bulk", folder.to_str().unwrap(), "--no-wait"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().count(), n, "one queued task per document");
    let c = client();
    // Killed while ingestion tasks are still queued or running.
    let (_, before) = get(&c, &format!("{}/v1/kb/bulk", node.url)).await;
    node.kill9();
    let before = before["documents"].as_u64().unwrap();
    eprintln!("documents in when the node was killed: {before} of {n}");
    if model.is_some() {
        // Embedding makes each document take tens of milliseconds: the kill lands half-way.
        assert!(
            before < n as u64,
            "the kill landed before the import finished"
        );
    }
    let node = start(dir.path(), &config);
    let deadline = Instant::now() + Duration::from_secs(240);
    let info = loop {
        let (_, info) = get(&c, &format!("{}/v1/kb/bulk", node.url)).await;
        if info["documents"] == n || Instant::now() > deadline {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(info["documents"], n, "{info}");
    assert_eq!(info["chunks"], 2 * n, "no chunk twice: {info}");
    // Every ingestion task finished, none failed.
    for status in ["failed", "dead"] {
        let (_, tasks) = get(
            &c,
            &format!(
                "{}/v1/tasks?bot=oclaw.ingest&status={status}&limit=10",
                node.url
            ),
        )
        .await;
        assert_eq!(tasks["items"], json!([]), "{tasks}");
    }
    let (_, hits) = get(
        &c,
        &format!("{}/v1/kb/bulk/search?q=article%20217&k=1", node.url),
    )
    .await;
    assert_eq!(hits["hits"][0]["document"], "doc-217.md", "{hits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_from_private_addresses_and_bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), "{}\n");
    let c = client();
    let base = format!("{}/v1/kb", node.url);
    let (code, _, _) = post(&c, &base, r#"{"name": "web"}"#).await;
    assert_eq!(code, 201);
    let (code, body, _) = post(&c, &base, r#"{"name": "web"}"#).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("OC-2024"))
    );
    let (code, body, _) = post(&c, &base, r#"{"name": "no spaces"}"#).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (400, Some("OC-2002"))
    );
    // A page on loopback: the ingestion task fails with the SSRF code, nothing is added.
    let recorder = common::recorder().await;
    let (code, queued, _) = post(
        &c,
        &format!("{base}/web/documents"),
        &json!({"url": format!("{}/page.html", recorder.url)}).to_string(),
    )
    .await;
    assert_eq!(code, 202, "{queued}");
    let task = queued["task_id"].as_str().unwrap();
    let t = common::wait_status(&c, &node.url, task, "failed", Duration::from_secs(20)).await;
    assert_eq!(t["error"]["code"], "OC-4015", "{t}");
    assert!(
        recorder.requests.lock().unwrap().is_empty(),
        "the private address was never called"
    );
    let (_, info) = get(&c, &format!("{base}/web")).await;
    assert_eq!(info["documents"], 0);
    // Bad requests.
    for (body, code) in [
        (json!({}), "OC-2002"),
        (
            json!({"text": "a", "url": "https://example.com"}),
            "OC-2002",
        ),
        (json!({"url": "ftp://example.com/x"}), "OC-2002"),
        (json!({"text": "a", "format": "pdf"}), "OC-2002"),
        (json!({"text": "a", "metadata": {"tags": ["x"]}}), "OC-2002"),
        (json!({"text": "a", "shape": "round"}), "OC-2002"),
    ] {
        let (status, answer, _) =
            post(&c, &format!("{base}/web/documents"), &body.to_string()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
    let (status, answer, _) = post(&c, &format!("{base}/nope/documents"), r#"{"text": "a"}"#).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("OC-2022"))
    );
    let (status, answer) = get(&c, &format!("{base}/web/search?q=x&k=0")).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("OC-2002"))
    );
    // Vector search without vectors: the collection's state, not the request, is wrong.
    let (status, answer) = get(&c, &format!("{base}/web/search?q=x&mode=vector")).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("OC-2026")),
        "{answer}"
    );
}

/// Documents are ingested on queue `default`: a node none of whose workers serve it refuses
/// them at once instead of queueing tasks that would never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_does_not_serve_the_ingestion_queue_refuses_documents() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), "worker: {queues: [elsewhere]}\n");
    let c = client();
    let base = format!("{}/v1/kb", node.url);
    let (code, _, _) = post(&c, &base, r#"{"name": "docs"}"#).await;
    assert_eq!(code, 201);
    let (code, answer, _) = post(
        &c,
        &format!("{base}/docs/documents"),
        r#"{"text": "hello"}"#,
    )
    .await;
    assert_eq!(
        (code, answer["error"]["code"].as_str()),
        (409, Some("OC-2017")),
        "{answer}"
    );
}

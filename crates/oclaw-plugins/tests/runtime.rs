//! The plugin host without a node: fresh instances per call, manifest checks, reload reports.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use oclaw_core::config::PluginsConfig;
use oclaw_core::{Dur, ErrorCode};
use oclaw_plugins::{wat, PluginHost};
use serde_json::json;

fn host(dir: &std::path::Path) -> Arc<PluginHost> {
    let config = PluginsConfig {
        dir: dir.to_path_buf(),
        reload_interval: Dur::secs(0),
        ..PluginsConfig::default()
    };
    Arc::new(PluginHost::new(&config).unwrap())
}

/// Counts calls in a global and answers the count as one digit at offset 16.
const COUNTER: &str = r#"
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 16) (i32.add (i32.const 48) (global.get $calls)))
    (call $output (i32.const 16) (i32.const 1))
    (i32.const 0)"#;

#[tokio::test]
async fn every_call_gets_a_fresh_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let wat = wat::module("", "(global $calls (mut i32) (i32.const 0))", COUNTER);
    let src = wat::write_plugin(tmp.path(), "counter", "1.0.0", &wat, &[], "{}").unwrap();
    let dir = tmp.path().join("installed");
    let h = host(&dir);
    oclaw_plugins::install(&h, &src, &dir).unwrap();
    let report = h.reload();
    assert_eq!(report.added, ["counter"]);
    for _ in 0..3 {
        // A global kept between calls would count 1, 2, 3.
        assert_eq!(
            h.call("counter", "run", None, json!({})).await.unwrap(),
            json!(1)
        );
    }
    let err = h
        .call("counter", "nope", None, json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::PluginUnavailable);
    let err = h.call("absent", "run", None, json!({})).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::PluginUnavailable);
    assert!(err.retryable);
}

#[tokio::test]
async fn reload_keeps_the_loaded_version_when_the_new_one_is_broken() {
    let tmp = tempfile::tempdir().unwrap();
    let answer = "(call $output (i32.const 16) (i32.const 1)) (i32.const 0)";
    let v1 = wat::write_plugin(
        tmp.path(),
        "p",
        "1",
        &wat::module("", r#"(data (i32.const 16) "1")"#, answer),
        &[],
        "{}",
    )
    .unwrap();
    let dir = tmp.path().join("installed");
    let h = host(&dir);
    oclaw_plugins::install(&h, &v1, &dir).unwrap();
    h.reload();
    // Someone edits the module in place: its digest no longer matches.
    std::fs::write(dir.join("p/module.wat"), "(module)").unwrap();
    let report = h.reload();
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].1.contains("has SHA-256"), "{report:?}");
    assert_eq!(h.call("p", "run", None, json!({})).await.unwrap(), json!(1));
    // Removing the folder unloads it.
    std::fs::remove_dir_all(dir.join("p")).unwrap();
    assert_eq!(h.reload().removed, ["p"]);
    assert!(h.get("p").is_none());
}

#[test]
fn manifests_are_checked_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let wat = wat::module("", "", "(i32.const 0)");
    let cases = [
        ("Bad_Name", "{}", "must be 1-63 lowercase"),
        ("kv", "{}", "reserved for built-in skills"),
        ("ok", "{memory: lots}", "limits.memory"),
        ("ok", "{timeout: 0s}", "limits.timeout"),
    ];
    for (i, (name, limits, why)) in cases.iter().enumerate() {
        let src = wat::write_plugin(
            &tmp.path().join(i.to_string()),
            name,
            "1",
            &wat,
            &[],
            limits,
        )
        .unwrap();
        let err = oclaw_plugins::manifest::read(&src).unwrap_err();
        assert_eq!(err.code, ErrorCode::PluginInvalid);
        assert!(err.message.contains(why), "{name}: {}", err.message);
    }
    let src = wat::write_plugin(tmp.path(), "caps", "1", &wat, &["kvv"], "{}").unwrap();
    let err = oclaw_plugins::manifest::read(&src).unwrap_err();
    assert!(err.message.contains("did you mean `kv`"), "{}", err.message);
}

//! `oclaw config validate|show|schema` and bot validation at load time, as a user runs them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::oclaw;

fn validate(dir: &std::path::Path, config: &str) -> (Option<i32>, String, String) {
    validate_bot(dir, "oclaw.yaml", config)
}

#[test]
fn a_valid_config_with_a_bots_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bots")).unwrap();
    std::fs::write(dir.path().join("bots/a.yaml"), "metadata: {name: a}\nspec:\n  triggers: [{cron: \"0 * * * *\"}]\n  steps: [{uses: log, with: {message: hi}}]\n").unwrap();
    let (code, out, err) = validate(dir.path(), "bots_dir: bots\nworker:\n  concurrency: 20\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("valid; 1 bot ("), "{out}");
}

/// `oclaw config validate FILE` on `text` written to `dir/name` (a config or a bot file).
fn validate_bot(dir: &std::path::Path, name: &str, text: &str) -> (Option<i32>, String, String) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = oclaw()
        .args(["config", "validate"])
        .arg(&path)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bot_file_validates_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let good = "apiVersion: oclaw.io/v1\nkind: Bot\nmetadata: {name: a}\nspec:\n  steps: [{uses: log, with: {message: hi}}]\n";
    let (code, out, err) = validate_bot(dir.path(), "a.yaml", good);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("a.yaml: valid; 1 bot (bot file): a"), "{out}");
    let bad = "apiVersion: oclaw.io/v1\nkind: Bot\nmetadata: {name: a}\nspec:\n  steps:\n    - uses: http.reqest\n";
    let (code, _, err) = validate_bot(dir.path(), "b.yaml", bad);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("OC-1006") && err.contains("b.yaml:6"), "{err}");
    assert!(
        !err.contains("apiVersion"),
        "not read as a node config: {err}"
    );
}

#[test]
fn a_knowledge_file_is_found_beside_its_bot_and_a_missing_one_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bots")).unwrap();
    // Beside the bot, in a folder of its own (every YAML file of the bots folder is a bot file).
    std::fs::create_dir(dir.path().join("bots/kb")).unwrap();
    std::fs::write(
        dir.path().join("bots/kb/faq.yaml"),
        "entries: [{q: hi, a: hello}]\n",
    )
    .unwrap();
    let bot = |file: &str| {
        format!("metadata: {{name: a}}\nspec:\n  steps:\n    - uses: faq.match\n      with: {{file: {file}, text: hi}}\n")
    };
    std::fs::write(dir.path().join("bots/a.yaml"), bot("kb/faq.yaml")).unwrap();
    // Validated from another folder: the path is read from the bot's own folder.
    let elsewhere = tempfile::tempdir().unwrap();
    let config = dir.path().join("oclaw.yaml");
    std::fs::write(
        &config,
        format!("bots_dir: {}\n", dir.path().join("bots").display()),
    )
    .unwrap();
    let run = || {
        oclaw()
            .args(["config", "validate"])
            .arg(&config)
            .current_dir(elsewhere.path())
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.path().join("bots/a.yaml"), bot("missing.yaml")).unwrap();
    let out = run();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("OC-1005") && err.contains("a.yaml:5"), "{err}");
    assert!(err.contains("`file: missing.yaml` is not a file"), "{err}");
}

#[test]
fn unknown_key_is_reported_with_line_and_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = validate(
        dir.path(),
        "worker:\n  concurrency: 20\nscheduler:\n  intreval: 5s\n",
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("OC-1003"), "{err}");
    assert!(err.contains("oclaw.yaml:4:"), "{err}");
    assert!(err.contains("did you mean `interval`"), "{err}");
}

#[test]
fn bad_bot_files_are_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bots")).unwrap();
    let cases = [
        ("metadata: {name: a}\nspec:\n  steps:\n    - uses: http.reqest\n", "OC-1006", "a.yaml:4"),
        ("metadata: {name: a}\nspec:\n  triggers:\n    - cron: \"99 * * * *\"\n", "OC-1008", "a.yaml:4"),
        ("metadata: {name: a}\nspec:\n  steps:\n    - uses: log\n      with: {message: \"{{ input.x \"}\n", "OC-1007", "a.yaml:5"),
        ("metadata: {name: a}\nspec:\n  steps: [\n", "OC-1002", "a.yaml:"),
        // Found at load, not when a task first runs:
        ("metadata: {name: a}\nspec:\n  steps:\n    - uses: log\n      with: {message: \"{{ input.x | uppr }}\"}\n", "unknown filter `uppr`", "a.yaml:5"),
        ("metadata: {name: a}\nspec:\n  steps:\n    - {id: previous, uses: log, with: {message: hi}}\n    - uses: log\n      with: {message: \"{{ steps.previus.output }}\"}\n", "did you mean `previous`", "a.yaml:6"),
        ("metadata: {name: a}\nspec:\n  steps:\n    - uses: kv.set\n      with: {key: k, value: 1, ttl: soon}\n", "OC-1005", "a.yaml:4"),
    ];
    for (bot, code, location) in cases {
        std::fs::write(dir.path().join("bots/a.yaml"), bot).unwrap();
        let (status, _, err) = validate(dir.path(), "bots_dir: bots\n");
        assert_eq!(status, Some(2), "{bot}");
        assert!(err.contains(code), "{bot}: {err}");
        assert!(err.contains(location), "{bot}: {err}");
    }
}

#[test]
fn show_applies_profile_and_environment_and_hides_tokens() {
    let out = oclaw()
        .args(["config", "show", "--profile", "production"])
        .env("OCLAW_CACHE__TTL", "2h")
        .env("OCLAW_API__TOKENS", "[secret-token]")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("concurrency: 50"), "{text}");
    assert!(text.contains("timeout: 2m"), "{text}");
    assert!(text.contains("ttl: 2h"), "{text}");
    assert!(!text.contains("secret-token"));
}

#[test]
fn schema_is_json_schema_of_the_config() {
    let out = oclaw().args(["config", "schema"]).output().unwrap();
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "NodeConfig");
    assert!(schema["properties"]["worker"].is_object());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/oclaw.schema.json"
    ))
    .unwrap();
    let committed: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(
        committed, schema,
        "docs/oclaw.schema.json is stale: run `oclaw config schema > docs/oclaw.schema.json`"
    );
}

#[test]
fn bot_schema_is_published_beside_the_config_schema() {
    let out = oclaw()
        .args(["config", "schema", "--bot"])
        .output()
        .unwrap();
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "BotDoc");
    assert!(schema["properties"]["spec"].is_object(), "{schema}");
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/bot.schema.json"
    ))
    .unwrap();
    let committed: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(
        committed, schema,
        "docs/bot.schema.json is stale: run `oclaw config schema --bot > docs/bot.schema.json`"
    );
}

#[test]
fn error_code_page_is_generated_from_the_catalogue() {
    let out = oclaw().args(["docs", "error-codes"]).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("| `OC-4001` | 503 | database connection timeout |"),
        "{table}"
    );
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/error-codes.md"
    ))
    .unwrap();
    assert!(
        page.ends_with(table.as_ref()),
        "docs/error-codes.md is stale: regenerate it with `oclaw docs error-codes`"
    );
}

#[test]
fn a_reader_that_quits_early_ends_the_command_quietly() {
    use std::io::Read;
    // 130 kB of completions: more than a pipe holds, so the command writes into a closed pipe.
    let mut child = common::oclaw()
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    let mut stdout = child.stdout.take().unwrap();
    stdout.read_exact(&mut first).unwrap();
    drop(stdout); // `| head -c 16`
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}

#[test]
fn the_banner_suggests_a_bot_that_is_loaded() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bots")).unwrap();
    std::fs::write(
        dir.path().join("bots/a.yaml"),
        "metadata: {name: greeter}\nspec:\n  steps: [{uses: log, with: {message: hi}}]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("oclaw.yaml"), "bots_dir: bots\n").unwrap();
    // No --config: the node finds ./oclaw.yaml and says so.
    let mut child = oclaw()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("OCLAW_CONFIG")
        .env("OCLAW_STORAGE__URL", "sqlite://oclaw.db")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut banner = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.trim_start().starts_with("health");
        banner.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let api = banner
        .iter()
        .find(|l| l.trim_start().starts_with("API"))
        .unwrap();
    assert!(api.contains(r#""bot":"greeter""#), "{banner:?}");
    assert!(!api.contains("hello"), "hello is not loaded: {banner:?}");
    assert!(
        banner
            .iter()
            .any(|l| l.trim_start() == "config   oclaw.yaml"),
        "{banner:?}"
    );
}

/// The tutorial's bot (docs/first-bot.md) is valid as printed.
#[test]
fn the_first_bot_tutorial_validates() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/first-bot.md"
    ))
    .unwrap();
    let start = page.find("<<'YAML'\n").unwrap() + "<<'YAML'\n".len();
    let bot = &page[start..start + page[start..].find("\nYAML\n").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = validate_bot(dir.path(), "visits.yaml", bot);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("1 bot (bot file): visits"), "{out}");
}

/// `oclaw docs man` writes a page for the command and each subcommand, in roff that `man`
/// renders.
#[test]
fn man_pages_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = oclaw()
        .args(["docs", "man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for page in [
        "oclaw.1",
        "oclaw-serve.1",
        "oclaw-task-list.1",
        "oclaw-deploy-core.1",
        "oclaw-config-validate.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} missing: {pages:?}");
    }
    let serve = std::fs::read_to_string(dir.path().join("oclaw-serve.1")).unwrap();
    assert!(
        serve.starts_with(".ie") || serve.contains(".TH"),
        "roff: {serve}"
    );
    assert!(
        serve.contains("config") && serve.contains("/etc/oclaw/oclaw.yaml"),
        "{serve}"
    );
    // Rendered by man(1) where it is installed.
    if let Ok(m) = std::process::Command::new("man")
        .arg("-l")
        .arg(dir.path().join("oclaw-serve.1"))
        .env("MANPAGER", "cat")
        .output()
    {
        let text = String::from_utf8_lossy(&m.stdout);
        assert!(text.contains("oclaw serve"), "{text}");
    }
}

/// The shipped systemd unit is one systemd accepts without a complaint (`systemd-analyze
/// verify` warns of unknown keys and bad values), pointed at this build's binary.
#[test]
fn the_systemd_unit_verifies() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let unit = std::fs::read_to_string(root.join("deploy/systemd/oclaw.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/oclaw serve"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oclaw.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/oclaw", env!("CARGO_BIN_EXE_oclaw")),
    )
    .unwrap();
    let out = match std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                !oclaw_core::ci::under_ci(),
                "systemd-analyze missing under CI=true: {e}"
            );
            return;
        }
    };
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

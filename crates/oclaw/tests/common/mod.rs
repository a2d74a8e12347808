//! Starts real `oclaw serve` processes for integration tests.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod tls;

pub struct Node {
    pub child: Child,
    pub url: String,
    pub stderr_path: PathBuf,
}

/// The binary under test: this build's, or `OCLAW_TEST_BIN` (benchmarks point it at a release
/// build while the harness itself stays a debug build).
pub fn oclaw() -> Command {
    match std::env::var_os("OCLAW_TEST_BIN") {
        Some(bin) => Command::new(bin),
        None => Command::new(env!("CARGO_BIN_EXE_oclaw")),
    }
}

/// Runs an `oclaw` client command against the node at `url` (no token): exit code, stdout,
/// stderr.
pub fn cli(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = oclaw()
        .args(args)
        .args(["--server", url])
        .env_remove("OCLAW_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Starts `oclaw serve` with `config` (YAML) in `dir`, on a free loopback port, and waits until
/// it prints its banner.
pub fn start(dir: &Path, config: &str) -> Node {
    let storage = format!("sqlite://{}", dir.join("oclaw.db").display());
    start_process(dir, config, &["serve", "--listen", "127.0.0.1:0"], &storage)
}

/// Starts one process (`serve`, `api-server`, `scheduler`, `worker` with `args`) on `storage`
/// and waits for its banner; `url` is its HTTP address (the API, or a worker's probes).
pub fn start_process(dir: &Path, config: &str, args: &[&str], storage: &str) -> Node {
    start_process_env(dir, config, args, storage, &[])
}

/// [`start_process`] with extra environment variables for the process.
pub fn start_process_env(
    dir: &Path,
    config: &str,
    args: &[&str],
    storage: &str,
    envs: &[(&str, &str)],
) -> Node {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let config_path = dir.join(format!("oclaw-{stamp}.yaml"));
    std::fs::write(&config_path, config).unwrap();
    let stderr_path = dir.join(format!("stderr-{}-{stamp}.log", args[0]));
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = oclaw()
        .args(args)
        .args(["--log-format", "json", "--config"])
        .arg(&config_path)
        .current_dir(dir)
        .env("OCLAW_STORAGE__URL", storage)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start oclaw");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut url = None;
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.trim().strip_prefix("health") {
                    let u = rest
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .trim_end_matches("/healthz")
                        .to_string();
                    url = Some(u);
                    break;
                }
            }
            _ => break,
        }
    }
    let url = url.unwrap_or_else(|| {
        panic!(
            "oclaw {} did not start: {}",
            args[0],
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        )
    });
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Node {
        child,
        url,
        stderr_path,
    }
}

impl Node {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "node did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub async fn post(
    c: &reqwest::Client,
    url: &str,
    body: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = c
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

pub async fn get(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Polls a task until it reaches `status` or the deadline passes.
pub async fn wait_status(
    c: &reqwest::Client,
    base: &str,
    id: &str,
    status: &str,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (code, task) = get(c, &format!("{base}/v1/tasks/{id}")).await;
        if code == 200 && task["status"] == status {
            return task;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} did not reach {status}: {task}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A tiny HTTP server standing in for an outside endpoint: answers 200 `{}` to every request and
/// records `(path, body)` of each.
pub struct Recorder {
    pub url: String,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
    /// The `Authorization` header of each request ("" when absent), in order.
    pub authorizations: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub async fn recorder() -> Recorder {
    recorder_answering("{}").await
}

/// A recorder that answers every request with `answer` (JSON).
pub async fn recorder_answering(answer: &'static str) -> Recorder {
    recorder_at(0, answer).await
}

/// [`recorder_answering`] on a given loopback port (0: any free one).
pub async fn recorder_at(port: u16, answer: &'static str) -> Recorder {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>> = Default::default();
    let seen = requests.clone();
    let authorizations: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let auths = authorizations.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let auths = auths.clone();
            tokio::spawn(async move {
                let mut reader = TokioBufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("")
                        .to_string();
                    let mut length = 0usize;
                    let mut authorization = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                            if k.eq_ignore_ascii_case("authorization") {
                                authorization = v.trim().to_string();
                            }
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let body = serde_json::from_slice(&body).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&body).into_owned())
                    });
                    auths.lock().unwrap().push(authorization);
                    seen.lock().unwrap().push((path, body));
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if reader.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Recorder {
        url,
        requests,
        authorizations,
    }
}

/// The node's `/metrics` text.
pub async fn metrics_text(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A channel's counts in `oclaw_channel_messages_total`, by event.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ChannelCounts {
    pub received: f64,
    pub sent: f64,
    pub error: f64,
    pub dropped: f64,
}

/// The channel compliance check every channel's tests run after their traffic: the channel
/// counts its messages under the four shared events only (received, sent, error, dropped), at
/// least as many of each as the test caused, one reply-latency observation for every reply
/// sent, and never more replies than messages received. Counters move a moment after the
/// traffic they count, so the node's `/metrics` is read until they agree (10 s at most).
/// Answers the counts it read.
pub async fn assert_channel_telemetry(
    base: &str,
    channel: &str,
    at_least: ChannelCounts,
) -> ChannelCounts {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = metrics_text(base).await;
        let verdict = channel_telemetry(&metrics, channel, at_least);
        match verdict {
            Ok(counts) => return counts,
            Err(why) if Instant::now() >= deadline => {
                panic!("channel {channel}: {why}\n{metrics}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One reading of [`assert_channel_telemetry`]: the counts, or what is wrong with them.
pub fn channel_telemetry(
    metrics: &str,
    channel: &str,
    at_least: ChannelCounts,
) -> Result<ChannelCounts, String> {
    let mut counts = ChannelCounts::default();
    let mut replies = 0.0;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        let labels: Vec<(&str, &str)> = labels
            .trim_end_matches('}')
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        if !labels.contains(&("channel", channel)) {
            continue;
        }
        let value: f64 = value.parse().map_err(|_| format!("not a number: {line}"))?;
        match name {
            "oclaw_channel_messages_total" => {
                let event = labels
                    .iter()
                    .find(|(k, _)| *k == "event")
                    .map(|(_, v)| *v)
                    .ok_or_else(|| format!("a channel count without an event: {line}"))?;
                match event {
                    "received" => counts.received += value,
                    "sent" => counts.sent += value,
                    "error" => counts.error += value,
                    "dropped" => counts.dropped += value,
                    other => return Err(format!("an event of its own, `{other}`: {line}")),
                }
            }
            "oclaw_channel_reply_seconds_count" => replies += value,
            _ => {}
        }
    }
    for (what, got, want) in [
        ("received", counts.received, at_least.received),
        ("sent", counts.sent, at_least.sent),
        ("error", counts.error, at_least.error),
        ("dropped", counts.dropped, at_least.dropped),
    ] {
        if got < want {
            return Err(format!("{what} {got}, at least {want} expected"));
        }
    }
    if replies != counts.sent {
        return Err(format!(
            "{} replies sent but {replies} latency observations",
            counts.sent
        ));
    }
    if counts.sent > counts.received {
        return Err(format!(
            "{} replies for {} messages",
            counts.sent, counts.received
        ));
    }
    Ok(counts)
}

/// A server process of the test's own (a private broker on a free port), killed when dropped.
pub struct PrivateServer {
    child: Child,
}

impl PrivateServer {
    /// Starts `program args` and waits until `port` on loopback accepts connections.
    pub fn start(program: &str, args: &[&str], port: u16) -> PrivateServer {
        PrivateServer::start_env(program, args, &[], port)
    }

    /// [`PrivateServer::start`] with extra environment variables.
    pub fn start_env(
        program: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        port: u16,
    ) -> PrivateServer {
        let child = Command::new(program)
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} (its Debian package) is installed: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{program} did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PrivateServer { child }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A name no other test run uses: the process id and the time in nanoseconds.
pub fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A base port below the ephemeral range (where outgoing connections take their local ports)
/// such that `base + o` is free for every offset: the local driver's pods listen on the
/// cluster's port and the ones after it (api-servers) and on port + 100.. (probes), so an
/// ephemeral base could see a pod's port taken by some connection while the pod restarts.
///
/// `region` (0, 1, 2…) keeps tests that run at once in separate processes (nextest) apart: each
/// searches its own stretch of ports first, since none has bound its ports when another looks.
pub fn free_port_block(region: u16, offsets: &[u16]) -> u16 {
    // Blocks handed out in this process: tests running at once get different blocks even
    // before their processes bind them.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let span = offsets.iter().max().copied().unwrap_or(0) + 1;
    let start = 20000 + (region % 8) * 1500 + (std::process::id() % 10) as u16 * 113;
    let base = (0..100u16)
        .map(|i| 20000 + (start - 20000 + i * 113) % 12000)
        .filter(|base| given.iter().all(|g| base.abs_diff(*g) > span.max(200)))
        .find(|base| {
            offsets
                .iter()
                .all(|o| std::net::TcpListener::bind(("127.0.0.1", base + o)).is_ok())
        })
        .expect("no free block of ports below 32000");
    given.push(base);
    base
}

/// The repository's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A tool the test needs is missing: a failure under `CI=true`, a skip (with the reason)
/// elsewhere. Answers `None` so callers can `return`.
pub fn missing<T>(what: &str) -> Option<T> {
    if oclaw_core::ci::under_ci() {
        panic!("{what} (CI installs it with .ci/install-tools)");
    }
    eprintln!("skipped: {what} (run .ci/install-tools)");
    None
}

/// The example plugins built by `examples/plugins/build.sh` (C with clang/lld, AssemblyScript
/// from npm), built once per test binary when missing.
pub fn example_plugins() -> Option<PathBuf> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let out = workspace_root().join("target/example-plugins");
    let built = BUILT.get_or_init(|| {
        // Built already, and after the last change to the sources: reuse.
        let built_at = ["text-tools/plugin.yaml", "link-check/plugin.yaml"]
            .iter()
            .map(|f| {
                std::fs::metadata(out.join(f))
                    .and_then(|m| m.modified())
                    .ok()
            })
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().min());
        let sources = newest_change(&workspace_root().join("examples/plugins"));
        if built_at.is_some_and(|built| sources.is_none_or(|s| s <= built)) {
            return Ok(out.clone());
        }
        let o = Command::new("bash")
            .arg(workspace_root().join("examples/plugins/build.sh"))
            .env("OUT", &out)
            .output()
            .map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(out.clone())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    });
    match built {
        Ok(p) => Some(p.clone()),
        Err(e) => missing(&format!(
            "the example plugins do not build (clang, lld, npm needed): {e}"
        )),
    }
}

/// The latest modification time of the files under `dir` (installed packages left out).
fn newest_change(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            if entry.file_name() == "node_modules" {
                continue;
            }
            newest_change(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(time);
    }
    newest
}

/// The MCP reference server ("everything", from npm) installed in `examples/mcp`.
pub fn mcp_everything() -> Option<PathBuf> {
    static INSTALLED: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let dir = workspace_root().join("examples/mcp");
    let entry = dir.join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let found = INSTALLED.get_or_init(|| {
        if !entry.is_file() {
            let o = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--silent"])
                .current_dir(&dir)
                .output()
                .map_err(|e| format!("npm: {e}"))?;
            if !o.status.success() {
                return Err(String::from_utf8_lossy(&o.stderr).into_owned());
            }
        }
        Ok(entry.clone())
    });
    match found {
        Ok(p) => Some(p.canonicalize().unwrap_or_else(|_| p.clone())),
        Err(e) => missing(&format!(
            "the MCP reference server is not installed (npm ci in examples/mcp): {e}"
        )),
    }
}

/// `POST /v1/bots/{bot}/invoke` with `input`; answers `{task_id, status, output, error}`.
pub async fn invoke(base: &str, bot: &str, input: Value) -> Value {
    let (status, body, _) = post(
        &client(),
        &format!("{base}/v1/bots/{bot}/invoke"),
        &serde_json::json!({ "input": input }).to_string(),
    )
    .await;
    assert!(status == 200 || status == 202, "{bot}: {status} {body}");
    body
}

/// The invoke answer failed with `code` and a message containing `text` (status `failed`, or
/// `dead` for a retryable error that ran out of attempts).
pub fn assert_failed(answer: &Value, code: &str, text: &str) {
    assert!(
        answer["status"] == "failed" || answer["status"] == "dead",
        "{answer}"
    );
    assert_eq!(answer["error"]["code"], code, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains(text), "expected `{text}` in: {answer}");
}

/// A real small model: SmolLM2-135M-Instruct (GGUF) on the CPU through node-llama-cpp, behind
/// the OpenAI-compatible server of `tests/fixtures/llama-server` (both installed by
/// `.ci/install-tools`; `OCLAW_TEST_MODEL` names another GGUF file), on a free port: the
/// server and its port, or `None` when they are not installed (a failure under `CI=true`).
pub fn real_model() -> Option<(PrivateServer, u16)> {
    let root = workspace_root();
    let model = std::env::var("OCLAW_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/test-models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    let server = root.join("crates/oclaw/tests/fixtures/llama-server");
    if !model.is_file() || !server.join("node_modules/node-llama-cpp").is_dir() {
        return missing("the test model and node-llama-cpp");
    }
    let port = free_port();
    let process = PrivateServer::start(
        "node",
        &[
            &server.join("server.mjs").display().to_string(),
            &model.display().to_string(),
            &port.to_string(),
        ],
        port,
    );
    Some((process, port))
}

/// A WebSocket client connection, as tokio-tungstenite makes it.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame as JSON (other frames skipped), within `within`.
pub async fn next_text_frame(ws: &mut Ws, within: Duration) -> Value {
    use futures_util::StreamExt;
    loop {
        let msg = tokio::time::timeout(within, ws.next())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

//! Starts real `oclaw serve` processes for integration tests.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Node {
    pub child: Child,
    pub url: String,
    pub stderr_path: PathBuf,
}

pub fn oclaw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oclaw"))
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

//! `oclaw bench memory`: the resident memory of a separate `oclaw serve` process — idle with the
//! example bots, with N tasks waiting in the store, and over a soak of steady load (a line every
//! interval, so a leak shows as a slope). Reports `RssAnon` (heap, stacks) and `RssFile` (pages
//! of the executable and libraries) beside `VmRSS`: they move for different reasons.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

pub struct MemoryOptions {
    /// The `oclaw` binary to start (this one unless given).
    pub bin: Option<PathBuf>,
    /// How long the node sits idle before the first reading.
    pub idle: Duration,
    /// Tasks to leave waiting in the store (due in an hour) before the next reading.
    pub queued: usize,
    /// Length of the soak; zero skips it.
    pub soak: Duration,
    /// A reading every this long during the soak.
    pub every: Duration,
    /// `POST /v1/tasks` per second during the soak (the `hello` bot; each runs to completion).
    pub rate: u32,
}

/// One reading of `/proc/<pid>/status`, in KiB.
#[derive(Clone, Copy)]
struct Reading {
    rss: u64,
    anon: u64,
    file: u64,
    threads: u64,
}

fn read(pid: u32) -> Result<Reading, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading the node's /proc status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Ok(Reading {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
        threads: field("Threads:"),
    })
}

fn line(what: &str, r: Reading) -> String {
    let mb = |k: u64| k as f64 / 1024.0;
    format!(
        "{what:<28} VmRSS {:6.1} MB   RssAnon {:6.1} MB   RssFile {:6.1} MB   threads {}\n",
        mb(r.rss),
        mb(r.anon),
        mb(r.file),
        r.threads
    )
}

struct Node {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Starts `oclaw serve` on a fresh SQLite file and a free loopback port; returns once the banner
/// names the API address.
fn start(bin: PathBuf) -> Result<Node, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut child = Command::new(&bin)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env(
            "OCLAW_STORAGE__URL",
            format!("sqlite://{}", dir.path().join("oclaw.db").display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let Some(Ok(l)) = lines.next() else {
            return Err("the node exited before printing its API address".into());
        };
        if let Some(rest) = l.trim_start().strip_prefix("API") {
            let url = rest.split_whitespace().next().unwrap_or_default();
            break url.trim_end_matches("/v1").to_string();
        }
    };
    // Keep draining the banner so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(Node {
        child,
        base,
        _dir: dir,
    })
}

pub async fn memory(o: MemoryOptions) -> Result<String, String> {
    let bin = match o.bin {
        Some(b) => b,
        None => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    let node = start(bin)?;
    let pid = node.child.id();
    let http = reqwest::Client::new();
    print!("{}", line("started", read(pid)?));
    tokio::time::sleep(o.idle).await;
    print!(
        "{}",
        line(&format!("idle {}s", o.idle.as_secs()), read(pid)?)
    );

    if o.queued > 0 {
        let mut left = o.queued;
        while left > 0 {
            let n = left.min(1000);
            let tasks: Vec<_> = (0..n)
                .map(|i| json!({"bot": "hello", "input": {"name": format!("q{i}")}, "delay": "1h"}))
                .collect();
            let r = http
                .post(format!("{}/v1/tasks/batch", node.base))
                .json(&json!({ "tasks": tasks }))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("pre-load: {}", r.text().await.unwrap_or_default()));
            }
            left -= n;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        print!(
            "{}",
            line(&format!("with {} tasks waiting", o.queued), read(pid)?)
        );
    }

    if !o.soak.is_zero() {
        let sent = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let load = {
            let (http, url) = (http.clone(), format!("{}/v1/tasks", node.base));
            let (sent, failed) = (sent.clone(), failed.clone());
            tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval(Duration::from_secs_f64(1.0 / o.rate.max(1) as f64));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let limit = Arc::new(tokio::sync::Semaphore::new(64));
                while !*stop_rx.borrow() {
                    tick.tick().await;
                    let Ok(permit) = limit.clone().acquire_owned().await else {
                        break;
                    };
                    let (http, url) = (http.clone(), url.clone());
                    let (sent, failed) = (sent.clone(), failed.clone());
                    tokio::spawn(async move {
                        let ok = http
                            .post(url)
                            .json(&json!({"bot": "hello", "input": {"name": "soak"}}))
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success());
                        if ok { &sent } else { &failed }.fetch_add(1, Ordering::Relaxed);
                        drop(permit);
                    });
                }
            })
        };
        let start = Instant::now();
        let mut readings = Vec::new();
        while start.elapsed() < o.soak {
            tokio::time::sleep(o.every.min(o.soak.saturating_sub(start.elapsed()))).await;
            let r = read(pid)?;
            let l = line(
                &format!(
                    "soak {:>4}s, {} tasks",
                    start.elapsed().as_secs(),
                    sent.load(Ordering::Relaxed)
                ),
                r,
            );
            print!("{l}");
            readings.push(r);
        }
        let _ = stop.send(true);
        let _ = load.await;
        if let Some(first) = readings.first() {
            let (lo, hi) = readings
                .iter()
                .fold((u64::MAX, 0), |(lo, hi), r| (lo.min(r.rss), hi.max(r.rss)));
            let spread = |v: u64| 100.0 * (v as f64 - first.rss as f64) / first.rss.max(1) as f64;
            let l = format!(
                "soak of {}s at {}/s: {} tasks accepted, {} refused or failed; VmRSS from the first \
                 reading: {:+.1} % .. {:+.1} % (last {:+.1} %)\n",
                o.soak.as_secs(),
                o.rate,
                sent.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed),
                spread(lo),
                spread(hi),
                spread(readings.last().map_or(first.rss, |r| r.rss)),
            );
            print!("{l}");
        }
    }
    drop(node);
    // Each reading was printed as it came.
    Ok("memory: done".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reading_splits_resident_memory_into_anonymous_and_file_pages() {
        let r = super::read(std::process::id()).expect("own status");
        assert!(r.rss > 0 && r.anon > 0 && r.file > 0 && r.threads >= 1);
        // The kernel's VmRSS is the sum of its anonymous, file and shared-memory parts.
        assert!(
            r.anon + r.file <= r.rss,
            "anon {} + file {} > rss {}",
            r.anon,
            r.file,
            r.rss
        );
        let line = super::line("idle", r);
        assert!(line.starts_with("idle") && line.contains("RssAnon") && line.contains("threads"));
        assert!(super::read(u32::MAX).is_err(), "no such process");
    }
}

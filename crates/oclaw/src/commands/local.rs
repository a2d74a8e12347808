//! The local driver: a cluster's components as supervised processes on this host. `init` writes
//! the cluster's directory (`$OCLAW_HOME/clusters/<namespace>`, `~/.oclaw` by default) and
//! starts its supervisor (`oclaw supervise`, detached, outliving the CLI); `deploy core` says
//! which components run and the supervisor converges: it starts each pod, health-checks it
//! through `/readyz`, restarts it with backoff when it exits (counting RESTARTS and keeping the
//! last exit reason and the previous log), and stops pods no longer wanted. `status` and `logs`
//! read what it writes; `teardown` stops it and its pods.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use oclaw_cluster::kubernetes::RenderOptions;
use oclaw_cluster::local::{desired_pods, PodSpec};
use oclaw_cluster::OpenClawCluster;
use oclaw_core::ErrorCode;
use serde::{Deserialize, Serialize};

use super::{EXIT_FAILURE, EXIT_INVALID};

fn fail(code: ErrorCode, message: impl std::fmt::Display, exit: u8) -> ExitCode {
    eprintln!("error[{}]: {message}", code.code());
    ExitCode::from(exit)
}

/// `$OCLAW_HOME`, else `~/.oclaw`.
pub fn home() -> PathBuf {
    match std::env::var_os("OCLAW_HOME") {
        Some(h) => PathBuf::from(h),
        None => {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".oclaw")
        }
    }
}

pub fn cluster_dir(namespace: &str) -> PathBuf {
    home().join("clusters").join(namespace)
}

/// Which components run (written by `deploy`, read by the supervisor).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desired {
    pub components: Vec<String>,
    pub ha: bool,
}

/// One pod as the supervisor last saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodState {
    pub name: String,
    pub component: String,
    pub port: u16,
    pub pid: Option<u32>,
    /// `Pending`, `Running`, `CrashLoopBackOff`.
    pub status: String,
    pub ready: bool,
    pub restarts: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub last_exit: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub supervisor_pid: u32,
    pub updated_at: Option<DateTime<Utc>>,
    pub pods: Vec<PodState>,
}

fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

fn alive(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status();
}

fn supervisor_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("supervisor.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .filter(|p| alive(*p))
}

/// `oclaw init` with the local driver.
pub fn init(cluster: &OpenClawCluster, text: &str) -> ExitCode {
    if cluster.spec.storage.url.is_none() {
        return fail(
            ErrorCode::ClusterInvalid,
            "the local driver runs separate processes that share one PostgreSQL: set spec.storage.url (postgres://…)",
            EXIT_INVALID,
        );
    }
    let dir = cluster_dir(&cluster.metadata.namespace);
    if let Err(e) = std::fs::create_dir_all(dir.join("logs")) {
        return fail(
            ErrorCode::ConfigUnreadable,
            format!("{}: {e}", dir.display()),
            EXIT_FAILURE,
        );
    }
    let node_config = serde_yaml::to_string(
        &cluster
            .spec
            .config
            .clone()
            .unwrap_or_else(|| serde_json::json!({})),
    )
    .unwrap_or_default();
    let desired_path = dir.join("desired.json");
    let written = write_atomic(&dir.join("cluster.yaml"), text)
        .and_then(|_| write_atomic(&dir.join("node.yaml"), &node_config))
        .and_then(|_| match desired_path.exists() {
            true => Ok(()),
            false => write_atomic(
                &desired_path,
                &serde_json::to_string(&Desired {
                    components: vec![],
                    ha: true,
                })
                .unwrap_or_default(),
            ),
        });
    if let Err(e) = written {
        return fail(
            ErrorCode::ConfigUnreadable,
            format!("{}: {e}", dir.display()),
            EXIT_FAILURE,
        );
    }
    let pid = match supervisor_pid(&dir) {
        Some(pid) => pid,
        None => match start_supervisor(&dir, &cluster.metadata.namespace) {
            Ok(pid) => pid,
            Err(e) => {
                return fail(
                    ErrorCode::DriverUnavailable,
                    format!("starting the supervisor: {e}"),
                    EXIT_FAILURE,
                )
            }
        },
    };
    println!(
        "cluster `{}` initialised (local driver): namespace {}, state in {}, supervisor pid {pid}",
        cluster.metadata.name,
        cluster.metadata.namespace,
        dir.display()
    );
    println!("next: oclaw deploy core --components [api-server,worker,scheduler] --ha-mode true");
    ExitCode::SUCCESS
}

fn start_supervisor(dir: &Path, namespace: &str) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("supervisor.log"))?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["supervise", "--namespace", namespace])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own process group: Ctrl-C in the terminal that ran `init` does not reach it.
        .process_group(0)
        .spawn()?;
    Ok(child.id())
}

/// `oclaw deploy core` with the local driver.
pub fn deploy(namespace: &str, desired: Desired, wait: Option<Duration>) -> ExitCode {
    let dir = cluster_dir(namespace);
    let Some(cluster) = stored_cluster(&dir) else {
        return fail(
            ErrorCode::DriverUnavailable,
            format!(
                "no local cluster in namespace {namespace}; run `oclaw init --config FILE` first"
            ),
            EXIT_FAILURE,
        );
    };
    if supervisor_pid(&dir).is_none() {
        return fail(
            ErrorCode::DriverUnavailable,
            format!(
                "the supervisor of {namespace} is not running; run `oclaw init` again to start it"
            ),
            EXIT_FAILURE,
        );
    }
    let want = desired_pods(
        &cluster,
        &RenderOptions {
            components: desired.components.clone(),
            ha: desired.ha,
        },
    );
    if let Err(e) = write_atomic(
        &dir.join("desired.json"),
        &serde_json::to_string(&desired).unwrap_or_default(),
    ) {
        return fail(ErrorCode::ConfigUnreadable, e, EXIT_FAILURE);
    }
    println!(
        "deploying {} to {namespace}: {} pods",
        desired.components.join(", "),
        want.len()
    );
    let Some(wait) = wait else {
        return ExitCode::SUCCESS;
    };
    let deadline = Instant::now() + wait;
    let mut last = usize::MAX;
    loop {
        let state: State = read_json(&dir.join("state.json")).unwrap_or_default();
        let ready = want
            .iter()
            .filter(|w| state.pods.iter().any(|p| p.name == w.name && p.ready))
            .count();
        if ready != last {
            println!("  pods ready {ready}/{}", want.len());
            last = ready;
        }
        if ready == want.len() {
            return ExitCode::SUCCESS;
        }
        if Instant::now() > deadline {
            return fail(
                ErrorCode::DriverUnavailable,
                format!(
                    "only {ready} of {} pods ready after {}s; see oclaw status and oclaw logs POD",
                    want.len(),
                    wait.as_secs()
                ),
                EXIT_FAILURE,
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stored_cluster(dir: &Path) -> Option<OpenClawCluster> {
    let file = dir.join("cluster.yaml");
    let text = std::fs::read_to_string(&file).ok()?;
    OpenClawCluster::parse(&file.display().to_string(), &text).ok()
}

fn age(since: Option<DateTime<Utc>>) -> String {
    let Some(s) = since else { return "-".into() };
    let secs = (Utc::now() - s).num_seconds().max(0);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

/// `oclaw status --namespace NS`.
pub fn status(namespace: &str, json: bool) -> ExitCode {
    let dir = cluster_dir(namespace);
    if !dir.join("cluster.yaml").exists() {
        return fail(
            ErrorCode::DriverUnavailable,
            format!(
                "no local cluster in namespace {namespace} (looked in {})",
                dir.display()
            ),
            EXIT_FAILURE,
        );
    }
    let state: State = read_json(&dir.join("state.json")).unwrap_or_default();
    let supervised = supervisor_pid(&dir).is_some();
    if json {
        println!(
            "{}",
            serde_json::json!({"namespace": namespace, "supervisor_running": supervised, "pods": state.pods})
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<14} {:<7} {:<17} {:<9} AGE",
        "NAME", "READY", "STATUS", "RESTARTS"
    );
    for p in &state.pods {
        println!(
            "{:<14} {:<7} {:<17} {:<9} {}",
            p.name,
            if p.ready { "1/1" } else { "0/1" },
            p.status,
            p.restarts,
            age(p.started_at)
        );
    }
    if !supervised {
        eprintln!("warning: the supervisor is not running; this is its last record (run `oclaw init` to start it)");
    }
    ExitCode::SUCCESS
}

/// `oclaw logs POD [--previous]`.
pub fn logs(namespace: &str, pod: &str, previous: bool) -> ExitCode {
    let name = if previous {
        format!("{pod}.previous.log")
    } else {
        format!("{pod}.log")
    };
    let path = cluster_dir(namespace).join("logs").join(name);
    match std::fs::read(&path) {
        Ok(bytes) => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(&bytes);
            ExitCode::SUCCESS
        }
        Err(_) => fail(
            ErrorCode::NotFound,
            format!(
                "no {}log for pod {pod} in {namespace}",
                if previous { "previous " } else { "" }
            ),
            EXIT_FAILURE,
        ),
    }
}

/// `oclaw teardown`: stops the supervisor, which stops its pods.
pub fn teardown(namespace: &str) -> ExitCode {
    let dir = cluster_dir(namespace);
    let Some(pid) = supervisor_pid(&dir) else {
        println!("no supervisor running for {namespace}");
        return ExitCode::SUCCESS;
    };
    signal(pid, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(40);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive(pid) {
        return fail(
            ErrorCode::DriverUnavailable,
            format!("supervisor {pid} did not stop"),
            EXIT_FAILURE,
        );
    }
    println!("{namespace}: supervisor and pods stopped");
    ExitCode::SUCCESS
}

struct Running {
    child: tokio::process::Child,
}

fn exit_reason(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!(
            "killed by signal {sig}{}",
            if sig == 9 { " (SIGKILL)" } else { "" }
        ),
        _ => "exited".into(),
    }
}

fn backoff(restarts: u32) -> Duration {
    Duration::from_secs(1u64 << restarts.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

/// `oclaw supervise --namespace NS`: the supervisor loop (started by `init`).
pub fn supervise(namespace: &str) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(ErrorCode::DriverUnavailable, e, EXIT_FAILURE),
    };
    rt.block_on(supervise_loop(namespace))
}

async fn supervise_loop(namespace: &str) -> ExitCode {
    let dir = cluster_dir(namespace);
    let Some(cluster) = stored_cluster(&dir) else {
        return fail(
            ErrorCode::DriverUnavailable,
            format!("no cluster in {}", dir.display()),
            EXIT_FAILURE,
        );
    };
    let _ = write_atomic(&dir.join("supervisor.pid"), &std::process::id().to_string());
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(ErrorCode::DriverUnavailable, e, EXIT_FAILURE),
    };
    let storage = cluster.spec.storage.url.clone().unwrap_or_default();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap_or_default();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return fail(ErrorCode::DriverUnavailable, e, EXIT_FAILURE),
    };
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut pods: HashMap<String, PodState> = HashMap::new();
    let mut next_start: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    eprintln!(
        "supervisor of {namespace} running (pid {})",
        std::process::id()
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = term.recv() => break,
        }
        let desired: Desired = read_json(&dir.join("desired.json")).unwrap_or_default();
        let want: Vec<PodSpec> = desired_pods(
            &cluster,
            &RenderOptions {
                components: desired.components,
                ha: desired.ha,
            },
        );
        // Pods no longer wanted stop.
        let unwanted: Vec<String> = running
            .keys()
            .filter(|n| !want.iter().any(|w| &w.name == *n))
            .cloned()
            .collect();
        for name in unwanted {
            if let Some(mut r) = running.remove(&name) {
                stop_child(&mut r.child).await;
            }
            pods.remove(&name);
        }
        pods.retain(|n, _| want.iter().any(|w| &w.name == n));
        for spec in &want {
            let state = pods.entry(spec.name.clone()).or_insert_with(|| PodState {
                name: spec.name.clone(),
                component: spec.component.clone(),
                port: spec.port,
                pid: None,
                status: "Pending".into(),
                ready: false,
                restarts: 0,
                started_at: None,
                last_exit: None,
            });
            if let Some(r) = running.get_mut(&spec.name) {
                if let Ok(Some(status)) = r.child.try_wait() {
                    running.remove(&spec.name);
                    state.restarts += 1;
                    state.last_exit = Some(exit_reason(status));
                    state.status = "CrashLoopBackOff".into();
                    state.ready = false;
                    state.pid = None;
                    let logs = dir.join("logs");
                    let _ = std::fs::rename(
                        logs.join(format!("{}.log", spec.name)),
                        logs.join(format!("{}.previous.log", spec.name)),
                    );
                    next_start.insert(spec.name.clone(), Instant::now() + backoff(state.restarts));
                    eprintln!(
                        "pod {} {}; restart {} in {:?}",
                        spec.name,
                        state.last_exit.as_deref().unwrap_or(""),
                        state.restarts,
                        backoff(state.restarts)
                    );
                }
            }
            if !running.contains_key(&spec.name)
                && next_start
                    .get(&spec.name)
                    .is_none_or(|t| Instant::now() >= *t)
            {
                match spawn_pod(&exe, &dir, &storage, namespace, spec) {
                    Ok(child) => {
                        state.pid = child.id();
                        state.started_at = Some(Utc::now());
                        state.status = "Running".into();
                        running.insert(spec.name.clone(), Running { child });
                    }
                    Err(e) => {
                        state.last_exit = Some(format!("could not start: {e}"));
                        next_start
                            .insert(spec.name.clone(), Instant::now() + Duration::from_secs(5));
                    }
                }
            }
        }
        // Readiness through /readyz, all pods at once.
        let probes = pods.values().filter(|p| p.pid.is_some()).map(|p| {
            let url = format!("http://127.0.0.1:{}/readyz", p.port);
            let name = p.name.clone();
            let http = http.clone();
            async move {
                (
                    name,
                    http.get(url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success()),
                )
            }
        });
        for (name, ok) in futures_util::future::join_all(probes).await {
            if let Some(p) = pods.get_mut(&name) {
                p.ready = ok;
            }
        }
        let mut list: Vec<PodState> = want
            .iter()
            .filter_map(|w| pods.get(&w.name).cloned())
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let state = State {
            supervisor_pid: std::process::id(),
            updated_at: Some(Utc::now()),
            pods: list,
        };
        let _ = write_atomic(
            &dir.join("state.json"),
            &serde_json::to_string_pretty(&state).unwrap_or_default(),
        );
    }
    eprintln!("supervisor of {namespace} stopping its pods");
    for (_, mut r) in running.drain() {
        stop_child(&mut r.child).await;
    }
    let _ = write_atomic(
        &dir.join("state.json"),
        &serde_json::to_string_pretty(&State::default()).unwrap_or_default(),
    );
    let _ = std::fs::remove_file(dir.join("supervisor.pid"));
    ExitCode::SUCCESS
}

fn spawn_pod(
    exe: &Path,
    dir: &Path,
    storage: &str,
    namespace: &str,
    spec: &PodSpec,
) -> std::io::Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("logs").join(format!("{}.log", spec.name)))?;
    tokio::process::Command::new(exe)
        .arg(&spec.component)
        .arg("--config")
        .arg(dir.join("node.yaml"))
        .args([
            "--listen",
            &format!("127.0.0.1:{}", spec.port),
            "--node-id",
            &format!("{namespace}/{}", spec.name),
            "--log-format",
            "json",
        ])
        .env("OCLAW_STORAGE__URL", storage)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

/// SIGTERM (workers drain), then SIGKILL after 20 s.
async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        signal(pid, "-TERM");
    }
    if tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

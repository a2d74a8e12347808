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

/// A line of the supervisor's log (`supervisor.log`), with its time.
macro_rules! slog {
    ($($t:tt)*) => {
        eprintln!("{} {}", Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"), format_args!($($t)*))
    };
}

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
    /// The revision every pod should run (0: the file `init` wrote).
    #[serde(default)]
    pub revision: u64,
    /// Replace every pod at once instead of one at a time (`rollback --force`).
    #[serde(default)]
    pub force: bool,
    /// A canary: this share of each component's pods runs another revision.
    #[serde(default)]
    pub canary: Option<Canary>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Canary {
    pub revision: u64,
    pub percent: u8,
}

pub use oclaw_cluster::rollout::Rollout;

/// The revision `pod` should run: the canary's for the first pods of each component.
pub(super) fn target_revision(pod: &PodSpec, want: &[PodSpec], desired: &Desired) -> u64 {
    let Some(c) = desired.canary else {
        return desired.revision;
    };
    let same: Vec<&PodSpec> = want
        .iter()
        .filter(|w| w.component == pod.component)
        .collect();
    let k = oclaw_cluster::rollout::canary_count(same.len(), c.percent);
    match same.iter().position(|w| w.name == pod.name) {
        Some(i) if i < k => c.revision,
        _ => desired.revision,
    }
}

fn unix_now() -> f64 {
    Utc::now().timestamp_millis() as f64 / 1000.0
}

/// A pod's `/metrics` page (empty when it does not answer).
async fn metrics_page(http: &reqwest::Client, port: u16) -> String {
    match http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// One step of a canary rollout, if one is in progress: observe, decide, act.
async fn drive_rollout(
    dir: &Path,
    want: &[PodSpec],
    pods: &HashMap<String, PodState>,
    http: &reqwest::Client,
) {
    use oclaw_cluster::rollout::{step, Action, Observation};
    let path = dir.join("rollout.json");
    let Some(mut r): Option<Rollout> = read_json(&path) else {
        return;
    };
    if r.status.finished() {
        return;
    }
    let mut desired: Desired = read_json(&dir.join("desired.json")).unwrap_or_default();
    let rev = r.status.revision;
    let canary_pods = want
        .iter()
        .filter(|w| target_revision(w, want, &desired) == rev && desired.canary.is_some())
        .count();
    let on_new: Vec<&PodState> = want
        .iter()
        .filter_map(|w| pods.get(&w.name))
        .filter(|p| p.revision == rev)
        .collect();
    let mut o = Observation {
        canary_pods,
        canary_ready: on_new.iter().filter(|p| p.ready).count().min(canary_pods),
        pods: want.len(),
        new_ready: on_new.iter().filter(|p| p.ready).count(),
        confirmed: r.confirmed,
        ..Default::default()
    };
    let mut pages = Vec::new();
    for p in on_new.iter().filter(|p| p.pid.is_some()) {
        pages.push(metrics_page(http, p.port).await);
    }
    super::diagnose::canary_metrics(&pages, r.spec.min_tasks, &mut o);
    let (next, actions) = step(&r.status, &r.spec, &o, unix_now());
    for a in actions {
        match a {
            Action::RunCanary { revision, percent } => {
                desired.canary = Some(Canary { revision, percent })
            }
            Action::Promote { revision } => {
                desired.revision = revision;
                desired.canary = None;
            }
            Action::Rollback { reason, .. } => {
                slog!("canary of revision {rev} aborted: {reason}");
                desired.canary = None;
            }
            Action::MarkDeployed { revision } => mark(dir, revision, "deployed"),
            Action::MarkFailed { revision } => mark(dir, revision, "failed"),
        }
    }
    let _ = write_atomic(
        &dir.join("desired.json"),
        &serde_json::to_string(&desired).unwrap_or_default(),
    );
    if next != r.status {
        slog!("rollout of revision {rev}: {:?}", next.phase);
    }
    r.status = next;
    let _ = write_atomic(&path, &serde_json::to_string_pretty(&r).unwrap_or_default());
}

pub use oclaw_cluster::driver::Revision;

/// The node config (`oclaw.yaml`) every pod of `cluster` reads: its `spec.config`.
pub(super) fn node_yaml(cluster: &OpenClawCluster) -> String {
    let config = cluster
        .spec
        .config
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    serde_yaml::to_string(&config).unwrap_or_default()
}

pub(super) fn revisions_dir(dir: &Path) -> PathBuf {
    dir.join("revisions")
}

/// Every revision, oldest first.
pub fn revisions(dir: &Path) -> Vec<Revision> {
    let mut out: Vec<Revision> = std::fs::read_dir(revisions_dir(dir))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| read_json(&e.path()))
        .collect();
    out.sort_by_key(|r| r.revision);
    out
}

pub(super) fn save_revision(dir: &Path, r: &Revision) -> std::io::Result<()> {
    write_atomic(
        &revisions_dir(dir).join(format!("{}.json", r.revision)),
        &serde_json::to_string_pretty(r).unwrap_or_default(),
    )
}

/// Marks `n` with `status`; a newly deployed revision supersedes the one deployed before.
pub fn mark(dir: &Path, n: u64, status: &str) {
    let history = revisions(dir);
    for (r, s) in oclaw_cluster::driver::mark_plan(&history, n, status) {
        if let Some(mut rev) = history.iter().find(|x| x.revision == r).cloned() {
            rev.status = s;
            let _ = save_revision(dir, &rev);
        }
    }
}

/// The cluster file and node config a revision runs (revision 0: what `init` wrote).
pub(super) fn revision_files(dir: &Path, n: u64) -> (PathBuf, PathBuf) {
    if n == 0 {
        (dir.join("cluster.yaml"), dir.join("node.yaml"))
    } else {
        let rd = revisions_dir(dir);
        (
            rd.join(format!("{n}.cluster.yaml")),
            rd.join(format!("{n}.node.yaml")),
        )
    }
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
    /// The revision it runs.
    #[serde(default)]
    pub revision: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub supervisor_pid: u32,
    pub updated_at: Option<DateTime<Utc>>,
    pub pods: Vec<PodState>,
}

pub(super) fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

pub(super) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
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

pub(super) fn supervisor_pid(dir: &Path) -> Option<u32> {
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
    let node_config = node_yaml(cluster);
    let desired_path = dir.join("desired.json");
    let written = write_atomic(&dir.join("cluster.yaml"), text)
        .and_then(|_| write_atomic(&dir.join("node.yaml"), &node_config))
        .and_then(|_| match desired_path.exists() {
            true => Ok(()),
            false => write_atomic(
                &desired_path,
                &serde_json::to_string(&Desired::default()).unwrap_or_default(),
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
    if let Some(w) = ephemeral_overlap(cluster) {
        eprintln!("warning: {w}");
    }
    println!(
        "cluster `{}` initialised (local driver): namespace {}, state in {}, supervisor pid {pid}",
        cluster.metadata.name,
        cluster.metadata.namespace,
        dir.display()
    );
    println!("next: oclaw deploy core --components [api-server,worker,scheduler] --ha-mode true");
    ExitCode::SUCCESS
}

/// The pods' ports inside this host's ephemeral range, where the kernel picks the local ports
/// of outgoing connections: one of them may hold a pod's port when the pod restarts.
fn ephemeral_overlap(cluster: &OpenClawCluster) -> Option<String> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = range
        .split_whitespace()
        .filter_map(|p| p.parse::<u16>().ok());
    let (low, high) = (it.next()?, it.next()?);
    let ports: Vec<u16> = desired_pods(cluster, &RenderOptions::default())
        .iter()
        .map(|p| p.port)
        .collect();
    let (min, max) = (*ports.iter().min()?, *ports.iter().max()?);
    (max >= low && min <= high).then(|| {
        format!(
            "the pods listen on ports {min}..{max}, inside this host's ephemeral range {low}-{high} (the local ports of outgoing connections): a restarting pod may find its port taken; choose spec.network.port below {low}"
        )
    })
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
    let pid = child.id();
    // Recorded at once, so a `deploy` right after `init` finds it; then wait for its first
    // record of the pods (it writes one every quarter second once running).
    write_atomic(&dir.join("supervisor.pid"), &pid.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !dir.join("state.json").exists() {
        if Instant::now() > deadline || !alive(pid) {
            return Err(std::io::Error::other(format!(
                "the supervisor (pid {pid}) did not start; see {}",
                dir.join("supervisor.log").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(pid)
}

/// The supervisor's revisions, each read and parsed once: a recorded revision never changes
/// (revision 0, the file `init` writes, can, and is read each time).
#[derive(Default)]
struct RevisionFiles(HashMap<u64, OpenClawCluster>);

impl RevisionFiles {
    fn get(&mut self, dir: &Path, n: u64) -> Option<OpenClawCluster> {
        if n == 0 {
            return revision_cluster(dir, 0);
        }
        match self.0.entry(n) {
            std::collections::hash_map::Entry::Occupied(e) => Some(e.get().clone()),
            std::collections::hash_map::Entry::Vacant(v) => {
                Some(v.insert(revision_cluster(dir, n)?).clone())
            }
        }
    }
}

pub(super) fn revision_cluster(dir: &Path, n: u64) -> Option<OpenClawCluster> {
    let (file, _) = revision_files(dir, n);
    let text = std::fs::read_to_string(&file).ok()?;
    OpenClawCluster::parse(&file.display().to_string(), &text).ok()
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
    if revision_cluster(&dir, 0).is_none() {
        return fail(
            ErrorCode::DriverUnavailable,
            format!("no cluster in {}", dir.display()),
            EXIT_FAILURE,
        );
    }
    let _ = write_atomic(&dir.join("supervisor.pid"), &std::process::id().to_string());
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(ErrorCode::DriverUnavailable, e, EXIT_FAILURE),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap_or_default();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => return fail(ErrorCode::DriverUnavailable, e, EXIT_FAILURE),
    };
    let mut revisions = RevisionFiles::default();
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut pods: HashMap<String, PodState> = HashMap::new();
    let mut next_start: HashMap<String, Instant> = HashMap::new();
    // A quarter second between rounds when all is settled; 50 ms while pods start, become
    // ready or are replaced, so a rolling replacement moves as fast as the pods do.
    let mut delay = Duration::from_millis(250);
    let mut last_rollout = Instant::now();
    slog!(
        "supervisor of {namespace} running (pid {})",
        std::process::id()
    );
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = term.recv() => break,
        }
        let desired: Desired = read_json(&dir.join("desired.json")).unwrap_or_default();
        let Some(cluster) = revisions
            .get(&dir, desired.revision)
            .or_else(|| revision_cluster(&dir, 0))
        else {
            continue;
        };
        let storage = cluster.spec.storage.url.clone().unwrap_or_default();
        let want: Vec<PodSpec> = desired_pods(
            &cluster,
            &RenderOptions {
                components: desired.components.clone(),
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
                revision: 0,
            });
            if let Some(r) = running.get_mut(&spec.name) {
                if let Ok(Some(status)) = r.child.try_wait() {
                    running.remove(&spec.name);
                    let pid = state.pid.unwrap_or_default();
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
                    slog!(
                        "pod {} (pid {pid}) {}; restart {} in {:?}",
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
                let target = target_revision(spec, &want, &desired);
                let binary = revisions
                    .get(&dir, target)
                    .map(|c| binary_for(&c.version(), &exe))
                    .unwrap_or_else(|| exe.clone());
                match spawn_pod(&binary, &dir, &storage, namespace, spec, target) {
                    Ok(child) => {
                        state.pid = child.id();
                        state.started_at = Some(Utc::now());
                        state.status = "Running".into();
                        state.revision = target;
                        state.ready = false;
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
        // Rolling replacement onto each pod's target revision: one serving pod at a time, only
        // while every other pod is ready (or all at once with force). A replaced pod is not a
        // restart.
        let stale: Vec<String> = want
            .iter()
            .filter(|w| {
                pods.get(&w.name).is_some_and(|p| {
                    p.pid.is_some() && p.revision != target_revision(w, &want, &desired)
                })
            })
            .map(|w| w.name.clone())
            .collect();
        let all_ready = want
            .iter()
            .all(|w| pods.get(&w.name).is_some_and(|p| p.ready));
        // A stale pod that is not ready serves nothing: it is replaced at once (a canary that
        // crash-loops must not block its own rollback).
        let (broken, serving): (Vec<String>, Vec<String>) = stale
            .into_iter()
            .partition(|n| pods.get(n).is_some_and(|p| !p.ready));
        let replace: Vec<String> = if desired.force {
            broken.into_iter().chain(serving).collect()
        } else if all_ready {
            serving.into_iter().take(1).collect()
        } else {
            broken
        };
        for name in replace {
            if let Some(mut r) = running.remove(&name) {
                slog!("replacing pod {name} with revision {}", desired.revision);
                stop_child(&mut r.child).await;
            }
            if let Some(p) = pods.get_mut(&name) {
                p.pid = None;
                p.ready = false;
                p.status = "Pending".into();
            }
            next_start.remove(&name);
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
        let settled = want.iter().all(|w| {
            pods.get(&w.name).is_some_and(|p| {
                p.ready && p.pid.is_some() && p.revision == target_revision(w, &want, &desired)
            })
        });
        // A pod waiting out its restart backoff is not worth waking for.
        let backing_off = want.iter().any(|w| {
            !running.contains_key(&w.name)
                && next_start.get(&w.name).is_some_and(|t| *t > Instant::now())
        });
        delay = Duration::from_millis(if settled || backing_off { 250 } else { 50 });
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
        if last_rollout.elapsed() >= Duration::from_secs(1) {
            last_rollout = Instant::now();
            drive_rollout(&dir, &want, &pods, &http).await;
        }
    }
    slog!("supervisor of {namespace} stopping its pods");
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

/// Where the `oclaw` of `version` is installed for the local driver.
pub fn version_binary(version: &str) -> PathBuf {
    home().join("versions").join(version).join("oclaw")
}

/// The executable the pods of `version` run: this binary for its own version, else the one
/// installed under `$OCLAW_HOME/versions/<version>/oclaw`, else (with a warning at deploy time)
/// this binary.
pub fn binary_for(version: &str, this: &Path) -> PathBuf {
    let v = version.trim_start_matches('v');
    if v == env!("CARGO_PKG_VERSION") {
        return this.to_path_buf();
    }
    let installed = version_binary(v);
    if installed.is_file() {
        installed
    } else {
        this.to_path_buf()
    }
}

fn spawn_pod(
    exe: &Path,
    dir: &Path,
    storage: &str,
    namespace: &str,
    spec: &PodSpec,
    revision: u64,
) -> std::io::Result<tokio::process::Child> {
    let (_, node_config) = revision_files(dir, revision);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("logs").join(format!("{}.log", spec.name)))?;
    tokio::process::Command::new(exe)
        .arg(&spec.component)
        .arg("--config")
        .arg(node_config)
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

/// The local driver's canary rollouts (driven by the supervisor through
/// `oclaw_cluster::rollout::step`): `all-in --confirm` while one is in progress promotes it, a
/// second `canary` is refused. Answers `None` when none is in progress (a new canary starts
/// through `super::release::start_canary`, an all-in is a plain release).
pub fn canary_upgrade(args: &crate::cli::UpgradeArgs, canary: bool) -> Option<ExitCode> {
    let dir = cluster_dir(&args.namespace);
    let mut r = read_json::<Rollout>(&dir.join("rollout.json")).filter(|r| !r.status.finished())?;
    if canary {
        return Some(super::release::report(&super::release::canary_in_progress(
            &r,
        )));
    }
    r.confirmed = true;
    if let Err(e) = write_atomic(
        &dir.join("rollout.json"),
        &serde_json::to_string_pretty(&r).unwrap_or_default(),
    ) {
        return Some(fail(ErrorCode::ConfigUnreadable, e, EXIT_FAILURE));
    }
    super::release::say!("promoting revision {} to every pod", r.status.revision);
    Some(follow_rollout(
        &dir,
        Duration::from_secs(args.timeout),
        true,
    ))
}

/// Hands a started canary to the supervisor and follows it until it pauses or ends.
pub fn begin_canary(namespace: &str, rollout: &Rollout, timeout: Duration) -> ExitCode {
    let dir = cluster_dir(namespace);
    if let Err(e) = write_atomic(
        &dir.join("rollout.json"),
        &serde_json::to_string_pretty(rollout).unwrap_or_default(),
    ) {
        return fail(ErrorCode::ConfigUnreadable, e, EXIT_FAILURE);
    }
    follow_rollout(&dir, timeout, false)
}

/// Follows a canary rollout, printing each phase, until it pauses for confirmation (unless
/// `to_the_end`), succeeds or aborts.
fn follow_rollout(dir: &Path, timeout: Duration, to_the_end: bool) -> ExitCode {
    let deadline = Instant::now() + timeout + Duration::from_secs(10);
    let mut shown = None;
    loop {
        if let Some(r) = read_json::<Rollout>(&dir.join("rollout.json")) {
            match super::release::rollout_progress(&r, &mut shown, to_the_end) {
                Some(Ok(code)) => return code,
                Some(Err(e)) => return super::release::report(&e),
                None => {}
            }
        }
        if Instant::now() > deadline {
            return fail(
                ErrorCode::RolloutFailed,
                "the rollout did not finish in time; see oclaw upgrade history",
                EXIT_FAILURE,
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(port: u16) -> OpenClawCluster {
        let text =
            oclaw_cluster::model::SEED_EXAMPLE.replace("port: 8080", &format!("port: {port}"));
        OpenClawCluster::parse("p.yaml", &text).unwrap()
    }

    #[test]
    fn pods_in_the_ephemeral_port_range_are_warned_about() {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
        let low: u16 = range.split_whitespace().next().unwrap().parse().unwrap();
        assert!(ephemeral_overlap(&cluster(8080)).is_none());
        let w = ephemeral_overlap(&cluster(low + 10)).unwrap();
        assert!(
            w.contains("ephemeral range") && w.contains(&format!("below {low}")),
            "{w}"
        );
        // The probes at port + 100.. reach into it too.
        assert!(ephemeral_overlap(&cluster(low - 50)).is_some());
    }
}

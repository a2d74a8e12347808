//! The supervisor (`oclaw supervise`, started by `init`): every round it reads `desired.json`,
//! stops pods no longer wanted, notices exits (RESTARTS, the last exit, the previous log) and
//! restarts with backoff, starts pods on their target revision, replaces stale pods (what and
//! when is decided in [`super::plan`]), probes `/readyz`, writes `state.json`, and once a second
//! steps a canary rollout. Its log lines go to stderr (`supervisor.log`).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::plan::{backoff, exit_reason, replacements, settled};
use super::process::signal;
use super::record::{
    binary_for, cluster_dir, read_json, revision_cluster, revision_files, write_atomic, write_json,
    Desired, PodState, RevisionFiles, State,
};
use super::render::{desired_pods, PodSpec};
use super::rollout::drive_rollout;
use crate::driver::{DriverError, RenderOptions};

struct Running {
    child: tokio::process::Child,
}

/// `oclaw supervise --namespace NS`: the supervisor loop (started by `init`).
pub fn supervise(namespace: &str) -> Result<(), DriverError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DriverError::unavailable(e.to_string()))?;
    rt.block_on(supervise_loop(namespace))
}

async fn supervise_loop(namespace: &str) -> Result<(), DriverError> {
    let dir = cluster_dir(namespace);
    if revision_cluster(&dir, 0).is_none() {
        return Err(DriverError::unavailable(format!(
            "no cluster in {}",
            dir.display()
        )));
    }
    let _ = write_atomic(&dir.join("supervisor.pid"), &std::process::id().to_string());
    let exe = std::env::current_exe().map_err(|e| DriverError::unavailable(e.to_string()))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap_or_default();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| DriverError::unavailable(e.to_string()))?;
    let mut revisions = RevisionFiles::default();
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut pods: HashMap<String, PodState> = HashMap::new();
    let mut next_start: HashMap<String, Instant> = HashMap::new();
    // A quarter second between rounds when all is settled; 50 ms while pods start, become
    // ready or are replaced, so a rolling replacement moves as fast as the pods do.
    let mut delay = Duration::from_millis(250);
    let mut last_rollout = Instant::now();
    // The cluster's own database processes (replicated kind), kept to be reaped.
    let mut database = super::replicated::Keeper::default();
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
        let storage = match &cluster.spec.storage.url {
            Some(url) => url.clone(),
            None => {
                // The cluster's own database: started again if it stopped.
                let db = super::database::Database::of(&dir);
                match db.keep_running(&mut database) {
                    Ok(started) if started.is_empty() => {}
                    Ok(started) => slog!("database: started {}", started.join(", ")),
                    Err(e) => slog!("database does not start: {e}"),
                }
                db.url().unwrap_or_default()
            }
        };
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
                let target = super::record::target_revision(spec, &want, &desired);
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
        for name in replacements(&want, &pods, &desired) {
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
        let settled = settled(&want, &pods, &desired);
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
        let _ = write_json(&dir.join("state.json"), &state);
        if last_rollout.elapsed() >= Duration::from_secs(1) {
            last_rollout = Instant::now();
            drive_rollout(&dir, &want, &pods, &http).await;
        }
    }
    slog!("supervisor of {namespace} stopping its pods");
    for (_, mut r) in running.drain() {
        stop_child(&mut r.child).await;
    }
    let _ = write_json(&dir.join("state.json"), &State::default());
    let _ = std::fs::remove_file(dir.join("supervisor.pid"));
    Ok(())
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
        signal(pid, super::process::Signal::SIGTERM);
    }
    if tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

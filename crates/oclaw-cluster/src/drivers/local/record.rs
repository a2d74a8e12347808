//! The local cluster's directory, the one record every local part shares:
//! `$OCLAW_HOME/clusters/<namespace>/` holds `cluster.yaml` and `node.yaml` (what `init` wrote),
//! `desired.json` (what `deploy` asks for), `state.json` (what the supervisor sees),
//! `rollout.json` (a canary in progress), `revisions/` (the history, one JSON file and the cluster
//! file and node config of each revision) and `logs/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::render::PodSpec;
use crate::driver::Revision;
use crate::model::OpenClawCluster;

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

pub use crate::rollout::Rollout;

/// The revision `pod` should run: the canary's for the first pods of each component.
pub fn target_revision(pod: &PodSpec, want: &[PodSpec], desired: &Desired) -> u64 {
    let Some(c) = desired.canary else {
        return desired.revision;
    };
    let same: Vec<&PodSpec> = want
        .iter()
        .filter(|w| w.component == pod.component)
        .collect();
    let k = crate::rollout::canary_count(same.len(), c.percent);
    match same.iter().position(|w| w.name == pod.name) {
        Some(i) if i < k => c.revision,
        _ => desired.revision,
    }
}

/// The node config (`oclaw.yaml`) every pod of `cluster` reads: its `spec.config`.
pub fn node_yaml(cluster: &OpenClawCluster) -> String {
    let config = cluster
        .spec
        .config
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    serde_saphyr::to_string(&config).unwrap_or_default()
}

pub fn revisions_dir(dir: &Path) -> PathBuf {
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

pub fn save_revision(dir: &Path, r: &Revision) -> std::io::Result<()> {
    write_atomic(
        &revisions_dir(dir).join(format!("{}.json", r.revision)),
        &serde_json::to_string_pretty(r).map_err(std::io::Error::other)?,
    )
}

/// Marks `n` with `status`; a newly deployed revision supersedes the one deployed before.
pub fn mark(dir: &Path, n: u64, status: crate::driver::RevisionStatus) {
    let history = revisions(dir);
    for (r, s) in crate::driver::mark_plan(&history, n, status) {
        if let Some(mut rev) = history.iter().find(|x| x.revision == r).cloned() {
            rev.status = s;
            let _ = save_revision(dir, &rev);
        }
    }
}

/// The cluster file and node config a revision runs (revision 0: what `init` wrote).
pub fn revision_files(dir: &Path, n: u64) -> (PathBuf, PathBuf) {
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

pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

/// `value` as pretty JSON, written atomically; a value that does not serialize writes nothing.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    write_atomic(
        path,
        &serde_json::to_string_pretty(value).map_err(std::io::Error::other)?,
    )
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// The supervisor's revisions, each read and parsed once: a recorded revision never changes
/// (revision 0, the file `init` writes, can, and is read each time).
#[derive(Default)]
pub struct RevisionFiles(HashMap<u64, OpenClawCluster>);

impl RevisionFiles {
    pub fn get(&mut self, dir: &Path, n: u64) -> Option<OpenClawCluster> {
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

pub fn revision_cluster(dir: &Path, n: u64) -> Option<OpenClawCluster> {
    let (file, _) = revision_files(dir, n);
    let text = std::fs::read_to_string(&file).ok()?;
    OpenClawCluster::parse(&file.display().to_string(), &text).ok()
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

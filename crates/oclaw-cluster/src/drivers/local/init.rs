//! `oclaw init` on the local driver: the cluster's directory written and its supervisor started
//! (or the running one kept).

use std::path::PathBuf;

use super::database::Database;
use super::process::{start_supervisor, supervisor_pid};
use super::record::{cluster_dir, node_yaml, write_atomic, write_json, Desired};
use super::render::desired_pods;
use crate::driver::{DriverError, RenderOptions};
use crate::model::OpenClawCluster;

/// What `init` made.
#[derive(Debug)]
pub struct Initialised {
    pub dir: PathBuf,
    pub supervisor_pid: u32,
    /// Something the operator should change (the pods' ports in the ephemeral range).
    pub warning: Option<String>,
    /// The cluster's own PostgreSQL when the file names no database: its members (none until
    /// the first `deploy core` makes it). `None`: the cluster uses the file's database.
    pub database: Option<Vec<super::database::DatabaseMember>>,
}

/// Writes the cluster's directory (the cluster file `text`, its node config, an empty
/// `desired.json` unless one exists) and starts the supervisor unless it runs.
/// Without `spec.storage.url` the cluster gets a PostgreSQL of its own (made, or started again).
pub fn init(cluster: &OpenClawCluster, text: &str) -> Result<Initialised, DriverError> {
    let dir = cluster_dir(&cluster.metadata.namespace);
    let unwritable =
        |e: std::io::Error| DriverError::unavailable(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir.join("logs")).map_err(unwritable)?;
    // Without a database URL the cluster gets its own, made by the first `deploy core`; the
    // binaries it needs are checked now.
    let database = match cluster.spec.storage.url {
        Some(_) => None,
        None => {
            super::database::server_binaries()?;
            Some(Database::of(&dir).members())
        }
    };
    let desired_path = dir.join("desired.json");
    write_atomic(&dir.join("cluster.yaml"), text)
        .and_then(|_| write_atomic(&dir.join("node.yaml"), &node_yaml(cluster)))
        .and_then(|_| match desired_path.exists() {
            true => Ok(()),
            false => write_json(&desired_path, &Desired::default()),
        })
        .map_err(unwritable)?;
    let pid = match supervisor_pid(&dir) {
        Some(pid) => pid,
        None => start_supervisor(&dir, &cluster.metadata.namespace)
            .map_err(|e| DriverError::unavailable(format!("starting the supervisor: {e}")))?,
    };
    Ok(Initialised {
        database,
        warning: ephemeral_overlap(cluster),
        dir,
        supervisor_pid: pid,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(port: u16) -> OpenClawCluster {
        let text = crate::model::SEED_EXAMPLE.replace("port: 8080", &format!("port: {port}"));
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

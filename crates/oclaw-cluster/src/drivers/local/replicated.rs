//! The local cluster's replicated database (`deploy core --ha-mode true` without
//! `spec.storage.url`): three PostgreSQL servers managed by Patroni, which elects a leader
//! through a three-member etcd, streams to the other two (one of them synchronous, so an
//! acknowledged commit survives the leader) and promotes a replica when the leader dies. The
//! components connect with one URL naming all three (`target_session_attrs=read-write`), so
//! they follow a failover by themselves. The supervisor keeps the six processes running.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::database::{failed, postgres_ids, write_private, DatabaseMember};
use crate::driver::DriverError;

/// Ports of the etcd members and the database members, chosen when it is made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Layout {
    pub etcd: Vec<(u16, u16)>,
    /// (Patroni REST API port, PostgreSQL port) per member.
    pub members: Vec<(u16, u16)>,
}

const MEMBERS: usize = 3;

fn free_ports(n: usize) -> Result<Vec<u16>, DriverError> {
    // Held together so the kernel gives distinct ports, released before the servers bind them.
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| failed(format!("no free ports for the database: {e}")))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| failed(format!("no free ports for the database: {e}")))
}

/// The programs this needs besides the PostgreSQL server binaries.
pub fn ha_programs() -> Result<(PathBuf, PathBuf), DriverError> {
    let find = |name: &str| {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .chain([PathBuf::from("/usr/bin")])
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    match (find("patroni"), find("etcd")) {
        (Some(p), Some(e)) => Ok((p, e)),
        _ => Err(failed(
            "--ha-mode true gives the cluster's own database three replicated members managed by \
             Patroni with etcd, which this host does not have: install them (Debian/Ubuntu: \
             apt-get install patroni etcd-server), deploy with --ha-mode false, or set spec.storage.url",
        )),
    }
}

pub struct Replicated {
    pub dir: PathBuf,
}

/// What the supervisor keeps between rounds: the members' process handles (so exited ones are
/// reaped) and since when a database member has been down.
#[derive(Default)]
pub struct Keeper {
    children: HashMap<String, Child>,
    down_since: HashMap<String, Instant>,
    /// The members' command lines, worked out once the layout exists (it never changes after).
    plan: Option<Vec<(String, Vec<String>)>>,
}

/// How long a database member that died stays down before it is started again: longer than
/// its leader lease (`ttl` 10 s), so when the leader dies a replica is promoted and the old
/// leader comes back as a replica, instead of reclaiming a term the others are waiting out.
const REJOIN_AFTER: Duration = Duration::from_secs(12);

impl Replicated {
    fn layout(&self) -> Option<Layout> {
        let text = std::fs::read_to_string(self.dir.join("layout.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn etcd_hosts(layout: &Layout) -> String {
        layout
            .etcd
            .iter()
            .map(|(c, _)| format!("\"127.0.0.1:{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Writes the members' configuration; the supervisor starts them. Returns the URL the
    /// components use, once a leader answers.
    pub fn make(&self, bin: &Path, password: &str) -> Result<String, DriverError> {
        ha_programs()?;
        let ports = free_ports(4 * MEMBERS)?;
        let layout = Layout {
            etcd: (0..MEMBERS)
                .map(|i| (ports[i], ports[MEMBERS + i]))
                .collect(),
            members: (0..MEMBERS)
                .map(|i| (ports[2 * MEMBERS + i], ports[3 * MEMBERS + i]))
                .collect(),
        };
        let io = |e: std::io::Error| failed(format!("{}: {e}", self.dir.display()));
        let replication = super::database::random_secret()?;
        for (i, (rest, pg)) in layout.members.iter().enumerate() {
            let d = self.dir.display();
            let config = format!(
                "scope: oclaw\nname: pg-{i}\n\
                 restapi: {{listen: \"127.0.0.1:{rest}\", connect_address: \"127.0.0.1:{rest}\"}}\n\
                 etcd3: {{hosts: [{hosts}]}}\n\
                 bootstrap:\n  dcs:\n    ttl: 10\n    loop_wait: 2\n    retry_timeout: 4\n    synchronous_mode: true\n\
                 \x20   postgresql: {{use_pg_rewind: true, parameters: {{wal_level: replica, hot_standby: \"on\", wal_log_hints: \"on\"}}}}\n\
                 \x20 initdb: [{{encoding: UTF8}}, {{auth: scram-sha-256}}]\n\
                 \x20 pg_hba:\n    - host replication replicator 127.0.0.1/32 scram-sha-256\n    - host all all 127.0.0.1/32 scram-sha-256\n\
                 postgresql:\n  listen: \"127.0.0.1:{pg}\"\n  connect_address: \"127.0.0.1:{pg}\"\n\
                 \x20 data_dir: {d}/pg-{i}\n  bin_dir: {bin}\n  pgpass: {d}/pgpass-{i}\n\
                 \x20 basebackup: [{{checkpoint: fast}}]\n\
                 \x20 authentication:\n    superuser: {{username: oclaw, password: \"{password}\"}}\n\
                 \x20   replication: {{username: replicator, password: \"{replication}\"}}\n\
                 \x20   rewind: {{username: oclaw, password: \"{password}\"}}\n\
                 \x20 parameters: {{unix_socket_directories: \"{d}/run\"}}\n",
                hosts = Self::etcd_hosts(&layout),
                bin = bin.display(),
            );
            write_private(&self.dir.join(format!("patroni-{i}.yml")), &config).map_err(io)?;
        }
        std::fs::write(
            self.dir.join("layout.json"),
            serde_json::to_string(&layout).unwrap_or_default(),
        )
        .map_err(io)?;
        super::database::hand_to_postgres(&self.dir)?;
        // The supervisor starts the members on its next round; wait for a leader.
        let hosts: Vec<String> = layout
            .members
            .iter()
            .map(|(_, pg)| format!("127.0.0.1:{pg}"))
            .collect();
        let base = format!("postgres://oclaw:{password}@{}", hosts.join(","));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut psql = Command::new(bin.join("psql"));
            psql.arg(format!(
                "{base}/postgres?target_session_attrs=read-write&connect_timeout=2"
            ))
            .args(["-qAtc", "SELECT 1 FROM pg_database WHERE datname = 'oclaw'"]);
            if let Ok(out) = psql.output() {
                if out.status.success() {
                    if String::from_utf8_lossy(&out.stdout).trim() != "1" {
                        let mut create = Command::new(bin.join("psql"));
                        create
                            .arg(format!("{base}/postgres?target_session_attrs=read-write"))
                            .args(["-qc", "CREATE DATABASE oclaw"]);
                        super::database::run(create, "CREATE DATABASE oclaw")?;
                    }
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "the replicated database elected no leader within 120s (logs: {}/patroni-*.log, etcd-*.log; is the supervisor running?)",
                    self.dir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Ok(format!("{base}/oclaw?target_session_attrs=read-write"))
    }

    /// The six processes: (name, program and arguments).
    fn processes(&self, layout: &Layout) -> Vec<(String, Vec<String>)> {
        let (patroni, etcd) = match ha_programs() {
            Ok(p) => p,
            Err(_) => return Vec::new(),
        };
        let cluster: Vec<String> = layout
            .etcd
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("etcd-{i}=http://127.0.0.1:{peer}"))
            .collect();
        let mut out = Vec::new();
        for (i, (client, peer)) in layout.etcd.iter().enumerate() {
            out.push((
                format!("etcd-{i}"),
                vec![
                    etcd.display().to_string(),
                    format!("--name=etcd-{i}"),
                    format!("--data-dir={}/etcd-{i}", self.dir.display()),
                    format!("--listen-client-urls=http://127.0.0.1:{client}"),
                    format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                    format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                    format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                    format!("--initial-cluster={}", cluster.join(",")),
                    "--initial-cluster-token=oclaw".into(),
                    "--initial-cluster-state=new".into(),
                ],
            ));
        }
        for i in 0..layout.members.len() {
            out.push((
                format!("pg-{i}"),
                vec![
                    patroni.display().to_string(),
                    format!("{}/patroni-{i}.yml", self.dir.display()),
                ],
            ));
        }
        out
    }

    fn pid_of(&self, name: &str) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir.join(format!("{name}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // A zombie (exited, not yet reaped) is not running.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat.rsplit(')').next()?.split_whitespace().next()?;
        (state != "Z").then_some(pid)
    }

    /// Starts the members that are not running (the supervisor calls this every round). Answers
    /// the names started.
    pub fn keep_running(&self, keeper: &mut Keeper) -> Vec<String> {
        keeper
            .children
            .retain(|_, c| matches!(c.try_wait(), Ok(None)));
        if keeper.plan.is_none() {
            // Read the layout and find the programs once, not on every supervisor round.
            keeper.plan = self
                .layout()
                .map(|l| self.processes(&l))
                .filter(|p| !p.is_empty());
        }
        let Some(plan) = keeper.plan.clone() else {
            return Vec::new();
        };
        let ids = postgres_ids();
        let mut started = Vec::new();
        for (name, argv) in plan {
            if self.pid_of(&name).is_some() {
                keeper.down_since.remove(&name);
                continue;
            }
            // A member that ran before (its data is there) waits out the leader lease.
            let made = self.dir.join(&name).join("PG_VERSION").exists();
            if name.starts_with("pg-") && made {
                let since = *keeper
                    .down_since
                    .entry(name.clone())
                    .or_insert_with(Instant::now);
                if since.elapsed() < REJOIN_AFTER {
                    continue;
                }
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("{name}.log")));
            let Ok(log) = log else { continue };
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..])
                .current_dir(&self.dir)
                .env("HOME", &self.dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().map(Stdio::from).unwrap_or(Stdio::null()))
                .stderr(Stdio::from(log));
            {
                use std::os::unix::process::CommandExt;
                // Out of the supervisor's process group: its stop signal is not theirs.
                c.process_group(0);
                if let Some((uid, gid)) = ids {
                    c.uid(uid).gid(gid);
                }
            }
            if let Ok(child) = c.spawn() {
                let _ =
                    std::fs::write(self.dir.join(format!("{name}.pid")), child.id().to_string());
                keeper.down_since.remove(&name);
                keeper.children.insert(name.clone(), child);
                started.push(name);
            }
        }
        started
    }

    /// Stops the members (Patroni stops its PostgreSQL), then etcd.
    pub fn stop(&self) -> bool {
        let Some(layout) = self.layout() else {
            return false;
        };
        let mut any = false;
        for group in ["pg-", "etcd-"] {
            let names: Vec<String> = self
                .processes(&layout)
                .into_iter()
                .map(|(n, _)| n)
                .filter(|n| n.starts_with(group))
                .collect();
            let pids: Vec<u32> = names.iter().filter_map(|n| self.pid_of(n)).collect();
            for pid in &pids {
                super::process::signal(*pid, super::process::Signal::SIGTERM);
                any = true;
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while names.iter().any(|n| self.pid_of(n).is_some()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            for n in &names {
                if let Some(pid) = self.pid_of(n) {
                    super::process::signal(pid, super::process::Signal::SIGKILL);
                }
            }
        }
        // A PostgreSQL left behind by a killed Patroni.
        for i in 0..layout.members.len() {
            let pidfile = self.dir.join(format!("pg-{i}/postmaster.pid"));
            if let Some(pid) = std::fs::read_to_string(pidfile)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
            {
                if super::process::alive(pid) {
                    super::process::signal(pid, super::process::Signal::SIGQUIT);
                }
            }
        }
        any
    }

    /// Each member's role as Patroni reports it, and the etcd members.
    pub fn members(&self) -> Vec<DatabaseMember> {
        let Some(layout) = self.layout() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, (rest, pg)) in layout.members.iter().enumerate() {
            let name = format!("pg-{i}");
            let report = patroni_report(*rest);
            let role = match report.as_ref().and_then(|r| r["role"].as_str()) {
                Some("master" | "primary") => "leader",
                Some("replica" | "standby_leader")
                    if report.as_ref().is_some_and(|r| r["sync_standby"] == true) =>
                {
                    "sync-replica"
                }
                Some(_) => "replica",
                None => "-",
            };
            let status = match report.as_ref().and_then(|r| r["state"].as_str()) {
                Some("running") => "Running".to_string(),
                Some(other) => other.to_string(),
                None if self.pid_of(&name).is_some() => "Starting".to_string(),
                None => "Stopped".to_string(),
            };
            out.push(DatabaseMember {
                name,
                role: role.into(),
                status,
                port: *pg,
                pid: self.pid_of(&format!("pg-{i}")),
            });
        }
        for (i, (client, _)) in layout.etcd.iter().enumerate() {
            let name = format!("etcd-{i}");
            let pid = self.pid_of(&name);
            out.push(DatabaseMember {
                status: if pid.is_some() { "Running" } else { "Stopped" }.into(),
                name,
                role: "etcd".into(),
                port: *client,
                pid,
            });
        }
        out
    }
}

/// `GET /patroni` of a member's REST API (a plain HTTP/1.0 exchange; 1 s at most).
fn patroni_report(port: u16) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    s.write_all(b"GET /patroni HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    serde_json::from_str(body).ok()
}

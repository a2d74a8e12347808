//! The cluster's own PostgreSQL on the local driver, for a cluster file whose `spec.storage`
//! names no `url` (the deployment guide's file gives only a storage class and a size). `init`
//! makes it under the cluster's folder (`postgres/`) from this host's PostgreSQL server binaries,
//! the supervisor keeps it running, `status` lists it beside the pods, and `teardown` stops it
//! (its data stays unless `--purge`). It listens on loopback only and requires a password of its
//! own, kept in the cluster's folder with mode 0600. It is made by the first `deploy core`: one
//! server, or with `--ha-mode true` three replicated members ([`super::replicated`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use crate::driver::DatabaseMember;
use crate::driver::DriverError;
use oclaw_core::ErrorCode;

/// The cluster's PostgreSQL, in `<cluster dir>/postgres`.
pub struct Database {
    dir: PathBuf,
}

pub(crate) fn failed(message: impl Into<String>) -> DriverError {
    DriverError::new(ErrorCode::DatabaseUnavailable, message)
}

/// Whether this process runs as root (PostgreSQL refuses to, so its commands run as `postgres`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The folder with `initdb` and `pg_ctl`: `$OCLAW_POSTGRES_BIN`, else the newest of
/// `/usr/lib/postgresql/*/bin` (Debian, Ubuntu), else a folder on `PATH`.
pub fn server_binaries() -> Result<PathBuf, DriverError> {
    find_binaries(
        std::env::var_os("OCLAW_POSTGRES_BIN").map(PathBuf::from),
        Path::new("/usr/lib/postgresql"),
        std::env::var_os("PATH"),
    )
}

const INSTALL: &str = "install them (Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server)";

fn find_binaries(
    given: Option<PathBuf>,
    versions_root: &Path,
    path: Option<std::ffi::OsString>,
) -> Result<PathBuf, DriverError> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(d) = given {
        return if has(&d) {
            Ok(d)
        } else {
            Err(failed(format!(
                "OCLAW_POSTGRES_BIN={} has no PostgreSQL server binaries (initdb, pg_ctl): {INSTALL}, or point it at their folder",
                d.display()
            )))
        };
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(versions_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has(d))
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Ok(d);
    }
    path.into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| has(d))
        .ok_or_else(|| {
            failed(format!(
                "the cluster file names no spec.storage.url, so the cluster runs a PostgreSQL of its own, \
                 but this host has no PostgreSQL server binaries (initdb, pg_ctl): {INSTALL}, \
                 set OCLAW_POSTGRES_BIN to their folder, or set spec.storage.url to an existing database"
            ))
        })
}

/// The uid and gid of `postgres` when this process runs as root (the database runs as it).
pub(crate) fn postgres_ids() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let mut f = line.split(':').skip(2);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// Gives the database's folder to `postgres` when running as root, and checks it can reach it.
pub(crate) fn hand_to_postgres(dir: &Path) -> Result<(), DriverError> {
    if !is_root() {
        return Ok(());
    }
    let owned = Command::new("chown")
        .args(["-R", "postgres:"])
        .arg(dir)
        .status()
        .map_err(|e| failed(format!("chown: {e}")))?;
    if !owned.success() {
        return Err(failed(
            "running as root, the database runs as user `postgres`, which this host does not have \
             (it comes with the PostgreSQL server package)",
        ));
    }
    let mut reach = Command::new("runuser");
    reach.args(["-u", "postgres", "--", "test", "-w"]).arg(dir);
    if !reach.status().is_ok_and(|s| s.success()) {
        return Err(failed(format!(
            "the database runs as user `postgres` (PostgreSQL refuses root), which cannot reach {}: \
             set OCLAW_HOME to a folder it can reach (for example /var/lib/oclaw), or set spec.storage.url",
            dir.display()
        )));
    }
    Ok(())
}

/// 16 random bytes as hex, for the database password.
pub(crate) fn random_secret() -> Result<String, DriverError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| failed(format!("no randomness for the database password: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

pub(crate) fn run(mut c: Command, what: &str) -> Result<String, DriverError> {
    let out = c
        .output()
        .map_err(|e| failed(format!("{what}: cannot run it: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(failed(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Database {
    pub fn of(cluster_dir: &Path) -> Database {
        Database {
            dir: cluster_dir.join("postgres"),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The URL the components use, once the database is made.
    pub fn url(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("url"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn port(&self) -> Option<u16> {
        std::fs::read_to_string(self.dir.join("port"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A server command (`initdb`, `pg_ctl`) as the user PostgreSQL runs as.
    fn server(&self, bin: &Path, program: &str) -> Command {
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(program));
            c
        } else {
            Command::new(bin.join(program))
        }
    }

    fn replicated(&self) -> super::replicated::Replicated {
        super::replicated::Replicated {
            dir: self.dir.clone(),
        }
    }

    /// Whether it is the replicated kind.
    pub fn is_replicated(&self) -> bool {
        self.dir.join("layout.json").exists()
    }

    /// Makes the database unless it exists (`ha`: three replicated members) and returns its
    /// URL, with a note when it exists in the other kind (a database is not remade).
    pub fn provision(&self, ha: bool) -> Result<(String, Option<String>), DriverError> {
        if let Some(url) = self.url() {
            let note = (ha != self.is_replicated()).then(|| {
                format!(
                    "the cluster's database stays {} ({}); `oclaw teardown --purge` and `init` again to remake it",
                    if self.is_replicated() { "replicated" } else { "one server" },
                    self.dir.display()
                )
            });
            if !self.is_replicated() {
                self.ensure_running()?;
            }
            return Ok((url, note));
        }
        let bin = server_binaries()?;
        let io = |e: std::io::Error| failed(format!("{}: {e}", self.dir.display()));
        std::fs::create_dir_all(self.dir.join("run")).map_err(io)?;
        let password = random_secret()?;
        if ha {
            let url = self.replicated().make(&bin, &password)?;
            write_private(&self.dir.join("url"), &url).map_err(io)?;
            return Ok((url, None));
        }
        let pwfile = self.dir.join("initdb.pw");
        write_private(&pwfile, &password).map_err(io)?;
        hand_to_postgres(&self.dir)?;
        let mut initdb = self.server(&bin, "initdb");
        initdb
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                "oclaw",
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-instructions",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        let made = run(initdb, "initdb");
        let _ = std::fs::remove_file(&pwfile);
        made?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| failed(format!("no free port for the database: {e}")))?
            .port();
        std::fs::write(self.dir.join("port"), port.to_string()).map_err(io)?;
        self.ensure_running()?;
        let mut create = Command::new(bin.join("createdb"));
        create
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "oclaw",
                "oclaw",
            ])
            .env("PGPASSWORD", &password);
        run(create, "createdb oclaw")?;
        let url = format!("postgres://oclaw:{password}@127.0.0.1:{port}/oclaw");
        write_private(&self.dir.join("url"), &url).map_err(io)?;
        Ok((url, None))
    }

    /// Keeps the database running (the supervisor calls this every round): starts what
    /// stopped. Answers what it started.
    pub fn keep_running(
        &self,
        keeper: &mut super::replicated::Keeper,
    ) -> Result<Vec<String>, DriverError> {
        if self.is_replicated() {
            return Ok(self.replicated().keep_running(keeper));
        }
        if self.url().is_none() {
            return Ok(Vec::new());
        }
        Ok(match self.ensure_running()? {
            true => vec!["postgres-0".into()],
            false => Vec::new(),
        })
    }

    /// The server's pid when it runs (from `postmaster.pid`).
    fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        let pid: u32 = text.lines().next()?.trim().parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// Starts the server unless it runs; true when it had to be started.
    pub fn ensure_running(&self) -> Result<bool, DriverError> {
        if self.pid().is_some() {
            return Ok(false);
        }
        let port = self
            .port()
            .ok_or_else(|| failed(format!("{}: no port recorded", self.dir.display())))?;
        let bin = server_binaries()?;
        let mut ctl = self.server(&bin, "pg_ctl");
        ctl.arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "60", "-l"])
            .arg(self.log())
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                self.dir.join("run").display()
            ))
            .arg("start");
        run(ctl, "pg_ctl start")
            .map_err(|e| failed(format!("{} (its log: {})", e.message, self.log().display())))?;
        Ok(true)
    }

    /// Stops the server (fast shutdown: sessions end, the data is consistent).
    pub fn stop(&self) -> Result<bool, DriverError> {
        if self.is_replicated() {
            return Ok(self.replicated().stop());
        }
        if self.pid().is_none() {
            return Ok(false);
        }
        let bin = server_binaries()?;
        let mut ctl = self.server(&bin, "pg_ctl");
        ctl.arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "fast", "stop"]);
        run(ctl, "pg_ctl stop")?;
        Ok(true)
    }

    /// Stops the server and deletes its data.
    pub fn purge(&self) -> Result<(), DriverError> {
        self.stop()?;
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(failed(format!("{}: {e}", self.dir.display()))),
        }
    }

    /// The members as `status` lists them (none when the cluster uses an outside database).
    pub fn members(&self) -> Vec<DatabaseMember> {
        if self.is_replicated() {
            return self.replicated().members();
        }
        let Some(port) = self.port() else {
            return Vec::new();
        };
        let pid = self.pid();
        vec![DatabaseMember {
            name: "postgres-0".into(),
            role: "leader".into(),
            status: if pid.is_some() { "Running" } else { "Stopped" }.into(),
            port,
            pid,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_server_binaries_are_found_and_their_absence_names_the_package() {
        let root = tempfile::tempdir().unwrap();
        let none = find_binaries(None, root.path(), None).unwrap_err();
        assert_eq!(none.code, ErrorCode::DatabaseUnavailable);
        assert!(
            none.message.contains("apt-get install postgresql"),
            "{}",
            none.message
        );
        for v in ["9", "15", "13"] {
            let bin = root.path().join(v).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            for p in ["initdb", "pg_ctl"] {
                std::fs::write(bin.join(p), "").unwrap();
            }
        }
        // 15 above 13 and 9: the newest by number, not by name.
        assert_eq!(
            find_binaries(None, root.path(), None).unwrap(),
            root.path().join("15/bin")
        );
        let given =
            find_binaries(Some(root.path().join("nowhere")), root.path(), None).unwrap_err();
        assert!(
            given.message.contains("OCLAW_POSTGRES_BIN")
                && given.message.contains("apt-get install postgresql")
        );
        assert_eq!(
            find_binaries(Some(root.path().join("9/bin")), root.path(), None).unwrap(),
            root.path().join("9/bin")
        );
    }
}

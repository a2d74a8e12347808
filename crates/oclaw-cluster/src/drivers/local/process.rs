//! The processes of a local cluster: whether a pid is alive, signals, and the supervisor's own
//! life (started detached by `init`, stopped by `teardown`).

use std::path::Path;
use std::time::{Duration, Instant};

use super::record::{cluster_dir, write_atomic};
use crate::driver::DriverError;

pub(crate) use nix::sys::signal::Signal;

fn pid_of(pid: u32) -> Option<nix::unistd::Pid> {
    // 0 and negative numbers would signal process groups.
    i32::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .map(nix::unistd::Pid::from_raw)
}

/// Whether a process with this pid exists (one of another user's counts).
pub(crate) fn alive(pid: u32) -> bool {
    pid_of(pid).is_some_and(|p| {
        matches!(
            nix::sys::signal::kill(p, None),
            Ok(()) | Err(nix::errno::Errno::EPERM)
        )
    })
}

/// Sends `sig`; a process that is gone already is not an error.
pub(crate) fn signal(pid: u32, sig: Signal) {
    if let Some(p) = pid_of(pid) {
        let _ = nix::sys::signal::kill(p, sig);
    }
}

pub fn supervisor_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("supervisor.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .filter(|p| alive(*p))
}

pub(crate) fn start_supervisor(dir: &Path, namespace: &str) -> std::io::Result<u32> {
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

/// `oclaw teardown`: stops the supervisor, which stops its pods. Answers the pid it stopped,
/// `None` when no supervisor was running.
pub fn stop_supervisor(namespace: &str) -> Result<Option<u32>, DriverError> {
    let dir = cluster_dir(namespace);
    let Some(pid) = supervisor_pid(&dir) else {
        return Ok(None);
    };
    signal(pid, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(40);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if alive(pid) {
        return Err(DriverError::unavailable(format!(
            "supervisor {pid} did not stop"
        )));
    }
    Ok(Some(pid))
}

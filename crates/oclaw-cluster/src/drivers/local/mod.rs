//! The local driver: a cluster's components as supervised processes on this host. `init`
//! writes the cluster's directory (`record`) and starts its supervisor (`process`), a detached
//! `oclaw supervise` that outlives the CLI; `deploy core` says which components run and the
//! supervisor converges (`supervisor`, its decisions in `plan`): it starts each pod, health-checks
//! it through `/readyz`, restarts it with backoff when it exits (counting RESTARTS and keeping
//! the last exit reason and the previous log), replaces pods onto their target revision and
//! stops pods no longer wanted, and drives a canary (`rollout`). The pipeline steps are in
//! `driver`; the pods a cluster wants in `render`.

/// A line of the supervisor's log (`supervisor.log`, its stderr), with its time.
macro_rules! slog {
    ($($t:tt)*) => {
        eprintln!("{} {}", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"), format_args!($($t)*))
    };
}

pub mod database;
mod driver;
pub mod init;
pub mod plan;
pub mod process;
pub mod record;
pub mod render;
pub mod replicated;
pub mod rollout;
pub mod supervisor;

pub use driver::LocalDriver;
pub use render::{desired_pods, PodSpec};

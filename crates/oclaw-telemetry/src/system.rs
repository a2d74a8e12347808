//! Node and process resource use read from /proc (Linux): CPU and memory utilisation of the
//! node, and the standard `process_*` metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// CPU utilisation of the node (0..1) over the last sampling period, as f64 bits.
#[derive(Debug, Default)]
pub struct NodeSampler {
    cpu_ratio_bits: AtomicU64,
}

fn cpu_totals() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let idle = nums.get(3)? + nums.get(4).copied().unwrap_or(0);
    Some((nums.iter().sum(), idle))
}

impl NodeSampler {
    /// Starts sampling every `every` on a background thread.
    pub fn start(every: Duration) -> Arc<NodeSampler> {
        let sampler = Arc::new(NodeSampler::default());
        let s = sampler.clone();
        let _ = std::thread::Builder::new()
            .name("oclaw-node-sampler".into())
            .spawn(move || {
                let mut prev = cpu_totals();
                loop {
                    std::thread::sleep(every);
                    let now = cpu_totals();
                    if let (Some((t0, i0)), Some((t1, i1))) = (prev, now) {
                        let total = t1.saturating_sub(t0);
                        if total > 0 {
                            let busy = total.saturating_sub(i1.saturating_sub(i0));
                            s.cpu_ratio_bits
                                .store((busy as f64 / total as f64).to_bits(), Ordering::Relaxed);
                        }
                    }
                    prev = now;
                }
            });
        sampler
    }

    pub fn cpu_ratio(&self) -> f64 {
        f64::from_bits(self.cpu_ratio_bits.load(Ordering::Relaxed))
    }
}

/// Memory in use on the node (1 − MemAvailable / MemTotal).
pub fn memory_ratio() -> f64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> Option<f64> {
        info.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    match (field("MemTotal:"), field("MemAvailable:")) {
        (Some(total), Some(avail)) if total > 0.0 => 1.0 - avail / total,
        _ => 0.0,
    }
}

/// `process_*` metrics: CPU seconds, resident memory, open file descriptors, start time.
pub fn process_metrics(
    start_unix_seconds: f64,
) -> Vec<(&'static str, &'static str, &'static str, f64)> {
    let page = 4096.0;
    let ticks = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as f64)
        .unwrap_or(0.0);
    vec![
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent in seconds.",
            (num(11) + num(12)) / ticks,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            num(21) * page,
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            num(20),
        ),
        (
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            fds,
        ),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            start_unix_seconds,
        ),
    ]
}

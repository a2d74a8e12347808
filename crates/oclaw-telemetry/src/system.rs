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

const AT_PAGESZ: u64 = 6;
const AT_CLKTCK: u64 = 17;

/// A value the kernel gave this process in its auxiliary vector (`/proc/self/auxv`: pairs of
/// native words): the page size and the clock tick rate, read rather than assumed.
fn auxv(key: u64) -> Option<u64> {
    let bytes = std::fs::read("/proc/self/auxv").ok()?;
    bytes
        .chunks_exact(16)
        .map(|c| {
            let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
            (word(&c[..8]), word(&c[8..]))
        })
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `process_*` metrics: CPU seconds, resident memory, open file descriptors, start time.
pub fn process_metrics(
    start_unix_seconds: f64,
) -> Vec<(&'static str, &'static str, &'static str, f64)> {
    let page = auxv(AT_PAGESZ).unwrap_or(4096) as f64;
    let ticks = auxv(AT_CLKTCK).unwrap_or(100) as f64;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The page size and tick rate read from the auxiliary vector are the ones `getconf`
    /// reports for this host.
    #[test]
    fn page_size_and_clock_ticks_come_from_the_kernel() {
        let getconf = |name: &str| -> Option<u64> {
            let out = std::process::Command::new("getconf")
                .arg(name)
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        let (Some(page), Some(ticks)) = (getconf("PAGESIZE"), getconf("CLK_TCK")) else {
            panic!("getconf is part of the C library on Linux");
        };
        assert_eq!(auxv(AT_PAGESZ), Some(page));
        assert_eq!(auxv(AT_CLKTCK), Some(ticks));
    }
}

//! Prometheus metrics without a metrics framework: atomic counters and fixed-bucket histograms
//! in label-keyed families, rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Latency buckets in seconds (1 ms .. 30 s); the seed alerts on P99 > 0.5 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A histogram with fixed buckets; every operation is lock-free.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        if let Some(i) = self.bounds.iter().position(|b| seconds <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{}le=\"{bound}\"}} {cumulative}",
                sep(labels)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{}le=\"+Inf\"}} {count}",
            sep(labels)
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

fn sep(labels: &str) -> &'static str {
    if labels.is_empty() {
        ""
    } else {
        ","
    }
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// Escapes a label value for the exposition format.
pub fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `a="x",b="y"` from names and values.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A family of counters keyed by label values.
#[derive(Debug, Default)]
pub struct CounterFamily {
    series: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl CounterFamily {
    pub fn get(&self, labels: &str) -> Arc<AtomicU64> {
        let mut s = self.series.lock().unwrap_or_else(|p| p.into_inner());
        s.entry(labels.to_string()).or_default().clone()
    }

    pub fn inc(&self, labels: &str, by: u64) {
        self.get(labels).fetch_add(by, Ordering::Relaxed);
    }

    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        self.render_scaled(out, name, help, 1);
    }

    /// Renders each count divided by `per_unit` (a counter kept in millionths, say).
    pub fn render_scaled(&self, out: &mut String, name: &str, help: &str, per_unit: u64) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let s = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for (labels, v) in s.iter() {
            let n = v.load(Ordering::Relaxed);
            if per_unit == 1 {
                let _ = writeln!(out, "{name}{} {n}", braces(labels));
            } else {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    braces(labels),
                    n as f64 / per_unit as f64
                );
            }
        }
    }
}

/// A family of histograms keyed by label values.
#[derive(Debug)]
pub struct HistogramFamily {
    bounds: &'static [f64],
    series: Mutex<BTreeMap<String, Arc<Histogram>>>,
}

impl HistogramFamily {
    pub fn new(bounds: &'static [f64]) -> HistogramFamily {
        HistogramFamily {
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn observe(&self, labels: &str, seconds: f64) {
        let h = {
            let mut s = self.series.lock().unwrap_or_else(|p| p.into_inner());
            s.entry(labels.to_string())
                .or_insert_with(|| Arc::new(Histogram::new(self.bounds)))
                .clone()
        };
        h.observe(seconds);
    }

    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let s = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for (labels, h) in s.iter() {
            h.render(out, name, labels);
        }
    }
}

/// A group of metric families that writes itself in the Prometheus text format: each component
/// renders what it counts, and `/metrics` lists the components.
pub trait Exposition {
    fn render(&self, out: &mut String);
}

/// Writes one sample without labels.
pub fn render_one(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    render_samples(out, name, kind, help, &[(String::new(), value)]);
}

/// Writes one gauge (or counter) with its HELP and TYPE lines and one sample per label set.
pub fn render_samples(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: &[(String, f64)],
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{} {v}", braces(labels));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_renders_cumulative_buckets() {
        let h = HistogramFamily::new(&[0.1, 1.0]);
        h.observe(&labels(&[("route", "/v1/tasks")]), 0.05);
        h.observe(&labels(&[("route", "/v1/tasks")]), 0.5);
        h.observe(&labels(&[("route", "/v1/tasks")]), 5.0);
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "help");
        assert!(
            out.contains("x_seconds_bucket{route=\"/v1/tasks\",le=\"0.1\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{route=\"/v1/tasks\",le=\"1\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_bucket{route=\"/v1/tasks\",le=\"+Inf\"} 3"),
            "{out}"
        );
        assert!(
            out.contains("x_seconds_count{route=\"/v1/tasks\"} 3"),
            "{out}"
        );
        assert!(out.contains("# TYPE x_seconds histogram"));
    }

    #[test]
    fn counters_and_escaping() {
        let c = CounterFamily::default();
        c.inc(&labels(&[("bot", "a\"b")]), 2);
        let mut out = String::new();
        c.render(&mut out, "t_total", "help");
        assert!(out.contains("t_total{bot=\"a\\\"b\"} 2"), "{out}");
    }
}

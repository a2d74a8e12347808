//! `oclaw bench plugin`: the cost of a WebAssembly plugin call — a fresh pooled instance per
//! call, input and output through linear memory as JSON — next to a built-in skill doing the same
//! thing, called the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oclaw_core::config::PluginsConfig;
use oclaw_core::Dur;
use serde_json::Value;

use crate::drain::percentile;

/// The trivial plugin's call: hand the input back unchanged.
const ECHO: &str = "(call $output (local.get 2) (local.get 3)) (i32.const 0)";
/// A runaway plugin's call (for `--noisy`): spin until its time limit stops it.
const SPIN: &str = "(loop $l (br $l)) (i32.const 0)";

pub struct PluginBenchOptions {
    /// Runaway plugin calls kept in flight while measuring (each stopped at its 1 s limit and
    /// started again).
    pub noisy: usize,
    /// Run plugin calls on the bench's own threads instead of dedicated plugin threads.
    pub shared_threads: bool,
    pub calls: usize,
    pub concurrency: usize,
    /// An installed or built plugin folder to measure instead of the built-in echo plugin.
    pub plugin: Option<std::path::PathBuf>,
    pub skill: Option<String>,
    pub input: Value,
}

struct Stats {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure<F, Fut>(calls: usize, concurrency: usize, f: F) -> Result<Stats, String>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let f = Arc::new(f);
    let per = calls.div_ceil(concurrency.max(1));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..concurrency.max(1) {
        let f = f.clone();
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                f().await?;
                lat.push(t.elapsed());
            }
            Ok::<_, String>(lat)
        }));
    }
    let mut all = Vec::with_capacity(calls);
    for h in handles {
        all.extend(h.await.map_err(|e| e.to_string())??);
    }
    let took = started.elapsed();
    all.sort();
    Ok(Stats {
        rate: all.len() as f64 / took.as_secs_f64(),
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    })
}

fn line(label: &str, s: &Stats) -> String {
    format!(
        "{label:<34} {:>9.0} calls/s   p50 {:>8.2} µs   p99 {:>8.2} µs",
        s.rate,
        s.p50.as_secs_f64() * 1e6,
        s.p99.as_secs_f64() * 1e6
    )
}

pub async fn plugin(o: PluginBenchOptions) -> Result<String, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (folder, skill) = match (&o.plugin, &o.skill) {
        (Some(dir), Some(skill)) => (dir.clone(), skill.clone()),
        (Some(_), None) => return Err("--plugin needs --skill".into()),
        _ => {
            let wat = oclaw_plugins::wat::module("", "", ECHO);
            let dir =
                oclaw_plugins::wat::write_plugin(tmp.path(), "echo", "1.0.0", &wat, &[], "{}")
                    .map_err(|e| e.to_string())?;
            (dir, "run".to_string())
        }
    };
    let plugins_dir = tmp.path().join("installed");
    let config = PluginsConfig {
        dir: plugins_dir.clone(),
        reload_interval: Dur::secs(0),
        dedicated_threads: !o.shared_threads,
        ..PluginsConfig::default()
    };
    let host = Arc::new(oclaw_plugins::PluginHost::new(&config)?);
    let compile_started = Instant::now();
    let (m, _) = oclaw_plugins::install(&host, &folder, &plugins_dir)
        .map_err(|e| format!("{} {}", e.code, e.message))?;
    let compile = compile_started.elapsed();
    let report = host.reload();
    if !report.failed.is_empty() {
        return Err(format!("{:?}", report.failed));
    }
    if o.noisy > 0 {
        let wat = oclaw_plugins::wat::module("", "", SPIN);
        let dir = oclaw_plugins::wat::write_plugin(
            tmp.path(),
            "spin",
            "1.0.0",
            &wat,
            &[],
            "{timeout: 1s}",
        )
        .map_err(|e| e.to_string())?;
        oclaw_plugins::install(&host, &dir, &plugins_dir)
            .map_err(|e| format!("{} {}", e.code, e.message))?;
        host.reload();
        for _ in 0..o.noisy {
            let h = host.clone();
            tokio::spawn(async move {
                loop {
                    let _ = h.call("spin", "run", None, Value::Null).await;
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let name = m.name.clone();
    let input = o.input.clone();
    // Warm up (first instantiation maps the pool's slots).
    for _ in 0..1000 {
        host.call(&name, &skill, None, input.clone())
            .await
            .map_err(|e| format!("{} {}", e.code, e.message))?;
    }
    let (h, n, s, i) = (host.clone(), name.clone(), skill.clone(), input.clone());
    let wasm = measure(o.calls, o.concurrency, move || {
        let (h, n, s, i) = (h.clone(), n.clone(), s.clone(), i.clone());
        async move {
            h.call(&n, &s, None, i)
                .await
                .map(|_| ())
                .map_err(|e| e.message)
        }
    })
    .await?;
    let mut out = String::new();
    out.push_str(if o.shared_threads {
        "plugin calls on the caller's threads (plugins.dedicated_threads: false)\n"
    } else {
        "plugin calls on dedicated plugin threads (plugins.dedicated_threads: true)\n"
    });
    if o.noisy > 0 {
        out.push_str(&format!(
            "{} runaway plugin calls (endless loops, stopped at 1 s and restarted) in flight throughout\n",
            o.noisy
        ));
    }
    out += &format!(
        "plugin {}@{} skill `{skill}`, {} calls, {} at a time (input {} bytes of JSON; compile and check {:.1} ms)\n",
        m.name,
        m.version,
        o.calls,
        o.concurrency,
        serde_json::to_vec(&o.input).map(|v| v.len()).unwrap_or(0),
        compile.as_secs_f64() * 1e3
    );
    out.push_str(&line("plugin (instance per call)", &wasm));
    out.push('\n');
    if o.plugin.is_none() {
        // The same logic as a built-in: hand the input back (a JSON round trip, as the plugin's
        // input and output are).
        let i = input.clone();
        let native = measure(o.calls, o.concurrency, move || {
            let i = i.clone();
            async move {
                let bytes = serde_json::to_vec(&i).map_err(|e| e.to_string())?;
                let v: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                std::hint::black_box(v);
                Ok(())
            }
        })
        .await?;
        out.push_str(&line("built-in, same logic", &native));
        out.push('\n');
        out.push_str(&format!(
            "added per call by the sandbox: p50 {:.2} µs, p99 {:.2} µs\n",
            (wasm.p50.as_secs_f64() - native.p50.as_secs_f64()) * 1e6,
            (wasm.p99.as_secs_f64() - native.p99.as_secs_f64()) * 1e6
        ));
    }
    Ok(out)
}

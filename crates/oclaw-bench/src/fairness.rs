//! `oclaw bench fairness`: one queue shared by two tenants. Tenant `b` submits one task every
//! 10 ms and its enqueue → start latency is measured (p50/p99) three ways in one run: on an
//! idle node; while tenant `a` has a backlog of N queued tasks on the same queue (the claims
//! share the queue among tenants); and, for comparison, the same backlog with `b`'s tasks filed
//! under tenant `a` (one tenant: strictly oldest first, which is what sharing avoids).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use oclaw_core::NewTask;
use oclaw_skills::{Skill, SkillCall, SkillContext, SkillError};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::drain::{latency_report, setup_with, Bench};

pub struct FairnessOptions {
    pub backlog: usize,
    pub samples: usize,
    pub storage_url: Option<String>,
}

/// Reports when a probe task starts, with its number.
struct Started(mpsc::UnboundedSender<(u64, Instant)>);

#[async_trait]
impl Skill for Started {
    fn name(&self) -> &'static str {
        "bench.started"
    }
    fn summary(&self) -> &'static str {
        "benchmark probe: reports when it runs"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["i"]
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let i = call.with["i"].as_u64().unwrap_or(u64::MAX);
        let _ = self.0.send((i, Instant::now()));
        Ok(json!(i))
    }
}

const BOTS: &str = "
metadata: {name: noop, tenant: a}
spec: {}
---
metadata: {name: probe-a, tenant: a}
spec:
  steps: [{uses: bench.started, with: {i: \"{{ input.i }}\"}}]
---
metadata: {name: probe-b, tenant: b}
spec:
  steps: [{uses: bench.started, with: {i: \"{{ input.i }}\"}}]
";

pub async fn fairness(o: FairnessOptions) -> Result<String, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut skills = oclaw_skills::SkillRegistry::builtin();
    skills.register(Arc::new(Started(tx)));
    let b = setup_with(skills, o.storage_url.as_deref(), BOTS).await?;
    let result = run(&b, &o, &mut rx).await;
    b.cleanup().await;
    result
}

async fn preload(b: &Bench, tenant: &str, n: usize) -> Result<(), String> {
    let mut left = n;
    while left > 0 {
        let chunk = left.min(1000);
        let tasks = (0..chunk)
            .map(|i| NewTask {
                tenant: tenant.into(),
                ..NewTask::new("noop", "default", json!({ "i": i }))
            })
            .collect();
        b.store
            .enqueue_batch(tasks)
            .await
            .map_err(|e| e.to_string())?;
        left -= chunk;
    }
    Ok(())
}

/// Submits `samples` probe tasks of `tenant`, one every 10 ms, and answers each one's
/// enqueue → start time.
async fn probe(
    b: &Bench,
    tenant: &str,
    samples: usize,
    rx: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
) -> Result<Vec<Duration>, String> {
    let mut sent = Vec::with_capacity(samples);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for i in 0..samples {
        tick.tick().await;
        let t = NewTask {
            tenant: tenant.into(),
            ..NewTask::new(format!("probe-{tenant}"), "default", json!({ "i": i }))
        };
        sent.push(Instant::now());
        b.store.enqueue(t).await.map_err(|e| e.to_string())?;
    }
    let mut started = vec![None; samples];
    let mut got = 0;
    while got < samples {
        let (i, at) = tokio::time::timeout(Duration::from_secs(600), rx.recv())
            .await
            .map_err(|_| "a probe task did not start within 600s".to_string())?
            .ok_or("probe channel closed")?;
        if let Some(slot) = started.get_mut(i as usize) {
            if slot.is_none() {
                *slot = Some(at);
                got += 1;
            }
        }
    }
    Ok(sent
        .iter()
        .zip(started)
        .map(|(s, at)| at.map(|a| a.duration_since(*s)).unwrap_or_default())
        .collect())
}

async fn run(
    b: &Bench,
    o: &FairnessOptions,
    rx: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
) -> Result<String, String> {
    let mut out = vec![format!(
        "fairness ({}): tenant b submits a task every 10 ms to the queue tenant a shares; one worker, 10 slots",
        b.store.backend()
    )];
    let (stop, handle) = b.start_worker(10);
    let mut idle = probe(b, "b", o.samples, rx).await?;
    out.push(latency_report("  b alone (idle node)", &mut idle, 2));
    let _ = stop.send(true);
    let _ = handle.await;

    for (label, b_tenant) in [
        ("  b beside a's backlog (shared fairly)", "b"),
        ("  b's tasks filed under a (one tenant, oldest first)", "a"),
    ] {
        let t0 = Instant::now();
        preload(b, "a", o.backlog).await?;
        let load = t0.elapsed();
        let (stop, handle) = b.start_worker(10);
        let mut measured = probe(b, b_tenant, o.samples, rx).await?;
        let _ = stop.send(true);
        let report = handle.await.map_err(|e| e.to_string())?;
        out.push(latency_report(
            &format!(
                "{label}, backlog {} (loaded in {:.1}s)",
                o.backlog,
                load.as_secs_f64()
            ),
            &mut measured,
            2,
        ));
        out.push(format!("    a's tasks run meanwhile: {}", report.succeeded));
        // Empty the queue for the next round.
        let (stop, handle) = b.start_worker(10);
        loop {
            let stats = b
                .store
                .queue_stats(chrono::Utc::now())
                .await
                .map_err(|e| e.to_string())?;
            if stats.iter().all(|q| q.queued == 0 && q.running == 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = stop.send(true);
        let _ = handle.await;
    }
    Ok(out.join("\n"))
}

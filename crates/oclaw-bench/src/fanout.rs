//! `oclaw bench fanout`: one task whose step fans out over N items (`for_each`), run by the
//! real worker and executor on a temporary SQLite file (or a fresh PostgreSQL schema): items/s
//! at a few concurrencies, with a checkpoint per item (a skill with effects) and without (a
//! pure skill, run again on a retry instead), from the task's start to its finish.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use oclaw_core::NewTask;
use oclaw_skills::{Skill, SkillCall, SkillContext, SkillError, SkillRegistry};
use serde_json::{json, Value};

pub struct FanoutOptions {
    pub items: usize,
    pub storage_url: Option<String>,
}

/// An item's work: answers its input; not pure, so every item is a checkpoint.
struct ItemProbe;

#[async_trait]
impl Skill for ItemProbe {
    fn name(&self) -> &'static str {
        "bench.item"
    }
    fn summary(&self) -> &'static str {
        "benchmark probe: answers its input (checkpointed)"
    }
    fn fields(&self) -> &'static [&'static str] {
        &["value"]
    }
    async fn run(&self, _ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        Ok(call.with["value"].clone())
    }
}

fn bots(concurrency: usize) -> String {
    format!(
        "metadata: {{name: fan-checkpointed}}
spec:
  timeout: 10m
  steps:
    - {{id: each, for_each: \"{{{{ input.items }}}}\", concurrency: {concurrency}, uses: bench.item, with: {{value: \"{{{{ item }}}}\"}}}}
---
metadata: {{name: fan-pure}}
spec:
  timeout: 10m
  steps:
    - {{id: each, for_each: \"{{{{ input.items }}}}\", concurrency: {concurrency}, uses: template, with: {{value: \"{{{{ item }}}}\"}}}}
"
    )
}

/// Runs one fan-out task and answers how long it took, start to finish.
async fn one(o: &FanoutOptions, bot: &str, concurrency: usize) -> Result<Duration, String> {
    let mut skills = SkillRegistry::builtin();
    skills.register(Arc::new(ItemProbe));
    let bench =
        crate::drain::setup_with(skills, o.storage_url.as_deref(), &bots(concurrency)).await?;
    let result = async {
        let (stop, handle) = bench.start_worker(1);
        let items: Vec<usize> = (0..o.items).collect();
        let started = Instant::now();
        let id = bench
            .store
            .enqueue(NewTask::new(bot, "default", json!({ "items": items })))
            .await
            .map_err(|e| e.to_string())?
            .task
            .id;
        let task = loop {
            let t = bench
                .store
                .get_task(id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the task vanished")?;
            if t.status.is_terminal() {
                break t;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let took = started.elapsed();
        let _ = stop.send(true);
        let _ = handle.await;
        match task.output {
            Some(Value::Array(out)) if out.len() == o.items => Ok(took),
            _ => Err(format!(
                "the fan-out did not finish: {:?} {:?}",
                task.status, task.error
            )),
        }
    }
    .await;
    bench.cleanup().await;
    result
}

pub async fn fanout(o: FanoutOptions) -> Result<String, String> {
    let store = if o
        .storage_url
        .as_deref()
        .is_some_and(|u| u.starts_with("postgres"))
    {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let mut lines = vec![format!(
        "fanout: one task, one step over {} items ({store}); enqueue to finish, items/s",
        o.items
    )];
    for (label, bot) in [
        ("checkpoint per item", "fan-checkpointed"),
        ("pure skill, no checkpoints", "fan-pure"),
    ] {
        let mut row = Vec::new();
        for concurrency in [1, 10, 50] {
            let took = one(&o, bot, concurrency).await?;
            row.push(format!(
                "concurrency {concurrency}: {:.0}/s",
                o.items as f64 / took.as_secs_f64()
            ));
        }
        lines.push(format!("  {label}: {}", row.join(", ")));
    }
    Ok(lines.join("\n"))
}

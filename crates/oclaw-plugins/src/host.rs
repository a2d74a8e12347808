//! Installed plugins of a node: read from `plugins.dir`, compiled once (a module whose digest is
//! unchanged is not compiled again), offered as skills `<plugin>.<skill>`, and swapped in place
//! when the folder changes. A call holds the version it started with, so a reload never
//! disturbs a call in flight.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use oclaw_core::config::PluginsConfig;
use oclaw_core::ErrorCode;
use oclaw_skills::{
    intern, Skill, SkillCall, SkillContext, SkillError, SkillOrigin, SkillRegistry,
};
use serde_json::Value;

use crate::manifest::{self, MANIFEST_FILE};
use crate::wasm::{Compiled, Runtime};
use crate::PluginError;

/// The plugins a node runs.
pub struct PluginHost {
    /// Made when the first plugin is loaded: a node without plugins pays for no engine.
    runtime: std::sync::OnceLock<Result<Runtime, String>>,
    settings: (usize, Duration, u32, usize),
    dir: PathBuf,
    loaded: RwLock<BTreeMap<String, Arc<Compiled>>>,
}

/// What a reload changed.
#[derive(Debug, Default, PartialEq)]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    /// Plugins that failed to load, with the error (the previous version, if any, stays).
    pub failed: Vec<(String, String)>,
}

impl PluginHost {
    /// A host for `config.dir` (nothing is read yet; see [`PluginHost::reload`]).
    pub fn new(config: &PluginsConfig) -> Result<PluginHost, String> {
        let max_memory = oclaw_core::quantity::bytes(&config.max_memory)
            .map_err(|e| format!("plugins.max_memory: {e}"))? as usize;
        let threads = match config.threads {
            _ if !config.dedicated_threads => 0,
            0 => std::thread::available_parallelism()
                .map(|n| (n.get() / 2).max(1))
                .unwrap_or(1),
            n => n,
        };
        Ok(PluginHost {
            runtime: std::sync::OnceLock::new(),
            settings: (
                max_memory,
                config.max_timeout.get(),
                config.max_concurrent_calls,
                threads,
            ),
            dir: config.dir.clone(),
            loaded: RwLock::new(BTreeMap::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sandbox (wasmtime engine, instance pool, plugin threads), made on first use.
    pub fn runtime(&self) -> Result<&Runtime, PluginError> {
        let (memory, timeout, concurrent, threads) = self.settings;
        self.runtime
            .get_or_init(|| Runtime::new(memory, timeout, concurrent, threads))
            .as_ref()
            .map_err(|m| SkillError::permanent(ErrorCode::PluginUnavailable, m.clone()))
    }

    /// The version of `name` loaded now.
    pub fn get(&self, name: &str) -> Option<Arc<Compiled>> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Every loaded plugin, by name.
    pub fn plugins(&self) -> Vec<Arc<Compiled>> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Reads the plugins folder and brings the loaded set in line with it: new plugins are
    /// compiled and added, changed ones (another digest) replaced, missing ones removed. A plugin
    /// that fails to load is reported and, when an earlier version was loaded, that one stays.
    pub fn reload(&self) -> ReloadReport {
        let mut report = ReloadReport::default();
        let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !path.join(MANIFEST_FILE).is_file() {
                    continue;
                }
                found.insert(name, path);
            }
        }
        let current = self
            .loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut next = BTreeMap::new();
        for (folder, path) in &found {
            let old = current.get(folder);
            match manifest::read(path) {
                Err(e) => {
                    report.failed.push((folder.clone(), e.message));
                    if let Some(old) = old {
                        next.insert(folder.clone(), old.clone());
                    }
                }
                Ok(files) if files.manifest.name != *folder => {
                    report.failed.push((
                        folder.clone(),
                        format!(
                            "{}: the manifest names plugin `{}`; its folder must have the same name",
                            path.display(),
                            files.manifest.name
                        ),
                    ));
                }
                Ok(files) => {
                    if let Some(old) = old {
                        if old.files.manifest == files.manifest {
                            next.insert(folder.clone(), old.clone());
                            continue;
                        }
                    }
                    match self.runtime().and_then(|rt| rt.compile(files)) {
                        Ok(c) => {
                            if old.is_some() {
                                report.updated.push(folder.clone());
                            } else {
                                report.added.push(folder.clone());
                            }
                            next.insert(folder.clone(), Arc::new(c));
                        }
                        Err(e) => {
                            report.failed.push((folder.clone(), e.message));
                            if let Some(old) = old {
                                next.insert(folder.clone(), old.clone());
                            }
                        }
                    }
                }
            }
        }
        for name in current.keys() {
            if !next.contains_key(name) && !report.failed.iter().any(|(f, _)| f == name) {
                report.removed.push(name.clone());
            }
        }
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = next;
        for (name, error) in &report.failed {
            tracing::error!(component = "plugins", plugin = %name, error_code = %ErrorCode::PluginInvalid, "plugin not loaded: {error}");
        }
        for name in report.added.iter().chain(&report.updated) {
            if let Some(p) = self.get(name) {
                tracing::info!(component = "plugins", plugin = %name, version = %p.files.manifest.version,
                    digest = %p.files.manifest.sha256, "plugin loaded");
            }
        }
        for name in &report.removed {
            tracing::info!(component = "plugins", plugin = %name, "plugin removed");
        }
        report
    }

    /// Adds a skill `<plugin>.<skill>` for every skill of every loaded plugin.
    pub fn register_skills(self: &Arc<Self>, registry: &mut SkillRegistry) -> Result<(), String> {
        for plugin in self.plugins() {
            let m = &plugin.files.manifest;
            for s in &m.skills {
                let name = format!("{}.{}", m.name, s.name);
                if registry.contains(&name) {
                    return Err(format!(
                        "plugin `{}` provides skill `{name}`, which already exists",
                        m.name
                    ));
                }
                registry.register(Arc::new(PluginSkill {
                    host: self.clone(),
                    plugin: m.name.clone(),
                    skill: s.name.clone(),
                    name: intern(&name),
                    summary: intern(if s.summary.is_empty() {
                        &m.description
                    } else {
                        &s.summary
                    }),
                }));
            }
        }
        Ok(())
    }

    /// Checks the folder every `every` and reloads what changed, for as long as the host lives.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        if every.is_zero() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut last = None;
            loop {
                tick.tick().await;
                let Some(host) = weak.upgrade() else { return };
                let stamp = folder_stamp(&host.dir);
                if last.as_ref() == Some(&stamp) {
                    continue;
                }
                // The first look reloads too: the folder may have changed since the start.
                last = Some(stamp);
                let host2 = host.clone();
                let _ = tokio::task::spawn_blocking(move || host2.reload()).await;
            }
        });
    }

    /// Runs `skill` of the loaded version of `plugin`.
    pub async fn call(
        &self,
        plugin: &str,
        skill: &str,
        ctx: Option<&SkillContext>,
        input: Value,
    ) -> Result<Value, PluginError> {
        let compiled = self.get(plugin).ok_or_else(|| {
            SkillError::transient(
                ErrorCode::PluginUnavailable,
                format!("plugin `{plugin}` is not installed on this node"),
            )
        })?;
        let decl = compiled
            .files
            .manifest
            .skills
            .iter()
            .find(|s| s.name == skill)
            .ok_or_else(|| {
                SkillError::permanent(
                    ErrorCode::PluginUnavailable,
                    format!(
                        "plugin {plugin}@{} no longer provides skill `{skill}`",
                        compiled.files.manifest.version
                    ),
                )
            })?;
        if let Some(schema) = &decl.input {
            crate::schema::validate(schema, &input).map_err(|e| {
                SkillError::invalid(format!(
                    "{plugin}.{skill}: input does not match its schema: {e}"
                ))
            })?;
        }
        let out = self
            .runtime()?
            .call(compiled.clone(), ctx.cloned(), skill.to_string(), input)
            .await?;
        if let Some(schema) = &decl.output {
            crate::schema::validate(schema, &out).map_err(|e| {
                SkillError::permanent(
                    ErrorCode::PluginBadOutput,
                    format!("{plugin}.{skill}: output does not match its schema: {e}"),
                )
            })?;
        }
        Ok(out)
    }
}

/// Names, sizes and modification times of everything under the plugins folder (cheap to take
/// every few seconds).
fn folder_stamp(dir: &Path) -> Vec<(String, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Ok(files) = std::fs::read_dir(entry.path()) {
            for f in files.flatten() {
                let meta = f.metadata().ok();
                out.push((
                    format!("{name}/{}", f.file_name().to_string_lossy()),
                    meta.as_ref().map(|m| m.len()).unwrap_or(0),
                    meta.and_then(|m| m.modified().ok()),
                ));
            }
        }
    }
    out.sort();
    out
}

/// One skill of a plugin, bound by name: every call runs the version loaded at that moment.
struct PluginSkill {
    host: Arc<PluginHost>,
    plugin: String,
    skill: String,
    name: &'static str,
    summary: &'static str,
}

#[async_trait]
impl Skill for PluginSkill {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn fields(&self) -> &'static [&'static str] {
        &[]
    }
    fn input_schema(&self) -> Value {
        self.host
            .get(&self.plugin)
            .and_then(|c| {
                c.files
                    .manifest
                    .skills
                    .iter()
                    .find(|s| s.name == self.skill)
                    .and_then(|s| s.input.clone())
            })
            .unwrap_or_else(|| serde_json::json!({"type": "object"}))
    }
    /// A plugin granted outbound HTTP reaches outside the task.
    fn side_effects(&self) -> bool {
        self.host
            .get(&self.plugin)
            .is_none_or(|c| c.files.manifest.capabilities.iter().any(|c| c == "http"))
    }
    fn origin(&self) -> SkillOrigin {
        SkillOrigin::Plugin {
            name: self.plugin.clone(),
            version: self
                .host
                .get(&self.plugin)
                .map(|p| p.files.manifest.version.clone())
                .unwrap_or_else(|| "removed".into()),
        }
    }
    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let input = crate::step_input(call);
        self.host
            .call(&self.plugin, &self.skill, Some(ctx), input)
            .await
    }
}

//! The bot catalogue: bots loaded from YAML (inline in the node config, a folder, or the
//! built-in examples), validated against the skill registry when loaded — unknown skills, bad
//! templates and bad triggers are reported with file and line, never at run time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use oclaw_core::bot::{BotDoc, Step};
use oclaw_core::config_load::{yaml_error, ConfigError};
use oclaw_core::ErrorCode;
use oclaw_skills::{Skill, SkillRegistry};
use serde_json::Value;

use crate::templates::TemplateEngine;
use crate::triggers::TimeTrigger;

pub type BotLoadError = ConfigError;

/// A validated bot, ready to run.
pub struct LoadedBot {
    pub doc: BotDoc,
    /// Where it was defined (file path, `<config>`, or `<example>/name`).
    pub source: String,
    pub steps: Vec<(Step, Arc<dyn Skill>)>,
    /// Time triggers with their index in `spec.triggers`.
    pub time_triggers: Vec<(usize, TimeTrigger)>,
    /// Webhook triggers (served by the api-server under `/hooks/`).
    pub webhooks: Vec<crate::triggers::webhook::WebhookTrigger>,
    /// MQTT triggers (served by the node's MQTT channel).
    pub mqtt: Vec<crate::triggers::broker::MqttTrigger>,
    /// NATS triggers (served by the node's NATS channel).
    pub nats: Vec<crate::triggers::broker::NatsTrigger>,
    /// Chat-platform triggers (served by the api-server under `/hooks/`).
    pub platforms: Vec<crate::triggers::platform::PlatformTrigger>,
    /// `spec.grants`, shared with every skill call of the bot.
    pub grants: Arc<std::collections::BTreeMap<String, oclaw_core::bot::PluginGrant>>,
    /// The definition as it runs (normalized, file paths resolved) and its revision: a hash of
    /// it. A task is stamped with the revision it was made under and runs to its end on it.
    pub definition: Value,
    pub revision: String,
}

impl LoadedBot {
    /// Stamps a new task of this bot: the bot's revision (so the task runs to its end on this
    /// definition), and `spec.concurrency`: its ordering key becomes the rendered key (under the
    /// bot's name, so bots never share keys) with the bot's limit. A key that does not render is
    /// the empty key (those tasks share one limit).
    pub fn stamp(&self, task: &mut oclaw_core::NewTask) {
        task.bot_rev = Some(self.revision.clone());
        task.tenant.clone_from(&self.doc.metadata.tenant);
        if let Some(c) = &self.doc.spec.concurrency {
            task.ordering_key = Some(format!(
                "{}/{}",
                self.name(),
                render_key(&c.key, &task.input)
            ));
            task.key_limit = Some(c.limit);
        }
        if let Some(r) = &self.doc.spec.rate_limit {
            task.rate_key = Some(format!(
                "{}/{}",
                self.name(),
                render_key(&r.key, &task.input)
            ));
            task.rate = Some((r.limit, r.per.get().as_millis() as u64));
        }
        if let Some(d) = &self.doc.spec.debounce {
            task.debounce_key = Some(format!(
                "{}/{}",
                self.name(),
                render_key(&d.key, &task.input)
            ));
            let window = chrono::Duration::from_std(d.window.get()).unwrap_or_default();
            task.run_at = Some(chrono::Utc::now() + window);
        }
    }

    /// Every path this bot serves under `/hooks/`.
    fn hook_paths(&self) -> impl Iterator<Item = &str> {
        self.webhooks
            .iter()
            .map(|w| w.path.as_str())
            .chain(self.platforms.iter().map(|p| p.path()))
    }
}

impl LoadedBot {
    pub fn name(&self) -> &str {
        &self.doc.metadata.name
    }

    /// A built-in bot of the node (reply delivery): loaded and checked from `yaml` like any
    /// bot, then given `name`, which may hold a dot (no user bot's name can) so it is never
    /// shadowed.
    pub fn system(
        name: &str,
        yaml: &str,
        skills: &SkillRegistry,
        templates: &TemplateEngine,
    ) -> Result<LoadedBot, ConfigError> {
        let mut catalog = BotCatalog::default();
        catalog.load_yaml(&format!("<built-in>/{name}"), yaml, skills, templates)?;
        let one = std::mem::take(&mut catalog.bots).into_values().next();
        let mut bot = one
            .and_then(|b| Arc::try_unwrap(b).ok())
            .ok_or_else(|| ConfigError::new(ErrorCode::BotInvalid, "no bot in the text"))?;
        bot.doc.metadata.name = name.to_string();
        Ok(bot)
    }
}

/// A key template rendered over a task's input; one that does not render is the empty key.
fn render_key(template: &str, input: &Value) -> String {
    static ENGINE: std::sync::OnceLock<TemplateEngine> = std::sync::OnceLock::new();
    let engine = ENGINE.get_or_init(TemplateEngine::default);
    let ctx = minijinja::context! {
        input => crate::templates::to_template_value(input),
    };
    match engine.render(&Value::String(template.to_string()), &ctx) {
        Ok(Value::String(s)) => s,
        Ok(Value::Null) | Err(_) => String::new(),
        Ok(other) => other.to_string(),
    }
}

/// A definition's revision: the first 16 hex digits of the SHA-256 of its JSON.
fn revision_of(definition: &Value) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(definition.to_string().as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Rebuilds a bot from a definition it ran under (`LoadedBot::definition`), with the node's
/// skills and templates: the bot a task stamped with an older revision runs to its end on.
pub fn load_revision(
    definition: &Value,
    skills: &SkillRegistry,
    templates: &TemplateEngine,
) -> Result<LoadedBot, ConfigError> {
    let doc: BotDoc = serde_json::from_value(definition.clone()).map_err(|e| {
        ConfigError::new(ErrorCode::BotInvalid, format!("stored bot revision: {e}"))
    })?;
    let name = doc.metadata.name.clone();
    let mut catalog = BotCatalog::default();
    catalog.add(
        doc,
        &format!("<revision of {name}>"),
        None,
        skills,
        templates,
    )?;
    let one = std::mem::take(&mut catalog.bots).into_values().next();
    one.and_then(|b| Arc::try_unwrap(b).ok())
        .ok_or_else(|| ConfigError::new(ErrorCode::BotInvalid, "no bot in the revision"))
}

impl BotCatalog {
    /// The bot and chat-platform trigger serving a request path (`/hooks/...`).
    pub fn platform(
        &self,
        path: &str,
    ) -> Option<(Arc<LoadedBot>, crate::triggers::platform::PlatformTrigger)> {
        self.bots.values().find_map(|b| {
            b.platforms
                .iter()
                .find(|p| p.path() == path)
                .map(|p| (b.clone(), p.clone()))
        })
    }

    /// The bot and webhook trigger serving a request path (`/hooks/...`).
    pub fn webhook(
        &self,
        path: &str,
    ) -> Option<(Arc<LoadedBot>, crate::triggers::webhook::WebhookTrigger)> {
        self.bots.values().find_map(|b| {
            b.webhooks
                .iter()
                .find(|w| w.path == path)
                .map(|w| (b.clone(), w.clone()))
        })
    }
}

/// All bots a node knows, by name.
#[derive(Default, Clone)]
pub struct BotCatalog {
    bots: BTreeMap<String, Arc<LoadedBot>>,
}

/// A path with its `.` and `name/..` parts taken out, without touching the file system.
fn lexical(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn find_line(text: Option<&str>, needle: &str) -> Option<usize> {
    let text = text?;
    let pos = text.find(needle)?;
    Some(text[..pos].matches('\n').count() + 1)
}

fn located(
    code: ErrorCode,
    source: &str,
    text: Option<&str>,
    needle: &str,
    message: String,
) -> ConfigError {
    let mut e = ConfigError::new(code, message).in_file(source);
    e.line = find_line(text, needle);
    e
}

impl BotCatalog {
    pub fn get(&self, name: &str) -> Option<Arc<LoadedBot>> {
        self.bots.get(name).cloned()
    }

    pub fn bots(&self) -> impl Iterator<Item = &Arc<LoadedBot>> {
        self.bots.values()
    }

    pub fn len(&self) -> usize {
        self.bots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bots.is_empty()
    }

    /// Checks the `bot.call` steps across the loaded bots: each names a loaded bot, and no bot
    /// calls itself through a chain of calls (a parent would wait forever on its own descendant).
    pub fn check_calls(&self) -> Result<(), ConfigError> {
        let calls = |bot: &LoadedBot| -> Vec<(String, String)> {
            // (step id, callee)
            bot.steps
                .iter()
                .filter(|(_, k)| k.name() == "bot.call")
                .filter_map(|(s, _)| {
                    s.with["bot"]
                        .as_str()
                        .map(|callee| (s.id.clone(), callee.to_string()))
                })
                .collect()
        };
        for bot in self.bots.values() {
            for (step, callee) in calls(bot) {
                if !self.bots.contains_key(&callee) {
                    let names: Vec<&str> = self.bots.keys().map(String::as_str).collect();
                    return Err(ConfigError::new(
                        ErrorCode::BotInvalid,
                        format!(
                            "bot `{}` step `{step}`: bot.call names `{callee}`, which is not loaded{}",
                            bot.name(),
                            oclaw_core::suggest::hint(&callee, &names)
                        ),
                    ));
                }
            }
        }
        // Depth-first search for a cycle, from every bot.
        fn visit(
            catalog: &BotCatalog,
            name: &str,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(at) = path.iter().position(|p| p == name) {
                let mut cycle = path[at..].to_vec();
                cycle.push(name.to_string());
                return Some(cycle);
            }
            if done.contains(name) {
                return None;
            }
            path.push(name.to_string());
            let bot = catalog.bots.get(name)?;
            let callees: Vec<String> = bot
                .steps
                .iter()
                .filter(|(_, k)| k.name() == "bot.call")
                .filter_map(|(s, _)| s.with["bot"].as_str().map(str::to_string))
                .collect();
            for callee in callees {
                if let Some(cycle) = visit(catalog, &callee, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            done.insert(name.to_string());
            None
        }
        let mut done = BTreeSet::new();
        for name in self.bots.keys() {
            if let Some(cycle) = visit(self, name, &mut Vec::new(), &mut done) {
                return Err(ConfigError::new(
                    ErrorCode::BotInvalid,
                    format!(
                        "bot.call steps make a cycle: {} (a task would wait forever on its own descendant)",
                        cycle.join(" → ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every queue a loaded bot sends tasks to.
    pub fn queues(&self) -> BTreeSet<String> {
        self.bots
            .values()
            .map(|b| b.doc.spec.queue.clone())
            .collect()
    }

    /// Loads every bot document (separated by `---` lines) in a YAML text.
    pub fn load_yaml(
        &mut self,
        source: &str,
        text: &str,
        skills: &SkillRegistry,
        templates: &TemplateEngine,
    ) -> Result<usize, ConfigError> {
        let mut n = 0;
        let mut start_line = 0usize;
        let mut chunk = String::new();
        let mut chunks = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim_end() == "---" {
                chunks.push((start_line, std::mem::take(&mut chunk)));
                start_line = i + 1;
            } else {
                chunk.push_str(line);
                chunk.push('\n');
            }
        }
        chunks.push((start_line, chunk));
        for (offset, doc) in chunks {
            let meaningful = doc
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
            if !meaningful {
                continue;
            }
            let bot: BotDoc = serde_saphyr::from_str(&doc).map_err(|e| {
                let mut err = yaml_error(source, &e);
                if err.code == ErrorCode::ConfigInvalidValue {
                    err.code = ErrorCode::BotInvalid;
                }
                err.line = err.line.map(|l| l + offset);
                err
            })?;
            self.add(bot, source, Some(text), skills, templates)?;
            n += 1;
        }
        Ok(n)
    }

    /// Loads every `*.yaml`/`*.yml` file of a folder, in name order.
    pub fn load_dir(
        &mut self,
        dir: &Path,
        skills: &SkillRegistry,
        templates: &TemplateEngine,
    ) -> Result<usize, ConfigError> {
        let shown = dir.display().to_string();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            ConfigError::new(
                ErrorCode::ConfigUnreadable,
                format!("cannot read bots folder: {e}"),
            )
            .in_file(&shown)
        })?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        let mut n = 0;
        for file in files {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|e| {
                ConfigError::new(
                    ErrorCode::ConfigUnreadable,
                    format!("cannot read bot file: {e}"),
                )
                .in_file(&name)
            })?;
            n += self.load_yaml(&name, &text, skills, templates)?;
        }
        Ok(n)
    }

    /// Validates and adds one bot.
    pub fn add(
        &mut self,
        mut doc: BotDoc,
        source: &str,
        text: Option<&str>,
        skills: &SkillRegistry,
        templates: &TemplateEngine,
    ) -> Result<(), ConfigError> {
        let name = doc.metadata.name.clone();
        doc.normalize().map_err(|m| {
            located(
                ErrorCode::BotInvalid,
                source,
                text,
                &name,
                format!("bot `{name}`: {m}"),
            )
        })?;
        if let Some(existing) = self.bots.get(&name) {
            return Err(located(
                ErrorCode::BotInvalid,
                source,
                text,
                &name,
                format!(
                    "bot `{name}` is defined twice (also in {})",
                    existing.source
                ),
            ));
        }
        let mut steps = Vec::with_capacity(doc.spec.steps.len());
        // Relative file paths in a bot are relative to the file the bot is written in.
        let base = Path::new(source)
            .is_file()
            .then(|| Path::new(source).parent().map(Path::to_path_buf))
            .flatten()
            .unwrap_or_default();
        for step in &mut doc.spec.steps {
            let needle = format!("uses: {}", step.uses);
            let skill = skills.get(&step.uses).map_err(|m| {
                located(
                    ErrorCode::BotUnknownSkill,
                    source,
                    text,
                    &needle,
                    format!("bot `{name}` step `{}`: {m}", step.id),
                )
            })?;
            // The step's own file fields, and those of the skills it calls inside (an agent's
            // tools with preset fields).
            let mut places: Vec<(String, Vec<&'static str>)> =
                vec![(String::new(), skill.file_fields().to_vec())];
            for (pointer, inner) in skill.nested_calls(&step.with) {
                if let Ok(inner) = skills.get(&inner) {
                    places.push((pointer, inner.file_fields().to_vec()));
                }
            }
            for (pointer, fields) in places {
                let Some(with) = step.with.pointer_mut(&pointer) else {
                    continue;
                };
                for field in fields {
                    let Some(Value::String(path)) = with.get(field) else {
                        continue;
                    };
                    if path.contains("{{") || path.contains("{%") {
                        continue;
                    }
                    let resolved = lexical(&base.join(path));
                    if !resolved.is_file() {
                        return Err(located(
                            ErrorCode::BotInvalid,
                            source,
                            text,
                            path,
                            format!(
                                "bot `{name}` step `{}`: `{field}: {path}` is not a file (looked for {}; a relative path is read from the bot's own folder)",
                                step.id,
                                resolved.display()
                            ),
                        ));
                    }
                    with[field] = Value::String(resolved.display().to_string());
                }
            }
            skill.check_literal(&step.with).map_err(|e| {
                located(
                    ErrorCode::BotInvalid,
                    source,
                    text,
                    &needle,
                    format!("bot `{name}` step `{}`: {}", step.id, e.message),
                )
            })?;
            let earlier: Vec<&str> = steps
                .iter()
                .map(|(s, _): &(Step, _)| s.id.as_str())
                .collect();
            let template_check = templates
                .check(&step.with)
                .and_then(|_| match &step.condition {
                    Some(c) => templates.check_str(c),
                    None => Ok(()),
                })
                .and_then(|_| match &step.for_each {
                    Some(list) => templates.check_str(list),
                    None => Ok(()),
                })
                .and_then(|_| templates.check_names(&step.with, &earlier))
                .and_then(|_| match &step.condition {
                    Some(c) => templates.check_names_str(c, &earlier),
                    None => Ok(()),
                })
                .and_then(|_| match &step.for_each {
                    Some(list) => templates.check_names_str(list, &earlier),
                    None => Ok(()),
                });
            template_check.map_err(|m| {
                let bad = m
                    .split('`')
                    .nth(1)
                    .unwrap_or(&needle)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                located(
                    ErrorCode::BotBadTemplate,
                    source,
                    text,
                    &bad,
                    format!("bot `{name}` step `{}`: {m}", step.id),
                )
            })?;
            steps.push((step.clone(), skill));
        }
        let keys = [
            (
                "concurrency.key",
                doc.spec.concurrency.as_ref().map(|c| &c.key),
            ),
            ("debounce.key", doc.spec.debounce.as_ref().map(|d| &d.key)),
            (
                "rate_limit.key",
                doc.spec.rate_limit.as_ref().map(|r| &r.key),
            ),
        ];
        for (what, key) in keys {
            let Some(key) = key else { continue };
            templates
                .check_str(key)
                .and_then(|_| templates.check_names_str(key, &[]))
                .map_err(|m| {
                    located(
                        ErrorCode::BotBadTemplate,
                        source,
                        text,
                        key,
                        format!("bot `{name}` {what}: {m}"),
                    )
                })?;
        }
        if let Some((step, skill)) = steps
            .iter()
            .find(|(s, k)| k.parks() && s.for_each.is_some())
        {
            return Err(located(
                ErrorCode::BotInvalid,
                source,
                text,
                &step.id,
                format!(
                    "bot `{name}` step `{}`: a `{}` step parks the task and cannot fan out with for_each (fan out a bot.call's child bot instead)",
                    step.id,
                    skill.name()
                ),
            ));
        }
        // Jumps (`next`, a `switch` step's cases) go forward to a step of the bot, or end it.
        let ids: Vec<&str> = steps.iter().map(|(s, _)| s.id.as_str()).collect();
        for (at, (step, skill)) in steps.iter().enumerate() {
            let mut targets: Vec<String> = step.next.iter().cloned().collect();
            if skill.name() == "switch" {
                targets.extend(oclaw_skills::switch::targets(&step.with));
            }
            for target in targets {
                if target == oclaw_skills::switch::END {
                    continue;
                }
                let problem = match ids.iter().position(|id| *id == target) {
                    Some(to) if to > at => continue,
                    Some(_) => {
                        "is not after it (jumps go forward; use for_each to repeat)".to_string()
                    }
                    None => match oclaw_core::suggest::did_you_mean(&target, ids.iter().copied()) {
                        Some(m) => format!("is not a step of the bot; did you mean `{m}`?"),
                        None => "is not a step of the bot".to_string(),
                    },
                };
                return Err(located(
                    ErrorCode::BotInvalid,
                    source,
                    text,
                    &target,
                    format!(
                        "bot `{name}` step `{}`: the step it goes on with, `{target}`, {problem}",
                        step.id
                    ),
                ));
            }
        }
        let mut time_triggers = Vec::new();
        for (i, t) in doc.spec.triggers.iter().enumerate() {
            match TimeTrigger::from_trigger(t) {
                Ok(Some(tt)) => time_triggers.push((i, tt)),
                Ok(None) => {}
                Err(m) => {
                    let needle = t.cron.clone().unwrap_or_else(|| "every:".into());
                    return Err(located(
                        ErrorCode::BotBadTrigger,
                        source,
                        text,
                        &needle,
                        format!("bot `{name}`: {m}"),
                    ));
                }
            }
        }
        let mut webhooks = Vec::new();
        for t in &doc.spec.triggers {
            let Some(v) = &t.webhook else { continue };
            let hook = crate::triggers::webhook::WebhookTrigger::parse(v).map_err(|m| {
                located(
                    ErrorCode::BotBadTrigger,
                    source,
                    text,
                    "webhook",
                    format!("bot `{name}`: {m}"),
                )
            })?;
            if let Some(other) = self
                .bots
                .values()
                .find(|b| b.hook_paths().any(|p| p == hook.path))
            {
                return Err(located(
                    ErrorCode::BotBadTrigger,
                    source,
                    text,
                    &hook.path,
                    format!(
                        "bot `{name}`: webhook path {} is already bot `{}`'s",
                        hook.path,
                        other.name()
                    ),
                ));
            }
            webhooks.push(hook);
        }
        let mut mqtt = Vec::new();
        for t in &doc.spec.triggers {
            let Some(v) = &t.mqtt else { continue };
            mqtt.push(crate::triggers::broker::MqttTrigger::parse(v).map_err(|m| {
                located(
                    ErrorCode::BotBadTrigger,
                    source,
                    text,
                    "mqtt",
                    format!("bot `{name}`: {m}"),
                )
            })?);
        }
        let mut nats = Vec::new();
        for t in &doc.spec.triggers {
            let Some(v) = &t.nats else { continue };
            nats.push(crate::triggers::broker::NatsTrigger::parse(v).map_err(|m| {
                located(
                    ErrorCode::BotBadTrigger,
                    source,
                    text,
                    "nats",
                    format!("bot `{name}`: {m}"),
                )
            })?);
        }
        let mut platforms: Vec<crate::triggers::platform::PlatformTrigger> = Vec::new();
        for t in &doc.spec.triggers {
            use crate::triggers::platform::{PlatformKind, PlatformTrigger};
            let kinds = [
                PlatformKind::Slack,
                PlatformKind::Telegram,
                PlatformKind::Feishu,
                PlatformKind::DingTalk,
                PlatformKind::WeCom,
            ];
            for ((field, v), kind) in t.platforms().into_iter().zip(kinds) {
                let Some(v) = v else { continue };
                let p = PlatformTrigger::parse(kind, v).map_err(|m| {
                    located(
                        ErrorCode::BotBadTrigger,
                        source,
                        text,
                        field,
                        format!("bot `{name}`: {m}"),
                    )
                })?;
                let taken = webhooks.iter().any(|w| w.path == p.path())
                    || platforms.iter().any(|o| o.path() == p.path())
                    || self
                        .bots
                        .values()
                        .any(|b| b.hook_paths().any(|x| x == p.path()));
                if taken {
                    return Err(located(
                        ErrorCode::BotBadTrigger,
                        source,
                        text,
                        p.path(),
                        format!(
                            "bot `{name}`: path {} is already taken by another trigger",
                            p.path()
                        ),
                    ));
                }
                platforms.push(p);
            }
        }
        let mut running = doc.clone();
        running.spec.steps = steps.iter().map(|(s, _)| s.clone()).collect();
        let definition = serde_json::to_value(&running).unwrap_or(Value::Null);
        let revision = revision_of(&definition);
        self.bots.insert(
            name,
            Arc::new(LoadedBot {
                definition,
                revision,
                grants: Arc::new(doc.spec.grants.clone()),
                platforms,
                mqtt,
                nats,
                doc,
                source: source.to_string(),
                steps,
                time_triggers,
                webhooks,
            }),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<BotCatalog, ConfigError> {
        let mut c = BotCatalog::default();
        c.load_yaml(
            "bots/x.yaml",
            text,
            &SkillRegistry::builtin(),
            &TemplateEngine::default(),
        )?;
        Ok(c)
    }

    const GOOD: &str = "apiVersion: oclaw.io/v1
kind: Bot
metadata: {name: price-watch}
spec:
  triggers:
    - cron: \"*/5 * * * *\"
    - every: 10s
  steps:
    - id: fetch
      uses: http.request
      with: {url: \"https://shop.example/api/prices\"}
    - id: clean
      uses: transform
      with: {jq: '.body.items | map(select(.price > 0))'}
    - id: notify
      uses: log
      if: \"{{ steps.clean.output | length > 0 }}\"
      with: {message: \"{{ steps.clean.output | tojson }}\"}
  retry: {max_attempts: 5, backoff: exponential, initial: 1s, max: 5m, jitter: true}
  timeout: 60s
";

    #[test]
    fn loads_the_spec_example_shape() {
        let c = load(GOOD).unwrap();
        let bot = c.get("price-watch").unwrap();
        assert_eq!(bot.steps.len(), 3);
        assert_eq!(bot.time_triggers.len(), 2);
        assert_eq!(bot.doc.spec.retry.max_attempts, 5);
        assert_eq!(
            c.queues().into_iter().collect::<Vec<_>>(),
            vec!["default".to_string()]
        );
    }

    #[test]
    fn unknown_skill_has_file_line_and_suggestion() {
        let err = load(&GOOD.replace("uses: transform", "uses: transfrom"))
            .err()
            .unwrap();
        assert_eq!(err.code, ErrorCode::BotUnknownSkill);
        assert_eq!(err.file.as_deref(), Some("bots/x.yaml"));
        assert_eq!(err.line, Some(13));
        assert!(
            err.message.contains("did you mean `transform`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_template_and_bad_cron_and_bad_jq() {
        let err = load(&GOOD.replace(
            "{{ steps.clean.output | tojson }}",
            "{{ steps.clean.output | }}",
        ))
        .err()
        .unwrap();
        assert_eq!(err.code, ErrorCode::BotBadTemplate, "{err}");
        assert_eq!(err.line, Some(18));
        let err = load(&GOOD.replace("*/5 * * * *", "*/5 * * *"))
            .err()
            .unwrap();
        assert_eq!(err.code, ErrorCode::BotBadTrigger);
        assert_eq!(err.line, Some(6));
        let err = load(&GOOD.replace("map(select(.price > 0))", "map(select(.price > 0)"))
            .err()
            .unwrap();
        assert_eq!(err.code, ErrorCode::BotInvalid);
        assert!(err.message.contains("jq"), "{}", err.message);
    }

    #[test]
    fn malformed_yaml_and_unknown_fields() {
        let err = load("metadata: {name: x}\nspec:\n  steps:\n    - uses: log\n      wiht: {}\n")
            .err()
            .unwrap();
        assert_eq!(err.code, ErrorCode::ConfigUnknownKey, "{err}");
        assert_eq!(err.line, Some(5));
        assert!(
            err.message.contains("did you mean `with`"),
            "{}",
            err.message
        );
        let err = load("metadata: {name: x\nspec: {}\n").err().unwrap();
        assert!(err.line.is_some());
    }

    #[test]
    fn duplicate_names_are_refused() {
        let two = format!("{GOOD}---\n{GOOD}");
        let err = load(&two).err().unwrap();
        assert!(err.message.contains("defined twice"));
    }
}

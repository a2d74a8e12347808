//! The `agent` skill: a model that calls tools until it answers. `with: {model?, system?,
//! prompt? (default: the input's `text`), history? (earlier turns, as `conversation.history`
//! gives them), history_tokens? (2000: past it, older turns are summarised once, at the start),
//! tools: [skill names, globs, or {uses, name?, description?, with?}], side_effects: [names or
//! globs], max_turns?, max_tokens?, timeout?}` → `{text, turns, tool_calls: [{tool, input,
//! output}], usage, model}`.
//!
//! Durable: every model turn and every tool call is recorded in the step's journal as it
//! finishes. An attempt that resumes after a crash replays the journal instead of calling
//! again, so no model turn is paid twice and no finished tool call runs twice.
//!
//! Tools are skills, offered with their input schemas under names the APIs accept (`kv.get` →
//! `kv__get`). Which ones a bot may offer is checked when the bot is loaded: an unknown name or
//! a glob matching nothing is refused, and a tool with side effects (`http.request`,
//! `notify.webhook`, `task.enqueue`, plugins with `http`, MCP tools not marked read-only) only
//! when `side_effects` names it too.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use oclaw_core::ErrorCode;
use oclaw_skills::{Journal, Skill, SkillCall, SkillContext, SkillError, SkillRegistry};
use serde_json::{json, Value};

use crate::{ChatRequest, Llm, Message, Role, ToolCall, ToolSpec, Usage};

/// The registry the agent finds its tools in: set once every skill is registered.
pub type ToolRegistry = Arc<RwLock<Option<SkillRegistry>>>;

pub struct Agent {
    pub llm: Arc<Llm>,
    pub tools: ToolRegistry,
}

const FIELDS: &[&str] = &[
    "model",
    "system",
    "prompt",
    "history",
    "tools",
    "side_effects",
    "max_turns",
    "max_tokens",
    "timeout",
    "history_tokens",
];

const DEFAULT_MAX_TURNS: u64 = 8;
/// Tokens of conversation history an agent sends as they are; older turns past it are
/// summarised.
const DEFAULT_HISTORY_TOKENS: u64 = 2000;

/// Where the turns kept as they are begin: the newest turns that fit in half the budget, when
/// the whole history does not fit in it (0: keep everything).
fn keep_from(history: &[Message], budget: u64) -> usize {
    let tokens = |m: &Message| (m.content.len() as u64).div_ceil(4);
    if history.iter().map(tokens).sum::<u64>() <= budget {
        return 0;
    }
    let mut kept = 0;
    let mut from = history.len();
    while from > 0 && kept + tokens(&history[from - 1]) <= budget / 2 {
        from -= 1;
        kept += tokens(&history[from]);
    }
    from
}

/// `*` matches any run of characters.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

fn names(with: &Value, field: &str) -> Result<Vec<String>, SkillError> {
    match with.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| SkillError::invalid(format!("agent: `{field}` holds names")))
            })
            .collect(),
        Some(_) => Err(SkillError::invalid(format!(
            "agent: `{field}` is a list of names"
        ))),
    }
}

/// The name a model sees for a skill.
fn tool_name(skill: &str) -> String {
    skill.replace('.', "__")
}

/// A tool offered to the model: a skill, under a name, with fields the bot fixes.
struct Tool {
    skill: Arc<dyn Skill>,
    name: String,
    description: String,
    /// Fields of `with` the bot sets; the model gives the rest, and cannot change these.
    preset: serde_json::Map<String, Value>,
}

impl Tool {
    /// The skill's input schema without the preset fields.
    fn parameters(&self) -> Value {
        let mut schema = self.skill.input_schema();
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            for k in self.preset.keys() {
                props.remove(k);
            }
        }
        if let Some(req) = schema.get_mut("required").and_then(Value::as_array_mut) {
            req.retain(|r| r.as_str().is_none_or(|r| !self.preset.contains_key(r)));
        }
        schema
    }

    /// The skill's `with` for a call: the model's arguments under the preset.
    fn with(&self, arguments: &Value) -> Value {
        let mut with = match arguments {
            Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        for (k, v) in &self.preset {
            with.insert(k.clone(), v.clone());
        }
        Value::Object(with)
    }
}

const TOOL_FIELDS: &[&str] = &["uses", "name", "description", "with"];

impl Agent {
    /// A summary of `turns` (older turns of a long conversation), with what it cost.
    async fn summarise(
        &self,
        ctx: &SkillContext,
        model: Option<&str>,
        turns: &[Message],
    ) -> Result<(String, Usage), SkillError> {
        let transcript: String = turns
            .iter()
            .map(|m| {
                let who = if m.role == Role::User {
                    "Customer"
                } else {
                    "Assistant"
                };
                format!("{who}: {}\n", m.content)
            })
            .collect();
        let request = ChatRequest {
            messages: vec![
                Message::new(
                    Role::System,
                    "Summarise this conversation in a few sentences for the assistant who continues it. Keep every fact: names, numbers, order ids, dates, what was promised and what is still open.",
                ),
                Message::new(Role::User, transcript),
            ],
            max_tokens: Some(300),
            ..Default::default()
        };
        let answer =
            crate::budget::metered_chat(&self.llm, ctx, model, &request, &mut |_| {}).await?;
        Ok((answer.text, answer.usage))
    }

    /// The tools `with.tools` offers — skill names, globs, or `{uses, name?, description?,
    /// with?}` — checked against `with.side_effects`.
    fn offered(&self, with: &Value) -> Result<Vec<Tool>, SkillError> {
        let guard = self.tools.read().unwrap_or_else(|p| p.into_inner());
        let Some(registry) = guard.as_ref() else {
            return Err(SkillError::invalid("agent: the tools are not loaded yet"));
        };
        let allowed = names(with, "side_effects")?;
        let check = |name: &str| -> Result<Arc<dyn Skill>, SkillError> {
            let skill = registry
                .get(name)
                .map_err(|e| SkillError::invalid(format!("agent: tools: {e}")))?;
            if skill.side_effects() && !allowed.iter().any(|p| glob(p, name)) {
                return Err(SkillError::invalid(format!(
                    "agent: tool `{name}` has side effects; name it in `side_effects` too to let the model call it"
                )));
            }
            Ok(skill)
        };
        let entries = match with.get("tools") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(SkillError::invalid("agent: `tools` is a list")),
        };
        let mut out: Vec<Tool> = Vec::new();
        let mut add = |tool: Tool| -> Result<(), SkillError> {
            if !out.iter().any(|t| t.name == tool.name) {
                out.push(tool);
            }
            Ok(())
        };
        for entry in entries {
            match entry {
                Value::String(pattern) => {
                    let matched: Vec<&str> = registry
                        .list()
                        .into_iter()
                        .map(|(name, _, _)| name)
                        .filter(|n| glob(&pattern, n) && *n != "agent")
                        .collect();
                    if matched.is_empty() {
                        return Err(SkillError::invalid(format!(
                            "agent: tool `{pattern}` matches no skill; `oclaw skill list` shows them"
                        )));
                    }
                    for name in matched {
                        let skill = check(name)?;
                        add(Tool {
                            name: tool_name(name),
                            description: skill.summary().to_string(),
                            skill,
                            preset: Default::default(),
                        })?;
                    }
                }
                Value::Object(map) => {
                    if let Some(k) = map.keys().find(|k| !TOOL_FIELDS.contains(&k.as_str())) {
                        return Err(SkillError::invalid(format!(
                            "agent: a tool has unknown field `{k}`; allowed: {}",
                            TOOL_FIELDS.join(", ")
                        )));
                    }
                    let Some(uses) = map.get("uses").and_then(Value::as_str) else {
                        return Err(SkillError::invalid(
                            "agent: a tool given as a mapping needs `uses: <skill>`",
                        ));
                    };
                    if uses == "agent" {
                        return Err(SkillError::invalid(
                            "agent: an agent cannot be a tool of itself",
                        ));
                    }
                    let skill = check(uses)?;
                    let name = map
                        .get("name")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| tool_name(uses));
                    let ok = !name.is_empty()
                        && name.len() <= 64
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if !ok {
                        return Err(SkillError::invalid(format!(
                            "agent: tool name `{name}` must be 1 to 64 letters, digits, `_` or `-`"
                        )));
                    }
                    let preset = match map.get("with") {
                        None | Some(Value::Null) => Default::default(),
                        Some(Value::Object(m)) => m.clone(),
                        Some(_) => {
                            return Err(SkillError::invalid(format!(
                                "agent: tool `{name}`: `with` is a mapping"
                            )))
                        }
                    };
                    // The skill's fields, or for plugin and MCP skills the properties of their
                    // schema when it closes them.
                    let schema = skill.input_schema();
                    let mut fields: Vec<String> =
                        skill.fields().iter().map(|f| f.to_string()).collect();
                    if fields.is_empty() && schema["additionalProperties"] == false {
                        fields = schema["properties"]
                            .as_object()
                            .map(|p| p.keys().cloned().collect())
                            .unwrap_or_default();
                    }
                    if let Some(k) = preset
                        .keys()
                        .find(|k| !fields.is_empty() && !fields.contains(k))
                    {
                        return Err(SkillError::invalid(format!(
                            "agent: tool `{name}`: {uses} has no field `{k}`; it has: {}",
                            fields.join(", ")
                        )));
                    }
                    add(Tool {
                        description: map
                            .get("description")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| skill.summary().to_string()),
                        name,
                        skill,
                        preset,
                    })?;
                }
                _ => {
                    return Err(SkillError::invalid(
                        "agent: a tool is a skill name or a mapping",
                    ))
                }
            }
        }
        Ok(out)
    }
}

fn number(with: &Value, field: &str) -> Result<Option<u64>, SkillError> {
    match with.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
            SkillError::invalid(format!("agent: `{field}` must be a positive whole number"))
        }),
    }
}

fn timeout(with: &Value) -> Result<Option<Duration>, SkillError> {
    match with.get("timeout") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => oclaw_core::duration::parse_duration(s)
            .map(Some)
            .map_err(|e| SkillError::invalid(format!("agent: timeout: {e}"))),
        Some(other) => Err(SkillError::invalid(format!(
            "agent: timeout `{other}` is not a duration like 2m"
        ))),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// What the journal holds, in order: one `start`, then `model` and `tool` entries.
struct Run {
    messages: Vec<Message>,
    usage: Usage,
    /// Cost of the priced calls (`llm.prices`), when any call was priced.
    cost: Option<f64>,
    turns: u64,
    started_ms: u64,
    calls: Vec<Value>,
    /// Tool calls the last model turn asked for that have no result yet.
    pending: Vec<ToolCall>,
    answer: Option<(String, String)>,
    entries: usize,
}

impl Run {
    fn replay(messages: Vec<Message>, entries: &[Value]) -> Run {
        let mut run = Run {
            messages,
            usage: Usage::default(),
            cost: None,
            turns: 0,
            started_ms: now_ms(),
            calls: Vec::new(),
            pending: Vec::new(),
            answer: None,
            entries: 0,
        };
        for e in entries {
            run.apply(e);
        }
        run
    }

    fn apply(&mut self, e: &Value) {
        self.entries += 1;
        if let Some(c) = e["usage"]["cost"].as_f64() {
            self.cost = Some(self.cost.unwrap_or(0.0) + c);
        }
        match e["kind"].as_str() {
            Some("start") => {
                self.started_ms = e["at"].as_u64().unwrap_or(self.started_ms);
                self.usage.input_tokens += e["usage"]["input_tokens"].as_u64().unwrap_or(0);
                self.usage.output_tokens += e["usage"]["output_tokens"].as_u64().unwrap_or(0);
            }
            Some("model") => {
                let calls: Vec<ToolCall> =
                    serde_json::from_value(e["tool_calls"].clone()).unwrap_or_default();
                let text = e["text"].as_str().unwrap_or_default().to_string();
                self.turns += 1;
                self.usage.input_tokens += e["usage"]["input_tokens"].as_u64().unwrap_or(0);
                self.usage.output_tokens += e["usage"]["output_tokens"].as_u64().unwrap_or(0);
                self.messages.push(Message {
                    role: Role::Assistant,
                    content: text.clone(),
                    tool_calls: calls.clone(),
                    tool_call_id: None,
                });
                if calls.is_empty() {
                    self.answer = Some((text, e["model"].as_str().unwrap_or_default().to_string()));
                }
                self.pending = calls;
            }
            Some("tool") => {
                let id = e["id"].as_str().unwrap_or_default();
                self.pending.retain(|c| c.id != id);
                let output = &e["output"];
                self.messages.push(Message {
                    role: Role::Tool,
                    content: match output {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                    tool_calls: Vec::new(),
                    tool_call_id: Some(id.to_string()),
                });
                self.calls
                    .push(json!({"tool": e["tool"], "input": e["input"], "output": output}));
            }
            _ => {}
        }
    }

    async fn record(&mut self, journal: &Journal, entry: Value) -> Result<(), SkillError> {
        journal.record(self.entries, &entry).await?;
        self.apply(&entry);
        Ok(())
    }
}

#[async_trait]
impl Skill for Agent {
    fn name(&self) -> &'static str {
        "agent"
    }
    fn summary(&self) -> &'static str {
        "a model that calls tools (skills) until it answers; every turn and tool call is checkpointed"
    }
    fn fields(&self) -> &'static [&'static str] {
        FIELDS
    }
    fn nested_calls(&self, with: &Value) -> Vec<(String, String)> {
        with.get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, t)| {
                let uses = t.get("uses")?.as_str()?;
                t.get("with").filter(|w| w.is_object())?;
                Some((format!("/tools/{i}/with"), uses.to_string()))
            })
            .collect()
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        self.llm
            .check_step("agent", with)
            .map_err(SkillError::invalid)?;
        number(with, "max_turns")?;
        number(with, "max_tokens")?;
        number(with, "history_tokens")?;
        timeout(with)?;
        self.offered(with).map(|_| ())
    }

    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let with = &call.with;
        let tools = self.offered(with)?;
        let max_turns = number(with, "max_turns")?.unwrap_or(DEFAULT_MAX_TURNS);
        let max_tokens = number(with, "max_tokens")?;
        let bound = timeout(with)?;
        let prompt = match with.get("prompt").and_then(Value::as_str) {
            Some(p) => p.to_string(),
            None => match &call.data["text"] {
                Value::String(s) => s.clone(),
                Value::Null => {
                    return Err(SkillError::invalid(
                        "agent: no `prompt`, and the input has no `text`",
                    ))
                }
                other => other.to_string(),
            },
        };
        let mut messages = Vec::new();
        if let Some(s) = with.get("system").and_then(Value::as_str) {
            messages.push(Message::new(Role::System, s));
        }
        // Earlier turns of the conversation (`conversation.history`: `{role: user|bot, text}`).
        let mut history = Vec::new();
        for turn in with
            .get("history")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = turn
                .get("text")
                .or_else(|| turn.get("content"))
                .and_then(Value::as_str);
            let role = match turn.get("role").and_then(Value::as_str) {
                Some("user") => Role::User,
                Some("bot" | "assistant") => Role::Assistant,
                _ => continue,
            };
            if let Some(text) = text.filter(|t| !t.is_empty()) {
                history.push(Message::new(role, text));
            }
        }
        let model = with.get("model").and_then(Value::as_str);
        let journal = &ctx.journal;
        // A long history is compacted once, at the start: its older turns become a summary,
        // recorded with the start mark so a resumed attempt uses the same one.
        let start = match journal.entries().first() {
            Some(start) => start.clone(),
            None => {
                let budget = number(with, "history_tokens")?.unwrap_or(DEFAULT_HISTORY_TOKENS);
                let mut start = json!({"kind": "start", "at": now_ms()});
                let keep = keep_from(&history, budget);
                if keep > 0 {
                    let (summary, usage) = self.summarise(ctx, model, &history[..keep]).await?;
                    start["summary"] = json!(summary);
                    start["summarised"] = json!(keep);
                    start["usage"] = json!(usage);
                }
                journal.record(0, &start).await?;
                start
            }
        };
        if let (Some(summary), Some(n)) = (start["summary"].as_str(), start["summarised"].as_u64())
        {
            history.drain(..(n as usize).min(history.len()));
            messages.push(Message::new(
                Role::System,
                format!("Summary of the conversation so far: {summary}"),
            ));
        }
        messages.extend(history);
        messages.push(Message::new(Role::User, prompt));
        let specs: Vec<ToolSpec> = tools
            .iter()
            .map(|t| ToolSpec {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters: t.parameters(),
            })
            .collect();
        let mut run = Run::replay(messages, journal.entries());
        if run.entries == 0 {
            // Recorded above; count it.
            run.apply(&start);
        }
        let streams = oclaw_core::stream::TaskStreams::global();
        loop {
            if let Some((text, model)) = run.answer.clone() {
                let mut usage = json!(run.usage);
                if let Some(cost) = run.cost {
                    usage["cost"] = json!(cost);
                }
                return Ok(json!({
                    "text": text,
                    "turns": run.turns,
                    "tool_calls": run.calls,
                    "usage": usage,
                    "model": model,
                }));
            }
            if let Some(bound) = bound {
                if now_ms().saturating_sub(run.started_ms) > bound.as_millis() as u64 {
                    return Err(SkillError::permanent(
                        ErrorCode::AgentTimeout,
                        format!(
                            "agent: no answer within {}s (after {} turns)",
                            bound.as_secs(),
                            run.turns
                        ),
                    ));
                }
            }
            // Calls the last turn asked for and no attempt has finished: run them, in order.
            if let Some(call) = run.pending.first().cloned() {
                let tool = tools.iter().find(|t| t.name == call.name);
                let output = match tool {
                    None => json!({"error": format!("there is no tool `{}`", call.name)}),
                    Some(tool) => {
                        let mut tool_ctx = ctx.clone();
                        tool_ctx.journal = Journal::detached();
                        match tool
                            .skill
                            .run(
                                &tool_ctx,
                                SkillCall {
                                    with: tool.with(&call.arguments),
                                    data: Value::Null,
                                },
                            )
                            .await
                        {
                            Ok(v) => v,
                            Err(e) => json!({"error": e.to_string()}),
                        }
                    }
                };
                let tool = tool
                    .map(|t| t.skill.name())
                    .unwrap_or(call.name.as_str())
                    .to_string();
                run.record(
                    journal,
                    json!({"kind": "tool", "id": call.id, "tool": tool, "input": call.arguments, "output": output}),
                )
                .await?;
                continue;
            }
            if run.turns >= max_turns {
                return Err(SkillError::permanent(
                    ErrorCode::AgentMaxTurns,
                    format!("agent: {max_turns} model turns without a final answer (max_turns)"),
                ));
            }
            let spent = run.usage.input_tokens + run.usage.output_tokens;
            if let Some(budget) = max_tokens {
                if spent >= budget {
                    return Err(SkillError::permanent(
                        ErrorCode::AgentTokenBudget,
                        format!("agent: {spent} tokens spent of max_tokens {budget}"),
                    ));
                }
            }
            let request = ChatRequest {
                messages: run.messages.clone(),
                tools: specs.clone(),
                json_schema: None,
                temperature: None,
                max_tokens: max_tokens.map(|b| (b - spent).min(u32::MAX as u64) as u32),
            };
            let answer =
                crate::budget::metered_chat(&self.llm, ctx, model, &request, &mut |piece| {
                    streams.publish(ctx.task_id, piece)
                })
                .await?;
            run.record(
                journal,
                json!({
                    "kind": "model",
                    "model": answer.model,
                    "text": answer.text,
                    "tool_calls": answer.tool_calls,
                    "finish_reason": answer.finish_reason,
                    "usage": self.llm.priced_usage(&answer.model, &answer.usage),
                }),
            )
            .await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob("mcp.everything.*", "mcp.everything.echo"));
        assert!(glob("kv.*", "kv.get"));
        assert!(!glob("kv.*", "kvx.get"));
        assert!(glob("*", "anything"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*e", "abcd"));
        assert_eq!(tool_name("mcp.everything.echo"), "mcp__everything__echo");
    }
}

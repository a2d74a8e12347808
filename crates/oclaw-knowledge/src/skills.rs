//! The knowledge skills: `kb.search` (what bots and agents ask) and `kb.ingest` (what the
//! built-in ingestion bot runs).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oclaw_core::ErrorCode;
use oclaw_skills::{Skill, SkillCall, SkillContext, SkillError};
use serde_json::{json, Value};

use crate::{DocumentInput, Format, KnowledgeBase, Mode, SearchRequest};

/// Registers `kb.search` and `kb.ingest` over `kb`.
pub fn register(registry: &mut oclaw_skills::SkillRegistry, kb: Arc<KnowledgeBase>) {
    registry.register(Arc::new(KbSearch { kb: kb.clone() }));
    registry.register(Arc::new(KbIngest { kb }));
}

/// A text field of `with`; empty text and null count as absent (templates of missing input
/// fields render to them).
fn text<'a>(with: &'a Value, field: &str, skill: &str) -> Result<Option<&'a str>, SkillError> {
    match with.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(SkillError::invalid(format!(
            "{skill}: `{field}` must be text"
        ))),
    }
}

fn only(with: &Value, fields: &[&str], skill: &str) -> Result<(), SkillError> {
    if let Some(map) = with.as_object() {
        if let Some(k) = map.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err(SkillError::invalid(format!(
                "{skill}: unknown field `{k}` (fields: {})",
                fields.join(", ")
            )));
        }
    }
    Ok(())
}

const SEARCH_FIELDS: &[&str] = &["kb", "query", "k", "filter", "mode"];

/// `kb.search` — `with: {kb, query, k?, filter?, mode?}` → `{hits: [{document, chunk, title,
/// source, text, score}], mode, sources: [{n, document, title, source}], context}`; `context`
/// gives each passage under its source's number (`[1] title (source)` and the text) so a model
/// can cite them, and `sources` lists those documents in rank order.
pub struct KbSearch {
    pub kb: Arc<KnowledgeBase>,
}

#[async_trait]
impl Skill for KbSearch {
    fn name(&self) -> &'static str {
        "kb.search"
    }
    fn summary(&self) -> &'static str {
        "search a knowledge collection (full-text and vectors, fused); hits carry title and source to cite"
    }
    fn fields(&self) -> &'static [&'static str] {
        SEARCH_FIELDS
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only(with, SEARCH_FIELDS, "kb.search")?;
        if with.get("query").is_none() {
            return Err(SkillError::invalid("kb.search: `query` is required"));
        }
        if let Some(Value::String(m)) = with.get("mode") {
            if !m.contains("{{") && Mode::parse(m).is_none() {
                return Err(SkillError::invalid(format!(
                    "kb.search: mode `{m}` is not hybrid, text or vector"
                )));
            }
        }
        Ok(())
    }
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "kb": {"type": "string", "description": "the knowledge collection to search"},
                "query": {"type": "string", "description": "what to look for, in the user's words"},
                "k": {"type": "integer", "minimum": 1, "maximum": 20, "description": "how many passages (default 5)"}
            },
            "required": ["kb", "query"],
            "additionalProperties": false
        })
    }
    fn pure(&self) -> bool {
        // Its answer changes with the collection: a retry re-reads it, which is what a user
        // expects of a search.
        false
    }

    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let with = &call.with;
        only(with, SEARCH_FIELDS, "kb.search")?;
        let kb = text(with, "kb", "kb.search")?.ok_or_else(|| {
            SkillError::invalid("kb.search: `kb` (a collection name) is required")
        })?;
        let query = text(with, "query", "kb.search")?.unwrap_or_default();
        let k = match with.get("k") {
            None | Some(Value::Null) => 5,
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .filter(|k| (1..=100).contains(k))
                .ok_or_else(|| SkillError::invalid("kb.search: `k` must be 1 to 100"))?
                as usize,
        };
        let filter = match with.get("filter") {
            None | Some(Value::Null) => Default::default(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(SkillError::invalid("kb.search: `filter` must be a mapping")),
        };
        let mode = match text(with, "mode", "kb.search")? {
            None => Mode::Hybrid,
            Some(m) => Mode::parse(m).ok_or_else(|| {
                SkillError::invalid(format!(
                    "kb.search: mode `{m}` is not hybrid, text or vector"
                ))
            })?,
        };
        if query.trim().is_empty() {
            return Ok(json!({"hits": [], "mode": "full-text", "sources": [], "context": ""}));
        }
        let request = SearchRequest {
            tenant: ctx.tenant.clone(),
            collection: kb.to_string(),
            query: query.to_string(),
            k,
            filter,
            mode,
        };
        let result = self
            .kb
            .search(ctx.store.as_ref(), &request)
            .await
            .map_err(|e| e.skill_error())?;
        // Sources: the hits' documents, numbered in rank order; `context` puts each passage
        // under its source's number, so a model's [n] matches `sources[n-1]`.
        let mut sources: Vec<Value> = Vec::new();
        let mut context = Vec::new();
        for h in &result.hits {
            let n = match sources
                .iter()
                .position(|s| s["document"] == h.document.as_str())
            {
                Some(i) => i + 1,
                None => {
                    sources.push(json!({
                        "n": sources.len() + 1,
                        "document": h.document,
                        "title": h.title.as_deref().unwrap_or(&h.document),
                        "source": h.source.as_deref().unwrap_or(&h.document),
                    }));
                    sources.len()
                }
            };
            let title = h.title.as_deref().unwrap_or(&h.document);
            let source = h
                .source
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            context.push(format!("[{n}] {title}{source}\n{}", h.text));
        }
        let mut out = serde_json::to_value(&result).unwrap_or_default();
        out["sources"] = Value::Array(sources);
        out["context"] = Value::String(context.join("\n\n"));
        Ok(out)
    }
}

const INGEST_FIELDS: &[&str] = &[
    "kb", "id", "title", "source", "text", "url", "format", "metadata", "create",
];

/// `kb.ingest` — `with: {kb, id?, title?, source?, text | url, format?, metadata?, create?}` →
/// `{document, outcome, chunks, embedder}`. A URL is fetched through the SSRF guard (private
/// addresses refused unless the bot allows them). `create: true` makes a missing collection.
pub struct KbIngest {
    pub kb: Arc<KnowledgeBase>,
}

#[async_trait]
impl Skill for KbIngest {
    fn name(&self) -> &'static str {
        "kb.ingest"
    }
    fn summary(&self) -> &'static str {
        "add or update a document in a knowledge collection (text or a URL: extracted, chunked, embedded)"
    }
    fn fields(&self) -> &'static [&'static str] {
        INGEST_FIELDS
    }
    fn side_effects(&self) -> bool {
        true
    }
    fn check_literal(&self, with: &Value) -> Result<(), SkillError> {
        only(with, INGEST_FIELDS, "kb.ingest")?;
        if with.get("kb").is_none() {
            return Err(SkillError::invalid("kb.ingest: `kb` is required"));
        }
        if with.get("text").is_none() && with.get("url").is_none() {
            return Err(SkillError::invalid(
                "kb.ingest: `text` or `url` is required",
            ));
        }
        Ok(())
    }

    async fn run(&self, ctx: &SkillContext, call: SkillCall) -> Result<Value, SkillError> {
        let with = &call.with;
        only(with, INGEST_FIELDS, "kb.ingest")?;
        let kb = text(with, "kb", "kb.ingest")?
            .ok_or_else(|| SkillError::invalid("kb.ingest: `kb` is required"))?;
        let format = match text(with, "format", "kb.ingest")? {
            None => None,
            Some(f) => Some(Format::parse(f).ok_or_else(|| {
                SkillError::invalid(format!(
                    "kb.ingest: format `{f}` is not markdown, text or html"
                ))
            })?),
        };
        let metadata = match with.get("metadata") {
            None | Some(Value::Null) => Value::Null,
            Some(Value::String(s)) if s.is_empty() => Value::Null,
            Some(Value::Object(m)) => Value::Object(m.clone()),
            Some(_) => {
                return Err(SkillError::invalid(
                    "kb.ingest: `metadata` must be a mapping",
                ))
            }
        };
        let url = text(with, "url", "kb.ingest")?;
        let (bytes, name, content_type) = match (text(with, "text", "kb.ingest")?, url) {
            (Some(t), None) => (t.as_bytes().to_vec(), None, None),
            (None, Some(u)) => {
                let (bytes, ct) =
                    oclaw_skills::fetch_document(ctx, "kb.ingest", u, Duration::from_secs(60))
                        .await?;
                (bytes, Some(u.to_string()), ct)
            }
            (Some(_), Some(_)) => {
                return Err(SkillError::invalid(
                    "kb.ingest: give `text` or `url`, not both",
                ))
            }
            (None, None) => {
                return Err(SkillError::invalid(
                    "kb.ingest: `text` or `url` is required",
                ))
            }
        };
        if with.get("create").and_then(Value::as_bool) == Some(true)
            && ctx
                .store
                .kb_revision(&ctx.tenant, kb)
                .await
                .ok()
                .flatten()
                .is_none()
        {
            crate::check_collection_name(kb).map_err(|e| e.skill_error())?;
            // Another task may make it first; either way it exists after.
            let _ = ctx.store.kb_create(&ctx.tenant, kb).await;
        }
        let source = text(with, "source", "kb.ingest")?
            .or(url)
            .map(str::to_string);
        let report = self
            .kb
            .ingest(
                ctx.store.as_ref(),
                DocumentInput {
                    tenant: ctx.tenant.clone(),
                    collection: kb.to_string(),
                    id: text(with, "id", "kb.ingest")?.map(str::to_string),
                    title: text(with, "title", "kb.ingest")?.map(str::to_string),
                    source,
                    metadata,
                    bytes,
                    name,
                    content_type,
                    format,
                },
            )
            .await
            .map_err(|e| {
                let mut e = e.skill_error();
                if e.code == ErrorCode::KbBadDocument {
                    e.retryable = false;
                }
                e
            })?;
        Ok(serde_json::to_value(report).unwrap_or_default())
    }
}

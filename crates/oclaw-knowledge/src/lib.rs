//! Knowledge collections over the node's store: documents are extracted ([`extract`]), cut into
//! chunks ([`chunk`]), analysed into full-text terms ([`analyze`]) and, when an embedder is set,
//! embedded ([`embed`]: the in-process [`bert`] model or a provider); a search runs the
//! full-text leg in the store and the vector leg in memory ([`index`]) and fuses them with
//! Reciprocal Rank Fusion. [`skills`] holds `kb.search` and `kb.ingest`; [`eval`] measures
//! recall@k and MRR of each leg on a question set.

pub mod analyze;
pub mod bert;
pub mod chunk;
pub mod embed;
pub mod eval;
pub mod extract;
pub mod index;
pub mod skills;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use oclaw_core::config::KnowledgeConfig;
use oclaw_core::ErrorCode;
use oclaw_store::knowledge::{
    DocumentWrite, EmbedderId, MetadataFilter, NewChunk, PutOutcome, DEFAULT_TENANT,
};
use oclaw_store::{Store, StoreError};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use chunk::ChunkOptions;
pub use embed::{EmbedError, Embedder, LocalEmbedder, ProviderEmbedder};
pub use extract::Format;

/// The built-in bot whose tasks ingest documents (`POST /v1/kb/{name}/documents`, `oclaw kb
/// add`): durable, retried, resumed after a restart.
pub const INGEST_BOT: &str = "oclaw.ingest";

/// Its definition (one `kb.ingest` step; retried for fetch and embedder outages).
pub const INGEST_BOT_YAML: &str = "\
apiVersion: oclaw.io/v1
kind: Bot
metadata:
  name: ingest
  description: Adds a document to a knowledge collection (extract, chunk, embed, index).
spec:
  timeout: 10m
  retry: {max_attempts: 5, backoff: exponential, initial: 2s, max: 2m}
  steps:
    - id: ingest
      uses: kb.ingest
      with:
        kb: \"{{ input.kb }}\"
        id: \"{{ input.id }}\"
        title: \"{{ input.title }}\"
        source: \"{{ input.source }}\"
        text: \"{{ input.text }}\"
        url: \"{{ input.url }}\"
        format: \"{{ input.format }}\"
        metadata: \"{{ input.metadata }}\"
";

/// Reciprocal Rank Fusion's constant (the usual 60).
const RRF_K: f64 = 60.0;

/// Why a knowledge operation failed.
#[derive(Debug, Clone, PartialEq)]
pub struct KbError {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
}

impl std::fmt::Display for KbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code.code(), self.message)
    }
}

impl std::error::Error for KbError {}

impl KbError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> KbError {
        KbError {
            code,
            message: message.into(),
            retryable: false,
        }
    }

    pub fn skill_error(self) -> oclaw_skills::SkillError {
        oclaw_skills::SkillError {
            code: self.code,
            message: self.message,
            retryable: self.retryable,
        }
    }
}

impl From<StoreError> for KbError {
    fn from(e: StoreError) -> KbError {
        let code = match &e {
            StoreError::Duplicate(_) => ErrorCode::KbExists,
            other => other.code(),
        };
        KbError {
            code,
            retryable: e.is_transient(),
            message: e.to_string(),
        }
    }
}

impl From<EmbedError> for KbError {
    fn from(e: EmbedError) -> KbError {
        KbError {
            code: e.code,
            message: e.message,
            retryable: e.retryable,
        }
    }
}

/// Which legs a search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Full-text and vectors fused (full-text alone when the collection has no vectors of this
    /// node's embedder).
    #[default]
    Hybrid,
    Text,
    Vector,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "hybrid" => Some(Mode::Hybrid),
            "text" | "full-text" => Some(Mode::Text),
            "vector" => Some(Mode::Vector),
            _ => None,
        }
    }
}

/// A search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub tenant: String,
    pub collection: String,
    pub query: String,
    pub k: usize,
    pub filter: MetadataFilter,
    pub mode: Mode,
}

impl SearchRequest {
    pub fn new(collection: &str, query: &str, k: usize) -> SearchRequest {
        SearchRequest {
            tenant: DEFAULT_TENANT.into(),
            collection: collection.into(),
            query: query.into(),
            k,
            filter: MetadataFilter::new(),
            mode: Mode::Hybrid,
        }
    }
}

/// A chunk found, with what a citation needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub document: String,
    pub chunk: i64,
    pub title: Option<String>,
    pub source: Option<String>,
    pub text: String,
    pub score: f64,
}

/// The hits, and which legs found them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    pub hits: Vec<Hit>,
    /// `hybrid`, `full-text` or `vector`.
    pub mode: &'static str,
    /// Why the search ran on full-text only, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A document to add.
#[derive(Debug, Clone, Default)]
pub struct DocumentInput {
    pub tenant: String,
    pub collection: String,
    /// Defaults to the source, else a hash of the content.
    pub id: Option<String>,
    pub title: Option<String>,
    pub source: Option<String>,
    pub metadata: Value,
    pub bytes: Vec<u8>,
    /// A file name or URL (for the format).
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub format: Option<Format>,
}

/// What adding a document did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestReport {
    pub document: String,
    pub outcome: PutOutcome,
    pub chunks: usize,
    /// The embedder that made its vectors (none: full-text only).
    pub embedder: Option<String>,
}

/// The knowledge collections of a node.
pub struct KnowledgeBase {
    pub embedder: Option<Arc<dyn Embedder>>,
    pub index: index::VectorIndex,
    pub chunking: ChunkOptions,
}

/// Document ids: what a URL or a file path can hold, no control characters.
pub fn check_document_id(id: &str) -> Result<(), KbError> {
    if id.is_empty() || id.chars().count() > 512 || id.chars().any(char::is_control) {
        return Err(KbError::new(
            ErrorCode::InvalidField,
            format!("document id `{id}` must be 1 to 512 characters without control characters"),
        ));
    }
    Ok(())
}

/// Collection names: letters, digits, `-`, `_`, `.`, at most 64.
pub fn check_collection_name(name: &str) -> Result<(), KbError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(KbError::new(
            ErrorCode::InvalidField,
            format!("collection name `{name}` must be 1 to 64 letters, digits, `-`, `_` or `.`"),
        ));
    }
    Ok(())
}

fn check_filter(filter: &MetadataFilter) -> Result<(), KbError> {
    for (k, v) in filter {
        let ok = !k.is_empty()
            && k.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_'));
        if !ok || v.is_array() || v.is_object() {
            return Err(KbError::new(
                ErrorCode::InvalidField,
                format!("filter `{k}`: keys are letters, digits, `-` or `_`, values are text, numbers, booleans or null"),
            ));
        }
    }
    Ok(())
}

/// The Markdown, text and HTML files under `dir` (recursively, hidden ones skipped) as
/// `(path inside dir with /, full path)`, sorted.
pub fn document_files(dir: &Path) -> Result<Vec<(String, std::path::PathBuf)>, String> {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut Vec<(String, std::path::PathBuf)>,
    ) -> Result<(), String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out)?;
                continue;
            }
            let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
            if matches!(
                ext.as_deref(),
                Some("md" | "markdown" | "mdx" | "txt" | "text" | "html" | "htm")
            ) {
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, path));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    if dir.is_file() {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, dir.to_path_buf()));
        return Ok(out);
    }
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl KnowledgeBase {
    /// The collections of `config` (`knowledge.embedder`: `local`, `provider/model` or none).
    /// A relative `model_dir` is taken from `base_dir`.
    pub fn from_config(
        config: &KnowledgeConfig,
        llm: Option<Arc<oclaw_llm::Llm>>,
        base_dir: &Path,
    ) -> KnowledgeBase {
        let embedder: Option<Arc<dyn Embedder>> = match (config.embedder.as_deref(), llm) {
            (None, _) => None,
            (Some("local"), _) => {
                let dir = if config.model_dir.is_absolute() {
                    config.model_dir.clone()
                } else {
                    base_dir.join(&config.model_dir)
                };
                Some(Arc::new(LocalEmbedder::new(dir)))
            }
            (Some(model), Some(llm)) => Some(Arc::new(ProviderEmbedder {
                llm,
                model: model.to_string(),
            })),
            (Some(_), None) => None,
        };
        KnowledgeBase {
            embedder,
            index: index::VectorIndex::default(),
            chunking: ChunkOptions {
                size: config.chunk_size as usize,
                overlap: config.chunk_overlap as usize,
            },
        }
    }

    /// A base with no embedder (full-text only).
    pub fn text_only() -> KnowledgeBase {
        KnowledgeBase {
            embedder: None,
            index: index::VectorIndex::default(),
            chunking: ChunkOptions::default(),
        }
    }

    /// Adds or updates a document: extracted, chunked, embedded and written in one transaction;
    /// an unchanged one (same content hash) is not chunked or embedded again.
    pub async fn ingest(
        &self,
        store: &dyn Store,
        input: DocumentInput,
    ) -> Result<IngestReport, KbError> {
        check_collection_name(&input.collection)?;
        let format = input.format.unwrap_or_else(|| {
            Format::detect(
                input.name.as_deref(),
                input.content_type.as_deref(),
                &input.bytes,
            )
        });
        let extracted = extract::extract(&input.bytes, format).map_err(|m| {
            KbError::new(
                ErrorCode::KbBadDocument,
                format!(
                    "{}: {m}",
                    input
                        .name
                        .as_deref()
                        .or(input.id.as_deref())
                        .unwrap_or("document")
                ),
            )
        })?;
        let embedder_name = self.embedder.as_ref().map(|e| e.name().to_string());
        let mut digest = Sha256::new();
        digest.update(extracted.text.as_bytes());
        digest.update(
            format!(
                "\0{}:{}:{}",
                self.chunking.size,
                self.chunking.overlap,
                embedder_name.as_deref().unwrap_or("")
            )
            .as_bytes(),
        );
        let hash = hex(&digest.finalize());
        let id = match input.id.clone().filter(|i| !i.is_empty()) {
            Some(id) => id,
            None => input
                .source
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| hash[..16].to_string()),
        };
        check_document_id(&id)?;
        let title = input
            .title
            .clone()
            .filter(|t| !t.is_empty())
            .or(extracted.title);
        let metadata = match input.metadata {
            Value::Null => Value::Object(Default::default()),
            Value::Object(m) => Value::Object(m),
            _ => {
                return Err(KbError::new(
                    ErrorCode::InvalidField,
                    "metadata must be a mapping",
                ))
            }
        };
        let mut write = DocumentWrite {
            tenant: input.tenant.clone(),
            collection: input.collection.clone(),
            id: id.clone(),
            title: title.clone(),
            source: input.source.clone().filter(|s| !s.is_empty()),
            metadata,
            hash: hash.clone(),
            chunks: Vec::new(),
            embedder: None,
        };
        let unchanged = store
            .kb_document_hash(&input.tenant, &input.collection, &id)
            .await?
            .is_some_and(|h| h == hash);
        if unchanged {
            let outcome = store.kb_put_document(write).await?;
            return Ok(IngestReport {
                document: id,
                outcome,
                chunks: 0,
                embedder: embedder_name,
            });
        }
        let texts = chunk::chunk_text(&extracted.text, self.chunking);
        let prefix = title
            .as_deref()
            .map(|t| format!("{t}\n"))
            .unwrap_or_default();
        let mut chunks: Vec<NewChunk> = texts
            .iter()
            .map(|t| NewChunk {
                text: t.clone(),
                terms: analyze::terms(&format!("{prefix}{t}")),
                vector: None,
            })
            .collect();
        if let Some(embedder) = &self.embedder {
            let inputs: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
            let vectors = embedder.embed(&inputs).await?;
            if vectors.len() != chunks.len() {
                return Err(KbError::new(
                    ErrorCode::KbIngestFailed,
                    format!(
                        "the embedder answered {} vectors for {} chunks",
                        vectors.len(),
                        chunks.len()
                    ),
                ));
            }
            let dimensions = vectors.first().map(Vec::len).unwrap_or_default();
            write.embedder = Some(EmbedderId {
                name: embedder.name().to_string(),
                dimensions: dimensions as u32,
            });
            for (c, v) in chunks.iter_mut().zip(vectors) {
                c.vector = Some(v);
            }
        }
        let n = chunks.len();
        write.chunks = chunks;
        let outcome = store.kb_put_document(write).await?;
        Ok(IngestReport {
            document: id,
            outcome,
            chunks: n,
            embedder: embedder_name,
        })
    }

    /// Searches a collection: full-text and vectors fused with Reciprocal Rank Fusion.
    pub async fn search(
        &self,
        store: &dyn Store,
        req: &SearchRequest,
    ) -> Result<SearchResult, KbError> {
        check_filter(&req.filter)?;
        let k = req.k.clamp(1, 100);
        let rev = store
            .kb_revision(&req.tenant, &req.collection)
            .await?
            .ok_or_else(|| KbError::from(StoreError::KbNotFound(req.collection.clone())))?;
        let candidates = (k * 5).max(50);
        // Whether the vector leg can run, and why not.
        let vectors = match (&self.embedder, &rev.embedder) {
            (None, _) => {
                Err("no embedder is configured (knowledge.embedder): full-text only".to_string())
            }
            (Some(_), None) => Err(format!(
                "collection `{}` holds no vectors: full-text only",
                req.collection
            )),
            (Some(e), Some(have)) if e.name() != have => Err(format!(
                "collection `{}` holds vectors of {have}, this node embeds with {}: full-text only",
                req.collection,
                e.name()
            )),
            (Some(e), Some(_)) => Ok(e.clone()),
        };
        let run_text = req.mode != Mode::Vector || vectors.is_err();
        let run_vector = req.mode != Mode::Text && vectors.is_ok();
        if req.mode == Mode::Vector {
            if let Err(why) = &vectors {
                return Err(KbError::new(
                    ErrorCode::KbEmbedderMismatch,
                    format!("mode vector needs vectors of this node's embedder: {why}"),
                ));
            }
        }
        // The two legs at once: full-text in the store, vectors here.
        let text_leg = async {
            if !run_text {
                return Ok(Vec::new());
            }
            let terms = analyze::query_terms(&req.query);
            store
                .kb_text_search(
                    &req.tenant,
                    &req.collection,
                    &terms,
                    &req.filter,
                    candidates,
                )
                .await
                .map_err(KbError::from)
        };
        let vector_leg = async {
            let embedder = match (&vectors, run_vector) {
                (Ok(embedder), true) => embedder,
                _ => return Ok(Vec::new()),
            };
            let query = embedder.embed(std::slice::from_ref(&req.query)).await?;
            let query = query.into_iter().next().unwrap_or_default();
            self.index
                .search(
                    store,
                    &req.tenant,
                    &req.collection,
                    rev.revision,
                    &query,
                    &req.filter,
                    candidates,
                )
                .await
                .map_err(KbError::from)
        };
        let (text_hits, vector_hits) = tokio::join!(text_leg, vector_leg);
        let (text_hits, vector_hits): (Vec<_>, Vec<_>) = (text_hits?, vector_hits?);
        let (ranked, mode): (Vec<(i64, f64)>, &'static str) = match (run_text, run_vector) {
            (true, true) => {
                let mut fused: HashMap<i64, f64> = HashMap::new();
                for list in [&text_hits, &vector_hits] {
                    for (rank, hit) in list.iter().enumerate() {
                        *fused.entry(hit.chunk).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
                    }
                }
                let mut v: Vec<(i64, f64)> = fused.into_iter().collect();
                v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                (v, "hybrid")
            }
            (false, true) => (
                vector_hits.iter().map(|h| (h.chunk, h.score)).collect(),
                "vector",
            ),
            _ => (
                text_hits.iter().map(|h| (h.chunk, h.score)).collect(),
                "full-text",
            ),
        };
        let top: Vec<(i64, f64)> = ranked.into_iter().take(k).collect();
        let ids: Vec<i64> = top.iter().map(|(c, _)| *c).collect();
        let mut records: HashMap<i64, _> = store
            .kb_chunks(&ids)
            .await?
            .into_iter()
            .map(|r| (r.chunk, r))
            .collect();
        let hits = top
            .into_iter()
            .filter_map(|(chunk, score)| {
                records.remove(&chunk).map(|r| Hit {
                    document: r.document,
                    chunk,
                    title: r.title,
                    source: r.source,
                    text: r.text,
                    score,
                })
            })
            .collect();
        Ok(SearchResult {
            hits,
            mode,
            note: match (&vectors, req.mode) {
                (Err(why), Mode::Hybrid) => Some(why.clone()),
                _ => None,
            },
        })
    }
}

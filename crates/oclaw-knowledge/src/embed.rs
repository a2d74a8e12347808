//! What turns text into vectors: the in-process model ([`LocalEmbedder`], loaded on first use
//! from `knowledge.model_dir`) or a provider's embeddings API ([`ProviderEmbedder`]).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use oclaw_core::ErrorCode;
use tokio::sync::OnceCell;

use crate::bert::BertEncoder;

/// Why text could not be embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedError {
    pub code: ErrorCode,
    pub message: String,
    /// Another attempt later may succeed (a provider's outage; not missing weights).
    pub retryable: bool,
}

impl std::error::Error for EmbedError {}

impl std::fmt::Display for EmbedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code.code(), self.message)
    }
}

#[async_trait]
pub trait Embedder: Send + Sync {
    /// The name recorded with a collection's vectors (`local/all-MiniLM-L6-v2`,
    /// `openai/text-embedding-3-small`); vectors of two names never meet.
    fn name(&self) -> &str;
    /// One vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// Loads what it needs now, so a node with a broken embedder fails at start.
    async fn ready(&self) -> Result<(), EmbedError> {
        Ok(())
    }
}

/// The in-process BERT sentence encoder.
pub struct LocalEmbedder {
    dir: PathBuf,
    name: String,
    model: OnceCell<Arc<BertEncoder>>,
}

impl LocalEmbedder {
    /// The model in `dir` (loaded on first use); named `local/<folder name>`.
    pub fn new(dir: PathBuf) -> LocalEmbedder {
        let folder = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        LocalEmbedder {
            name: format!("local/{folder}"),
            dir,
            model: OnceCell::new(),
        }
    }

    /// Loads the weights now (a node does this at start so a bad folder fails there).
    pub async fn load(&self) -> Result<Arc<BertEncoder>, EmbedError> {
        self.model
            .get_or_try_init(|| async {
                let dir = self.dir.clone();
                let loaded = tokio::task::spawn_blocking(move || BertEncoder::load(&dir))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
                loaded.map(Arc::new).map_err(|m| EmbedError {
                    code: ErrorCode::EmbedderUnavailable,
                    message: format!(
                        "the embedding model in {} cannot be loaded: {m} (install it with scripts/install-embedder.sh, or set knowledge.model_dir)",
                        self.dir.display()
                    ),
                    retryable: false,
                })
            })
            .await
            .cloned()
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    async fn ready(&self) -> Result<(), EmbedError> {
        self.load().await.map(|_| ())
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let model = self.load().await?;
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || texts.iter().map(|t| model.embed(t)).collect())
            .await
            .map_err(|e| EmbedError {
                code: ErrorCode::KbIngestFailed,
                message: format!("the embedding model failed: {e}"),
                retryable: false,
            })
    }
}

/// A provider's embeddings API (`llm.providers`), through the node's model router (limits,
/// timeouts, breaker, metrics).
pub struct ProviderEmbedder {
    pub llm: Arc<oclaw_llm::Llm>,
    /// `provider/model`.
    pub model: String,
}

/// Inputs per provider call.
const PROVIDER_BATCH: usize = 64;

#[async_trait]
impl Embedder for ProviderEmbedder {
    fn name(&self) -> &str {
        &self.model
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(PROVIDER_BATCH) {
            let answer = self.llm.embed(&self.model, batch).await.map_err(|e| {
                let skill = e.skill_error();
                EmbedError {
                    code: skill.code,
                    message: skill.message,
                    retryable: skill.retryable,
                }
            })?;
            out.extend(answer.vectors);
        }
        Ok(out)
    }
}

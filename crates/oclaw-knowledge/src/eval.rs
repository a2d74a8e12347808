//! Retrieval quality: a question set (questions with the documents that answer them) run
//! through each leg, scored as recall@k (a right document among the first k hits) and MRR (the
//! mean of 1/rank of the first right document).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{KbError, KnowledgeBase, Mode, SearchRequest};

/// An evaluation file (YAML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSet {
    /// The collection to search (or to fill from `documents`).
    #[serde(default)]
    pub kb: Option<String>,
    /// A folder of documents (relative to the file), added before the questions: each file's id
    /// is its path inside the folder.
    #[serde(default)]
    pub documents: Option<PathBuf>,
    #[serde(default = "default_k")]
    pub k: usize,
    pub questions: Vec<Question>,
}

fn default_k() -> usize {
    5
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub q: String,
    /// Ids of the documents that answer it.
    pub expect: Vec<String>,
    #[serde(default)]
    pub lang: Option<String>,
}

impl EvalSet {
    pub fn read(path: &Path) -> Result<EvalSet, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut set: EvalSet =
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if set.questions.is_empty() {
            return Err(format!("{}: no questions", path.display()));
        }
        if let Some(d) = &set.documents {
            if d.is_relative() {
                set.documents = Some(path.parent().unwrap_or(Path::new(".")).join(d));
            }
        }
        Ok(set)
    }
}

/// The scores of one leg.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scores {
    pub mode: String,
    pub questions: usize,
    pub recall_at_k: f64,
    pub mrr: f64,
    /// Questions whose right document was not among the first k hits.
    pub misses: Vec<String>,
}

/// Runs every question through `mode` and scores the hits.
pub async fn score(
    kb: &KnowledgeBase,
    store: &dyn oclaw_store::Store,
    collection: &str,
    set: &EvalSet,
    mode: Mode,
    lang: Option<&str>,
) -> Result<Scores, KbError> {
    let mut found = 0usize;
    let mut rr = 0f64;
    let mut misses = Vec::new();
    let questions: Vec<&Question> = set
        .questions
        .iter()
        .filter(|q| lang.is_none() || q.lang.as_deref() == lang)
        .collect();
    for q in &questions {
        let mut req = SearchRequest::new(collection, &q.q, set.k);
        req.mode = mode;
        let result = kb.search(store, &req).await?;
        // Rank by document: the first hit of each document counts.
        let mut docs: Vec<&str> = Vec::new();
        for h in &result.hits {
            if !docs.contains(&h.document.as_str()) {
                docs.push(&h.document);
            }
        }
        match docs.iter().position(|d| q.expect.iter().any(|e| e == d)) {
            Some(rank) => {
                found += 1;
                rr += 1.0 / (rank as f64 + 1.0);
            }
            None => misses.push(q.q.clone()),
        }
    }
    let n = questions.len().max(1) as f64;
    Ok(Scores {
        mode: match mode {
            Mode::Hybrid => "hybrid",
            Mode::Text => "full-text",
            Mode::Vector => "vector",
        }
        .into(),
        questions: questions.len(),
        recall_at_k: found as f64 / n,
        mrr: rr / n,
        misses,
    })
}

/// Adds every Markdown, text and HTML file under `dir` (recursively) to `collection`, each with
/// its path inside `dir` as id and source; answers one report per file, in path order.
pub async fn ingest_folder(
    kb: &KnowledgeBase,
    store: &dyn oclaw_store::Store,
    collection: &str,
    dir: &Path,
) -> Result<Vec<crate::IngestReport>, KbError> {
    let files = crate::document_files(dir)
        .map_err(|m| KbError::new(oclaw_core::ErrorCode::KbBadDocument, m))?;
    let mut reports = Vec::new();
    for (id, path) in files {
        let bytes = std::fs::read(&path).map_err(|e| {
            KbError::new(
                oclaw_core::ErrorCode::KbBadDocument,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let report = kb
            .ingest(
                store,
                crate::DocumentInput {
                    tenant: oclaw_store::knowledge::DEFAULT_TENANT.into(),
                    collection: collection.into(),
                    id: Some(id.clone()),
                    source: Some(id.clone()),
                    name: Some(id),
                    bytes,
                    ..Default::default()
                },
            )
            .await?;
        reports.push(report);
    }
    Ok(reports)
}

/// Fills a scratch collection from the set's `documents` (when it names a folder) and scores
/// full-text, vector (when the base has an embedder) and hybrid.
pub async fn run(
    kb: &KnowledgeBase,
    store: &dyn oclaw_store::Store,
    set: &EvalSet,
    lang: Option<&str>,
) -> Result<Vec<Scores>, KbError> {
    let collection = set.kb.clone().unwrap_or_else(|| "eval".into());
    if let Some(dir) = &set.documents {
        if store
            .kb_revision(oclaw_store::knowledge::DEFAULT_TENANT, &collection)
            .await?
            .is_none()
        {
            store
                .kb_create(oclaw_store::knowledge::DEFAULT_TENANT, &collection)
                .await?;
        }
        ingest_folder(kb, store, &collection, dir).await?;
    }
    let mut modes = vec![Mode::Text];
    if kb.embedder.is_some() {
        modes.push(Mode::Vector);
    }
    modes.push(Mode::Hybrid);
    let mut out = Vec::new();
    for mode in modes {
        out.push(score(kb, store, &collection, set, mode, lang).await?);
    }
    Ok(out)
}

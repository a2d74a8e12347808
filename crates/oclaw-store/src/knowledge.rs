//! Knowledge collections: documents split into chunks, each chunk kept with its full-text terms
//! and (when an embedder made one) its vector. The store keeps and finds; analysing text
//! (terms), chunking, embedding and fusing rankings happen in `oclaw-knowledge`, once for every
//! backend.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The tenant every object belongs to until tenants are configured.
pub const DEFAULT_TENANT: &str = "default";

/// A collection and its counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CollectionInfo {
    pub name: String,
    pub tenant: String,
    pub documents: u64,
    pub chunks: u64,
    /// The embedder of the collection's vectors (`local/all-MiniLM-L6-v2`,
    /// `openai/text-embedding-3-small`); none until a document is added with vectors.
    pub embedder: Option<String>,
    pub dimensions: Option<u32>,
    /// Grows with every change of the collection's content (in-memory indexes reload on it).
    pub revision: i64,
    pub created_at: DateTime<Utc>,
}

/// What a search reads first: whether the collection changed, and whose vectors it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub revision: i64,
    pub embedder: Option<String>,
    pub dimensions: Option<u32>,
}

/// A document of a collection (without its text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DocumentInfo {
    pub id: String,
    pub title: Option<String>,
    pub source: Option<String>,
    pub metadata: Value,
    /// Hash of the document's content: a write with the same hash is not indexed again.
    pub hash: String,
    pub chunks: u64,
    pub updated_at: DateTime<Utc>,
}

/// One chunk to store: its text, its full-text terms (space-separated, already analysed) and
/// its vector when an embedder made one.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    pub text: String,
    pub terms: Vec<String>,
    pub vector: Option<Vec<f32>>,
}

/// The embedder that made a write's vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderId {
    pub name: String,
    pub dimensions: u32,
}

/// A document with its chunks, written as one transaction (the old chunks go with it).
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentWrite {
    pub tenant: String,
    pub collection: String,
    pub id: String,
    pub title: Option<String>,
    pub source: Option<String>,
    pub metadata: Value,
    pub hash: String,
    pub chunks: Vec<NewChunk>,
    pub embedder: Option<EmbedderId>,
}

/// What a document write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PutOutcome {
    Created,
    /// The content changed: the old chunks were replaced.
    Replaced,
    /// Same content hash: title, source and metadata updated, nothing indexed again.
    Unchanged,
}

/// A chunk found by a search leg, best first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkScore {
    pub chunk: i64,
    pub score: f64,
}

/// A chunk with its document's title, source and metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkRecord {
    pub chunk: i64,
    pub document: String,
    pub ordinal: u32,
    pub title: Option<String>,
    pub source: Option<String>,
    pub text: String,
    pub metadata: Value,
}

/// Every vector of a collection, for an in-memory index: row `i` is chunk `chunks[i]` of the
/// document whose metadata is `metadata[documents[i]]`; `data` holds the rows one after another.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredVectors {
    pub revision: i64,
    pub dimensions: usize,
    pub chunks: Vec<i64>,
    pub documents: Vec<u32>,
    pub metadata: Vec<Value>,
    pub data: Vec<f32>,
}

/// Equality on document metadata: every key must be present with the same value.
pub type MetadataFilter = Map<String, Value>;

/// True when `metadata` holds every key of `filter` with an equal value (numbers compared as
/// numbers, so `1` matches `1.0`).
pub fn metadata_matches(metadata: &Value, filter: &MetadataFilter) -> bool {
    filter.iter().all(|(k, want)| match metadata.get(k) {
        Some(Value::Number(a)) => match want {
            Value::Number(b) => a.as_f64() == b.as_f64(),
            _ => false,
        },
        Some(v) => v == want,
        None => false,
    })
}

/// Vectors as stored: little-endian `f32`s.
pub fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Appends a stored vector to `out`; false when its length is not `dimensions`.
pub fn read_vector(bytes: &[u8], dimensions: usize, out: &mut Vec<f32>) -> bool {
    if bytes.len() != dimensions * 4 {
        return false;
    }
    out.extend(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    );
    true
}

/// A stored vector's `f32`s (any width).
pub fn vector_from_bytes(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / 4);
    read_vector(bytes, bytes.len() / 4, &mut out);
    out
}

/// Builds [`StoredVectors`] row by row (rows ordered by document), reading each document's
/// metadata once; rows whose vector has another width are skipped.
pub struct VectorsBuilder {
    out: StoredVectors,
    last_doc: Option<String>,
}

impl VectorsBuilder {
    pub fn new(revision: i64, dimensions: usize) -> VectorsBuilder {
        VectorsBuilder {
            out: StoredVectors {
                revision,
                dimensions,
                ..Default::default()
            },
            last_doc: None,
        }
    }

    pub fn push(&mut self, chunk: i64, doc: &str, bytes: &[u8], metadata: impl FnOnce() -> Value) {
        if !read_vector(bytes, self.out.dimensions, &mut self.out.data) {
            return;
        }
        if self.last_doc.as_deref() != Some(doc) {
            self.out.metadata.push(metadata());
            self.last_doc = Some(doc.to_string());
        }
        self.out.chunks.push(chunk);
        self.out.documents.push(self.out.metadata.len() as u32 - 1);
    }

    pub fn finish(self) -> StoredVectors {
        self.out
    }
}

/// The error for a write whose vectors come from another embedder than the collection's.
pub(crate) fn embedder_mismatch(
    collection: &str,
    have: &str,
    have_dims: Option<i64>,
    write: &EmbedderId,
) -> crate::StoreError {
    crate::StoreError::KbEmbedderMismatch(format!(
        "collection `{collection}` holds vectors of {have} ({} dimensions); this document's come from {} ({} dimensions) and would not compare. Use the collection's embedder, or a new collection",
        have_dims.unwrap_or_default(),
        write.name,
        write.dimensions
    ))
}

/// Collections smaller than this search every query term.
pub(crate) const PRUNE_FROM: i64 = 2_000;

/// The query terms worth searching a collection of `chunks` chunks for, given each term's
/// count of chunks holding it: a term that more than one chunk in ten holds adds almost nothing
/// to the ranking and makes the database rank most of the collection, so it is left out — but
/// the rarest term always stays, and small collections search every term.
pub(crate) fn keep_rare_terms(chunks: i64, counted: Vec<(i64, String)>) -> Vec<String> {
    if chunks < PRUNE_FROM || counted.len() < 2 {
        return counted.into_iter().map(|(_, t)| t).collect();
    }
    // The rarest term that some chunk holds.
    let Some(rarest) = counted.iter().map(|(d, _)| *d).filter(|d| *d > 0).min() else {
        return counted.into_iter().map(|(_, t)| t).collect();
    };
    counted
        .into_iter()
        .filter(|(d, _)| *d * 10 <= chunks || *d == rarest)
        .map(|(_, t)| t)
        .collect()
}

/// The FTS5 query of a full-text search: the collection's token in column `kb`, any of the
/// terms in column `terms`.
pub(crate) fn fts5_query(collection_id: i64, terms: &[String]) -> String {
    let any = terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" OR ");
    format!("kb : k{collection_id} AND terms : ({any})")
}

/// The FTS5 `kb` column of a collection's chunks.
pub(crate) fn fts5_collection_token(collection_id: i64) -> String {
    format!("k{collection_id}")
}

fn pg_lexeme(term: &str) -> String {
    format!("'{}'", term.replace('\\', "\\\\").replace('\'', "''"))
}

/// A PostgreSQL `tsquery` (as text) matching any of the terms.
pub(crate) fn tsquery_text(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| pg_lexeme(t))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// A PostgreSQL `tsvector` (as text) of analysed terms with their positions, so ranking counts
/// repetitions without PostgreSQL's own parser (which does not segment Chinese).
pub(crate) fn tsvector_text(terms: &[String]) -> String {
    let mut positions: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, t) in terms.iter().enumerate() {
        let p = positions.entry(t.as_str()).or_default();
        // PostgreSQL keeps up to 256 positions of a lexeme, each at most 16383.
        if p.len() < 256 {
            p.push((i + 1).min(16383));
        }
    }
    positions
        .into_iter()
        .map(|(t, p)| {
            let list = p
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",");
            format!("{}:{list}", pg_lexeme(t))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`VectorsBuilder`] over rows of `(chunk, document, vector bytes, metadata)`.
    fn collect_vectors(
        revision: i64,
        dimensions: usize,
        rows: impl IntoIterator<Item = (i64, String, Vec<u8>, Value)>,
    ) -> StoredVectors {
        let mut b = VectorsBuilder::new(revision, dimensions);
        for (chunk, doc, bytes, metadata) in rows {
            b.push(chunk, &doc, &bytes, || metadata);
        }
        b.finish()
    }
    use serde_json::json;

    #[test]
    fn metadata_filters_match_every_key_and_compare_numbers_as_numbers() {
        let meta = json!({"lang": "en", "tier": 1, "public": true});
        let f = |v: Value| v.as_object().unwrap().clone();
        assert!(metadata_matches(&meta, &f(json!({"lang": "en"}))));
        assert!(metadata_matches(
            &meta,
            &f(json!({"tier": 1.0, "public": true}))
        ));
        assert!(!metadata_matches(&meta, &f(json!({"lang": "zh"}))));
        assert!(!metadata_matches(&meta, &f(json!({"missing": "x"}))));
        assert!(metadata_matches(&meta, &f(json!({}))));
    }

    #[test]
    fn common_terms_are_left_out_of_large_collections_only() {
        let counted = |v: &[(i64, &str)]| v.iter().map(|(d, t)| (*d, t.to_string())).collect();
        let terms = [(5000, "common"), (40, "rare"), (900, "mid")];
        assert_eq!(keep_rare_terms(10_000, counted(&terms)), ["rare", "mid"]);
        assert_eq!(
            keep_rare_terms(1_000, counted(&terms)),
            ["common", "rare", "mid"]
        );
        // Every term common: the rarest stays; a term no chunk holds does not count as rarest.
        assert_eq!(
            keep_rare_terms(10_000, counted(&[(5000, "a"), (3000, "b"), (0, "gone")])),
            ["b", "gone"]
        );
    }

    #[test]
    fn query_texts_quote_their_terms() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            fts5_query(7, &t(&["refund", "a\"b"])),
            "kb : k7 AND terms : (\"refund\" OR \"a\"\"b\")"
        );
        assert_eq!(tsquery_text(&t(&["it's", "退款"])), "'it''s' | '退款'");
        assert_eq!(tsvector_text(&t(&["b", "a", "b"])), "'a':2 'b':1,3");
    }

    #[test]
    fn vectors_round_trip_and_wrong_widths_are_skipped() {
        let rows = vec![
            (
                1,
                "a".to_string(),
                vector_bytes(&[1.0, 2.0]),
                json!({"n": 1}),
            ),
            (
                2,
                "a".to_string(),
                vector_bytes(&[3.0, 4.0]),
                json!({"n": 1}),
            ),
            (3, "b".to_string(), vector_bytes(&[5.0]), json!({"n": 2})),
            (
                4,
                "c".to_string(),
                vector_bytes(&[6.0, 7.0]),
                json!({"n": 3}),
            ),
        ];
        let v = collect_vectors(9, 2, rows);
        assert_eq!(v.chunks, vec![1, 2, 4]);
        assert_eq!(v.documents, vec![0, 0, 1]);
        assert_eq!(v.metadata, vec![json!({"n": 1}), json!({"n": 3})]);
        assert_eq!(v.data, vec![1.0, 2.0, 3.0, 4.0, 6.0, 7.0]);
    }
}

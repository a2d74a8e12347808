//! `oclaw bench kb`: knowledge ingestion and search at size, on a temporary SQLite file (or a
//! PostgreSQL store). Ingests N chunks of generated text (full-text only, then with vectors),
//! measures `kb.search` p50/p99 over them (hybrid, full-text, vector), this process's memory
//! with the collection's vectors loaded, and, when the in-process model is installed, its
//! ingestion rate and the time it takes to embed a question.
//!
//! At 100,000 chunks the real model would take most of an hour to embed the corpus on two
//! cores, so the corpus's vectors come from a feature-hashing stand-in of the same width (384):
//! the search timings and the memory are those of 384-wide vectors; the model's own time per
//! question is measured separately and added in the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use oclaw_knowledge::{DocumentInput, EmbedError, Embedder, KnowledgeBase, Mode, SearchRequest};
use oclaw_store::knowledge::DEFAULT_TENANT;
use oclaw_store::Store;

pub struct KbOptions {
    pub chunks: usize,
    pub queries: usize,
    pub storage_url: Option<String>,
    /// The in-process model's folder, for its ingestion rate and question time.
    pub model_dir: Option<std::path::PathBuf>,
}

/// Feature hashing of the analysed terms into 384 signed buckets: vectors of the model's width
/// at no cost, for timing the search over a corpus too large to embed here.
struct HashEmbedder;

const WIDTH: usize = 384;

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[async_trait]
impl Embedder for HashEmbedder {
    fn name(&self) -> &str {
        "bench/feature-hashing-384"
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; WIDTH];
                for term in oclaw_knowledge::analyze::terms(t) {
                    let h = hash(&term);
                    v[(h % WIDTH as u64) as usize] += if h & (1 << 40) == 0 { 1.0 } else { -1.0 };
                }
                v
            })
            .collect())
    }
}

/// A deterministic generator of words and documents.
struct Corpus {
    state: u64,
    words: Vec<String>,
}

impl Corpus {
    fn new() -> Corpus {
        let mut c = Corpus {
            state: 0x9e37_79b9_7f4a_7c15,
            words: Vec::new(),
        };
        let syllables = [
            "ka", "lo", "mi", "ren", "to", "sha", "vel", "qu", "dor", "ni", "pa", "zu", "el", "xo",
            "bri", "tan",
        ];
        for _ in 0..5000 {
            let n = 2 + c.next() % 3;
            let w: String = (0..n)
                .map(|_| syllables[c.next() as usize % syllables.len()])
                .collect();
            c.words.push(w);
        }
        c
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// Zipf's law over the words of rank 100 and beyond: the ranks before them are a language's
    /// stop words, which the analyser drops, so content words are what a chunk is indexed by.
    fn word(&mut self) -> String {
        let r = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        let (lo, hi) = (100f64, self.words.len() as f64 + 100.0);
        // Inverse of the rank distribution p(i) ∝ 1/i on [lo, hi).
        let i = (lo * (hi / lo).powf(r)) as usize - 100;
        self.words[i.min(self.words.len() - 1)].clone()
    }

    fn sentence(&mut self, n: usize) -> String {
        (0..n).map(|_| self.word()).collect::<Vec<_>>().join(" ") + "."
    }

    /// A Markdown document of `sections` sections of about 600 characters each (one chunk each).
    fn document(&mut self, sections: usize) -> String {
        let mut out = String::new();
        for s in 0..sections {
            out.push_str(&format!("# Section {s} {}\n\n", self.word()));
            for _ in 0..4 {
                let n = 12 + (self.next() % 8) as usize;
                out.push_str(&self.sentence(n));
                out.push(' ');
            }
            out.push_str("\n\n");
        }
        out
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    crate::drain::percentile(sorted, p).as_secs_f64() * 1000.0
}

async fn ingest(
    kb: &KnowledgeBase,
    store: &dyn Store,
    collection: &str,
    corpus: &mut Corpus,
    chunks: usize,
    first_doc: usize,
) -> Result<(usize, usize, Duration), String> {
    let started = Instant::now();
    let (mut done, mut docs) = (0, 0);
    while done < chunks {
        let sections = 10.min(chunks - done);
        let text = corpus.document(sections);
        let report = kb
            .ingest(
                store,
                DocumentInput {
                    tenant: DEFAULT_TENANT.into(),
                    collection: collection.into(),
                    id: Some(format!("doc-{}", first_doc + docs)),
                    bytes: text.into_bytes(),
                    format: Some(oclaw_knowledge::Format::Markdown),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        done += report.chunks;
        docs += 1;
    }
    Ok((done, docs, started.elapsed()))
}

async fn timed_searches(
    kb: &KnowledgeBase,
    store: &dyn Store,
    collection: &str,
    corpus: &mut Corpus,
    queries: usize,
    mode: Mode,
) -> Result<Vec<Duration>, String> {
    let mut lat = Vec::with_capacity(queries);
    for _ in 0..queries {
        let q = (0..4).map(|_| corpus.word()).collect::<Vec<_>>().join(" ");
        let mut req = SearchRequest::new(collection, &q, 5);
        req.mode = mode;
        let t = Instant::now();
        kb.search(store, &req).await.map_err(|e| e.to_string())?;
        lat.push(t.elapsed());
    }
    lat.sort();
    Ok(lat)
}

pub async fn kb(o: KbOptions) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = o
        .storage_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = oclaw_store::open_store(&url, Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let (text_kb, vector_kb) = (
        format!("bench-text-{}", std::process::id()),
        format!("bench-vec-{}", std::process::id()),
    );
    let mut lines = Vec::new();
    let result = async {
        let mut corpus = Corpus::new();
        // Full-text only.
        store.kb_create(DEFAULT_TENANT, &text_kb).await.map_err(|e| e.to_string())?;
        let plain = KnowledgeBase::text_only();
        let (n, docs, took) =
            ingest(&plain, store.as_ref(), &text_kb, &mut corpus, o.chunks, 0).await?;
        lines.push(format!(
            "ingestion, full-text only: {n} chunks ({docs} documents) in {:.1}s = {:.0} chunks/s",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        ));
        let lat = timed_searches(&plain, store.as_ref(), &text_kb, &mut corpus, o.queries, Mode::Text).await?;
        lines.push(format!(
            "kb.search full-text over {n} chunks, {} queries: p50 {:.2} ms, p99 {:.2} ms",
            o.queries,
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        ));
        store.kb_drop(DEFAULT_TENANT, &text_kb).await.map_err(|e| e.to_string())?;

        // With 384-wide vectors.
        store.kb_create(DEFAULT_TENANT, &vector_kb).await.map_err(|e| e.to_string())?;
        let mut hashed = KnowledgeBase::text_only();
        hashed.embedder = Some(Arc::new(HashEmbedder));
        let mut corpus = Corpus::new();
        let (n, _, took) =
            ingest(&hashed, store.as_ref(), &vector_kb, &mut corpus, o.chunks, 0).await?;
        lines.push(format!(
            "ingestion with 384-wide vectors (stand-in embedder, no model time): {n} chunks in {:.1}s = {:.0} chunks/s",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        ));
        let rss_before = crate::waits::rss_bytes();
        let load = Instant::now();
        let mut first = SearchRequest::new(&vector_kb, "warm up", 5);
        first.mode = Mode::Vector;
        hashed.search(store.as_ref(), &first).await.map_err(|e| e.to_string())?;
        let load = load.elapsed();
        let rss_after = crate::waits::rss_bytes();
        lines.push(format!(
            "vectors of {n} chunks loaded into memory in {:.2}s; this process: RSS {:.1} MiB before, {:.1} MiB loaded (+{:.1} MiB, {} vectors held)",
            load.as_secs_f64(),
            rss_before / 1048576.0,
            rss_after / 1048576.0,
            (rss_after - rss_before) / 1048576.0,
            hashed.index.held()
        ));
        for (mode, name) in [(Mode::Vector, "vector"), (Mode::Hybrid, "hybrid")] {
            let lat = timed_searches(&hashed, store.as_ref(), &vector_kb, &mut corpus, o.queries, mode).await?;
            lines.push(format!(
                "kb.search {name} over {n} chunks, {} queries (question already embedded): p50 {:.2} ms, p99 {:.2} ms",
                o.queries,
                pct(&lat, 0.5),
                pct(&lat, 0.99)
            ));
        }
        store.kb_drop(DEFAULT_TENANT, &vector_kb).await.map_err(|e| e.to_string())?;
        drop(hashed);

        // The real model: ingestion rate and the time to embed a question.
        match &o.model_dir {
            Some(dir) if dir.join("model.safetensors").is_file() => {
                let model = Arc::new(oclaw_knowledge::LocalEmbedder::new(dir.clone()));
                model.ready().await.map_err(|e| e.to_string())?;
                let real_kb = format!("bench-model-{}", std::process::id());
                store.kb_create(DEFAULT_TENANT, &real_kb).await.map_err(|e| e.to_string())?;
                let mut real = KnowledgeBase::text_only();
                real.embedder = Some(model.clone());
                let sample = o.chunks.min(300);
                let (n, _, took) =
                    ingest(&real, store.as_ref(), &real_kb, &mut corpus, sample, 0).await?;
                lines.push(format!(
                    "ingestion with the in-process model ({}): {n} chunks in {:.1}s = {:.1} chunks/s",
                    model.name(),
                    took.as_secs_f64(),
                    n as f64 / took.as_secs_f64()
                ));
                let mut lat = Vec::new();
                for _ in 0..50 {
                    let q = (0..8).map(|_| corpus.word()).collect::<Vec<_>>().join(" ");
                    let t = Instant::now();
                    model.embed(&[q]).await.map_err(|e| e.to_string())?;
                    lat.push(t.elapsed());
                }
                lat.sort();
                lines.push(format!(
                    "embedding a question with the in-process model, 50 questions: p50 {:.2} ms, p99 {:.2} ms (add to the hybrid and vector figures)",
                    pct(&lat, 0.5),
                    pct(&lat, 0.99)
                ));
                store.kb_drop(DEFAULT_TENANT, &real_kb).await.map_err(|e| e.to_string())?;
            }
            _ => lines.push(
                "in-process model: not installed (scripts/install-embedder.sh, then --model-dir): its figures are left out".into(),
            ),
        }
        Ok::<(), String>(())
    }
    .await;
    if result.is_err() {
        let _ = store.kb_drop(DEFAULT_TENANT, &text_kb).await;
        let _ = store.kb_drop(DEFAULT_TENANT, &vector_kb).await;
    }
    result?;
    Ok(format!("kb ({}):\n{}", store.backend(), lines.join("\n")))
}

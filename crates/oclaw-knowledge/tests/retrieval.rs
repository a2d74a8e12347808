//! Knowledge on both stores (SQLite, and PostgreSQL from OCLAW_TEST_POSTGRES_URL): the example
//! collection ingested with the real in-process embedding model, the shipped evaluation set
//! scored on each leg, unchanged documents not embedded again, bad documents refused with the
//! collection left as it was.
#![allow(clippy::unwrap_used)]

mod embedder;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use oclaw_core::ErrorCode;
use oclaw_knowledge::eval::{self, EvalSet};
use oclaw_knowledge::{
    DocumentInput, EmbedError, Embedder, KnowledgeBase, LocalEmbedder, Mode, SearchRequest,
};
use oclaw_store::knowledge::{PutOutcome, DEFAULT_TENANT};
use oclaw_store::Store;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/knowledge")
}

/// Counts the texts it embeds.
struct Counting {
    inner: Arc<dyn Embedder>,
    texts: AtomicUsize,
}

#[async_trait]
impl Embedder for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.texts.fetch_add(texts.len(), Ordering::SeqCst);
        self.inner.embed(texts).await
    }
}

async fn stores(dir: &std::path::Path) -> Vec<(&'static str, Arc<dyn Store>)> {
    let sqlite = format!("sqlite://{}", dir.join("kb.db").display());
    let mut out = vec![(
        "sqlite",
        oclaw_store::open_store(&sqlite, Default::default())
            .await
            .unwrap(),
    )];
    if let Some(url) = oclaw_store::testing::fresh_postgres_url().await {
        out.push((
            "postgres",
            oclaw_store::open_store(&url, Default::default())
                .await
                .unwrap(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_collection_meets_its_retrieval_targets_on_both_stores() {
    let Some(model) = embedder::model_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let set = EvalSet::read(&examples().join("eval.yaml")).unwrap();
    for (backend, store) in stores(dir.path()).await {
        let counting = Arc::new(Counting {
            inner: Arc::new(LocalEmbedder::new(model.clone())),
            texts: AtomicUsize::new(0),
        });
        let mut kb = KnowledgeBase::text_only();
        kb.embedder = Some(counting.clone());
        let scores = eval::run(&kb, store.as_ref(), &set, None).await.unwrap();
        let get = |m: &str| scores.iter().find(|s| s.mode == m).unwrap();
        let (text, vector, hybrid) = (get("full-text"), get("vector"), get("hybrid"));
        eprintln!("{backend}: {scores:#?}");
        assert_eq!(hybrid.questions, set.questions.len());
        assert!(
            hybrid.recall_at_k >= 0.9,
            "{backend} hybrid recall@5 {}",
            hybrid.recall_at_k
        );
        assert!(hybrid.mrr >= 0.75, "{backend} hybrid MRR {}", hybrid.mrr);
        // The legs differ (both contribute) and full-text carries the Chinese questions.
        assert!(
            text.recall_at_k > 0.6 && vector.recall_at_k > 0.4,
            "{text:?} {vector:?}"
        );
        let zh = eval::score(&kb, store.as_ref(), "eval", &set, Mode::Hybrid, Some("zh"))
            .await
            .unwrap();
        assert!(
            zh.recall_at_k >= 0.9,
            "{backend} Chinese hybrid recall {}",
            zh.recall_at_k
        );

        // Adding the folder again embeds nothing: every document is unchanged.
        let embedded = counting.texts.load(Ordering::SeqCst);
        let again = eval::ingest_folder(&kb, store.as_ref(), "eval", &examples().join("support"))
            .await
            .unwrap();
        assert!(again.iter().all(|r| r.outcome == PutOutcome::Unchanged));
        assert_eq!(counting.texts.load(Ordering::SeqCst), embedded);

        // A changed document is embedded again, and only it.
        let report = kb
            .ingest(
                store.as_ref(),
                DocumentInput {
                    tenant: DEFAULT_TENANT.into(),
                    collection: "eval".into(),
                    id: Some("contact.md".into()),
                    source: Some("contact.md".into()),
                    bytes: b"# Contact\n\nWrite to help@example.com at any time.".to_vec(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(report.outcome, PutOutcome::Replaced);
        assert_eq!(
            counting.texts.load(Ordering::SeqCst),
            embedded + report.chunks
        );

        // Citations: hits carry the document, its title and its source.
        let hit = &kb
            .search(
                store.as_ref(),
                &SearchRequest::new("eval", "money back after a return", 3),
            )
            .await
            .unwrap()
            .hits[0];
        assert_eq!(hit.document, "refunds.md");
        assert_eq!(hit.title.as_deref(), Some("Refunds"));
        assert_eq!(hit.source.as_deref(), Some("refunds.md"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_embedder_search_is_full_text_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    for (backend, store) in stores(dir.path()).await {
        let kb = KnowledgeBase::text_only();
        store.kb_create(DEFAULT_TENANT, "support").await.unwrap();
        eval::ingest_folder(&kb, store.as_ref(), "support", &examples().join("support"))
            .await
            .unwrap();
        let result = kb
            .search(
                store.as_ref(),
                &SearchRequest::new("support", "退款多久到账？", 3),
            )
            .await
            .unwrap();
        assert_eq!(result.mode, "full-text", "{backend}");
        assert!(result.note.as_deref().unwrap().contains("no embedder"));
        assert_eq!(result.hits[0].document, "refunds-zh.md", "{backend}");
        // Metadata filters (none of these documents has the key).
        let mut filtered = SearchRequest::new("support", "refund", 3);
        filtered.filter.insert("lang".into(), "fr".into());
        assert!(kb
            .search(store.as_ref(), &filtered)
            .await
            .unwrap()
            .hits
            .is_empty());
        let mut vector = SearchRequest::new("support", "refund", 3);
        vector.mode = Mode::Vector;
        assert_eq!(
            kb.search(store.as_ref(), &vector).await.unwrap_err().code,
            ErrorCode::KbEmbedderMismatch
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_documents_are_refused_with_a_code_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (backend, store) in stores(dir.path()).await {
        let kb = KnowledgeBase::text_only();
        store.kb_create(DEFAULT_TENANT, "docs").await.unwrap();
        let add = |id: &str, bytes: &[u8], collection: &str| DocumentInput {
            tenant: DEFAULT_TENANT.into(),
            collection: collection.into(),
            id: Some(id.into()),
            name: Some(id.into()),
            bytes: bytes.to_vec(),
            ..Default::default()
        };
        kb.ingest(
            store.as_ref(),
            add("good.md", b"# Good\n\nParcels ship daily.", "docs"),
        )
        .await
        .unwrap();
        let before = store.kb_get(DEFAULT_TENANT, "docs").await.unwrap().unwrap();
        for (id, bytes) in [
            ("bad.pdf", &b"%PDF-1.4 binary"[..]),
            ("bad.md", &b"caf\xe9 au lait"[..]),
            ("bin.txt", &b"\x00\x01\x02"[..]),
            ("empty.html", &b"<html><script>x()</script></html>"[..]),
        ] {
            let err = kb
                .ingest(store.as_ref(), add(id, bytes, "docs"))
                .await
                .unwrap_err();
            assert_eq!(err.code, ErrorCode::KbBadDocument, "{backend} {id}: {err}");
            assert!(err.message.contains(id), "{err}");
        }
        // The same id of a good document, replaced by a bad one, keeps the good one.
        let err = kb
            .ingest(store.as_ref(), add("good.md", b"\xff\xfe", "docs"))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::KbBadDocument);
        let after = store.kb_get(DEFAULT_TENANT, "docs").await.unwrap().unwrap();
        assert_eq!(after, before, "{backend}");
        let err = kb
            .ingest(store.as_ref(), add("x.md", b"text", "missing"))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::KbNotFound);
        let err = kb
            .ingest(store.as_ref(), add("x.md", b"text", "bad name!"))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidField);
    }
}

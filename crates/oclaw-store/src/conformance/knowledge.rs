//! Knowledge collections: documents and chunks, the full-text leg (with CJK bigram terms and
//! metadata filters), stored vectors and the embedder check.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};

use super::DynStore;
use crate::knowledge::{DocumentWrite, EmbedderId, NewChunk, PutOutcome, DEFAULT_TENANT};
use crate::StoreError;

fn terms(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn doc(collection: &str, id: &str, hash: &str, chunks: &[(&str, &str)]) -> DocumentWrite {
    DocumentWrite {
        tenant: DEFAULT_TENANT.into(),
        collection: collection.into(),
        id: id.into(),
        title: Some(format!("Title of {id}")),
        source: Some(format!("file:{id}.md")),
        metadata: json!({}),
        hash: hash.into(),
        chunks: chunks
            .iter()
            .map(|(text, t)| NewChunk {
                text: text.to_string(),
                terms: terms(t),
                vector: None,
            })
            .collect(),
        embedder: None,
    }
}

async fn found(s: &DynStore, collection: &str, query: &str, filter: Value) -> Vec<String> {
    let hits = s
        .kb_text_search(
            DEFAULT_TENANT,
            collection,
            &terms(query),
            filter.as_object().unwrap(),
            10,
        )
        .await
        .unwrap();
    let ids: Vec<i64> = hits.iter().map(|h| h.chunk).collect();
    let mut records = s.kb_chunks(&ids).await.unwrap();
    // Back in rank order.
    records.sort_by_key(|r| ids.iter().position(|i| *i == r.chunk));
    records.into_iter().map(|r| r.text).collect()
}

pub async fn kb_collections_are_created_listed_and_dropped_per_tenant(s: DynStore) {
    let info = s.kb_create(DEFAULT_TENANT, "faq").await.unwrap();
    assert_eq!(
        (info.name.as_str(), info.documents, info.chunks),
        ("faq", 0, 0)
    );
    assert!(matches!(
        s.kb_create(DEFAULT_TENANT, "faq").await,
        Err(StoreError::Duplicate(_))
    ));
    s.kb_create("acme", "faq").await.unwrap();
    s.kb_create(DEFAULT_TENANT, "docs").await.unwrap();
    let names: Vec<String> = s
        .kb_list(DEFAULT_TENANT)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["docs", "faq"]);
    s.kb_put_document(doc(
        "faq",
        "a",
        "h1",
        &[("refunds take five days", "refund take five day")],
    ))
    .await
    .unwrap();
    assert!(s.kb_drop(DEFAULT_TENANT, "faq").await.unwrap());
    assert!(!s.kb_drop(DEFAULT_TENANT, "faq").await.unwrap());
    assert!(s.kb_get(DEFAULT_TENANT, "faq").await.unwrap().is_none());
    // The other tenant's collection of the same name is untouched.
    assert!(s.kb_get("acme", "faq").await.unwrap().is_some());
    // A collection made again under the dropped name starts empty.
    s.kb_create(DEFAULT_TENANT, "faq").await.unwrap();
    assert!(found(&s, "faq", "refund", json!({})).await.is_empty());
    assert!(matches!(
        s.kb_put_document(doc("nope", "a", "h", &[])).await,
        Err(StoreError::KbNotFound(_))
    ));
}

pub async fn kb_documents_are_added_replaced_when_changed_and_removed(s: DynStore) {
    s.kb_create(DEFAULT_TENANT, "kb").await.unwrap();
    let first = doc(
        "kb",
        "shipping",
        "h1",
        &[
            ("Parcels ship in two days.", "parcel ship two day"),
            ("Express costs extra.", "express cost extra"),
        ],
    );
    assert_eq!(
        s.kb_put_document(first.clone()).await.unwrap(),
        PutOutcome::Created
    );
    let rev = s.kb_get(DEFAULT_TENANT, "kb").await.unwrap().unwrap();
    assert_eq!((rev.documents, rev.chunks), (1, 2));
    assert_eq!(
        s.kb_document_hash(DEFAULT_TENANT, "kb", "shipping")
            .await
            .unwrap()
            .as_deref(),
        Some("h1")
    );
    // Same hash: the title changes, the chunks and the revision do not.
    let mut retitled = first.clone();
    retitled.title = Some("Shipping".into());
    retitled.chunks.clear();
    assert_eq!(
        s.kb_put_document(retitled).await.unwrap(),
        PutOutcome::Unchanged
    );
    let same = s.kb_get(DEFAULT_TENANT, "kb").await.unwrap().unwrap();
    assert_eq!((same.chunks, same.revision), (2, rev.revision));
    let docs = s
        .kb_documents(DEFAULT_TENANT, "kb", None, 10)
        .await
        .unwrap();
    assert_eq!(docs[0].title.as_deref(), Some("Shipping"));
    assert_eq!(docs[0].chunks, 2);
    // New content: the old chunks go, the new one is found.
    let changed = doc(
        "kb",
        "shipping",
        "h2",
        &[("Parcels ship overnight.", "parcel ship overnight")],
    );
    assert_eq!(
        s.kb_put_document(changed).await.unwrap(),
        PutOutcome::Replaced
    );
    assert_eq!(
        found(&s, "kb", "parcel", json!({})).await,
        ["Parcels ship overnight."]
    );
    assert!(found(&s, "kb", "express", json!({})).await.is_empty());
    let after = s.kb_get(DEFAULT_TENANT, "kb").await.unwrap().unwrap();
    assert_eq!(after.chunks, 1);
    assert!(after.revision > rev.revision);
    // Removal.
    assert!(s
        .kb_remove_document(DEFAULT_TENANT, "kb", "shipping")
        .await
        .unwrap());
    assert!(!s
        .kb_remove_document(DEFAULT_TENANT, "kb", "shipping")
        .await
        .unwrap());
    assert!(found(&s, "kb", "parcel", json!({})).await.is_empty());
    let empty = s.kb_get(DEFAULT_TENANT, "kb").await.unwrap().unwrap();
    assert_eq!((empty.documents, empty.chunks), (0, 0));
    // Pages by id.
    for id in ["c", "a", "b"] {
        s.kb_put_document(doc("kb", id, id, &[("x", "x")]))
            .await
            .unwrap();
    }
    let page: Vec<String> = s
        .kb_documents(DEFAULT_TENANT, "kb", Some("a"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(page, ["b", "c"]);
}

pub async fn kb_text_search_ranks_filters_and_matches_cjk_terms(s: DynStore) {
    s.kb_create(DEFAULT_TENANT, "kb").await.unwrap();
    s.kb_create(DEFAULT_TENANT, "other").await.unwrap();
    let mut en = doc(
        "kb",
        "refunds",
        "h",
        &[
            (
                "Refunds: a refund reaches your card in five days.",
                "refund refund reach card five day",
            ),
            ("Opening hours are nine to five.", "open hour nine five"),
        ],
    );
    en.metadata = json!({"lang": "en", "tier": 1});
    s.kb_put_document(en).await.unwrap();
    let mut zh = doc(
        "kb",
        "refunds-zh",
        "h",
        &[(
            "退款会在五天内到账。",
            "退款 款会 会在 在五 五天 天内 内到 到账",
        )],
    );
    zh.metadata = json!({"lang": "zh", "tier": 2});
    s.kb_put_document(zh).await.unwrap();
    // Another collection's chunk with the same terms is never found here.
    s.kb_put_document(doc(
        "other",
        "x",
        "h",
        &[("refund elsewhere", "refund elsewhere")],
    ))
    .await
    .unwrap();

    let hits = found(&s, "kb", "refund card", json!({})).await;
    assert_eq!(hits, ["Refunds: a refund reaches your card in five days."]);
    // Any term matches; the chunk with more of them ranks first.
    let hits = found(&s, "kb", "five day", json!({})).await;
    assert_eq!(hits[0], "Refunds: a refund reaches your card in five days.");
    assert_eq!(hits.len(), 2);
    // Chinese bigrams.
    assert_eq!(
        found(&s, "kb", "退款 到账", json!({})).await,
        ["退款会在五天内到账。"]
    );
    // Metadata filters.
    assert_eq!(
        found(&s, "kb", "five 五天", json!({"lang": "zh"})).await,
        ["退款会在五天内到账。"]
    );
    assert_eq!(
        found(&s, "kb", "五天 refund", json!({"tier": 1}))
            .await
            .len(),
        1
    );
    assert!(found(&s, "kb", "refund", json!({"lang": "fr"}))
        .await
        .is_empty());
    // Terms with quotes and operators are terms, not query syntax.
    assert!(found(&s, "kb", "\"refund OR ( NEAR", json!({})).await.len() <= 1);
    assert!(found(&s, "kb", "nothing-matches", json!({}))
        .await
        .is_empty());
    let missing = s
        .kb_text_search(DEFAULT_TENANT, "nope", &terms("x"), &Default::default(), 5)
        .await;
    assert!(matches!(missing, Err(StoreError::KbNotFound(_))));
}

/// In a large collection a term most chunks hold is left out of a query that has a rarer one
/// (it would make the database rank most of the collection); counts follow removals.
pub async fn kb_common_terms_are_left_out_of_queries_on_large_collections(s: DynStore) {
    s.kb_create(DEFAULT_TENANT, "big").await.unwrap();
    let filler: Vec<(String, String)> = (0..2100)
        .map(|i| (format!("common filler {i}"), format!("common filler{i}")))
        .collect();
    let chunks: Vec<(&str, &str)> = filler
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    s.kb_put_document(doc("big", "filler", "h", &chunks))
        .await
        .unwrap();
    s.kb_put_document(doc(
        "big",
        "rare",
        "h",
        &[("common rare thing", "common rare")],
    ))
    .await
    .unwrap();
    // `common` alone is searched; with `rare` beside it only `rare` is.
    assert_eq!(found(&s, "big", "common", json!({})).await.len(), 10);
    assert_eq!(
        found(&s, "big", "common rare", json!({})).await,
        ["common rare thing"]
    );
    // Once no chunk holds `rare`, `common` is searched again.
    assert!(s
        .kb_remove_document(DEFAULT_TENANT, "big", "rare")
        .await
        .unwrap());
    assert_eq!(found(&s, "big", "common rare", json!({})).await.len(), 10);
    // Replacing the filler with chunks without `common` takes them out of its count.
    let fresh: Vec<(String, String)> = (0..2100)
        .map(|i| (format!("other {i}"), format!("other{i}")))
        .collect();
    let chunks: Vec<(&str, &str)> = fresh
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    s.kb_put_document(doc("big", "filler", "h2", &chunks))
        .await
        .unwrap();
    s.kb_put_document(doc("big", "c", "h", &[("common here", "common")]))
        .await
        .unwrap();
    assert_eq!(found(&s, "big", "common other7", json!({})).await.len(), 2);
}

pub async fn kb_vectors_come_back_with_metadata_and_other_embedders_are_refused(s: DynStore) {
    s.kb_create(DEFAULT_TENANT, "kb").await.unwrap();
    let empty = s.kb_vectors(DEFAULT_TENANT, "kb").await.unwrap();
    assert!(empty.chunks.is_empty());
    let model = EmbedderId {
        name: "local/test".into(),
        dimensions: 3,
    };
    let mut a = doc("kb", "a", "h", &[("one", "one"), ("two", "two")]);
    a.metadata = json!({"lang": "en"});
    a.embedder = Some(model.clone());
    a.chunks[0].vector = Some(vec![1.0, 0.0, 0.0]);
    a.chunks[1].vector = Some(vec![0.0, 1.0, 0.0]);
    s.kb_put_document(a).await.unwrap();
    let info = s.kb_get(DEFAULT_TENANT, "kb").await.unwrap().unwrap();
    assert_eq!(
        (info.embedder.as_deref(), info.dimensions),
        (Some("local/test"), Some(3))
    );
    let v = s.kb_vectors(DEFAULT_TENANT, "kb").await.unwrap();
    assert_eq!(v.dimensions, 3);
    assert_eq!(v.revision, info.revision);
    assert_eq!(v.data, vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    assert_eq!(v.metadata, vec![json!({"lang": "en"})]);
    assert_eq!(v.documents, vec![0, 0]);
    let mut exact = s.kb_chunk_vectors(&v.chunks).await.unwrap();
    exact.sort_by_key(|(id, _)| *id);
    assert_eq!(
        exact.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]]
    );
    let records = s.kb_chunks(&v.chunks).await.unwrap();
    assert_eq!(records.len(), 2);
    assert!(records
        .iter()
        .all(|r| r.document == "a" && r.title.as_deref() == Some("Title of a")));

    // Another model's vectors are refused and nothing of the write is kept.
    let mut b = doc("kb", "b", "h", &[("three", "three")]);
    b.embedder = Some(EmbedderId {
        name: "openai/other".into(),
        dimensions: 3,
    });
    b.chunks[0].vector = Some(vec![0.0, 0.0, 1.0]);
    assert!(matches!(
        s.kb_put_document(b).await,
        Err(StoreError::KbEmbedderMismatch(_))
    ));
    let after = s.kb_get(DEFAULT_TENANT, "kb").await.unwrap().unwrap();
    assert_eq!(
        (after.documents, after.chunks, after.revision),
        (1, 2, info.revision)
    );
    assert!(found(&s, "kb", "three", json!({})).await.is_empty());
}

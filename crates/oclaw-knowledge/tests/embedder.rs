//! The real in-process embedding model (all-MiniLM-L6-v2, installed by `.ci/install-tools`
//! into target/test-models): it loads, and it places paraphrases nearer than unrelated text.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use oclaw_knowledge::bert::BertEncoder;
use oclaw_knowledge::index::dot;

/// The model folder (`OCLAW_TEST_EMBEDDER`), or `None` outside CI when it is not installed.
pub fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var("OCLAW_TEST_EMBEDDER")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/test-models/all-MiniLM-L6-v2")
        });
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    assert!(
        !oclaw_core::ci::under_ci(),
        "the embedding model is required under CI=true: run .ci/install-tools (missing {})",
        dir.display()
    );
    eprintln!("skipped: no embedding model in {}", dir.display());
    None
}

#[test]
fn the_real_model_ranks_paraphrases_above_unrelated_text() {
    let Some(dir) = model_dir() else { return };
    let model = BertEncoder::load(&dir).unwrap();
    assert_eq!(model.dimensions(), 384);
    let v = |t: &str| model.embed(t);
    let question = v("How do I get my money back for an order?");
    let paraphrase = v("Refunds: we return the payment to your card within five days.");
    let unrelated = v("The museum opens a new dinosaur exhibition in spring.");
    let near = dot(&question, &paraphrase);
    let far = dot(&question, &unrelated);
    assert!(near > far + 0.2, "paraphrase {near} vs unrelated {far}");
    // Unit length, deterministic, and the same text gives the same vector.
    assert!((dot(&question, &question) - 1.0).abs() < 1e-4);
    assert_eq!(question, v("How do I get my money back for an order?"));
    // A known pair from the model's own card scores high; word order matters a little.
    let a = v("A man is eating food.");
    let b = v("A man is eating a piece of bread.");
    let c = v("A man is riding a horse.");
    assert!(
        dot(&a, &b) > dot(&a, &c),
        "{} vs {}",
        dot(&a, &b),
        dot(&a, &c)
    );
    assert!(dot(&a, &b) > 0.6);
}

#[test]
fn the_tokenizer_uses_the_models_vocabulary_and_length() {
    let Some(dir) = model_dir() else { return };
    let model = BertEncoder::load(&dir).unwrap();
    // [CLS] hello , world ! [SEP] with bert-base-uncased ids.
    assert_eq!(
        model.tokenize("Hello, world!"),
        [101, 7592, 1010, 2088, 999, 102]
    );
    // Word pieces: "embeddings" → em ##bed ##ding ##s.
    assert_eq!(
        model.tokenize("embeddings"),
        [101, 7861, 8270, 4667, 2015, 102]
    );
    // Cut at 256 tokens.
    assert_eq!(model.tokenize(&"word ".repeat(1000)).len(), 256);
}

#[test]
fn a_folder_without_the_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{\"hidden_size\": 8}").unwrap();
    let err = BertEncoder::load(dir.path()).err().unwrap();
    assert!(err.contains("config.json"), "{err}");
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 16}"#,
    )
    .unwrap();
    let err = BertEncoder::load(dir.path()).err().unwrap();
    assert!(err.contains("vocab.txt"), "{err}");
    std::fs::write(dir.path().join("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n").unwrap();
    std::fs::write(dir.path().join("model.safetensors"), b"not a model").unwrap();
    let err = BertEncoder::load(dir.path()).err().unwrap();
    assert!(err.contains("model.safetensors"), "{err}");
}

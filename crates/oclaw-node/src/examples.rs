//! The example bots, compiled in so `oclaw serve` shows working bots from any folder.

/// `(file name, YAML)` of each example bot in `examples/bots/`.
pub const EXAMPLE_BOTS: &[(&str, &str)] = &[
    (
        "examples/bots/hello.yaml",
        include_str!("../../../examples/bots/hello.yaml"),
    ),
    (
        "examples/bots/catalog-collector.yaml",
        include_str!("../../../examples/bots/catalog-collector.yaml"),
    ),
    (
        "examples/bots/health-monitor.yaml",
        include_str!("../../../examples/bots/health-monitor.yaml"),
    ),
    (
        "examples/bots/alert-handler.yaml",
        include_str!("../../../examples/bots/alert-handler.yaml"),
    ),
    (
        "examples/bots/faq-bot.yaml",
        include_str!("../../../examples/bots/faq-bot.yaml"),
    ),
    (
        "examples/bots/order-flow.yaml",
        include_str!("../../../examples/bots/order-flow.yaml"),
    ),
];

/// The examples that call a model: loaded when `llm.providers` names one (and `llm.default`
/// says which model), listed in the banner otherwise.
pub const MODEL_EXAMPLE_BOTS: &[(&str, &str)] = &[
    (
        "examples/models/support-assistant.yaml",
        include_str!("../../../examples/models/support-assistant.yaml"),
    ),
    (
        "examples/models/record-cleaner.yaml",
        include_str!("../../../examples/models/record-cleaner.yaml"),
    ),
    (
        "examples/models/alert-triage.yaml",
        include_str!("../../../examples/models/alert-triage.yaml"),
    ),
];

/// The example knowledge collection (`support`): `(id, Markdown)` of each document in
/// `examples/knowledge/support/`, English and Chinese.
pub const SUPPORT_KNOWLEDGE: &[(&str, &str)] = &[
    (
        "account.md",
        include_str!("../../../examples/knowledge/support/account.md"),
    ),
    (
        "account-zh.md",
        include_str!("../../../examples/knowledge/support/account-zh.md"),
    ),
    (
        "contact.md",
        include_str!("../../../examples/knowledge/support/contact.md"),
    ),
    (
        "invoice-zh.md",
        include_str!("../../../examples/knowledge/support/invoice-zh.md"),
    ),
    (
        "membership-zh.md",
        include_str!("../../../examples/knowledge/support/membership-zh.md"),
    ),
    (
        "payment.md",
        include_str!("../../../examples/knowledge/support/payment.md"),
    ),
    (
        "payment-zh.md",
        include_str!("../../../examples/knowledge/support/payment-zh.md"),
    ),
    (
        "privacy.md",
        include_str!("../../../examples/knowledge/support/privacy.md"),
    ),
    (
        "refunds.md",
        include_str!("../../../examples/knowledge/support/refunds.md"),
    ),
    (
        "refunds-zh.md",
        include_str!("../../../examples/knowledge/support/refunds-zh.md"),
    ),
    (
        "returns.md",
        include_str!("../../../examples/knowledge/support/returns.md"),
    ),
    (
        "returns-zh.md",
        include_str!("../../../examples/knowledge/support/returns-zh.md"),
    ),
    (
        "shipping.md",
        include_str!("../../../examples/knowledge/support/shipping.md"),
    ),
    (
        "shipping-zh.md",
        include_str!("../../../examples/knowledge/support/shipping-zh.md"),
    ),
    (
        "warranty.md",
        include_str!("../../../examples/knowledge/support/warranty.md"),
    ),
];

/// The collection the example bots answer from.
pub const SUPPORT_COLLECTION: &str = "support";

/// Fills the example collection when the node runs the examples: makes `support` if missing and
/// queues an ingestion task per document (keyed by its content, so a restart queues nothing new
/// and an unchanged document costs nothing).
pub async fn seed_knowledge(store: &dyn oclaw_store::Store) {
    use oclaw_store::knowledge::DEFAULT_TENANT;
    let exists = store.kb_revision(DEFAULT_TENANT, SUPPORT_COLLECTION).await;
    if matches!(exists, Ok(None)) {
        if let Err(e) = store.kb_create(DEFAULT_TENANT, SUPPORT_COLLECTION).await {
            tracing::warn!(
                component = "knowledge",
                "cannot create the example collection: {e}"
            );
            return;
        }
    }
    let mut tasks = Vec::new();
    for (id, text) in SUPPORT_KNOWLEDGE {
        let digest: u64 = text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let mut task = oclaw_core::NewTask::new(
            oclaw_knowledge::INGEST_BOT,
            "default",
            serde_json::json!({
                "kb": SUPPORT_COLLECTION,
                "id": id,
                "source": format!("examples/knowledge/support/{id}"),
                "text": text,
                "format": "markdown",
            }),
        );
        task.idempotency_key = Some(format!(
            "oclaw.examples:{SUPPORT_COLLECTION}:{id}:{digest:016x}"
        ));
        tasks.push(task);
    }
    if let Err(e) = store.enqueue_batch(tasks).await {
        tracing::warn!(
            component = "knowledge",
            "cannot queue the example documents: {e}"
        );
    }
}

/// The faq-bot example's knowledge file, carried by the compiled-in copy of the bot for when
/// the node runs outside the repository.
pub const FAQ_KNOWLEDGE: &str = include_str!("../../../examples/faq/knowledge.yaml");

/// Where the faq-bot example reads its knowledge from, relative to its bot file.
const FAQ_FILE: &str = "../faq/knowledge.yaml";

/// The YAML of an example as the node loads it. In the repository (where `name` is a file) the
/// bot reads `examples/faq/knowledge.yaml` itself, so edits to it apply at once; elsewhere the
/// knowledge compiled in is written inline.
pub fn example_yaml(name: &str, yaml: &str) -> String {
    let reads_faq = name.ends_with("faq-bot.yaml") || name.ends_with("support-assistant.yaml");
    if !reads_faq || knowledge_on_disk(name).is_some() {
        return yaml.to_string();
    }
    let entries = serde_saphyr::from_str::<serde_json::Value>(FAQ_KNOWLEDGE)
        .map(|v| v["entries"].to_string())
        .unwrap_or_else(|_| "[]".into());
    yaml.replace(&format!("file: {FAQ_FILE}"), &format!("entries: {entries}"))
        .replace(
            &format!("{{file: {FAQ_FILE}}}"),
            &format!("{{entries: {entries}}}"),
        )
}

/// The faq-bot example's knowledge file, when the node runs where the examples are.
pub fn knowledge_on_disk(faq_bot: &str) -> Option<std::path::PathBuf> {
    let bot = std::path::Path::new(faq_bot);
    // FAQ_FILE from the bot's folder, written without the `..`.
    let file = bot.parent()?.parent()?.join("faq/knowledge.yaml");
    (bot.is_file() && file.is_file()).then_some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_faq_bot_names_the_knowledge_file_it_replaces() {
        let (name, yaml) = EXAMPLE_BOTS
            .iter()
            .find(|(n, _)| n.ends_with("faq-bot.yaml"))
            .unwrap();
        assert!(yaml.contains(&format!("file: {FAQ_FILE}")));
        // From a folder without the examples the knowledge is inline.
        let elsewhere = example_yaml(&format!("/nonexistent/{name}"), yaml);
        assert!(!elsewhere.contains("file:") && elsewhere.contains("entries:"));
    }
}

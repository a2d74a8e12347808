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
];

/// The faq-bot example's knowledge file, carried by the compiled-in copy of the bot (which
/// reads it inline, so it answers from any working folder).
pub const FAQ_KNOWLEDGE: &str = include_str!("../../../examples/faq/knowledge.yaml");

/// The YAML of an example as the node loads it: faq-bot's `file:` becomes its knowledge inline.
pub fn example_yaml(name: &str, yaml: &str) -> String {
    if !name.ends_with("faq-bot.yaml") {
        return yaml.to_string();
    }
    let entries = serde_yaml::from_str::<serde_json::Value>(FAQ_KNOWLEDGE)
        .map(|v| v["entries"].to_string())
        .unwrap_or_else(|_| "[]".into());
    yaml.replace(
        "file: examples/faq/knowledge.yaml",
        &format!("entries: {entries}"),
    )
}

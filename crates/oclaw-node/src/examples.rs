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
];

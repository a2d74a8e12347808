//! Whether the NATS channel is wanted by the loaded bots, and the check of `channels.nats` at start.

use oclaw_bots::BotCatalog;
use oclaw_core::config::NatsConnection;

/// Whether any loaded bot has a NATS trigger.
pub fn wanted(catalog: &BotCatalog) -> bool {
    catalog.bots().any(|b| !b.nats.is_empty())
}

/// Checks `channels.nats` before the node starts.
pub fn check(conn: &NatsConnection) -> Result<(), String> {
    let url = url::Url::parse(&conn.url).map_err(|e| format!("channels.nats.url: {e}"))?;
    if url.scheme() != "nats" && url.scheme() != "tls" {
        return Err(format!(
            "channels.nats.url: scheme `{}` is not supported; use nats://HOST:PORT or tls://HOST:PORT",
            url.scheme()
        ));
    }
    if let Some(path) = &conn.ca_file {
        std::fs::metadata(path)
            .map_err(|e| format!("channels.nats.ca_file {}: {e}", path.display()))?;
    }
    let ok = !conn.stream.is_empty()
        && conn
            .stream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err("channels.nats.stream must be letters, digits, `-` or `_`".into());
    }
    Ok(())
}

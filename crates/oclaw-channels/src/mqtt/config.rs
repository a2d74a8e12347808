//! How the MQTT channel connects and subscribes: client options from `channels.mqtt`, the shared subscription of each trigger filter, and which bots it serves.

use std::sync::Arc;
use std::time::Duration;

use oclaw_bots::triggers::broker::MqttTrigger;
use oclaw_bots::{BotCatalog, LoadedBot};
use oclaw_core::config::MqttConnection;
use rumqttc::MqttOptions;

use crate::resolve_secret;

/// The bots and triggers an MQTT channel serves.
pub(super) fn subscriptions(catalog: &BotCatalog) -> Vec<(Arc<LoadedBot>, MqttTrigger)> {
    catalog
        .bots()
        .flat_map(|b| b.mqtt.iter().map(move |t| (b.clone(), t.clone())))
        .collect()
}

/// Options for a connection, from `channels.mqtt`.
pub fn options(conn: &MqttConnection, node_id: &str) -> Result<MqttOptions, String> {
    let url = url::Url::parse(&conn.url).map_err(|e| format!("channels.mqtt.url: {e}"))?;
    if url.scheme() != "mqtt" && url.scheme() != "tcp" {
        return Err(format!(
            "channels.mqtt.url: scheme `{}` is not supported; use mqtt://HOST:PORT",
            url.scheme()
        ));
    }
    let host = url
        .host_str()
        .ok_or("channels.mqtt.url has no host")?
        .to_string();
    let id = conn
        .client_id
        .clone()
        .unwrap_or_else(|| format!("oclaw-{node_id}"));
    let mut o = MqttOptions::new(id, host, url.port().unwrap_or(1883));
    o.set_keep_alive(Duration::from_secs(15))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(1 << 20, 1 << 20);
    if let Some(user) = &conn.username {
        let password = match &conn.password {
            Some(p) => resolve_secret(p).map_err(|e| format!("channels.mqtt.password: {e}"))?,
            None => String::new(),
        };
        o.set_credentials(user.clone(), password);
    }
    Ok(o)
}

/// The filter to subscribe with: `$share/<group>/<filter>` when a share group is set.
pub fn subscription(share_group: &str, filter: &str) -> String {
    if share_group.is_empty() {
        filter.to_string()
    } else {
        format!("$share/{share_group}/{filter}")
    }
}

/// Whether any loaded bot has an MQTT trigger.
pub fn wanted(catalog: &BotCatalog) -> bool {
    catalog.bots().any(|b| !b.mqtt.is_empty())
}

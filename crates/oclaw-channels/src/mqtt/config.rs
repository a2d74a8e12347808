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
    let tls = match url.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => {
            return Err(format!(
                "channels.mqtt.url: scheme `{other}` is not supported; use mqtt://HOST:PORT or mqtts://HOST:PORT"
            ))
        }
    };
    if conn.ca_file.is_some() && !tls {
        return Err("channels.mqtt.ca_file is set but the url is not mqtts://".into());
    }
    let host = url
        .host_str()
        .ok_or("channels.mqtt.url has no host")?
        .to_string();
    let id = conn
        .client_id
        .clone()
        .unwrap_or_else(|| format!("oclaw-{node_id}"));
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let mut o = MqttOptions::new(id, host, port);
    if tls {
        o.set_transport(rumqttc::Transport::tls_with_config(
            rustls_config(conn)?.into(),
        ));
    }
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

/// TLS to the broker: the certificate must chain to `ca_file` (or the host's store) and name the
/// URL's host.
fn rustls_config(conn: &MqttConnection) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match &conn.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("channels.mqtt.ca_file {}: {e}", path.display()))?;
            roots.add_parsable_certificates(certs);
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    if roots.is_empty() {
        return Err(match &conn.ca_file {
            Some(path) => format!("channels.mqtt.ca_file {} holds no certificate", path.display()),
            None => "channels.mqtt.url is mqtts:// and this host's certificate store is empty: set channels.mqtt.ca_file".into(),
        });
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
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

//! The issuer's keys for `api.oidc`: read from `jwks_file`, or fetched from `jwks_url` at start
//! (the node does not start without them) and again every 10 minutes (a failed refresh keeps the
//! keys it has and says so).

use std::sync::Arc;
use std::time::Duration;

use oclaw_api::oidc::Oidc;
use oclaw_core::config::OidcConfig;

const REFRESH: Duration = Duration::from_secs(600);

async fn fetch(url: &str) -> Result<oclaw_api::oidc::JwkSet, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("fetching {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("fetching {url}: HTTP {}", resp.status()));
    }
    let text = resp
        .text()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?;
    Oidc::parse_jwks(&text)
}

/// The verifier, with its keys loaded (and a refresher running for a URL).
pub(crate) async fn start(c: OidcConfig) -> Result<Oidc, String> {
    let keys = match (&c.jwks_file, &c.jwks_url) {
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("jwks_file {}: {e}", path.display()))?;
            Oidc::parse_jwks(&text).map_err(|e| format!("jwks_file {}: {e}", path.display()))?
        }
        (None, Some(url)) => fetch(url).await?,
        _ => return Err("give one of jwks_file or jwks_url".into()),
    };
    if keys.keys.is_empty() {
        return Err("the JWKS holds no keys".into());
    }
    Ok(Oidc::new(c, keys))
}

/// Refreshes the keys of a `jwks_url` every 10 minutes while the process runs.
pub(crate) fn refresh(oidc: Arc<Oidc>) {
    let Some(url) = oidc.config().jwks_url.clone() else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REFRESH).await;
            match fetch(&url).await {
                Ok(keys) if !keys.keys.is_empty() => oidc.set_keys(keys),
                Ok(_) => tracing::warn!(
                    component = "api-server",
                    "the issuer's JWKS came back empty; keeping the keys it had"
                ),
                Err(e) => tracing::warn!(
                    component = "api-server",
                    "cannot refresh the issuer's keys ({e}); keeping the ones it has"
                ),
            }
        }
    });
}

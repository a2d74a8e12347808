//! Sign-in with an OpenID Connect provider: a bearer JWT from the configured issuer, for the
//! configured audience, signed by a key of the issuer's JWKS (a file, or a URL the node reads at
//! start and every 10 minutes), becomes a principal whose tenant and role come from two claims.

use std::sync::RwLock;

pub use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use oclaw_core::config::OidcConfig;
use serde_json::Value;

use crate::auth::{Principal, Role};

/// Verifies JWTs against the issuer's keys.
pub struct Oidc {
    config: OidcConfig,
    keys: RwLock<JwkSet>,
}

/// Why a JWT was refused (the message goes back to the caller: it names no key material).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl Oidc {
    pub fn new(config: OidcConfig, keys: JwkSet) -> Oidc {
        Oidc {
            config,
            keys: RwLock::new(keys),
        }
    }

    /// Parses a JWKS document.
    pub fn parse_jwks(text: &str) -> Result<JwkSet, String> {
        serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))
    }

    /// Replaces the keys (a refresh of the JWKS URL).
    pub fn set_keys(&self, keys: JwkSet) {
        if let Ok(mut k) = self.keys.write() {
            *k = keys;
        }
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Whether a bearer token looks like a JWT (three base64url parts).
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3 && token.starts_with("ey")
    }

    /// The principal a valid token names; a refusal otherwise.
    pub fn principal(&self, token: &str) -> Result<Principal, Refused> {
        let header = decode_header(token).map_err(|e| Refused(format!("not a JWT: {e}")))?;
        if matches!(
            header.alg,
            jsonwebtoken::Algorithm::HS256
                | jsonwebtoken::Algorithm::HS384
                | jsonwebtoken::Algorithm::HS512
        ) {
            // An issuer signs with its private key; a shared-secret token is never one of its.
            return Err(Refused("HMAC-signed tokens are not accepted".into()));
        }
        let key = {
            let keys = self
                .keys
                .read()
                .map_err(|_| Refused("the issuer's keys are unavailable".into()))?;
            let jwk = match &header.kid {
                Some(kid) => keys.find(kid),
                None if keys.keys.len() == 1 => keys.keys.first(),
                None => None,
            }
            .ok_or_else(|| Refused("the token's key is not among the issuer's keys".into()))?;
            DecodingKey::from_jwk(jwk).map_err(|e| Refused(format!("unusable issuer key: {e}")))?
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[self.config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let data = decode::<Value>(token, &key, &validation)
            .map_err(|e| Refused(format!("the token is not valid: {e}")))?;
        let claims = data.claims;
        let claim = |name: &str| claims.get(name).and_then(Value::as_str);
        let role_name = claim(&self.config.role_claim).ok_or_else(|| {
            Refused(format!(
                "the token has no `{}` claim",
                self.config.role_claim
            ))
        })?;
        let role = Role::parse(role_name)
            .ok_or_else(|| Refused(format!("`{role_name}` is not a role")))?;
        let tenant = match role {
            Role::Admin => None,
            _ => Some(
                claim(&self.config.tenant_claim)
                    .filter(|t| oclaw_core::bot::bot_name_ok(t))
                    .ok_or_else(|| {
                        Refused(format!(
                            "the token has no valid `{}` claim",
                            self.config.tenant_claim
                        ))
                    })?
                    .to_string(),
            ),
        };
        let sub = claim("sub").unwrap_or("?");
        Ok(Principal {
            actor: format!("oidc:{sub}"),
            tenant,
            role,
            identity: Some(claim("preferred_username").unwrap_or(sub).to_string()),
        })
    }
}

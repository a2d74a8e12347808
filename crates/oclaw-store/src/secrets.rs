//! Per-tenant secrets, sealed before they reach the store: AES-256-GCM under the node's key
//! (`secrets.key` or `secrets.key_file`), a fresh random nonce per value, and the tenant and name
//! as associated data — a sealed value copied to another tenant or name does not open.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

/// A secret as listed: its name and when it was last set, never its value.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SecretInfo {
    pub name: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The node's key for sealing secrets.
pub struct SecretKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

fn aad(tenant: &str, name: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(tenant.len() + name.len() + 1);
    a.extend_from_slice(tenant.as_bytes());
    a.push(0);
    a.extend_from_slice(name.as_bytes());
    a
}

impl SecretKey {
    /// A key from 64 hex digits (32 bytes), as `secrets.key` or the first line of
    /// `secrets.key_file` holds it.
    pub fn from_hex(hex: &str) -> Result<SecretKey, String> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(
                "a secrets key is 64 hex digits (32 bytes; `openssl rand -hex 32` makes one)"
                    .into(),
            );
        }
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| "bad key".to_string())?;
        Ok(SecretKey {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        })
    }

    /// Nonce followed by the ciphertext and its tag.
    pub fn seal(&self, tenant: &str, name: &str, value: &str) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| "no randomness for a nonce".to_string())?;
        let mut data = value.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(tenant, name)),
                &mut data,
            )
            .map_err(|_| "sealing failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// The value of a sealed secret; an error when it was sealed under another key, for
    /// another tenant or name, or changed.
    pub fn open(&self, tenant: &str, name: &str, sealed: &[u8]) -> Result<String, String> {
        if sealed.len() < NONCE_LEN {
            return Err("sealed value too short".into());
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce".to_string())?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad(tenant, name)), &mut data)
            .map_err(|_| {
                "the secret does not open with this key (another key, or changed)".to_string()
            })?;
        String::from_utf8(plain.to_vec()).map_err(|_| "the secret is not UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_tenant_and_name_under_its_key() {
        let key = SecretKey::from_hex(&"ab".repeat(32)).unwrap();
        let sealed = key.seal("acme", "API_KEY", "s3cr3t").unwrap();
        assert!(
            !sealed.windows(6).any(|w| w == b"s3cr3t"),
            "the value is not in the clear"
        );
        assert_eq!(key.open("acme", "API_KEY", &sealed).unwrap(), "s3cr3t");
        assert!(key.open("globex", "API_KEY", &sealed).is_err());
        assert!(key.open("acme", "OTHER", &sealed).is_err());
        let other = SecretKey::from_hex(&"cd".repeat(32)).unwrap();
        assert!(other.open("acme", "API_KEY", &sealed).is_err());
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert!(key.open("acme", "API_KEY", &changed).is_err());
        assert_ne!(
            sealed,
            key.seal("acme", "API_KEY", "s3cr3t").unwrap(),
            "fresh nonces"
        );
        assert!(SecretKey::from_hex("short").is_err());
    }
}

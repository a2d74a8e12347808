//! Who may do what, and what was done: API tokens (kept as hashes, each with a tenant and a
//! role) and the audit log, an append-only list of changes in which every entry carries the hash
//! of the one before, so an edited or removed entry breaks the chain.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A token as listed: never the token itself, which exists only in the answer that created it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A token to keep: its id, and the SHA-256 of the secret (hex).
#[derive(Debug, Clone)]
pub struct NewToken {
    pub id: String,
    pub name: String,
    pub hash: String,
    pub tenant: String,
    pub role: String,
    pub created_by: String,
}

/// The SHA-256 of a presented token, as tokens are kept and looked up.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash before the first entry of the log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One change: who (`actor`: a token's id or `config`), in which tenant, what (`action`, such as
/// `POST /v1/tasks/{id}/cancel`, and its `target`), from where (`source`: the client's address)
/// and how it ended (`result`: the HTTP status).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NewAudit {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub tenant: String,
    pub action: String,
    pub target: String,
    pub source: String,
    pub result: String,
}

/// An entry as kept: the change, its place (`id`), the hash of the entry before it and its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(flatten)]
    pub change: NewAudit,
    pub prev_hash: String,
    pub hash: String,
}

impl NewAudit {
    /// The entry's hash: SHA-256 over the previous hash and every field, each length-prefixed
    /// so no two different entries write the same bytes. The time counts in milliseconds, as
    /// the store keeps it.
    pub fn hash(&self, id: i64, prev_hash: &str) -> String {
        let mut h = Sha256::new();
        let at = self.at.timestamp_millis().to_string();
        let id = id.to_string();
        for part in [
            prev_hash,
            &id,
            &at,
            &self.actor,
            &self.tenant,
            &self.action,
            &self.target,
            &self.source,
            &self.result,
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        hex(&h.finalize())
    }
}

/// Where a chain of entries (oldest first) breaks: the first entry whose `prev_hash` is not the
/// hash of the entry before it, or whose own hash does not match its content. The first entry's
/// `prev_hash` is taken as given (older entries may have been dropped by retention).
pub fn verify_chain(entries: &[AuditEntry]) -> Result<usize, ChainBreak> {
    let mut prev: Option<&AuditEntry> = None;
    for e in entries {
        if let Some(p) = prev {
            if e.prev_hash != p.hash {
                return Err(ChainBreak {
                    id: e.id,
                    why: format!("its prev_hash is not the hash of entry {}", p.id),
                });
            }
        }
        if e.change.hash(e.id, &e.prev_hash) != e.hash {
            return Err(ChainBreak {
                id: e.id,
                why: "its content does not match its hash (the entry was changed)".into(),
            });
        }
        prev = Some(e);
    }
    Ok(entries.len())
}

/// The entry at which an audit chain stops holding, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainBreak {
    pub id: i64,
    pub why: String,
}

/// Which audit entries to list: oldest first from `after` (exclusive), or one tenant's.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tenant: Option<String>,
    pub after: Option<i64>,
    pub limit: usize,
}

/// The columns [`token_from`] reads, in its order.
pub(crate) const TOKEN_COLUMNS: &str = "id, name, tenant, role, created_at, created_by, revoked_at";

pub(crate) fn token_from<C: crate::rows::Columns>(r: &C) -> Result<TokenRecord, C::Error> {
    Ok(TokenRecord {
        id: r.text(0)?,
        name: r.text(1)?,
        tenant: r.text(2)?,
        role: r.text(3)?,
        created_at: crate::codec::from_ms(r.int(4)?),
        created_by: r.text(5)?,
        revoked_at: r.opt_int(6)?.map(crate::codec::from_ms),
    })
}

/// The columns [`audit_from`] reads, in its order.
pub(crate) const AUDIT_COLUMNS: &str =
    "id, at, actor, tenant, action, target, source, result, prev_hash, hash";

pub(crate) fn audit_from<C: crate::rows::Columns>(r: &C) -> Result<AuditEntry, C::Error> {
    Ok(AuditEntry {
        id: r.int(0)?,
        change: NewAudit {
            at: crate::codec::from_ms(r.int(1)?),
            actor: r.text(2)?,
            tenant: r.text(3)?,
            action: r.text(4)?,
            target: r.text(5)?,
            source: r.text(6)?,
            result: r.text(7)?,
        },
        prev_hash: r.text(8)?,
        hash: r.text(9)?,
    })
}

/// Entries one list answers at most.
pub const AUDIT_PAGE_MAX: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, prev: &str, action: &str) -> AuditEntry {
        let change = NewAudit {
            at: DateTime::from_timestamp_millis(1_700_000_000_000 + id).unwrap(),
            actor: "tok_1".into(),
            tenant: "acme".into(),
            action: action.into(),
            target: "/v1/tasks/1".into(),
            source: "127.0.0.1".into(),
            result: "200".into(),
        };
        let hash = change.hash(id, prev);
        AuditEntry {
            id,
            change,
            prev_hash: prev.into(),
            hash,
        }
    }

    #[test]
    fn an_edited_or_missing_entry_breaks_the_chain() {
        let a = entry(1, GENESIS, "POST /v1/tasks");
        let b = entry(2, &a.hash, "POST /v1/tasks/1/cancel");
        let c = entry(3, &b.hash, "DELETE /v1/kb/x");
        assert_eq!(verify_chain(&[a.clone(), b.clone(), c.clone()]), Ok(3));
        let mut edited = b.clone();
        edited.change.actor = "someone-else".into();
        assert_eq!(
            verify_chain(&[a.clone(), edited, c.clone()])
                .unwrap_err()
                .id,
            2
        );
        assert_eq!(verify_chain(&[a, c]).unwrap_err().id, 3);
        // Fields are length-prefixed: moving a character between two fields changes the hash.
        let mut x = entry(1, GENESIS, "POST /v1/tasks");
        let h = x.hash.clone();
        x.change.actor = "tok_".into();
        x.change.tenant = "1acme".into();
        assert_ne!(x.change.hash(1, GENESIS), h);
    }
}

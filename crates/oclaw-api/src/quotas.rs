//! Per-tenant submission rates (`tenants.quotas.<tenant>.submissions_per_second`): a token
//! bucket per tenant on each api-server, holding one second's worth.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use oclaw_core::config::TenantQuota;
use oclaw_core::ErrorCode;

use crate::{ApiError, ApiState};

/// The quotas of every tenant that has one, and each one's bucket.
#[derive(Debug, Default)]
pub struct Quotas {
    limits: BTreeMap<String, TenantQuota>,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Quotas {
    pub fn new(limits: BTreeMap<String, TenantQuota>) -> Quotas {
        Quotas {
            limits,
            buckets: Mutex::default(),
        }
    }

    /// Takes `n` submissions from the tenant's bucket, or refuses all of them with 429 and
    /// the seconds until they would fit.
    pub async fn admit(&self, _state: &ApiState, tenant: &str, n: u64) -> Result<(), ApiError> {
        let Some(rate) = self
            .limits
            .get(tenant)
            .and_then(|q| q.submissions_per_second)
        else {
            return Ok(());
        };
        let rate = f64::from(rate.max(1));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at) = buckets.entry(tenant.to_string()).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        let want = n as f64;
        if *tokens >= want {
            *tokens -= want;
            return Ok(());
        }
        let wait = ((want - *tokens) / rate).ceil().max(1.0) as u64;
        let mut err = ApiError::new(
            ErrorCode::TenantQuota,
            format!("tenant `{tenant}` may submit {rate} tasks per second; retry in {wait}s"),
        );
        err.retry_after_secs = Some(wait);
        Err(err)
    }
}

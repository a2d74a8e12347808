//! Retry policy: how many attempts, and how long to wait between them.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Dur;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackoffKind {
    #[default]
    Exponential,
    Fixed,
}

/// A bot's retry policy (`retry:` in the bot YAML).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Total attempts including the first run; the task is `dead` after the last fails.
    pub max_attempts: u32,
    pub backoff: BackoffKind,
    /// Wait before the second attempt.
    pub initial: Dur,
    /// Upper bound of any wait.
    pub max: Dur,
    /// Randomise waits (half fixed, half random) so retries of many tasks do not stampede.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: BackoffKind::Exponential,
            initial: Dur::secs(1),
            max: Dur::secs(300),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// Wait before the next attempt, after `attempts` attempts have failed (1-based).
    /// `rand01` is a uniform sample in [0, 1); passing it in keeps this pure and testable.
    pub fn delay_after(&self, attempts: u32, rand01: f64) -> Duration {
        let base = match self.backoff {
            BackoffKind::Fixed => self.initial.get(),
            BackoffKind::Exponential => {
                let exp = attempts.saturating_sub(1).min(32);
                self.initial.get().saturating_mul(1u32 << exp.min(31))
            }
        };
        let capped = base.min(self.max.get());
        if self.jitter {
            let half = capped / 2;
            half + half.mul_f64(rand01.clamp(0.0, 1.0))
        } else {
            capped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: bool) -> RetryPolicy {
        RetryPolicy {
            jitter,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn exponential_doubles_until_the_cap() {
        let p = policy(false);
        assert_eq!(p.delay_after(1, 0.0), Duration::from_secs(1));
        assert_eq!(p.delay_after(2, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay_after(5, 0.0), Duration::from_secs(16));
        assert_eq!(p.delay_after(20, 0.0), Duration::from_secs(300));
        assert_eq!(p.delay_after(u32::MAX, 0.0), Duration::from_secs(300));
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        let p = policy(true);
        assert_eq!(p.delay_after(3, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay_after(3, 1.0), Duration::from_secs(4));
        let mid = p.delay_after(3, 0.5);
        assert!(mid > Duration::from_secs(2) && mid < Duration::from_secs(4));
    }

    #[test]
    fn fixed_ignores_attempts() {
        let p = RetryPolicy {
            backoff: BackoffKind::Fixed,
            jitter: false,
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay_after(7, 0.3), Duration::from_secs(1));
    }
}

//! `Idempotency-Key` handling (`[idempotency]`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, positive, ConfigError};

/// `Idempotency-Key` handling (`[idempotency]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIdempotency {
    /// How long a key's first result is replayed to retries; also the JetStream duplicate window.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Most keys remembered at once; the oldest are forgotten first.
    pub max_keys: usize,
}

impl Default for RawIdempotency {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(120),
            max_keys: 100_000,
        }
    }
}

/// Validated idempotency settings.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyConfig {
    /// How long a key is remembered.
    pub window: Duration,
    /// Most keys remembered.
    pub max_keys: usize,
}

impl RawIdempotency {
    /// Checks the window and key count.
    pub(super) fn validate(&self) -> Result<IdempotencyConfig, ConfigError> {
        if self.window.is_zero() {
            return Err(invalid("idempotency.window", "must be more than 0"));
        }
        positive("idempotency.max_keys", self.max_keys)?;
        Ok(IdempotencyConfig {
            window: self.window,
            max_keys: self.max_keys,
        })
    }
}

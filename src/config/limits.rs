//! Request and queue limits (`limits = { ... }`).

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::{invalid, positive, ConfigError};

/// Request and queue limits (`limits = { ... }`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// Largest request body accepted (413 beyond it).
    pub max_body: ByteSize,
    /// Largest single event payload accepted (413 beyond it).
    pub max_event: ByteSize,
    /// Most entries in one batch request (413 beyond it).
    pub max_batch: usize,
    /// Events a broker's pipeline holds, queued or awaiting acknowledgement, before publishes get 429.
    pub pipeline_depth: usize,
    /// Bytes of events a broker's pipeline holds, queued or awaiting acknowledgement, before
    /// publishes get 429: each event counts its payload, its attributes' text and 512 bytes of
    /// bookkeeping, close to the memory it takes. With `pipeline_depth` alone, the memory a full
    /// pipeline takes grew with the size of its events.
    pub pipeline_bytes: ByteSize,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_body: ByteSize::mib(4),
            max_event: ByteSize::mib(1),
            max_batch: 1000,
            pipeline_depth: 65536,
            pipeline_bytes: ByteSize::mib(24),
        }
    }
}

/// Validated limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest request body in bytes.
    pub max_body: usize,
    /// Largest event payload in bytes.
    pub max_event: usize,
    /// Most entries in a batch request.
    pub max_batch: usize,
    /// Events a broker's pipeline may hold.
    pub pipeline_depth: usize,
    /// Bytes of events a broker's pipeline may hold.
    pub pipeline_bytes: usize,
}

impl RawLimits {
    /// Checks the limits against each other and converts sizes to bytes.
    pub(super) fn validate(&self) -> Result<Limits, ConfigError> {
        positive("limits.max_batch", self.max_batch)?;
        positive("limits.pipeline_depth", self.pipeline_depth)?;
        if self.pipeline_depth < self.max_batch {
            return Err(invalid(
                "limits.pipeline_depth",
                "must be at least limits.max_batch, or a full batch could never be taken",
            ));
        }
        positive("limits.max_body", self.max_body.as_u64() as usize)?;
        positive("limits.max_event", self.max_event.as_u64() as usize)?;
        if self.max_event > self.max_body {
            return Err(invalid(
                "limits.max_event",
                "must not exceed limits.max_body",
            ));
        }
        if self.pipeline_bytes < self.max_body {
            return Err(invalid(
                "limits.pipeline_bytes",
                "must be at least limits.max_body, or a request of the largest size could never be taken",
            ));
        }
        Ok(Limits {
            max_body: self.max_body.as_u64() as usize,
            max_event: self.max_event.as_u64() as usize,
            max_batch: self.max_batch,
            pipeline_depth: self.pipeline_depth,
            pipeline_bytes: self.pipeline_bytes.as_u64() as usize,
        })
    }
}

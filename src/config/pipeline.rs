//! Batching settings of the publish pipeline (`[pipeline]`).

use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::{invalid, positive, ConfigError};

/// Batching settings of the publish pipeline (`[pipeline]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPipeline {
    /// Most events in one batch handed to a broker.
    pub max_batch_events: usize,
    /// Most payload bytes in one batch handed to a broker.
    pub max_batch_bytes: ByteSize,
    /// How long a batch may wait for more events once it has one; `0ms` sends what is queued at once.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Batches sent to a broker whose acknowledgements may be outstanding at once.
    pub max_in_flight_batches: usize,
    /// How long to wait for a broker's acknowledgement before answering 504.
    #[serde(with = "humantime_serde")]
    pub ack_timeout: Duration,
}

impl Default for RawPipeline {
    fn default() -> Self {
        Self {
            max_batch_events: 512,
            max_batch_bytes: ByteSize::mib(4),
            linger: Duration::ZERO,
            max_in_flight_batches: 8,
            ack_timeout: Duration::from_secs(30),
        }
    }
}

/// Validated pipeline settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// Most events in one broker batch.
    pub max_batch_events: usize,
    /// Most payload bytes in one broker batch.
    pub max_batch_bytes: usize,
    /// Time a non-full batch waits for more events.
    pub linger: Duration,
    /// Batches awaiting acknowledgement at once.
    pub max_in_flight_batches: usize,
    /// Acknowledgement timeout.
    pub ack_timeout: Duration,
}

impl RawPipeline {
    /// Checks the batching settings and converts sizes to bytes.
    pub(super) fn validate(&self) -> Result<PipelineConfig, ConfigError> {
        positive("pipeline.max_batch_events", self.max_batch_events)?;
        positive(
            "pipeline.max_batch_bytes",
            self.max_batch_bytes.as_u64() as usize,
        )?;
        positive("pipeline.max_in_flight_batches", self.max_in_flight_batches)?;
        if self.ack_timeout.is_zero() {
            return Err(invalid("pipeline.ack_timeout", "must be more than 0"));
        }
        Ok(PipelineConfig {
            max_batch_events: self.max_batch_events,
            max_batch_bytes: self.max_batch_bytes.as_u64() as usize,
            linger: self.linger,
            max_in_flight_batches: self.max_in_flight_batches,
            ack_timeout: self.ack_timeout,
        })
    }
}

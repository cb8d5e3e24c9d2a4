//! The metric handles of one broker's publish path, each registered on first use and then kept:
//! a `counter!`/`gauge!`/`histogram!` call builds its key and looks it up in the registry every
//! time, several times per request on the single-event path. A series still appears in
//! `/metrics` only once it has a first sample, as with the macros.

use std::sync::OnceLock;
use std::time::Duration;

use http::StatusCode;
use metrics::{Counter, Gauge, Histogram};

use super::bound::Bound;
use crate::backend::{PublishError, PublishResult};
use crate::telemetry;

/// The status codes publish answers with, as label values; anything else is `other`.
const STATUSES: [&str; 17] = [
    "200", "202", "400", "401", "403", "404", "405", "409", "413", "415", "422", "429", "502",
    "503", "504", "507", "other",
];

/// Event outcome label values, indexed by [`outcome`].
const OUTCOMES: [&str; 7] = [
    "ok",
    "unavailable",
    "rejected",
    "timeout",
    "invalid_topic",
    "spooled",
    "spool_refused",
];

/// The publish routes, as the `mode` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `POST /v1/publish/{broker}/{topic}`.
    Single,
    /// `POST /v1/publish/{broker}/{topic}/batch`.
    Batch,
}

impl Mode {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Batch => "batch",
        }
    }
}

/// Why the batcher flushed a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// `max_batch_events` reached.
    Full,
    /// `max_batch_bytes` reached.
    Bytes,
    /// Nothing more was queued (linger 0).
    Idle,
    /// The linger time ran out.
    Linger,
}

/// Flush reason label values, indexed by `Flush as usize` (declaration order).
const FLUSH_REASONS: [&str; 4] = ["full", "bytes", "idle", "linger"];

impl Flush {
    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        FLUSH_REASONS[self as usize]
    }
}

/// The handles of one broker; shared by its pipeline, its batcher and the publish handlers.
pub struct BrokerMeters {
    broker: &'static str,
    depth: OnceLock<Gauge>,
    bytes: OnceLock<Gauge>,
    rejected: OnceLock<Counter>,
    batch_size: OnceLock<Histogram>,
    flushes: [OnceLock<Counter>; FLUSH_REASONS.len()],
    events: [OnceLock<Counter>; OUTCOMES.len()],
    latency: [OnceLock<Histogram>; 2],
    requests: [[OnceLock<Counter>; STATUSES.len()]; 2],
}

/// The label value of a publish response's status.
pub fn status_label(status: StatusCode) -> &'static str {
    STATUSES[status_index(status)]
}

fn status_index(status: StatusCode) -> usize {
    let code = status.as_str();
    STATUSES
        .iter()
        .position(|s| *s == code)
        .unwrap_or(STATUSES.len() - 1)
}

/// The index of a result's outcome in [`OUTCOMES`].
fn outcome(result: &PublishResult) -> usize {
    match result {
        Ok(position) if position.spooled => 5,
        Ok(_) => 0,
        Err(PublishError::Unavailable(_)) => 1,
        Err(PublishError::Rejected(_)) => 2,
        Err(PublishError::Timeout(_)) => 3,
        Err(PublishError::InvalidTopic(_)) => 4,
        Err(PublishError::SpoolRefused(_)) => 6,
    }
}

impl BrokerMeters {
    /// Handles for `broker` (a configured name, so the label set stays bounded).
    pub fn new(broker: &'static str) -> Self {
        Self {
            broker,
            depth: OnceLock::new(),
            bytes: OnceLock::new(),
            rejected: OnceLock::new(),
            batch_size: OnceLock::new(),
            flushes: Default::default(),
            events: Default::default(),
            latency: Default::default(),
            requests: Default::default(),
        }
    }

    /// The broker name, as a metric label.
    pub fn broker(&self) -> &'static str {
        self.broker
    }

    /// Events and bytes `bound` holds now.
    pub(super) fn held(&self, bound: &Bound) {
        let broker = self.broker;
        self.depth
            .get_or_init(|| metrics::gauge!(telemetry::PIPELINE_DEPTH, "broker" => broker))
            .set(bound.events_held() as f64);
        self.bytes
            .get_or_init(|| metrics::gauge!(telemetry::PIPELINE_BYTES, "broker" => broker))
            .set(bound.bytes_held() as f64);
    }

    /// A publish refused because the pipeline was full.
    pub fn rejected(&self) {
        let broker = self.broker;
        self.rejected
            .get_or_init(|| metrics::counter!(telemetry::PIPELINE_REJECTED, "broker" => broker))
            .increment(1);
    }

    /// A batch of `events` flushed for `reason`.
    pub fn flushed(&self, reason: Flush, events: usize) {
        let broker = self.broker;
        self.flushes[reason as usize]
            .get_or_init(|| {
                metrics::counter!(telemetry::BATCH_FLUSHES, "broker" => broker, "reason" => reason.label())
            })
            .increment(1);
        self.batch_size
            .get_or_init(|| metrics::histogram!(telemetry::BATCH_SIZE, "broker" => broker))
            .record(events as f64);
    }

    /// The broker's results for one batch, counted by outcome.
    pub fn outcomes(&self, results: &[PublishResult]) {
        let mut counts = [0u64; OUTCOMES.len()];
        for r in results {
            counts[outcome(r)] += 1;
        }
        let broker = self.broker;
        for (i, n) in counts.into_iter().enumerate() {
            if n > 0 {
                self.events[i]
                    .get_or_init(|| {
                        metrics::counter!(telemetry::PUBLISH_EVENTS, "broker" => broker, "outcome" => OUTCOMES[i])
                    })
                    .increment(n);
            }
        }
    }

    /// A publish request answered with `status` after `elapsed`.
    pub fn request(&self, mode: Mode, status: StatusCode, elapsed: Duration) {
        let (broker, m) = (self.broker, mode as usize);
        let s = status_index(status);
        self.requests[m][s]
            .get_or_init(|| {
                metrics::counter!(telemetry::PUBLISH_REQUESTS, "broker" => broker, "mode" => mode.label(), "status" => STATUSES[s])
            })
            .increment(1);
        self.latency[m]
            .get_or_init(|| {
                metrics::histogram!(telemetry::PUBLISH_LATENCY, "broker" => broker, "mode" => mode.label())
            })
            .record(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_reasons_are_labelled_by_name() {
        let labels = [Flush::Full, Flush::Bytes, Flush::Idle, Flush::Linger].map(Flush::label);
        assert_eq!(labels, ["full", "bytes", "idle", "linger"]);
    }

    #[test]
    fn unknown_statuses_are_other() {
        assert_eq!(STATUSES[status_index(StatusCode::OK)], "200");
        assert_eq!(STATUSES[status_index(StatusCode::GATEWAY_TIMEOUT)], "504");
        assert_eq!(STATUSES[status_index(StatusCode::IM_A_TEAPOT)], "other");
    }
}

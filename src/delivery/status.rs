//! Live counters of one subscription, shown by `GET /v1/subscriptions/{name}`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::telemetry;

/// Reads a consumer's lag from the broker client, when it can tell.
pub type LagProbe = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// Shared between the dispatcher (which updates it) and the API (which reads it).
pub struct Status {
    name: String,
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
    filtered: AtomicU64,
    in_flight: AtomicU64,
    paused: AtomicBool,
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
    lag: Mutex<Option<LagProbe>>,
    meters: Meters,
}

/// The subscription's metric handles, registered once rather than looked up for every event.
struct Meters {
    delivered: metrics::Counter,
    retried: metrics::Counter,
    failed: metrics::Counter,
    dead_lettered: metrics::Counter,
    filtered: metrics::Counter,
    latency: metrics::Histogram,
    in_flight: metrics::Gauge,
}

impl Meters {
    fn new(name: &str) -> Self {
        let attempts = |outcome: &'static str| metrics::counter!(telemetry::DELIVERY_ATTEMPTS, "subscription" => name.to_string(), "outcome" => outcome);
        Self {
            delivered: attempts("delivered"),
            retried: attempts("retried"),
            failed: attempts("failed"),
            dead_lettered: metrics::counter!(telemetry::DEAD_LETTERED, "subscription" => name.to_string()),
            filtered: metrics::counter!(telemetry::DELIVERY_FILTERED, "subscription" => name.to_string()),
            latency: metrics::histogram!(telemetry::DELIVERY_LATENCY, "subscription" => name.to_string()),
            in_flight: metrics::gauge!(telemetry::DELIVERY_IN_FLIGHT, "subscription" => name.to_string()),
        }
    }
}

/// A snapshot for the API.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatusView {
    /// `running`, `paused` or `failing` (the last attempts failed or the broker is unreachable).
    pub state: &'static str,
    /// Events the endpoint accepted.
    pub delivered: u64,
    /// Attempts that were retried.
    pub retried: u64,
    /// Events given up on (dead-lettered or dropped).
    pub failed: u64,
    /// Events published to the dead-letter topic.
    pub dead_lettered: u64,
    /// Events the subscription's `filters` did not match: acknowledged, never delivered.
    pub filtered: u64,
    /// Events being delivered now.
    pub in_flight: u64,
    /// Events on the broker not yet received, when the broker tells.
    pub lag: Option<u64>,
    /// The most recent failure.
    pub last_error: Option<String>,
}

impl Status {
    /// Fresh counters for subscription `name`.
    pub fn new(name: &str, paused: bool) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            delivered: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            paused: AtomicBool::new(paused),
            failing: AtomicBool::new(false),
            last_error: Mutex::new(None),
            lag: Mutex::new(None),
            meters: Meters::new(name),
        })
    }

    /// An event was accepted by the endpoint.
    pub fn delivered(&self, seconds: f64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.failing.store(false, Ordering::Relaxed);
        self.meters.delivered.increment(1);
        self.meters.latency.record(seconds);
    }

    /// An attempt failed and will be retried.
    pub fn retried(&self, reason: &str) {
        self.retried.fetch_add(1, Ordering::Relaxed);
        self.failing.store(true, Ordering::Relaxed);
        self.meters.retried.increment(1);
        self.error(reason);
    }

    /// An event was given up on; `dead_lettered` when it went to the dead-letter topic.
    pub fn failed(&self, reason: &str, dead_lettered: bool) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.meters.failed.increment(1);
        if dead_lettered {
            self.dead_lettered.fetch_add(1, Ordering::Relaxed);
            self.meters.dead_lettered.increment(1);
        }
        self.error(reason);
    }

    /// An event did not match the subscription's filters and was acknowledged undelivered.
    pub fn filtered(&self) {
        self.filtered.fetch_add(1, Ordering::Relaxed);
        self.meters.filtered.increment(1);
    }

    /// Records an error (consumer or dead-letter trouble) without counting an event.
    pub fn error(&self, reason: &str) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
    }

    /// Marks the consumer (un)reachable.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    /// Marks the subscription paused or running.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Whether the subscription is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Adjusts the in-flight count.
    pub fn in_flight(&self, delta: i64) {
        if delta >= 0 {
            self.in_flight.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            self.in_flight.fetch_sub((-delta) as u64, Ordering::Relaxed);
        }
        self.meters
            .in_flight
            .set(self.in_flight.load(Ordering::Relaxed) as f64);
    }

    /// Installs the consumer's lag probe.
    pub fn set_lag(&self, lag: Option<LagProbe>) {
        *self.lag.lock().unwrap_or_else(|e| e.into_inner()) = lag;
    }

    /// A snapshot.
    pub fn view(&self) -> StatusView {
        let lag = self
            .lag
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|f| f());
        if let Some(lag) = lag {
            metrics::gauge!(telemetry::CONSUMER_LAG, "subscription" => self.name.clone())
                .set(lag as f64);
        }
        StatusView {
            state: if self.is_paused() {
                "paused"
            } else if self.failing.load(Ordering::Relaxed) {
                "failing"
            } else {
                "running"
            },
            delivered: self.delivered.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            filtered: self.filtered.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            lag,
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

//! Connection health shared between a backend's client callbacks and the admin API.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// A broker's reachability as shown by `/readyz` and `/v1/brokers`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BrokerStatus {
    /// The client holds a working connection.
    pub connected: bool,
    /// The most recent connection or broker error, kept after recovery for diagnosis.
    pub last_error: Option<String>,
}

/// Thread-safe connected flag plus last error, updated from client callbacks.
#[derive(Debug, Default)]
pub struct Health {
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Health {
    /// Marks the broker reachable.
    pub fn up(&self) {
        self.connected.store(true, Ordering::Release);
    }

    /// Marks the broker unreachable for `reason`.
    pub fn down(&self, reason: impl Into<String>) {
        self.connected.store(false, Ordering::Release);
        self.error(reason);
    }

    /// Records an error without changing reachability.
    pub fn error(&self, reason: impl Into<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.into());
    }

    /// Whether the broker is reachable.
    pub fn is_up(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// A snapshot for the admin API.
    pub fn status(&self) -> BrokerStatus {
        BrokerStatus {
            connected: self.is_up(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

//! What a phase measured, and the CPU seconds it cost each party: sidebus's process, the
//! harness's runtimes (read per thread from `/proc/self/task`) and the broker.

use std::time::Duration;

use crate::child::{peak_rss_kib, reset_peak_rss};
use crate::cpu::{own_seconds, own_threads_seconds, seconds_of};

/// Thread name of the receiver's runtime.
pub(crate) const RECEIVER_THREADS: &str = "receiver";
/// Thread name of the bare HTTP load client's runtime (phase a).
pub(crate) const CLIENT_THREADS: &str = "load-client";
/// Thread name of the native consumer's runtime (phases d and e).
pub(crate) const NATIVE_THREADS: &str = "native";

/// CPU seconds of each party, at one moment or over a phase.
#[derive(Clone, Copy, Default)]
pub(crate) struct Cpu {
    /// sidebus's process, all its threads (its broker client's included).
    pub(crate) sidebus: f64,
    /// The webhook receiver's runtime threads.
    pub(crate) receiver: f64,
    /// The bare HTTP load client's runtime threads.
    pub(crate) client: f64,
    /// The native consumer's runtime threads.
    pub(crate) native: f64,
    /// This whole process: the three runtimes above and the thread that drives the phases.
    pub(crate) harness: f64,
    /// The external broker's processes (nats-server).
    pub(crate) broker: f64,
}

impl Cpu {
    fn now(meter: &Meter) -> Self {
        let [receiver, client, native] =
            own_threads_seconds([RECEIVER_THREADS, CLIENT_THREADS, NATIVE_THREADS]);
        Cpu {
            sidebus: seconds_of(&[meter.sidebus]),
            receiver,
            client,
            native,
            harness: own_seconds(),
            broker: seconds_of(&meter.broker),
        }
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            sidebus: self.sidebus - before.sidebus,
            receiver: self.receiver - before.receiver,
            client: self.client - before.client,
            native: self.native - before.native,
            harness: self.harness - before.harness,
            broker: self.broker - before.broker,
        }
    }
}

/// What one phase measured.
pub(crate) struct Measured {
    /// Events (or requests, for the bare HTTP phase) completed.
    pub(crate) count: u64,
    /// HTTP requests the receiver answered.
    pub(crate) requests: u64,
    pub(crate) wall: Duration,
    /// Whether every expected event arrived.
    pub(crate) complete: bool,
    /// CPU seconds each party spent in the phase (set by [`Meter::run`]).
    pub(crate) cpu: Cpu,
    /// sidebus's peak RSS in the phase, KiB (set by [`Meter::run`]).
    pub(crate) peak_rss_kib: Option<u64>,
}

impl Measured {
    pub(crate) fn new(count: u64, requests: u64, wall: Duration, complete: bool) -> Self {
        Self {
            count,
            requests,
            wall,
            complete,
            cpu: Cpu::default(),
            peak_rss_kib: None,
        }
    }

    pub(crate) fn rate(&self) -> f64 {
        self.count as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// CPU µs per event (per request for the bare phase) of the party `of` picks.
    pub(crate) fn us_per_event(&self, of: impl Fn(&Cpu) -> f64) -> f64 {
        of(&self.cpu) * 1e6 / self.count.max(1) as f64
    }
}

/// Reads the CPU of every party around a phase, and sidebus's peak RSS in it.
pub(crate) struct Meter {
    /// sidebus's process.
    pub(crate) sidebus: u32,
    /// The external broker's processes.
    pub(crate) broker: Vec<u32>,
}

impl Meter {
    /// Runs one phase and records what it cost each party.
    pub(crate) fn run(&self, phase: impl FnOnce() -> Measured) -> Measured {
        let per_phase = reset_peak_rss(self.sidebus);
        let before = Cpu::now(self);
        let mut measured = phase();
        measured.cpu = Cpu::now(self).since(before);
        measured.peak_rss_kib = peak_rss_kib(self.sidebus).filter(|_| per_phase);
        measured
    }
}

//! One phase of a run: what it is called, how it runs (warm-up, then measured), and what it
//! measured.

use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::child::{peak_rss_kib, reset_peak_rss, Server};
use crate::drive::{new_histogram, run, Drive};
use crate::ops::Op;
use crate::process::Cpu;
use crate::Ctx;

/// The measured result of one phase.
pub(crate) struct Phase {
    pub(crate) key: &'static str,
    pub(crate) label: String,
    /// Connections, or publishes in flight.
    pub(crate) concurrency: String,
    events_per_op: u64,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) rejected: u64,
    pub(crate) first_error: Option<String>,
    seconds: f64,
    pub(crate) hist: Histogram<u64>,
    pub(crate) cpu: Cpu,
    /// Time sidebus's pipeline took to empty after the load stopped (included in `cpu`).
    pub(crate) drain: Duration,
    pub(crate) peak_rss_kib: Option<u64>,
    peak_rss_per_phase: bool,
    /// The phase loaded sidebus.
    pub(crate) sidebus: bool,
    /// `Some(reason)` when the phase was not run.
    pub(crate) skipped: Option<String>,
}

impl Phase {
    pub(crate) fn skipped(key: &'static str, label: &str, reason: &str) -> Self {
        Self {
            key,
            label: label.into(),
            concurrency: "-".into(),
            events_per_op: 1,
            ok: 0,
            errors: 0,
            rejected: 0,
            first_error: None,
            seconds: 0.0,
            hist: new_histogram(),
            cpu: Cpu::default(),
            drain: Duration::ZERO,
            peak_rss_kib: None,
            peak_rss_per_phase: false,
            sidebus: false,
            skipped: Some(reason.into()),
        }
    }

    fn events(&self) -> u64 {
        self.ok * self.events_per_op
    }

    /// CPU µs of the server process per event (per request for the bare handler).
    pub(crate) fn server_us_per_event(&self) -> Option<f64> {
        (self.events() > 0).then(|| self.cpu.server * 1e6 / self.events() as f64)
    }

    /// CPU µs of this process (the load client or the native client) per event.
    pub(crate) fn client_us_per_event(&self) -> Option<f64> {
        (self.events() > 0).then(|| self.cpu.process * 1e6 / self.events() as f64)
    }

    /// Events each operation carries (a batch's size).
    pub(crate) fn events_per_op(&self) -> u64 {
        self.events_per_op
    }

    pub(crate) fn ops_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ok as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub(crate) fn events_per_s(&self) -> f64 {
        self.ops_per_s() * self.events_per_op as f64
    }

    pub(crate) fn mb_per_s(&self, size: usize) -> f64 {
        self.events_per_s() * size as f64 / 1e6
    }

    pub(crate) fn quantile_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub(crate) fn json(&self, size: usize) -> Value {
        if let Some(reason) = &self.skipped {
            return json!({ "phase": self.key, "label": self.label, "skipped": reason });
        }
        json!({
            "phase": self.key,
            "label": self.label,
            "concurrency": self.concurrency,
            "events_per_op": self.events_per_op,
            "ok_ops": self.ok,
            "events": self.events(),
            "errors": self.errors,
            "rejected_429": self.rejected,
            "first_error": self.first_error,
            "seconds": self.seconds,
            "ops_per_s": self.ops_per_s(),
            "events_per_s": self.events_per_s(),
            "mb_per_s": self.mb_per_s(size),
            "latency_ms": {
                "p50": self.quantile_ms(0.5),
                "p90": self.quantile_ms(0.9),
                "p99": self.quantile_ms(0.99),
                "p99_9": self.quantile_ms(0.999),
                "max": self.hist.max() as f64 / 1000.0,
                "mean": self.hist.mean() / 1000.0,
            },
            "cpu_seconds": {
                "harness_process": self.cpu.process,
                "server_process": self.cpu.server,
                "client_runtime": self.cpu.client,
                "librdkafka_threads": self.cpu.rdkafka,
                "broker_process": self.cpu.broker,
            },
            "events_per_cpu_second": events_per_cpu(self),
            "drain_seconds": self.drain.as_secs_f64(),
            "peak_rss_mib": self.peak_rss_kib.map(|k| k as f64 / 1024.0),
            "peak_rss_is_per_phase": self.peak_rss_per_phase,
        })
    }
}

/// Events per CPU second of this process, the server and the external broker.
pub(crate) fn events_per_cpu(phase: &Phase) -> Option<f64> {
    let cpu = phase.cpu.total();
    (cpu > 0.0).then(|| phase.events() as f64 / cpu)
}

/// CPU seconds of this process, the server and the external broker per event.
pub(crate) fn cpu_per_event(phase: &Phase) -> Option<f64> {
    events_per_cpu(phase).filter(|r| *r > 0.0).map(|r| 1.0 / r)
}

/// What a phase is called and how its results are counted.
pub(crate) struct Spec {
    key: &'static str,
    label: String,
    /// Connections, or publishes in flight.
    concurrency: String,
    events_per_op: u64,
    /// The server process the phase loads (its CPU and peak RSS are measured), with its address.
    server: Option<(SocketAddr, u32)>,
    /// The phase loads sidebus: wait for its pipeline to empty before and after.
    sidebus: bool,
    /// The status a sidebus request of the phase answers when it succeeds.
    pub(crate) expect: http::StatusCode,
}

impl Spec {
    pub(crate) fn new(
        key: &'static str,
        label: impl Into<String>,
        concurrency: impl Into<String>,
    ) -> Self {
        Self {
            key,
            label: label.into(),
            concurrency: concurrency.into(),
            events_per_op: 1,
            server: None,
            sidebus: false,
            expect: http::StatusCode::OK,
        }
    }

    /// The phase loads `server`.
    pub(crate) fn on(mut self, server: &Server) -> Self {
        self.server = Some((server.addr, server.pid));
        self
    }

    pub(crate) fn expect(mut self, status: http::StatusCode) -> Self {
        self.expect = status;
        self
    }

    /// The phase loads sidebus `server`.
    pub(crate) fn sidebus(self, server: &Server) -> Self {
        let mut spec = self.on(server);
        spec.sidebus = true;
        spec
    }

    pub(crate) fn events_per_op(mut self, n: u64) -> Self {
        self.events_per_op = n;
        self
    }
}

/// Runs one phase with its workers: warm up, then measure.
pub(crate) async fn phase<O: Op>(ctx: &Ctx, spec: Spec, ops: Vec<O>, drive: Drive) -> Phase {
    let args = &ctx.args;
    let mut ops = ops;
    if args.warmup > 0.0 {
        let warmup = match drive {
            Drive::Closed { .. } => Drive::Closed {
                duration: Duration::from_secs_f64(args.warmup),
            },
            Drive::Open { rate, .. } => Drive::Open {
                rate,
                total: ((rate * args.warmup) as u64).max(1),
            },
        };
        ops = run(ops, warmup, args.max_ops).await.0;
    }
    let pid = spec.server.map(|(_, pid)| pid);
    let sidebus = spec.server.filter(|_| spec.sidebus).map(|(addr, _)| addr);
    if let Some(addr) = sidebus {
        Server::drain_at(addr).await;
    }
    let per_phase = pid.is_some_and(reset_peak_rss);
    let before = Cpu::now(&ctx.broker_pids, pid);
    let (ops, tally) = run(ops, drive, args.max_ops).await;
    let drained = match sidebus {
        Some(addr) => Server::drain_at(addr).await,
        None => Duration::ZERO,
    };
    let cpu = Cpu::now(&ctx.broker_pids, pid).since(before);
    let peak = pid.and_then(peak_rss_kib);
    drop(ops);
    Phase {
        key: spec.key,
        label: spec.label,
        concurrency: spec.concurrency,
        events_per_op: spec.events_per_op,
        ok: tally.counts.ok,
        errors: tally.counts.errors,
        rejected: tally.counts.rejected,
        first_error: tally.counts.first_error,
        seconds: tally.elapsed.as_secs_f64(),
        hist: tally.hist,
        cpu,
        drain: drained,
        peak_rss_kib: peak,
        peak_rss_per_phase: per_phase,
        sidebus: spec.sidebus,
        skipped: None,
    }
}

//! The report of a run: the table on stdout and the same as JSON.

use std::time::Duration;

use serde_json::{json, Value};

use crate::brokers::BrokerSetup;
use crate::phase::{cpu_per_event, events_per_cpu, Phase};
use crate::Ctx;

pub(crate) struct Report {
    broker: String,
    rate: Option<f64>,
    pub(crate) phases: Vec<Phase>,
}

impl Report {
    pub(crate) fn new(setup: &BrokerSetup, phases: Vec<Phase>, rate: Option<f64>) -> Self {
        Self {
            broker: setup.label(),
            rate,
            phases,
        }
    }

    fn get(&self, key: &str) -> Option<&Phase> {
        self.phases
            .iter()
            .find(|p| p.key == key && p.skipped.is_none())
    }

    /// The highest c÷a this run allows: every single-event POST costs at least what a bare
    /// request cost (server and load client) plus what one native publish cost (client and
    /// broker), all on the same cores. With the broker's CPU counted, this holds whatever sidebus
    /// does, so a target above it cannot be met on this machine.
    fn single_event_ceiling(&self) -> Option<f64> {
        let bare = cpu_per_event(self.get("a")?)?;
        let native = cpu_per_event(self.native_for(1)?)?;
        Some(crate::cpu::ceiling(bare, native))
    }

    /// `(name, value)` of each ratio that both its phases produced.
    fn ratios(&self) -> Vec<(&'static str, f64)> {
        let rate = |key| self.get(key).map(Phase::events_per_s);
        let ops = |key| self.get(key).map(Phase::ops_per_s);
        let p = |key, q| self.get(key).map(|ph: &Phase| ph.quantile_ms(q));
        let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let list = if self.rate.is_some() {
            vec![
                ("p50 sidebus / p50 native", div(p("c", 0.5), p("b", 0.5))),
                ("p99 sidebus / p99 native", div(p("c", 0.99), p("b", 0.99))),
                (
                    "p99.9 sidebus / p99.9 native",
                    div(p("c", 0.999), p("b", 0.999)),
                ),
                ("p50 sidebus / p50 bare HTTP", div(p("c", 0.5), p("a", 0.5))),
            ]
        } else {
            vec![
                (
                    "c/a  sidebus single ack-wait req/s / bare HTTP req/s",
                    div(ops("c"), ops("a")),
                ),
                (
                    "c'/a sidebus single respond-async req/s / bare HTTP req/s",
                    div(ops("c_async"), ops("a")),
                ),
                (
                    "d/b  sidebus batch events/s / native events/s",
                    div(rate("d"), rate("b")),
                ),
                (
                    "c/b  sidebus single ack-wait events/s / native events/s (b_single where run)",
                    div(rate("c"), self.native_for(1).map(Phase::events_per_s)),
                ),
                (
                    "ceiling of c/a and c'/a on this machine: a bare request's CPU / (that + a native publish's CPU)",
                    self.single_event_ceiling(),
                ),
            ]
        };
        list.into_iter()
            .filter_map(|(name, v)| v.map(|v| (name, v)))
            .collect()
    }

    /// The floor of sidebus phase `phase`, in CPU µs per event: the bare handler's CPU per
    /// request (its share of a batch entry for batches) plus the native client's CPU per event
    /// at the same concurrency — phase b_single (as many publishes in flight as connections)
    /// for single events where it was measured, phase b (a batch's worth) otherwise; nothing
    /// where the broker has no native client (the memory broker).
    fn floor_us(&self, phase: &Phase) -> Option<f64> {
        let bare = self.get("a")?.server_us_per_event()?;
        let native = self.native_for(phase.events_per_op());
        let native = match native {
            Some(b) => b.client_us_per_event()?,
            None => 0.0,
        };
        Some(bare / phase.events_per_op() as f64 + native)
    }

    /// The native phase a sidebus phase of `events_per_op` events per request is held to.
    fn native_for(&self, events_per_op: u64) -> Option<&Phase> {
        let single = self.get("b_single").filter(|_| events_per_op == 1);
        single.or_else(|| self.get("b"))
    }

    /// `(phase, sidebus CPU µs per event, floor µs per event)` of every sidebus phase.
    fn floors(&self) -> Vec<(&'static str, f64, f64)> {
        self.phases
            .iter()
            .filter(|p| p.skipped.is_none() && p.sidebus)
            .filter_map(|p| Some((p.key, p.server_us_per_event()?, self.floor_us(p)?)))
            .collect()
    }

    /// Per schema phase measured with (s): its median sidebus CPU µs per event over the rounds,
    /// and the median of its difference to (s) of the same round — what the rule costs.
    fn schema_costs(&self) -> Vec<(&'static str, f64, f64)> {
        let rounds = |key| -> Vec<f64> {
            self.phases
                .iter()
                .filter(|p| p.key == key && p.skipped.is_none())
                .filter_map(Phase::server_us_per_event)
                .collect()
        };
        let plain = rounds("s");
        if plain.is_empty() {
            return Vec::new();
        }
        ["s", "s_json", "s_avro"]
            .into_iter()
            .filter_map(|key| {
                let us = rounds(key);
                let over: Vec<f64> = us.iter().zip(&plain).map(|(u, p)| u - p).collect();
                Some((key, median(us)?, median(over)?))
            })
            .collect()
    }

    pub(crate) fn table(&self, ctx: &Ctx) -> String {
        use std::fmt::Write;
        let args = &ctx.args;
        let mut out = String::new();
        let mode = match self.rate {
            Some(r) => format!("steady rate {r}/s (open loop)"),
            None => "throughput (closed loop)".into(),
        };
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "sidebus load harness — {mode}; broker {}; topic {}",
            self.broker, ctx.topic
        );
        let _ = writeln!(
            out,
            "payload {} B; {} connections; {} s per phase after {} s warm-up; batch {}; {} cores shared by \
             client ({} threads), sidebus ({} threads) and the broker",
            args.size,
            args.connections,
            args.seconds,
            args.warmup,
            args.batch,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            args.client_threads,
            args.server_threads,
        );
        if !args.sidebus_toml.is_empty() {
            let _ = writeln!(
                out,
                "sidebus config added: {}",
                args.sidebus_toml.replace('\n', "; ")
            );
        }
        let _ = writeln!(
            out,
            "{:<7} {:<50} {:>14} {:>10} {:>11} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>9}",
            "", "phase", "concurrency", "ok ops", "events/s", "MB/s", "p50 ms", "p99 ms", "p99.9ms",
            "max ms", "errors", "hrn s", "srv s", "cli s", "rdk s", "brkr s", "RSS MiB", "ev/cpu-s"
        );
        for p in &self.phases {
            if let Some(reason) = &p.skipped {
                let _ = writeln!(out, "{:<7} {:<50} {reason}", p.key, p.label);
                continue;
            }
            let _ = writeln!(
                out,
                "{:<7} {:<50} {:>14} {:>10} {:>11.0} {:>7.1} {:>8.2} {:>8.2} {:>8.2} {:>8.1} {:>7} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>7.0} {:>9.0}",
                p.key,
                truncate(&p.label, 50),
                p.concurrency,
                p.ok,
                p.events_per_s(),
                p.mb_per_s(args.size),
                p.quantile_ms(0.5),
                p.quantile_ms(0.99),
                p.quantile_ms(0.999),
                p.hist.max() as f64 / 1000.0,
                p.errors + p.rejected,
                p.cpu.process,
                p.cpu.server,
                p.cpu.client,
                p.cpu.rdkafka,
                p.cpu.broker,
                p.peak_rss_kib.map_or(f64::NAN, |k| k as f64 / 1024.0),
                events_per_cpu(p).unwrap_or(f64::NAN),
            );
        }
        for p in &self.phases {
            if p.rejected > 0 {
                let _ = writeln!(
                    out,
                    "    {}: {} refused with 429 (pipeline full)",
                    p.key, p.rejected
                );
            }
            if let Some(e) = &p.first_error {
                let _ = writeln!(out, "    {}: first error: {}", p.key, truncate(e, 300));
            }
            if p.drain > Duration::from_millis(100) {
                let _ = writeln!(
                    out,
                    "    {}: pipeline took {:.2} s to empty after the load stopped (CPU included)",
                    p.key,
                    p.drain.as_secs_f64()
                );
            }
        }
        for (name, value) in self.ratios() {
            let _ = writeln!(out, "ratio {name} = {value:.3}");
        }
        if let (Some(plain), Some(spooled)) = (
            self.get("c").and_then(Phase::server_us_per_event),
            self.get("c_spool").and_then(Phase::server_us_per_event),
        ) {
            let _ = writeln!(
                out,
                "spool cost c_spool sidebus CPU {spooled:.2} µs/event, {:+.2} µs over c (no spool)",
                spooled - plain
            );
        }
        if let (Some(plain), Some(governed)) = (
            self.get("c").and_then(Phase::server_us_per_event),
            self.get("c_gov").and_then(Phase::server_us_per_event),
        ) {
            let _ = writeln!(
                out,
                "governance cost c_gov sidebus CPU {governed:.2} µs/event, {:+.2} µs over c (no principal, no quota)",
                governed - plain
            );
        }
        if let (Some(governed), Some(policed)) = (
            self.get("c_gov").and_then(Phase::server_us_per_event),
            self.get("c_pol").and_then(Phase::server_us_per_event),
        ) {
            let _ = writeln!(
                out,
                "policy cost c_pol sidebus CPU {policed:.2} µs/event, {:+.2} µs over c_gov (no topic rule, no audit log)",
                policed - governed
            );
        }
        if let Some(away) = self.get("d_spool") {
            let _ = writeln!(
                out,
                "spooling throughput d_spool {:.0} events/s ({:.1} MB/s of payload) to a broker that is away",
                away.events_per_s(),
                away.mb_per_s(ctx.args.size)
            );
        }
        if let Some(bare) = self.get("a").and_then(Phase::server_us_per_event) {
            let native = |key, in_flight| {
                self.get(key)
                    .and_then(Phase::client_us_per_event)
                    .map_or(String::new(), |n| {
                        format!(", native client {n:.2} µs/event at {in_flight} in flight")
                    })
            };
            let _ = writeln!(
                out,
                "floor: bare handler {bare:.2} µs/request{}{}",
                native("b_single", ctx.args.connections),
                native("b", ctx.args.native_inflight)
            );
            for (key, us, floor) in self.floors() {
                let _ = writeln!(
                    out,
                    "floor {key:<7} sidebus CPU {us:>6.2} µs/event, floor {floor:>6.2} µs/event, sidebus ÷ floor = {:.2}",
                    us / floor
                );
            }
        }
        for (key, us, over) in self.schema_costs() {
            let _ = writeln!(
                out,
                "schema cost {key:<7} sidebus CPU {us:.2} µs/event, {over:+.2} µs over s (no rule), medians of {} rounds",
                ctx.args.rounds.max(1)
            );
        }
        let _ = writeln!(
            out,
            "latency per request (per publish for native); MB/s = payload bytes / 10^6; hrn s = this \
             harness process (cli = its load client + native publishers, rdk = its librdkafka threads: \
             the native producer and the mock cluster); srv s = the phase's server process (sidebus's \
             release binary or the bare handler), all its threads; brkr s = external broker process; \
             RSS = peak RSS of the server process during the phase; ev/cpu-s = events / (harness + \
             server + broker CPU s)"
        );
        out
    }

    pub(crate) fn json(&self, ctx: &Ctx) -> Value {
        let args = &ctx.args;
        json!({
            "harness": "sidebus benches/load",
            "mode": if self.rate.is_some() { "rate" } else { "throughput" },
            "broker": args.broker.name(),
            "broker_detail": self.broker,
            "topic": ctx.topic,
            "connections": args.connections,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "size": args.size,
            "batch": args.batch,
            "native_inflight": args.native_inflight,
            "rate": self.rate,
            "sidebus_toml": args.sidebus_toml,
            "machine": {
                "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
                "server_threads": args.server_threads,
                "client_threads": args.client_threads,
                "note": "client, sidebus and the broker share the machine's cores",
            },
            "phases": self.phases.iter().map(|p| p.json(args.size)).collect::<Vec<_>>(),
            "ratios": self.ratios().into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "floor": self.floors().into_iter().map(|(k, us, floor)| (k.to_string(), json!({"sidebus_cpu_us_per_event": us, "floor_us_per_event": floor, "sidebus_over_floor": us / floor}))).collect::<serde_json::Map<_, _>>(),
            "schema_cost": self.schema_costs().into_iter().map(|(k, us, over)| (k.to_string(), json!({"server_cpu_us_per_event": us, "over_no_rule_us": over}))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

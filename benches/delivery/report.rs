//! The report of a run: each phase's rate and CPU per event by party, then every sidebus
//! phase's CPU against its floor and whether the efficiency targets hold.

use crate::args::{Args, BrokerKind};
use crate::cpu::ceiling;
use crate::measure::{Cpu, Measured};
use crate::{BATCH, CONNECTIONS, IN_FLIGHT, NATIVE_ACK_PENDING};

/// Target of binary (and filtered) deliveries: sidebus's CPU per event at most this many times
/// its floor.
const BINARY_TARGET: f64 = 1.3;
/// Target of batch deliveries: sidebus's CPU per event at most this many µs over its floor.
const BATCH_TARGET_US: f64 = 1.0;

/// One round of the batch phase (c) and the native consumer (d), each if it ran.
pub(crate) struct Round {
    pub(crate) batch: Option<Measured>,
    pub(crate) native: Option<Measured>,
}

/// What the phases of a run measured.
pub(crate) struct Results {
    /// (a) the bare HTTP client.
    pub(crate) bare: Option<Measured>,
    /// (b) binary deliveries.
    pub(crate) binary: Option<Measured>,
    /// (f) binary deliveries through a CESQL filter.
    pub(crate) filtered: Option<Measured>,
    /// (c) and (d), `--rounds` times.
    pub(crate) rounds: Vec<Round>,
    /// (e) the native consumer at a subscription's acks pending.
    pub(crate) held: Option<Measured>,
}

/// sidebus's share of a phase's CPU, the figure each sidebus phase is held to its floor by.
fn sidebus(c: &Cpu) -> f64 {
    c.sidebus
}

/// The native consumer's share of a phase's CPU, the broker half of a floor.
fn native(c: &Cpu) -> f64 {
    c.native
}

impl Results {
    /// Phases that ended before every expected event arrived.
    pub(crate) fn partial(&self) -> usize {
        let rounds = self.rounds.iter().flat_map(|r| [&r.batch, &r.native]);
        [&self.bare, &self.binary, &self.filtered, &self.held]
            .into_iter()
            .chain(rounds)
            .flatten()
            .filter(|m| !m.complete)
            .count()
    }

    /// The bare client's CPU µs per request: the HTTP half of every floor.
    fn bare_client_us(&self) -> Option<f64> {
        Some(self.bare.as_ref()?.us_per_event(|c| c.client))
    }

    /// The native consumer's CPU µs per event in `phase`; 0 for the memory broker, which has
    /// no native client.
    fn native_us(args: &Args, phase: Option<&Measured>) -> Option<f64> {
        match args.broker {
            BrokerKind::Memory => Some(0.0),
            BrokerKind::Nats => Some(phase?.us_per_event(native)),
        }
    }

    /// Floor of a binary delivery: a bare request plus a native consume at [`IN_FLIGHT`] unacked.
    fn binary_floor_us(&self, args: &Args) -> Option<f64> {
        Some(self.bare_client_us()? + Self::native_us(args, self.held.as_ref())?)
    }

    /// Floor of a batch entry: the native consume of the same round plus a [`BATCH`]th of a
    /// bare request.
    fn batch_floor_us(&self, args: &Args, round: &Round) -> Option<f64> {
        Some(Self::native_us(args, round.native.as_ref())? + self.bare_client_us()? / BATCH as f64)
    }
}

/// How the report says whether a target holds.
fn holds(ok: bool) -> &'static str {
    if ok {
        "holds"
    } else {
        "NO"
    }
}

/// A phase's name, with its round when the run has several.
fn numbered(args: &Args, name: &str, round: usize) -> String {
    if args.rounds == 1 {
        name.to_string()
    } else {
        format!("{name}, round {}", round + 1)
    }
}

/// Prints the phase table and the floors.
pub(crate) fn print(args: &Args, results: &Results) {
    println!();
    println!(
        "{:<46} {:>8} {:>8} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}  note",
        "phase (CPU columns: µs per event)",
        "events",
        "requests",
        "seconds",
        "events/s",
        "sidebus",
        "receiver",
        "client",
        "native",
        "broker",
        "harness",
        "RSS MiB"
    );
    let row = |name: &str, m: &Measured, rss: bool, note: String| {
        let us = |of: fn(&Cpu) -> f64| m.us_per_event(of);
        let rss = m
            .peak_rss_kib
            .filter(|_| rss)
            .map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
        let note = if m.complete {
            note
        } else {
            format!("PARTIAL: {} of {} events; {note}", m.count, args.events)
        };
        println!(
            "{:<46} {:>8} {:>8} {:>7.2} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}  {note}",
            name,
            m.count,
            m.requests,
            m.wall.as_secs_f64(),
            m.rate(),
            us(|c| c.sidebus),
            us(|c| c.receiver),
            us(|c| c.client),
            us(|c| c.native),
            us(|c| c.broker),
            us(|c| c.harness),
            rss,
        );
    };
    if let Some(bare) = &results.bare {
        let note = format!("{} B bodies; per request", args.size);
        let name = format!("(a) bare HTTP client, {CONNECTIONS} keep-alive conns");
        row(&name, bare, false, note);
    }
    if let Some(binary) = &results.binary {
        let note = format!("max_in_flight {IN_FLIGHT}");
        row("(b) sidebus webhook, binary", binary, true, note);
    }
    if let Some(filtered) = &results.filtered {
        let note = "a 3-clause sql filter every event passes".to_string();
        row("(f) the same as (b), filtered", filtered, true, note);
    }
    for (i, round) in results.rounds.iter().enumerate() {
        if let Some(batch) = &round.batch {
            let per_request = batch.count as f64 / batch.requests.max(1) as f64;
            let note = format!("{per_request:.1} events/request");
            let name = numbered(args, &format!("(c) sidebus webhook, batch of {BATCH}"), i);
            row(&name, batch, true, note);
        }
        if let Some(d) = &round.native {
            let note = format!("max_ack_pending {NATIVE_ACK_PENDING}");
            row(
                &numbered(args, "(d) native JetStream consumer + ack", i),
                d,
                false,
                note,
            );
        }
    }
    if let Some(e) = &results.held {
        let note = format!("max_ack_pending {IN_FLIGHT}, as a subscription's max_in_flight");
        row("(e) native JetStream consumer + ack", e, false, note);
    }
    if args.broker == BrokerKind::Memory && (args.runs('d') || args.runs('e')) {
        println!("(d), (e) native consumer: n/a, the memory broker has no native client");
    }
    println!();
    print_rates(results);
    print_floors(args, results);
    println!(
        "CPU is counted in 10 ms ticks: ±{:.2} µs per event in a delivery phase of {} events",
        0.01 * 1e6 / args.events.max(1) as f64,
        args.events
    );
    println!(
        "sidebus = its process, all threads; receiver, client (phase a's bare HTTP client) and \
         native = those runtimes' threads in this process; harness = all of this process; \
         broker = nats-server; RSS = sidebus's peak RSS in the phase"
    );
}

/// The throughput ratios of the earlier targets: binary deliveries against bare requests (with
/// the highest this machine allows, [`ceiling`]) and batch deliveries against the native consumer.
fn print_rates(results: &Results) {
    let whole = |c: &Cpu| c.harness + c.sidebus + c.broker;
    if let (Some(a), Some(b)) = (&results.bare, &results.binary) {
        let allowed = results.held.as_ref().map_or(String::new(), |e| {
            let ceiling = ceiling(a.us_per_event(whole), e.us_per_event(whole));
            format!(" (ceiling of b ÷ a on this machine: {ceiling:.3})")
        });
        println!(
            "rate b ÷ a (binary deliveries / bare requests): {:.3}{allowed}",
            b.rate() / a.rate()
        );
    }
    for (i, round) in results.rounds.iter().enumerate() {
        if let (Some(c), Some(d)) = (&round.batch, &round.native) {
            println!(
                "rate c ÷ d (batch deliveries / native consume), round {}: {:.3}",
                i + 1,
                c.rate() / d.rate()
            );
        }
    }
}

/// Each sidebus phase against its floor, and whether its target holds.
fn print_floors(args: &Args, results: &Results) {
    let Some(bare) = &results.bare else {
        println!("floor: needs phase (a), the bare HTTP client");
        return;
    };
    let native_note = match (args.broker, &results.held) {
        (BrokerKind::Memory, _) => "; no native consumer (the memory broker)".to_string(),
        (BrokerKind::Nats, Some(e)) => format!(
            "; native consumer {:.2} µs/event at {IN_FLIGHT} unacked (broker {:.2})",
            e.us_per_event(native),
            e.us_per_event(|c| c.broker)
        ),
        (BrokerKind::Nats, None) => "; binary floor needs phase (e)".to_string(),
    };
    println!(
        "floor: bare client {:.2} µs/request (receiver {:.2}){native_note}",
        bare.us_per_event(|c| c.client),
        bare.us_per_event(|c| c.receiver),
    );
    for (key, phase) in [
        ("(b) binary", &results.binary),
        ("(f) filtered", &results.filtered),
    ] {
        let (Some(m), Some(floor)) = (phase, results.binary_floor_us(args)) else {
            continue;
        };
        let us = m.us_per_event(sidebus);
        let ratio = us / floor;
        println!(
            "{key:<14} {:>9.0} events/s, sidebus {us:>6.2} µs/event, floor {floor:>6.2}, \
             sidebus ÷ floor = {ratio:.2} (target ≤ {BINARY_TARGET}: {}); receiver {:.2}, broker {:.2} µs/event",
            m.rate(),
            holds(ratio <= BINARY_TARGET),
            m.us_per_event(|c| c.receiver),
            m.us_per_event(|c| c.broker),
        );
    }
    if let (Some(b), Some(f)) = (&results.binary, &results.filtered) {
        println!(
            "filter cost: f − b = {:+.2} sidebus CPU µs per event",
            f.us_per_event(sidebus) - b.us_per_event(sidebus)
        );
    }
    let mut over = Vec::new();
    for (i, round) in results.rounds.iter().enumerate() {
        let (Some(m), Some(floor)) = (&round.batch, results.batch_floor_us(args, round)) else {
            continue;
        };
        let us = m.us_per_event(sidebus);
        over.push(us - floor);
        println!(
            "{:<14} {:>9.0} events/s, sidebus {us:>6.2} µs/event, floor {floor:>6.2}, \
             sidebus − floor = {:+.2} µs (target ≤ +{BATCH_TARGET_US:.2}: {}); receiver {:.2}, broker {:.2} µs/event",
            numbered(args, "(c) batch", i),
            m.rate(),
            us - floor,
            holds(us - floor <= BATCH_TARGET_US),
            m.us_per_event(|c| c.receiver),
            m.us_per_event(|c| c.broker),
        );
    }
    if over.len() > 1 {
        over.sort_by(f64::total_cmp);
        println!(
            "(c) batch, sidebus − floor, median of {} rounds: {:+.2} µs",
            over.len(),
            over[over.len() / 2]
        );
    }
    if !results.rounds.is_empty() && over.is_empty() && args.runs('c') {
        println!("(c) batch floor needs phase (d) of the same round");
    }
}

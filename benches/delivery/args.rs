//! The harness's command line: the options the top of `main.rs` lists, hand-parsed so that
//! `cargo test --benches`, which passes none (not even `--bench`), gets the smoke run.

/// The broker sidebus delivers from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BrokerKind {
    Memory,
    Nats,
}

pub(crate) struct Args {
    pub(crate) broker: BrokerKind,
    /// Events prefilled, and delivered by each sidebus phase (`--events`).
    pub(crate) events: usize,
    /// Length of the bare HTTP phase (a) (`--seconds`).
    pub(crate) seconds: f64,
    /// Bytes of each event's data and of each bare request's body (`--size`).
    pub(crate) size: usize,
    /// Tokio workers of sidebus, of the receiver, of the load client and of the native consumer,
    /// each (`--threads`).
    pub(crate) threads: usize,
    pub(crate) nats_url: String,
    /// Phases to run, a subset of `abcdef` (`--phases`): one can be profiled alone.
    pub(crate) phases: String,
    /// Times the batch phase (c) and the native consume (d) run, alternately (`--rounds`): their
    /// ratio moves by a tenth from run to run, so a run reports each round's and the median.
    pub(crate) rounds: usize,
    /// No `--bench`: a short run (the smoke run `cargo test --benches` makes), which fails when
    /// a phase does not complete.
    pub(crate) smoke: bool,
}

impl Args {
    pub(crate) fn runs(&self, phase: char) -> bool {
        self.phases.contains(phase)
    }

    pub(crate) fn parse() -> Self {
        let raw: Vec<String> = std::env::args().skip(1).collect();
        let full = raw.iter().any(|a| a == "--bench");
        let mut args = Args {
            broker: BrokerKind::Memory,
            events: if full { 20_000 } else { 500 },
            seconds: if full { 5.0 } else { 0.5 },
            size: 1024,
            threads: 2,
            nats_url: std::env::var("SIDEBUS_TEST_NATS")
                .unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
            phases: "abcdef".into(),
            rounds: 1,
            smoke: !full,
        };
        let mut it = raw.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .unwrap_or_else(|| panic!("{flag} needs a value"))
                    .clone()
            };
            let number = |v: String| -> usize {
                v.parse()
                    .unwrap_or_else(|_| panic!("{flag}: `{v}` is not a number"))
            };
            match flag.as_str() {
                "--bench" => {}
                "--broker" => {
                    args.broker = match value().as_str() {
                        "memory" => BrokerKind::Memory,
                        "nats" => BrokerKind::Nats,
                        other => panic!("--broker: `{other}` is not memory or nats"),
                    }
                }
                "--events" => args.events = number(value()),
                "--size" => args.size = number(value()),
                "--threads" => args.threads = number(value()),
                "--rounds" => args.rounds = number(value()).max(1),
                "--phases" => {
                    args.phases = value();
                    if let Some(c) = args.phases.chars().find(|c| !"abcdef".contains(*c)) {
                        panic!("--phases: `{c}` is not one of a, b, c, d, e, f");
                    }
                }
                "--seconds" => {
                    let v = value();
                    args.seconds = v
                        .parse()
                        .unwrap_or_else(|_| panic!("--seconds: `{v}` is not a number"));
                }
                other => panic!(
                    "unknown argument {other}; see the top of benches/delivery/main.rs for the options"
                ),
            }
        }
        assert!(
            (1..=10_000_000).contains(&args.events),
            "--events must be 1..=10000000"
        );
        assert!(
            (1..=1_000_000).contains(&args.size),
            "--size must be 1..=1000000"
        );
        assert!(
            args.seconds > 0.0 && args.seconds <= 600.0,
            "--seconds must be in (0, 600]"
        );
        assert!((1..=64).contains(&args.threads), "--threads must be 1..=64");
        if args.broker == BrokerKind::Nats {
            assert!(
                args.nats_url.contains("127.0.0.1") || args.nats_url.contains("localhost"),
                "SIDEBUS_TEST_NATS must point at 127.0.0.1"
            );
        }
        args
    }
}

//! The harness's command line: which broker, how much load, for how long.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum BrokerKind {
    Memory,
    Kafka,
    Nats,
    Amqp,
}

impl BrokerKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            BrokerKind::Memory => "memory",
            BrokerKind::Kafka => "kafka",
            BrokerKind::Nats => "nats",
            BrokerKind::Amqp => "amqp",
        }
    }
}

/// The phases of the throughput run, in the order they run.
const PHASES: [&str; 13] = [
    "a", "b", "b_single", "c", "c_async", "d", "s", "s_json", "s_avro", "c_spool", "d_spool",
    "c_gov", "c_pol",
];

/// sidebus end-to-end load harness.
#[derive(Parser, Debug, Clone)]
#[command(name = "load", about = "sidebus end-to-end load harness (issue 3)")]
pub(crate) struct Args {
    /// Broker to publish to.
    #[arg(long, value_enum, default_value = "memory")]
    pub(crate) broker: BrokerKind,
    /// Keep-alive HTTP connections (one client task each); also the workers of --rate mode.
    #[arg(long, default_value_t = 64)]
    pub(crate) connections: usize,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) seconds: f64,
    /// Unmeasured warm-up seconds before each phase.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// Payload bytes per event (a JSON object of exactly this size; at least 8).
    #[arg(long, default_value_t = 1024)]
    pub(crate) size: usize,
    /// Events per batch request.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: usize,
    /// Publishes the native client keeps in flight in phase (b), the floor of a batch entry:
    /// by default as many as a batch POST carries. Phase (b_single), the floor of a single
    /// POST, keeps `--connections` in flight, as many as sidebus has requests.
    #[arg(long, default_value_t = 100)]
    pub(crate) native_inflight: usize,
    /// Steady-rate mode: requests (and native publishes) per second, open loop.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Rounds of the schema phases (s, s_json, s_avro), each round in a rotated order; the
    /// report gives each rule's median cost over (s) of the same round, which drift between
    /// phases would otherwise bias.
    #[arg(long, default_value_t = 1)]
    pub(crate) rounds: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Worker threads of sidebus's tokio runtime.
    #[arg(long, default_value_t = 2)]
    pub(crate) server_threads: usize,
    /// Worker threads of the load client's tokio runtime.
    #[arg(long, default_value_t = 2)]
    pub(crate) client_threads: usize,
    /// Events the memory broker keeps per topic (its `retention`).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) memory_retention: usize,
    /// Render sidebus's Prometheus metrics every this many milliseconds, as a scraper of
    /// `/metrics` would (0 = never; histogram samples then pile up until the first render).
    #[arg(long, default_value_t = 0)]
    pub(crate) scrape_ms: u64,
    /// Partitions of the Kafka topic the harness creates.
    #[arg(long, default_value_t = 3)]
    pub(crate) partitions: i32,
    /// Most operations per phase, whatever the time left.
    #[arg(long, default_value_t = 20_000_000)]
    pub(crate) max_ops: u64,
    /// TOML added to sidebus's config before its broker table, to measure a setting against
    /// the defaults in the same harness, e.g. `--sidebus-toml $'[pipeline]\nlinger = "1ms"'`.
    #[arg(long, default_value = "")]
    pub(crate) sidebus_toml: String,
    /// Phases of the throughput run to measure (a, b, c, c_async, d, the schema phases s,
    /// s_json, s_avro, the spool phases c_spool, d_spool, and c_gov, c_pol), e.g. `--phases c` to
    /// profile one;
    /// ratios are printed for the phases measured. All by default.
    #[arg(long, value_delimiter = ',', default_values_t = PHASES.map(String::from))]
    pub(crate) phases: Vec<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    /// Whether phase `key` is to be measured.
    pub(crate) fn measures(&self, key: &str) -> bool {
        self.phases.iter().any(|p| p == key)
    }

    /// What `cargo test --benches` runs: a short check that every phase works.
    pub(crate) fn smoke() -> Self {
        Self {
            broker: BrokerKind::Memory,
            connections: 4,
            seconds: 0.3,
            warmup: 0.1,
            size: 256,
            batch: 10,
            native_inflight: 16,
            rate: None,
            json: None,
            server_threads: 2,
            client_threads: 2,
            memory_retention: 1000,
            scrape_ms: 0,
            partitions: 1,
            max_ops: 100_000,
            sidebus_toml: String::new(),
            phases: PHASES.map(String::from).to_vec(),
            rounds: 1,
            bench: false,
        }
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.connections == 0 || self.native_inflight == 0 {
            return Err("--connections and --native-inflight must be at least 1".into());
        }
        if !(self.seconds > 0.0 && self.seconds <= 3600.0) {
            return Err("--seconds must be in (0, 3600]".into());
        }
        if !(0.0..=600.0).contains(&self.warmup) {
            return Err("--warmup must be in [0, 600]".into());
        }
        if self.size < 8 {
            return Err("--size must be at least 8 bytes".into());
        }
        if self.batch == 0 || self.batch > 1000 {
            return Err("--batch must be 1..=1000 (sidebus's default limits.max_batch)".into());
        }
        if let Some(rate) = self.rate {
            if !(rate > 0.0 && rate <= 1_000_000.0) {
                return Err("--rate must be in (0, 1000000]".into());
            }
        }
        if let Some(unknown) = self.phases.iter().find(|p| !PHASES.contains(&p.as_str())) {
            return Err(format!(
                "--phases: `{unknown}` is not one of {}",
                PHASES.join(", ")
            ));
        }
        if self.server_threads == 0 || self.client_threads == 0 {
            return Err("--server-threads and --client-threads must be at least 1".into());
        }
        Ok(())
    }
}

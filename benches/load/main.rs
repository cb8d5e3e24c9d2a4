//! End-to-end load harness (issue 3). In one run, for one broker, it measures:
//!
//! - (a) `http-bare`: the bare HTTP ceiling, the same POSTs against a trivial axum handler that
//!   reads and discards the body, served the same way sidebus is;
//! - (b) `native`: the broker's own client publishing the same events straight to the broker with
//!   the same acknowledgement level (Kafka: `acks=all`, idempotent; NATS: JetStream publish acks;
//!   AMQP: publisher confirms, persistent, mandatory), a batch's worth of publishes in flight
//!   (`--native-inflight`, default 100): the native part of a batch entry's floor; and
//!   (b_single) the same with `--connections` publishes in flight, as many as sidebus has
//!   single POSTs waiting: the native part of a single POST's floor;
//! - (c) `sidebus-single`: one event per POST (binary mode) over N keep-alive connections, waiting
//!   for the broker's acknowledgement, and (c') `sidebus-single-async` with `Prefer: respond-async`;
//! - (d) `sidebus-batch`: `application/cloudevents-batch+json` POSTs of 100 events;
//! - the schema phases, single ack-wait POSTs of a 1 KiB order event (nested objects, eight line
//!   items): (s) with no schema rule, (s_json) checked by a JSON Schema rule, (s_avro) encoded to
//!   Avro by a native rule — the rules pick events by CloudEvent type, so all three go to the same
//!   topic, and the report prints each rule's sidebus CPU per event over (s);
//! - (c_pol) phase (c_gov) against a sidebus that also maps the topic by a rule and writes an
//!   audit log file: what topic mapping and the audit log add;
//! - (c_gov) phase (c) against a second sidebus with one principal (every request carries its
//!   bearer token) and one quota that never refuses: what authentication and a quota check cost;
//! - the spool phases: (c_spool) phase (c) through the same broker with a spool configured (the
//!   broker up, so the spool is never written), and (d_spool) batches of 100 to a broker that is
//!   never reachable, so every event is written to its spool: the spooling throughput.
//!
//! It prints events/s, MB/s (payload bytes, 10^6 B), latency percentiles (per request; per
//! publish for native), CPU seconds (whole process, and split by thread group), the brokers' own
//! CPU seconds, the peak RSS of each phase, and the ratios c÷a and d÷b; `--json FILE` writes the
//! same as JSON. `--rate R` switches to a steady-rate (open-loop) run instead: R requests/s spread
//! over the N connections, latency measured from each request's intended start (no coordinated
//! omission), for bare HTTP, native publish-to-ack, sidebus and the schema phases (what a rule
//! costs when the machine is not saturated).
//!
//! ```text
//! cargo bench --bench load -- --broker nats --connections 64 --seconds 10 --size 1024 --json out.json
//! cargo bench --bench load -- --broker amqp --rate 5000 --seconds 10
//! ```
//!
//! sidebus runs as its release binary in a child process, as a user runs it (one per config:
//! plain, c_gov, c_pol), and the bare handler runs as this binary again in a child process of
//! its own; both on `--server-threads` tokio workers (default 2). Their CPU is read from
//! `/proc/<pid>/stat`, so a phase's server CPU is the whole server process — its broker client's
//! threads included — and nothing of the load client's. The load client and the native clients
//! run here, on a runtime of `--client-threads` (default 2). Client, servers, the Kafka mock
//! cluster and the NATS and RabbitMQ servers share the machine's cores: on a 2-core machine every
//! rate here is a lower bound of what sidebus does with cores of its own; the CPU per event is
//! the figure to compare.
//!
//! The floor of a phase is what the same work costs without sidebus: the bare handler's CPU per
//! request (phase a) plus the native client's CPU per event (phase b) — per batch entry, the bare
//! request's share is divided by the batch size. The report prints sidebus's CPU per event ÷ that
//! floor for every sidebus phase. All traffic goes to 127.0.0.1; every loop is bounded by time
//! and by count.
//!
//! Brokers: NATS at `SIDEBUS_TEST_NATS` (default nats://127.0.0.1:4222), RabbitMQ at
//! `SIDEBUS_TEST_AMQP` (default amqp://guest:guest@127.0.0.1:5672/%2f), Kafka at
//! `SIDEBUS_TEST_KAFKA` or else librdkafka's in-process mock cluster. The harness creates its own
//! topic, stream or exchange+queue (bounded in size) and deletes it at the end.
//!
//! Without any argument (as `cargo test --benches` runs it) it does a short smoke run against the
//! memory broker and fails if any phase failed.

#[path = "../common/amqp.rs"]
mod amqp;
mod args;
#[path = "../common/batch.rs"]
mod batch;
mod brokers;
#[path = "../common/child.rs"]
mod child;
#[path = "../common/cpu.rs"]
mod cpu;
mod drive;
#[path = "../common/memory.rs"]
mod memory;
mod native;
mod ops;
mod phase;
mod process;
mod report;
mod runs;
#[path = "../common/schema.rs"]
mod schema;
mod server;

use std::time::Duration;

use bytes::Bytes;
use clap::Parser;

use crate::args::Args;
use crate::batch::BatchBody;
use crate::brokers::BrokerSetup;
use crate::child::{get, Server};
use crate::process::broker_pids;
use crate::runs::{run_rate, run_throughput};
use crate::server::{schema_rules, serve_bare, start_bare, start_sidebus, Policy, BARE_LISTEN};

/// Longest a single request or publish may take before it counts as an error.
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// The name sidebus knows the broker under.
const BROKER: &str = "bench";
/// The same broker with a spool (phase c_spool).
const SPOOLED: &str = "bench-spooled";
/// A broker that is never reachable, with a spool: everything published to it is spooled
/// (phase d_spool).
const AWAY: &str = "bench-away";
const EVENT_TYPE: &str = "com.example.bench";
/// The CloudEvent type the JSON Schema rule of the schema phases applies to.
const SCHEMA_JSON_TYPE: &str = "com.example.order.json";
/// The CloudEvent type the native Avro rule of the schema phases applies to.
const SCHEMA_AVRO_TYPE: &str = "com.example.order.avro";
/// The schema phases' type with no rule: what (s_json) and (s_avro) are measured against.
const SCHEMA_NONE_TYPE: &str = "com.example.order.none";
const SOURCE: &str = "sidebus://bench";
/// Set, this binary writes into that directory what `benches/instructions.sh` runs the schema
/// cases with — `rules.toml` (the schema phases' rules), the schemas and `order.json` (the 1 KiB order
/// event) — and exits.
const SCHEMA_FILES: &str = "SIDEBUS_LOAD_SCHEMA_FILES";

// The same allocator as the `sidebus` binary, for the bare handler this binary also serves.
sidebus::mimalloc_on_demand!();

fn main() {
    if let Ok(listen) = std::env::var(BARE_LISTEN) {
        serve_bare(&listen);
    }
    if let Ok(dir) = std::env::var(SCHEMA_FILES) {
        write_schema_files(std::path::Path::new(&dir));
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing at all.
    let smoke = std::env::args_os().len() <= 1;
    let args = if smoke { Args::smoke() } else { Args::parse() };
    if let Err(e) = args.check() {
        eprintln!("load: {e}");
        std::process::exit(2);
    }
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .thread_name("load-client")
        .enable_all()
        .build()
        .expect("client runtime");

    let topic = format!("bench-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let setup = client_rt.block_on(BrokerSetup::start(&args, &topic));
    let start = |policy| client_rt.block_on(start_sidebus(&args, &setup, policy, &topic));
    let sidebus = start(Policy::None);
    let governed = args.measures("c_gov").then(|| start(Policy::Governance));
    let policed = args.measures("c_pol").then(|| start(Policy::Full));
    let bare = client_rt.block_on(start_bare(&args));

    let ctx = Ctx {
        topic: topic.clone(),
        payload: Bytes::from(payload(args.size)),
        sidebus,
        governed,
        policed,
        bare,
        broker_pids: broker_pids(args.broker),
        args,
    };
    if ctx.args.scrape_ms > 0 {
        let addr = ctx.sidebus.addr;
        let every = Duration::from_millis(ctx.args.scrape_ms);
        // Ends with the process (which exits once the report is written).
        client_rt.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                std::hint::black_box(get(addr, "/metrics").await);
            }
        });
    }
    let report = client_rt.block_on(async {
        match ctx.args.rate {
            Some(rate) => run_rate(&ctx, &setup, rate).await,
            None => run_throughput(&ctx, &setup).await,
        }
    });
    client_rt.block_on(setup.cleanup(&topic));
    let failed = report
        .phases
        .iter()
        .filter(|p| p.skipped.is_none() && (p.ok == 0 || (smoke && p.errors > 0)))
        .count();
    let table = report.table(&ctx);
    let json = ctx
        .args
        .json
        .as_ref()
        .map(|path| (path.clone(), report.json(&ctx)));
    drop(ctx);
    for policy in [Policy::None, Policy::Governance, Policy::Full] {
        let _ = std::fs::remove_dir_all(server::state_dir(policy));
    }

    print!("{table}");
    if let Some((path, json)) = json {
        let text = serde_json::to_string_pretty(&json).expect("JSON");
        match std::fs::write(&path, text + "\n") {
            Ok(()) => println!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("load: writing {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
    if smoke {
        println!("load harness smoke run: {failed} failed phases");
    }
    // Exit without dropping the client runtime: the Kafka producers would flush for seconds.
    // The servers were stopped with the context; everything the broker holds was deleted above.
    std::process::exit(if failed > 0 { 1 } else { 0 });
}

/// What every phase needs.
struct Ctx {
    args: Args,
    topic: String,
    payload: Bytes,
    /// The sidebus of every phase but c_gov and c_pol.
    sidebus: Server,
    /// Phase c_gov's sidebus (a principal and a quota).
    governed: Option<Server>,
    /// Phase c_pol's sidebus (that, a topic rule and an audit log).
    policed: Option<Server>,
    /// The bare handler (phase a).
    bare: Server,
    broker_pids: Vec<u32>,
}

impl Ctx {
    fn events_path(&self) -> String {
        self.path_for(BROKER)
    }

    /// The publish path of the run's topic on sidebus's broker `broker`.
    fn path_for(&self, broker: &str) -> String {
        format!("/v1/publish/{broker}/{}", self.topic)
    }
}

/// A JSON object of exactly `size` bytes (`size` >= 8): `{"p":"xxx…"}`.
fn payload(size: usize) -> String {
    format!("{{\"p\":\"{}\"}}", "x".repeat(size - 8))
}

/// A `application/cloudevents-batch+json` body of `n` structured events with `payload` as data.
fn batch_body(n: usize, payload: &str) -> BatchBody {
    BatchBody::new(
        n,
        &format!(
            r#""type":"{EVENT_TYPE}","source":"{SOURCE}","datacontenttype":"application/json","data":{payload}"#
        ),
    )
}

/// Writes the schema phases' rules, schemas and order event into `dir` (see [`SCHEMA_FILES`]).
fn write_schema_files(dir: &std::path::Path) -> ! {
    let rules = schema_rules(dir);
    std::fs::write(dir.join("rules.toml"), rules).expect("writing rules.toml");
    let order = schema::order(1024).to_string();
    std::fs::write(dir.join("order.json"), order).expect("writing order.json");
    std::process::exit(0)
}

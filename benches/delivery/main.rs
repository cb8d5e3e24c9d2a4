//! Webhook delivery harness: sidebus's CPU per delivered event against its floor, what the same
//! work costs without sidebus.
//!
//! ```text
//! cargo bench --bench delivery -- --broker memory --events 20000 --seconds 5 --size 1024
//! cargo bench --bench delivery -- --broker nats --events 50000
//! cargo bench --bench delivery -- --broker nats --events 100000 --rounds 3 --phases acde
//! ```
//!
//! sidebus runs as its release binary (the one `cargo bench` builds) in a child process, with a
//! generated config of one broker: the memory broker, or NATS JetStream at `SIDEBUS_TEST_NATS`
//! (default nats://127.0.0.1:4222). The webhook receiver (an axum handler that reads the body
//! and answers 204), the bare HTTP load client and the native consumer stay in this process, each
//! on a tokio runtime of its own (`--threads` workers each, default 2, as sidebus gets). Each
//! phase's CPU is read from `/proc`: sidebus's from `/proc/<pid>/stat` (all its threads, its
//! broker client's included), each runtime's from its threads in `/proc/self/task`, the
//! broker's from nats-server's. sidebus's peak RSS is reset before each phase and read after.
//! One run, all on 127.0.0.1:
//!
//! * (a) a bare hyper client POSTs `--size` byte bodies over 64 keep-alive connections to the
//!   receiver for `--seconds`: the client's threads' CPU per request is the HTTP half of a
//!   delivery's floor; the receiver's is reported too;
//! * a topic is prefilled with `--events` events of `--size` bytes through sidebus's batch route,
//!   and an unmeasured binary subscription delivers up to [`WARMUP_EVENTS`] of them;
//! * (b) sidebus delivers them: a subscription is PUT (start earliest, ordering none,
//!   max_in_flight 64, content_mode binary) and timed from the PUT until the receiver has
//!   counted every event;
//! * (f) (b) again through a three-clause CESQL filter that every event passes ([`FILTER`]);
//! * (c) the same with content_mode batch, max_batch 100;
//! * (d) for NATS, an async-nats JetStream pull consumer reading the same events from the
//!   stream and acking each, max_ack_pending 1,000 (`--rounds N` runs (c) and (d) alternately N
//!   times, since one round moves by a tenth from run to run);
//! * (e) for NATS, the same consumer held to max_ack_pending 64, as a subscription with
//!   max_in_flight 64 is.
//!
//! The floor of a binary (or filtered) delivery is the bare client's CPU per request plus the
//! native consumer's CPU per event at 64 unacknowledged (e); of a batch entry, the native
//! consumer's per event in the same round (d) plus a hundredth of a bare request. The memory
//! broker has no native client: its floors are the bare client's share alone. Neither side
//! counts the broker, whose CPU per event is printed beside. The report prints, per sidebus
//! phase, events/s, sidebus's CPU µs per event, the floor, `sidebus ÷ floor` (binary, filtered)
//! or `sidebus − floor` (batch), and whether the targets hold: binary ≤ 1.3 × its floor, batch ≤
//! its floor + 1 µs per event. On a 2-core machine sidebus, the harness and the broker share the
//! cores: the rates are lower bounds, the CPU per event is the figure to compare.
//!
//! `--phases` runs a subset of `abcdef` (to profile one phase alone). Every wait is bounded
//! ([`PHASE_LIMIT`], and a phase without progress for [`STALL_LIMIT`] ends early, reported as
//! partial). The NATS stream (`SIDEBUS_<topic>`) is deleted at the end. Without `--bench` (as
//! `cargo test --benches` runs it) it does a short smoke run against the memory broker, which
//! fails when a phase does not complete.

mod args;
mod bare;
#[path = "../common/child.rs"]
mod child;
#[path = "../common/cpu.rs"]
mod cpu;
mod measure;
#[path = "../common/memory.rs"]
mod memory;
#[cfg(feature = "nats")]
mod native;
mod receiver;
mod report;
mod sidecar;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::args::{Args, BrokerKind};
use crate::cpu::pids_named;
use crate::measure::{Measured, Meter, CLIENT_THREADS, NATIVE_THREADS, RECEIVER_THREADS};
use crate::receiver::{start_receiver, Counter};
use crate::report::{Results, Round};

// The same allocator as the `sidebus` binary, for the receiver and the clients.
sidebus::mimalloc_on_demand!();

/// The name sidebus knows the broker under.
const BROKER: &str = "bench";
/// Keep-alive connections of the bare HTTP load client.
const CONNECTIONS: usize = 64;
/// Longest any one phase may take.
const PHASE_LIMIT: Duration = Duration::from_secs(300);
/// A delivery phase without progress for this long ends early.
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// Deliveries a subscription keeps in flight (`max_in_flight`, so JetStream's
/// `max_ack_pending`), as the issue's delivery target names.
const IN_FLIGHT: usize = 64;
/// Events per batch of phase (c) (`max_batch`).
const BATCH: usize = 100;
/// Deliveries of the unmeasured binary subscription before the first measured phase: the first
/// subscription of a fresh process pays for what later ones reuse (allocator pages, connection
/// pools), which would tilt the first phase against the others.
const WARMUP_EVENTS: usize = 10_000;
/// Acknowledgements the native consumer of phase (d) may leave pending.
const NATIVE_ACK_PENDING: usize = 1000;
/// The filter of phase (f): three clauses, as a subscription would write them, that every
/// prefilled event passes, so (f) delivers what (b) delivers.
const FILTER: &str =
    "type = 'bench' AND source LIKE 'sidebus://%' AND datacontenttype = 'text/plain'";

/// A runtime of `threads` workers named `name`, so its threads' CPU can be told apart.
fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    let args = Args::parse();
    #[cfg(not(feature = "nats"))]
    assert!(
        args.broker == BrokerKind::Memory,
        "--broker nats needs sidebus' `nats` feature"
    );
    let client = runtime(CLIENT_THREADS, args.threads);
    let receiver_rt = runtime(RECEIVER_THREADS, args.threads);
    let native_rt = runtime(NATIVE_THREADS, args.threads);

    let counter = Counter::default();
    let receiver = receiver_rt.block_on(start_receiver(counter.clone()));
    let topic = format!("delivery-bench-{}", std::process::id());
    let state_dir = tempfile::tempdir().expect("a temporary state directory");
    let server = client.block_on(sidecar::start(&args, state_dir.path()));
    let meter = Meter {
        sidebus: server.pid,
        broker: match args.broker {
            BrokerKind::Memory => Vec::new(),
            BrokerKind::Nats => pids_named("nats-server"),
        },
    };
    let broker_label = match args.broker {
        BrokerKind::Memory => "memory (inside sidebus)".to_string(),
        BrokerKind::Nats => format!("nats: {}, stream {}", args.nats_url, stream_name(&topic)),
    };
    println!(
        "sidebus webhook delivery: {} events of {} B, broker {broker_label}; sidebus's binary \
         (pid {}) and this harness's receiver, load client and native consumer on {} threads each",
        args.events, args.size, server.pid, args.threads
    );

    #[cfg(feature = "nats")]
    if args.broker == BrokerKind::Nats {
        // A stream left by an earlier run with the same pid would add events to `earliest`.
        client.block_on(native::delete_stream(&args.nats_url, &topic, true));
    }

    let bare = args.runs('a').then(|| {
        meter.run(|| {
            client.block_on(async {
                tokio::spawn(bare::bare_client(receiver, args.size, args.seconds))
                    .await
                    .expect("the bare client ran")
            })
        })
    });

    let fill_started = Instant::now();
    client.block_on(sidecar::fill(server.addr, &topic, args.events, args.size));
    let fill_wall = fill_started.elapsed();
    println!(
        "prefill: {} events through POST /v1/publish/{BROKER}/{topic}/batch in {:.2} s ({:.0} events/s)",
        args.events,
        fill_wall.as_secs_f64(),
        args.events as f64 / fill_wall.as_secs_f64()
    );

    let subscription = |name: &str, path: &str, mode: Value| {
        let spec = subscription_spec(&topic, receiver, path, mode);
        let measured = meter.run(|| {
            client.block_on(sidecar::deliver(
                server.addr,
                &counter,
                name,
                &spec,
                args.events,
            ))
        });
        client.block_on(sidecar::unsubscribe(server.addr, name));
        measured
    };
    let native = |pending: usize| -> Option<Measured> {
        #[cfg(feature = "nats")]
        if args.broker == BrokerKind::Nats {
            let consume =
                native::consume(args.nats_url.clone(), topic.clone(), args.events, pending);
            return Some(meter.run(|| {
                native_rt.block_on(async {
                    tokio::spawn(consume)
                        .await
                        .expect("the native consumer ran")
                })
            }));
        }
        let _ = pending;
        None
    };
    if ['b', 'c', 'f'].into_iter().any(|p| args.runs(p)) {
        let spec = subscription_spec(&topic, receiver, "hook", json!({"content_mode": "binary"}));
        let events = args.events.min(WARMUP_EVENTS);
        client.block_on(sidecar::warm_up(server.addr, &counter, &spec, events));
    }
    let binary = args.runs('b').then(|| {
        let mode = json!({"content_mode": "binary"});
        subscription("bench-binary", "hook", mode)
    });
    let filtered = args.runs('f').then(|| {
        let mode = json!({"content_mode": "binary", "filters": {"sql": FILTER}});
        subscription("bench-filtered", "hook", mode)
    });
    let rounds = (0..args.rounds)
        .map(|round| Round {
            batch: args.runs('c').then(|| {
                let mode = json!({"content_mode": "batch", "max_batch": BATCH});
                subscription(&format!("bench-batch-{round}"), "batch", mode)
            }),
            native: args.runs('d').then(|| native(NATIVE_ACK_PENDING)).flatten(),
        })
        .collect();
    let held = args.runs('e').then(|| native(IN_FLIGHT)).flatten();

    #[cfg(feature = "nats")]
    if args.broker == BrokerKind::Nats {
        client.block_on(native::delete_stream(&args.nats_url, &topic, false));
    }
    drop(server);

    let results = Results {
        bare,
        binary,
        filtered,
        rounds,
        held,
    };
    report::print(&args, &results);
    let partial = results.partial();
    if args.smoke {
        println!("delivery harness smoke run: {partial} partial phases");
    }
    drop(client);
    drop(receiver_rt);
    drop(native_rt);
    if args.smoke && partial > 0 {
        std::process::exit(1);
    }
}

/// A subscription of the prefilled topic from its start, to the receiver's `path`, with
/// `mode`'s members (the content mode, a filter) added.
fn subscription_spec(topic: &str, receiver: SocketAddr, path: &str, mode: Value) -> Value {
    let mut spec = json!({
        "broker": BROKER,
        "topic": topic,
        "endpoint": format!("http://{receiver}/{path}"),
        "start": "earliest",
        "ordering": "none",
        "max_in_flight": IN_FLIGHT,
    });
    if let (Some(spec), Value::Object(mode)) = (spec.as_object_mut(), mode) {
        spec.extend(mode);
    }
    spec
}

/// The JetStream stream sidebus keeps the topic in, for the report and the clean-up.
fn stream_name(topic: &str) -> String {
    #[cfg(feature = "nats")]
    return sidebus::backend::nats::stream_name(topic);
    #[cfg(not(feature = "nats"))]
    return format!("SIDEBUS_{}", topic.replace(['.', '-'], "_"));
}

//! Webhook delivery load harness: how close sidebus' webhook deliveries come to the bare HTTP
//! ceiling of the machine, and (for NATS) to the broker's native consume rate.
//!
//! ```text
//! cargo bench --bench delivery -- --broker memory --events 20000 --seconds 5 --size 1024
//! cargo bench --bench delivery -- --broker nats --events 20000
//! cargo bench --bench delivery -- --broker nats --events 100000 --rounds 3 --phases acde
//! ```
//!
//! One run measures, all on 127.0.0.1:
//!
//! * (a) the bare HTTP ceiling: a hyper load client POSTs `--size` byte bodies over 64 keep-alive
//!   connections to a trivial axum receiver (reads the body, answers 204) for `--seconds`;
//! * (b) sidebus deliveries/s to the same kind of receiver: a topic is prefilled with `--events`
//!   events of `--size` bytes through the batch publish route, then a subscription is PUT
//!   (start earliest, ordering none, max_in_flight 64, content_mode binary) and timed from the
//!   PUT until the receiver has counted every event;
//! * (c) the same with content_mode batch, max_batch 100 (events/s);
//! * (d) for `--broker nats` (JetStream at `SIDEBUS_TEST_NATS`, default nats://127.0.0.1:4222):
//!   an async-nats JetStream pull consumer reading the same events from the stream and acking
//!   each; n/a for the memory broker;
//! * (e) for NATS, the same native consumer held to `max_ack_pending` 64, as a subscription with
//!   `max_in_flight` 64 is;
//! * (f) (b) again with a three-clause CESQL filter that every event passes
//!   ([`FILTER`]): its CPU per event against (b)'s is what a `sql` filter costs at delivery;
//!
//! and prints the table (with the CPU seconds per event of this process and the broker), the
//! ratios b÷a and c÷d, and for NATS the highest b÷a the machine allows: a delivery needs at
//! least a bare request's CPU plus what (e) spent per event, on the same cores. sidebus, the
//! receiver and the load client each run on their own tokio runtime (`--threads` workers each,
//! default 2), so on a 2-core machine the numbers are lower bounds. Every wait is bounded
//! (`PHASE_LIMIT`, and a stall of `STALL_LIMIT` without progress ends a phase early, reported as
//! partial). `--phases` runs a subset of `abcde` (to profile one phase alone); `--rounds N` runs
//! (c) and (d) alternately N times and prints each round's c÷d and their median, because one
//! round's ratio moves by about a tenth from run to run. The NATS stream (`SIDEBUS_<topic>`) is deleted at the end. Without `--bench` (as `cargo test --benches` runs
//! it) it does a short smoke run against the memory broker.

#[path = "../common/cpu.rs"]
mod cpu;
#[cfg(feature = "nats")]
mod native;
mod receiver;

use std::net::SocketAddr;
use std::sync::atomic::Ordering as Atomic;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use sidebus::{AppState, RawConfig};

use crate::cpu::{ceiling, own_seconds, pids_named, seconds_of};
use crate::receiver::{start_receiver, Counter};

// The same allocator as the `sidebus` binary, so the in-process server is measured as shipped.
sidebus::mimalloc_on_demand!();

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
/// Acknowledgements the native consumer of phase (d) may leave pending.
const NATIVE_ACK_PENDING: usize = 1000;
/// The filter of phase (f): three clauses, as a subscription would write them, that every
/// prefilled event passes, so (f) delivers what (b) delivers.
const FILTER: &str =
    "type = 'bench' AND source LIKE 'sidebus://%' AND datacontenttype = 'text/plain'";
/// Events per batch publish request during the prefill.
const FILL_BATCH: usize = 2000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum BrokerKind {
    Memory,
    Nats,
}

struct Args {
    broker: BrokerKind,
    events: usize,
    seconds: f64,
    size: usize,
    threads: usize,
    nats_url: String,
    /// Phases to run, a subset of `abcdef` (`--phases`): one can be profiled alone.
    phases: String,
    /// Times the batch phase (c) and the native consume (d) run, alternately (`--rounds`): their
    /// ratio moves by a tenth from run to run, so a run reports each round's and the median.
    rounds: usize,
}

impl Args {
    fn runs(&self, phase: char) -> bool {
        self.phases.contains(phase)
    }
}

impl Args {
    fn parse() -> Self {
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

fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// One round of the batch phase (c) and the native consumer (d), each if it ran.
type Round = (Option<Measured>, Option<Measured>);

/// What one phase measured.
struct Measured {
    /// Events (or requests, for the bare ceiling) completed.
    count: u64,
    /// HTTP requests the receiver answered.
    requests: u64,
    wall: Duration,
    /// Whether every expected event arrived.
    complete: bool,
    /// CPU seconds this process and the broker spent in the phase (set by [`metered`]).
    cpu: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.count as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn cpu_per_event(&self) -> f64 {
        self.cpu / self.count.max(1) as f64
    }
}

/// Runs one phase and records the CPU seconds it took, this process's and the broker's.
fn metered(broker_pids: &[u32], phase: impl FnOnce() -> Measured) -> Measured {
    let before = own_seconds() + seconds_of(broker_pids);
    let mut measured = phase();
    measured.cpu = own_seconds() + seconds_of(broker_pids) - before;
    measured
}

fn main() {
    let args = Args::parse();
    #[cfg(not(feature = "nats"))]
    assert!(
        args.broker == BrokerKind::Memory,
        "--broker nats needs sidebus' `nats` feature"
    );
    let server = runtime("sb-server", args.threads);
    let receiver_rt = runtime("receiver", args.threads);
    let client = runtime("load-client", args.threads);

    let counter = Counter::default();
    let receiver = receiver_rt.block_on(start_receiver(counter.clone()));
    let topic = format!("delivery-bench-{}", std::process::id());
    let state_dir = tempfile::tempdir().expect("a temporary state directory");
    let (addr, _state) = server.block_on(start_sidebus(&args, state_dir.path()));

    let broker_label = match args.broker {
        BrokerKind::Memory => "memory (in-process)".to_string(),
        BrokerKind::Nats => format!("nats: {}, stream {}", args.nats_url, stream_name(&topic)),
    };
    println!(
        "sidebus webhook delivery: {} events of {} B, broker {broker_label}, \
         {} threads each for sidebus / receiver / load client",
        args.events, args.size, args.threads
    );

    #[cfg(feature = "nats")]
    if args.broker == BrokerKind::Nats {
        // A stream left by an earlier run with the same pid would add events to `earliest`.
        client.block_on(native::delete_stream(&args.nats_url, &topic, true));
    }

    // (a) The bare HTTP ceiling.
    let broker_pids = match args.broker {
        BrokerKind::Memory => Vec::new(),
        BrokerKind::Nats => pids_named("nats-server"),
    };
    let bare = args.runs('a').then(|| {
        metered(&broker_pids, || {
            client.block_on(http_ceiling(receiver, args.size, args.seconds))
        })
    });
    counter.reset();

    // Prefill.
    let fill_started = Instant::now();
    client.block_on(fill(addr, &topic, args.events, args.size));
    let fill_wall = fill_started.elapsed();
    println!(
        "prefill: {} events through POST /v1/publish/{BROKER}/{topic}/batch in {:.2} s ({:.0} events/s)",
        args.events,
        fill_wall.as_secs_f64(),
        args.events as f64 / fill_wall.as_secs_f64()
    );

    // (b) Binary deliveries; then (c) batch deliveries and (d) the native consume rate,
    // alternately for each round; then (e) the native consumer held to a subscription's acks
    // in flight.
    let subscription = |name: &str, path: &str, mode: serde_json::Value| {
        let mut spec = serde_json::json!({
            "broker": BROKER,
            "topic": topic,
            "endpoint": format!("http://{receiver}/{path}"),
            "start": "earliest",
            "ordering": "none",
            "max_in_flight": IN_FLIGHT,
        });
        spec.as_object_mut()
            .unwrap()
            .extend(mode.as_object().unwrap().clone());
        metered(&broker_pids, || {
            client.block_on(deliver(addr, &counter, name, spec, args.events))
        })
    };
    let native = |pending: usize| -> Option<Measured> {
        #[cfg(feature = "nats")]
        if args.broker == BrokerKind::Nats {
            return Some(metered(&broker_pids, || {
                client.block_on(native::consume(
                    &args.nats_url,
                    &topic,
                    args.events,
                    pending,
                ))
            }));
        }
        let _ = pending;
        None
    };
    let binary = args.runs('b').then(|| {
        subscription(
            "bench-binary",
            "hook",
            serde_json::json!({"content_mode": "binary"}),
        )
    });
    let filtered = args.runs('f').then(|| {
        subscription(
            "bench-filtered",
            "hook",
            serde_json::json!({"content_mode": "binary", "filters": {"sql": FILTER}}),
        )
    });
    let rounds: Vec<Round> = (0..args.rounds)
        .map(|round| {
            let batch = args.runs('c').then(|| {
                subscription(
                    &format!("bench-batch-{round}"),
                    "batch",
                    serde_json::json!({"content_mode": "batch", "max_batch": 100}),
                )
            });
            let consume = args.runs('d').then(|| native(NATIVE_ACK_PENDING)).flatten();
            (batch, consume)
        })
        .collect();
    let held = args.runs('e').then(|| native(IN_FLIGHT)).flatten();

    #[cfg(feature = "nats")]
    if args.broker == BrokerKind::Nats {
        client.block_on(native::delete_stream(&args.nats_url, &topic, false));
    }

    println!();
    println!(
        "{:<48} {:>10} {:>10} {:>9} {:>12} {:>9}  note",
        "phase", "events", "requests", "seconds", "events/s", "cpu µs/ev"
    );
    let row = |name: &str, m: &Measured, note: String| {
        println!(
            "{:<48} {:>10} {:>10} {:>9.2} {:>12.0} {:>9.1}  {note}",
            name,
            m.count,
            m.requests,
            m.wall.as_secs_f64(),
            m.rate(),
            m.cpu_per_event() * 1e6
        );
    };
    let complete = |m: &Measured| {
        if m.complete {
            String::new()
        } else {
            format!("PARTIAL: {} of {} events", m.count, args.events)
        }
    };
    let numbered = |name: &str, round: usize| {
        if args.rounds == 1 {
            name.to_string()
        } else {
            format!("{name}, round {}", round + 1)
        }
    };
    if let Some(bare) = &bare {
        row(
            &format!("(a) bare HTTP POST, {CONNECTIONS} keep-alive conns"),
            bare,
            format!("{} B bodies, requests/s", args.size),
        );
    }
    if let Some(binary) = &binary {
        row(
            "(b) sidebus webhook, binary, in-flight 64",
            binary,
            complete(binary),
        );
    }
    if let Some(filtered) = &filtered {
        row(
            "(f) the same as (b), with a 3-clause sql filter",
            filtered,
            complete(filtered),
        );
    }
    for (round, (batch, consume)) in rounds.iter().enumerate() {
        if let Some(batch) = batch {
            row(
                &numbered("(c) sidebus webhook, batch of 100", round),
                batch,
                format!(
                    "{:.1} events/request {}",
                    batch.count as f64 / batch.requests.max(1) as f64,
                    complete(batch)
                ),
            );
        }
        if let Some(d) = consume {
            row(
                &numbered("(d) native JetStream pull consumer + ack", round),
                d,
                format!(
                    "async-nats, max_ack_pending {NATIVE_ACK_PENDING} {}",
                    complete(d)
                ),
            );
        }
    }
    if let Some(e) = &held {
        row(
            "(e) the same, max_ack_pending 64",
            e,
            format!("as a subscription's max_in_flight {}", complete(e)),
        );
    }
    if args.broker == BrokerKind::Memory && args.runs('d') {
        println!(
            "{:<48} {:>10} {:>10} {:>9} {:>12} {:>9}  memory broker has no native client",
            "(d) native consume", "n/a", "n/a", "n/a", "n/a", "n/a"
        );
    }
    println!();
    let ratio = |x: &Measured, y: &Measured| x.rate() / y.rate().max(1e-9);
    if let (Some(binary), Some(bare)) = (&binary, &bare) {
        println!(
            "ratio b ÷ a (binary deliveries / bare HTTP requests): {:.3}",
            ratio(binary, bare)
        );
    }
    if let (Some(binary), Some(filtered)) = (&binary, &filtered) {
        println!(
            "filter cost (f − b, CPU µs per event of this process and the broker): {:.2}",
            (filtered.cpu_per_event() - binary.cpu_per_event()) * 1e6
        );
    }
    if let (Some(bare), Some(e)) = (&bare, &held) {
        println!(
            "ceiling of b ÷ a on this machine (a bare request's CPU / (that + (e)'s CPU per event)): {:.3}",
            ceiling(bare.cpu_per_event(), e.cpu_per_event())
        );
    }
    let batch_over = |name: &str, of: &dyn Fn(&Round) -> Option<f64>| {
        let mut ratios: Vec<f64> = rounds.iter().filter_map(of).collect();
        if ratios.is_empty() {
            return;
        }
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        if ratios.len() == 1 {
            println!("{name}: {median:.3}");
        } else {
            println!("{name}: {} (median {median:.3})", each.join(", "));
        }
    };
    batch_over(
        "ratio c ÷ d (batch deliveries / native consume)     ",
        &|(c, d)| Some(ratio(c.as_ref()?, d.as_ref()?)),
    );
    batch_over(
        "ratio c ÷ a (batch deliveries / bare HTTP requests) ",
        &|(c, _)| Some(ratio(c.as_ref()?, bare.as_ref()?)),
    );

    drop(client);
    drop(server);
    drop(receiver_rt);
}

fn stream_name(topic: &str) -> String {
    #[cfg(feature = "nats")]
    return sidebus::backend::nats::stream_name(topic);
    #[cfg(not(feature = "nats"))]
    return format!("SIDEBUS_{}", topic.replace(['.', '-'], "_"));
}

// ---------------------------------------------------------------------------------------------
// sidebus

async fn start_sidebus(args: &Args, state_dir: &std::path::Path) -> (SocketAddr, AppState) {
    let broker = match args.broker {
        BrokerKind::Memory => format!("kind = \"memory\"\nretention = {}\n", args.events),
        BrokerKind::Nats => format!("kind = \"nats\"\nurl = \"{}\"\n", args.nats_url),
    };
    let toml = format!(
        r#"
source = "sidebus://delivery-bench"
state_dir = "{}"
limits = {{ max_body = "64MiB", max_event = "2MiB", max_batch = 10000, pipeline_depth = 65536, pipeline_bytes = "64MiB" }}
[brokers.{BROKER}]
{broker}
"#,
        state_dir.display()
    );
    let config = RawConfig::from_toml(&toml)
        .and_then(RawConfig::validate)
        .unwrap_or_else(|e| panic!("bench config is invalid: {e}"));
    let state = AppState::build(config).await.expect("backends build");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = sidebus::app(state.clone());
    tokio::spawn(async move {
        axum::serve(sidebus::nodelay(listener), app).await.unwrap();
    });
    (addr, state)
}

// ---------------------------------------------------------------------------------------------
// (a) the bare HTTP ceiling

async fn http_ceiling(receiver: SocketAddr, size: usize, seconds: f64) -> Measured {
    let body = Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    // A request still running at the deadline may take this much longer, no more.
    let hard_deadline = deadline + Duration::from_secs(10);
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let body = body.clone();
            tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(receiver)
                    .await
                    .expect("the receiver accepts");
                stream.set_nodelay(true).expect("TCP_NODELAY");
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .expect("HTTP handshake");
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                let (mut ok, mut failed) = (0u64, 0u64);
                while tokio::time::Instant::now() < deadline {
                    let request = Request::post("/hook")
                        .header(header::HOST, "127.0.0.1")
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .body(Full::new(body.clone()))
                        .expect("a valid request");
                    let exchange = async {
                        sender.ready().await?;
                        let response = sender.send_request(request).await?;
                        let status = response.status();
                        response.into_body().collect().await?;
                        Ok::<_, hyper::Error>(status)
                    };
                    match tokio::time::timeout_at(hard_deadline, exchange).await {
                        Ok(Ok(StatusCode::NO_CONTENT)) => ok += 1,
                        Ok(Ok(_)) => failed += 1,
                        Ok(Err(_)) | Err(_) => {
                            failed += 1;
                            break;
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for worker in workers {
        let (o, f) = worker.await.expect("load worker ran");
        ok += o;
        failed += f;
    }
    let wall = started.elapsed();
    if failed > 0 {
        eprintln!("delivery: {failed} bare HTTP requests failed");
    }
    Measured {
        count: ok,
        requests: ok,
        wall,
        complete: true,
        cpu: 0.0,
    }
}

// ---------------------------------------------------------------------------------------------
// (b), (c) sidebus deliveries

/// Publishes `events` text events of `size` bytes through the batch route (NDJSON).
async fn fill(addr: SocketAddr, topic: &str, events: usize, size: usize) {
    let http = reqwest::Client::new();
    // Without the bare phase before it, the prefill could start before the broker connection is up.
    let ready_by = Instant::now() + STALL_LIMIT;
    loop {
        let ready = http.get(format!("http://{addr}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            Instant::now() < ready_by,
            "sidebus is not ready after {STALL_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let data = "x".repeat(size);
    let mut sent = 0;
    while sent < events {
        let n = (events - sent).min(FILL_BATCH);
        let mut body = String::with_capacity(n * (size + 160));
        for i in sent..sent + n {
            body.push_str(&format!(
                "{{\"specversion\":\"1.0\",\"id\":\"e{i}\",\"source\":\"sidebus://delivery-bench\",\
                 \"type\":\"bench\",\"datacontenttype\":\"text/plain\",\"data\":\"{data}\"}}\n"
            ));
        }
        let response = http
            .post(format!("http://{addr}/v1/publish/{BROKER}/{topic}/batch"))
            .header("content-type", "application/x-ndjson")
            .timeout(Duration::from_secs(120))
            .body(body)
            .send()
            .await
            .expect("sidebus answers the batch publish");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, 200, "batch publish: {text}");
        let result: serde_json::Value = serde_json::from_str(&text).expect("a JSON answer");
        assert_eq!(result["failed"], 0, "{result}");
        sent += n;
    }
}

/// PUTs subscription `name`, waits (bounded) until the receiver has counted `events` events,
/// then deletes the subscription.
async fn deliver(
    addr: SocketAddr,
    counter: &Counter,
    name: &str,
    spec: serde_json::Value,
    events: usize,
) -> Measured {
    let http = reqwest::Client::new();
    counter.reset();
    let target = events as u64;
    let started = Instant::now();
    let response = http
        .put(format!("http://{addr}/v1/subscriptions/{name}"))
        .json(&spec)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("sidebus answers the subscription PUT");
    let status = response.status();
    assert!(
        status.is_success(),
        "PUT subscription {name}: {status} {}",
        response.text().await.unwrap_or_default()
    );
    let mut last = (0, Instant::now());
    let mut wall;
    loop {
        let seen = counter.events.load(Atomic::Relaxed);
        wall = started.elapsed();
        if seen >= target || wall >= PHASE_LIMIT {
            break;
        }
        if seen > last.0 {
            last = (seen, Instant::now());
        } else if last.1.elapsed() >= STALL_LIMIT {
            eprintln!("delivery: {name}: no progress for {STALL_LIMIT:?} at {seen} events");
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let seen = counter.events.load(Atomic::Relaxed);
    let requests = counter.requests.load(Atomic::Relaxed);
    let deleted = http
        .delete(format!("http://{addr}/v1/subscriptions/{name}"))
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    match deleted {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => eprintln!("delivery: DELETE subscription {name}: {}", r.status()),
        Err(e) => eprintln!("delivery: DELETE subscription {name}: {e}"),
    }
    Measured {
        count: seen.min(target),
        requests,
        wall,
        complete: seen >= target,
        cpu: 0.0,
    }
}

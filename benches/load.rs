//! End-to-end load harness (issue 3). In one run, for one broker, it measures:
//!
//! - (a) `http-bare`: the bare HTTP ceiling, the same POSTs against a trivial axum handler that
//!   reads and discards the body, served the same way sidebus is;
//! - (b) `native`: the broker's own client publishing the same events straight to the broker with
//!   the same acknowledgement level (Kafka: `acks=all`, idempotent; NATS: JetStream publish acks;
//!   AMQP: publisher confirms, persistent, mandatory), many publishes in flight;
//! - (c) `sidebus-single`: one event per POST (binary mode) over N keep-alive connections, waiting
//!   for the broker's acknowledgement, and (c') `sidebus-single-async` with `Prefer: respond-async`;
//! - (d) `sidebus-batch`: `application/cloudevents-batch+json` POSTs of 100 events.
//!
//! It prints events/s, MB/s (payload bytes, 10^6 B), latency percentiles (per request; per
//! publish for native), CPU seconds (whole process, and split by thread group), the brokers' own
//! CPU seconds, the peak RSS of each phase, and the ratios c÷a and d÷b; `--json FILE` writes the
//! same as JSON. `--rate R` switches to a steady-rate (open-loop) run instead: R requests/s spread
//! over the N connections, latency measured from each request's intended start (no coordinated
//! omission), for bare HTTP, native publish-to-ack and sidebus.
//!
//! ```text
//! cargo bench --bench load -- --broker nats --connections 64 --seconds 10 --size 1024 --json out.json
//! cargo bench --bench load -- --broker amqp --rate 5000 --seconds 10
//! ```
//!
//! sidebus runs in this process (`AppState::build` + `axum::serve` on 127.0.0.1:0) on its own
//! tokio multi-thread runtime (`--server-threads`, default 2); the load client runs on a second
//! runtime (`--client-threads`, default 2). Client, server, librdkafka's threads (and the Kafka
//! mock cluster) share the machine's cores, and so do the NATS and RabbitMQ servers: on a 2-core
//! machine every number here is a lower bound of what sidebus does with cores of its own. All
//! traffic goes to 127.0.0.1; every loop is bounded by time and by count.
//!
//! Brokers: NATS at `SIDEBUS_TEST_NATS` (default nats://127.0.0.1:4222), RabbitMQ at
//! `SIDEBUS_TEST_AMQP` (default amqp://guest:guest@127.0.0.1:5672/%2f), Kafka at
//! `SIDEBUS_TEST_KAFKA` or else librdkafka's in-process mock cluster. The harness creates its own
//! topic, stream or exchange+queue (bounded in size) and deletes it at the end.
//!
//! Without any argument (as `cargo test --benches` runs it) it does a short smoke run against the
//! memory broker and fails if any phase failed.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use http::{header, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sidebus::{AppState, RawConfig};

/// Longest a single request or publish may take before it counts as an error.
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the pipeline may take to empty between phases.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// Histogram shards: workers record into `worker % SHARDS`, keeping memory small and flat.
const SHARDS: usize = 16;
/// Longest latency the histograms hold, in microseconds (larger values saturate).
const MAX_LATENCY_US: u64 = 120_000_000;
/// The name sidebus knows the broker under.
const BROKER: &str = "bench";
const EVENT_TYPE: &str = "com.example.bench";
const SOURCE: &str = "sidebus://bench";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BrokerKind {
    Memory,
    Kafka,
    Nats,
    Amqp,
}

impl BrokerKind {
    fn name(self) -> &'static str {
        match self {
            BrokerKind::Memory => "memory",
            BrokerKind::Kafka => "kafka",
            BrokerKind::Nats => "nats",
            BrokerKind::Amqp => "amqp",
        }
    }
}

/// sidebus end-to-end load harness.
#[derive(Parser, Debug, Clone)]
#[command(name = "load", about = "sidebus end-to-end load harness (issue 3)")]
struct Args {
    /// Broker to publish to.
    #[arg(long, value_enum, default_value = "memory")]
    broker: BrokerKind,
    /// Keep-alive HTTP connections (one client task each); also the workers of --rate mode.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Unmeasured warm-up seconds before each phase.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Payload bytes per event (a JSON object of exactly this size; at least 8).
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Events per batch request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Publishes the native client keeps in flight in the throughput run.
    #[arg(long, default_value_t = 1000)]
    native_inflight: usize,
    /// Steady-rate mode: requests (and native publishes) per second, open loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Worker threads of sidebus's tokio runtime.
    #[arg(long, default_value_t = 2)]
    server_threads: usize,
    /// Worker threads of the load client's tokio runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Events the memory broker keeps per topic (its `retention`).
    #[arg(long, default_value_t = 10_000)]
    memory_retention: usize,
    /// Render sidebus's Prometheus metrics every this many milliseconds, as a scraper of
    /// `/metrics` would (0 = never; histogram samples then pile up until the first render).
    #[arg(long, default_value_t = 0)]
    scrape_ms: u64,
    /// Partitions of the Kafka topic the harness creates.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Most operations per phase, whatever the time left.
    #[arg(long, default_value_t = 20_000_000)]
    max_ops: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Args {
    /// What `cargo test --benches` runs: a short check that every phase works.
    fn smoke() -> Self {
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
            bench: false,
        }
    }

    fn check(&self) -> Result<(), String> {
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
        if self.server_threads == 0 || self.client_threads == 0 {
            return Err("--server-threads and --client-threads must be at least 1".into());
        }
        Ok(())
    }
}

// The same allocator as the `sidebus` binary, so the in-process server is measured as shipped.
sidebus::mimalloc_on_demand!();

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing at all.
    let smoke = std::env::args_os().len() <= 1;
    let args = if smoke { Args::smoke() } else { Args::parse() };
    if let Err(e) = args.check() {
        eprintln!("load: {e}");
        std::process::exit(2);
    }
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads)
        .thread_name("sb-server")
        .enable_all()
        .build()
        .expect("server runtime");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .thread_name("load-client")
        .enable_all()
        .build()
        .expect("client runtime");

    let topic = format!("bench-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let setup = client_rt.block_on(BrokerSetup::start(&args, &topic));
    let (sidebus_addr, state) = server_rt.block_on(start_sidebus(&args, &setup));
    let bare_addr = server_rt.block_on(serve(bare_router()));
    client_rt.block_on(wait_connected(&state, args.broker));

    let ctx = Ctx {
        topic: topic.clone(),
        payload: Bytes::from(payload(args.size)),
        state,
        broker_pids: broker_pids(args.broker),
        args,
    };
    if ctx.args.scrape_ms > 0 {
        let state = ctx.state.clone();
        let every = Duration::from_millis(ctx.args.scrape_ms);
        // Ends with the process (which exits once the report is written).
        client_rt.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                std::hint::black_box(state.render_metrics());
            }
        });
    }
    let report = client_rt.block_on(async {
        match ctx.args.rate {
            Some(rate) => run_rate(&ctx, &setup, sidebus_addr, bare_addr, rate).await,
            None => run_throughput(&ctx, &setup, sidebus_addr, bare_addr).await,
        }
    });
    client_rt.block_on(setup.cleanup(&topic));

    print!("{}", report.table(&ctx));
    if let Some(path) = &ctx.args.json {
        let text = serde_json::to_string_pretty(&report.json(&ctx)).expect("JSON");
        match std::fs::write(path, text + "\n") {
            Ok(()) => println!("wrote {}", path.display()),
            Err(e) => {
                eprintln!("load: writing {}: {e}", path.display());
                std::process::exit(1);
            }
        }
    }
    let failed = report
        .phases
        .iter()
        .filter(|p| p.skipped.is_none() && (p.ok == 0 || (smoke && p.errors > 0)))
        .count();
    if smoke {
        println!("load harness smoke run: {failed} failed phases");
    }
    // Exit without dropping the runtimes: the servers never stop on their own and the Kafka
    // producers would flush for seconds. Everything the broker holds was deleted above.
    std::process::exit(if failed > 0 { 1 } else { 0 });
}

/// What every phase needs.
struct Ctx {
    args: Args,
    topic: String,
    payload: Bytes,
    state: AppState,
    broker_pids: Vec<u32>,
}

impl Ctx {
    fn events_path(&self) -> String {
        format!("/v1/publish/{BROKER}/{}", self.topic)
    }
}

/// A JSON object of exactly `size` bytes (`size` >= 8): `{"p":"xxx…"}`.
fn payload(size: usize) -> String {
    format!("{{\"p\":\"{}\"}}", "x".repeat(size - 8))
}

/// A `application/cloudevents-batch+json` body of `n` structured events with `payload` as data.
fn batch_body(n: usize, payload: &str) -> Bytes {
    let entry = format!(
        r#"{{"specversion":"1.0","type":"{EVENT_TYPE}","source":"{SOURCE}","datacontenttype":"application/json","data":{payload}}}"#
    );
    let mut body = String::with_capacity(n * (entry.len() + 1) + 2);
    body.push('[');
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&entry);
    }
    body.push(']');
    Bytes::from(body)
}

// ---------------------------------------------------------------------------------------------
// Servers

fn bare_router() -> axum::Router {
    async fn discard(body: Bytes) -> StatusCode {
        drop(body);
        StatusCode::OK
    }
    axum::Router::new().fallback(discard)
}

async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(sidebus::nodelay(listener), app).await {
            eprintln!("load: server on {addr} stopped: {e}");
        }
    });
    addr
}

fn sidebus_toml(args: &Args, setup: &BrokerSetup) -> String {
    let kib = |bytes: usize| bytes.div_ceil(1024);
    let max_event = kib(args.size.max(1 << 20));
    let max_body = kib((args.batch * (args.size + 512) * 2).max(4 << 20));
    let state_dir = std::env::temp_dir().join(format!("sidebus-bench-{}", std::process::id()));
    let broker = match setup {
        BrokerSetup::Memory => format!(
            "kind = \"memory\"\nretention = {}\n",
            args.memory_retention.max(1)
        ),
        BrokerSetup::Kafka { bootstrap, .. } => {
            format!("kind = \"kafka\"\nbootstrap_servers = \"{bootstrap}\"\n")
        }
        BrokerSetup::Nats { url, .. } => format!("kind = \"nats\"\nurl = \"{url}\"\n"),
        BrokerSetup::Amqp { url, .. } => format!("kind = \"amqp\"\nurl = \"{url}\"\n"),
    };
    format!(
        "source = \"{SOURCE}\"\nstate_dir = \"{}\"\n\
         limits = {{ max_body = \"{max_body}KiB\", max_event = \"{max_event}KiB\", max_batch = 1000, pipeline_depth = 65536 }}\n\
         [brokers.{BROKER}]\n{broker}",
        state_dir.display()
    )
}

async fn start_sidebus(args: &Args, setup: &BrokerSetup) -> (SocketAddr, AppState) {
    let toml = sidebus_toml(args, setup);
    let config = RawConfig::from_toml(&toml)
        .and_then(RawConfig::validate)
        .unwrap_or_else(|e| panic!("bench config is invalid: {e}\n{toml}"));
    let state = AppState::build(config)
        .await
        .expect("sidebus backends build");
    let addr = serve(sidebus::app(state.clone())).await;
    (addr, state)
}

async fn wait_connected(state: &AppState, kind: BrokerKind) {
    let broker = state.broker(BROKER).expect("the bench broker");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = broker.backend.status();
        if status.connected {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "sidebus's {} broker did not connect within 30 s: {:?}",
                kind.name(),
                status.last_error
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until sidebus's pipeline holds nothing (events accepted with respond-async included).
async fn drain(state: &AppState) -> Duration {
    let started = Instant::now();
    let pipeline = &state.broker(BROKER).expect("the bench broker").pipeline;
    while pipeline.in_flight() > 0 && started.elapsed() < DRAIN_LIMIT {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

// ---------------------------------------------------------------------------------------------
// Brokers and their native clients

enum BrokerSetup {
    Memory,
    Kafka {
        bootstrap: String,
        /// Kept alive for the whole run when the broker is librdkafka's mock cluster.
        _mock: Option<
            rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
        >,
    },
    Nats {
        url: String,
        jetstream: async_nats::jetstream::Context,
        stream: String,
    },
    Amqp {
        url: String,
        connection: lapin::Connection,
        channel: lapin::Channel,
        queue: String,
    },
}

impl BrokerSetup {
    /// Reaches the broker and creates what the run publishes to.
    async fn start(args: &Args, topic: &str) -> Self {
        match args.broker {
            BrokerKind::Memory => BrokerSetup::Memory,
            BrokerKind::Kafka => kafka_setup(args, topic).await,
            BrokerKind::Nats => nats_setup(topic).await,
            BrokerKind::Amqp => amqp_setup(topic).await,
        }
    }

    fn label(&self) -> String {
        match self {
            BrokerSetup::Memory => "memory (in-process)".into(),
            BrokerSetup::Kafka { bootstrap, _mock } => match _mock {
                Some(_) => format!("kafka: librdkafka mock cluster, in-process, {bootstrap}"),
                None => format!("kafka: {bootstrap}"),
            },
            BrokerSetup::Nats { url, stream, .. } => format!("nats: {url}, stream {stream}"),
            BrokerSetup::Amqp { url, queue, .. } => {
                format!("amqp: {}, durable queue {queue}", redact(url))
            }
        }
    }

    /// Empties what the run publishes into, before each phase that publishes: a queue or
    /// stream that earlier phases filled (up to its cap, where the broker starts dropping the
    /// oldest) costs the broker more per message, which would tilt later phases against earlier.
    async fn empty(&self) {
        match self {
            BrokerSetup::Memory | BrokerSetup::Kafka { .. } => {}
            BrokerSetup::Nats {
                jetstream, stream, ..
            } => {
                let stream = jetstream
                    .get_stream(stream)
                    .await
                    .unwrap_or_else(|e| panic!("looking up stream {stream}: {e}"));
                stream.purge().await.expect("purging the stream");
            }
            BrokerSetup::Amqp { channel, queue, .. } => {
                channel
                    .queue_purge(
                        queue.as_str().into(),
                        lapin::options::QueuePurgeOptions::default(),
                    )
                    .await
                    .expect("purging the queue");
            }
        }
    }

    /// The native client for the native phase, or `None` for the memory broker.
    async fn native(&self, topic: &str) -> Option<Arc<Native>> {
        Some(Arc::new(match self {
            BrokerSetup::Memory => return None,
            BrokerSetup::Kafka { bootstrap, .. } => {
                let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", bootstrap)
                    .set("client.id", "bench-native")
                    // The same settings as sidebus's producer (src/backend/kafka/mod.rs).
                    .set("acks", "all")
                    .set("enable.idempotence", "true")
                    .set("linger.ms", "0")
                    .set("message.timeout.ms", "30000")
                    .create()
                    .expect("native Kafka producer");
                Native::Kafka {
                    producer,
                    topic: topic.to_string(),
                }
            }
            BrokerSetup::Nats { jetstream, .. } => Native::Nats {
                jetstream: jetstream.clone(),
                subject: topic.to_string(),
            },
            BrokerSetup::Amqp { channel, .. } => Native::Amqp {
                channel: channel.clone(),
                exchange: topic.to_string(),
            },
        }))
    }

    async fn cleanup(&self, topic: &str) {
        match self {
            BrokerSetup::Memory | BrokerSetup::Kafka { .. } => {}
            BrokerSetup::Nats {
                jetstream, stream, ..
            } => {
                if let Err(e) = jetstream.delete_stream(stream).await {
                    eprintln!("load: deleting stream {stream}: {e}");
                }
            }
            BrokerSetup::Amqp {
                connection,
                channel,
                queue,
                ..
            } => {
                use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
                if let Err(e) = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await
                {
                    eprintln!("load: deleting queue {queue}: {e}");
                }
                if let Err(e) = channel
                    .exchange_delete(topic.into(), ExchangeDeleteOptions::default())
                    .await
                {
                    eprintln!("load: deleting exchange {topic}: {e}");
                }
                let _ = connection.close(200, "bench done".into()).await;
            }
        }
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}

async fn kafka_setup(args: &Args, topic: &str) -> BrokerSetup {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    if let Ok(bootstrap) = std::env::var("SIDEBUS_TEST_KAFKA") {
        if !bootstrap.is_empty() {
            let admin: AdminClient<rdkafka::client::DefaultClientContext> =
                rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .create()
                    .expect("Kafka admin client");
            let results = admin
                .create_topics(
                    &[NewTopic::new(
                        topic,
                        args.partitions,
                        TopicReplication::Fixed(1),
                    )],
                    &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
                )
                .await
                .unwrap_or_else(|e| panic!("Kafka at {bootstrap} is not reachable: {e}"));
            for r in results {
                r.unwrap_or_else(|(t, e)| panic!("creating Kafka topic {t}: {e}"));
            }
            return BrokerSetup::Kafka {
                bootstrap,
                _mock: None,
            };
        }
    }
    // The mock cluster creates topics through its own API (CreateTopics requests to it time out).
    let mock = rdkafka::mocking::MockCluster::new(1).expect("librdkafka mock cluster");
    mock.create_topic(topic, args.partitions, 1)
        .expect("creating the topic on the mock cluster");
    let bootstrap = mock.bootstrap_servers();
    let mock = Some(mock);
    BrokerSetup::Kafka {
        bootstrap,
        _mock: mock,
    }
}

async fn nats_setup(topic: &str) -> BrokerSetup {
    use async_nats::jetstream::stream::{Config, StorageType};
    let url = std::env::var("SIDEBUS_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "NATS JetStream is not reachable at {url} ({e}); start it with: \
             nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server"
        )
    });
    // The same context settings as sidebus's (src/backend/nats.rs).
    let jetstream = async_nats::jetstream::context::ContextBuilder::new()
        .timeout(OP_TIMEOUT)
        .max_ack_inflight(1 << 20)
        .build(client);
    // The stream sidebus would create for the topic (file storage, 120 s duplicate window =
    // the default idempotency window), bounded so the run's disk use is too; both sidebus and the
    // native client publish into it.
    let stream = sidebus::backend::nats::stream_name(topic);
    jetstream
        .get_or_create_stream(Config {
            name: stream.clone(),
            subjects: vec![topic.to_string()],
            storage: StorageType::File,
            duplicate_window: Duration::from_secs(120),
            max_bytes: 1 << 30,
            ..Config::default()
        })
        .await
        .unwrap_or_else(|e| panic!("creating JetStream stream {stream}: {e}"));
    BrokerSetup::Nats {
        url,
        jetstream,
        stream,
    }
}

async fn amqp_setup(topic: &str) -> BrokerSetup {
    use lapin::options::{
        ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    };
    use lapin::types::{AMQPValue, FieldTable};
    let url = std::env::var("SIDEBUS_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let connection = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "RabbitMQ is not reachable at {} ({e}); start it with: rabbitmq-server -detached",
                redact(&url)
            )
        });
    let channel = connection.create_channel().await.expect("AMQP channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("publisher confirms");
    // The exchange as sidebus declares it (durable fanout), with one durable queue bound so a
    // `mandatory` publish is routable. The queue is capped (oldest dropped) so the broker's
    // memory and disk stay bounded, and expires if a crashed run leaves it behind.
    channel
        .exchange_declare(
            topic.into(),
            lapin::ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declaring the exchange");
    let queue = format!("{topic}.bench");
    let mut queue_args = FieldTable::default();
    queue_args.insert("x-max-length".into(), AMQPValue::LongLongInt(200_000));
    queue_args.insert("x-expires".into(), AMQPValue::LongLongInt(3_600_000));
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            queue_args,
        )
        .await
        .expect("declaring the queue");
    channel
        .queue_bind(
            queue.as_str().into(),
            topic.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("binding the queue");
    BrokerSetup::Amqp {
        url,
        connection,
        channel,
        queue,
    }
}

/// A broker's own client, publishing what sidebus would put on the broker for the same event:
/// the payload plus CloudEvents binary-mode attribute headers.
enum Native {
    Kafka {
        producer: rdkafka::producer::FutureProducer,
        topic: String,
    },
    Nats {
        jetstream: async_nats::jetstream::Context,
        subject: String,
    },
    Amqp {
        channel: lapin::Channel,
        exchange: String,
    },
}

impl Native {
    fn label(&self) -> &'static str {
        match self {
            Native::Kafka { .. } => "rdkafka FutureProducer, acks=all, idempotent",
            Native::Nats { .. } => "async-nats JetStream publish + ack, Nats-Msg-Id",
            Native::Amqp { .. } => "lapin, publisher confirms, persistent, mandatory",
        }
    }

    /// Publishes one event and waits for the broker's acknowledgement.
    async fn publish(&self, payload: &Bytes) -> Result<(), OpError> {
        let id = uuid::Uuid::now_v7().to_string();
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let attributes = [
            ("specversion", "1.0"),
            ("id", id.as_str()),
            ("source", SOURCE),
            ("type", EVENT_TYPE),
            ("time", time.as_str()),
        ];
        match self {
            Native::Kafka { producer, topic } => {
                use rdkafka::message::{Header, OwnedHeaders};
                let mut headers = OwnedHeaders::new_with_capacity(attributes.len() + 1);
                for (name, value) in attributes {
                    headers = headers.insert(Header {
                        key: &format!("ce_{name}"),
                        value: Some(value),
                    });
                }
                headers = headers.insert(Header {
                    key: "content-type",
                    value: Some("application/json"),
                });
                let record = rdkafka::producer::FutureRecord::<(), [u8]>::to(topic)
                    .payload(&payload[..])
                    .headers(headers);
                producer
                    .send(record, OP_TIMEOUT)
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| OpError::failed(format!("kafka: {e}")))
            }
            Native::Nats { jetstream, subject } => {
                let mut headers = async_nats::HeaderMap::new();
                for (name, value) in attributes {
                    headers.insert(format!("ce-{name}").as_str(), value);
                }
                headers.insert("Content-Type", "application/json");
                let publish = async_nats::jetstream::message::PublishMessage::build()
                    .headers(headers)
                    .message_id(&id)
                    .payload(payload.clone());
                let ack = jetstream
                    .send_publish(subject.clone(), publish)
                    .await
                    .map_err(|e| OpError::failed(format!("nats publish: {e}")))?;
                ack.await
                    .map(|_| ())
                    .map_err(|e| OpError::failed(format!("nats ack: {e}")))
            }
            Native::Amqp { channel, exchange } => {
                use lapin::options::BasicPublishOptions;
                use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
                let mut headers = FieldTable::default();
                for (name, value) in attributes {
                    headers.insert(
                        ShortString::from(format!("ce-{name}")),
                        AMQPValue::LongString(LongString::from(value)),
                    );
                }
                let properties = lapin::BasicProperties::default()
                    .with_message_id(ShortString::from(id.as_str()))
                    .with_delivery_mode(2)
                    .with_headers(headers)
                    .with_content_type(ShortString::from("application/json"));
                let confirm = channel
                    .basic_publish(
                        ShortString::from(exchange.as_str()),
                        ShortString::from(exchange.as_str()),
                        BasicPublishOptions {
                            mandatory: true,
                            immediate: false,
                        },
                        payload,
                        properties,
                    )
                    .await
                    .map_err(|e| OpError::failed(format!("amqp publish: {e}")))?;
                match confirm.await {
                    Ok(lapin::Confirmation::Ack(None)) => Ok(()),
                    Ok(lapin::Confirmation::Ack(Some(_))) => {
                        Err(OpError::failed("amqp: returned as unroutable"))
                    }
                    Ok(lapin::Confirmation::Nack(_)) => Err(OpError::failed("amqp: nacked")),
                    Ok(lapin::Confirmation::NotRequested) => {
                        Err(OpError::failed("amqp: confirms are not enabled"))
                    }
                    Err(e) => Err(OpError::failed(format!("amqp confirm: {e}"))),
                }
            }
        }
    }
}

/// PIDs of the external broker's server processes, whose CPU time each phase reports.
fn broker_pids(kind: BrokerKind) -> Vec<u32> {
    let comm = match kind {
        BrokerKind::Nats => "nats-server",
        BrokerKind::Amqp => "beam.smp",
        BrokerKind::Memory | BrokerKind::Kafka => return Vec::new(),
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Load generation

/// Why one operation failed.
struct OpError {
    /// A 429 from sidebus's full pipeline (counted apart from other failures).
    rejected: bool,
    message: String,
}

impl OpError {
    fn failed(message: impl Into<String>) -> Self {
        Self {
            rejected: false,
            message: message.into(),
        }
    }
}

/// One kind of operation a worker repeats: an HTTP request, or a native publish-to-ack.
trait Op: Send + 'static {
    fn call(&mut self) -> impl Future<Output = Result<(), OpError>> + Send;
}

/// The request an HTTP worker sends over and over.
struct HttpRequest {
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
    expect: StatusCode,
    /// A batch response must report `"failed":0`.
    batch: bool,
}

/// One keep-alive HTTP/1.1 connection (raw hyper client), remade after a transport error.
struct HttpOp {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
    request: Arc<HttpRequest>,
}

impl HttpOp {
    async fn connect(addr: SocketAddr, request: Arc<HttpRequest>) -> Result<Self, OpError> {
        Ok(Self {
            addr,
            sender: Some(Self::open(addr).await?),
            request,
        })
    }

    async fn open(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, OpError> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| OpError::failed(format!("connecting to {addr}: {e}")))?;
        stream
            .set_nodelay(true)
            .map_err(|e| OpError::failed(format!("TCP_NODELAY: {e}")))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| OpError::failed(format!("HTTP handshake: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}

impl Op for HttpOp {
    async fn call(&mut self) -> Result<(), OpError> {
        // Taken out while in use: a request cut short (timeout) leaves no half-used connection.
        let mut sender = match self.sender.take() {
            Some(sender) => sender,
            None => Self::open(self.addr).await?,
        };
        sender
            .ready()
            .await
            .map_err(|e| OpError::failed(format!("connection: {e}")))?;
        let r = &*self.request;
        let mut builder = Request::post(r.path.as_str()).header(header::HOST, "127.0.0.1");
        for (name, value) in &r.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(r.body.clone()))
            .expect("a valid request");
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| OpError::failed(format!("request: {e}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| OpError::failed(format!("response body: {e}")))?
            .to_bytes();
        self.sender = Some(sender);
        if status == StatusCode::TOO_MANY_REQUESTS {
            // Back off a little instead of spinning on refusals; the time is not a latency.
            tokio::time::sleep(Duration::from_millis(20)).await;
            return Err(OpError {
                rejected: true,
                message: format!("429: {}", snippet(&body)),
            });
        }
        if status != r.expect {
            return Err(OpError::failed(format!("{status}: {}", snippet(&body))));
        }
        if r.batch && !body.ends_with(b"\"failed\":0}") {
            return Err(OpError::failed(format!(
                "batch entries failed: …{}",
                String::from_utf8_lossy(&body[body.len().saturating_sub(300)..])
            )));
        }
        Ok(())
    }
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

/// One native publisher task.
struct NativeOp {
    native: Arc<Native>,
    payload: Bytes,
}

impl Op for NativeOp {
    async fn call(&mut self) -> Result<(), OpError> {
        self.native.publish(&self.payload).await
    }
}

/// Latencies (µs) of successful operations, sharded so workers rarely meet on a lock.
struct Recorder {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            shards: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
        })
    }

    fn record(&self, worker: usize, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.shards[worker % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(us);
    }

    fn merged(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in &self.shards {
            all.add(&*shard.lock().unwrap_or_else(|e| e.into_inner()))
                .expect("histograms with the same bounds add up");
        }
        all
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Counts of one worker.
#[derive(Default)]
struct Counts {
    ok: u64,
    errors: u64,
    rejected: u64,
    first_error: Option<String>,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.rejected += other.rejected;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn fail(&mut self, error: OpError) {
        if error.rejected {
            self.rejected += 1;
        } else {
            self.errors += 1;
        }
        self.first_error.get_or_insert(error.message);
    }
}

/// What a run of workers did.
struct Tally {
    counts: Counts,
    hist: Histogram<u64>,
    elapsed: Duration,
}

/// How a phase drives its workers.
#[derive(Clone, Copy)]
enum Drive {
    /// Every worker repeats its operation back to back until the time is up (closed loop).
    Closed { duration: Duration },
    /// Operation `i` is due at `start + i / rate`, spread round-robin over the workers; when a
    /// worker is still busy at an operation's due time, its latency counts from the due time, so
    /// queueing behind a slow answer is latency too (open loop, no coordinated omission).
    Open { rate: f64, total: u64 },
}

/// Runs `ops` (one worker task each) and hands them back for the next run.
async fn run<O: Op>(ops: Vec<O>, drive: Drive, max_ops: u64) -> (Vec<O>, Tally) {
    let workers = ops.len();
    let recorder = Recorder::new();
    let left = Arc::new(AtomicI64::new(i64::try_from(max_ops).unwrap_or(i64::MAX)));
    let started = Instant::now();
    let (deadline, hard_limit) = match drive {
        Drive::Closed { duration } => (started + duration, duration + OP_TIMEOUT * 2),
        Drive::Open { rate, total } => {
            let span = Duration::from_secs_f64(total as f64 / rate);
            (started + span, span + OP_TIMEOUT * 2)
        }
    };
    let mut handles = Vec::with_capacity(workers);
    for (worker, mut op) in ops.into_iter().enumerate() {
        let recorder = recorder.clone();
        let left = left.clone();
        handles.push(tokio::spawn(async move {
            let mut counts = Counts::default();
            let mut n: u64 = 0;
            loop {
                let due = match drive {
                    Drive::Closed { .. } => {
                        if Instant::now() >= deadline {
                            break;
                        }
                        None
                    }
                    Drive::Open { rate, total } => {
                        let i = worker as u64 + n * workers as u64;
                        if i >= total {
                            break;
                        }
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        if Instant::now() < due {
                            // Idle until due: the timer's lateness (tokio's 1 ms wheel) is the
                            // client's, not the server's, so latency counts from the wake-up.
                            tokio::time::sleep_until(due.into()).await;
                            None
                        } else {
                            // Behind schedule: the wait since the due time is queueing, and
                            // counts (no coordinated omission).
                            Some(due)
                        }
                    }
                };
                if left.fetch_sub(1, Ordering::Relaxed) <= 0 {
                    break;
                }
                n += 1;
                let begun = due.unwrap_or_else(Instant::now);
                match tokio::time::timeout(OP_TIMEOUT, op.call()).await {
                    Ok(Ok(())) => {
                        counts.ok += 1;
                        recorder.record(worker, begun.elapsed());
                    }
                    Ok(Err(e)) => counts.fail(e),
                    Err(_) => {
                        counts.fail(OpError::failed(format!("no answer within {OP_TIMEOUT:?}")))
                    }
                }
            }
            (op, counts)
        }));
    }
    let mut ops = Vec::with_capacity(workers);
    let mut counts = Counts::default();
    for handle in handles {
        let abort = handle.abort_handle();
        match tokio::time::timeout_at((started + hard_limit).into(), handle).await {
            Ok(Ok((op, c))) => {
                ops.push(op);
                counts.add(c);
            }
            Ok(Err(e)) => counts.fail(OpError::failed(format!("worker failed: {e}"))),
            Err(_) => {
                abort.abort();
                counts.fail(OpError::failed("worker still busy at the hard time limit"));
            }
        }
    }
    let elapsed = started.elapsed();
    (
        ops,
        Tally {
            counts,
            hist: recorder.merged(),
            elapsed,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Process measurements

/// CPU seconds at one moment.
#[derive(Clone, Copy, Default)]
struct Cpu {
    /// The whole process (client, server, librdkafka, mock cluster, …).
    process: f64,
    /// sidebus's runtime threads (`sb-server*`): HTTP, parsing, pipeline, NATS and AMQP clients.
    server: f64,
    /// The load client's runtime threads (`load-client*`), native publishers included.
    client: f64,
    /// librdkafka's threads (`rdk:*`): sidebus's and the native producer, and the mock cluster.
    rdkafka: f64,
    /// The external broker's processes (nats-server, RabbitMQ's beam.smp).
    broker: f64,
}

impl Cpu {
    fn now(broker_pids: &[u32]) -> Self {
        let mut cpu = Cpu {
            process: stat_seconds("/proc/self/stat").unwrap_or(0.0),
            broker: broker_pids
                .iter()
                .filter_map(|pid| stat_seconds(&format!("/proc/{pid}/stat")))
                .sum(),
            ..Cpu::default()
        };
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.filter_map(Result::ok) {
                let dir = task.path();
                let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                let Some(seconds) = stat_seconds(&dir.join("stat").to_string_lossy()) else {
                    continue;
                };
                if comm.starts_with("sb-server") {
                    cpu.server += seconds;
                } else if comm.starts_with("load-client") {
                    cpu.client += seconds;
                } else if comm.starts_with("rdk:") {
                    cpu.rdkafka += seconds;
                }
            }
        }
        cpu
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            process: self.process - before.process,
            server: self.server - before.server,
            client: self.client - before.client,
            rdkafka: self.rdkafka - before.rdkafka,
            broker: self.broker - before.broker,
        }
    }
}

/// utime + stime of a `/proc/…/stat` file, in seconds (USER_HZ is 100 on Linux).
fn stat_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Resets the process's peak RSS (VmHWM) so each phase reports its own; false if refused.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// VmHWM of this process in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Phases

/// The measured result of one phase.
struct Phase {
    key: &'static str,
    label: String,
    /// Connections, or publishes in flight.
    concurrency: String,
    events_per_op: u64,
    ok: u64,
    errors: u64,
    rejected: u64,
    first_error: Option<String>,
    seconds: f64,
    hist: Histogram<u64>,
    cpu: Cpu,
    /// Time sidebus's pipeline took to empty after the load stopped (included in `cpu`).
    drain: Duration,
    peak_rss_kib: Option<u64>,
    peak_rss_per_phase: bool,
    /// `Some(reason)` when the phase was not run.
    skipped: Option<String>,
}

impl Phase {
    fn skipped(key: &'static str, label: &str, reason: &str) -> Self {
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
            skipped: Some(reason.into()),
        }
    }

    fn events(&self) -> u64 {
        self.ok * self.events_per_op
    }

    fn ops_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ok as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn events_per_s(&self) -> f64 {
        self.ops_per_s() * self.events_per_op as f64
    }

    fn mb_per_s(&self, size: usize) -> f64 {
        self.events_per_s() * size as f64 / 1e6
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    fn json(&self, size: usize) -> Value {
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
                "process": self.cpu.process,
                "sidebus_runtime": self.cpu.server,
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

/// Events per CPU second of this process plus the external broker.
fn events_per_cpu(phase: &Phase) -> Option<f64> {
    let cpu = phase.cpu.process + phase.cpu.broker;
    (cpu > 0.0).then(|| phase.events() as f64 / cpu)
}

/// What a phase is called and how its results are counted.
struct Spec {
    key: &'static str,
    label: String,
    /// Connections, or publishes in flight.
    concurrency: String,
    events_per_op: u64,
    /// The phase loads sidebus: wait for its pipeline to empty before and after.
    sidebus: bool,
}

impl Spec {
    fn new(key: &'static str, label: impl Into<String>, concurrency: impl Into<String>) -> Self {
        Self {
            key,
            label: label.into(),
            concurrency: concurrency.into(),
            events_per_op: 1,
            sidebus: false,
        }
    }

    fn sidebus(mut self) -> Self {
        self.sidebus = true;
        self
    }

    fn events_per_op(mut self, n: u64) -> Self {
        self.events_per_op = n;
        self
    }
}

/// Runs one phase with its workers: warm up, then measure.
async fn phase<O: Op>(ctx: &Ctx, spec: Spec, ops: Vec<O>, drive: Drive) -> Phase {
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
    if spec.sidebus {
        drain(&ctx.state).await;
    }
    let per_phase = reset_peak_rss();
    let before = Cpu::now(&ctx.broker_pids);
    let (ops, tally) = run(ops, drive, args.max_ops).await;
    let drained = if spec.sidebus {
        drain(&ctx.state).await
    } else {
        Duration::ZERO
    };
    let cpu = Cpu::now(&ctx.broker_pids).since(before);
    let peak = peak_rss_kib();
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
        skipped: None,
    }
}

async fn connections(ctx: &Ctx, addr: SocketAddr, request: HttpRequest) -> Vec<HttpOp> {
    let request = Arc::new(request);
    let mut ops = Vec::with_capacity(ctx.args.connections);
    for _ in 0..ctx.args.connections {
        match HttpOp::connect(addr, request.clone()).await {
            Ok(op) => ops.push(op),
            Err(e) => panic!("load: {}", e.message),
        }
    }
    ops
}

/// One event in binary mode: the payload as body, `Content-Type` and `ce-type` headers; sidebus
/// fills in id, source and time.
fn binary_request(path: String, prefer_async: bool, payload: Bytes) -> HttpRequest {
    let mut headers = vec![
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (
            HeaderName::from_static("ce-type"),
            HeaderValue::from_static(EVENT_TYPE),
        ),
    ];
    if prefer_async {
        headers.push((
            HeaderName::from_static("prefer"),
            HeaderValue::from_static("respond-async"),
        ));
    }
    HttpRequest {
        path,
        headers,
        body: payload,
        expect: if prefer_async {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        },
        batch: false,
    }
}

fn native_ops(native: &Arc<Native>, n: usize, payload: &Bytes) -> Vec<NativeOp> {
    (0..n)
        .map(|_| NativeOp {
            native: native.clone(),
            payload: payload.clone(),
        })
        .collect()
}

const NO_NATIVE: &str = "n/a: the memory broker has no native client";

/// The throughput run: phases a, b, c, c' and d, each closed-loop.
async fn run_throughput(
    ctx: &Ctx,
    setup: &BrokerSetup,
    sidebus: SocketAddr,
    bare: SocketAddr,
) -> Report {
    let args = &ctx.args;
    let closed = Drive::Closed {
        duration: Duration::from_secs_f64(args.seconds),
    };
    let conns = format!("{} conns", args.connections);
    let single =
        |prefer_async| binary_request(ctx.events_path(), prefer_async, ctx.payload.clone());
    let mut phases = Vec::new();

    let request = binary_request("/bare".into(), false, ctx.payload.clone());
    let ops = connections(ctx, bare, request).await;
    let spec = Spec::new("a", "http-bare (discard handler)", &conns);
    phases.push(phase(ctx, spec, ops, closed).await);

    setup.empty().await;
    phases.push(match setup.native(&ctx.topic).await {
        Some(native) => {
            let ops = native_ops(&native, args.native_inflight, &ctx.payload);
            let label = format!("native ({})", native.label());
            let spec = Spec::new("b", label, format!("{} in flight", args.native_inflight));
            phase(ctx, spec, ops, closed).await
        }
        None => Phase::skipped("b", "native", NO_NATIVE),
    });

    setup.empty().await;
    let ops = connections(ctx, sidebus, single(false)).await;
    let spec = Spec::new("c", "sidebus single, ack-wait", &conns).sidebus();
    phases.push(phase(ctx, spec, ops, closed).await);

    setup.empty().await;
    let ops = connections(ctx, sidebus, single(true)).await;
    let spec = Spec::new("c_async", "sidebus single, respond-async", &conns).sidebus();
    phases.push(phase(ctx, spec, ops, closed).await);

    let batch = HttpRequest {
        path: format!("{}/batch", ctx.events_path()),
        headers: vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/cloudevents-batch+json"),
        )],
        body: batch_body(args.batch, &payload(args.size)),
        expect: StatusCode::OK,
        batch: true,
    };
    setup.empty().await;
    let ops = connections(ctx, sidebus, batch).await;
    let label = format!("sidebus batch of {}, ack-wait", args.batch);
    let spec = Spec::new("d", label, &conns)
        .sidebus()
        .events_per_op(args.batch as u64);
    phases.push(phase(ctx, spec, ops, closed).await);
    Report::new(setup, phases, None)
}

/// The steady-rate run: bare HTTP, native publish-to-ack and sidebus single events, each at the
/// same offered rate, open loop.
async fn run_rate(
    ctx: &Ctx,
    setup: &BrokerSetup,
    sidebus: SocketAddr,
    bare: SocketAddr,
    rate: f64,
) -> Report {
    let args = &ctx.args;
    let n = args.connections;
    let open = Drive::Open {
        rate,
        total: ((rate * args.seconds) as u64).max(1),
    };
    let conns = format!("{n} conns");
    let mut phases = Vec::new();

    let request = binary_request("/bare".into(), false, ctx.payload.clone());
    let ops = connections(ctx, bare, request).await;
    let spec = Spec::new("a", format!("http-bare @ {rate}/s"), &conns);
    phases.push(phase(ctx, spec, ops, open).await);

    setup.empty().await;
    phases.push(match setup.native(&ctx.topic).await {
        Some(native) => {
            let ops = native_ops(&native, n, &ctx.payload);
            let label = format!("native @ {rate}/s ({})", native.label());
            let spec = Spec::new("b", label, format!("{n} publishers"));
            phase(ctx, spec, ops, open).await
        }
        None => Phase::skipped("b", "native", NO_NATIVE),
    });

    setup.empty().await;
    let request = binary_request(ctx.events_path(), false, ctx.payload.clone());
    let ops = connections(ctx, sidebus, request).await;
    let spec = Spec::new("c", format!("sidebus single, ack-wait @ {rate}/s"), &conns).sidebus();
    phases.push(phase(ctx, spec, ops, open).await);
    Report::new(setup, phases, Some(rate))
}

// ---------------------------------------------------------------------------------------------
// Report

struct Report {
    broker: String,
    rate: Option<f64>,
    phases: Vec<Phase>,
}

impl Report {
    fn new(setup: &BrokerSetup, phases: Vec<Phase>, rate: Option<f64>) -> Self {
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
                    "c/b  sidebus single ack-wait events/s / native events/s",
                    div(rate("c"), rate("b")),
                ),
            ]
        };
        list.into_iter()
            .filter_map(|(name, v)| v.map(|v| (name, v)))
            .collect()
    }

    fn table(&self, ctx: &Ctx) -> String {
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
        let _ = writeln!(
            out,
            "{:<7} {:<50} {:>14} {:>10} {:>11} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>9}",
            "", "phase", "concurrency", "ok ops", "events/s", "MB/s", "p50 ms", "p99 ms", "p99.9ms",
            "max ms", "errors", "cpu s", "srv s", "cli s", "rdk s", "brkr s", "RSS MiB", "ev/cpu-s"
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
        let _ = writeln!(
            out,
            "latency per request (per publish for native); MB/s = payload bytes / 10^6; cpu s = this \
             process (srv = sidebus runtime, cli = load client + native publishers, rdk = librdkafka \
             threads incl. mock cluster); brkr s = external broker process; RSS = peak RSS of the \
             process during the phase; ev/cpu-s = events / (process + broker CPU s)"
        );
        out
    }

    fn json(&self, ctx: &Ctx) -> Value {
        let args = &ctx.args;
        json!({
            "harness": "sidebus benches/load.rs",
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
            "machine": {
                "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
                "server_threads": args.server_threads,
                "client_threads": args.client_threads,
                "note": "client, sidebus and the broker share the machine's cores",
            },
            "phases": self.phases.iter().map(|p| p.json(args.size)).collect::<Vec<_>>(),
            "ratios": self.ratios().into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

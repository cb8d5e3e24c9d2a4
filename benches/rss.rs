//! Resident memory of the shipped binary, idle, under load and under overload. It starts
//! `sidebus` (the release build `cargo bench` makes) as a process of its own, so every figure is
//! sidebus's alone, with the default limits:
//!
//! 1. **idle**: one event published, the resident set read 3 s later;
//! 2. **load**: `--connections` keep-alive connections POST batches of `--batch` events of
//!    `--size` bytes and await the broker's acknowledgements, for `--seconds`;
//! 3. **overload**: the same with `Prefer: respond-async`, so nothing waits for the broker: the
//!    pipeline fills to its bound, the excess is answered 429, and the resident set is read every
//!    second to show it stays flat;
//! 4. **idle after load**: the resident set 3 s after the load stopped — what a sidecar that has
//!    warmed up keeps while it waits (sidebus hands freed memory back after a full idle second,
//!    which its once-a-second check sees at most 2 s after the load).
//!
//! Each loaded phase reports the peak resident set (VmHWM, reset at the phase's start), the
//! events accepted and refused per second, and the offered load as a multiple of what was
//! accepted.
//!
//! ```text
//! cargo bench --bench rss                          # memory broker (no config at all)
//! cargo bench --bench rss -- --broker nats         # a JetStream broker (SIDEBUS_TEST_NATS)
//! cargo bench --bench rss -- --broker amqp         # RabbitMQ with confirms (SIDEBUS_TEST_AMQP)
//! cargo bench --bench rss -- --broker kafka        # Kafka at SIDEBUS_TEST_KAFKA (e.g. tansu)
//! cargo bench --bench rss -- --broker all          # a Kafka, a NATS and an AMQP broker at once
//! ```
//!
//! With `all`, the three brokers are configured and connected and the load goes to the NATS one.
//!
//! RSS counts the anonymous memory (heap, stacks) and the pages of the binary and shared
//! libraries that were touched (file-backed). The NATS and AMQP variants delete the stream or
//! queue they made afterwards.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::batch::BatchBody;

#[path = "common/amqp.rs"]
mod amqp;
#[path = "common/batch.rs"]
mod batch;
#[path = "common/memory.rs"]
mod memory;

/// How long after the last request the idle resident set is read.
const SETTLE: Duration = Duration::from_secs(3);
/// Longest start-up may take.
const START_LIMIT: Duration = Duration::from_secs(30);

/// sidebus memory measurement.
#[derive(Parser, Debug)]
struct Args {
    /// `memory` (no config at all), `nats`, `amqp` or `kafka` (a broker named `events`), or
    /// `all` (a Kafka, a NATS and an AMQP broker; the load goes to the NATS one, `events`).
    #[arg(long, default_value = "memory")]
    broker: String,
    /// Seconds per loaded phase; 0 measures idle only.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Keep-alive connections of the load client.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Events per batch request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Bytes of each event's data.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Extra TOML for sidebus's config, before the broker table, e.g.
    /// `limits = { pipeline_bytes = "16MiB" }`: measures a setting against the defaults.
    #[arg(long, default_value = "")]
    sidebus_toml: String,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Kills the child when the measurement ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A `kB` field of the child's `/proc/<pid>/status`; panics when it is missing.
fn status_kib(pid: u32, field: &str) -> u64 {
    memory::status_kib(&pid.to_string(), field)
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Where the events go, and what to remove afterwards.
enum Broker {
    Memory,
    Nats {
        url: String,
    },
    Amqp {
        url: String,
        queue: String,
    },
    Kafka {
        bootstrap: String,
    },
    /// Every kind at once, the load going to the first.
    All(Vec<Broker>),
}

impl Broker {
    /// The broker tables of sidebus's config; none for the memory broker. The broker the load
    /// goes to is `events`.
    fn config(&self) -> Option<String> {
        let table = |name: &str, body: String| format!("[brokers.{name}]\n{body}");
        match self {
            Broker::Memory => None,
            Broker::Nats { url } => Some(table(
                "events",
                format!("kind = \"nats\"\nurl = \"{url}\"\n"),
            )),
            Broker::Amqp { url, .. } => Some(table(
                "events",
                format!("kind = \"amqp\"\nurl = \"{url}\"\n"),
            )),
            Broker::Kafka { bootstrap } => Some(table(
                "events",
                format!("kind = \"kafka\"\nbootstrap_servers = \"{bootstrap}\"\n"),
            )),
            Broker::All(brokers) => Some(
                brokers
                    .iter()
                    .enumerate()
                    .filter_map(|(i, b)| {
                        let first = b.config()?;
                        Some(if i == 0 {
                            first
                        } else {
                            first.replacen("[brokers.events]", &format!("[brokers.also{i}]"), 1)
                        })
                    })
                    .collect(),
            ),
        }
    }

    async fn clean_up(&self, topic: &str) {
        match self {
            Broker::Memory | Broker::Kafka { .. } => {}
            Broker::All(brokers) => {
                for broker in brokers {
                    Box::pin(broker.clean_up(topic)).await;
                }
            }
            Broker::Nats { url } => {
                let client = async_nats::connect(url).await.expect("connecting to NATS");
                let stream = sidebus::backend::nats::stream_name(topic);
                let _ = async_nats::jetstream::new(client)
                    .delete_stream(&stream)
                    .await;
            }
            Broker::Amqp { url, queue } => {
                let channel = amqp_channel(url).await;
                let _ = channel
                    .queue_delete(queue.as_str().into(), Default::default())
                    .await;
                let _ = channel
                    .exchange_delete(topic.into(), Default::default())
                    .await;
            }
        }
    }
}

async fn amqp_channel(url: &str) -> lapin::Channel {
    let connection = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!("RabbitMQ is not reachable ({e}); start it with: rabbitmq-server -detached")
        });
    connection.create_channel().await.expect("AMQP channel")
}

/// The exchange sidebus publishes to, with a queue bound so its publishes are routable.
async fn amqp_queue(url: &str, topic: &str) -> String {
    let queue = format!("{topic}.rss");
    amqp::bound_queue(&amqp_channel(url).await, topic, &queue).await;
    queue
}

/// Creates `topic` (one partition) on the Kafka at `bootstrap`: sidebus publishes only to topics
/// that exist.
async fn kafka_topic(bootstrap: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("Kafka admin client");
    admin
        .create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap_or_else(|e| panic!("Kafka at {bootstrap} is not reachable: {e}"));
}

/// A `application/cloudevents-batch+json` body of `n` events of `size` bytes of JSON data.
fn batch_body(n: usize, size: usize) -> BatchBody {
    let data = format!("{{\"p\":\"{}\"}}", "x".repeat(size.saturating_sub(8)));
    BatchBody::new(
        n,
        &format!(
            r#""type":"com.example.rss","source":"sidebus://bench/rss","datacontenttype":"application/json","data":{data}"#
        ),
    )
}

/// What one loaded phase saw.
#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

/// Drives `args.connections` closed loops of batch POSTs for `args.seconds`; prints the peak
/// resident set, the resident set each second and what was accepted and refused.
async fn phase(name: &str, args: &Args, pid: u32, url: &str, respond_async: bool) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("resetting VmHWM");
    let body = Arc::new(batch_body(args.batch, args.size));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()
        .expect("HTTP client");
    let counts = Arc::new(Counts::default());
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut loops = Vec::new();
    for _ in 0..args.connections {
        let (http, body, counts, url) =
            (http.clone(), body.clone(), counts.clone(), url.to_string());
        let batch = args.batch as u64;
        loops.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let mut request = http
                    .post(&url)
                    .header("content-type", "application/cloudevents-batch+json")
                    .body(body.next());
                if respond_async {
                    request = request.header("prefer", "respond-async");
                }
                let counter = match request.send().await.map(|r| r.status().as_u16()) {
                    Ok(200 | 202) => &counts.accepted,
                    Ok(429) => &counts.refused,
                    _ => &counts.failed,
                };
                counter.fetch_add(batch, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1).min(deadline - Instant::now())).await;
        samples.push(mib(status_kib(pid, "VmRSS:")));
    }
    for l in loops {
        l.await.expect("a load loop");
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = mib(status_kib(pid, "VmHWM:"));
    let accepted = counts.accepted.load(Ordering::Relaxed) as f64;
    let refused = counts.refused.load(Ordering::Relaxed) as f64;
    let failed = counts.failed.load(Ordering::Relaxed);
    let offered = if accepted > 0.0 {
        format!("{:.1}x", (accepted + refused) / accepted)
    } else {
        "-".into()
    };
    let each_second: Vec<String> = samples.iter().map(|s| format!("{s:.1}")).collect();
    println!(
        "{name:<9} peak RSS {peak:>6.1} MiB | accepted {:>9.0} events/s, refused 429 {:>9.0} events/s, \
         offered {offered} of accepted, other failures {failed} events | RSS each second (MiB): {}",
        accepted / seconds,
        refused / seconds,
        each_second.join(" ")
    );
}

#[tokio::main(worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("a state directory");
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_sidebus"));
    command
        .args(["--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let topic = format!("rss-{}", std::process::id());
    let nats = || Broker::Nats {
        url: std::env::var("SIDEBUS_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
    };
    let amqp = || async {
        let url = std::env::var("SIDEBUS_TEST_AMQP")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let queue = amqp_queue(&url, &topic).await;
        Broker::Amqp { url, queue }
    };
    let kafka = || async {
        let bootstrap = std::env::var("SIDEBUS_TEST_KAFKA").unwrap_or_else(|_| {
            panic!("--broker kafka needs a Kafka at SIDEBUS_TEST_KAFKA (tansu: see docs/development.md)")
        });
        kafka_topic(&bootstrap, &topic).await;
        Broker::Kafka { bootstrap }
    };
    let broker = match args.broker.as_str() {
        "memory" => Broker::Memory,
        "nats" => nats(),
        "amqp" => amqp().await,
        "kafka" => kafka().await,
        "all" => Broker::All(vec![nats(), amqp().await, kafka().await]),
        other => panic!("--broker: `{other}` is not memory, nats, amqp, kafka or all"),
    };
    let (name, table) = match broker.config() {
        None => ("default", String::new()),
        Some(table) => ("events", table),
    };
    if !table.is_empty() || !args.sidebus_toml.is_empty() {
        let config = dir.path().join("sidebus.toml");
        std::fs::write(&config, format!("{}\n{table}", args.sidebus_toml))
            .expect("writing the config");
        command.arg("--config").arg(&config);
    }
    let child = Running(command.spawn().expect("starting the sidebus binary"));
    let pid = child.0.id();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let ready = http.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(started.elapsed() < START_LIMIT, "sidebus did not get ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let published = http
        .post(format!("{base}/v1/publish/{name}/{topic}"))
        .header("content-type", "application/json")
        .header("ce-id", "idle-1")
        .header("ce-type", "com.example.idle")
        .header("ce-source", "sidebus://bench/idle")
        .body(r#"{"idle":true}"#)
        .send()
        .await
        .expect("publishing one event");
    assert!(
        published.status().is_success(),
        "publish: {}",
        published.status()
    );
    tokio::time::sleep(SETTLE).await;
    println!(
        "sidebus, broker {}: idle RSS {:.1} MiB (anonymous {:.1} MiB, file-backed {:.1} MiB)",
        args.broker,
        mib(status_kib(pid, "VmRSS:")),
        mib(status_kib(pid, "RssAnon:")),
        mib(status_kib(pid, "RssFile:"))
    );
    if args.seconds > 0 {
        println!(
            "{} connections, batches of {} events of {} B, {} s per phase, config: {}",
            args.connections,
            args.batch,
            args.size,
            args.seconds,
            if args.sidebus_toml.is_empty() {
                "defaults"
            } else {
                &args.sidebus_toml
            }
        );
        let url = format!("{base}/v1/publish/{name}/{topic}/batch");
        phase("load", &args, pid, &url, false).await;
        phase("overload", &args, pid, &url, true).await;
        tokio::time::sleep(SETTLE).await;
        println!(
            "idle after load: RSS {:.1} MiB (anonymous {:.1} MiB, file-backed {:.1} MiB)",
            mib(status_kib(pid, "VmRSS:")),
            mib(status_kib(pid, "RssAnon:")),
            mib(status_kib(pid, "RssFile:"))
        );
    }
    drop(child);
    broker.clean_up(&topic).await;
}

//! Server-Sent Events load harness: how many events per second sidebus streams through one SSE
//! stream and through many concurrent streams, and what each extra stream costs.
//!
//! ```text
//! cargo bench --bench sse -- --events 20000 --size 256 --streams 1,10,100
//! ```
//!
//! sidebus runs in this process on its own tokio runtime (`sb-server` threads, `--server-threads`,
//! default 2) with the memory broker, which is filled through the batch publish route before
//! anything is measured; the SSE clients run on a second runtime (`sse-client` threads,
//! `--client-threads`, default 2) and parse the stream (every `data:` line is one event). For each
//! stream count `n`, `n` clients open `?from=earliest` at once and read all `--events` events:
//! the harness prints deliveries/s (n × events ÷ wall time), MB/s of SSE bytes, and the CPU
//! seconds of the server and client threads per million deliveries. The cost of each extra
//! stream is the server CPU per delivery, and for idle streams the resident memory each one adds
//! (`--idle`, default 100 streams held open with nothing to send).
//!
//! Client and server share the machine's cores: on a 2-core machine these are lower bounds.
//! Without `--bench` (as `cargo test --benches` runs it) it does a short smoke run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sidebus::{AppState, RawConfig};

const BROKER: &str = "bench";
const TOPIC: &str = "sse-bench";
const IDLE_TOPIC: &str = "sse-bench-idle";
/// Longest any one phase may take.
const PHASE_LIMIT: Duration = Duration::from_secs(600);

struct Args {
    events: usize,
    size: usize,
    streams: Vec<usize>,
    idle: usize,
    server_threads: usize,
    client_threads: usize,
}

impl Args {
    fn parse() -> Self {
        let raw: Vec<String> = std::env::args().skip(1).collect();
        let full = raw.iter().any(|a| a == "--bench");
        let mut args = if full {
            Args {
                events: 20_000,
                size: 256,
                streams: vec![1, 10, 100],
                idle: 100,
                server_threads: 2,
                client_threads: 2,
            }
        } else {
            Args {
                events: 500,
                size: 64,
                streams: vec![1, 4],
                idle: 4,
                server_threads: 2,
                client_threads: 2,
            }
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
                "--events" => args.events = number(value()),
                "--size" => args.size = number(value()),
                "--idle" => args.idle = number(value()),
                "--server-threads" => args.server_threads = number(value()),
                "--client-threads" => args.client_threads = number(value()),
                "--streams" => {
                    args.streams = value()
                        .split(',')
                        .map(|s| number(s.trim().to_string()))
                        .collect()
                }
                other => panic!(
                    "unknown argument {other}; see the top of benches/sse.rs for the options"
                ),
            }
        }
        assert!(args.events > 0 && args.streams.iter().all(|n| *n > 0));
        args
    }
}

fn main() {
    let args = Args::parse();
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads)
        .thread_name("sb-server")
        .enable_all()
        .build()
        .unwrap();
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .thread_name("sse-client")
        .enable_all()
        .build()
        .unwrap();
    let most = args
        .streams
        .iter()
        .copied()
        .max()
        .unwrap_or(1)
        .max(args.idle);
    let (addr, _state) = server.block_on(start(&args, most));
    client.block_on(fill(addr, args.events, args.size));
    println!(
        "sidebus SSE: {} events of {} B payload, memory broker, {} server / {} client threads",
        args.events, args.size, args.server_threads, args.client_threads
    );
    println!(
        "{:>8} {:>14} {:>16} {:>9} {:>18} {:>18}",
        "streams", "deliveries/s", "per stream ev/s", "MB/s", "server CPU s/1M", "client CPU s/1M"
    );
    let mut results = Vec::new();
    for &n in &args.streams {
        let before = Cpu::now();
        let (wall, bytes) = client.block_on(read_all(addr, n, args.events));
        let cpu = Cpu::now().since(before);
        let deliveries = (n * args.events) as f64;
        let per_million = |s: f64| s / deliveries * 1e6;
        println!(
            "{:>8} {:>14.0} {:>16.0} {:>9.1} {:>18.2} {:>18.2}",
            n,
            deliveries / wall.as_secs_f64(),
            args.events as f64 / wall.as_secs_f64(),
            bytes as f64 / wall.as_secs_f64() / 1e6,
            per_million(cpu.server),
            per_million(cpu.client),
        );
        results.push((n, cpu.server / deliveries));
    }
    if let (Some(first), Some(last)) = (results.first(), results.last()) {
        if last.0 > first.0 {
            println!(
                "server CPU per delivery: {:.2} µs with {} stream(s), {:.2} µs with {}",
                first.1 * 1e6,
                first.0,
                last.1 * 1e6,
                last.0
            );
        }
    }
    if args.idle > 0 {
        let (rss_per_stream, setup) = client.block_on(idle(addr, args.idle));
        println!(
            "{} idle streams: {:.1} KiB resident memory each, opened in {:.1} ms",
            args.idle,
            rss_per_stream / 1024.0,
            setup.as_secs_f64() * 1e3
        );
    }
    drop(client);
    drop(server);
}

async fn start(args: &Args, streams: usize) -> (SocketAddr, AppState) {
    let toml = format!(
        r#"
source = "sidebus://sse-bench"
limits = {{ max_body = "64MiB", max_event = "1MiB", max_batch = 10000, pipeline_depth = 65536, pipeline_bytes = "64MiB" }}
[sse]
max_streams = {}
buffer = 256
stall_timeout = "60s"
[brokers.{BROKER}]
kind = "memory"
retention = {}
"#,
        streams + 8,
        args.events.max(1)
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

/// Publishes `events` text events through the batch route (NDJSON, 5000 per request).
async fn fill(addr: SocketAddr, events: usize, size: usize) {
    let http = reqwest::Client::new();
    let data = "x".repeat(size);
    let mut sent = 0;
    while sent < events {
        let n = (events - sent).min(5000);
        let mut body = String::with_capacity(n * (size + 128));
        for i in sent..sent + n {
            body.push_str(&format!(
                "{{\"specversion\":\"1.0\",\"id\":\"e{i}\",\"source\":\"sidebus://sse-bench\",\
                 \"type\":\"bench\",\"datacontenttype\":\"text/plain\",\"data\":\"{data}\"}}\n"
            ));
        }
        let response = http
            .post(format!("http://{addr}/v1/publish/{BROKER}/{TOPIC}/batch"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("sidebus answers");
        assert_eq!(response.status(), 200);
        let result: serde_json::Value = response.json().await.unwrap();
        assert_eq!(result["failed"], 0, "{result}");
        sent += n;
    }
}

/// `n` clients read all `events` events from the start at once; returns the wall time and the
/// SSE bytes received in total.
async fn read_all(addr: SocketAddr, n: usize, events: usize) -> (Duration, u64) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let readers: Vec<_> = (0..n)
        .map(|_| {
            let http = http.clone();
            tokio::spawn(async move {
                let response = http
                    .get(format!(
                        "http://{addr}/v1/subscribe/{BROKER}/{TOPIC}?from=earliest"
                    ))
                    .header("accept", "text/event-stream")
                    .send()
                    .await
                    .expect("sidebus answers");
                assert_eq!(response.status(), 200, "{response:?}");
                let mut body = response.bytes_stream();
                let mut counter = DataLines::default();
                let mut bytes = 0u64;
                while counter.count < events {
                    let chunk = tokio::time::timeout(PHASE_LIMIT, body.next())
                        .await
                        .expect("the stream kept going")
                        .expect("the stream did not end")
                        .expect("the stream reads");
                    bytes += chunk.len() as u64;
                    counter.feed(&chunk);
                }
                assert_eq!(counter.count, events, "no event more than published");
                bytes
            })
        })
        .collect();
    let mut total = 0;
    for reader in readers {
        total += reader.await.expect("reader ran");
    }
    (started.elapsed(), total)
}

/// Holds `n` streams open on a topic with nothing to send; returns the resident memory each
/// adds (bytes) and how long opening them took.
async fn idle(addr: SocketAddr, n: usize) -> (f64, Duration) {
    let http = reqwest::Client::new();
    let before = rss_bytes();
    let started = Instant::now();
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let response = http
            .get(format!("http://{addr}/v1/subscribe/{BROKER}/{IDLE_TOPIC}"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("sidebus answers");
        assert_eq!(response.status(), 200, "{response:?}");
        let mut body = response.bytes_stream();
        // The first block arrives once the stream is set up.
        let first = body.next().await.expect("a first block").unwrap();
        assert!(first.starts_with(b": sidebus"));
        open.push(body);
    }
    let setup = started.elapsed();
    let after = rss_bytes();
    drop(open);
    ((after.saturating_sub(before)) as f64 / n as f64, setup)
}

/// Counts lines that start with `data:` across chunk boundaries.
#[derive(Default)]
struct DataLines {
    count: usize,
    /// Bytes seen of the current line, up to 5.
    head: Vec<u8>,
}

impl DataLines {
    fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if b == b'\n' {
                self.head.clear();
                continue;
            }
            if self.head.len() < 5 {
                self.head.push(b);
                if self.head == b"data:" {
                    self.count += 1;
                }
            }
        }
    }
}

/// CPU seconds of the server and client threads.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: f64,
    client: f64,
}

impl Cpu {
    fn now() -> Self {
        let mut cpu = Cpu::default();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return cpu;
        };
        for task in tasks.filter_map(Result::ok) {
            let dir = task.path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let Some(seconds) = stat_seconds(&dir.join("stat")) else {
                continue;
            };
            if comm.starts_with("sb-server") {
                cpu.server += seconds;
            } else if comm.starts_with("sse-client") {
                cpu.client += seconds;
            }
        }
        cpu
    }

    fn since(self, before: Cpu) -> Cpu {
        Cpu {
            server: self.server - before.server,
            client: self.client - before.client,
        }
    }
}

/// utime + stime of a `/proc/…/stat` file, in seconds (USER_HZ is 100 on Linux).
fn stat_seconds(path: &std::path::Path) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// VmRSS of this process in bytes.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

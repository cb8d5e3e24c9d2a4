//! sidebus as the deliveries' source: its release binary in a child process with a generated
//! config, the prefill through its batch route, and one subscription per delivery phase.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::args::{Args, BrokerKind};
use crate::child::Server;
use crate::measure::Measured;
use crate::receiver::Counter;
use crate::{BROKER, PHASE_LIMIT, STALL_LIMIT};

/// Events per batch publish request during the prefill.
const FILL_BATCH: usize = 2000;
/// The warm-up subscription's name.
const WARMUP: &str = "bench-warmup";
/// Longest one control request (a prefill batch, a subscription's PUT or DELETE) may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(120);

/// sidebus's config: one broker, [`BROKER`], with limits that take the prefill's batches.
fn config(args: &Args, state_dir: &Path) -> String {
    let broker = match args.broker {
        BrokerKind::Memory => format!("kind = \"memory\"\nretention = {}\n", args.events),
        BrokerKind::Nats => format!("kind = \"nats\"\nurl = \"{}\"\n", args.nats_url),
    };
    format!(
        r#"source = "sidebus://delivery-bench"
state_dir = "{}"
limits = {{ max_body = "64MiB", max_event = "2MiB", max_batch = 10000, pipeline_depth = 65536, pipeline_bytes = "64MiB" }}
[brokers.{BROKER}]
{broker}"#,
        state_dir.display()
    )
}

/// Writes the config into `state_dir` and starts sidebus's binary on `--threads` workers; it is
/// ready (its broker connected) when this returns.
pub(crate) async fn start(args: &Args, state_dir: &Path) -> Server {
    let path = state_dir.join("sidebus.toml");
    std::fs::write(&path, config(args, state_dir)).expect("writing the bench config");
    Server::sidebus(&path, state_dir.join("sidebus.log"), args.threads).await
}

/// Publishes `events` text events of `size` bytes through the batch route (NDJSON).
pub(crate) async fn fill(addr: SocketAddr, topic: &str, events: usize, size: usize) {
    let http = reqwest::Client::new();
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
            .timeout(REQUEST_LIMIT)
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

/// PUTs subscription `name` and waits until the receiver has counted `events` events — at most
/// [`PHASE_LIMIT`], and no longer than [`STALL_LIMIT`] without one more. Timed from the PUT.
pub(crate) async fn deliver(
    addr: SocketAddr,
    counter: &Counter,
    name: &str,
    spec: &serde_json::Value,
    events: usize,
) -> Measured {
    let target = events as u64;
    counter.expect(target);
    let started = Instant::now();
    let response = reqwest::Client::new()
        .put(format!("http://{addr}/v1/subscriptions/{name}"))
        .json(spec)
        .timeout(REQUEST_LIMIT)
        .send()
        .await
        .expect("sidebus answers the subscription PUT");
    let status = response.status();
    assert!(
        status.is_success(),
        "PUT subscription {name}: {status} {}",
        response.text().await.unwrap_or_default()
    );
    let deadline = tokio::time::Instant::now() + PHASE_LIMIT;
    let mut last = 0;
    loop {
        let seen = counter.events();
        if seen >= target {
            break;
        }
        let wait = tokio::time::timeout(STALL_LIMIT, counter.reached());
        match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) if counter.events() > last => last = counter.events(),
            Ok(Err(_)) => {
                eprintln!("delivery: {name}: no progress for {STALL_LIMIT:?} at {seen} events");
                break;
            }
            Err(_) => {
                eprintln!("delivery: {name}: not done after {PHASE_LIMIT:?}, at {seen} events");
                break;
            }
        }
    }
    let wall = started.elapsed();
    let seen = counter.events();
    Measured::new(seen.min(target), counter.requests(), wall, seen >= target)
}

/// Delivers `events` events through an unmeasured subscription `spec`, so that the first
/// measured phase finds sidebus as warm as the later ones do.
pub(crate) async fn warm_up(
    addr: SocketAddr,
    counter: &Counter,
    spec: &serde_json::Value,
    events: usize,
) {
    let warmed = deliver(addr, counter, WARMUP, spec, events).await;
    unsubscribe(addr, WARMUP).await;
    println!(
        "warm-up: {} binary deliveries in {:.2} s, not measured",
        warmed.count,
        warmed.wall.as_secs_f64()
    );
}

/// Deletes subscription `name`, so that it delivers nothing into the next phase.
pub(crate) async fn unsubscribe(addr: SocketAddr, name: &str) {
    let deleted = reqwest::Client::new()
        .delete(format!("http://{addr}/v1/subscriptions/{name}"))
        .timeout(REQUEST_LIMIT)
        .send()
        .await;
    match deleted {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => eprintln!("delivery: DELETE subscription {name}: {}", r.status()),
        Err(e) => eprintln!("delivery: DELETE subscription {name}: {e}"),
    }
}

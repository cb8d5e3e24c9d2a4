//! Idle memory of the shipped binary: starts `sidebus` (the release build `cargo bench` makes),
//! publishes one event, lets it settle and reads its resident set from `/proc`.
//!
//! ```text
//! cargo bench --bench idle                         # memory broker (no config)
//! cargo bench --bench idle -- --broker nats        # plus a NATS JetStream broker
//! ```
//!
//! RSS counts the anonymous memory (heap, stacks) and the pages of the binary and shared
//! libraries that start-up touched (file-backed). The NATS variant publishes to
//! `SIDEBUS_TEST_NATS` (default nats://127.0.0.1:4222) and deletes its stream afterwards.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

/// How long after the publish the resident set is read.
const SETTLE: Duration = Duration::from_secs(2);
/// Longest start-up may take.
const START_LIMIT: Duration = Duration::from_secs(30);

/// sidebus idle-memory measurement.
#[derive(Parser, Debug)]
struct Args {
    /// `memory` (no config at all) or `nats` (a JetStream broker named `events`).
    #[arg(long, default_value = "memory")]
    broker: String,
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

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[tokio::main(flavor = "current_thread")]
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
    let url = std::env::var("SIDEBUS_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let (broker, topic) = match args.broker.as_str() {
        "memory" => ("default", "idle".to_string()),
        "nats" => {
            let config = dir.path().join("sidebus.toml");
            std::fs::write(
                &config,
                format!("[brokers.events]\nkind = \"nats\"\nurl = \"{url}\"\n"),
            )
            .expect("writing the config");
            command.arg("--config").arg(&config);
            ("events", format!("idle.{}", std::process::id()))
        }
        other => panic!("--broker: `{other}` is not memory or nats"),
    };
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
        .post(format!("{base}/v1/publish/{broker}/{topic}"))
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
    let rss = status_kib(pid, "VmRSS:");
    let anon = status_kib(pid, "RssAnon:");
    let file = status_kib(pid, "RssFile:");
    drop(child);
    if args.broker == "nats" {
        let client = async_nats::connect(&url).await.expect("connecting to NATS");
        let stream = sidebus::backend::nats::stream_name(&topic);
        let _ = async_nats::jetstream::new(client)
            .delete_stream(&stream)
            .await;
    }
    println!(
        "sidebus idle, broker {}: RSS {:.1} MiB (anonymous {:.1} MiB, file-backed {:.1} MiB)",
        args.broker,
        rss as f64 / 1024.0,
        anon as f64 / 1024.0,
        file as f64 / 1024.0
    );
}

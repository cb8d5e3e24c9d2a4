//! The example receiver (`deploy/receiver.py`) logs what sidebus delivers with the compose
//! config's subscriptions (brokers swapped for the memory broker).


use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::deploy::{read, root, Sidebus};
use serde_json::Value;
use sidebus::config::{BrokerConfig, MemoryConfig};
use sidebus::RawConfig;

/// The example receiver, listening on a loopback port; killed on drop.
struct ExampleReceiver {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl ExampleReceiver {
    fn start() -> Self {
        let python = std::env::var("SIDEBUS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(python)
            .arg(root().join("deploy/receiver.py"))
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs deploy/receiver.py");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let port = first
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("receiver did not say its port: {first:?}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, port, lines }
    }

    /// The logged requests: each a `--- POST /path (n bytes)` line and what follows it.
    fn requests(&self) -> BTreeMap<String, Vec<String>> {
        let mut requests: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current = None;
        for line in self.lines.lock().unwrap().iter() {
            if let Some(head) = line.strip_prefix("--- POST ") {
                let path = head.split(' ').next().unwrap().to_string();
                requests.insert(path.clone(), Vec::new());
                current = Some(path);
            } else if let Some(path) = &current {
                requests.get_mut(path).unwrap().push(line.clone());
            }
        }
        requests
    }
}

impl Drop for ExampleReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn example_receiver_logs_deliveries_of_the_compose_subscriptions() {
    let receiver = ExampleReceiver::start();
    let state_dir = tempfile::tempdir().unwrap();

    // deploy/sidebus.toml with each broker swapped for a memory broker of the same name and the
    // receiver's compose address for the local one.
    let mut raw = RawConfig::from_toml(&read("deploy/sidebus.toml")).unwrap();
    for broker in raw.brokers.values_mut() {
        *broker = BrokerConfig::Memory(MemoryConfig::default());
    }
    for sub in &mut raw.subscriptions {
        sub.endpoint = sub.endpoint.replace(
            "http://receiver:8080",
            &format!("http://127.0.0.1:{}", receiver.port),
        );
        // Events published before a consumer is attached are delivered too.
        sub.start = sidebus::backend::consume::StartFrom::Earliest;
    }
    raw.state_dir = state_dir.path().to_path_buf();
    let names: Vec<String> = raw
        .subscriptions
        .iter()
        .map(|s| s.name.clone().unwrap())
        .collect();
    let server = Sidebus::start(raw).await;
    let base = server.base.clone();
    let http = reqwest::Client::new();

    // The publishes the compose config's header suggests.
    let publishes = [
        (
            "kafka/orders?key=customer-7",
            "application/json",
            r#"{"total":42}"#,
        ),
        ("nats/jobs", "text/plain", "resize img-7"),
        ("rabbitmq/tasks", "text/plain", "send mail"),
    ];
    for (path, content_type, body) in publishes {
        let response = http
            .post(format!("{base}/v1/publish/{path}"))
            .header("content-type", content_type)
            .header("ce-type", "com.example.demo")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "{path}: {:?}",
            response.text().await
        );
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let requests = loop {
        let requests = receiver.requests();
        if ["/orders", "/jobs", "/tasks"]
            .iter()
            .all(|p| requests.contains_key(*p))
        {
            break requests;
        }
        assert!(
            Instant::now() < deadline,
            "the receiver logged {:?}",
            receiver.lines.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Binary mode: attributes as ce-* headers, signed with the subscription's secret.
    let orders = requests["/orders"].join("\n");
    for expected in [
        "ce-type: com.example.demo",
        "ce-partitionkey: customer-7",
        "content-type: application/json",
        "webhook-signature: v1,",
        r#"{"total":42}"#,
    ] {
        assert!(orders.contains(expected), "{expected} in\n{orders}");
    }
    assert!(requests["/jobs"].iter().any(|l| l == "resize img-7"));
    // Structured mode: the whole CloudEvent as JSON.
    let tasks = requests["/tasks"].join("\n");
    assert!(tasks.contains("content-type: application/cloudevents+json"));
    let event: Value = serde_json::from_str(requests["/tasks"].last().unwrap()).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["data"], "send mail");

    // The receiver's 204 counts as delivered.
    for name in &names {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status: Value = http
                .get(format!("{base}/v1/subscriptions/{name}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if status["status"]["delivered"] == 1 {
                assert_eq!(status["status"]["failed"], 0, "{status:#}");
                break;
            }
            assert!(Instant::now() < deadline, "{status:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    server.stop().await;
}

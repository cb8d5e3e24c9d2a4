//! SIGTERM under load: every event answered 200 or 202 is on the broker afterwards, and the
//! process exits 0. SIGTERM with a broker down: the process still exits within the grace.


use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use crate::common::brokers::{nats_client, nats_url, Kafka};
use crate::common::process::{free_port, Sidebus};
use crate::common::receiver::Receiver;
use crate::common::unique_topic;

#[tokio::test]
async fn sigterm_under_load_loses_no_answered_event() {
    nats_client().await; // fails with instructions when NATS is absent
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("sidebus.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\nshutdown_grace = \"20s\"\n[brokers.jobs]\nkind = \"nats\"\nurl = \"{}\"\n",
            dir.path().join("state").display(),
            nats_url()
        ),
    )
    .unwrap();
    let sidebus = Sidebus::spawn(port, Some(&config), dir.path());
    let base = sidebus.base.clone();
    let http = reqwest::Client::new();
    sidebus.wait_ready(&http).await;
    let topic = unique_topic("shutdown");
    // Creates the stream before the load starts.
    let warm = http
        .post(format!("{base}/v1/publish/jobs/{topic}"))
        .header("ce-id", "warm")
        .body("w")
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);

    let answered = Arc::new(Mutex::new(HashSet::from(["warm".to_string()])));
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let http = http.clone();
            let url = format!("{base}/v1/publish/jobs/{topic}");
            let answered = answered.clone();
            tokio::spawn(async move {
                for i in 0..100_000 {
                    let id = format!("c{c}-{i}");
                    let mut request = http.post(&url).header("ce-id", &id).body(id.clone());
                    if c % 2 == 0 {
                        request = request.header("prefer", "respond-async");
                    }
                    match request.send().await {
                        Ok(r) if r.status() == 200 || r.status() == 202 => {
                            answered.lock().unwrap().insert(id);
                        }
                        Ok(r) => assert!(r.status() == 503, "unexpected {}", r.status()),
                        Err(_) => return, // connection refused: the listener is closed
                    }
                }
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while answered.lock().unwrap().len() < 2000 {
        assert!(
            std::time::Instant::now() < deadline,
            "load did not get going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let terminated = tokio::spawn(sidebus.terminate(Duration::from_secs(60)));
    for c in clients {
        c.await.unwrap();
    }
    let exit = terminated.await.unwrap();
    assert!(exit.success(), "exit status {exit:?}");

    let answered = answered.lock().unwrap().clone();
    let js = jetstream::new(nats_client().await);
    let mut stream = js
        .get_stream(sidebus::backend::nats::stream_name(&topic))
        .await
        .unwrap();
    let stored = stream.info().await.unwrap().state.messages;
    let mut on_broker = HashSet::new();
    for seq in 1..=stored {
        let m = stream.get_raw_message(seq).await.unwrap();
        on_broker.insert(m.headers.get("ce-id").unwrap().as_str().to_string());
    }
    let missing: Vec<_> = answered.difference(&on_broker).take(10).collect();
    println!(
        "answered {}, on the broker {}",
        answered.len(),
        on_broker.len()
    );
    assert!(
        missing.is_empty(),
        "answered but not on the broker: {missing:?}"
    );
}

/// The subscription's Kafka consumer cannot commit or leave its group while the broker is down;
/// sidebus still exits, with status 0, well within `shutdown_grace` and the test's 20 s.
#[tokio::test]
async fn sigterm_exits_within_the_grace_while_kafka_is_down() {
    let kafka = Kafka::start_mock();
    let topic = unique_topic("shutdown.kafka");
    kafka.create_topic(&topic, 1).await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
shutdown_grace = "3s"
[brokers.events]
kind = "kafka"
bootstrap_servers = "{}"
options = {{ "session.timeout.ms" = "6000" }}
[[subscriptions]]
name = "orders"
broker = "events"
topic = "{topic}"
endpoint = "{}"
start = "earliest"
"#,
        kafka.bootstrap, receiver.url
    );
    let http = reqwest::Client::new();
    let sidebus = Sidebus::start(&toml, dir.path(), &http).await;
    let published = http
        .post(format!("{}/v1/publish/events/{topic}", sidebus.base))
        .body("before the outage")
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 200);
    // Delivered: the subscription's consumer has joined its group.
    receiver
        .wait_until(Duration::from_secs(60), |r| !r.is_empty())
        .await;

    kafka.mock().unwrap().broker_down(1).unwrap();
    let exit = sidebus.terminate(Duration::from_secs(20)).await;
    assert!(exit.success(), "exit status {exit:?}");
}

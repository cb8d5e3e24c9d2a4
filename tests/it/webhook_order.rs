//! Per-key order across a pause, on NATS JetStream, RabbitMQ and the memory broker (Kafka's is in
//! `webhook_kafka.rs`): the endpoint answers one event of a key with `410 Gone`, the subscription
//! pauses and gives back what it holds, and after `/resume` the key's events arrive in publish
//! order — the given-back event before every later one, whatever order the broker offers them in.


use std::time::{Duration, Instant};

use crate::common::brokers::{amqp_url, nats_url};
use crate::common::receiver::{Receiver, Reply};
use crate::common::{unique_topic, TestServer};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn config(dir: &std::path::Path) -> String {
    format!(
        "state_dir = \"{}\"\n[brokers.mem]\nkind = \"memory\"\n[brokers.jobs]\nkind = \"nats\"\nurl = \"{}\"\n[brokers.tasks]\nkind = \"amqp\"\nurl = \"{}\"\n",
        dir.display(),
        nats_url(),
        amqp_url()
    )
}

/// Publishes `e-<i>` to `broker`/`topic` with key `k`; on AMQP the first publishes are
/// unroutable (502) until the subscription's queue is bound, so those are sent again.
async fn publish(server: &TestServer, broker: &str, topic: &str, i: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = server
            .post(
                &format!("/v1/publish/{broker}/{topic}?key=k"),
                &[("ce-id", &format!("e-{i}"))],
                format!("event {i}"),
            )
            .await;
        if r.status() == 200 {
            return;
        }
        assert_eq!(r.status(), 502, "only unroutable until the queue is bound");
        assert!(
            Instant::now() < deadline,
            "the subscription's queue was never bound"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn order_holds_across_a_pause(broker: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path())).await;
    let topic = unique_topic("wo");
    let receiver = Receiver::start().await;
    receiver.script("e-4", vec![Reply::Status(410)]);
    server
        .subscribe(
            "ordered",
            json!({"broker":broker,"topic":topic,"endpoint":receiver.url,"start":"earliest",
            "ordering":"key"}),
        )
        .await;
    for i in 1..=10 {
        publish(&server, broker, &topic, i).await;
    }
    receiver
        .wait_until(WAIT, |r| r.iter().any(|r| r.answered == 410))
        .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let status = server.get_json("/v1/subscriptions/ordered").await["status"].clone();
        if status["state"] == "paused" && status["in_flight"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not paused: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = server
        .http
        .post(server.url("/v1/subscriptions/ordered/resume"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let got = receiver
        .wait_until(WAIT, |r| {
            r.iter().filter(|r| r.answered == 200).count() >= 10
        })
        .await;
    let order: Vec<String> = got
        .iter()
        .filter(|r| r.answered == 200)
        .map(|r| r.header("ce-id").unwrap())
        .collect();
    let expected: Vec<String> = (1..=10).map(|i| format!("e-{i}")).collect();
    assert_eq!(order, expected, "{broker}: the key's events in order");
}

#[tokio::test]
async fn nats_keeps_key_order_across_a_pause() {
    order_holds_across_a_pause("jobs").await;
}

#[tokio::test]
async fn amqp_keeps_key_order_across_a_pause() {
    order_holds_across_a_pause("tasks").await;
}

#[tokio::test]
async fn memory_keeps_key_order_across_a_pause() {
    order_holds_across_a_pause("mem").await;
}

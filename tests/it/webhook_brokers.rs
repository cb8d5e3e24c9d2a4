//! Webhook delivery from Kafka (mock cluster) and RabbitMQ: per-key order under failures,
//! dead letters read back with the native client, and two groups each getting everything.


use std::time::Duration;

use crate::common::brokers::{amqp_channel, amqp_consumer, amqp_read, amqp_url, kafka_headers, Kafka};
use crate::common::receiver::{Receiver, Reply};
use crate::common::{unique_topic, TestServer};
use rdkafka::Message;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn accepted_ids(got: &[crate::common::receiver::Received], key: &str) -> Vec<String> {
    got.iter()
        .filter(|r| r.answered == 200 && r.header("ce-partitionkey").as_deref() == Some(key))
        .map(|r| r.header("ce-id").unwrap())
        .collect()
}

#[tokio::test]
async fn kafka_keys_keep_order_and_failures_go_to_the_dead_letter_topic() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "state_dir = \"{}\"\n[brokers.events]\nkind = \"kafka\"\nbootstrap_servers = \"{}\"\noptions = {{ \"session.timeout.ms\" = \"6000\" }}\n",
        dir.path().display(),
        kafka.bootstrap
    ))
    .await;
    let topic = unique_topic("wk");
    let dlq = format!("{topic}.dlq");
    kafka.create_topic(&topic, 3).await;
    kafka.create_topic(&dlq, 1).await;
    let receiver = Receiver::start().await;
    let audit = Receiver::start().await;
    receiver.script("a-3", vec![Reply::Status(500), Reply::Status(503)]);
    receiver.script("b-2", vec![Reply::Status(422)]);
    server.subscribe("billing", json!({"broker":"events","topic":topic,"endpoint":receiver.url,"start":"earliest",
        "dead_letter":dlq,"retry":{"max_attempts":5,"initial_backoff":"10ms","max_backoff":"20ms"}})).await;
    server.subscribe("audit", json!({"broker":"events","topic":topic,"endpoint":audit.url,"start":"earliest","ordering":"none"})).await;
    for i in 1..=20 {
        for key in ["a", "b", "c"] {
            let r = server
                .post(
                    &format!("/v1/publish/events/{topic}?key={key}"),
                    &[("ce-id", &format!("{key}-{i}"))],
                    "x",
                )
                .await;
            assert_eq!(r.status(), 200);
        }
    }
    let got = receiver
        .wait_until(WAIT, |r| {
            r.iter().filter(|r| r.answered == 200).count() == 59
        })
        .await;
    for key in ["a", "b", "c"] {
        let expected: Vec<String> = (1..=20)
            .map(|i| format!("{key}-{i}"))
            .filter(|id| id != "b-2")
            .collect();
        assert_eq!(accepted_ids(&got, key), expected, "order of key {key}");
    }
    audit
        .wait_until(WAIT, |r| {
            r.iter().filter(|r| r.answered == 200).count() >= 60
        })
        .await;
    let dead = kafka.read(&dlq, 1, 1);
    assert_eq!(dead[0].key(), Some(&b"b"[..]));
    let h = kafka_headers(&dead[0]);
    let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(get("ce_id").as_deref(), Some("b-2"));
    assert_eq!(get("ce_sidebuserrorstatus").as_deref(), Some("422"));
    assert_eq!(
        get("ce_sidebuserrorsubscription").as_deref(),
        Some("billing")
    );
    assert_eq!(get("ce_sidebuserrortopic").as_deref(), Some(topic.as_str()));
    assert!(get("ce_sidebuserrorposition").unwrap().contains(':'));
}

#[tokio::test]
async fn amqp_delivers_in_order_and_dead_letters_to_an_exchange() {
    let channel = amqp_channel().await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "state_dir = \"{}\"\n[brokers.tasks]\nkind = \"amqp\"\nurl = \"{}\"\n",
        dir.path().display(),
        amqp_url()
    ))
    .await;
    let topic = unique_topic("wa");
    let dlq = format!("{topic}.dlq");
    let mut dead = amqp_consumer(&channel, &dlq).await;
    let receiver = Receiver::start().await;
    receiver.script("t-5", vec![Reply::Status(400)]);
    receiver.script("t-7", vec![Reply::RetryAfter(503, 1)]);
    server
        .subscribe(
            "worker",
            json!({"broker":"tasks","topic":topic,"endpoint":receiver.url,"dead_letter":dlq,
        "ordering":"partition","retry":{"initial_backoff":"10ms","max_backoff":"20ms"}}),
        )
        .await;
    // The group's queue exists once the subscription runs; wait until it is bound.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = server
            .post(
                &format!("/v1/publish/tasks/{topic}"),
                &[("ce-id", "t-0")],
                "x",
            )
            .await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 502, "unroutable until the queue is bound");
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 1..=10 {
        let r = server
            .post(
                &format!("/v1/publish/tasks/{topic}"),
                &[("ce-id", &format!("t-{i}"))],
                "x",
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let got = receiver
        .wait_until(WAIT, |r| {
            r.iter().filter(|r| r.answered == 200).count() == 10
        })
        .await;
    let ids: Vec<String> = got
        .iter()
        .filter(|r| r.answered == 200)
        .map(|r| r.header("ce-id").unwrap())
        .collect();
    let expected: Vec<String> = (0..=10)
        .filter(|i| *i != 5)
        .map(|i| format!("t-{i}"))
        .collect();
    assert_eq!(ids, expected);
    let d = &amqp_read(&mut dead, 1).await[0];
    let headers = d.properties.headers().as_ref().unwrap();
    let header = |n: &str| match headers.inner().get(n) {
        Some(lapin::types::AMQPValue::LongString(s)) => Some(s.to_string()),
        other => panic!("header {n}: {other:?}"),
    };
    assert_eq!(d.data, b"x");
    assert_eq!(header("ce-id").as_deref(), Some("t-5"));
    assert_eq!(header("ce-sidebuserrorstatus").as_deref(), Some("400"));
    assert_eq!(
        header("ce-sidebuserrorsubscription").as_deref(),
        Some("worker")
    );
    assert_eq!(header("ce-sidebuserrorattempts").as_deref(), Some("1"));
}

//! Topic mapping (design §8.7): services publish to and subscribe to logical names; Kafka, NATS
//! JetStream and RabbitMQ get the physical topic behind the broker's `topic_prefix`, plus a
//! shadow copy — read back natively. Webhooks, SSE, dead letters and discovery show the logical
//! name.

use std::time::Duration;

use crate::common::brokers::{
    amqp_channel, amqp_consumer, amqp_read, amqp_url, nats_client, nats_url, Kafka,
};
use crate::common::receiver::{Receiver, Reply};
use crate::common::sse::{connect, subscribe_path};
use crate::common::{stored, unique_topic, TestServer};
use async_nats::jetstream;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// `[brokers.b]` as `broker`, with `prefix`, mapping `orders` to `orders.v2` with the shadow
/// `orders.canary`.
fn config(broker: &str, prefix: &str, state_dir: &std::path::Path) -> String {
    format!(
        r#"
source = "sidebus://test"
state_dir = "{}"
[pipeline]
ack_timeout = "5s"
[brokers.b]
{broker}
topic_prefix = "{prefix}"
[[topics]]
name = "orders"
broker = "b"
physical = "orders.v2"
shadow = "orders.canary"
"#,
        state_dir.display()
    )
}

/// Publishes one event alone and two as a batch to logical `topic`; returns their ids in order.
async fn publish_three(server: &TestServer, topic: &str) -> Vec<String> {
    let response = server
        .post(
            &format!("/v1/publish/b/{topic}"),
            &[("content-type", "text/plain"), ("ce-id", "one")],
            "first",
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["topic"], topic,
        "the answer names the logical topic: {body}"
    );
    let batch = json!([
        {"specversion":"1.0","id":"two","source":"/t","type":"t","data":"second"},
        {"specversion":"1.0","id":"three","source":"/t","type":"t","data":"third"}
    ]);
    let response = server
        .post(
            &format!("/v1/publish/b/{topic}/batch"),
            &[("content-type", "application/cloudevents-batch+json")],
            batch.to_string(),
        )
        .await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    vec!["one".into(), "two".into(), "three".into()]
}

#[tokio::test]
async fn nats_gets_the_physical_topic_and_the_shadow() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("{}.", unique_topic("tm"));
    let broker = format!("kind = \"nats\"\nurl = \"{}\"", nats_url());
    let server = TestServer::start(&config(&broker, &prefix, dir.path())).await;
    let ids = publish_three(&server, "orders").await;
    let js = jetstream::new(nats_client().await);
    for physical in [
        format!("{prefix}orders.v2"),
        format!("{prefix}orders.canary"),
    ] {
        let stream = js
            .get_stream(sidebus::backend::nats::stream_name(&physical))
            .await
            .unwrap_or_else(|e| panic!("no stream for {physical}: {e}"));
        let mut got = Vec::new();
        for seq in 1..=3 {
            let message = stream.get_raw_message(seq).await.unwrap();
            assert_eq!(message.subject.as_str(), physical);
            got.push(message.headers.get("ce-id").unwrap().as_str().to_string());
        }
        assert_eq!(got, ids, "{physical}");
    }
    assert!(
        js.get_stream(sidebus::backend::nats::stream_name("orders"))
            .await
            .is_err()
            || js
                .get_stream(sidebus::backend::nats::stream_name("orders"))
                .await
                .unwrap()
                .get_info()
                .await
                .unwrap()
                .state
                .messages
                == 0,
        "nothing went to the logical name"
    );
    server.stop().await;
}

#[tokio::test]
async fn rabbitmq_gets_the_physical_topic_and_the_shadow() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("{}.", unique_topic("tm"));
    let broker = format!("kind = \"amqp\"\nurl = \"{}\"", amqp_url());
    let server = TestServer::start(&config(&broker, &prefix, dir.path())).await;
    let channel = amqp_channel().await;
    let mut physical = amqp_consumer(&channel, &format!("{prefix}orders.v2")).await;
    let mut shadow = amqp_consumer(&channel, &format!("{prefix}orders.canary")).await;
    let mut unmapped = amqp_consumer(&channel, &format!("{prefix}payments")).await;
    let ids = publish_three(&server, "orders").await;
    for consumer in [&mut physical, &mut shadow] {
        let got: Vec<String> = amqp_read(consumer, 3)
            .await
            .iter()
            .map(|d| {
                let headers = d.properties.headers().as_ref().expect("headers");
                match headers.inner().get("ce-id") {
                    Some(lapin::types::AMQPValue::LongString(s)) => s.to_string(),
                    other => panic!("ce-id header: {other:?}"),
                }
            })
            .collect();
        assert_eq!(got, ids);
    }
    let response = server
        .post(
            "/v1/publish/b/payments",
            &[("content-type", "text/plain"), ("ce-id", "p")],
            "unmapped",
        )
        .await;
    assert_eq!(response.status(), 200);
    let got = amqp_read(&mut unmapped, 1).await;
    assert_eq!(
        &*got[0].data, b"unmapped",
        "an unmapped topic gets the prefix alone"
    );
    server.stop().await;
}

#[tokio::test]
async fn kafka_gets_the_physical_topic_and_the_shadow() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = Kafka::start();
    let prefix = format!("{}.", unique_topic("tm"));
    for topic in ["orders.v2", "orders.canary"] {
        kafka.create_topic(&format!("{prefix}{topic}"), 1).await;
    }
    let broker = format!(
        "kind = \"kafka\"\nbootstrap_servers = \"{}\"",
        kafka.bootstrap
    );
    let server = TestServer::start(&config(&broker, &prefix, dir.path())).await;
    let ids = publish_three(&server, "orders").await;
    for topic in ["orders.v2", "orders.canary"] {
        let physical = format!("{prefix}{topic}");
        let got: Vec<String> = kafka
            .read(&physical, 1, 3)
            .iter()
            .map(|m| {
                crate::common::brokers::kafka_headers(m)
                    .into_iter()
                    .find(|(k, _)| k == "ce_id")
                    .expect("ce_id header")
                    .1
            })
            .collect();
        assert_eq!(got, ids, "{physical}");
    }
    server.stop().await;
}

/// The memory broker: a webhook subscription and an SSE stream on the logical name get the
/// events of the physical topic under the logical name; a dead letter is written to the
/// mapped dead-letter topic and names both topics; discovery lists logical names only.
#[tokio::test]
async fn delivery_and_discovery_show_logical_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config("kind = \"memory\"", "tenant-a.", dir.path())).await;
    let receiver = Receiver::start().await;
    receiver.script("two", vec![Reply::Status(500)]);
    server
        .subscribe(
            "mapped",
            json!({"broker":"b","topic":"orders","endpoint":receiver.url,"start":"earliest",
                   "dead_letter":"orders.dlq","retry":{"max_attempts":1}}),
        )
        .await;
    let mut stream = connect(
        &server,
        &subscribe_path("b", "orders", "from=earliest"),
        None,
    )
    .await;
    publish_three(&server, "orders").await;
    let received = receiver
        .wait_until(WAIT, |r| {
            r.iter().filter(|r| r.answered == 200).count() == 2
        })
        .await;
    for request in &received {
        assert_eq!(request.header("sidebus-topic").as_deref(), Some("orders"));
    }
    let events = stream.events(3).await;
    for event in &events {
        assert_eq!(event.json["sidebustopic"], "orders", "{}", event.json);
    }

    let deadline = tokio::time::Instant::now() + WAIT;
    let dead = loop {
        let dead = stored(&server, "b", "tenant-a.orders.dlq", 1).await;
        if !dead.is_empty() {
            break dead;
        }
        assert!(tokio::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let dead = &dead[0].event;
    assert_eq!(dead.id, "two");
    assert_eq!(dead.extension("sidebuserrortopic"), Some("orders"));
    assert_eq!(
        dead.extension("sidebuserrorphysicaltopic"),
        Some("tenant-a.orders.v2")
    );

    // Another tenant's topic on the same broker, written under the broker's feet.
    let backend = &server.state.broker("b").unwrap().backend;
    let foreign = sidebus::backend::Outbound {
        topic: "tenant-b.secret".into(),
        event: dead.clone(),
    };
    for ack in backend.send(vec![foreign]).await.await {
        ack.expect("stored");
    }
    let listed = server.get_json("/v1/brokers/b/topics").await;
    let names: Vec<&str> = listed["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders", "orders.canary", "orders.dlq"]);
    let listed = server
        .get_json("/v1/brokers/b/topics?prefix=orders.d")
        .await;
    assert_eq!(listed["topics"][0]["name"], "orders.dlq");
    assert_eq!(listed["topics"].as_array().unwrap().len(), 1);
    // An open stream would hold the graceful shutdown.
    drop(stream);
    server.stop().await;
}

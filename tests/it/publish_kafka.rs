//! Publish path against a real Kafka-protocol broker (librdkafka's mock cluster, or
//! `SIDEBUS_TEST_KAFKA`): binary mapping, keys and partitions, order, idempotency, outage.


use std::time::Duration;

use crate::common::brokers::{kafka_headers, Kafka};
use crate::common::{assert_problem, unique_topic, TestServer};
use rdkafka::Message;
use serde_json::Value;

fn config(kafka: &Kafka) -> String {
    format!(
        r#"
source = "sidebus://test"
[pipeline]
ack_timeout = "10s"
[brokers.events]
kind = "kafka"
bootstrap_servers = "{}"
"#,
        kafka.bootstrap
    )
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

#[tokio::test]
async fn binary_mapping_key_value_and_headers() {
    let kafka = Kafka::start();
    let server = TestServer::start(&config(&kafka)).await;
    let topic = unique_topic("kafka.bin");
    kafka.create_topic(&topic, 1).await;
    let response = server
        .post(
            &format!("/v1/publish/events/{topic}?key=cust-1"),
            &[
                ("content-type", "application/avro"),
                ("ce-id", "k-1"),
                ("ce-type", "order.placed"),
                ("ce-dataschema", "https://schemas/1"),
            ],
            vec![1u8, 2, 3, 255],
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], "k-1");
    assert_eq!(body["partition"], 0);
    assert_eq!(body["offset"], 0);
    let batch = server
        .post(
            &format!("/v1/publish/events/{topic}/batch"),
            &[("content-type", "application/cloudevents-batch+json")],
            r#"[{"specversion":"1.0","id":"k-2","source":"/s","type":"t","data":{"x":true}},{"specversion":"1.0","id":"k-3","source":"/s","type":"t","data":"t","datacontenttype":"text/plain","partitionkey":"cust-2"}]"#,
        )
        .await;
    let batch: Value = batch.json().await.unwrap();
    assert_eq!(batch["failed"], 0, "{batch}");
    assert_eq!(batch["results"][1]["offset"], 2);

    let messages = kafka.read(&topic, 1, 3);
    let m = &messages[0];
    assert_eq!(m.payload(), Some(&[1u8, 2, 3, 255][..]));
    assert_eq!(m.key(), Some(&b"cust-1"[..]));
    let h = kafka_headers(m);
    assert_eq!(
        header(&h, "content-type").as_deref(),
        Some("application/avro")
    );
    assert_eq!(header(&h, "ce_id").as_deref(), Some("k-1"));
    assert_eq!(header(&h, "ce_specversion").as_deref(), Some("1.0"));
    assert_eq!(header(&h, "ce_type").as_deref(), Some("order.placed"));
    assert_eq!(header(&h, "ce_source").as_deref(), Some("sidebus://test"));
    assert_eq!(
        header(&h, "ce_dataschema").as_deref(),
        Some("https://schemas/1")
    );
    assert_eq!(header(&h, "ce_partitionkey").as_deref(), Some("cust-1"));
    assert!(header(&h, "ce_time").is_some());
    assert_eq!(messages[1].payload(), Some(&br#"{"x":true}"#[..]));
    assert_eq!(messages[1].key(), None);
    assert_eq!(
        header(&kafka_headers(&messages[1]), "content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(messages[2].payload(), Some(&b"t"[..]));
    assert_eq!(messages[2].key(), Some(&b"cust-2"[..]));
}

#[tokio::test]
async fn keys_keep_their_order_across_three_partitions() {
    let kafka = Kafka::start();
    let server = TestServer::start(&config(&kafka)).await;
    let topic = unique_topic("kafka.order");
    kafka.create_topic(&topic, 3).await;
    let keys = ["alpha", "beta", "gamma", "delta"];
    let tasks: Vec<_> = keys
        .iter()
        .map(|key| {
            let http = server.http.clone();
            let url = server.url(&format!("/v1/publish/events/{topic}?key={key}"));
            let key = key.to_string();
            tokio::spawn(async move {
                let mut partitions = std::collections::HashSet::new();
                for i in 0..75 {
                    let r = http
                        .post(&url)
                        .body(format!("{key}-{i}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    let body: Value = r.json().await.unwrap();
                    partitions.insert(body["partition"].as_i64().unwrap());
                }
                assert_eq!(partitions.len(), 1, "one key, one partition");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let messages = kafka.read(&topic, 3, 300);
    for key in keys {
        let seen: Vec<String> = messages
            .iter()
            .filter(|m| m.key() == Some(key.as_bytes()))
            .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
            .collect();
        let expected: Vec<String> = (0..75).map(|i| format!("{key}-{i}")).collect();
        assert_eq!(seen, expected, "order of key {key}");
    }
    let used: std::collections::HashSet<i32> = messages.iter().map(|m| m.partition()).collect();
    assert!(used.len() > 1, "keys spread over partitions: {used:?}");
}

#[tokio::test]
async fn idempotency_key_produces_once() {
    let kafka = Kafka::start();
    let server = TestServer::start(&config(&kafka)).await;
    let topic = unique_topic("kafka.idem");
    kafka.create_topic(&topic, 1).await;
    let path = format!("/v1/publish/events/{topic}");
    let headers = [("idempotency-key", "k-77")];
    let a: Value = server
        .post(&path, &headers, "once")
        .await
        .json()
        .await
        .unwrap();
    let second = server.post(&path, &headers, "once").await;
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let b: Value = second.json().await.unwrap();
    assert_eq!(a, b);
    assert_eq!(server.post(&path, &[], "next").await.status(), 200);
    let messages = kafka.read(&topic, 1, 2);
    assert_eq!(messages[0].payload(), Some(&b"once"[..]));
    assert_eq!(
        messages[1].payload(),
        Some(&b"next"[..]),
        "the retry produced nothing"
    );
}

#[tokio::test]
async fn broker_down_gives_503_and_publishing_recovers() {
    let kafka = Kafka::start_mock();
    let mock = kafka.mock().expect("a mock cluster");
    let server = TestServer::start(&config(&kafka)).await;
    let topic = unique_topic("kafka.outage");
    kafka.create_topic(&topic, 1).await;
    let path = format!("/v1/publish/events/{topic}");
    assert_eq!(server.post(&path, &[], "before").await.status(), 200);

    mock.broker_down(1).unwrap();
    server
        .wait_readyz(
            Duration::from_secs(30),
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
        )
        .await
        .expect("readyz reports the outage");
    let response = server.post(&path, &[], "during").await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(response, 503).await;

    mock.broker_up(1).unwrap();
    server.wait_ready(Duration::from_secs(30)).await;
    let response = server.post(&path, &[], "after").await;
    assert_eq!(response.status(), 200);
    let messages = kafka.read(&topic, 1, 2);
    let payloads: Vec<_> = messages
        .iter()
        .map(|m| m.payload().unwrap().to_vec())
        .collect();
    assert_eq!(payloads, vec![b"before".to_vec(), b"after".to_vec()]);
}

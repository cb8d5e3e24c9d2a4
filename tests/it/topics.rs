//! Topic discovery through `Backend::list_topics` on the brokers that have it (memory, NATS
//! JetStream, Kafka), read from a running sidebus's state; AMQP says it cannot.

use crate::common::brokers::{amqp_url, nats_url, Kafka};
use crate::common::{unique_topic, TestServer};
use sidebus::backend::consume::ConsumeError;
use sidebus::backend::TopicInfo;

fn config(broker: &str) -> String {
    format!("source = \"sidebus://test\"\n[brokers.b]\n{broker}\n")
}

async fn publish(server: &TestServer, topic: &str, n: usize) {
    for i in 0..n {
        let response = server
            .post(
                &format!("/v1/publish/b/{topic}"),
                &[("content-type", "text/plain")],
                format!("event {i}"),
            )
            .await;
        assert_eq!(response.status(), 200, "publishing to {topic}");
    }
}

async fn list(server: &TestServer, prefix: Option<&str>) -> Vec<TopicInfo> {
    let backend = &server.state.broker("b").expect("broker b").backend;
    backend.list_topics(prefix).await.expect("the broker lists")
}

#[tokio::test]
async fn memory_topics_with_their_event_counts() {
    let server = TestServer::start(&config("kind = \"memory\"")).await;
    let prefix = unique_topic("topics.mem");
    let (a, b) = (format!("{prefix}.a"), format!("{prefix}.b"));
    publish(&server, &b, 1).await;
    publish(&server, &a, 3).await;
    let topics = list(&server, Some(&prefix)).await;
    assert_eq!(
        topics,
        vec![
            TopicInfo {
                name: a.clone(),
                partitions: None,
                messages: Some(3),
            },
            TopicInfo {
                name: b.clone(),
                partitions: None,
                messages: Some(1),
            },
        ],
        "sorted by name, each with what it holds"
    );
    let all = list(&server, None).await;
    assert!(all.iter().any(|t| t.name == a) && all.iter().any(|t| t.name == b));
    assert!(list(&server, Some("topics.none.")).await.is_empty());
}

#[tokio::test]
async fn jetstream_subjects_with_their_stream_counts() {
    let server = TestServer::start(&config(&format!(
        "kind = \"nats\"\nurl = \"{}\"",
        nats_url()
    )))
    .await;
    let topic = unique_topic("topics.nats");
    publish(&server, &topic, 2).await;
    let topics = list(&server, Some(&topic)).await;
    assert_eq!(
        topics,
        vec![TopicInfo {
            name: topic.clone(),
            partitions: None,
            messages: Some(2),
        }]
    );
    assert!(list(&server, None).await.iter().any(|t| t.name == topic));
}

#[tokio::test]
async fn kafka_topics_with_their_partitions() {
    let kafka = Kafka::start();
    let server = TestServer::start(&config(&format!(
        "kind = \"kafka\"\nbootstrap_servers = \"{}\"",
        kafka.bootstrap
    )))
    .await;
    let prefix = unique_topic("topics.kafka");
    let (three, one) = (format!("{prefix}.three"), format!("{prefix}.one"));
    kafka.create_topic(&three, 3).await;
    kafka.create_topic(&one, 1).await;
    publish(&server, &three, 2).await;
    let topics = list(&server, Some(&prefix)).await;
    assert_eq!(
        topics,
        vec![
            TopicInfo {
                name: one.clone(),
                partitions: Some(1),
                messages: None,
            },
            TopicInfo {
                name: three.clone(),
                partitions: Some(3),
                messages: None,
            },
        ]
    );
    let all = list(&server, None).await;
    assert!(all.iter().any(|t| t.name == three));
    assert!(all.iter().all(|t| !t.name.starts_with("__")), "{all:?}");
}

#[tokio::test]
async fn amqp_cannot_list_its_exchanges() {
    let server = TestServer::start_unready(&config(&format!(
        "kind = \"amqp\"\nurl = \"{}\"",
        amqp_url()
    )))
    .await;
    let backend = &server.state.broker("b").expect("broker b").backend;
    match backend.list_topics(None).await {
        Err(ConsumeError::Unsupported(why)) => assert!(why.contains("AMQP"), "{why}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

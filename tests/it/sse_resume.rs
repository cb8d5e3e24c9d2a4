//! Server-Sent Events over real brokers, read with a plain streaming HTTP client that parses
//! the stream as the SSE spec says (`crate::common::sse`): exact resume on another instance (memory,
//! NATS JetStream, Kafka with 3 partitions), cursors from `latest`, and AMQP queues, which have
//! no replay.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::brokers::{amqp_url, nats_url, Kafka};
use crate::common::sse::{
    connect, cursor_at, expected, get, ids, memory_config, publish, subscribe_path, Ev, Item,
};
use crate::common::{assert_problem, unique_topic, TestServer};
use sidebus::backend::memory;

/// Reads 20 of 50 events from `a`, disconnects, resumes on `b` with Last-Event-ID and checks
/// that exactly events 21 to 50 follow, in order, and nothing after them.
async fn resume_in_order(a: &TestServer, b: &TestServer, broker: &str, topic: &str) {
    let mut first = connect(a, &subscribe_path(broker, topic, "from=earliest"), None).await;
    let head = first.events(20).await;
    assert_eq!(ids(&head), expected(1..=20));
    for (i, ev) in head.iter().enumerate() {
        assert_eq!(ev.json["data"], format!("n{}", i + 1));
        assert_eq!(ev.json["specversion"], "1.0");
        assert!(ev.event.is_none(), "untyped streams name no event");
        assert!(ev.id.is_some(), "every event carries a cursor");
    }
    let cursor = head.last().unwrap().id.clone().unwrap();
    drop(first);
    // Last-Event-ID wins over ?from=earliest.
    let mut second = connect(
        b,
        &subscribe_path(broker, topic, "from=earliest"),
        Some(&cursor),
    )
    .await;
    let tail = second.events(30).await;
    assert_eq!(ids(&tail), expected(21..=50), "no gap, no repeat");
    second.expect_idle().await;
}

#[tokio::test]
async fn memory_resumes_exactly_on_another_instance() {
    let a = TestServer::start(&memory_config("")).await;
    let b = TestServer::start(&memory_config("")).await;
    let topic = unique_topic("sse.mem");
    // The memory broker lives in each process: both hold the same 50 events at the same offsets.
    publish(&a, "mem", &topic, 1..=50, |_| None).await;
    publish(&b, "mem", &topic, 1..=50, |_| None).await;
    resume_in_order(&a, &b, "mem", &topic).await;
}

fn nats_config() -> String {
    format!(
        r#"
source = "sidebus://sse-test"
[sse]
keep_alive = "300ms"
[brokers.jobs]
kind = "nats"
url = "{}"
"#,
        nats_url()
    )
}

#[tokio::test]
async fn nats_resumes_exactly_on_another_instance() {
    let a = TestServer::start(&nats_config()).await;
    let b = TestServer::start(&nats_config()).await;
    let topic = unique_topic("sse.nats");
    publish(&a, "jobs", &topic, 1..=50, |_| None).await;
    resume_in_order(&a, &b, "jobs", &topic).await;
}

#[tokio::test]
async fn nats_latest_sees_only_new_events_and_its_cursor_resumes() {
    let server = TestServer::start(&nats_config()).await;
    let topic = unique_topic("sse.nats.latest");
    publish(&server, "jobs", &topic, 1..=3, |_| None).await;
    let mut stream = connect(&server, &subscribe_path("jobs", &topic, ""), None).await;
    publish(&server, "jobs", &topic, 4..=6, |_| None).await;
    let got = stream.events(2).await;
    assert_eq!(ids(&got), expected(4..=5));
    drop(stream);
    let mut again = connect(
        &server,
        &subscribe_path("jobs", &topic, ""),
        got[1].id.as_deref(),
    )
    .await;
    assert_eq!(ids(&again.events(1).await), expected(6..=6));
    again.expect_idle().await;
}

fn kafka_config(kafka: &Kafka) -> String {
    format!(
        r#"
source = "sidebus://sse-test"
[pipeline]
ack_timeout = "10s"
[sse]
keep_alive = "300ms"
[brokers.events]
kind = "kafka"
bootstrap_servers = "{}"
"#,
        kafka.bootstrap
    )
}

/// Per key, the events in publish order.
fn by_key(events: &[Ev], keys: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ev in events {
        out.entry(keys[&ev.ce_id()].clone())
            .or_default()
            .push(ev.ce_id());
    }
    out
}

#[tokio::test]
async fn kafka_with_three_partitions_resumes_exactly_on_another_instance() {
    let kafka = Kafka::start();
    let topic = unique_topic("sse.kafka");
    kafka.create_topic(&topic, 3).await;
    let a = TestServer::start(&kafka_config(&kafka)).await;
    let b = TestServer::start(&kafka_config(&kafka)).await;
    let key = |i: usize| format!("k{}", i % 7);
    publish(&a, "events", &topic, 1..=50, |i| Some(key(i))).await;
    let keys: BTreeMap<String, String> = (1..=50).map(|i| (format!("ev-{i:02}"), key(i))).collect();

    let mut first = connect(&a, &subscribe_path("events", &topic, "from=earliest"), None).await;
    let head = first.events(20).await;
    let cursor = head.last().unwrap().id.clone().unwrap();
    drop(first);
    let mut second = connect(&b, &subscribe_path("events", &topic, ""), Some(&cursor)).await;
    let tail = second.events(30).await;
    second.expect_idle().await;

    let head_ids: BTreeSet<String> = ids(&head).into_iter().collect();
    let tail_ids: BTreeSet<String> = ids(&tail).into_iter().collect();
    assert_eq!(
        head_ids.len() + tail_ids.len(),
        50,
        "no repeat within a stream"
    );
    assert!(
        head_ids.is_disjoint(&tail_ids),
        "no repeat across the reconnect"
    );
    let all: BTreeSet<String> = head_ids.union(&tail_ids).cloned().collect();
    assert_eq!(all, expected(1..=50).into_iter().collect(), "no gap");
    // Each key lives in one partition: across both streams its events keep publish order.
    let mut both = head.clone();
    both.extend(tail);
    for (k, events) in by_key(&both, &keys) {
        let mut sorted = events.clone();
        sorted.sort();
        assert_eq!(events, sorted, "order of key {k}");
    }
}

#[tokio::test]
async fn kafka_latest_cursor_names_every_partition() {
    let kafka = Kafka::start();
    let topic = unique_topic("sse.kafka.latest");
    kafka.create_topic(&topic, 3).await;
    let a = TestServer::start(&kafka_config(&kafka)).await;
    let b = TestServer::start(&kafka_config(&kafka)).await;
    publish(&a, "events", &topic, 1..=5, |i| Some(format!("old{i}"))).await;
    let mut first = connect(&a, &subscribe_path("events", &topic, ""), None).await;
    // The first block announces where the stream began, before any event.
    assert_eq!(first.next().await, Some(Item::Comment("sidebus".into())));
    while first.last_id.is_none() {
        let item = first.next().await;
        assert!(
            matches!(item, Some(Item::Comment(_))),
            "a fresh Kafka stream announces its start before any event: {item:?}"
        );
    }
    let announced = first.last_id.clone().unwrap();
    publish(&a, "events", &topic, 6..=17, |i| Some(format!("k{i}"))).await;
    let one = first.events(1).await;
    drop(first);
    // Resuming from the announcement alone, or after one event, misses nothing on any partition.
    let mut from_start = connect(&b, &subscribe_path("events", &topic, ""), Some(&announced)).await;
    let all = from_start.events(12).await;
    from_start.expect_idle().await;
    let mut got: Vec<String> = ids(&all);
    got.sort();
    assert_eq!(got, expected(6..=17));
    let mut after_one = connect(
        &b,
        &subscribe_path("events", &topic, ""),
        one[0].id.as_deref(),
    )
    .await;
    let rest = after_one.events(11).await;
    after_one.expect_idle().await;
    let mut got: Vec<String> = ids(&rest);
    got.push(one[0].ce_id());
    got.sort();
    assert_eq!(got, expected(6..=17));
}

fn amqp_config() -> String {
    format!(
        r#"
source = "sidebus://sse-test"
[sse]
keep_alive = "300ms"
[brokers.tasks]
kind = "amqp"
url = "{}"
"#,
        amqp_url()
    )
}

#[tokio::test]
async fn amqp_streams_consume_queues_without_replay() {
    let server = TestServer::start(&amqp_config()).await;
    let topic = unique_topic("sse.amqp");
    // An exclusive queue: events published while connected, no cursors.
    let mut stream = connect(&server, &subscribe_path("tasks", &topic, ""), None).await;
    publish(&server, "tasks", &topic, 1..=5, |_| None).await;
    let got = stream.events(5).await;
    assert_eq!(ids(&got), expected(1..=5));
    assert!(
        got.iter().all(|e| e.id.is_none()),
        "AMQP events carry no cursor"
    );
    drop(stream);
    // A cursor or ?from=earliest would promise a replay AMQP cannot give.
    let cursor = cursor_at(memory::CAPABILITIES, 1, &topic);
    let body = assert_problem(
        get(&server, &subscribe_path("tasks", &topic, ""), Some(&cursor)).await,
        400,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("AMQP has no replay"),
        "{body}"
    );
    assert_problem(
        get(
            &server,
            &subscribe_path("tasks", &topic, "from=earliest"),
            None,
        )
        .await,
        400,
    )
    .await;
    // A group is the durable queue `<group>.<topic>`: it keeps events while no one is connected.
    let group = format!("g{}", uuid::Uuid::now_v7().simple());
    let path = subscribe_path("tasks", &topic, &format!("group={group}"));
    let mut member = connect(&server, &path, None).await;
    publish(&server, "tasks", &topic, 6..=8, |_| None).await;
    assert_eq!(ids(&member.events(3).await), expected(6..=8));
    // Idle: the connection took the last event and asked for more, so it is acknowledged.
    member.expect_idle().await;
    drop(member);
    publish(&server, "tasks", &topic, 9..=10, |_| None).await;
    let mut member = connect(&server, &path, None).await;
    assert_eq!(ids(&member.events(2).await), expected(9..=10));
    member.expect_idle().await;
    drop(member);
    let channel = crate::common::brokers::amqp_channel().await;
    let _ = channel
        .queue_delete(
            format!("{group}.{topic}").as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await;
}

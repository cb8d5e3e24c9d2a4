//! Consuming Kafka (librdkafka's mock cluster, or `SIDEBUS_TEST_KAFKA`): group subscriptions with
//! at-least-once commits, redelivery after a nack, groups and members, and positional reads.


use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::common::brokers::Kafka;
use crate::common::{unique_topic, TestServer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use sidebus::backend::consume::{ConsumeError, Consumer, Delivery, GroupSpec, ReadFrom, StartFrom};
use sidebus::backend::Backend;

/// How long any one expected delivery may take (the mock's first rebalance alone takes 3 s).
const WAIT: Duration = Duration::from_secs(30);

/// Statistics often, for the lag; a short session timeout because the mock cluster, once the
/// last member of a group left, waits the session timeout before it lets a new member in.
fn config(kafka: &Kafka) -> String {
    format!(
        r#"
source = "sidebus://test"
[pipeline]
ack_timeout = "10s"
[brokers.events]
kind = "kafka"
bootstrap_servers = "{}"
options = {{ "statistics.interval.ms" = "200", "session.timeout.ms" = "6000" }}
"#,
        kafka.bootstrap
    )
}

struct Setup {
    kafka: Kafka,
    server: TestServer,
    topic: String,
}

impl Setup {
    async fn start(prefix: &str, partitions: i32) -> Self {
        let kafka = Kafka::start();
        let server = TestServer::start(&config(&kafka)).await;
        let topic = unique_topic(prefix);
        kafka.create_topic(&topic, partitions).await;
        Self {
            kafka,
            server,
            topic,
        }
    }

    fn backend(&self) -> Arc<dyn Backend> {
        self.server.state.broker("events").unwrap().backend.clone()
    }

    async fn subscribe(&self, group: &str, max_in_flight: usize) -> Consumer {
        self.backend()
            .subscribe(GroupSpec {
                topic: self.topic.clone(),
                group: group.to_string(),
                start: StartFrom::Earliest,
                max_in_flight,
            })
            .await
            .expect("subscribed")
    }

    /// Publishes `body` through sidebus; returns the event id and its (partition, offset).
    async fn publish(&self, key: Option<&str>, body: &str) -> (String, (i32, i64)) {
        let path = match key {
            Some(key) => format!("/v1/publish/events/{}?key={key}", self.topic),
            None => format!("/v1/publish/events/{}", self.topic),
        };
        let response = self.server.post(&path, &[], body.to_string()).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        (
            body["id"].as_str().unwrap().to_string(),
            (
                body["partition"].as_i64().unwrap() as i32,
                body["offset"].as_i64().unwrap(),
            ),
        )
    }

    /// Publishes `n` events (`<prefix>-<i>`), keyed `key-<i % keys>` when `keys` > 0.
    async fn publish_many(&self, prefix: &str, n: usize, keys: usize) -> Vec<(String, (i32, i64))> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let key = (keys > 0).then(|| format!("key-{}", i % keys));
            out.push(self.publish(key.as_deref(), &format!("{prefix}-{i}")).await);
        }
        out
    }
}

async fn next(consumer: &mut Consumer) -> Delivery {
    tokio::time::timeout(WAIT, consumer.deliveries.recv())
        .await
        .expect("a delivery within the time limit")
        .expect("the consumer is running")
        .expect("a delivery, not an error")
}

fn data(d: &Delivery) -> String {
    String::from_utf8(d.event.data.to_vec()).unwrap()
}

/// Waits until group `group` has committed `offset` for partition 0 of the setup's topic.
async fn wait_for_commit(setup: &Setup, group: &str, offset: i64) {
    let (bootstrap, topic, group) = (
        setup.kafka.bootstrap.clone(),
        setup.topic.clone(),
        group.to_string(),
    );
    tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::{BaseConsumer, Consumer as _};
        let probe: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", &group)
            .create()
            .unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition(&topic, 0);
            let committed = probe
                .committed_offsets(tpl, Duration::from_secs(5))
                .map(|c| c.elements()[0].offset());
            if matches!(committed, Ok(rdkafka::Offset::Offset(o)) if o == offset) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "group {group} committed {committed:?}, not {offset}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
}

/// Polls the consumer's lag until `check` holds.
async fn wait_for_lag(consumer: &Consumer, what: &str, check: impl Fn(Option<u64>) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let lag = (consumer.lag)();
        if check(lag) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lag {what}: {lag:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn events_arrive_with_their_attributes_in_order() {
    let setup = Setup::start("kafka.sub", 1).await;
    let response = setup
        .server
        .post(
            &format!("/v1/publish/events/{}?key=cust-1", setup.topic),
            &[
                ("content-type", "application/json"),
                ("ce-id", "e-1"),
                ("ce-type", "order.placed"),
                ("ce-subject", "order/1"),
                ("ce-tenant", "acme"),
            ],
            r#"{"n":1}"#,
        )
        .await;
    assert_eq!(response.status(), 200);
    setup.publish(None, "second").await;
    // A plain native producer: the key is the partition key, no CloudEvents headers but one.
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &setup.kafka.bootstrap)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&setup.topic)
                .key("native-key")
                .payload("third")
                .headers(OwnedHeaders::new().insert(Header {
                    key: "ce_id",
                    value: Some("native-1"),
                })),
            Duration::from_secs(10),
        )
        .await
        .expect("native produce");

    let mut consumer = setup.subscribe("attrs", 16).await;
    let first = next(&mut consumer).await;
    assert_eq!(&*first.topic, setup.topic);
    assert_eq!((first.spot.partition, first.spot.offset), (0, 0));
    assert!(!first.redelivered);
    let e = &first.event;
    assert_eq!(e.id, "e-1");
    assert_eq!(e.ty, "order.placed");
    assert_eq!(e.source, "sidebus://test");
    assert_eq!(e.subject.as_deref(), Some("order/1"));
    assert_eq!(e.datacontenttype.as_deref(), Some("application/json"));
    assert_eq!(e.partition_key(), Some("cust-1"));
    assert_eq!(e.extension("tenant"), Some("acme"));
    assert!(e.time.is_some());
    assert_eq!(&e.data[..], br#"{"n":1}"#);
    let second = next(&mut consumer).await;
    assert_eq!(second.spot.offset, 1);
    assert_eq!(data(&second), "second");
    assert_eq!(second.event.partition_key(), None);
    let third = next(&mut consumer).await;
    assert_eq!(third.spot.offset, 2);
    assert_eq!(third.event.id, "native-1");
    assert_eq!(data(&third), "third");
    assert_eq!(third.event.partition_key(), Some("native-key"));
    for d in [first, second, third] {
        d.settle.ack().await.unwrap();
    }
}

#[tokio::test]
async fn a_new_member_resumes_after_the_acknowledged_prefix() {
    let setup = Setup::start("kafka.resume", 1).await;
    let published = setup.publish_many("r", 10, 0).await;
    let mut consumer = setup.subscribe("resume", 4).await;
    let mut offsets = Vec::new();
    let mut unsettled = Vec::new();
    for i in 0..6 {
        let d = next(&mut consumer).await;
        offsets.push(d.spot.offset);
        // Acknowledge the first four only, as they arrive.
        if i < 4 {
            d.settle.ack().await.unwrap();
        } else {
            unsettled.push(d);
        }
    }
    assert_eq!(offsets, vec![0, 1, 2, 3, 4, 5]);
    // 4 and 5 are in flight, unacknowledged, when the member goes away.
    drop(unsettled);
    drop(consumer);
    wait_for_commit(&setup, "resume", 4).await;

    let mut consumer = setup.subscribe("resume", 4).await;
    let mut resumed = Vec::new();
    while resumed.len() < 6 {
        let d = next(&mut consumer).await;
        resumed.push((d.spot.offset, data(&d)));
        d.settle.ack().await.unwrap();
    }
    let expected: Vec<(i64, String)> = (4..10).map(|i| (i, format!("r-{i}"))).collect();
    assert_eq!(
        resumed, expected,
        "resumes at the first unacknowledged event"
    );
    assert_eq!(published[4].1, (0, 4));
}

#[tokio::test]
async fn a_nacked_event_is_delivered_again_before_the_next() {
    let setup = Setup::start("kafka.nack", 1).await;
    let published = setup.publish_many("n", 3, 0).await;
    let mut consumer = setup.subscribe("nack", 1).await;
    let first = next(&mut consumer).await;
    assert_eq!(first.event.id, published[0].0);
    assert!(!first.redelivered);
    first.settle.nack().await.unwrap();
    let again = next(&mut consumer).await;
    assert_eq!(again.event.id, published[0].0);
    assert_eq!(again.spot.offset, 0);
    assert!(again.redelivered, "flagged as a redelivery");
    again.settle.ack().await.unwrap();
    for (id, _) in &published[1..] {
        let d = next(&mut consumer).await;
        assert_eq!(&d.event.id, id);
        assert!(!d.redelivered);
        d.settle.ack().await.unwrap();
    }
}

#[tokio::test]
async fn no_more_than_max_in_flight_are_handed_out() {
    let setup = Setup::start("kafka.bound", 1).await;
    setup.publish_many("b", 6, 0).await;
    let mut consumer = setup.subscribe("bound", 2).await;
    let a = next(&mut consumer).await;
    let b = next(&mut consumer).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), consumer.deliveries.recv())
            .await
            .is_err(),
        "a third event while two are unsettled"
    );
    wait_for_lag(&consumer, "reports the backlog", |lag| {
        lag.is_some_and(|l| l > 0)
    })
    .await;
    a.settle.ack().await.unwrap();
    let c = next(&mut consumer).await;
    assert_eq!(c.spot.offset, 2);
    b.settle.ack().await.unwrap();
    c.settle.ack().await.unwrap();
    for offset in 3..6 {
        let d = next(&mut consumer).await;
        assert_eq!(d.spot.offset, offset);
        d.settle.ack().await.unwrap();
    }
    wait_for_lag(&consumer, "drops to zero", |lag| lag == Some(0)).await;
}

#[tokio::test]
async fn two_groups_each_get_every_event() {
    let setup = Setup::start("kafka.groups", 2).await;
    let published = setup.publish_many("g", 12, 5).await;
    let all: BTreeSet<String> = published.iter().map(|(id, _)| id.clone()).collect();
    for group in ["billing", "shipping"] {
        let mut consumer = setup.subscribe(group, 32).await;
        let mut seen = BTreeSet::new();
        while seen.len() < all.len() {
            let d = next(&mut consumer).await;
            seen.insert(d.event.id.clone());
            d.settle.ack().await.unwrap();
        }
        assert_eq!(seen, all, "group {group}");
    }
}

#[tokio::test]
async fn members_of_one_group_split_the_partitions() {
    let setup = Setup::start("kafka.split", 2).await;
    let published = setup.publish_many("s", 20, 8).await;
    let key_for = |partition: i32| {
        let i = published
            .iter()
            .position(|(_, (p, _))| *p == partition)
            .expect("keys spread over both partitions");
        format!("key-{}", i % 8)
    };
    let keys = [key_for(0), key_for(1)];
    let mut members = [
        setup.subscribe("split", 32).await,
        setup.subscribe("split", 32).await,
    ];
    let mut seen: BTreeSet<String> = BTreeSet::new();
    // Whichever member joined first may take both partitions until the group rebalances; publish
    // one event per partition per round until a round shows the stable split.
    let mut split = false;
    for round in 0..30 {
        let mut receivers: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for key in &keys {
            let (id, _) = setup.publish(Some(key), &format!("round-{round}")).await;
            receivers.insert(id, BTreeSet::new());
        }
        while receivers.values().any(BTreeSet::is_empty) {
            let [a, b] = &mut members;
            let (member, d) = tokio::select! {
                d = next(a) => (0, d),
                d = next(b) => (1, d),
            };
            if let Some(got) = receivers.get_mut(&d.event.id) {
                got.insert(member);
            }
            seen.insert(d.event.id.clone());
            d.settle.ack().await.unwrap();
        }
        let owners: Vec<&BTreeSet<usize>> = receivers.values().collect();
        if owners.iter().all(|o| o.len() == 1) && owners[0] != owners[1] {
            split = true;
            break;
        }
    }
    assert!(split, "the two members never split the two partitions");
    let all: BTreeSet<String> = published.iter().map(|(id, _)| id.clone()).collect();
    assert!(
        all.is_subset(&seen),
        "every event before the split delivered"
    );
}

#[tokio::test]
async fn read_from_offsets_resumes_exactly_after_a_position() {
    let setup = Setup::start("kafka.read", 3).await;
    let published = setup.publish_many("p", 30, 9).await;
    let mut by_partition: BTreeMap<i32, Vec<(String, i64)>> = BTreeMap::new();
    for (id, (p, o)) in &published {
        by_partition.entry(*p).or_default().push((id.clone(), *o));
    }
    assert_eq!(by_partition.len(), 3, "keys spread over three partitions");
    // Resume partitions 0 and 1 after their second event; partition 2 is not named: latest.
    let cursor: BTreeMap<i32, i64> = [(0, 2), (1, 2)].into_iter().collect();
    let mut reader = setup
        .backend()
        .read_from(&setup.topic, ReadFrom::Offsets(cursor))
        .await
        .expect("reader");
    let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for p in [0, 1] {
        expected.insert(
            p,
            by_partition[&p][2..]
                .iter()
                .map(|(id, _)| id.clone())
                .collect(),
        );
    }
    // One more event per partition, published after the reader started.
    for p in 0..3 {
        let key = published
            .iter()
            .position(|(_, (pp, _))| *pp == p)
            .map(|i| format!("key-{}", i % 9))
            .unwrap();
        let (id, (pp, _)) = setup.publish(Some(&key), "late").await;
        assert_eq!(pp, p);
        expected.entry(p).or_default().push(id);
    }
    let total: usize = expected.values().map(Vec::len).sum();
    let mut got: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for _ in 0..total {
        let d = next(&mut reader).await;
        if let Some(prev) = last.insert(d.spot.partition, d.spot.offset) {
            assert!(
                d.spot.offset > prev,
                "order within partition {}",
                d.spot.partition
            );
        }
        got.entry(d.spot.partition)
            .or_default()
            .push(d.event.id.clone());
        d.settle.ack().await.unwrap();
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn read_from_latest_and_earliest() {
    let setup = Setup::start("kafka.latest", 3).await;
    let before = setup.publish_many("old", 4, 4).await;
    let backend = setup.backend();
    let mut latest = backend
        .read_from(&setup.topic, ReadFrom::Latest)
        .await
        .unwrap();
    let after = setup.publish_many("new", 3, 3).await;
    let mut seen = BTreeSet::new();
    for _ in 0..after.len() {
        seen.insert(next(&mut latest).await.event.id);
    }
    let new: BTreeSet<String> = after.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(seen, new, "only events published after the reader started");

    let mut earliest = backend
        .read_from(&setup.topic, ReadFrom::Earliest)
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    for _ in 0..before.len() + after.len() {
        seen.insert(next(&mut earliest).await.event.id);
    }
    assert_eq!(seen.len(), 7);
}

#[tokio::test]
async fn bad_cursors_and_unknown_topics_are_invalid() {
    let setup = Setup::start("kafka.invalid", 2).await;
    let backend = setup.backend();
    let invalid = |r: Result<Consumer, ConsumeError>| match r {
        Err(ConsumeError::Invalid(m)) => m,
        Err(e) => panic!("expected Invalid, got {e:?}"),
        Ok(_) => panic!("expected Invalid, got a consumer"),
    };
    invalid(backend.read_from(&setup.topic, ReadFrom::Sequence(3)).await);
    let beyond: BTreeMap<i32, i64> = [(5, 0)].into_iter().collect();
    let message = invalid(
        backend
            .read_from(&setup.topic, ReadFrom::Offsets(beyond))
            .await,
    );
    assert!(message.contains("2 partitions"), "{message}");
    let missing = unique_topic("kafka.missing");
    invalid(backend.read_from(&missing, ReadFrom::Earliest).await);
    let message = invalid(
        backend
            .subscribe(GroupSpec {
                topic: missing,
                group: "g".into(),
                start: StartFrom::Latest,
                max_in_flight: 1,
            })
            .await,
    );
    assert!(message.contains("does not exist"), "{message}");
}

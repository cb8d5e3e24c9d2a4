//! Consuming real RabbitMQ: group queues with manual acks, redelivery after a nack, groups and
//! members, surviving a connection cut, and latest-only reads (AMQP has no replay).


use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::brokers::{amqp_channel, amqp_url};
use crate::common::proxy::Proxy;
use crate::common::{unique_topic, TestServer};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use sidebus::backend::consume::{ConsumeError, Consumer, Delivery, GroupSpec, ReadFrom, StartFrom};
use sidebus::backend::Backend;

const WAIT: Duration = Duration::from_secs(30);

fn config(url: &str) -> String {
    format!(
        r#"
source = "sidebus://test"
[pipeline]
ack_timeout = "5s"
[brokers.tasks]
kind = "amqp"
url = "{url}"
"#
    )
}

struct Setup {
    server: TestServer,
    topic: String,
    /// A native connection straight to RabbitMQ, for looking at queues.
    probe: lapin::Connection,
}

impl Setup {
    async fn start(prefix: &str) -> Self {
        Self::start_at(&amqp_url(), prefix).await
    }

    async fn start_at(url: &str, prefix: &str) -> Self {
        amqp_channel().await; // fails with instructions when RabbitMQ is absent
        let probe = lapin::Connection::connect(&amqp_url(), Default::default())
            .await
            .unwrap();
        Self {
            server: TestServer::start(&config(url)).await,
            topic: unique_topic(prefix),
            probe,
        }
    }

    fn backend(&self) -> Arc<dyn Backend> {
        self.server.state.broker("tasks").unwrap().backend.clone()
    }

    async fn subscribe(&self, group: &str, max_in_flight: usize) -> Consumer {
        self.backend()
            .subscribe(GroupSpec {
                topic: self.topic.clone(),
                group: group.to_string(),
                start: StartFrom::Latest,
                max_in_flight,
            })
            .await
            .expect("subscribed")
    }

    /// Publishes `body` through sidebus; returns the event id.
    async fn publish(&self, body: &str) -> String {
        let response = self
            .server
            .post(
                &format!("/v1/publish/tasks/{}", self.topic),
                &[],
                body.to_string(),
            )
            .await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        let body: serde_json::Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }

    async fn publish_many(&self, prefix: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            ids.push(self.publish(&format!("{prefix}-{i}")).await);
        }
        ids
    }

    /// The group's queue as RabbitMQ sees it: (ready messages, consumers).
    async fn queue_state(&self, group: &str) -> (u32, u32) {
        self.try_queue_state(group)
            .await
            .expect("the group's queue exists")
    }

    /// The group's queue as RabbitMQ sees it, if it exists.
    async fn try_queue_state(&self, group: &str) -> Option<(u32, u32)> {
        // A failed passive declare closes its channel: one channel per look.
        let channel = self.probe.create_channel().await.unwrap();
        let queue = channel
            .queue_declare(
                ShortString::from(format!("{group}.{}", self.topic)),
                QueueDeclareOptions {
                    passive: true,
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()?;
        let _ = channel.close(200, "OK".into()).await;
        Some((queue.message_count(), queue.consumer_count()))
    }

    /// Waits until the group's queue is in `state`.
    async fn wait_queue(&self, group: &str, state: (u32, u32)) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let now = self.queue_state(group).await;
            if now == state {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "queue of {group}: {now:?}, expected {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn next(consumer: &mut Consumer) -> Delivery {
    loop {
        let item = tokio::time::timeout(WAIT, consumer.deliveries.recv())
            .await
            .expect("a delivery within the time limit")
            .expect("the consumer is running");
        match item {
            Ok(d) => return d,
            // Reports of a lost connection; the consumer re-establishes itself.
            Err(ConsumeError::Unavailable(_)) => continue,
            Err(e) => panic!("consumer failed: {e}"),
        }
    }
}

fn data(d: &Delivery) -> String {
    String::from_utf8(d.event.data.to_vec()).unwrap()
}

#[tokio::test]
async fn events_arrive_with_their_attributes_in_order() {
    let setup = Setup::start("amqp.sub").await;
    let mut consumer = setup.subscribe("attrs", 16).await;
    let response = setup
        .server
        .post(
            &format!("/v1/publish/tasks/{}?key=k9", setup.topic),
            &[
                ("content-type", "application/json"),
                ("ce-id", "a-1"),
                ("ce-type", "task.created"),
                ("ce-subject", "task/1"),
                ("ce-tenant", "acme"),
            ],
            r#"{"n":1}"#,
        )
        .await;
    assert_eq!(response.status(), 200);
    let second = setup.publish("second").await;
    // A native publisher: no CloudEvents headers but the message id.
    let channel = amqp_channel().await;
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from("ce-type"),
        AMQPValue::LongString(LongString::from("native.kind")),
    );
    channel
        .basic_publish(
            ShortString::from(setup.topic.as_str()),
            ShortString::from(""),
            BasicPublishOptions::default(),
            b"third",
            BasicProperties::default()
                .with_message_id(ShortString::from("native-1"))
                .with_content_type(ShortString::from("text/plain"))
                .with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let first = next(&mut consumer).await;
    assert_eq!(&*first.topic, setup.topic);
    assert!(!first.redelivered);
    let e = &first.event;
    assert_eq!(e.id, "a-1");
    assert_eq!(e.ty, "task.created");
    assert_eq!(e.source, "sidebus://test");
    assert_eq!(e.subject.as_deref(), Some("task/1"));
    assert_eq!(e.datacontenttype.as_deref(), Some("application/json"));
    assert_eq!(e.partition_key(), Some("k9"));
    assert_eq!(e.extension("tenant"), Some("acme"));
    assert_eq!(&e.data[..], br#"{"n":1}"#);
    let d2 = next(&mut consumer).await;
    assert_eq!(d2.event.id, second);
    assert_eq!(data(&d2), "second");
    assert!(d2.spot.offset > first.spot.offset, "delivery tags grow");
    let d3 = next(&mut consumer).await;
    assert_eq!(d3.event.id, "native-1");
    assert_eq!(d3.event.ty, "native.kind");
    assert_eq!(d3.event.datacontenttype.as_deref(), Some("text/plain"));
    assert_eq!(data(&d3), "third");
    for d in [first, d2, d3] {
        d.settle.ack().await.unwrap();
    }
    setup.wait_queue("attrs", (0, 1)).await;
}

/// sidebus asks RabbitMQ for 32 KiB frames (`FRAME_MAX`): an event near `limits.max_event`
/// travels as about thirty body frames each way and must come out whole, in order.
#[tokio::test]
async fn an_event_many_frames_long_arrives_whole() {
    let setup = Setup::start("amqp.frames").await;
    let mut consumer = setup.subscribe("frames", 4).await;
    let big: String = (0..1_000_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let id = setup.publish(&big).await;
    let small = setup.publish("after").await;
    let d = next(&mut consumer).await;
    assert_eq!(d.event.id, id);
    assert_eq!(d.event.data.len(), big.len());
    assert!(d.event.data == big.as_bytes(), "the bytes arrive as sent");
    let after = next(&mut consumer).await;
    assert_eq!(
        (after.event.id.as_str(), data(&after).as_str()),
        (small.as_str(), "after")
    );
    for d in [d, after] {
        d.settle.ack().await.unwrap();
    }
    setup.wait_queue("frames", (0, 1)).await;
}

#[tokio::test]
async fn a_new_member_resumes_after_the_acknowledged_prefix() {
    let setup = Setup::start("amqp.resume").await;
    let consumer = setup.subscribe("resume", 4).await;
    setup.publish_many("r", 10).await;
    let mut consumer = consumer;
    let mut unsettled = Vec::new();
    for i in 0..6 {
        let d = next(&mut consumer).await;
        assert_eq!(data(&d), format!("r-{i}"));
        if i < 4 {
            d.settle.ack().await.unwrap();
        } else {
            unsettled.push(d);
        }
    }
    // 4 and 5 are in flight, unacknowledged, when the member goes away: back to the queue.
    drop(unsettled);
    drop(consumer);
    setup.wait_queue("resume", (6, 0)).await;

    let mut consumer = setup.subscribe("resume", 4).await;
    let mut resumed = Vec::new();
    for _ in 0..6 {
        let d = next(&mut consumer).await;
        resumed.push((data(&d), d.redelivered));
        d.settle.ack().await.unwrap();
    }
    let bodies: Vec<&str> = resumed.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bodies, ["r-4", "r-5", "r-6", "r-7", "r-8", "r-9"]);
    assert!(
        resumed[0].1 && resumed[1].1,
        "flagged redelivered: {resumed:?}"
    );
    setup.wait_queue("resume", (0, 1)).await;
}

#[tokio::test]
async fn a_nacked_event_is_delivered_again() {
    let setup = Setup::start("amqp.nack").await;
    let mut consumer = setup.subscribe("nack", 1).await;
    let ids = setup.publish_many("n", 3).await;
    let first = next(&mut consumer).await;
    assert_eq!(first.event.id, ids[0]);
    assert!(!first.redelivered);
    first.settle.nack().await.unwrap();
    let again = next(&mut consumer).await;
    assert_eq!(again.event.id, ids[0]);
    assert!(again.redelivered);
    again.settle.ack().await.unwrap();
    for id in &ids[1..] {
        let d = next(&mut consumer).await;
        assert_eq!(&d.event.id, id);
        d.settle.ack().await.unwrap();
    }
}

#[tokio::test]
async fn prefetch_bounds_what_is_in_flight() {
    let setup = Setup::start("amqp.bound").await;
    let mut consumer = setup.subscribe("bound", 2).await;
    setup.publish_many("b", 5).await;
    let a = next(&mut consumer).await;
    let _b = next(&mut consumer).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), consumer.deliveries.recv())
            .await
            .is_err(),
        "a third event while two are unsettled"
    );
    setup.wait_queue("bound", (3, 1)).await;
    a.settle.ack().await.unwrap();
    assert_eq!(data(&next(&mut consumer).await), "b-2");
}

#[tokio::test]
async fn two_groups_each_get_every_event() {
    let setup = Setup::start("amqp.groups").await;
    let mut billing = setup.subscribe("billing", 8).await;
    let mut shipping = setup.subscribe("shipping", 8).await;
    let ids = setup.publish_many("g", 6).await;
    for consumer in [&mut billing, &mut shipping] {
        let mut seen = Vec::new();
        for _ in 0..ids.len() {
            let d = next(consumer).await;
            seen.push(d.event.id.clone());
            d.settle.ack().await.unwrap();
        }
        assert_eq!(seen, ids);
    }
}

#[tokio::test]
async fn members_of_one_group_share_the_queue() {
    let setup = Setup::start("amqp.split").await;
    let mut a = setup.subscribe("split", 1).await;
    let mut b = setup.subscribe("split", 1).await;
    setup.wait_queue("split", (0, 2)).await;
    let ids = setup.publish_many("s", 10).await;
    let mut got: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    while got[0].len() + got[1].len() < ids.len() {
        let (i, d) = tokio::select! {
            d = next(&mut a) => (0, d),
            d = next(&mut b) => (1, d),
        };
        got[i].push(d.event.id.clone());
        d.settle.ack().await.unwrap();
    }
    assert!(!got[0].is_empty() && !got[1].is_empty(), "{got:?}");
    let seen: BTreeSet<&String> = got.iter().flatten().collect();
    assert_eq!(seen.len(), ids.len(), "each event once: {got:?}");
}

#[tokio::test]
async fn the_subscription_survives_a_connection_cut() {
    let target: SocketAddr = "127.0.0.1:5672".parse().unwrap();
    amqp_channel().await;
    let proxy = Proxy::start(target).await;
    let setup = Setup::start_at(
        &format!("amqp://guest:guest@{}/%2f", proxy.addr),
        "amqp.cut",
    )
    .await;
    let mut consumer = setup.subscribe("cut", 8).await;
    setup.publish_many("before", 2).await;
    let first = next(&mut consumer).await;
    assert_eq!(data(&first), "before-0");
    first.settle.ack().await.unwrap();
    // Received, not acknowledged when the connection goes.
    let pending = next(&mut consumer).await;
    assert_eq!(data(&pending), "before-1");

    proxy.cut();
    setup
        .server
        .wait_readyz(WAIT, reqwest::StatusCode::SERVICE_UNAVAILABLE)
        .await
        .expect("readyz reports the outage");
    // Published straight to RabbitMQ while sidebus is cut off: the group's queue keeps it.
    let channel = amqp_channel().await;
    channel
        .basic_publish(
            ShortString::from(setup.topic.as_str()),
            ShortString::from(""),
            BasicPublishOptions::default(),
            b"during",
            BasicProperties::default().with_message_id(ShortString::from("during-1")),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        pending.settle.ack().await.is_err(),
        "an ack on the dead channel fails"
    );

    proxy.restore();
    setup.server.wait_ready(WAIT).await;
    // An ack written just before the cut may be lost with the connection (AMQP does not
    // confirm acks), so `before-0` may come again too — redelivered, and only before `before-1`.
    let mut again = next(&mut consumer).await;
    if data(&again) == "before-0" {
        assert!(again.redelivered);
        again.settle.ack().await.unwrap();
        again = next(&mut consumer).await;
    }
    assert_eq!(
        data(&again),
        "before-1",
        "the unacknowledged event comes again"
    );
    assert!(again.redelivered);
    again.settle.ack().await.unwrap();
    let during = next(&mut consumer).await;
    assert_eq!(data(&during), "during");
    during.settle.ack().await.unwrap();
    setup.publish("after").await;
    let after = next(&mut consumer).await;
    assert_eq!(data(&after), "after");
    after.settle.ack().await.unwrap();
    setup.wait_queue("cut", (0, 1)).await;
}

#[tokio::test]
async fn the_subscription_comes_back_after_its_queue_is_deleted() {
    let setup = Setup::start("amqp.deleted").await;
    let mut consumer = setup.subscribe("deleted", 4).await;
    setup.publish("first").await;
    let d = next(&mut consumer).await;
    assert_eq!(data(&d), "first");
    d.settle.ack().await.unwrap();
    // Someone deletes the queue: the broker cancels the consumer on a live connection.
    let channel = amqp_channel().await;
    channel
        .queue_delete(
            ShortString::from(format!("deleted.{}", setup.topic)),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    // The consumer declares, binds and consumes again by itself.
    let deadline = tokio::time::Instant::now() + WAIT;
    while setup.try_queue_state("deleted").await != Some((0, 1)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue was not declared and consumed again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    setup.publish("second").await;
    let d = next(&mut consumer).await;
    assert_eq!(data(&d), "second");
    d.settle.ack().await.unwrap();
}

#[tokio::test]
async fn read_from_latest_sees_new_events_and_nothing_else_is_replayable() {
    let setup = Setup::start("amqp.read").await;
    let backend = setup.backend();
    for from in [
        ReadFrom::Earliest,
        ReadFrom::Sequence(1),
        ReadFrom::Offsets([(0, 1)].into_iter().collect()),
    ] {
        match backend.read_from(&setup.topic, from.clone()).await {
            Err(ConsumeError::Invalid(m)) => assert!(m.contains("no replay"), "{m}"),
            Err(e) => panic!("{from:?}: expected Invalid, got {e:?}"),
            Ok(_) => panic!("{from:?}: expected Invalid, got a reader"),
        }
    }
    let mut reader = backend
        .read_from(&setup.topic, ReadFrom::Latest)
        .await
        .expect("reader");
    let ids = setup.publish_many("l", 3).await;
    let mut seen = Vec::new();
    for _ in 0..ids.len() {
        let d = next(&mut reader).await;
        seen.push(d.event.id.clone());
        d.settle.ack().await.unwrap();
    }
    assert_eq!(seen, ids);
}

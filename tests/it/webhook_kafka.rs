//! Kafka webhook subscriptions under concurrent publishers (librdkafka's mock cluster, or the
//! broker `SIDEBUS_TEST_KAFKA` names): every event the broker holds reaches the endpoint, checked
//! against a native read of the topic, with one sidecar and with two sharing a group; and a
//! paused subscription goes on within seconds of `/resume`.


use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::brokers::{kafka_headers, Kafka};
use crate::common::receiver::{Receiver, Reply};
use crate::common::{unique_topic, TestServer};
use serde_json::{json, Value};

/// How long the deliveries of one round may take (the mock's first rebalance alone takes 3 s).
const WAIT: Duration = Duration::from_secs(60);
/// Publishers per round, one key each, as a service's request handlers would publish.
const PUBLISHERS: usize = 10;
/// Rounds of the single-sidecar scenario: a skip showed in about one run in three.
const ROUNDS: usize = 20;
/// Rounds run at once, each with its own topic, subscription and endpoint.
const AT_ONCE: usize = 5;

/// The broker's default session timeout: with it, a consumer that leaves and joins again waits
/// for a rebalance, which is what a paused subscription must not do.
fn config(kafka: &Kafka, dir: &std::path::Path) -> String {
    format!(
        "state_dir = \"{}\"\n[brokers.events]\nkind = \"kafka\"\nbootstrap_servers = \"{}\"\n",
        dir.display(),
        kafka.bootstrap
    )
}

/// Publishes `per_key` events of 200 bytes from each of `PUBLISHERS` concurrent publishers;
/// returns each event's id and the (partition, offset) sidebus answered with.
async fn publish_concurrently(
    server: &Arc<TestServer>,
    topic: &str,
    per_key: usize,
) -> BTreeMap<String, (i64, i64)> {
    let mut publishers = tokio::task::JoinSet::new();
    for p in 0..PUBLISHERS {
        let (server, topic) = (server.clone(), topic.to_string());
        publishers.spawn(async move {
            let mut out = Vec::new();
            for i in 0..per_key {
                let id = format!("k{p}-{i}");
                let r = server
                    .post(
                        &format!("/v1/publish/events/{topic}?key=k{p}"),
                        &[("ce-id", &id)],
                        vec![b'x'; 200],
                    )
                    .await;
                assert_eq!(r.status(), 200, "publish {id}");
                let body: Value = r.json().await.unwrap();
                let spot = (
                    body["partition"].as_i64().unwrap(),
                    body["offset"].as_i64().unwrap(),
                );
                out.push((id, spot));
            }
            out
        });
    }
    let mut published = BTreeMap::new();
    while let Some(done) = publishers.join_next().await {
        published.extend(done.unwrap());
    }
    published
}

/// What is missing of `published` from what `receivers` together accepted within `WAIT`.
async fn missing_after_wait(
    published: &BTreeMap<String, (i64, i64)>,
    receivers: &[&Receiver],
) -> BTreeMap<String, (i64, i64)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got: BTreeSet<String> = receivers
            .iter()
            .flat_map(|r| r.accepted())
            .map(|r| r.header("ce-id").unwrap())
            .collect();
        let missing: BTreeMap<_, _> = published
            .iter()
            .filter(|(id, _)| !got.contains(*id))
            .map(|(id, spot)| (id.clone(), *spot))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fails, when anything is missing, naming each event and whether a native consumer reading
/// the topic from the start finds it on the broker.
fn assert_none_missing(
    kafka: &Kafka,
    topic: &str,
    total: usize,
    missing: &BTreeMap<String, (i64, i64)>,
) {
    if missing.is_empty() {
        return;
    }
    let on_broker: BTreeSet<String> = kafka
        .read(topic, 3, total)
        .iter()
        .filter_map(|m| {
            kafka_headers(m)
                .into_iter()
                .find(|(k, _)| k == "ce_id")
                .map(|(_, v)| v)
        })
        .collect();
    let report: Vec<_> = missing
        .iter()
        .map(|(id, spot)| {
            format!(
                "{id} at {spot:?} (on the broker: {})",
                on_broker.contains(id)
            )
        })
        .collect();
    panic!(
        "{} of {total} on {topic} never delivered: {report:?}",
        missing.len()
    );
}

/// Waits until subscription `name` reports `in_flight` 0 and `delivered` at least `n`, and
/// returns its status.
async fn settled(server: &TestServer, name: &str, n: u64) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = server.get_json(&format!("/v1/subscriptions/{name}")).await["status"].clone();
        if status["in_flight"] == 0 && status["delivered"].as_u64() >= Some(n) {
            return status;
        }
        assert!(Instant::now() < deadline, "{name} did not settle: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_of_concurrent_publishers_is_delivered() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(TestServer::start(&config(&kafka, dir.path())).await);
    for wave in 0..ROUNDS / AT_ONCE {
        let mut rounds = tokio::task::JoinSet::new();
        for r in 0..AT_ONCE {
            let topic = unique_topic("wkc");
            kafka.create_topic(&topic, 3).await;
            let server = server.clone();
            rounds.spawn(async move {
                let receiver = Receiver::start().await;
                let name = format!("all-{wave}-{r}");
                server
                    .subscribe(
                        &name,
                        json!({"broker":"events","topic":topic,"endpoint":receiver.url,
                        "start":"earliest","ordering":"key","max_in_flight":32}),
                    )
                    .await;
                let published = publish_concurrently(&server, &topic, 50).await;
                let missing = missing_after_wait(&published, &[&receiver]).await;
                if missing.is_empty() {
                    let status = settled(&server, &name, published.len() as u64).await;
                    assert_eq!(status["failed"], 0, "{status}");
                }
                (topic, published.len(), missing)
            });
        }
        while let Some(done) = rounds.join_next().await {
            let (topic, total, missing) = done.unwrap();
            assert_none_missing(&kafka, &topic, total, &missing);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sidecars_sharing_a_group_deliver_every_event() {
    let kafka = Kafka::start();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Arc::new(TestServer::start(&config(&kafka, a_dir.path())).await);
    let b = TestServer::start(&config(&kafka, b_dir.path())).await;
    for round in 0..3 {
        let topic = unique_topic("wks");
        kafka.create_topic(&topic, 3).await;
        let receiver = Receiver::start().await;
        let spec = json!({"broker":"events","topic":topic,"endpoint":receiver.url,"group":topic,
            "start":"earliest","ordering":"key","max_in_flight":32});
        a.subscribe(&format!("shared-{round}"), spec.clone()).await;
        b.subscribe(&format!("shared-{round}"), spec).await;
        let published = publish_concurrently(&a, &topic, 30).await;
        let missing = missing_after_wait(&published, &[&receiver]).await;
        assert_none_missing(&kafka, &topic, published.len(), &missing);
    }
}

#[tokio::test]
async fn a_paused_subscription_goes_on_within_seconds_of_resume() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(&kafka, dir.path())).await;
    let topic = unique_topic("wkp");
    kafka.create_topic(&topic, 1).await;
    let receiver = Receiver::start().await;
    receiver.script("e-4", vec![Reply::Status(410)]);
    server
        .subscribe(
            "pausing",
            json!({"broker":"events","topic":topic,"endpoint":receiver.url,"start":"earliest"}),
        )
        .await;
    for i in 1..=10 {
        let r = server
            .post(
                &format!("/v1/publish/events/{topic}?key=k"),
                &[("ce-id", &format!("e-{i}"))],
                "x",
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    receiver
        .wait_until(WAIT, |r| r.iter().any(|r| r.answered == 410))
        .await;
    let deadline = Instant::now() + WAIT;
    while server.get_json("/v1/subscriptions/pausing").await["status"]["state"] != "paused" {
        assert!(
            Instant::now() < deadline,
            "the 410 did not pause the subscription"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resumed = Instant::now();
    let r = server
        .http
        .post(server.url("/v1/subscriptions/pausing/resume"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let got = receiver
        .try_wait_until(Duration::from_secs(15), |r| {
            r.iter().filter(|r| r.answered == 200).count() == 10
        })
        .await
        .unwrap_or_else(|got| {
            panic!(
                "{} of 10 delivered in the 15 s after /resume",
                got.iter().filter(|r| r.answered == 200).count()
            )
        });
    let next = got
        .iter()
        .find(|r| r.at > resumed)
        .expect("a delivery after /resume");
    println!(
        "resume to next delivery on {}: {} ms",
        kafka.bootstrap,
        next.at.duration_since(resumed).as_millis()
    );
    let order: Vec<String> = got
        .iter()
        .filter(|r| r.answered == 200)
        .map(|r| r.header("ce-id").unwrap())
        .collect();
    let expected: Vec<String> = (1..=10).map(|i| format!("e-{i}")).collect();
    assert_eq!(order, expected);
}

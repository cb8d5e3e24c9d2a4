//! Wildcard subscriptions and discovery (design §8.4) against the real brokers: a webhook
//! subscription on `<prefix>.*` / `<prefix>.>` receives from every matching topic, each delivery
//! naming its concrete topic in `sidebus-topic`, in order per key per topic, and topics created
//! after the subscription join (memory, NATS JetStream, Kafka's mock cluster); AMQP refuses
//! patterns; SSE streams a pattern with `sidebustopic` in each event; discovery lists what a
//! test created.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::brokers::{amqp_url, nats_url, Kafka};
use crate::common::receiver::{Received, Receiver};
use crate::common::sse::{connect, get, subscribe_path};
use crate::common::{assert_problem, unique_topic, TestServer};
use serde_json::{json, Value};

/// How long deliveries may take (the Kafka mock's first rebalance alone takes 3 s).
const WAIT: Duration = Duration::from_secs(60);
/// Events per topic.
const PER_TOPIC: usize = 5;

fn config(dir: &std::path::Path, broker: &str) -> String {
    format!(
        "source = \"sidebus://wildcard-test\"\nstate_dir = \"{}\"\n[brokers.b]\n{broker}\n",
        dir.display()
    )
}

fn memory() -> String {
    "kind = \"memory\"".into()
}

fn nats() -> String {
    format!("kind = \"nats\"\nurl = \"{}\"", nats_url())
}

/// A Kafka broker whose consumers look for new topics every 500 ms (default 5 minutes).
fn kafka(kafka: &Kafka) -> String {
    format!(
        "kind = \"kafka\"\nbootstrap_servers = \"{}\"\n\
         options = {{ \"topic.metadata.refresh.interval.ms\" = \"500\", \"session.timeout.ms\" = \"6000\", \"heartbeat.interval.ms\" = \"500\" }}",
        kafka.bootstrap
    )
}

/// Publishes `<topic>#0..n` to `topic`, all with the one key `k`.
async fn publish(server: &TestServer, topic: &str, n: usize) {
    publish_range(server, topic, 0..n).await
}

/// Publishes `<topic>#i` for each `i` of `range` to `topic`, all with the one key `k`.
async fn publish_range(server: &TestServer, topic: &str, range: std::ops::Range<usize>) {
    for i in range {
        let id = format!("{topic}#{i}");
        let response = server
            .post(
                &format!("/v1/publish/b/{topic}?key=k"),
                &[("ce-id", &id), ("content-type", "text/plain")],
                format!("n{i}"),
            )
            .await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }
}

/// What reached the endpoint: per concrete topic (from `sidebus-topic`), the event numbers in
/// the order they first arrived.
fn by_topic(received: &[Received]) -> BTreeMap<String, Vec<usize>> {
    let mut out: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for r in received {
        let id = r.header("ce-id").expect("binary mode");
        let (topic, n) = id.rsplit_once('#').expect("id is topic#n");
        assert_eq!(
            r.header("sidebus-topic").as_deref(),
            Some(topic),
            "the header names the concrete topic of {id}"
        );
        let seen = out.entry(topic.to_string()).or_default();
        let n: usize = n.parse().unwrap();
        if !seen.contains(&n) {
            seen.push(n);
        }
    }
    out
}

fn complete(received: &[Received], topics: &[&str]) -> bool {
    let seen = by_topic(received);
    topics
        .iter()
        .all(|t| seen.get(*t).is_some_and(|n| n.len() == PER_TOPIC))
}

/// Subscribes `pattern`, publishes to `first` and `second` (both matching), then to `late`, a
/// topic that did not exist when the subscription started; everything arrives, named by topic
/// and in order per topic. `create` makes a topic exist on the broker before it is published to.
async fn pattern_receives_every_matching_topic<F, Fut>(
    server: &TestServer,
    pattern: &str,
    topics: [&str; 3],
    create: F,
) where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let [first, second, late] = topics;
    create(first.to_string()).await;
    create(second.to_string()).await;
    let receiver = Receiver::start().await;
    let name = unique_topic("wild");
    server
        .subscribe(
            &name,
            json!({"broker": "b", "topic": pattern, "endpoint": receiver.url,
                   "start": "earliest", "ordering": "key"}),
        )
        .await;
    publish(server, first, PER_TOPIC).await;
    publish(server, second, PER_TOPIC).await;
    let got = receiver
        .wait_until(WAIT, |r| complete(r, &[first, second]))
        .await;
    let ordered: Vec<usize> = (0..PER_TOPIC).collect();
    for (topic, seen) in by_topic(&got) {
        assert_eq!(seen, ordered, "one key, in order within {topic}");
    }
    create(late.to_string()).await;
    publish(server, late, PER_TOPIC).await;
    let got = receiver
        .wait_until(WAIT, |r| complete(r, &[first, second, late]))
        .await;
    assert_eq!(
        by_topic(&got)[late],
        ordered,
        "a later topic joins, in order"
    );
    let status = server.get_json(&format!("/v1/subscriptions/{name}")).await;
    assert_eq!(status["topic"], pattern, "{status}");
}

async fn nothing(_: String) {}

#[tokio::test]
async fn memory_star_and_gt() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path(), &memory())).await;
    let p = unique_topic("wild.mem");
    let (a, b, c) = (format!("{p}.a"), format!("{p}.b"), format!("{p}.c"));
    pattern_receives_every_matching_topic(&server, &format!("{p}.*"), [&a, &b, &c], nothing).await;
    let q = unique_topic("wild.memgt");
    let (a, b, c) = (format!("{q}.a"), format!("{q}.a.x"), format!("{q}.b.y.z"));
    pattern_receives_every_matching_topic(&server, &format!("{q}.>"), [&a, &b, &c], nothing).await;
}

#[tokio::test]
async fn nats_star_and_gt() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path(), &nats())).await;
    let p = unique_topic("wild-nats");
    let (a, b, c) = (format!("{p}.a"), format!("{p}.b"), format!("{p}.c"));
    pattern_receives_every_matching_topic(&server, &format!("{p}.*"), [&a, &b, &c], nothing).await;
    let q = unique_topic("wild-natsgt");
    let (a, b, c) = (format!("{q}.a"), format!("{q}.a.x"), format!("{q}.b.y.z"));
    pattern_receives_every_matching_topic(&server, &format!("{q}.>"), [&a, &b, &c], nothing).await;
}

#[tokio::test]
async fn nats_a_pattern_spanning_streams_is_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path(), &nats())).await;
    let p = unique_topic("wild-span");
    publish(&server, &format!("{p}.a"), 1).await;
    publish(&server, &format!("{p}.b"), 1).await;
    let path = subscribe_path("b", &format!("{p}.*"), "");
    let problem = assert_problem(get(&server, &path, None).await, 400).await;
    let detail = problem["detail"].as_str().unwrap();
    let a = sidebus::backend::nats::stream_name(&format!("{p}.a"));
    let b = sidebus::backend::nats::stream_name(&format!("{p}.b"));
    assert!(detail.contains(&a) && detail.contains(&b), "{detail}");
}

#[tokio::test]
async fn kafka_star_and_gt() {
    let broker = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path(), &kafka(&broker))).await;
    let create = |topic: String| {
        let broker = &broker;
        async move { broker.create_topic(&topic, 2).await }
    };
    let p = unique_topic("wild-kafka");
    let (a, b, c) = (format!("{p}.a"), format!("{p}.b"), format!("{p}.c"));
    pattern_receives_every_matching_topic(&server, &format!("{p}.*"), [&a, &b, &c], create).await;
    let q = unique_topic("wild-kafkagt");
    let (a, b, c) = (format!("{q}.a"), format!("{q}.a.x"), format!("{q}.b.y.z"));
    pattern_receives_every_matching_topic(&server, &format!("{q}.>"), [&a, &b, &c], create).await;
    let path = subscribe_path("b", &format!("{p}.*"), "");
    let problem = assert_problem(get(&server, &path, None).await, 400).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("?group="),
        "{problem}"
    );
}

#[tokio::test]
async fn amqp_refuses_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let broker = format!("kind = \"amqp\"\nurl = \"{}\"", amqp_url());
    let server = TestServer::start(&config(dir.path(), &broker)).await;
    let response = server
        .http
        .put(server.url("/v1/subscriptions/amqp-wild"))
        .json(&json!({"broker": "b", "topic": "orders.*", "endpoint": "http://127.0.0.1:9/e"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 400).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("exchange"),
        "{problem}"
    );
    let path = subscribe_path("b", "orders.>", "group=g");
    let problem = assert_problem(get(&server, &path, None).await, 400).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("exchange"),
        "{problem}"
    );
    let response = server
        .http
        .get(server.url("/v1/brokers/b/topics"))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 501).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("exchanges"),
        "{problem}"
    );
}

/// The next `n` events of a stream as (sidebustopic, id).
async fn topics_and_ids(sse: &mut crate::common::sse::Sse, n: usize) -> Vec<(String, String)> {
    sse.events(n)
        .await
        .iter()
        .map(|e| {
            (
                e.json["sidebustopic"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e.ce_id(),
            )
        })
        .collect()
}

#[tokio::test]
async fn memory_sse_on_a_pattern_resumes_across_topics() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path(), &memory())).await;
    let p = unique_topic("wild.sse");
    let (a, b) = (format!("{p}.a"), format!("{p}.b"));
    publish_range(&server, &a, 0..1).await;
    publish_range(&server, &b, 0..1).await;
    publish_range(&server, &a, 1..2).await;
    let want = |t: &str, i: usize| (t.to_string(), format!("{t}#{i}"));
    let path = subscribe_path("b", &format!("{p}.*"), "from=earliest");
    let mut sse = connect(&server, &path, None).await;
    let seen = topics_and_ids(&mut sse, 2).await;
    assert_eq!(seen, vec![want(&a, 0), want(&b, 0)], "in append order");
    let after_b = sse.last_id.clone().expect("a sequence cursor");
    assert_eq!(topics_and_ids(&mut sse, 1).await, vec![want(&a, 1)]);
    drop(sse);
    publish_range(&server, &b, 1..2).await;
    let path = subscribe_path("b", &format!("{p}.*"), "");
    let mut resumed = connect(&server, &path, Some(&after_b)).await;
    let rest = topics_and_ids(&mut resumed, 2).await;
    assert_eq!(
        rest,
        vec![want(&a, 1), want(&b, 1)],
        "after b#0, across topics"
    );
}

#[tokio::test]
async fn nats_sse_on_a_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path(), &nats())).await;
    let p = unique_topic("wild-nsse");
    let path = subscribe_path("b", &format!("{p}.*"), "from=earliest");
    let mut sse = connect(&server, &path, None).await;
    let (a, b) = (format!("{p}.a"), format!("{p}.b"));
    publish(&server, &a, 1).await;
    publish(&server, &b, 1).await;
    let seen = topics_and_ids(&mut sse, 2).await;
    assert_eq!(
        seen,
        vec![(a.clone(), format!("{a}#0")), (b.clone(), format!("{b}#0"))]
    );
    let cursor = sse.last_id.clone().expect("a sequence cursor");
    drop(sse);
    publish_range(&server, &a, 1..2).await;
    let path = subscribe_path("b", &format!("{p}.*"), "");
    let mut resumed = connect(&server, &path, Some(&cursor)).await;
    let rest = topics_and_ids(&mut resumed, 1).await;
    assert_eq!(rest, vec![(a.clone(), format!("{a}#1"))]);
}

async fn discover(server: &TestServer, prefix: &str) -> Value {
    server
        .get_json(&format!("/v1/brokers/b/topics?prefix={prefix}"))
        .await
}

#[tokio::test]
async fn discovery_lists_what_was_created() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path(), &memory())).await;
    let p = unique_topic("wild.disc");
    publish(&server, &format!("{p}.b"), 1).await;
    publish(&server, &format!("{p}.a"), 2).await;
    assert_eq!(
        discover(&server, &p).await,
        json!({"topics": [{"name": format!("{p}.a"), "messages": 2},
                          {"name": format!("{p}.b"), "messages": 1}]})
    );
    assert_eq!(
        discover(&server, &format!("{p}.b")).await["topics"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let response = server
        .http
        .get(server.url("/v1/brokers/nope/topics"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404).await;

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path(), &nats())).await;
    let p = unique_topic("wild-disc");
    publish(&server, &format!("{p}.a"), 2).await;
    publish(&server, &format!("{p}.b"), 1).await;
    assert_eq!(
        discover(&server, &p).await,
        json!({"topics": [{"name": format!("{p}.a"), "messages": 2},
                          {"name": format!("{p}.b"), "messages": 1}]})
    );

    let broker = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path(), &kafka(&broker))).await;
    let p = unique_topic("wild-disc");
    broker.create_topic(&format!("{p}.a"), 3).await;
    broker.create_topic(&format!("{p}.b"), 1).await;
    assert_eq!(
        discover(&server, &p).await,
        json!({"topics": [{"name": format!("{p}.a"), "partitions": 3},
                          {"name": format!("{p}.b"), "partitions": 1}]})
    );
}

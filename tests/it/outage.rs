//! Broker outages under steady publishing and webhook delivery: a private nats-server killed and
//! restarted, RabbitMQ cut off through a TCP proxy, the Kafka mock broker down and up and then
//! failing produce requests. Every event answered 200 is on the broker and reaches the webhook
//! afterwards; every other answer is 503 or 504 problem+json; publishing and the subscription
//! recover without a restart. `cargo test --test it -- outage:: --nocapture` prints the figures.


use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use crate::common::brokers::{amqp_channel, amqp_consumer, Kafka, PrivateNats};
use crate::common::proxy::Proxy;
use crate::common::receiver::Receiver;
use crate::common::steady::{Outcome, Steady};
use crate::common::{unique_topic, TestServer};
use futures::StreamExt;
use serde_json::json;

/// Longest any phase may take.
const WAIT: Duration = Duration::from_secs(60);
/// Answers a publish may get while the broker is away.
const DURING_OUTAGE: &[u16] = &[503, 504];
/// Concurrent publishers, and the pause each keeps between publishes.
const PUBLISHERS: usize = 4;
const EVERY: Duration = Duration::from_millis(5);

/// Something a test does to the broker and undoes.
trait Fault {
    fn start(&mut self);
    fn end(&mut self);
}

/// Publishes steadily to `path` through a fault: 50 acknowledged before, `during` refused while
/// it lasts, 50 acknowledged after; then waits until the webhook has every acknowledged event.
async fn through(
    server: &TestServer,
    path: &str,
    receiver: &Receiver,
    fault: &mut impl Fault,
    during: usize,
) -> Outcome {
    let mut steady = Steady::start(server.url(path), PUBLISHERS, EVERY);
    let ok = |a: &crate::common::steady::Answer| a.status == 200;
    steady
        .wait_for("acknowledged before", Instant::now(), 50, WAIT, ok)
        .await;
    fault.start();
    let broken = Instant::now();
    steady
        .wait_for("refused during", broken, during, WAIT, |a| a.status != 200)
        .await;
    fault.end();
    let restored = Instant::now();
    steady
        .wait_for("acknowledged after", restored, 50, WAIT, ok)
        .await;
    let answers = steady.stop().await;
    let mut outcome = Outcome::of(&answers, restored, DURING_OUTAGE);
    let (Ok(received) | Err(received)) = receiver
        .try_wait_until(Duration::from_secs(90), |r| outcome.all_in(r))
        .await;
    outcome.delivered(&received);
    outcome
}

/// Subscribes `receiver` to `topic` and waits until the subscription delivers: a fanout
/// exchange routes only to the queues bound when an event is published, so events go out until
/// one arrives. The first one also creates the NATS stream the subscription consumes.
async fn subscribe(server: &TestServer, broker: &str, topic: &str, receiver: &Receiver) {
    let path = format!("/v1/publish/{broker}/{topic}");
    let path = path.as_str();
    let warm_up = |i: usize| async move {
        let r = server
            .post(path, &[("ce-id", &format!("warm-up-{i}"))], "x")
            .await;
        assert_eq!(r.status(), 200);
    };
    warm_up(0).await;
    server
        .subscribe(
            "outage",
            json!({"broker": broker, "topic": topic, "endpoint": receiver.url,
                   "start": "earliest", "ordering": "none",
                   "retry": {"max_attempts": 20, "initial_backoff": "50ms", "max_backoff": "500ms"}}),
        )
        .await;
    for i in 1..=60 {
        let delivered = receiver
            .try_wait_until(Duration::from_secs(1), |r| !r.is_empty())
            .await;
        if delivered.is_ok() {
            return;
        }
        warm_up(i).await;
    }
    panic!("the subscription delivered nothing within a minute");
}

fn state_dir(dir: &tempfile::TempDir) -> String {
    format!("state_dir = \"{}\"\n", dir.path().display())
}

struct KillNats<'a>(&'a mut PrivateNats);

impl Fault for KillNats<'_> {
    fn start(&mut self) {
        self.0.kill();
    }
    fn end(&mut self) {
        self.0.restart();
    }
}

#[tokio::test]
async fn nats_killed_and_restarted() {
    let mut nats = PrivateNats::start();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "{}[pipeline]\nack_timeout = \"2s\"\n[brokers.jobs]\nkind = \"nats\"\nurl = \"{}\"\n",
        state_dir(&dir),
        nats.url()
    ))
    .await;
    let topic = unique_topic("outage.nats");
    let receiver = Receiver::start().await;
    // The stream exists before the subscription's consumer is made.
    let first = server
        .post(
            &format!("/v1/publish/jobs/{topic}"),
            &[("ce-id", "first")],
            "x",
        )
        .await;
    assert_eq!(first.status(), 200);
    subscribe(&server, "jobs", &topic, &receiver).await;

    let path = format!("/v1/publish/jobs/{topic}");
    let outcome = through(&server, &path, &receiver, &mut KillNats(&mut nats), 20).await;
    println!("NATS killed and restarted: {outcome}");

    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let stream = js
        .get_stream(sidebus::backend::nats::stream_name(&topic))
        .await
        .unwrap();
    let stored = stream.get_info().await.unwrap().state.messages;
    let mut ids = Vec::new();
    for seq in 1..=stored {
        let m = stream.get_raw_message(seq).await.unwrap();
        ids.push(m.headers.get("ce-id").unwrap().as_str().to_string());
    }
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "JetStream kept no duplicate");
    assert!(
        outcome.acknowledged.iter().all(|id| unique.contains(id)),
        "every acknowledged event is in the stream"
    );
}

struct CutConnection<'a>(&'a Proxy);

impl Fault for CutConnection<'_> {
    fn start(&mut self) {
        self.0.cut();
    }
    fn end(&mut self) {
        self.0.restore();
    }
}

#[tokio::test]
async fn rabbitmq_connection_cut_and_restored() {
    let channel = amqp_channel().await;
    let target: SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let proxy = Proxy::start(target).await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "{}[pipeline]\nack_timeout = \"2s\"\n[brokers.tasks]\nkind = \"amqp\"\nurl = \"amqp://guest:guest@{}/%2f\"\n",
        state_dir(&dir),
        proxy.addr
    ))
    .await;
    let topic = unique_topic("outage.amqp");
    let mut native = amqp_consumer(&channel, &topic).await;
    let receiver = Receiver::start().await;
    subscribe(&server, "tasks", &topic, &receiver).await;

    let path = format!("/v1/publish/tasks/{topic}");
    let outcome = through(&server, &path, &receiver, &mut CutConnection(&proxy), 20).await;
    println!("RabbitMQ connection cut and restored: {outcome}");

    // Every acknowledged event is on the broker: a queue bound before the fault has them all.
    let mut on_broker = BTreeSet::new();
    while !outcome.acknowledged.is_subset(&on_broker) {
        let d = tokio::time::timeout(WAIT, native.next())
            .await
            .expect("the native queue has every acknowledged event")
            .unwrap()
            .unwrap();
        let id = d.properties.headers().as_ref().unwrap().inner()["ce-id"].clone();
        match id {
            lapin::types::AMQPValue::LongString(s) => on_broker.insert(s.to_string()),
            other => panic!("ce-id is {other:?}"),
        };
    }
    let status = server.get_json("/v1/subscriptions/outage").await;
    assert_eq!(status["status"]["state"], "running", "{status}");
}

struct KafkaBrokerDown<'a>(&'a Kafka);

impl Fault for KafkaBrokerDown<'_> {
    fn start(&mut self) {
        self.0.mock().unwrap().broker_down(1).unwrap();
    }
    fn end(&mut self) {
        self.0.mock().unwrap().broker_up(1).unwrap();
    }
}

/// Counts the messages of `topic` (one partition) per `ce-id` until `enough` holds.
fn kafka_ids(
    kafka: &Kafka,
    topic: &str,
    enough: impl Fn(&BTreeMap<String, usize>) -> bool,
) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    kafka.read_until(topic, 1, |m| {
        let id = crate::common::brokers::kafka_headers(m)
            .into_iter()
            .find(|(k, _)| k == "ce_id")
            .map(|(_, v)| v)
            .unwrap();
        *ids.entry(id).or_default() += 1;
        enough(&ids)
    });
    ids
}

#[tokio::test]
async fn kafka_broker_down_and_up_then_failing_produce_requests() {
    let kafka = Kafka::start_mock();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "{}[pipeline]\nack_timeout = \"2s\"\n[brokers.events]\nkind = \"kafka\"\nbootstrap_servers = \"{}\"\noptions = {{ \"session.timeout.ms\" = \"6000\" }}\n",
        state_dir(&dir),
        kafka.bootstrap
    ))
    .await;
    let topic = unique_topic("outage.kafka");
    kafka.create_topic(&topic, 1).await;
    let receiver = Receiver::start().await;
    subscribe(&server, "events", &topic, &receiver).await;

    let path = format!("/v1/publish/events/{topic}");
    let outcome = through(&server, &path, &receiver, &mut KafkaBrokerDown(&kafka), 20).await;
    println!("Kafka broker down and up: {outcome}");
    let on_broker = kafka_ids(&kafka, &topic, |ids| {
        outcome.acknowledged.iter().all(|id| ids.contains_key(id))
    });
    assert!(
        outcome.acknowledged.iter().all(|id| on_broker[id] == 1),
        "idempotent producer: no duplicate"
    );

    // Produce requests failing with retriable errors: librdkafka retries, nobody sees an error.
    let mock = kafka.mock().unwrap();
    let retriable = [rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 3];
    mock.request_errors(rdkafka::types::RDKafkaApiKey::Produce, &retriable);
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = format!("injected-{i}");
        let r = server.post(&path, &[("ce-id", &id)], "x").await;
        assert_eq!(r.status(), 200, "{id}");
        ids.push(id);
    }
    let on_broker = kafka_ids(&kafka, &topic, |seen| {
        ids.iter().all(|id| seen.contains_key(id))
    });
    assert!(
        ids.iter().all(|id| on_broker[id] == 1),
        "each once: {on_broker:?}"
    );
    receiver
        .wait_until(WAIT, |r| {
            let got: BTreeSet<String> = r.iter().filter_map(|r| r.header("ce-id")).collect();
            ids.iter().all(|id| got.contains(id))
        })
        .await;
}

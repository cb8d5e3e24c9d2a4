//! The spool (design §8.9) against real brokers: while the broker is away every publish is
//! answered `202 spooled` instead of `503`/`504`, and once it is back every event reaches it,
//! per-key order kept; a spool survives SIGTERM, SIGKILL and a torn last record; a full spool
//! is `507` with `Retry-After`. `cargo test --test it -- spool:: --nocapture` prints the figures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::common::brokers::{amqp_channel, amqp_consumer, kafka_headers, Kafka, PrivateNats};
use crate::common::process::Sidebus;
use crate::common::proxy::Proxy;
use crate::common::steady::{Answer, Steady};
use crate::common::{assert_problem, unique_topic, TestServer};

/// How long each broker is away under load (the figure).
const OUTAGE: Duration = Duration::from_secs(10);
/// 4 publishers, one event each per 20 ms: 200 events/s.
const PUBLISHERS: usize = 4;
const EVERY: Duration = Duration::from_millis(20);
const WAIT: Duration = Duration::from_secs(90);

fn spool_toml(dir: &tempfile::TempDir, broker: &str, settings: &str, max: &str) -> String {
    format!(
        "state_dir = \"{}\"\n[pipeline]\nack_timeout = \"2s\"\n[brokers.{broker}]\n{settings}\n\
         [brokers.{broker}.spool]\nmax_bytes = \"{max}\"\n",
        dir.path().display()
    )
}

/// What a run under an outage did.
struct Run {
    answers: Vec<Answer>,
    /// From the broker's return until the spool was empty.
    drained: Duration,
    /// Most events the spool held.
    peak: u64,
}

impl Run {
    fn spooled(&self) -> usize {
        self.answers.iter().filter(|a| a.status == 202).count()
    }

    /// Every answer was 200 or 202.
    fn assert_nothing_refused(&self) {
        let refused: Vec<&Answer> = self
            .answers
            .iter()
            .filter(|a| a.status != 200 && a.status != 202)
            .collect();
        assert!(
            refused.is_empty(),
            "{} of {} publishes refused, first {:?}",
            refused.len(),
            self.answers.len(),
            refused.first()
        );
        assert!(self.spooled() > 0, "the outage spooled nothing");
    }

    /// Every answered event is in `on_broker` (ids in broker order), and each publisher's
    /// events are in the order it sent them (duplicates, which at-least-once allows, aside).
    fn assert_all_arrived_in_order(&self, on_broker: &[String]) -> usize {
        let mut seen = BTreeMap::new();
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for id in on_broker {
            *seen.entry(id.as_str()).or_insert(0) += 1;
            if seen[id.as_str()] > 1 {
                continue;
            }
            let (publisher, i) = id.split_once('-').expect("ids are p<p>-<i>");
            let i: u64 = i.parse().unwrap();
            if let Some(before) = last.insert(publisher, i) {
                assert!(before < i, "{publisher}: {i} arrived after {before}");
            }
        }
        let lost: Vec<&str> = self
            .answers
            .iter()
            .map(|a| a.id.as_str())
            .filter(|id| !seen.contains_key(id))
            .collect();
        assert!(
            lost.is_empty(),
            "{} answered events lost: {lost:?}",
            lost.len()
        );
        seen.values().filter(|n| **n > 1).count()
    }

    fn report(&self, broker: &str, duplicates: usize) {
        println!(
            "{broker}: {} publishes over a {OUTAGE:?} outage at {} events/s: 0 refused, {} \
             spooled (spool peak {} events), 0 lost, {duplicates} duplicates; backlog drained \
             {:.2} s after the broker returned",
            self.answers.len(),
            PUBLISHERS as u64 * 1000 / EVERY.as_millis() as u64,
            self.spooled(),
            self.peak,
            self.drained.as_secs_f64()
        );
    }
}

async fn backlog(server: &TestServer, broker: &str) -> Value {
    let brokers = server.get_json("/v1/brokers").await;
    brokers["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == broker)
        .unwrap()["spool"]
        .clone()
}

/// Publishes steadily through an outage that `down` starts and `up` ends, then waits until the
/// spool is empty.
async fn through_outage(
    server: &TestServer,
    broker: &str,
    topic: &str,
    down: impl FnOnce(),
    up: impl FnOnce(),
) -> Run {
    let url = server.url(&format!("/v1/publish/{broker}/{topic}"));
    let mut steady = Steady::start_with(url, PUBLISHERS, EVERY, true);
    let ok = |a: &Answer| a.status == 200;
    steady
        .wait_for("acknowledged before", Instant::now(), 50, WAIT, ok)
        .await;
    down();
    let broken = Instant::now();
    steady
        .wait_for("spooled during", broken, 20, WAIT, |a| a.status == 202)
        .await;
    let mut peak = 0;
    while broken.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak = peak.max(backlog(server, broker).await["events"].as_u64().unwrap());
    }
    up();
    let restored = Instant::now();
    steady
        .wait_for("acknowledged after", restored, 50, WAIT, ok)
        .await;
    let answers = steady.stop().await;
    let drained = loop {
        let spool = backlog(server, broker).await;
        if spool["events"] == 0 {
            break restored.elapsed();
        }
        assert!(
            restored.elapsed() < WAIT,
            "the spool did not drain: {spool}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Run {
        answers,
        drained,
        peak,
    }
}

/// The `ce-id` of every message of a NATS stream, in stream order.
async fn nats_ids(url: &str, topic: &str) -> Vec<String> {
    let js = jetstream::new(async_nats::connect(url).await.unwrap());
    let mut stream = js
        .get_stream(sidebus::backend::nats::stream_name(topic))
        .await
        .unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut ids = Vec::new();
    for seq in 1..=last {
        if let Ok(m) = stream.get_raw_message(seq).await {
            ids.push(m.headers.get("ce-id").unwrap().as_str().to_string());
        }
    }
    ids
}

#[tokio::test]
async fn nats_killed_for_ten_seconds_refuses_nothing_and_loses_nothing() {
    let mut nats = PrivateNats::start();
    let dir = tempfile::tempdir().unwrap();
    let url = nats.url();
    let server = TestServer::start(&spool_toml(
        &dir,
        "jobs",
        &format!("kind = \"nats\"\nurl = \"{url}\""),
        "64MiB",
    ))
    .await;
    let topic = unique_topic("spool.nats");
    let nats = std::cell::RefCell::new(&mut nats);
    let run = through_outage(
        &server,
        "jobs",
        &topic,
        || nats.borrow_mut().kill(),
        || nats.borrow_mut().restart(),
    )
    .await;
    run.assert_nothing_refused();
    let on_broker = nats_ids(&url, &topic).await;
    let duplicates = run.assert_all_arrived_in_order(&on_broker);
    assert_eq!(
        duplicates, 0,
        "JetStream drops re-sent events by Nats-Msg-Id"
    );
    run.report("NATS JetStream (killed)", duplicates);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("sidebus_spool_forwarded_total{broker=\"jobs\"}"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn rabbitmq_cut_off_for_ten_seconds_refuses_nothing_and_loses_nothing() {
    let channel = amqp_channel().await;
    let proxy = Proxy::start("127.0.0.1:5672".parse::<SocketAddr>().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&spool_toml(
        &dir,
        "tasks",
        &format!(
            "kind = \"amqp\"\nurl = \"amqp://guest:guest@{}/%2f\"",
            proxy.addr
        ),
        "64MiB",
    ))
    .await;
    let topic = unique_topic("spool.amqp");
    let mut native = amqp_consumer(&channel, &topic).await;
    let run = through_outage(&server, "tasks", &topic, || proxy.cut(), || proxy.restore()).await;
    run.assert_nothing_refused();
    let expected = run.answers.len();
    let mut on_broker = Vec::new();
    let deadline = Instant::now() + WAIT;
    while on_broker
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        < expected
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(Ok(d))) = tokio::time::timeout(left, native.next()).await else {
            break;
        };
        let id = &d.properties.headers().as_ref().unwrap().inner()["ce-id"];
        match id {
            lapin::types::AMQPValue::LongString(s) => on_broker.push(s.to_string()),
            other => panic!("ce-id is {other:?}"),
        }
    }
    let duplicates = run.assert_all_arrived_in_order(&on_broker);
    run.report("RabbitMQ (connection cut)", duplicates);
    server.stop().await;
}

#[tokio::test]
async fn kafka_broker_down_for_ten_seconds_refuses_nothing_and_loses_nothing() {
    let kafka = Kafka::start_mock();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&spool_toml(
        &dir,
        "events",
        &format!(
            "kind = \"kafka\"\nbootstrap_servers = \"{}\"",
            kafka.bootstrap
        ),
        "64MiB",
    ))
    .await;
    let topic = unique_topic("spool.kafka");
    kafka.create_topic(&topic, 3).await;
    let mock = kafka.mock().unwrap();
    let run = through_outage(
        &server,
        "events",
        &topic,
        || mock.broker_down(1).unwrap(),
        || mock.broker_up(1).unwrap(),
    )
    .await;
    run.assert_nothing_refused();
    let expected = run.answers.len();
    let mut by_partition: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut distinct = std::collections::BTreeSet::new();
    kafka.read_until(&topic, 3, |m| {
        use rdkafka::Message;
        let id = kafka_headers(m)
            .into_iter()
            .find(|(k, _)| k == "ce_id")
            .map(|(_, v)| v)
            .unwrap();
        distinct.insert(id.clone());
        by_partition.entry(m.partition()).or_default().push(id);
        distinct.len() == expected
    });
    // A key lives on one partition, so each publisher's events keep their order in the
    // partitions read one after the other.
    let all: Vec<String> = by_partition.into_values().flatten().collect();
    let duplicates = run.assert_all_arrived_in_order(&all);
    run.report("Kafka (mock broker down)", duplicates);
    server.stop().await;
}

/// A full spool answers 507 with `Retry-After`, `/readyz` then says so, and what it holds is
/// shown by `/v1/brokers` and the metrics.
#[tokio::test]
async fn a_full_spool_is_507_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: the broker is away from the start.
    let port = crate::common::process::free_port();
    let server = TestServer::start_unready(&spool_toml(
        &dir,
        "jobs",
        &format!("kind = \"nats\"\nurl = \"nats://127.0.0.1:{port}\""),
        "64KiB",
    ))
    .await;
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "ready while the spool has room");
    let body = "x".repeat(1024);
    let mut spooled = 0;
    let full = loop {
        let r = server
            .post(
                "/v1/publish/jobs/orders",
                &[("ce-id", &format!("e-{spooled}"))],
                body.clone(),
            )
            .await;
        if r.status() != 202 {
            break r;
        }
        let answer: Value = r.json().await.unwrap();
        assert_eq!(
            answer,
            json!({"id": format!("e-{spooled}"), "broker": "jobs", "topic": "orders", "spooled": true})
        );
        spooled += 1;
        assert!(spooled < 100, "64 KiB never filled");
    };
    assert_eq!(full.headers()["retry-after"], "5");
    let problem = assert_problem(full, 507).await;
    assert_eq!(problem["type"], "urn:sidebus:problem:spool-full");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("spool is full"),
        "{problem}"
    );
    let spool = backlog(&server, "jobs").await;
    assert_eq!(spool["events"], spooled, "{spool}");
    assert_eq!(spool["max_bytes"], 64 * 1024);
    // A batch that does not fit is refused entry by entry, nothing of it spooled.
    let batch: Vec<Value> = (0..3)
        .map(|i| json!({"specversion": "1.0", "id": format!("b-{i}"), "source": "/t", "type": "t", "data": body}))
        .collect();
    let r = server
        .post(
            "/v1/publish/jobs/orders/batch",
            &[("content-type", "application/cloudevents-batch+json")],
            Value::Array(batch).to_string(),
        )
        .await;
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["failed"], 3, "{answer}");
    assert_eq!(answer["results"][0]["status"], 507, "{answer}");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(&format!(
            "sidebus_spool_events{{broker=\"jobs\"}} {spooled}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("sidebus_publish_events_total{broker=\"jobs\",outcome=\"spool_refused\"}")
    );
    server.stop().await;
}

/// The spool outlives the process: SIGTERM with a backlog and the broker away exits within
/// `shutdown_grace` keeping it, SIGKILL loses nothing either, and a torn last record (the write
/// a crash interrupted) is cut off at the next start; once the broker is back every event is
/// on it, once, in order.
#[tokio::test]
async fn the_spool_survives_sigterm_sigkill_and_a_torn_tail() {
    let mut nats = PrivateNats::start();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "shutdown_grace = \"5s\"\n{}",
        spool_toml(
            &dir,
            "jobs",
            &format!("kind = \"nats\"\nurl = \"{}\"", nats.url()),
            "64MiB"
        )
    );
    let http = reqwest::Client::new();
    let topic = unique_topic("spool.crash");
    let sidebus = Sidebus::start(&toml, dir.path(), &http).await;
    let publish = |sidebus: &Sidebus, from: usize, to: usize| {
        let (http, base, topic) = (http.clone(), sidebus.base.clone(), topic.clone());
        async move {
            for i in from..to {
                // From 501 on with `Prefer: respond-async`: while the broker is away its 202
                // also waits for the spool's fsync, so the SIGKILL below loses none of them.
                let prefer = if i > 500 { "respond-async" } else { "" };
                let r = http
                    .post(format!("{base}/v1/publish/jobs/{topic}"))
                    .header("ce-id", format!("p0-{i}"))
                    .header("prefer", prefer)
                    .body("x")
                    .send()
                    .await
                    .unwrap();
                let expected = if i == 0 { 200 } else { 202 };
                assert_eq!(r.status(), expected, "event {i}");
                let body: Value = r.json().await.unwrap();
                assert_eq!(
                    body["spooled"].as_bool().unwrap_or(false),
                    i > 0,
                    "event {i}: {body}"
                );
            }
        }
    };
    // Ready means the spool has room, not that the broker is connected: wait for that, so the
    // first event goes live and makes the stream; then the broker goes away.
    let deadline = Instant::now() + WAIT;
    while sidebus.get_json(&http, "/v1/brokers").await["brokers"][0]["connected"] != true {
        assert!(Instant::now() < deadline, "sidebus never connected to NATS");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publish(&sidebus, 0, 1).await;
    nats.kill();
    publish(&sidebus, 1, 501).await;
    let started = Instant::now();
    let status = sidebus.terminate(Duration::from_secs(10)).await;
    println!(
        "SIGTERM with 500 events spooled and the broker away: exit {status} after {:?}",
        started.elapsed()
    );
    assert!(status.success(), "{status}");

    let sidebus = Sidebus::start(&toml, dir.path(), &http).await;
    let spool = sidebus.get_json(&http, "/v1/brokers").await["brokers"][0]["spool"].clone();
    assert_eq!(spool["events"], 500, "{spool}");
    publish(&sidebus, 501, 1001).await;
    sidebus.kill();

    // A record the crash cut in half.
    let segments = dir.path().join("spool").join("jobs");
    let last = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .max()
        .unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap();
    std::io::Write::write_all(&mut file, &[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']).unwrap();
    drop(file);

    nats.restart();
    let started = Instant::now();
    let sidebus = Sidebus::start(&toml, dir.path(), &http).await;
    let deadline = Instant::now() + WAIT;
    let on_broker = loop {
        let ids = nats_ids(&nats.url(), &topic).await;
        if ids.len() >= 1001 || Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "after SIGKILL with 1,000 events spooled and a torn tail: all on the broker {:?} after the restart",
        started.elapsed()
    );
    let expected: Vec<String> = (0..1001).map(|i| format!("p0-{i}")).collect();
    assert_eq!(on_broker, expected, "every event once, in order");
    drop(sidebus);
}

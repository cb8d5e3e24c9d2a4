//! A minute of publishing at ten times the rate the broker can take, against the real binary:
//! the excess is answered 429 with Retry-After at once, accepted publishes are acknowledged
//! within the ack timeout, resident memory stays flat, and a slow webhook's backlog stays on the
//! broker. `cargo test --test it -- overload:: --nocapture` prints the figures.


use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::brokers::Kafka;
use crate::common::process::Sidebus;
use crate::common::receiver::Receiver;
use crate::common::unique_topic;
use tokio::task::JoinSet;

/// How long the overload lasts.
const OVERLOAD: Duration = Duration::from_secs(60);
/// Publishes offered per second: ten times what the configuration below lets the broker take.
const OFFERED_PER_SECOND: u64 = 400;
/// The broker's round trip; with 2 batches of at most 10 events awaiting acknowledgement, the
/// broker takes about 2 × 10 / 0.5 s = 40 events/s.
const ROUND_TRIP: Duration = Duration::from_millis(500);
/// Memory growth allowed after the first tenth of the minute, for allocator slack.
const RSS_SLACK: u64 = 16 << 20;

struct Answer {
    status: u16,
    retry_after: bool,
    problem: bool,
    took: Duration,
}

/// Offers publishes to `url` at a fixed rate whatever the answers (an open loop, as many
/// clients are), sampling the resident memory of `sidebus` every second.
async fn overload(url: &str, sidebus: &Sidebus) -> (Vec<Answer>, Vec<(Duration, u64)>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url: Arc<str> = url.into();
    let mut requests = JoinSet::new();
    let mut answers = Vec::new();
    let mut rss = Vec::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sampled = Duration::ZERO;
    let mut sent = 0u64;
    while started.elapsed() < OVERLOAD {
        tick.tick().await;
        let due = OFFERED_PER_SECOND * started.elapsed().as_millis() as u64 / 1000;
        for _ in sent..due {
            let (http, url) = (http.clone(), url.clone());
            requests.spawn(async move {
                let begun = Instant::now();
                let r = http
                    .post(&*url)
                    .body("x".repeat(1024))
                    .send()
                    .await
                    .unwrap();
                Answer {
                    status: r.status().as_u16(),
                    retry_after: r.headers().contains_key("retry-after"),
                    problem: r
                        .headers()
                        .get("content-type")
                        .is_some_and(|v| v == "application/problem+json"),
                    took: begun.elapsed(),
                }
            });
        }
        sent = sent.max(due);
        if started.elapsed() >= sampled {
            rss.push((started.elapsed(), sidebus.rss()));
            sampled += Duration::from_secs(1);
        }
        while let Some(done) = requests.try_join_next() {
            answers.push(done.unwrap());
        }
    }
    while let Some(done) = requests.join_next().await {
        answers.push(done.unwrap());
    }
    (answers, rss)
}

#[tokio::test]
async fn ten_times_the_sustainable_rate_for_a_minute() {
    let kafka = Kafka::start_mock();
    let topic = unique_topic("overload");
    kafka.create_topic(&topic, 1).await;
    let receiver = Receiver::start().await;
    receiver.slow(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
limits = {{ pipeline_depth = 100, max_batch = 100 }}
[pipeline]
max_batch_events = 10
max_in_flight_batches = 2
ack_timeout = "10s"
[brokers.events]
kind = "kafka"
bootstrap_servers = "{}"
options = {{ "session.timeout.ms" = "6000", "statistics.interval.ms" = "500" }}
[[subscriptions]]
name = "slow"
broker = "events"
topic = "{topic}"
endpoint = "{}"
start = "earliest"
ordering = "none"
max_in_flight = 4
"#,
        kafka.bootstrap, receiver.url
    );
    let http = reqwest::Client::new();
    let mut sidebus = Sidebus::start(&toml, dir.path(), &http).await;
    let url = format!("{}/v1/publish/events/{topic}", sidebus.base);
    assert_eq!(
        http.post(&url).body("first").send().await.unwrap().status(),
        200
    );
    receiver
        .wait_until(Duration::from_secs(60), |r| !r.is_empty())
        .await;
    kafka
        .mock()
        .unwrap()
        .broker_round_trip_time(1, ROUND_TRIP)
        .unwrap();

    let (answers, rss) = overload(&url, &sidebus).await;

    let accepted: Vec<&Answer> = answers.iter().filter(|a| a.status == 200).collect();
    let refused = answers.iter().filter(|a| a.status == 429).count();
    for a in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(
            a.status, 429,
            "every publish not accepted is refused as overload"
        );
        assert!(
            a.retry_after && a.problem,
            "429 with Retry-After and problem+json"
        );
    }
    assert!(
        refused > answers.len() / 2,
        "the load was an overload: {refused} of {} refused",
        answers.len()
    );
    let slowest = accepted.iter().map(|a| a.took).max().unwrap();
    let mut took: Vec<Duration> = accepted.iter().map(|a| a.took).collect();
    took.sort();
    let p99 = took[took.len() * 99 / 100];
    let settled = rss[rss.len() / 10].1;
    let peak = rss.iter().map(|(_, b)| *b).max().unwrap();
    let late_peak = rss[rss.len() / 10..].iter().map(|(_, b)| *b).max().unwrap();
    println!(
        "overload: offered {} in {OVERLOAD:?}, accepted {} ({}/s), refused {refused}; accepted latency p99 {p99:?}, max {slowest:?}; RSS at {:?} {} MiB, peak {} MiB",
        answers.len(),
        accepted.len(),
        accepted.len() as u64 / OVERLOAD.as_secs(),
        rss[rss.len() / 10].0,
        settled >> 20,
        peak >> 20
    );
    assert!(
        late_peak <= settled + RSS_SLACK,
        "resident memory stays flat: {} MiB after {:?}, then up to {} MiB",
        settled >> 20,
        rss[rss.len() / 10].0,
        late_peak >> 20
    );

    // The slow endpoint's backlog waits on the broker: a handful in flight, the rest lag (a
    // gauge refreshed with the client's statistics, so it is polled until it has caught up).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = sidebus.get_json(&http, "/v1/subscriptions/slow").await;
        let figure = |name: &str| status["status"][name].as_u64().unwrap();
        let (delivered, in_flight, lag) = (figure("delivered"), figure("in_flight"), figure("lag"));
        assert!(in_flight <= 4, "{status}");
        // `first` was delivered before the overload; every accepted event is delivered, being
        // delivered, or waiting on the broker.
        if delivered + in_flight + lag > accepted.len() as u64 {
            println!("slow webhook: delivered {delivered}, in flight {in_flight}, lag {lag}");
            assert!(
                lag > delivered,
                "most of the backlog waits on the broker: {status}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the backlog is not accounted for: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    kafka
        .mock()
        .unwrap()
        .broker_round_trip_time(1, Duration::ZERO)
        .unwrap();
    assert!(sidebus.running(), "sidebus survived");
    let after = http.post(&url).body("after").send().await.unwrap();
    assert_eq!(after.status(), 200);
}

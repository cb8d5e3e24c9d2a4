//! Live reconfiguration (design §8.8) of the sidebus binary: a blue/green flip of a topic's
//! physical name by SIGHUP under load on NATS JetStream, an invalid file that changes nothing,
//! a key that needs a restart, and a ConfigMap-style symlink swap and an in-place write picked
//! up by the file watch, reconciling config-file subscriptions.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::Value;

use crate::common::brokers::{nats_client, nats_url};
use crate::common::process::{free_port, Sidebus};
use crate::common::receiver::Receiver;
use crate::common::{metric_value, sha256_hex, unique_topic};

const WAIT: Duration = Duration::from_secs(30);
const PUBLISHERS: usize = 4;

/// NATS broker `n` with `orders` mapped to `physical`, and subscription `follow` delivering
/// `orders` to `endpoint`.
fn nats_config(physical: &str, endpoint: &str, extra: &str) -> String {
    format!(
        r#"
source = "sidebus://reload"
[brokers.n]
kind = "nats"
url = "{}"
[[topics]]
name = "orders"
broker = "n"
physical = "{physical}"
[[subscriptions]]
name = "follow"
broker = "n"
topic = "orders"
endpoint = "{endpoint}"
start = "earliest"
max_in_flight = 64
{extra}
"#,
        nats_url()
    )
}

async fn config_status(sidebus: &Sidebus, http: &reqwest::Client) -> Value {
    sidebus.get_json(http, "/v1/config").await
}

/// Polls `GET /v1/config` until `done` holds.
async fn wait_config(
    sidebus: &Sidebus,
    http: &reqwest::Client,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = config_status(sidebus, http).await;
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "config never got there: {status}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `counter` reaches `n`.
async fn wait_count(counter: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + WAIT;
    while counter.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "only {} publishes",
            counter.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `ce-id`s on a JetStream stream of `subject`, in order.
async fn stream_ids(subject: &str) -> Vec<String> {
    let js = jetstream::new(nats_client().await);
    let Ok(stream) = js
        .get_stream(sidebus::backend::nats::stream_name(subject))
        .await
    else {
        return Vec::new();
    };
    let n = stream.get_info().await.unwrap().state.messages;
    let mut ids = Vec::new();
    for seq in 1..=n {
        let message = stream.get_raw_message(seq).await.unwrap();
        ids.push(message.headers.get("ce-id").unwrap().as_str().to_string());
    }
    ids
}

/// One publish as the load saw it.
struct Sent {
    id: String,
    status: u16,
    started: Instant,
    finished: Instant,
}

#[tokio::test]
async fn blue_green_flip_by_sighup_under_load_loses_nothing() {
    blue_green_under_load(Trigger::Signal).await;
}

#[tokio::test]
async fn blue_green_flip_by_rewriting_the_file_under_load_loses_nothing() {
    blue_green_under_load(Trigger::FileWatch).await;
}

/// What makes sidebus read its file again.
#[derive(Clone, Copy, PartialEq)]
enum Trigger {
    /// `SIGHUP`, with the file watch off.
    Signal,
    /// Only the file watch.
    FileWatch,
}

impl Trigger {
    fn args(self) -> [&'static str; 2] {
        match self {
            Trigger::Signal => ["--config-poll", "0s"],
            Trigger::FileWatch => ["--config-poll", "100ms"],
        }
    }

    fn pull(self, sidebus: &Sidebus) {
        if self == Trigger::Signal {
            sidebus.signal("HUP");
        }
    }
}

/// Flips `orders` from blue to green while four publishers post to it, then writes an invalid
/// file and one with a key that needs a restart.
async fn blue_green_under_load(trigger: Trigger) {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let base = unique_topic("bluegreen");
    let (blue, green) = (format!("{base}.blue"), format!("{base}.green"));
    let receiver = Receiver::start().await;
    let file = dir.path().join("sidebus.toml");
    std::fs::write(&file, nats_config(&blue, &receiver.url, "")).unwrap();
    let sidebus = Sidebus::spawn_with(free_port(), Some(&file), dir.path(), &trigger.args());
    sidebus.wait_ready(&http).await;
    let status = config_status(&sidebus, &http).await;
    let blue_hash = format!(
        "sha256:{}",
        sha256_hex(&nats_config(&blue, &receiver.url, ""))
    );
    assert_eq!(status["hash"], blue_hash.as_str());
    assert_eq!(status["path"], file.display().to_string());
    assert_eq!(status["last_error"], Value::Null);
    assert_eq!(status["restart_required"], serde_json::json!([]));

    let published = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut load = Vec::new();
    for publisher in 0..PUBLISHERS {
        let (http, url) = (
            http.clone(),
            format!("{}/v1/publish/n/orders", sidebus.base),
        );
        let (published, stopped) = (published.clone(), stopped.clone());
        load.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in 0.. {
                if *stopped.borrow() {
                    break;
                }
                let id = format!("p{publisher}-{i}");
                let started = Instant::now();
                let response = http
                    .post(&url)
                    .header("content-type", "text/plain")
                    .header("ce-id", &id)
                    .body(id.clone())
                    .send()
                    .await
                    .unwrap();
                sent.push(Sent {
                    id,
                    status: response.status().as_u16(),
                    started,
                    finished: Instant::now(),
                });
                published.fetch_add(1, Ordering::SeqCst);
            }
            sent
        }));
    }
    wait_count(&published, 100).await;
    let green_text = nats_config(&green, &receiver.url, "");
    std::fs::write(&file, &green_text).unwrap();
    let flipped = Instant::now();
    trigger.pull(&sidebus);
    let green_hash = format!("sha256:{}", sha256_hex(&green_text));
    wait_config(&sidebus, &http, |s| s["hash"] == green_hash.as_str()).await;
    let applied = Instant::now();
    wait_count(&published, published.load(Ordering::SeqCst) + 100).await;
    stop.send(true).unwrap();
    let mut sent = Vec::new();
    for publisher in load {
        sent.extend(publisher.await.unwrap());
    }

    // An invalid file changes nothing, and says why.
    std::fs::write(
        &file,
        nats_config(
            &green,
            &receiver.url,
            "[[topics]]\nname = \"x\"\nbroker = \"nope\"",
        ),
    )
    .unwrap();
    trigger.pull(&sidebus);
    let status = wait_config(&sidebus, &http, |s| !s["last_error"].is_null()).await;
    assert_eq!(status["hash"], green_hash.as_str(), "{status}");
    let detail = status["last_error"]["detail"].as_str().unwrap();
    assert!(detail.contains("topics[1] (x).broker"), "{detail}");
    let after = http
        .post(format!("{}/v1/publish/n/orders", sidebus.base))
        .header("content-type", "text/plain")
        .header("ce-id", "after-invalid")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);

    // A key that needs a restart is reported, and the rest applied; the error is cleared.
    let restart_text = nats_config(&green, &receiver.url, "[pipeline]\nlinger = \"3ms\"");
    std::fs::write(&file, &restart_text).unwrap();
    trigger.pull(&sidebus);
    let restart_hash = format!("sha256:{}", sha256_hex(&restart_text));
    let status = wait_config(&sidebus, &http, |s| s["hash"] == restart_hash.as_str()).await;
    assert_eq!(status["restart_required"], serde_json::json!(["pipeline"]));
    assert_eq!(status["last_error"], Value::Null);
    let metrics = http
        .get(format!("{}/metrics", sidebus.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric_value(&metrics, "sidebus_config_reloads_total{result=\"applied\"}"),
        2.0
    );
    assert_eq!(
        metric_value(&metrics, "sidebus_config_reloads_total{result=\"invalid\"}"),
        1.0
    );

    let on_blue = stream_ids(&blue).await;
    let on_green = stream_ids(&green).await;
    let blue_set: BTreeSet<&String> = on_blue.iter().collect();
    let green_set: BTreeSet<&String> = on_green.iter().collect();
    assert_eq!(blue_set.len(), on_blue.len(), "a duplicate on blue");
    assert_eq!(green_set.len(), on_green.len(), "a duplicate on green");
    assert!(blue_set.is_disjoint(&green_set), "an event on both topics");
    assert!(green_set.contains(&"after-invalid".to_string()));
    for s in &sent {
        assert_eq!(s.status, 200, "{} failed", s.id);
        let on = (blue_set.contains(&s.id), green_set.contains(&s.id));
        assert!(
            on.0 || on.1,
            "{} answered 200 but is on neither topic",
            s.id
        );
        if s.finished < flipped {
            assert!(
                on.0,
                "{} was answered before the flip but is not on blue",
                s.id
            );
        }
        if s.started > applied {
            assert!(
                on.1,
                "{} was sent after the flip applied but is not on green",
                s.id
            );
        }
    }
    assert_eq!(on_blue.len() + on_green.len(), sent.len() + 1);
    // The config subscription followed the flip: it moved to green and started there from the
    // earliest event, so every event reached the endpoint (at least once).
    let all: BTreeSet<String> = on_blue.iter().chain(&on_green).cloned().collect();
    let delivered = receiver
        .try_wait_until(WAIT, |r| {
            let got: BTreeSet<String> = r.iter().filter_map(|r| r.header("ce-id")).collect();
            got == all
        })
        .await
        .unwrap_or_else(|r| {
            let got: BTreeSet<String> = r.iter().filter_map(|r| r.header("ce-id")).collect();
            let missing: Vec<&String> = all.difference(&got).collect();
            let blue_missing = missing.iter().filter(|id| blue_set.contains(**id)).count();
            panic!(
                "{} not delivered ({blue_missing} of them on blue): {missing:?}",
                missing.len()
            )
        });
    for request in &delivered {
        assert_eq!(request.header("sidebus-topic").as_deref(), Some("orders"));
    }
    assert!(
        on_blue.len() >= 100 && on_green.len() >= 100,
        "{} / {}",
        on_blue.len(),
        on_green.len()
    );
}

fn memory_config(subscriptions: &[(&str, &str)]) -> String {
    let mut text = String::from("source = \"sidebus://reload\"\n[brokers.m]\nkind = \"memory\"\n");
    for (name, endpoint) in subscriptions {
        text.push_str(&format!(
            "[[subscriptions]]\nname = \"{name}\"\nbroker = \"m\"\ntopic = \"t\"\nendpoint = \"{endpoint}\"\nstart = \"earliest\"\n"
        ));
    }
    text
}

/// The `ce-id`s a receiver accepted.
fn ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .accepted()
        .iter()
        .filter_map(|r| r.header("ce-id"))
        .collect()
}

async fn publish(sidebus: &Sidebus, http: &reqwest::Client, id: &str) {
    let response = http
        .post(format!("{}/v1/publish/m/t", sidebus.base))
        .header("content-type", "text/plain")
        .header("ce-id", id)
        .body(id.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn names(sidebus: &Sidebus, http: &reqwest::Client) -> Vec<String> {
    let list = sidebus.get_json(http, "/v1/subscriptions").await;
    list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_configmap_swap_and_an_in_place_write_reconcile_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let (a, b, c) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    // The layout the kubelet gives a ConfigMap volume: the file is a symlink through `..data`,
    // itself a symlink to a timestamped directory that an update replaces.
    let root = dir.path();
    std::fs::create_dir(root.join("v1")).unwrap();
    std::fs::write(
        root.join("v1/sidebus.toml"),
        memory_config(&[("keep", &a.url), ("gone", &b.url)]),
    )
    .unwrap();
    std::os::unix::fs::symlink("v1", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/sidebus.toml", root.join("sidebus.toml")).unwrap();
    let sidebus = Sidebus::spawn_with(
        free_port(),
        Some(&root.join("sidebus.toml")),
        root,
        &["--config-poll", "50ms"],
    );
    sidebus.wait_ready(&http).await;
    publish(&sidebus, &http, "e1").await;
    a.wait_until(WAIT, |r| r.len() == 1).await;
    b.wait_until(WAIT, |r| r.len() == 1).await;

    let v2 = memory_config(&[("keep", &a.url), ("added", &c.url)]);
    std::fs::create_dir(root.join("v2")).unwrap();
    std::fs::write(root.join("v2/sidebus.toml"), &v2).unwrap();
    std::os::unix::fs::symlink("v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    let v2_hash = format!("sha256:{}", sha256_hex(&v2));
    wait_config(&sidebus, &http, |s| s["hash"] == v2_hash.as_str()).await;
    assert_eq!(names(&sidebus, &http).await, ["added", "keep"]);
    publish(&sidebus, &http, "e2").await;
    a.wait_until(WAIT, |r| r.len() == 2).await;
    c.wait_until(WAIT, |r| r.len() == 2).await;
    assert_eq!(
        ids(&a),
        ["e1", "e2"],
        "the unchanged subscription went on without a redelivery"
    );
    // max_in_flight 64 and no keys: the two may arrive in either order.
    let mut added = ids(&c);
    added.sort();
    assert_eq!(
        added,
        ["e1", "e2"],
        "the added one starts from the earliest"
    );
    assert_eq!(ids(&b), ["e1"], "the removed one stopped");

    // In place: `keep` now delivers to b.
    let v3 = memory_config(&[("keep", &b.url), ("added", &c.url)]);
    std::fs::write(root.join("v2/sidebus.toml"), &v3).unwrap();
    let v3_hash = format!("sha256:{}", sha256_hex(&v3));
    wait_config(&sidebus, &http, |s| s["hash"] == v3_hash.as_str()).await;
    publish(&sidebus, &http, "e3").await;
    b.wait_until(WAIT, |r| r.len() == 2).await;
    c.wait_until(WAIT, |r| r.len() == 3).await;
    assert_eq!(
        ids(&b),
        ["e1", "e3"],
        "the replaced subscription kept its group's position"
    );
    assert_eq!(ids(&a), ["e1", "e2"]);
}

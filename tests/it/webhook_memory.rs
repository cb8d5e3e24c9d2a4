//! Webhook push delivery from the memory broker to a real HTTP receiver: modes, signatures,
//! retries, Retry-After, dead letters, 410 pause, ordering, and the runtime API.

use std::time::Duration;

use crate::common::receiver::{Receiver, Reply};
use crate::common::{assert_problem, stored, TestServer};
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(30);

fn config(state_dir: &std::path::Path) -> String {
    format!(
        r#"
state_dir = "{}"
[brokers.mem]
kind = "memory"
"#,
        state_dir.display()
    )
}

async fn publish(server: &TestServer, topic: &str, id: &str, key: Option<&str>, body: &str) {
    let mut path = format!("/v1/publish/mem/{topic}");
    if let Some(key) = key {
        path.push_str(&format!("?key={key}"));
    }
    let r = server
        .post(
            &path,
            &[("ce-id", id), ("content-type", "text/plain")],
            body.to_string(),
        )
        .await;
    assert_eq!(r.status(), 200);
}

async fn status(server: &TestServer, name: &str) -> Value {
    server
        .http
        .get(server.url(&format!("/v1/subscriptions/{name}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Standard Webhooks verification written from the spec, independent of sidebus' signer.
fn verify_signature(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

#[tokio::test]
async fn binary_delivery_is_signed_and_carries_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path())).await;
    let receiver = Receiver::start().await;
    server.subscribe("signed",
        json!({"broker":"mem","topic":"orders","endpoint":receiver.url,"secret":SECRET,"start":"earliest"}),
    )
    .await;
    let r = server
        .post(
            "/v1/publish/mem/orders?key=c1",
            &[
                ("ce-id", "o-1"),
                ("ce-type", "order.placed"),
                ("content-type", "application/octet-stream"),
                (
                    "ce-traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            ],
            vec![0xffu8, 0, 1],
        )
        .await;
    assert_eq!(r.status(), 200);
    let got = receiver.wait_until(WAIT, |r| !r.is_empty()).await;
    let req = &got[0];
    assert_eq!(&req.body[..], &[0xff, 0, 1]);
    assert_eq!(
        req.header("content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(req.header("ce-id").as_deref(), Some("o-1"));
    assert_eq!(req.header("ce-type").as_deref(), Some("order.placed"));
    assert_eq!(req.header("ce-specversion").as_deref(), Some("1.0"));
    assert_eq!(req.header("ce-partitionkey").as_deref(), Some("c1"));
    let traceparent = req.header("traceparent").unwrap();
    assert!(
        traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "the delivery continues the publisher's trace: {traceparent}"
    );
    assert_ne!(
        traceparent,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert_eq!(req.header("webhook-id").as_deref(), Some("o-1"));
    let ts = req.header("webhook-timestamp").unwrap();
    let sig = req.header("webhook-signature").unwrap();
    assert!(
        verify_signature(SECRET, "o-1", &ts, &req.body, &sig),
        "signature {sig}"
    );
    assert!(!verify_signature(SECRET, "o-2", &ts, &req.body, &sig));

    let shown = status(&server, "signed").await;
    assert_eq!(
        shown["secret"], "whsec_***",
        "secrets are redacted: {shown}"
    );
    receiver.wait_until(WAIT, |_| true).await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let s = status(&server, "signed").await;
        if s["status"]["delivered"] == 1 {
            assert_eq!(s["status"]["state"], "running");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn retries_retry_after_dead_letters_and_order_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path())).await;
    let receiver = Receiver::start().await;
    server
        .subscribe(
            "retrying",
            json!({"broker":"mem","topic":"jobs","endpoint":receiver.url,"start":"earliest",
               "timeout":"300ms","dead_letter":"jobs.dlq",
               "retry":{"max_attempts":3,"initial_backoff":"10ms","max_backoff":"50ms"}}),
        )
        .await;
    receiver.script("a-2", vec![Reply::Status(500), Reply::Hang]);
    receiver.script("a-3", vec![Reply::RetryAfter(429, 1)]);
    receiver.script("b-1", vec![Reply::Status(400)]);
    receiver.script(
        "b-3",
        vec![Reply::Status(503), Reply::Status(502), Reply::Status(500)],
    );
    for i in 1..=4 {
        publish(
            &server,
            "jobs",
            &format!("a-{i}"),
            Some("a"),
            &format!("a{i}"),
        )
        .await;
        publish(
            &server,
            "jobs",
            &format!("b-{i}"),
            Some("b"),
            &format!("b{i}"),
        )
        .await;
    }
    let got = receiver
        .wait_until(WAIT, |r| {
            r.iter().filter(|r| r.answered == 200).count() == 6
        })
        .await;
    let ids = |key: &str| -> Vec<String> {
        got.iter()
            .filter(|r| r.header("ce-partitionkey").as_deref() == Some(key))
            .map(|r| r.header("ce-id").unwrap())
            .collect()
    };
    // Every attempt of key a in order, each event finished before the next began.
    assert_eq!(ids("a"), ["a-1", "a-2", "a-2", "a-2", "a-3", "a-3", "a-4"]);
    assert_eq!(ids("b"), ["b-1", "b-2", "b-3", "b-3", "b-3", "b-4"]);
    let a3: Vec<_> = got
        .iter()
        .filter(|r| r.header("ce-id").as_deref() == Some("a-3"))
        .collect();
    assert!(
        a3[1].at.duration_since(a3[0].at) >= Duration::from_millis(950),
        "Retry-After honoured"
    );
    let a2: Vec<_> = got
        .iter()
        .filter(|r| r.header("webhook-id").as_deref() == Some("a-2"))
        .collect();
    assert_eq!(a2.len(), 3, "all attempts share the webhook-id");
    // b-1 (400) and b-3 (3 failed attempts) went to the dead-letter topic, a-2 was delivered.
    let deadline = std::time::Instant::now() + WAIT;
    while stored(&server, "mem", "jobs.dlq", 10).await.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "dead letters missing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dead = stored(&server, "mem", "jobs.dlq", 10).await;
    let b1 = &dead[0].event;
    assert_eq!(b1.id, "b-1");
    assert_eq!(&b1.data[..], b"b1");
    assert_eq!(b1.extension("sidebuserrorstatus"), Some("400"));
    assert_eq!(b1.extension("sidebuserrorattempts"), Some("1"));
    assert_eq!(b1.extension("sidebuserrorsubscription"), Some("retrying"));
    assert_eq!(b1.extension("sidebuserrortopic"), Some("jobs"));
    assert_eq!(b1.extension("sidebuserrorposition"), Some("0:1"));
    assert!(b1.extension("sidebuserrorreason").unwrap().contains("400"));
    let b3 = &dead[1].event;
    assert_eq!(b3.id, "b-3");
    assert_eq!(b3.extension("sidebuserrorattempts"), Some("3"));
    assert_eq!(b3.extension("sidebuserrorstatus"), Some("500"));
    // The counters move once each event is settled, just after the endpoint's answer.
    let s = loop {
        let s = status(&server, "retrying").await["status"].clone();
        if s["in_flight"] == 0 || std::time::Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(s["delivered"], 6, "{s}");
    assert_eq!(s["dead_lettered"], 2, "{s}");
    assert_eq!(s["failed"], 2, "{s}");
    assert_eq!(s["retried"], 5, "{s}");
}

#[tokio::test]
async fn gone_pauses_and_resume_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path())).await;
    let receiver = Receiver::start().await;
    server
        .subscribe(
            "gone",
            json!({"broker":"mem","topic":"g","endpoint":receiver.url,"start":"earliest"}),
        )
        .await;
    receiver.script("g-1", vec![Reply::Status(410)]);
    publish(&server, "g", "g-1", None, "x").await;
    receiver.wait_until(WAIT, |r| !r.is_empty()).await;
    let deadline = std::time::Instant::now() + WAIT;
    while status(&server, "gone").await["status"]["state"] != "paused" {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The pause is saved, so it survives a restart.
    let file = dir.path().join("subscriptions.json");
    while !std::fs::read_to_string(&file)
        .unwrap_or_default()
        .contains("\"paused\": true")
    {
        assert!(std::time::Instant::now() < deadline, "pause not saved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = server.post("/v1/subscriptions/gone/resume", &[], "").await;
    assert_eq!(r.status(), 200);
    let got = receiver
        .wait_until(WAIT, |r| r.iter().any(|r| r.answered == 200))
        .await;
    assert_eq!(
        got.len(),
        2,
        "the event was not acknowledged by the 410 and came back"
    );
}

#[tokio::test]
async fn structured_and_batch_modes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path())).await;
    let receiver = Receiver::start().await;
    server.subscribe("structured", json!({"broker":"mem","topic":"s","endpoint":receiver.url,"start":"earliest","content_mode":"structured"})).await;
    publish(&server, "s", "s-1", None, "hello").await;
    let got = receiver.wait_until(WAIT, |r| !r.is_empty()).await;
    assert_eq!(
        got[0].header("content-type").as_deref(),
        Some("application/cloudevents+json")
    );
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["id"], "s-1");
    assert_eq!(body["data"], "hello");
    assert_eq!(body["datacontenttype"], "text/plain");

    let batch_receiver = Receiver::start().await;
    server.subscribe("batched", json!({"broker":"mem","topic":"bt","endpoint":batch_receiver.url,"start":"earliest","content_mode":"batch","max_batch":10,"ordering":"none"})).await;
    for i in 0..25 {
        publish(&server, "bt", &format!("bt-{i}"), None, &i.to_string()).await;
    }
    let got = batch_receiver
        .wait_until(WAIT, |r| {
            r.iter()
                .map(|r| serde_json::from_slice::<Vec<Value>>(&r.body).unwrap().len())
                .sum::<usize>()
                == 25
        })
        .await;
    let mut seen = Vec::new();
    for r in &got {
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/cloudevents-batch+json")
        );
        let events: Vec<Value> = serde_json::from_slice(&r.body).unwrap();
        assert!(events.len() <= 10);
        seen.extend(
            events
                .into_iter()
                .map(|e| e["id"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(seen, (0..25).map(|i| format!("bt-{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn runtime_api_validates_persists_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let spec = json!({"broker":"mem","topic":"r","endpoint":receiver.url,"secret":SECRET});
    {
        let server = TestServer::start(&config(dir.path())).await;
        let url = server.url("/v1/subscriptions/keep");
        let r = server.http.put(&url).json(&spec).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let r = server.http.put(&url).json(&spec).send().await.unwrap();
        assert_eq!(r.status(), 200, "the same spec again is idempotent");
        for (bad, field) in [
            (
                json!({"broker":"nope","topic":"r","endpoint":receiver.url}),
                "broker",
            ),
            (
                json!({"broker":"mem","topic":"r","endpoint":"not a url"}),
                "endpoint",
            ),
            (
                json!({"broker":"mem","topic":"r","endpoint":receiver.url,"retry":{"max_attempts":0}}),
                "retry.max_attempts",
            ),
            (
                json!({"broker":"mem","topic":"r","endpoint":receiver.url,"colour":"red"}),
                "colour",
            ),
        ] {
            let r = server
                .http
                .put(server.url("/v1/subscriptions/bad"))
                .json(&bad)
                .send()
                .await
                .unwrap();
            let problem = assert_problem(r, 400).await;
            assert!(
                problem["detail"].as_str().unwrap().contains(field),
                "{field}: {problem}"
            );
        }
        let r = server
            .http
            .get(server.url("/v1/subscriptions/missing"))
            .send()
            .await
            .unwrap();
        assert_problem(r, 404).await;
        let r = server
            .http
            .put(server.url("/v1/subscriptions/bad%20name"))
            .json(&spec)
            .send()
            .await
            .unwrap();
        assert_problem(r, 400).await;
        let r = server.post("/v1/subscriptions/keep/pause", &[], "").await;
        assert_eq!(r.status(), 200);
        let list: Value = server
            .http
            .get(server.url("/v1/subscriptions"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["subscriptions"].as_array().unwrap().len(), 1);
        server.stop().await;
    }
    let saved = std::fs::read_to_string(dir.path().join("subscriptions.json")).unwrap();
    assert!(saved.contains("\"keep\""), "{saved}");
    let server = TestServer::start(&config(dir.path())).await;
    let shown = status(&server, "keep").await;
    assert_eq!(shown["status"]["state"], "paused", "{shown}");
    assert_eq!(shown["origin"], "runtime");
    assert_eq!(shown["endpoint"], receiver.url.as_str());
    let r = server
        .http
        .delete(server.url("/v1/subscriptions/keep"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = server
        .http
        .get(server.url("/v1/subscriptions/keep"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404).await;
}

#[tokio::test]
async fn rate_limit_caps_deliveries_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path())).await;
    let receiver = Receiver::start().await;
    for i in 0..60 {
        publish(&server, "rl", &format!("rl-{i}"), None, "x").await;
    }
    server.subscribe("limited", json!({"broker":"mem","topic":"rl","endpoint":receiver.url,"start":"earliest","ordering":"none","rate_limit":20})).await;
    let got = receiver.wait_until(WAIT, |r| r.len() == 60).await;
    // A burst of up to 20, then 20 per second: the last 40 take at least two seconds.
    let span = got[59].at.duration_since(got[0].at);
    assert!(
        span >= Duration::from_millis(1900),
        "60 deliveries at 20/s took only {span:?}"
    );
}

#[tokio::test]
async fn rate_limit_caps_payload_bytes_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path())).await;
    let receiver = Receiver::start().await;
    let payload = "x".repeat(1000);
    for i in 0..30 {
        publish(&server, "rlb", &format!("rlb-{i}"), None, &payload).await;
    }
    let spec = json!({"broker":"mem","topic":"rlb","endpoint":receiver.url,"start":"earliest",
        "ordering":"none","rate_limit":{"bytes_per_second":10000}});
    let shown = server.subscribe("bytes-limited", spec).await;
    assert_eq!(shown["rate_limit"], json!({"bytes_per_second": 10000}));
    let got = receiver.wait_until(WAIT, |r| r.len() == 30).await;
    assert!(got.iter().all(|r| r.body.len() == 1000));
    // A second's bytes at once (10 events), then 10 000 bytes per second: the last 20 events
    // take at least two seconds.
    let span = got[29].at.duration_since(got[0].at);
    assert!(
        span >= Duration::from_millis(1900),
        "30 000 bytes at 10 000/s took only {span:?}"
    );
}

//! Webhook delivery from real NATS JetStream: consumer groups and at-least-once across a
//! sidecar restart.


use std::collections::HashMap;
use std::time::Duration;

use crate::common::brokers::nats_url;
use crate::common::receiver::{Receiver, Reply};
use crate::common::{unique_topic, TestServer};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

fn config(dir: &std::path::Path) -> String {
    format!(
        "state_dir = \"{}\"\n[brokers.jobs]\nkind = \"nats\"\nurl = \"{}\"\n",
        dir.display(),
        nats_url()
    )
}

fn counts(received: &[crate::common::receiver::Received]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in received.iter().filter(|r| r.answered == 200) {
        *counts.entry(r.header("ce-id").unwrap()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn groups_share_and_each_group_gets_everything() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique_topic("wh.groups");
    let a = TestServer::start(&config(&dir.path().join("a"))).await;
    let b = TestServer::start(&config(&dir.path().join("b"))).await;
    let shared = Receiver::start().await;
    let other = Receiver::start().await;
    let group = unique_topic("billing");
    for server in [&a, &b] {
        server.subscribe("billing", json!({"broker":"jobs","topic":topic,"endpoint":shared.url,"group":group,"start":"earliest","ordering":"none"})).await;
    }
    a.subscribe("audit", json!({"broker":"jobs","topic":topic,"endpoint":other.url,"group":unique_topic("audit"),"start":"earliest"})).await;
    for i in 0..100 {
        let r = a
            .post(
                &format!("/v1/publish/jobs/{topic}"),
                &[("ce-id", &format!("e-{i}"))],
                "x",
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let got = shared.wait_until(WAIT, |r| counts(r).len() == 100).await;
    assert!(
        counts(&got).values().all(|n| *n == 1),
        "each event once within the group"
    );
    let got = other.wait_until(WAIT, |r| counts(r).len() == 100).await;
    assert!(counts(&got).values().all(|n| *n == 1));
    // Each sidecar counts an event once it is settled, just after the endpoint's answer.
    let deadline = std::time::Instant::now() + WAIT;
    let (da, db) = loop {
        let delivered = |s: serde_json::Value| s["status"]["delivered"].as_u64().unwrap();
        let da = delivered(a.get_json("/v1/subscriptions/billing").await);
        let db = delivered(b.get_json("/v1/subscriptions/billing").await);
        if da + db >= 100 || std::time::Instant::now() > deadline {
            break (da, db);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(da + db, 100);
    println!("group split: {da} + {db}");
}

#[tokio::test]
async fn restart_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique_topic("wh.restart");
    let receiver = Receiver::start().await;
    let group = unique_topic("g");
    let spec = json!({"broker":"jobs","topic":topic,"endpoint":receiver.url,"group":group,"start":"earliest",
                      "ordering":"none","max_in_flight":8,"timeout":"200ms",
                      "retry":{"max_attempts":100,"initial_backoff":"20ms","max_backoff":"50ms"}});
    let first = TestServer::start(&config(dir.path())).await;
    first.subscribe("worker", spec.clone()).await;
    // The endpoint hangs on a few events, so they are in flight when the sidecar stops.
    for i in [10, 11, 12] {
        receiver.script(
            &format!("r-{i}"),
            vec![Reply::Hang, Reply::Hang, Reply::Hang],
        );
    }
    for i in 0..200 {
        let r = first
            .post(
                &format!("/v1/publish/jobs/{topic}"),
                &[("ce-id", &format!("r-{i}"))],
                "x",
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    receiver.wait_until(WAIT, |r| r.len() >= 50).await;
    first.stop().await;
    let before = counts(&receiver.received()).len();
    // The runtime subscription comes back from the state directory.
    let second = TestServer::start(&config(dir.path())).await;
    let got = receiver.wait_until(WAIT, |r| counts(r).len() == 200).await;
    let counts = counts(&got);
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    println!("delivered before restart: {before}, duplicates: {duplicates}");
    assert!(
        duplicates <= 8,
        "duplicates bounded by max_in_flight: {duplicates}"
    );
    second.stop().await;
}

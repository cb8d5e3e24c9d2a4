//! sidebus killed (SIGKILL) mid-stream and started again: every event is delivered at least
//! once, and duplicates stay within what was in flight.


use std::collections::HashMap;
use std::time::Duration;

use crate::common::brokers::{nats_client, nats_url};
use crate::common::process::{free_port, Sidebus};
use crate::common::receiver::{Receiver, Reply};
use crate::common::unique_topic;
use serde_json::json;

#[tokio::test]
async fn killed_mid_stream_redelivers_what_was_not_acknowledged() {
    nats_client().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("sidebus.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n[brokers.jobs]\nkind = \"nats\"\nurl = \"{}\"\n",
            dir.path().join("state").display(),
            nats_url()
        ),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let receiver = Receiver::start().await;
    // A few events hang at the endpoint, so they are in flight when the process dies.
    for i in [30, 31, 32] {
        receiver.script(&format!("k-{i}"), vec![Reply::Hang]);
    }
    let topic = unique_topic("wh.kill");
    let first = Sidebus::spawn(port, Some(&config), dir.path());
    first.wait_ready(&http).await;
    let r = http
        .put(format!("{base}/v1/subscriptions/killed"))
        .json(
            &json!({"broker":"jobs","topic":topic,"endpoint":receiver.url,"group":unique_topic("g"),
                      "start":"earliest","ordering":"none","max_in_flight":8,"timeout":"30s"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for i in 0..300 {
        let r = http
            .post(format!("{base}/v1/publish/jobs/{topic}"))
            .header("ce-id", format!("k-{i}"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    receiver
        .wait_until(Duration::from_secs(60), |r| r.len() >= 100)
        .await;
    first.kill();
    let second = Sidebus::spawn(port, Some(&config), dir.path());
    second.wait_ready(&http).await;
    // JetStream redelivers the unacknowledged events once their ack wait (30 s) runs out.
    let got = receiver
        .wait_until(Duration::from_secs(120), |r| {
            let ok: std::collections::HashSet<_> = r
                .iter()
                .filter(|r| r.answered == 200)
                .filter_map(|r| r.header("ce-id"))
                .collect();
            ok.len() == 300
        })
        .await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in got.iter().filter(|r| r.answered == 200) {
        *counts.entry(r.header("ce-id").unwrap()).or_default() += 1;
    }
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= 8,
        "duplicates bounded by max_in_flight: {duplicates}"
    );
}

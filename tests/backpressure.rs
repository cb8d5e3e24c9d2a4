//! A full pipeline answers 429 with Retry-After at once, and takes events again once the broker
//! acknowledges what it holds.

mod common;

use std::time::Duration;

use common::brokers::PrivateNats;
use common::{assert_problem, unique_topic, TestServer};

#[tokio::test]
async fn full_pipeline_is_429_then_drains_when_the_broker_answers() {
    let nats = PrivateNats::start();
    let server = TestServer::start(&format!(
        r#"
limits = {{ max_batch = 4, pipeline_depth = 4 }}
[pipeline]
ack_timeout = "60s"
[brokers.jobs]
kind = "nats"
url = "{}"
"#,
        nats.url()
    ))
    .await;
    let topic = unique_topic("bp");
    let path = format!("/v1/publish/jobs/{topic}");
    // Creates the stream while the server answers.
    assert_eq!(server.post(&path, &[], "warm").await.status(), 200);

    nats.freeze();
    for i in 0..4 {
        let r = server
            .post(&path, &[("prefer", "respond-async")], format!("held-{i}"))
            .await;
        assert_eq!(r.status(), 202, "event {i} fits in the pipeline");
    }
    let started = std::time::Instant::now();
    let refused = server
        .post(&path, &[("prefer", "respond-async")], "one too many")
        .await;
    assert_eq!(refused.headers()["retry-after"], "1");
    let problem = assert_problem(refused, 429).await;
    assert_eq!(problem["type"], "urn:sidebus:problem:pipeline-full");
    let batch = server
        .post(
            &format!("{path}/batch"),
            &[("content-type", "application/x-ndjson")],
            "{\"specversion\":\"1.0\",\"data\":1}\n",
        )
        .await;
    assert_problem(batch, 429).await;
    // "At once": the refusal did not wait for the broker (whose acks are minutes away).
    assert!(started.elapsed() < Duration::from_secs(30));
    let metrics = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sidebus_pipeline_depth{broker=\"jobs\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sidebus_pipeline_rejected_total{broker=\"jobs\"} 2"),
        "{metrics}"
    );

    nats.thaw();
    server
        .state
        .broker("jobs")
        .unwrap()
        .pipeline
        .settled()
        .await;
    let r = server.post(&path, &[], "after").await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["sequence"], 6, "warm + 4 held + after, nothing lost");
}

#[tokio::test]
async fn missing_acknowledgement_is_504() {
    let nats = PrivateNats::start();
    let server = TestServer::start(&format!(
        r#"
[pipeline]
ack_timeout = "300ms"
[brokers.stalled]
kind = "nats"
url = "{}"
"#,
        nats.url()
    ))
    .await;
    // Not `jobs`: metrics are process-wide, and this pipeline's depth gauge would overwrite the
    // one the other test reads.
    let topic = unique_topic("slow");
    let path = format!("/v1/publish/stalled/{topic}");
    assert_eq!(server.post(&path, &[], "warm").await.status(), 200);
    nats.freeze();
    let response = server.post(&path, &[], "unanswered").await;
    let problem = assert_problem(response, 504).await;
    assert_eq!(problem["type"], "urn:sidebus:problem:broker-timeout");
    nats.thaw();
}

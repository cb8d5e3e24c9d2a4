//! A full pipeline answers 429 with Retry-After at once, and takes events again once the broker
//! acknowledges what it holds.


use std::time::Duration;

use crate::common::brokers::PrivateNats;
use crate::common::{assert_problem, metric_value, unique_topic, TestServer};
use sidebus::pipeline::HELD_PER_EVENT;

/// A private NATS server (so it can be frozen) behind a sidebus broker named `broker`, with
/// `head` (limits, pipeline settings) before the broker table; returns the publish path of a
/// fresh topic whose stream the first publish has already created.
async fn behind_private_nats(head: &str, broker: &str) -> (PrivateNats, TestServer, String) {
    let nats = PrivateNats::start();
    let server = TestServer::start(&format!(
        "{head}\n[brokers.{broker}]\nkind = \"nats\"\nurl = \"{}\"\n",
        nats.url()
    ))
    .await;
    let path = format!("/v1/publish/{broker}/{}", unique_topic(broker));
    assert_eq!(server.post(&path, &[], "warm").await.status(), 200);
    (nats, server, path)
}

#[tokio::test]
async fn full_pipeline_is_429_then_drains_when_the_broker_answers() {
    let (nats, server, path) = behind_private_nats(
        "limits = { max_batch = 4, pipeline_depth = 4 }\n[pipeline]\nack_timeout = \"60s\"",
        "jobs",
    )
    .await;

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
            "{\"specversion\":\"1.0\",\"id\":\"b-1\",\"source\":\"/s\",\"type\":\"t\",\"data\":1}\n",
        )
        .await;
    assert_problem(batch, 429).await;
    // "At once": the refusal did not wait for the broker (whose acks are minutes away).
    assert!(started.elapsed() < Duration::from_secs(30));
    let metrics = server.metrics().await;
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
    // Not `jobs`: metrics are process-wide, and this pipeline's depth gauge would overwrite the
    // one the other test reads.
    let (nats, server, path) =
        behind_private_nats("[pipeline]\nack_timeout = \"300ms\"", "stalled").await;
    nats.freeze();
    let response = server.post(&path, &[], "unanswered").await;
    let problem = assert_problem(response, 504).await;
    assert_eq!(problem["type"], "urn:sidebus:problem:broker-timeout");
    nats.thaw();
}

#[tokio::test]
async fn a_pipeline_full_of_bytes_refuses_by_weight_and_loses_nothing() {
    let (nats, server, path) = behind_private_nats(
        "limits = { max_body = \"4KiB\", max_event = \"4KiB\", pipeline_bytes = \"8KiB\" }\n\
         [pipeline]\nack_timeout = \"60s\"",
        "heavy",
    )
    .await;

    nats.freeze();
    let async_ = [("prefer", "respond-async")];
    for i in 0..2 {
        let r = server.post(&path, &async_, "x".repeat(2500)).await;
        assert_eq!(r.status(), 202, "2.5 KB event {i} fits in 8 KiB");
    }
    let refused = server.post(&path, &async_, "y".repeat(2500)).await;
    let retry_after = refused.headers().get("retry-after").cloned();
    let problem = assert_problem(refused, 429).await;
    assert_eq!(retry_after.unwrap(), "1");
    assert_eq!(problem["type"], "urn:sidebus:problem:pipeline-full");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("limits.pipeline_bytes"), "{detail}");
    let small = server.post(&path, &async_, "small").await;
    assert_eq!(
        small.status(),
        202,
        "a light event still fits beside the two"
    );

    let metrics = server.metrics().await;
    let held = metric_value(&metrics, r#"sidebus_pipeline_bytes{broker="heavy"}"#);
    // Payloads plus sidebus's per-event allowance, plus the attributes' text.
    let payloads = 2 * (2500 + HELD_PER_EVENT) + 5 + HELD_PER_EVENT;
    assert!(
        (payloads as f64..=8192.0).contains(&held),
        "bytes held: {held}"
    );
    assert!(
        metrics.contains("sidebus_pipeline_depth{broker=\"heavy\"} 3"),
        "{metrics}"
    );

    nats.thaw();
    server
        .state
        .broker("heavy")
        .unwrap()
        .pipeline
        .settled()
        .await;
    let r = server.post(&path, &[], "z".repeat(2500)).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body["sequence"], 5,
        "warm + 3 held + this one, nothing lost"
    );
}

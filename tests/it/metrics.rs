//! `/metrics` after known traffic shows exactly that traffic.


use std::time::Duration;

use crate::common::receiver::{Receiver, Reply};
use crate::common::{metric_value, TestServer};
use serde_json::json;

#[tokio::test]
async fn figures_match_the_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "state_dir = \"{}\"\n[brokers.metered]\nkind = \"memory\"\n",
        dir.path().display()
    ))
    .await;
    let receiver = Receiver::start().await;
    receiver.script("m-1", vec![Reply::Status(500)]);
    let r = server
        .http
        .put(server.url("/v1/subscriptions/counted"))
        .json(
            &json!({"broker":"metered","topic":"m","endpoint":receiver.url,"start":"earliest",
                      "retry":{"initial_backoff":"10ms","max_backoff":"10ms"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for i in 0..3 {
        let r = server
            .post(
                "/v1/publish/metered/m",
                &[("ce-id", &format!("m-{i}"))],
                "x",
            )
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = server
        .post(
            "/v1/publish/metered/m/batch",
            &[("content-type", "application/x-ndjson")],
            "{\"specversion\":\"1.0\",\"id\":\"m-3\",\"source\":\"/s\",\"type\":\"t\"}\n\
             {\"specversion\":\"1.0\",\"id\":\"m-4\",\"source\":\"/s\",\"type\":\"t\"}\n{bad\n",
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = server
        .post("/v1/publish/metered/bad%20topic", &[], "x")
        .await;
    assert_eq!(r.status(), 400);
    let r = server.post("/v1/publish/nowhere/t", &[], "x").await;
    assert_eq!(r.status(), 404);
    receiver
        .wait_until(Duration::from_secs(30), |r| {
            r.iter().filter(|r| r.answered == 200).count() == 5
        })
        .await;
    // The status read also refreshes the lag gauge.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s: serde_json::Value = server
            .http
            .get(server.url("/v1/subscriptions/counted"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["status"]["delivered"] == 5 {
            assert_eq!(s["status"]["lag"], 0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = server.metrics().await;
    let m = |series: &str| metric_value(&metrics, series);
    assert_eq!(
        m(r#"sidebus_publish_requests_total{broker="metered",mode="single",status="200"}"#),
        3.0
    );
    assert_eq!(
        m(r#"sidebus_publish_requests_total{broker="metered",mode="single",status="400"}"#),
        1.0
    );
    assert_eq!(
        m(r#"sidebus_publish_requests_total{broker="metered",mode="batch",status="200"}"#),
        1.0
    );
    assert_eq!(
        m(r#"sidebus_publish_requests_total{broker="unknown",mode="single",status="404"}"#),
        1.0
    );
    assert_eq!(
        m(r#"sidebus_publish_events_total{broker="metered",outcome="ok"}"#),
        5.0
    );
    assert_eq!(
        m(r#"sidebus_publish_duration_seconds_count{broker="metered",mode="single"}"#),
        4.0
    );
    assert_eq!(m(r#"sidebus_batch_events_sum{broker="metered"}"#), 5.0);
    assert_eq!(m(r#"sidebus_pipeline_depth{broker="metered"}"#), 0.0);
    assert_eq!(m(r#"sidebus_pipeline_bytes{broker="metered"}"#), 0.0);
    assert_eq!(m(r#"sidebus_broker_connected{broker="metered"}"#), 1.0);
    assert_eq!(
        m(r#"sidebus_delivery_attempts_total{subscription="counted",outcome="delivered"}"#),
        5.0
    );
    assert_eq!(
        m(r#"sidebus_delivery_attempts_total{subscription="counted",outcome="retried"}"#),
        1.0
    );
    assert_eq!(
        m(r#"sidebus_delivery_duration_seconds_count{subscription="counted"}"#),
        5.0
    );
    assert_eq!(
        m(r#"sidebus_delivery_in_flight{subscription="counted"}"#),
        0.0
    );
    assert_eq!(m(r#"sidebus_consumer_lag{subscription="counted"}"#), 0.0);
}

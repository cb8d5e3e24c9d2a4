//! Publish path against the embedded memory broker: modes, batches, errors, idempotency.

use crate::common::{assert_problem, stored, unique_topic, TestServer};
use serde_json::Value;

const CONFIG: &str = r#"
source = "sidebus://test"
limits = { max_body = "64KiB", max_event = "1KiB", max_batch = 10, pipeline_depth = 100 }
[brokers.default]
kind = "memory"
"#;

#[tokio::test]
async fn binary_mode_stores_body_and_attributes() {
    let server = TestServer::start(CONFIG).await;
    let topic = unique_topic("bin");
    let response = server
        .post(
            &format!("/v1/publish/default/{topic}?key=order-7"),
            &[
                ("content-type", "application/octet-stream"),
                ("ce-id", "evt-1"),
                ("ce-type", "com.example.created"),
                (
                    "ce-traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            ],
            vec![0u8, 159, 146, 150],
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], "evt-1");
    assert_eq!(body["broker"], "default");
    assert_eq!(body["topic"], topic.as_str());
    assert_eq!(body["offset"], 0);
    let stored = stored(&server, "default", &topic, 10).await;
    assert_eq!(stored.len(), 1);
    let event = &stored[0].event;
    assert_eq!(&event.data[..], &[0u8, 159, 146, 150]);
    assert_eq!(event.ty, "com.example.created");
    assert_eq!(event.source, "sidebus://test");
    assert_eq!(event.partition_key(), Some("order-7"));
    assert_eq!(
        event.extension("traceparent"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(
        event.datacontenttype.as_deref(),
        Some("application/octet-stream")
    );
}

#[tokio::test]
async fn structured_mode_and_respond_async() {
    let server = TestServer::start(CONFIG).await;
    let topic = unique_topic("st");
    let response = server
        .post(
            &format!("/v1/publish/default/{topic}"),
            &[
                ("content-type", "application/cloudevents+json"),
                ("prefer", "respond-async"),
            ],
            r#"{"specversion":"1.0","id":"s-1","source":"/orders","type":"t","partitionkey":"k","data":{"total":42}}"#,
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], "s-1");
    assert!(
        body.get("offset").is_none(),
        "202 carries no position: {body}"
    );
    server.state.drain().await;
    let stored = stored(&server, "default", &topic, 10).await;
    assert_eq!(stored.len(), 1);
    let event = &stored[0].event;
    assert_eq!(&event.data[..], br#"{"total":42}"#);
    assert_eq!(event.datacontenttype.as_deref(), Some("application/json"));
    assert_eq!(event.source, "/orders");
    assert_eq!(event.partition_key(), Some("k"));
}

#[tokio::test]
async fn batch_json_and_ndjson_keep_order_and_fail_bad_entries_alone() {
    let server = TestServer::start(CONFIG).await;
    let topic = unique_topic("batch");
    let path = format!("/v1/publish/default/{topic}/batch");
    let response = server
        .post(
            &path,
            &[("content-type", "application/cloudevents-batch+json")],
            r#"[{"specversion":"1.0","id":"a","source":"/s","type":"t","data":"1"},{"id":"no-specversion","source":"/s","type":"t"},{"specversion":"1.0","id":"c","source":"/s","type":"t","datacontenttype":"text/plain","data":"three"}]"#,
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 1);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        (results[0]["id"].as_str(), results[0]["status"].as_u64()),
        (Some("a"), Some(200))
    );
    assert_eq!(results[1]["status"], 400);
    assert_eq!(results[1]["error"]["status"], 400);
    assert_eq!(
        (results[2]["id"].as_str(), results[2]["offset"].as_u64()),
        (Some("c"), Some(1))
    );

    let ndjson = "{\"specversion\":\"1.0\",\"id\":\"d\",\"source\":\"/s\",\"type\":\"t\",\"data\":4}\n{oops\n{\"specversion\":\"1.0\",\"id\":\"e\",\"source\":\"/s\",\"type\":\"t\",\"data\":5}\n";
    let response = server
        .post(&path, &[("content-type", "application/x-ndjson")], ndjson)
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 1, "{body}");

    let stored: Vec<_> = stored(&server, "default", &topic, 10)
        .await
        .into_iter()
        .map(|s| {
            (
                s.event.id,
                String::from_utf8(s.event.data.to_vec()).unwrap(),
            )
        })
        .collect();
    let expected = [("a", "\"1\""), ("c", "three"), ("d", "4"), ("e", "5")];
    assert_eq!(
        stored,
        expected
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .to_vec()
    );
}

#[tokio::test]
async fn structured_event_without_type_is_400_naming_it_and_produces_nothing() {
    let server = TestServer::start(CONFIG).await;
    let topic = unique_topic("st-required");
    let response = server
        .post(
            &format!("/v1/publish/default/{topic}"),
            &[("content-type", "application/cloudevents+json")],
            r#"{"specversion":"1.0","id":"no-type","source":"/orders","data":{"total":42}}"#,
        )
        .await;
    let problem = assert_problem(response, 400).await;
    assert_eq!(problem["type"], "urn:sidebus:problem:bad-request");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("`type`"), "{detail}");
    server.state.drain().await;
    assert!(stored(&server, "default", &topic, 10).await.is_empty());
}

#[tokio::test]
async fn batch_entry_without_id_fails_alone_and_the_others_are_produced() {
    let server = TestServer::start(CONFIG).await;
    let topic = unique_topic("batch-required");
    let response = server
        .post(
            &format!("/v1/publish/default/{topic}/batch"),
            &[("content-type", "application/cloudevents-batch+json")],
            r#"[{"specversion":"1.0","id":"r-1","source":"/s","type":"t","data":1},{"specversion":"1.0","source":"/s","type":"t","data":2},{"specversion":"1.0","id":"r-3","source":"/s","type":"t","data":3}]"#,
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 1, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(
        (results[0]["id"].as_str(), results[0]["status"].as_u64()),
        (Some("r-1"), Some(200))
    );
    assert_eq!(results[1]["status"], 400, "{body}");
    assert_eq!(results[1]["error"]["status"], 400, "{body}");
    let detail = results[1]["error"]["detail"].as_str().unwrap();
    assert!(detail.contains("`id`"), "{detail}");
    assert_eq!(
        (results[2]["id"].as_str(), results[2]["status"].as_u64()),
        (Some("r-3"), Some(200))
    );
    let stored: Vec<String> = stored(&server, "default", &topic, 10)
        .await
        .into_iter()
        .map(|s| s.event.id)
        .collect();
    assert_eq!(stored, ["r-1", "r-3"]);
}

#[tokio::test]
async fn a_request_without_trace_context_starts_one_trace_for_its_events() {
    let server = TestServer::start(CONFIG).await;
    let topic = unique_topic("trace");
    let path = format!("/v1/publish/default/{topic}/batch");
    let batch = r#"[{"specversion":"1.0","id":"t-1","source":"/s","type":"t","data":1},{"specversion":"1.0","id":"t-2","source":"/s","type":"t","data":2},{"specversion":"1.0","id":"t-3","source":"/s","type":"t","data":3,"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}]"#;
    for _ in 0..2 {
        let response = server
            .post(
                &path,
                &[("content-type", "application/cloudevents-batch+json")],
                batch,
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let traces: Vec<String> = stored(&server, "default", &topic, 10)
        .await
        .into_iter()
        .map(|s| s.event.extension("traceparent").unwrap().to_string())
        .collect();
    assert_eq!(traces.len(), 6);
    assert!(
        sidebus::event::trace::is_valid(&traces[0]),
        "a new trace: {}",
        traces[0]
    );
    assert_eq!(
        traces[0], traces[1],
        "events of one request share its trace"
    );
    assert_eq!(
        traces[2], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "an event's own trace context stays"
    );
    assert_eq!(traces[3], traces[4]);
    assert_ne!(traces[0], traces[3], "each request starts its own trace");
}

#[tokio::test]
async fn bad_input_gets_its_status_and_the_server_keeps_serving() {
    let server = TestServer::start(CONFIG).await;
    type Case = (String, Vec<(&'static str, &'static str)>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("/v1/publish/nope/t".into(), vec![], b"x".to_vec(), 404),
        (
            "/v1/publish/default/bad%20topic".into(),
            vec![],
            b"x".to_vec(),
            400,
        ),
        (
            "/v1/publish/default/t".into(),
            vec![("ce-specversion", "0.3")],
            b"x".to_vec(),
            400,
        ),
        (
            "/v1/publish/default/t".into(),
            vec![("ce-time", "noon")],
            b"x".to_vec(),
            400,
        ),
        (
            "/v1/publish/default/t".into(),
            vec![("content-type", "application/cloudevents+json")],
            b"{not json".to_vec(),
            400,
        ),
        (
            "/v1/publish/default/t".into(),
            vec![],
            vec![b'x'; 2048],
            413,
        ),
        (
            "/v1/publish/default/t".into(),
            vec![],
            vec![b'x'; 70_000],
            413,
        ),
        (
            "/v1/publish/default/t".into(),
            vec![("content-type", "application/cloudevents-batch+json")],
            b"[]".to_vec(),
            415,
        ),
        (
            "/v1/publish/default/t/batch".into(),
            vec![("content-type", "text/plain")],
            b"x".to_vec(),
            415,
        ),
        (
            "/v1/publish/default/t/batch".into(),
            vec![("content-type", "application/cloudevents-batch+json")],
            b"[]".to_vec(),
            400,
        ),
        (
            "/v1/publish/default/t/batch".into(),
            vec![("content-type", "application/cloudevents-batch+json")],
            b"{\"a\":1}".to_vec(),
            400,
        ),
        (
            "/v1/publish/default/t/batch".into(),
            vec![("content-type", "application/x-ndjson")],
            "{\"specversion\":\"1.0\",\"id\":\"x\",\"source\":\"/s\",\"type\":\"t\"}\n"
                .repeat(11)
                .into_bytes(),
            413,
        ),
        ("/v1/nothing-here".into(), vec![], vec![], 404),
    ];
    for (path, headers, body, status) in cases {
        let response = server.post(&path, &headers, body).await;
        let problem = assert_problem(response, status).await;
        println!("{path} -> {problem}");
    }
    let response = server
        .http
        .get(server.url("/v1/publish/default/t"))
        .send()
        .await
        .unwrap();
    assert_problem(response, 405).await;
    let response = server
        .post("/v1/publish/default/still-ok", &[], "fine")
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn idempotency_key_replays_the_first_result() {
    let server = TestServer::start(CONFIG).await;
    let topic = unique_topic("idem");
    let path = format!("/v1/publish/default/{topic}");
    let headers = [
        ("idempotency-key", "order-42"),
        ("content-type", "text/plain"),
    ];
    let first = server.post(&path, &headers, "pay").await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = server.post(&path, &headers, "pay").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again);
    assert_eq!(
        stored(&server, "default", &topic, 10).await.len(),
        1,
        "the retry produced nothing new"
    );
    let different = server.post(&path, &headers, "other body").await;
    assert_problem(different, 422).await;
    let other_key = server
        .post(&path, &[("idempotency-key", "order-43")], "pay")
        .await;
    assert_eq!(other_key.status(), 200);
    assert_eq!(stored(&server, "default", &topic, 10).await.len(), 2);
}

#[tokio::test]
async fn admin_routes_report_brokers_and_metrics() {
    let server = TestServer::start(CONFIG).await;
    let brokers: Value = server
        .http
        .get(server.url("/v1/brokers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        brokers,
        serde_json::json!({"brokers":[{"name":"default","kind":"memory","connected":true,"last_error":null}]})
    );
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    server
        .post("/v1/publish/default/metrics-topic", &[], "x")
        .await;
    let metrics = server.metrics().await;
    for name in [
        "sidebus_publish_requests_total{broker=\"default\",mode=\"single\",status=\"200\"}",
        "sidebus_publish_events_total{broker=\"default\",outcome=\"ok\"}",
        "sidebus_publish_duration_seconds_bucket",
        "sidebus_batch_events_bucket",
        "sidebus_pipeline_depth{broker=\"default\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
}

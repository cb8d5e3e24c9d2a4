//! API token, topic allow-lists and trace-context propagation.


use std::time::Duration;

use crate::common::receiver::Receiver;
use crate::common::{assert_problem, TestServer};
use serde_json::json;

const TOKEN: &str = "s3cret-token-for-tests";

fn config(dir: &std::path::Path) -> String {
    format!(
        r#"
state_dir = "{}"
[access]
api_token = "{TOKEN}"
publish = ["orders.*", "audit"]
subscribe = ["orders.*"]
[brokers.mem]
kind = "memory"
"#,
        dir.display()
    )
}

#[tokio::test]
async fn token_is_required_on_v1_routes_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path())).await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} stays open");
    }
    let r = server.post("/v1/publish/mem/orders.eu", &[], "x").await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"sidebus\"");
    assert_problem(r, 401).await;
    let r = server
        .post(
            "/v1/publish/mem/orders.eu",
            &[("authorization", "Bearer wrong-token-of-same-len")],
            "x",
        )
        .await;
    assert_problem(r, 401).await;
    let r = server
        .http
        .get(server.url("/v1/brokers"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401).await;
    let bearer = format!("Bearer {TOKEN}");
    let r = server
        .post(
            "/v1/publish/mem/orders.eu",
            &[("authorization", &bearer)],
            "x",
        )
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn allow_lists_give_403_per_direction() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path())).await;
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    assert_eq!(
        server
            .post("/v1/publish/mem/audit", &auth, "x")
            .await
            .status(),
        200
    );
    let r = server.post("/v1/publish/mem/payments", &auth, "x").await;
    let problem = assert_problem(r, 403).await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("access.publish"));
    let r = server
        .http
        .put(server.url("/v1/subscriptions/audit-reader"))
        .header("authorization", &bearer)
        .json(&json!({"broker":"mem","topic":"audit","endpoint":"http://127.0.0.1:9/x"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 403).await;
}

#[tokio::test]
async fn traceparent_on_publish_arrives_continued_at_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path())).await;
    let receiver = Receiver::start().await;
    let bearer = format!("Bearer {TOKEN}");
    let r = server
        .http
        .put(server.url("/v1/subscriptions/traced"))
        .header("authorization", &bearer)
        .json(&json!({"broker":"mem","topic":"orders.traced","endpoint":receiver.url,"start":"earliest"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = server
        .post(
            "/v1/publish/mem/orders.traced",
            &[
                ("authorization", &bearer),
                ("traceparent", parent),
                ("tracestate", "vendor=1"),
                ("ce-id", "t-1"),
            ],
            "x",
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = server
        .post(
            "/v1/publish/mem/orders.traced",
            &[("authorization", &bearer), ("ce-id", "t-2")],
            "y",
        )
        .await;
    assert_eq!(r.status(), 200);
    let got = receiver
        .wait_until(Duration::from_secs(30), |r| r.len() >= 2)
        .await;
    let first = got
        .iter()
        .find(|r| r.header("ce-id").as_deref() == Some("t-1"))
        .unwrap();
    let arrived = first.header("traceparent").unwrap();
    assert!(
        arrived.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "{arrived}"
    );
    assert!(
        !arrived.contains("b7ad6b7169203331"),
        "a new parent id: {arrived}"
    );
    assert_eq!(first.header("tracestate").as_deref(), Some("vendor=1"));
    assert_eq!(first.header("ce-traceparent").as_deref(), Some(parent));
    let second = got
        .iter()
        .find(|r| r.header("ce-id").as_deref() == Some("t-2"))
        .unwrap();
    let fresh = second.header("ce-traceparent").unwrap();
    assert!(
        sidebus::trace::is_valid(&fresh),
        "a new trace for a request without one: {fresh}"
    );
}

/// Hostile paths and query strings: a path segment whose percent-encoding is not UTF-8, and a
/// query parameter given twice, get a problem+json 400 like every other error (axum's own
/// extractors answered these with text/plain).
#[tokio::test]
async fn undecodable_paths_and_queries_are_problem_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(dir.path())).await;
    let bearer = format!("Bearer {TOKEN}");
    let requests = [
        (reqwest::Method::POST, "/v1/publish/mem/%FF"),
        (reqwest::Method::POST, "/v1/publish/%FF/orders.eu/batch"),
        (
            reqwest::Method::POST,
            "/v1/publish/mem/orders.eu?key=a&key=b",
        ),
        (
            reqwest::Method::POST,
            "/v1/publish/mem/orders.eu/batch?key=a&key=b",
        ),
        (reqwest::Method::GET, "/v1/subscribe/mem/or%C3ders.eu"),
        (reqwest::Method::GET, "/v1/subscriptions/%FF"),
        (reqwest::Method::PUT, "/v1/subscriptions/%FF"),
        (reqwest::Method::DELETE, "/v1/subscriptions/%FF"),
        (reqwest::Method::POST, "/v1/subscriptions/%FF/pause"),
        (reqwest::Method::POST, "/v1/subscriptions/%FF/resume"),
    ];
    for (method, path) in requests {
        let response = server
            .http
            .request(method.clone(), server.url(path))
            .header("authorization", &bearer)
            .header("accept", "text/event-stream")
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let body = assert_problem(response, 400).await;
        assert_eq!(
            body["type"], "urn:sidebus:problem:bad-request",
            "{method} {path}"
        );
    }
}

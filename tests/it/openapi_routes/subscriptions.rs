//! The subscription routes of `openapi/openapi.yaml`, walked through against a real sidebus
//! (part of the every-route check in `tests/it/openapi_routes.rs`, its only user).

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::openapi::{
    config, patched, Spec, ENDPOINT, SECRET, SUBSCRIPTION, SUBSCRIPTIONS, SUBSCRIPTION_PAUSE,
    SUBSCRIPTION_RESUME,
};
use crate::common::{unique_topic, TestServer};

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

/// Sends `method path` with `headers` and `body`.
async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = server.http.request(method, server.url(path)).body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.expect("request reaches sidebus")
}

/// The names in a `GET /v1/subscriptions` answer.
fn names(list: &Value) -> Vec<&str> {
    list["subscriptions"]
        .as_array()
        .expect("subscriptions is an array")
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

/// Every subscription route, answered as documented: create, replace, refuse, read, list,
/// pause, resume, delete, a delivery that fails, and a state directory that cannot be written.
pub async fn subscriptions(spec: &Spec, server: &TestServer, state_dir: &Path) {
    let sub = "/v1/subscriptions/orders-hook";
    let missing = "/v1/subscriptions/missing";
    let topic = unique_topic("openapi-sub");
    let get = |path: &str| {
        let request = server.http.get(server.url(path));
        async move { request.send().await.expect("request reaches sidebus") }
    };

    let list = spec
        .check("get", SUBSCRIPTIONS, get(SUBSCRIPTIONS).await)
        .await
        .unwrap();
    assert_eq!(names(&list), ["from-config"]);
    assert_eq!(list["subscriptions"][0]["origin"], "config");

    // PUT: create with defaults, the same again, replace with every field.
    let minimal = json!({"broker": "default", "topic": topic, "endpoint": ENDPOINT});
    let response = send(server, Method::PUT, sub, JSON, minimal.to_string()).await;
    assert_eq!(response.status(), 201);
    let mut created = spec.check("put", SUBSCRIPTION, response).await.unwrap();
    assert_eq!(
        (&created["name"], &created["origin"]),
        (&json!("orders-hook"), &json!("runtime"))
    );
    let defaults = json!({"start": "latest", "ordering": "key", "max_in_flight": 64,
        "timeout": "10s", "content_mode": "binary", "max_batch": 100,
        "retry": {"max_attempts": 8, "initial_backoff": "200ms", "max_backoff": "30s"}});
    for (field, value) in defaults.as_object().unwrap() {
        assert_eq!(&created[field], value, "default of {field}: {created}");
    }
    for unset in ["group", "dead_letter", "secret", "rate_limit"] {
        assert!(created.get(unset).is_none(), "{unset} is absent: {created}");
    }
    let response = send(server, Method::PUT, sub, JSON, minimal.to_string()).await;
    assert_eq!(response.status(), 200, "the same spec again is no change");
    let mut again = spec.check("put", SUBSCRIPTION, response).await.unwrap();
    created.as_object_mut().unwrap().remove("status");
    again.as_object_mut().unwrap().remove("status");
    assert_eq!(again, created);
    let full = json!({"name": "orders-hook", "broker": "default", "topic": topic,
        "endpoint": ENDPOINT, "group": "billing", "start": "earliest", "ordering": "none",
        "max_in_flight": 4, "timeout": "2s",
        "retry": {"max_attempts": 3, "initial_backoff": "50ms", "max_backoff": "1s"},
        "dead_letter": format!("{topic}.dlq"), "content_mode": "batch", "max_batch": 10,
        "secret": SECRET, "rate_limit": 100});
    let response = send(server, Method::PUT, sub, JSON, full.to_string()).await;
    assert_eq!(response.status(), 200, "replaced");
    let replaced = spec.check("put", SUBSCRIPTION, response).await.unwrap();
    for (field, value) in full.as_object().unwrap() {
        let shown = if field == "secret" {
            &json!("whsec_***")
        } else {
            value
        };
        assert_eq!(&replaced[field], shown, "{field}: {replaced}");
    }
    let saved = std::fs::read_to_string(state_dir.join("subscriptions.json"))
        .expect("runtime subscriptions are saved in state_dir");
    assert!(
        saved.contains("orders-hook") && !saved.contains("from-config"),
        "{saved}"
    );

    // PUT refused: 400 naming the field, 415, 409; nothing changes.
    let bad = |patch: Value| patched(&minimal, patch).to_string();
    let cases: Vec<(&str, String, &str)> = vec![
        (sub, bad(json!({"endpont": ENDPOINT})), "endpont"),
        (
            sub,
            json!({"broker": "default", "topic": topic}).to_string(),
            "endpoint",
        ),
        (sub, bad(json!({"broker": "nope"})), "broker"),
        (
            sub,
            bad(json!({"endpoint": "ftp://127.0.0.1/x"})),
            "endpoint",
        ),
        (sub, bad(json!({"max_in_flight": 0})), "max_in_flight"),
        (sub, bad(json!({"max_in_flight": "many"})), "max_in_flight"),
        (sub, bad(json!({"timeout": "soon"})), "timeout"),
        (
            sub,
            bad(json!({"retry": {"max_attempts": 0}})),
            "retry.max_attempts",
        ),
        (sub, bad(json!({"ordering": "random"})), "ordering"),
        (sub, bad(json!({"dead_letter": topic})), "dead_letter"),
        (sub, bad(json!({"secret": "plain"})), "secret"),
        (sub, bad(json!({"rate_limit": 0})), "rate_limit"),
        (sub, bad(json!({"name": "other"})), "name"),
        ("/v1/subscriptions/bad%20name", minimal.to_string(), "name"),
        (sub, "{".into(), ""),
        (sub, "[]".into(), ""),
    ];
    for (path, body, field) in cases {
        let response = send(server, Method::PUT, path, JSON, body.clone()).await;
        assert_eq!(response.status(), 400, "PUT {path} {body}");
        let problem = spec.check("put", SUBSCRIPTION, response).await.unwrap();
        assert_eq!(problem["type"], "urn:sidebus:problem:bad-request");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{body}: `{detail}` names {field}");
    }
    for headers in [&[("content-type", "text/plain")][..], &[]] {
        let response = send(server, Method::PUT, sub, headers, minimal.to_string()).await;
        assert_eq!(response.status(), 415, "{headers:?}");
        spec.check("put", SUBSCRIPTION, response).await;
    }
    let from_config = "/v1/subscriptions/from-config";
    let response = send(server, Method::PUT, from_config, JSON, minimal.to_string()).await;
    assert_eq!(response.status(), 409);
    spec.check("put", SUBSCRIPTION, response).await;

    // GET one, GET all.
    let shown = spec
        .check("get", SUBSCRIPTION, get(sub).await)
        .await
        .unwrap();
    assert_eq!(
        shown["max_in_flight"], 4,
        "refused PUTs changed nothing: {shown}"
    );
    let response = get(missing).await;
    assert_eq!(response.status(), 404);
    spec.check("get", SUBSCRIPTION, response).await;
    let response = get("/v1/subscriptions/bad%20name").await;
    assert_eq!(response.status(), 404);
    spec.check("get", SUBSCRIPTION, response).await;
    let list = spec
        .check("get", SUBSCRIPTIONS, get(SUBSCRIPTIONS).await)
        .await
        .unwrap();
    assert_eq!(names(&list), ["from-config", "orders-hook"]);

    // Pause and resume, runtime and config subscriptions alike.
    for name in ["orders-hook", "from-config"] {
        let pause = format!("/v1/subscriptions/{name}/pause");
        let resume = format!("/v1/subscriptions/{name}/resume");
        for _ in 0..2 {
            let response = send(server, Method::POST, &pause, &[], "").await;
            assert_eq!(response.status(), 200);
            let body = spec
                .check("post", SUBSCRIPTION_PAUSE, response)
                .await
                .unwrap();
            assert_eq!(body["status"]["state"], "paused", "{body}");
        }
        let shown = get(&format!("/v1/subscriptions/{name}")).await;
        let shown = spec.check("get", SUBSCRIPTION, shown).await.unwrap();
        assert_eq!(shown["status"]["state"], "paused");
        let response = send(server, Method::POST, &resume, &[], "").await;
        assert_eq!(response.status(), 200);
        let body = spec
            .check("post", SUBSCRIPTION_RESUME, response)
            .await
            .unwrap();
        assert_ne!(body["status"]["state"], "paused", "{body}");
    }
    for (path, route) in [
        (format!("{missing}/pause"), SUBSCRIPTION_PAUSE),
        (format!("{missing}/resume"), SUBSCRIPTION_RESUME),
    ] {
        let response = send(server, Method::POST, &path, &[], "").await;
        assert_eq!(response.status(), 404);
        spec.check("post", route, response).await;
    }

    // DELETE.
    let response = send(server, Method::DELETE, from_config, &[], "").await;
    assert_eq!(response.status(), 409);
    spec.check("delete", SUBSCRIPTION, response).await;
    let response = send(server, Method::DELETE, sub, &[], "").await;
    assert_eq!(response.status(), 204);
    spec.check("delete", SUBSCRIPTION, response).await;
    for (method, response) in [
        ("delete", send(server, Method::DELETE, sub, &[], "").await),
        (
            "delete",
            send(server, Method::DELETE, missing, &[], "").await,
        ),
        ("get", get(sub).await),
    ] {
        assert_eq!(response.status(), 404, "{method} after delete");
        spec.check(method, SUBSCRIPTION, response).await;
    }
    let list = spec
        .check("get", SUBSCRIPTIONS, get(SUBSCRIPTIONS).await)
        .await
        .unwrap();
    assert_eq!(names(&list), ["from-config"]);

    // A delivery that fails: the status shows the retries, the failure and the last error.
    let failing = "/v1/subscriptions/failing-hook";
    let failing_topic = unique_topic("openapi-failing");
    let spec_body = json!({"broker": "default", "topic": failing_topic, "endpoint": ENDPOINT,
        "start": "earliest", "timeout": "1s",
        "retry": {"max_attempts": 2, "initial_backoff": "10ms", "max_backoff": "20ms"}});
    let response = send(server, Method::PUT, failing, JSON, spec_body.to_string()).await;
    assert_eq!(response.status(), 201);
    spec.check("put", SUBSCRIPTION, response).await;
    let text = [("content-type", "text/plain")];
    let published = server
        .post(&format!("/v1/publish/default/{failing_topic}"), &text, "x")
        .await;
    assert_eq!(published.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let shown = spec
            .check("get", SUBSCRIPTION, get(failing).await)
            .await
            .unwrap();
        let status = &shown["status"];
        if status["failed"] == 1 {
            assert!(status["retried"].as_u64() >= Some(1), "{shown}");
            assert!(status["last_error"].is_string(), "{shown}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never failed: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = send(server, Method::DELETE, failing, &[], "").await;
    assert_eq!(response.status(), 204);

    // A state directory that cannot be written: 503 with Retry-After.
    let blocker = state_dir.join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let unwritable = TestServer::start(&config(&blocker.join("state"))).await;
    let stuck = "/v1/subscriptions/unsaved";
    let response = send(&unwritable, Method::PUT, stuck, JSON, minimal.to_string()).await;
    assert_eq!(response.status(), 503);
    spec.check("put", SUBSCRIPTION, response).await;
    let response = send(
        &unwritable,
        Method::POST,
        &format!("{stuck}/pause"),
        &[],
        "",
    )
    .await;
    assert_eq!(response.status(), 503);
    spec.check("post", SUBSCRIPTION_PAUSE, response).await;
    let response = send(
        &unwritable,
        Method::POST,
        &format!("{stuck}/resume"),
        &[],
        "",
    )
    .await;
    assert_eq!(response.status(), 503);
    spec.check("post", SUBSCRIPTION_RESUME, response).await;
    let response = send(&unwritable, Method::DELETE, stuck, &[], "").await;
    assert_eq!(response.status(), 503);
    spec.check("delete", SUBSCRIPTION, response).await;
}

//! Holds the server to `openapi/openapi.yaml`: every answer a real request gets, on every route,
//! is a documented status whose JSON body has the shape the spec's schema gives it, and paths and
//! methods not served are problem+json.

#[path = "openapi_routes/subscriptions.rs"]
mod subscriptions;

use std::path::Path;

use crate::common::openapi::{
    config, routes, Spec, BROKERS, BROKER_TOPICS, CONFIG, FILTERS_EVALUATE, HEALTHZ, METRICS,
    PUBLISH, PUBLISH_BATCH, READYZ, SUBSCRIBE_SSE,
};
use crate::common::sse::cursor_at;
use crate::common::TestServer;
use serde_json::Value;
use sidebus::backend::nats;
use subscriptions::subscriptions;

/// An AMQP broker on a port nothing listens on: sidebus starts, reports it down, and answers
/// publishes to it with 503.
fn down_config(state_dir: &Path) -> String {
    format!(
        r#"
state_dir = "{}"
[brokers.down]
kind = "amqp"
url = "amqp://guest:guest@127.0.0.1:1/%2f"
"#,
        state_dir.display()
    )
}

/// A request expected to fail: path, headers, body and the status it gets.
type Case<'a> = (String, Vec<(&'a str, &'a str)>, Vec<u8>, u16);

#[tokio::test]
async fn every_route_answers_as_documented() {
    let spec = Spec::load();
    let state = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(state.path())).await;
    let topic = crate::common::unique_topic("openapi");
    let one = format!("/v1/publish/default/{topic}");
    let batch = format!("{one}/batch");
    let text = [("content-type", "text/plain")];
    let structured = [("content-type", "application/cloudevents+json")];
    let batch_json = [("content-type", "application/cloudevents-batch+json")];
    let ndjson = [("content-type", "application/x-ndjson")];

    // POST /v1/publish/{broker}/{topic}
    let body = spec
        .check("post", PUBLISH, server.post(&one, &text, "hello").await)
        .await
        .unwrap();
    assert_eq!(
        (body["broker"].as_str(), body["offset"].as_i64()),
        (Some("default"), Some(0))
    );
    let async_headers = [("content-type", "text/plain"), ("prefer", "respond-async")];
    let response = server.post(&one, &async_headers, "later").await;
    assert_eq!(response.status(), 202);
    spec.check("post", PUBLISH, response).await;
    let event =
        r#"{"specversion":"1.0","id":"s1","source":"/s","type":"t","ext1":5,"data":{"a":1}}"#;
    let body = spec
        .check("post", PUBLISH, server.post(&one, &structured, event).await)
        .await
        .unwrap();
    assert_eq!(body["id"], "s1");
    let keyed = [("content-type", "text/plain"), ("idempotency-key", "k-1")];
    let first = spec
        .check("post", PUBLISH, server.post(&one, &keyed, "pay").await)
        .await;
    let replay = server.post(&one, &keyed, "pay").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let again = spec.check("post", PUBLISH, replay).await;
    assert_eq!(first, again);
    let errors: Vec<Case> = vec![
        (one.clone(), keyed.to_vec(), b"other".to_vec(), 422),
        (
            one.clone(),
            vec![("idempotency-key", "")],
            b"x".to_vec(),
            400,
        ),
        ("/v1/publish/nope/t".into(), vec![], b"x".to_vec(), 404),
        (
            "/v1/publish/default/bad%20topic".into(),
            vec![],
            b"x".to_vec(),
            400,
        ),
        (
            one.clone(),
            vec![("ce-specversion", "0.3")],
            b"x".to_vec(),
            400,
        ),
        (one.clone(), structured.to_vec(), b"{}".to_vec(), 400),
        (one.clone(), text.to_vec(), vec![b'x'; 2048], 413),
        (one.clone(), text.to_vec(), vec![b'x'; 70_000], 413),
        (one.clone(), batch_json.to_vec(), b"[]".to_vec(), 415),
    ];
    for (path, headers, body, status) in errors {
        let response = server.post(&path, &headers, body).await;
        assert_eq!(response.status(), status, "POST {path} {headers:?}");
        let problem = spec.check("post", PUBLISH, response).await.unwrap();
        assert_eq!(problem["status"], status);
    }

    // POST /v1/publish/{broker}/{topic}/batch
    let entries = r#"[{"specversion":"1.0","id":"a","source":"/s","type":"t","data":1},{"id":"broken","source":"/s","type":"t"},{"specversion":"1.0","id":"c","source":"/s","type":"t","data_base64":"AAEC"}]"#;
    let body = spec
        .check(
            "post",
            PUBLISH_BATCH,
            server.post(&batch, &batch_json, entries).await,
        )
        .await
        .unwrap();
    assert_eq!(body["failed"], 1);
    assert_eq!(body["results"][1]["status"], 400);
    let lines = "{\"specversion\":\"1.0\",\"id\":\"n1\",\"source\":\"/s\",\"type\":\"t\",\"data\":1}\n{oops\n";
    let body = spec
        .check(
            "post",
            PUBLISH_BATCH,
            server.post(&batch, &ndjson, lines).await,
        )
        .await
        .unwrap();
    assert_eq!(body["results"][0]["id"], "n1");
    let big = format!(
        "{{\"specversion\":\"1.0\",\"id\":\"big\",\"source\":\"/s\",\"type\":\"t\",\"data\":\"{}\"}}\n",
        "x".repeat(2000)
    );
    let body = spec
        .check(
            "post",
            PUBLISH_BATCH,
            server.post(&batch, &ndjson, big).await,
        )
        .await
        .unwrap();
    assert_eq!(body["results"][0]["status"], 413);
    let async_batch = [
        ("content-type", "application/x-ndjson"),
        ("prefer", "respond-async"),
    ];
    let response = server.post(&batch, &async_batch, lines).await;
    assert_eq!(response.status(), 202);
    let body = spec.check("post", PUBLISH_BATCH, response).await.unwrap();
    assert_eq!(body["results"][0]["status"], 202);
    let keyed = [
        ("content-type", "application/x-ndjson"),
        ("idempotency-key", "b-1"),
    ];
    let line =
        "{\"specversion\":\"1.0\",\"id\":\"l1\",\"source\":\"/s\",\"type\":\"t\",\"data\":1}\n";
    let first = spec
        .check(
            "post",
            PUBLISH_BATCH,
            server.post(&batch, &keyed, line).await,
        )
        .await;
    let replay = server.post(&batch, &keyed, line).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(first, spec.check("post", PUBLISH_BATCH, replay).await);
    let errors: Vec<Case> = vec![
        (
            batch.clone(),
            keyed.to_vec(),
            b"{\"specversion\":\"1.0\",\"id\":\"l2\",\"source\":\"/s\",\"type\":\"t\"}".to_vec(),
            422,
        ),
        (batch.clone(), batch_json.to_vec(), b"[]".to_vec(), 400),
        (
            batch.clone(),
            batch_json.to_vec(),
            b"{\"a\":1}".to_vec(),
            400,
        ),
        (batch.clone(), text.to_vec(), b"x".to_vec(), 415),
        (
            "/v1/publish/nope/t/batch".into(),
            ndjson.to_vec(),
            line.into(),
            404,
        ),
        (
            batch.clone(),
            ndjson.to_vec(),
            line.repeat(11).into_bytes(),
            413,
        ),
    ];
    for (path, headers, body, status) in errors {
        let response = server.post(&path, &headers, body).await;
        assert_eq!(response.status(), status, "POST {path} {headers:?}");
        spec.check("post", PUBLISH_BATCH, response).await;
    }

    // Admin routes.
    let get = |path: &'static str| {
        let request = server.http.get(server.url(path));
        async move { request.send().await.unwrap() }
    };
    let body = spec
        .check("get", HEALTHZ, get(HEALTHZ).await)
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    let body = spec.check("get", READYZ, get(READYZ).await).await.unwrap();
    assert_eq!(body["brokers"][0]["name"], "default");
    let metrics = get(METRICS).await;
    assert_eq!(metrics.status(), 200);
    spec.check("get", METRICS, metrics).await;
    let body = spec
        .check("get", BROKERS, get(BROKERS).await)
        .await
        .unwrap();
    assert_eq!(body["brokers"][0]["kind"], "memory");
    let body = spec.check("get", CONFIG, get(CONFIG).await).await.unwrap();
    assert!(
        body["hash"].as_str().unwrap().starts_with("sha256:"),
        "{body}"
    );
    assert_eq!(body["last_error"], serde_json::Value::Null);

    // A broker that is down: 503 with Retry-After from publish and readiness.
    let down = TestServer::start_unready(&down_config(state.path())).await;
    let response = down.post("/v1/publish/down/t", &text, "x").await;
    assert_eq!(response.status(), 503);
    spec.check("post", PUBLISH, response).await;
    let response = down
        .post(
            "/v1/publish/down/t/batch",
            &ndjson,
            format!("{line}{{oops\n"),
        )
        .await;
    let body = spec.check("post", PUBLISH_BATCH, response).await.unwrap();
    assert_eq!(body["results"][0]["status"], 503, "{body}");
    assert_eq!(body["failed"], 2);
    let response = down.http.get(down.url(READYZ)).send().await.unwrap();
    assert_eq!(response.status(), 503);
    spec.check("get", READYZ, response).await;
    let response = down.http.get(down.url(BROKERS)).send().await.unwrap();
    let body = spec.check("get", BROKERS, response).await.unwrap();
    assert_eq!(body["brokers"][0]["connected"], false);

    // Discovery: the memory broker's topics, an unknown broker, AMQP's refusal.
    let topics = |server: &TestServer, path: String| {
        let request = server.http.get(server.url(&path));
        async move { request.send().await.unwrap() }
    };
    let path = format!("/v1/brokers/default/topics?prefix={topic}");
    let body = spec
        .check("get", BROKER_TOPICS, topics(&server, path).await)
        .await
        .unwrap();
    assert_eq!(body["topics"][0]["name"], topic.as_str(), "{body}");
    let missing = topics(&server, "/v1/brokers/nope/topics".into()).await;
    assert_eq!(missing.status(), 404);
    spec.check("get", BROKER_TOPICS, missing).await;
    let refused = topics(&down, "/v1/brokers/down/topics".into()).await;
    assert_eq!(refused.status(), 501);
    spec.check("get", BROKER_TOPICS, refused).await;

    // Filters: an evaluation, one that does not parse (still 200), a body that is no request.
    let evaluate = |body: serde_json::Value| {
        let request = server.http.post(server.url(FILTERS_EVALUATE)).json(&body);
        async move { request.send().await.unwrap() }
    };
    let event = serde_json::json!({"specversion":"1.0","id":"1","source":"/s","type":"t"});
    for expression in ["type = 't'", "type ="] {
        let answer = evaluate(serde_json::json!({"expression": expression, "event": event})).await;
        assert_eq!(answer.status(), 200);
        spec.check("post", FILTERS_EVALUATE, answer).await;
    }
    let refused = evaluate(serde_json::json!({"event": event})).await;
    assert_eq!(refused.status(), 400);
    spec.check("post", FILTERS_EVALUATE, refused).await;

    subscriptions(&spec, &server, state.path()).await;
    sse(&spec, &server).await;

    let hit = spec.hit.lock().unwrap().clone();
    assert_eq!(hit, routes(), "every route was exercised");
}

#[tokio::test]
async fn paths_and_methods_not_served_are_problem_json() {
    let spec = Spec::load();
    let state = tempfile::tempdir().unwrap();
    let server = TestServer::start(&config(state.path())).await;
    let problem = serde_json::json!({"$ref": "#/components/schemas/Problem"});
    let requests = [
        (reqwest::Method::GET, "/nothing-here", 404, "no-route"),
        (
            reqwest::Method::POST,
            "/v1/publish/default/a/b/c",
            404,
            "no-route",
        ),
        (
            reqwest::Method::GET,
            "/v1/publish/default/t",
            405,
            "method-not-allowed",
        ),
        (
            reqwest::Method::DELETE,
            "/v1/brokers",
            405,
            "method-not-allowed",
        ),
        (
            reqwest::Method::POST,
            "/v1/subscriptions",
            405,
            "method-not-allowed",
        ),
        (
            reqwest::Method::GET,
            "/v1/subscriptions/from-config/pause",
            405,
            "method-not-allowed",
        ),
        (
            reqwest::Method::PUT,
            "/v1/subscriptions/a/b/c",
            404,
            "no-route",
        ),
    ];
    for (method, path, status, slug) in requests {
        let response = server
            .http
            .request(method.clone(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: Value = response.json().await.unwrap();
        let errors = spec.validate(&problem, &body);
        assert!(errors.is_empty(), "{method} {path}: {errors:?}");
        assert_eq!(body["type"], format!("urn:sidebus:problem:{slug}"));
    }
}

/// A request to the SSE route expected to fail: path, headers and the status it gets.
type SseCase = (String, Vec<(&'static str, String)>, u16);

/// `GET /v1/subscribe/{broker}/{topic}`: the refusals through `check`; a stream never ends, so
/// for the 200 only its status, headers and media type are held to the spec.
async fn sse(spec: &Spec, server: &TestServer) {
    let topic = crate::common::unique_topic("openapi-sse");
    let stream = format!("/v1/subscribe/default/{topic}");
    let get = |path: String, headers: Vec<(&'static str, String)>| {
        let mut request = server.http.get(server.url(&path));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let accept = || ("accept", "text/event-stream".to_string());
    let response = get(stream.clone(), vec![accept()]).await.unwrap();
    assert_eq!(response.status(), 200);
    spec.hit
        .lock()
        .unwrap()
        .insert(("get".to_string(), SUBSCRIBE_SSE.to_string()));
    let documented = spec.response_spec("get", SUBSCRIBE_SSE, 200).unwrap();
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        documented["content"].get(content_type).is_some(),
        "{content_type} is not documented"
    );
    for (name, header) in documented["headers"].as_object().unwrap() {
        let schema = &spec.resolve(header)["schema"];
        let value = response.headers()[name.to_ascii_lowercase().as_str()]
            .to_str()
            .unwrap();
        let errors = spec.validate(schema, &Value::from(value));
        assert!(errors.is_empty(), "header {name}: {errors:?}");
    }
    drop(response);
    let cursor = cursor_at(nats::CAPABILITIES, 1, &topic);
    let cases: Vec<SseCase> = vec![
        (stream.clone(), vec![], 406),
        (
            stream.clone(),
            vec![accept(), ("last-event-id", "nope".into())],
            400,
        ),
        (
            stream.clone(),
            vec![accept(), ("last-event-id", cursor)],
            400,
        ),
        (format!("{stream}?from=soon"), vec![accept()], 400),
        (format!("/v1/subscribe/nope/{topic}"), vec![accept()], 404),
    ];
    for (path, headers, status) in cases {
        let response = get(path.clone(), headers).await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        spec.check("get", SUBSCRIBE_SSE, response).await;
    }
}

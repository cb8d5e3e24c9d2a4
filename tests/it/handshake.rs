//! The CloudEvents Webhook handshake (`handshake = true`): sidebus asks the endpoint with
//! `OPTIONS` before the first delivery and delivers only once it agreed; a refused or unreachable
//! endpoint leaves the subscription `failing` and is asked again; a lower allowed rate caps
//! delivery.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::common::{unique_topic, TestServer};

const WAIT: Duration = Duration::from_secs(30);

/// How the endpoint answers `OPTIONS`: 200 with this `WebHook-Allowed-Origin`, and this
/// `WebHook-Allowed-Rate` when given.
#[derive(Clone)]
struct Answer(&'static str, Option<&'static str>);

#[derive(Default)]
struct Seen {
    /// The handshake requests' headers.
    asked: Vec<HeaderMap>,
    /// The deliveries: event id and arrival.
    delivered: Vec<(String, Instant)>,
}

#[derive(Clone)]
struct Endpoint {
    url: String,
    answer: Arc<Mutex<Answer>>,
    seen: Arc<Mutex<Seen>>,
}

async fn handle(State(endpoint): State<Endpoint>, method: Method, headers: HeaderMap) -> Response {
    if method == Method::OPTIONS {
        endpoint.seen.lock().unwrap().asked.push(headers);
        let Answer(origin, rate) = endpoint.answer.lock().unwrap().clone();
        let mut response = StatusCode::OK.into_response();
        let h = response.headers_mut();
        h.insert("webhook-allowed-origin", HeaderValue::from_static(origin));
        if let Some(rate) = rate {
            h.insert("webhook-allowed-rate", HeaderValue::from_static(rate));
        }
        return response;
    }
    let id = headers
        .get("ce-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    endpoint
        .seen
        .lock()
        .unwrap()
        .delivered
        .push((id, Instant::now()));
    StatusCode::NO_CONTENT.into_response()
}

impl Endpoint {
    async fn start(answer: Answer) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint {
            url: format!("http://{}/events", listener.local_addr().unwrap()),
            answer: Arc::new(Mutex::new(answer)),
            seen: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/events", axum::routing::any(handle))
            .with_state(endpoint.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        endpoint
    }

    fn asked(&self) -> Vec<HeaderMap> {
        self.seen.lock().unwrap().asked.clone()
    }

    fn delivered(&self) -> Vec<(String, Instant)> {
        self.seen.lock().unwrap().delivered.clone()
    }

    async fn wait_for_deliveries(&self, n: usize) -> Vec<(String, Instant)> {
        let deadline = Instant::now() + WAIT;
        loop {
            let delivered = self.delivered();
            if delivered.len() >= n {
                return delivered;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} delivered",
                delivered.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "state_dir = \"{}\"\nsource = \"sidebus://checkout\"\n[brokers.mem]\nkind = \"memory\"\n",
        dir.path().display()
    ))
    .await;
    (server, dir)
}

async fn subscribe(server: &TestServer, name: &str, topic: &str, endpoint: &str, extra: Value) {
    let mut spec = json!({"broker":"mem","topic":topic,"endpoint":endpoint,"start":"earliest",
        "handshake":true,"retry":{"initial_backoff":"50ms","max_backoff":"200ms"}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    server.subscribe(name, spec).await;
}

async fn publish(server: &TestServer, topic: &str, id: &str) {
    let r = server
        .post(&format!("/v1/publish/mem/{topic}"), &[("ce-id", id)], "x")
        .await;
    assert_eq!(r.status(), 200);
}

/// Waits until the subscription's status satisfies `done`, and returns it.
async fn status_until(server: &TestServer, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let status = server.get_json(&format!("/v1/subscriptions/{name}")).await["status"].clone();
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{name}: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_granted_handshake_comes_before_the_first_delivery() {
    let (server, _dir) = server().await;
    let endpoint = Endpoint::start(Answer("checkout", None)).await;
    let topic = unique_topic("hs");
    subscribe(
        &server,
        "granted",
        &topic,
        &endpoint.url,
        json!({"rate_limit": 50}),
    )
    .await;
    for id in ["g-1", "g-2", "g-3"] {
        publish(&server, &topic, id).await;
    }
    let delivered = endpoint.wait_for_deliveries(3).await;
    let ids: Vec<&str> = delivered.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["g-1", "g-2", "g-3"]);
    let asked = endpoint.asked();
    assert_eq!(asked.len(), 1, "one handshake");
    assert_eq!(asked[0]["webhook-request-origin"], "checkout");
    assert_eq!(
        asked[0]["webhook-request-rate"], "3000",
        "50 events/s as requests per minute"
    );
}

#[tokio::test]
async fn a_refused_handshake_delivers_nothing_and_is_asked_again() {
    let (server, _dir) = server().await;
    let endpoint = Endpoint::start(Answer("elsewhere", None)).await;
    let topic = unique_topic("hs");
    subscribe(&server, "refused", &topic, &endpoint.url, json!({})).await;
    publish(&server, &topic, "r-1").await;
    let status = status_until(&server, "refused", |s| s["state"] == "failing").await;
    let reason = status["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("`elsewhere`, not `checkout`"),
        "the reason names the origins: {status}"
    );
    let deadline = Instant::now() + WAIT;
    while endpoint.asked().len() < 3 {
        assert!(Instant::now() < deadline, "the handshake was not retried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(endpoint.delivered().is_empty(), "nothing before agreement");
    *endpoint.answer.lock().unwrap() = Answer("*", None);
    let delivered = endpoint.wait_for_deliveries(1).await;
    assert_eq!(delivered[0].0, "r-1");
    status_until(&server, "refused", |s| {
        s["state"] == "running" && s["delivered"] == 1
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_endpoint_leaves_the_subscription_failing() {
    let (server, _dir) = server().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let topic = unique_topic("hs");
    subscribe(
        &server,
        "unreachable",
        &topic,
        &format!("http://{closed}/events"),
        json!({}),
    )
    .await;
    publish(&server, &topic, "u-1").await;
    let status = status_until(&server, "unreachable", |s| s["state"] == "failing").await;
    assert!(
        status["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("could not be asked"),
        "{status}"
    );
    assert_eq!(status["delivered"], 0);
}

#[tokio::test]
async fn a_lower_allowed_rate_caps_delivery() {
    let (server, _dir) = server().await;
    // 120 requests a minute: one every 500 ms, against the 100 events/s the subscription asks.
    let endpoint = Endpoint::start(Answer("checkout", Some("120"))).await;
    let topic = unique_topic("hs");
    for i in 1..=4 {
        publish(&server, &topic, &format!("c-{i}")).await;
    }
    subscribe(
        &server,
        "capped",
        &topic,
        &endpoint.url,
        json!({"rate_limit": 100, "ordering": "none"}),
    )
    .await;
    let delivered = endpoint.wait_for_deliveries(4).await;
    let spread = delivered[3].1 - delivered[0].1;
    assert!(
        spread >= Duration::from_millis(1400),
        "4 deliveries at 2 a second take 1.5 s, not {spread:?}"
    );
    assert_eq!(endpoint.asked()[0]["webhook-request-rate"], "6000");
}

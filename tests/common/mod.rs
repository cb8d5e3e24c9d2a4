//! Shared integration-test helpers: start sidebus in-process on port 0 against real brokers.

pub mod brokers;
pub mod deploy;
pub mod helm;
pub mod openapi;
pub mod process;
pub mod proxy;
pub mod receiver;
pub mod schema_registry;
pub mod sse;
pub mod steady;
pub mod tls;
pub mod tls_proxy;

use std::time::Duration;

use sidebus::backend::consume::ReadFrom;
use sidebus::backend::memory::StoredEvent;
use sidebus::{AppState, RawConfig};
use tokio::sync::oneshot;

/// A sidebus served on an ephemeral loopback port.
pub struct TestServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// The state behind the server, for reaching the memory broker.
    pub state: AppState,
    /// A keep-alive HTTP client.
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts sidebus with the TOML config `toml` and waits until every broker is ready.
    pub async fn start(toml: &str) -> Self {
        let server = Self::start_unready(toml).await;
        server.wait_ready(Duration::from_secs(30)).await;
        server
    }

    /// Starts sidebus without waiting for its brokers.
    pub async fn start_unready(toml: &str) -> Self {
        let config = RawConfig::from_toml(toml)
            .expect("test config parses")
            .validate()
            .expect("test config is valid");
        let state = AppState::build(config).await.expect("backends build");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let app = sidebus::app(state.clone());
        let served = tokio::spawn(async move {
            axum::serve(sidebus::nodelay(listener), app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            base: format!("http://{addr}"),
            state,
            http: reqwest::Client::new(),
            stop: Some(stop),
            served: Some(served),
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Polls `/readyz` until it answers 200, panicking with the last answer after `limit`.
    pub async fn wait_ready(&self, limit: Duration) {
        let body = self.wait_readyz(limit, reqwest::StatusCode::OK).await;
        assert!(body.is_ok(), "sidebus did not become ready: {body:?}");
    }

    /// Polls `/readyz` until it answers `status`; returns the last body as Err on timeout.
    pub async fn wait_readyz(
        &self,
        limit: Duration,
        status: reqwest::StatusCode,
    ) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let response = self.http.get(self.url("/readyz")).send().await.unwrap();
            let got = response.status();
            let body = response.text().await.unwrap();
            if got == status {
                return Ok(body);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{got}: {body}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// POSTs `body` to `path` with `headers`.
    pub async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.send().await.expect("request reaches sidebus")
    }

    /// `PUT /v1/subscriptions/{name}` with `spec`, asserting success; returns the subscription.
    pub async fn subscribe(&self, name: &str, spec: serde_json::Value) -> serde_json::Value {
        let response = self
            .http
            .put(self.url(&format!("/v1/subscriptions/{name}")))
            .json(&spec)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "PUT subscription {name}: {status} {body}"
        );
        serde_json::from_str(&body).unwrap()
    }

    /// GETs `path` and parses the JSON body.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request reaches sidebus")
            .json()
            .await
            .expect("a JSON body")
    }

    /// GETs `/metrics`: the Prometheus text a scraper would read.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("request reaches sidebus")
            .text()
            .await
            .expect("a text body")
    }

    /// Stops serving and drains the pipelines.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap();
        }
        self.state.drain().await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Up to `max` events broker `broker` holds for `topic`, oldest first, read through the
/// `Backend` trait: as many as `list_topics` counts, read from the earliest.
pub async fn stored(
    server: &TestServer,
    broker: &str,
    topic: &str,
    max: usize,
) -> Vec<StoredEvent> {
    let backend = &server
        .state
        .broker(broker)
        .expect("a configured broker")
        .backend;
    let held = backend
        .list_topics(Some(topic))
        .await
        .expect("the broker lists its topics")
        .into_iter()
        .find(|t| t.name == topic)
        .and_then(|t| t.messages)
        .unwrap_or(0);
    let n = usize::try_from(held).unwrap_or(usize::MAX).min(max);
    let mut events = Vec::with_capacity(n);
    if n == 0 {
        return events;
    }
    let mut reader = backend
        .read_from(topic, ReadFrom::Earliest)
        .await
        .expect("a reader");
    while events.len() < n {
        let delivery = tokio::time::timeout(Duration::from_secs(10), reader.deliveries.recv())
            .await
            .expect("a held event arrives")
            .expect("the reader is open")
            .expect("a delivery");
        events.push(StoredEvent {
            offset: delivery.spot.offset,
            event: delivery.event,
        });
    }
    events
}

/// A topic name no other test run uses.
pub fn unique_topic(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// Asserts a problem+json response with `status`, returning its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status of {response:?}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(content_type, "application/problem+json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:sidebus:problem:"),
        "{body}"
    );
    assert!(!body["title"].as_str().unwrap().is_empty(), "{body}");
    assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
    body
}

/// The value of one `series` (name and labels, as written) in Prometheus text; panics, showing
/// the text, when it is missing.
pub fn metric_value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("{series} missing from:\n{metrics}"))
}

/// The hex SHA-256 of `text`: what `token_sha256` holds for a principal whose token it is.
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

//! The HTTP client webhook deliveries go out through: hyper's pooled client over plain TCP or
//! TLS (the system's native TLS), with no redirect following and a deadline per attempt.
//!
//! A bare hyper client rather than reqwest: per delivery reqwest converted the `Url`, merged and
//! cloned header maps and armed its own timer, about a fifth of sidebus's CPU per webhook request.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_tls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Idle keep-alive connections kept per endpoint host: enough for 256 deliveries in flight.
const IDLE_PER_HOST: usize = 256;

/// A webhook client; cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct WebhookClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// What the endpoint answered.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The response headers (for `Retry-After`).
    pub headers: HeaderMap,
}

/// Why an attempt got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No complete answer within the subscription's `timeout`.
    #[error("the endpoint did not answer in time")]
    Timeout,
    /// The connection could not be made (refused, unresolvable host, TLS handshake).
    #[error("cannot connect to the endpoint: {0}")]
    Connect(String),
    /// The request or its response failed on an established connection.
    #[error("request failed: {0}")]
    Request(String),
}

/// An error and its causes, `: `-separated; hyper's own message alone says only "client error".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl WebhookClient {
    /// A client with its own connection pool; loads the TLS library and its trust store.
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = HttpsConnector::new_with_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .build(connector);
        Self { inner }
    }

    /// POSTs `body` with `headers` to `endpoint`, within `timeout` for the whole exchange.
    pub async fn post(
        &self,
        endpoint: &Uri,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, SendError> {
        let mut request = Request::post(endpoint.clone())
            .body(Full::new(body))
            .expect("a validated endpoint makes a valid request");
        *request.headers_mut() = headers;
        let exchange = async {
            let response = self.inner.request(request).await.map_err(|e| {
                if e.is_connect() {
                    SendError::Connect(chain(&e))
                } else {
                    SendError::Request(chain(&e))
                }
            })?;
            let (parts, body) = response.into_parts();
            // The status is the answer; reading the (small) body lets the connection be reused.
            let _ = body.collect().await;
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(SendError::Timeout))
    }
}

impl Default for WebhookClient {
    fn default() -> Self {
        Self::new()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(addr: std::net::SocketAddr) -> Uri {
        format!("http://{addr}/hook").parse().unwrap()
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error_with_its_cause() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let sent = WebhookClient::new()
            .post(
                &endpoint(addr),
                HeaderMap::new(),
                Bytes::new(),
                Duration::from_secs(5),
            )
            .await;
        match sent {
            Err(SendError::Connect(reason)) => {
                assert!(reason.contains("refused"), "{reason}")
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_endpoint_that_never_answers_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(socket);
        });
        let sent = WebhookClient::new()
            .post(
                &endpoint(addr),
                HeaderMap::new(),
                Bytes::from_static(b"x"),
                Duration::from_millis(200),
            )
            .await;
        assert!(matches!(sent, Err(SendError::Timeout)), "{sent:?}");
        held.abort();
    }

    #[tokio::test]
    async fn the_answer_carries_status_and_headers_and_the_request_its_body() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.ends_with(b"hello") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended early: {seen:?}");
                seen.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(seen).unwrap()
        });
        let mut headers = HeaderMap::new();
        headers.insert("ce-id", "e1".parse().unwrap());
        let answer = WebhookClient::new()
            .post(
                &endpoint(addr),
                headers,
                Bytes::from_static(b"hello"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.headers["retry-after"], "3");
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("post /hook http/1.1\r\n"), "{request}");
        assert!(request.contains(&format!("host: {addr}\r\n")), "{request}");
        assert!(request.contains("ce-id: e1\r\n"), "{request}");
        assert!(request.contains("content-length: 5\r\n"), "{request}");
    }
}

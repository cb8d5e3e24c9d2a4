//! The HTTP client webhook deliveries go out through: HTTP/1.1 keep-alive connections over plain
//! TCP or TLS (the system's native TLS), no redirect following, one deadline per attempt.
//!
//! Each attempt drives its connection itself, inside the delivering task, where hyper's pooled
//! client gives every connection a task of its own: an exchange then wakes no second task on the
//! way out and none on the way back. Between attempts a connection waits, unpolled, in its
//! origin's idle list; taking it out polls it once, which finds one the endpoint has closed in the
//! meantime (it is dropped and the next one, or a new one, is used).

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::error_text::chain;
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_tls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::ServiceExt;

/// Idle keep-alive connections kept per endpoint origin: enough for 256 deliveries in flight.
const IDLE_PER_ORIGIN: usize = 256;

/// How long a connection may wait unused before it is closed rather than reused (hyper's
/// pooled client's default): endpoints commonly close idle connections after a minute or two.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A webhook client; cheap to clone (the idle connections are shared).
#[derive(Clone)]
pub struct WebhookClient {
    connector: HttpsConnector<HttpConnector>,
    idle: Arc<Mutex<HashMap<Origin, VecDeque<Connection>>>>,
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

type Io = MaybeHttpsStream<TokioIo<TcpStream>>;

/// One keep-alive connection to an endpoint's origin.
struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    /// hyper's connection state machine, polled only while an exchange runs (and once at reuse).
    driver: Pin<Box<http1::Connection<Io, Full<Bytes>>>>,
    idle_since: Instant,
}

/// Why an exchange on a connection failed.
enum Failed {
    /// The connection could not take the request; nothing was written.
    Unsent(Box<Request<Full<Bytes>>>),
    /// The request was (perhaps partly) written and no complete answer came.
    Broken(hyper::Error),
}

impl Failed {
    fn into_send_error(self) -> SendError {
        match self {
            Failed::Unsent(_) => {
                SendError::Request("the connection closed before the request could be sent".into())
            }
            Failed::Broken(e) => SendError::Request(chain(&e)),
        }
    }
}

impl Connection {
    /// Polls the connection once: whether it is still open and ready for a request.
    fn usable(&mut self, cx: &mut Context<'_>) -> bool {
        if self.idle_since.elapsed() > IDLE_TIMEOUT {
            return false;
        }
        // A connection the endpoint closed completes on this poll; an open one reads nothing
        // and, being idle, tells its sender it wants the next request.
        if self.driver.as_mut().poll(cx).is_ready() {
            return false;
        }
        matches!(self.sender.poll_ready(cx), Poll::Ready(Ok(())))
    }

    /// Sends `request` and reads the whole answer, driving the connection meanwhile; also says
    /// whether the connection is still open for another request.
    async fn exchange(&mut self, request: Request<Full<Bytes>>) -> Result<(Answer, bool), Failed> {
        let response = self.sender.try_send_request(request);
        let answer = async {
            let response = response.await.map_err(|mut e| match e.take_message() {
                Some(request) => Failed::Unsent(Box::new(request)),
                None => Failed::Broken(e.into_error()),
            })?;
            let (parts, body) = response.into_parts();
            // The status is the answer; reading the (small) body lets the connection be reused,
            // and one whose body broke off is not.
            let whole = body.collect().await.is_ok();
            Ok((
                Answer {
                    status: parts.status,
                    headers: parts.headers,
                },
                whole,
            ))
        };
        tokio::pin!(answer);
        let mut open = true;
        loop {
            tokio::select! {
                biased;
                answer = &mut answer => return answer.map(|(a, whole)| (a, open && whole)),
                _ = self.driver.as_mut(), if open => open = false,
            }
        }
    }
}

/// The idle-list key of an endpoint: its scheme and authority (a cheap clone of the URI's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Origin {
    scheme: Option<Scheme>,
    authority: Option<Authority>,
}

impl Origin {
    fn of(endpoint: &Uri) -> Self {
        Self {
            scheme: endpoint.scheme().cloned(),
            authority: endpoint.authority().cloned(),
        }
    }
}

/// The request as it goes on the wire: origin-form target, `Host` from the endpoint.
fn request(
    method: Method,
    endpoint: &Uri,
    mut headers: HeaderMap,
    body: Bytes,
) -> Request<Full<Bytes>> {
    let target = endpoint
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    if let Some(authority) = endpoint.authority() {
        let host = HeaderValue::from_str(authority.as_str())
            .expect("a URI's authority is a valid header value");
        headers.insert(header::HOST, host);
    }
    let mut request = Request::builder()
        .method(method)
        .uri(Uri::from(target))
        .body(Full::new(body))
        .expect("a validated endpoint makes a valid request");
    *request.headers_mut() = headers;
    request
}

impl WebhookClient {
    /// A client with no connections yet; loads the TLS library and its trust store.
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        Self {
            connector: HttpsConnector::new_with_connector(http),
            idle: Arc::default(),
        }
    }

    /// POSTs `body` with `headers` to `endpoint`, within `timeout` for the whole exchange.
    pub async fn post(
        &self,
        endpoint: &Uri,
        headers: HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, SendError> {
        let request = request(Method::POST, endpoint, headers, body);
        self.send_within(timeout, endpoint, request).await
    }

    /// Sends `OPTIONS` with `headers` to `endpoint` (the webhook handshake), within `timeout`.
    pub async fn options(
        &self,
        endpoint: &Uri,
        headers: HeaderMap,
        timeout: Duration,
    ) -> Result<Answer, SendError> {
        let request = request(Method::OPTIONS, endpoint, headers, Bytes::new());
        self.send_within(timeout, endpoint, request).await
    }

    async fn send_within(
        &self,
        timeout: Duration,
        endpoint: &Uri,
        request: Request<Full<Bytes>>,
    ) -> Result<Answer, SendError> {
        tokio::time::timeout(timeout, self.send(endpoint, request))
            .await
            .unwrap_or(Err(SendError::Timeout))
    }

    async fn send(
        &self,
        endpoint: &Uri,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Answer, SendError> {
        let origin = Origin::of(endpoint);
        if let Some(connection) = self.checkout(&origin).await {
            match self.exchange_on(&origin, connection, request).await {
                Err(Failed::Unsent(back)) => request = *back,
                done => return done.map_err(Failed::into_send_error),
            }
        }
        let connection = self.connect(endpoint).await?;
        self.exchange_on(&origin, connection, request)
            .await
            .map_err(Failed::into_send_error)
    }

    /// One exchange on `connection`, which is kept for the next request if it stays open.
    async fn exchange_on(
        &self,
        origin: &Origin,
        mut connection: Connection,
        request: Request<Full<Bytes>>,
    ) -> Result<Answer, Failed> {
        let (answer, open) = connection.exchange(request).await?;
        self.checkin(origin, connection, open);
        Ok(answer)
    }

    /// The most recently used idle connection to `origin` that is still usable.
    async fn checkout(&self, origin: &Origin) -> Option<Connection> {
        loop {
            let mut connection = {
                let mut idle = self.lock_idle();
                idle.get_mut(origin)?.pop_back()?
            };
            if poll_fn(|cx| Poll::Ready(connection.usable(cx))).await {
                return Some(connection);
            }
        }
    }

    /// Keeps an open connection for the next request, closing those idle too long or too many.
    fn checkin(&self, origin: &Origin, mut connection: Connection, open: bool) {
        if !open {
            return;
        }
        let mut idle = self.lock_idle();
        let list = idle.entry(origin.clone()).or_default();
        while list
            .front()
            .is_some_and(|c| c.idle_since.elapsed() > IDLE_TIMEOUT)
        {
            list.pop_front();
        }
        if list.len() < IDLE_PER_ORIGIN {
            connection.idle_since = Instant::now();
            list.push_back(connection);
        }
    }

    fn lock_idle(&self) -> MutexGuard<'_, HashMap<Origin, VecDeque<Connection>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a connection (TCP, then TLS for `https`) and makes the HTTP/1.1 handshake.
    async fn connect(&self, endpoint: &Uri) -> Result<Connection, SendError> {
        let io = self
            .connector
            .clone()
            .oneshot(endpoint.clone())
            .await
            .map_err(|e| SendError::Connect(chain(&*e)))?;
        let (sender, driver) = http1::handshake(io)
            .await
            .map_err(|e| SendError::Connect(chain(&e)))?;
        Ok(Connection {
            sender,
            driver: Box::pin(driver),
            idle_since: Instant::now(),
        })
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

    /// Reads one request whose body is `hello`; returns it as text.
    async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.ends_with(b"\r\n\r\nhello") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the request ended early: {seen:?}");
            seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(seen).unwrap()
    }

    /// Reads one request whose body is `hello` and answers `204`.
    async fn answer_one(socket: &mut tokio::net::TcpStream) {
        use tokio::io::AsyncWriteExt;
        read_request(socket).await;
        socket
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
    }

    async fn post_hello(client: &WebhookClient, addr: std::net::SocketAddr) -> StatusCode {
        let answer = client
            .post(
                &endpoint(addr),
                HeaderMap::new(),
                Bytes::from_static(b"hello"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        answer.status
    }

    #[tokio::test]
    async fn a_connection_is_kept_alive_for_the_next_request() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Serves two requests on the first connection and never accepts another: a second
        // connection's request would go unanswered and time out.
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            answer_one(&mut socket).await;
            answer_one(&mut socket).await;
            let _held = listener.accept().await;
        });
        let client = WebhookClient::new();
        assert_eq!(post_hello(&client, addr).await, StatusCode::NO_CONTENT);
        assert_eq!(post_hello(&client, addr).await, StatusCode::NO_CONTENT);
        server.abort();
    }

    #[tokio::test]
    async fn a_connection_the_endpoint_closed_while_idle_is_replaced() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (close, on_close) = tokio::sync::oneshot::channel::<()>();
        let (closed, on_closed) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let (mut first, _) = listener.accept().await.unwrap();
            answer_one(&mut first).await;
            // Closed only once the client holds the connection as idle, as a server's
            // keep-alive timeout would.
            on_close.await.unwrap();
            drop(first);
            closed.send(()).unwrap();
            let (mut second, _) = listener.accept().await.unwrap();
            answer_one(&mut second).await;
        });
        let client = WebhookClient::new();
        assert_eq!(post_hello(&client, addr).await, StatusCode::NO_CONTENT);
        assert_eq!(client.lock_idle()[&Origin::of(&endpoint(addr))].len(), 1);
        close.send(()).unwrap();
        on_closed.await.unwrap();
        assert_eq!(post_hello(&client, addr).await, StatusCode::NO_CONTENT);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn the_answer_carries_status_and_headers_and_the_request_its_body() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let request = read_request(&mut socket).await;
            socket
                .write_all(b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            request
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

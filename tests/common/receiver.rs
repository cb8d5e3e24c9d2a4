//! A real HTTP webhook receiver inside the test: records every request and answers each event
//! id's attempts from a script (status codes, Retry-After, or a hang past the timeout).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
    /// What the receiver answered.
    pub answered: u16,
}

impl Received {
    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

/// An answer to one attempt.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status.
    Status(u16),
    /// This status with `Retry-After: secs`.
    RetryAfter(u16, u64),
    /// Never answer within the subscription's timeout.
    Hang,
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    script: Mutex<HashMap<String, Vec<Reply>>>,
    arrived: Notify,
    delay: Mutex<Duration>,
}

/// The receiver; clone to share.
#[derive(Clone)]
pub struct Receiver {
    /// Its URL (`http://127.0.0.1:<port>/events`).
    pub url: String,
    inner: Arc<Inner>,
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = headers
        .get("ce-id")
        .or_else(|| headers.get("webhook-id"))
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let reply = {
        let mut script = inner.script.lock().unwrap();
        match script.get_mut(&key) {
            Some(replies) if !replies.is_empty() => replies.remove(0),
            _ => Reply::Status(200),
        }
    };
    let answered = match &reply {
        Reply::Status(s) | Reply::RetryAfter(s, _) => *s,
        Reply::Hang => 0,
    };
    inner.received.lock().unwrap().push(Received {
        headers,
        body,
        at: Instant::now(),
        answered,
    });
    inner.arrived.notify_waiters();
    let delay = *inner.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    match reply {
        Reply::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
        Reply::RetryAfter(s, secs) => (
            StatusCode::from_u16(s).unwrap(),
            [("retry-after", secs.to_string())],
        )
            .into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
    }
}

impl Receiver {
    /// Starts one on a free loopback port.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new()
            .route("/events", axum::routing::post(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}/events"),
            inner,
        }
    }

    /// Answers the attempts for event `id` with `replies` in turn (then 200).
    pub fn script(&self, id: &str, replies: Vec<Reply>) {
        self.inner.script.lock().unwrap().insert(id.into(), replies);
    }

    /// Answers every request `delay` after it arrived, as a slow endpoint does.
    pub fn slow(&self, delay: Duration) {
        *self.inner.delay.lock().unwrap() = delay;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// Waits until `done(received)` holds, failing after `limit`.
    pub async fn wait_until(
        &self,
        limit: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        self.try_wait_until(limit, done)
            .await
            .unwrap_or_else(|received| {
                let summary: Vec<_> = received
                    .iter()
                    .map(|r| (r.header("ce-id").or(r.header("webhook-id")), r.answered))
                    .collect();
                panic!("condition not met within {limit:?}; received: {summary:?}");
            })
    }

    /// Waits until `done(received)` holds; after `limit`, what was received by then, as `Err`.
    pub async fn try_wait_until(
        &self,
        limit: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Result<Vec<Received>, Vec<Received>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let arrived = self.inner.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let received = self.received();
            if done(&received) {
                return Ok(received);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(received);
            }
        }
    }

    /// Requests that got a 2xx, in arrival order.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }
}

//! The trivial webhook receiver the deliveries (and the bare HTTP ceiling) go to, and what it
//! counts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering as Atomic};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use bytes::Bytes;
use tokio::sync::Notify;

/// What the receiver has seen, and a wake-up for whoever waits for a number of events.
#[derive(Clone, Default)]
pub(crate) struct Counter {
    requests: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
    /// Events after which [`Counter::reached`] wakes; 0 (no target) never wakes it.
    target: Arc<AtomicU64>,
    reached: Arc<Notify>,
}

impl Counter {
    /// Starts counting from zero, towards `target` events.
    pub(crate) fn expect(&self, target: u64) {
        self.target.store(0, Atomic::SeqCst);
        self.requests.store(0, Atomic::SeqCst);
        self.events.store(0, Atomic::SeqCst);
        self.target.store(target, Atomic::SeqCst);
    }

    pub(crate) fn events(&self) -> u64 {
        self.events.load(Atomic::SeqCst)
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Atomic::SeqCst)
    }

    /// Completes once the events counted reach the target (or spuriously, after an earlier
    /// target's wake-up nobody took): the caller checks [`Counter::events`] again.
    pub(crate) async fn reached(&self) {
        self.reached.notified().await;
    }

    fn add(&self, events: u64) {
        self.requests.fetch_add(1, Atomic::Relaxed);
        let before = self.events.fetch_add(events, Atomic::SeqCst);
        let target = self.target.load(Atomic::SeqCst);
        if before < target && before + events >= target {
            self.reached.notify_one();
        }
    }
}

/// The trivial webhook receiver: `/hook` counts one event per request, `/batch` the elements of
/// a CloudEvents batch array; both answer 204.
pub(crate) async fn start_receiver(counter: Counter) -> SocketAddr {
    async fn one(State(counter): State<Counter>, body: Bytes) -> StatusCode {
        std::hint::black_box(body.len());
        counter.add(1);
        StatusCode::NO_CONTENT
    }
    async fn batch(State(counter): State<Counter>, body: Bytes) -> StatusCode {
        match serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&body) {
            Ok(events) => {
                counter.add(events.len() as u64);
                StatusCode::NO_CONTENT
            }
            Err(_) => StatusCode::BAD_REQUEST,
        }
    }
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(one))
        .route("/batch", axum::routing::post(batch))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(counter);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(sidebus::nodelay(listener), app).await.unwrap();
    });
    addr
}

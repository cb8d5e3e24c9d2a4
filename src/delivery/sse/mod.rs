//! Server-Sent Events: one broker reader per HTTP stream, rendered as `text/event-stream`.
//!
//! ```text
//! backend.read_resolved | backend.subscribe -> pump task -> bounded buffer -> SseStream (the body)
//! ```
//!
//! Each event's `id:` is a [`cursor`] that encodes the position after it, so a client resumes
//! exactly after the last event it saw, on any sidebus instance, with nothing kept on the
//! server. A `?group=` stream reads through the broker's consumer group instead: no cursor, and
//! each event is acknowledged once the connection has taken it. The pump waits at most
//! `stall_timeout` for room in the bounded buffer; a client that leaves it full that long is sent
//! a final `sidebus.disconnect` event and disconnected, never buffered without bound.
//!
//! The client's request is checked against what the broker can do in `start`, the pump task
//! lives in `pump`, the wire format of one event in `frame` and the response body in `body`.
//! Nothing here names a broker: where a read starts comes from `Backend::read_resolved`, and
//! cursors and replay from `Backend::capabilities`.

mod body;
pub mod cursor;
mod frame;
mod pump;
mod start;

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

use crate::backend::consume::{ConsumeError, GroupSpec, ReadFrom, StartFrom};
use crate::config::SseConfig;
use crate::pipeline::Broker;
use crate::policy::topics::TopicMap;
use crate::schemas::SchemaStore;
use pump::Pump;

pub use body::SseStream;
pub use cursor::{Cursor, CursorError};
pub use frame::{render, render_from};
pub use start::{Start, StreamRequest};

/// The SSE `event:` name of the final event of a stream that sidebus ends.
pub const DISCONNECT_EVENT: &str = "sidebus.disconnect";

/// The open SSE streams of one server: the concurrency limit and the shutdown signal.
#[derive(Clone)]
pub struct Streams {
    slots: Arc<Semaphore>,
    max: usize,
    closing: Arc<watch::Sender<bool>>,
}

impl Streams {
    /// Room for `max` concurrent streams.
    pub fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            closing: Arc::new(watch::channel(false).0),
        }
    }

    /// A slot for one more stream, or `None` when `max` are open.
    pub fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        if *self.closing.borrow() {
            return None;
        }
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// The configured limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Ends every stream (each gets a final `sidebus.disconnect` event) and refuses new ones:
    /// called on shutdown, so graceful shutdown does not wait for streams that never end.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

/// How a stream presents events, as configured when it opened: schema-encoded events decoded
/// to JSON, physical topic names shown as the logical ones.
pub struct Presentation {
    /// The schema decoder.
    pub schemas: Arc<SchemaStore>,
    /// The topic map.
    pub topics: Arc<TopicMap>,
}

/// Opens the broker reader for `request` (whose topic is the physical one) and starts
/// streaming into the returned body.
pub async fn open(
    broker: &Broker,
    request: StreamRequest,
    settings: &SseConfig,
    streams: &Streams,
    slot: OwnedSemaphorePermit,
    presentation: Presentation,
) -> Result<SseStream, ConsumeError> {
    let backend = &broker.backend;
    let topic = request.topic.as_str();
    let (consumer, position, announce) = match (&request.group, &request.start) {
        (Some(group), start) => {
            let start = match start {
                Start::From(from) => *from,
                Start::Cursor(_) => StartFrom::Latest,
            };
            let consumer = backend
                .subscribe(GroupSpec {
                    topic: topic.to_string(),
                    group: group.clone(),
                    start,
                    max_in_flight: settings.buffer.saturating_mul(2).max(2),
                })
                .await?;
            (consumer, None, false)
        }
        (None, start) => {
            let (from, fresh) = match start {
                Start::Cursor(cursor) => (cursor.read_from(), false),
                Start::From(from) => (ReadFrom::from(*from), true),
            };
            // A fresh stream starts at a concrete position where the broker can tell it, so
            // every cursor the stream sends names where it began.
            let reading = backend.read_resolved(topic, from).await?;
            let kind = backend.capabilities().cursor;
            let position = reading
                .start
                .zip(kind)
                .and_then(|(start, kind)| Cursor::new(kind, start));
            let announce = fresh && reading.exact && position.is_some();
            (reading.consumer, position, announce)
        }
    };
    // The first block flushes the headers to the client at once, and for a fresh stream whose
    // start is known carries that position as an `id:` without data: EventSource takes it as
    // its last event id without dispatching anything, so a reconnect before the first event
    // still resumes where the stream began.
    let mut first = String::from(": sidebus\n");
    if let (true, Some(position)) = (announce, &position) {
        first.push_str("id: ");
        first.push_str(&position.encode(topic));
        first.push('\n');
    }
    first.push('\n');
    let (frames_tx, frames) = mpsc::channel(settings.buffer.max(1));
    let (last_tx, last) = oneshot::channel();
    let pump = Pump {
        consumer,
        frames: frames_tx,
        last: last_tx,
        closing: streams.closing(),
        position,
        topic: request.topic.clone(),
        key: request.key.clone(),
        filter: request.filter.clone(),
        typed: request.typed,
        decode: request.decode,
        buffer: settings.buffer,
        stall_timeout: settings.stall_timeout,
        broker: broker.name.clone(),
        presentation,
        _slot: slot,
    };
    tokio::spawn(pump.run());
    Ok(SseStream::new(
        Bytes::from(first),
        frames,
        last,
        settings.keep_alive,
    ))
}

/// Runs an acknowledgement in the background; a failed one makes the broker redeliver.
fn settle(future: BoxFuture<'static, Result<(), ConsumeError>>) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if let Err(e) = future.await {
                tracing::debug!(error = %e, "sse settle");
            }
        });
    }
}

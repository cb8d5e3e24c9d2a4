//! The response body of a stream: it interleaves rendered events, keep-alive comments and the
//! final event.

use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use super::frame::Frame;
use super::settle;
use crate::backend::consume::Settle;

/// A keep-alive comment.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
/// Shortest keep-alive period honoured (a guard against a zero interval).
const MIN_PERIOD: Duration = Duration::from_millis(10);

/// The response body of one stream: the first block, then events from the buffer, keep-alive
/// comments when idle, and the final event when sidebus ends the stream.
pub struct SseStream {
    first: Option<Bytes>,
    frames: mpsc::Receiver<Frame>,
    last: Option<oneshot::Receiver<Bytes>>,
    keep_alive: tokio::time::Interval,
    /// The event the connection took last: acknowledged when it asks for the next one.
    unsettled: Option<Box<dyn Settle>>,
    done: bool,
}

impl SseStream {
    /// A body that sends `first`, then the frames of `frames` with a keep-alive comment every
    /// `period` of silence, and ends with what arrives on `last`.
    pub(super) fn new(
        first: Bytes,
        frames: mpsc::Receiver<Frame>,
        last: oneshot::Receiver<Bytes>,
        period: Duration,
    ) -> Self {
        let mut keep_alive =
            tokio::time::interval_at(tokio::time::Instant::now() + period, period.max(MIN_PERIOD));
        keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        SseStream {
            first: Some(first),
            frames,
            last: Some(last),
            keep_alive,
            unsettled: None,
            done: false,
        }
    }

    /// Gives back everything buffered and not sent.
    fn drain(&mut self) {
        self.frames.close();
        while let Ok(frame) = self.frames.try_recv() {
            settle(frame.settle.nack());
        }
    }

    fn poll_last(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let Some(last) = &mut self.last else {
            return Poll::Ready(None);
        };
        match Pin::new(last).poll(cx) {
            Poll::Ready(Ok(bytes)) => {
                self.last = None;
                Poll::Ready(Some(bytes))
            }
            Poll::Ready(Err(_)) => {
                self.last = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Stream for SseStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(taken) = this.unsettled.take() {
            settle(taken.ack());
        }
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        // The final event goes out at once, ahead of anything still buffered.
        if let Poll::Ready(Some(last)) = this.poll_last(cx) {
            this.done = true;
            this.drain();
            return Poll::Ready(Some(Ok(last)));
        }
        match this.frames.poll_recv(cx) {
            Poll::Ready(Some(frame)) => {
                this.unsettled = Some(frame.settle);
                this.keep_alive.reset();
                return Poll::Ready(Some(Ok(frame.bytes)));
            }
            Poll::Ready(None) => {
                // The pump sends its final event before it lets go of the buffer.
                this.done = true;
                return Poll::Ready(match this.poll_last(cx) {
                    Poll::Ready(Some(last)) => Some(Ok(last)),
                    _ => None,
                });
            }
            Poll::Pending => {}
        }
        if this.keep_alive.poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Ok(Bytes::from_static(KEEP_ALIVE))));
        }
        Poll::Pending
    }
}

impl Drop for SseStream {
    fn drop(&mut self) {
        // The connection closed: the last event it took may not have reached the client.
        if let Some(taken) = self.unsettled.take() {
            settle(taken.nack());
        }
        self.drain();
    }
}

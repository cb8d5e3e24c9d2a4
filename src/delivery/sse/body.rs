//! The SSE wire format: rendering one event, and the response body that interleaves events,
//! keep-alive comments and the final event.

use std::convert::Infallible;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::{mpsc, oneshot};

use super::pump::Frame;
use super::settle;
use crate::backend::consume::Settle;
use crate::event::{self, Event};

/// A keep-alive comment.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
/// Shortest keep-alive period honoured (a guard against a zero interval).
const MIN_PERIOD: Duration = Duration::from_millis(10);

/// One SSE event: `id:` (when there is a cursor), `event:` (when typed), then the structured
/// CloudEvent JSON as `data:` lines (JSON data may span lines; SSE joins them with `\n`).
pub fn render(event: &Event, id: Option<&str>, typed: bool) -> Bytes {
    let json = event::to_json(event);
    let json = json.as_str();
    let mut out = String::with_capacity(json.len() + 128);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    if typed {
        out.push_str("event: ");
        out.extend(
            event
                .ty
                .chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
        );
        out.push('\n');
    }
    let mut rest = json;
    loop {
        let (line, next) = match rest.find(['\n', '\r']) {
            Some(at) => {
                let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
                (&rest[..at], Some(&rest[at + skip..]))
            }
            None => (rest, None),
        };
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
        match next {
            Some(next) => rest = next,
            None => break,
        }
    }
    out.push('\n');
    Bytes::from(out)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &'static str, content_type: &str) -> Event {
        Event {
            id: "e-1".into(),
            source: "s".into(),
            ty: "order.placed".into(),
            time: None,
            datacontenttype: Some(content_type.into()),
            dataschema: None,
            subject: None,
            extensions: vec![],
            data: Bytes::from_static(data.as_bytes()),
        }
    }

    /// The `data` of an SSE block, joined as a client does.
    fn data_of(block: &str) -> String {
        block
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|v| v.strip_prefix(' ').unwrap_or(v))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn an_event_is_id_then_data() {
        let block = render(&event("{\"a\":1}", "application/json"), Some("CUR"), false);
        let block = std::str::from_utf8(&block).unwrap();
        assert!(block.starts_with("id: CUR\ndata: {"), "{block}");
        assert!(block.ends_with("}\n\n"), "{block}");
        assert!(!block.contains("event:"), "{block}");
        let json: serde_json::Value = serde_json::from_str(&data_of(block)).unwrap();
        assert_eq!(json["data"]["a"], 1);
        assert_eq!(json["type"], "order.placed");
    }

    #[test]
    fn typed_events_are_named_after_their_type() {
        let block = render(&event("x", "text/plain"), None, true);
        let block = std::str::from_utf8(&block).unwrap();
        assert!(block.starts_with("event: order.placed\ndata: "), "{block}");
    }

    #[test]
    fn multi_line_json_data_survives_sse_framing() {
        let pretty = "{\r\n  \"a\": [1,\n 2],\r \"b\": \"x\"\n}";
        let block = render(&event(pretty, "application/json"), Some("c"), false);
        let block = std::str::from_utf8(&block).unwrap();
        assert_eq!(block.matches("\n\n").count(), 1, "{block:?}");
        assert!(!block.contains('\r'));
        let json: serde_json::Value = serde_json::from_str(&data_of(block)).unwrap();
        assert_eq!(json["data"]["a"][1], 2);
        assert_eq!(json["data"]["b"], "x");
    }

    #[test]
    fn binary_data_is_base64() {
        let mut e = event("", "application/octet-stream");
        e.data = Bytes::from_static(&[0xff, 0, 1]);
        let block = render(&e, None, false);
        let json: serde_json::Value =
            serde_json::from_str(&data_of(std::str::from_utf8(&block).unwrap())).unwrap();
        assert_eq!(json["data_base64"], "/wAB");
    }
}

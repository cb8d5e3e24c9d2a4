//! The pump task: moves deliveries from the broker reader into a stream's bounded buffer, and
//! ends the stream with a `sidebus.disconnect` event when sidebus has to.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit};

use super::cursor::Cursor;
use super::frame::{render_from, Frame};
use super::{settle, DISCONNECT_EVENT};
use crate::backend::consume::{ConsumeError, Consumer, Delivery};
use crate::policy::cesql::Expression;

/// Why sidebus ends a stream; sent as the final `sidebus.disconnect` event.
#[derive(Debug, serde::Serialize)]
struct Disconnect {
    reason: &'static str,
    detail: String,
}

impl Disconnect {
    fn render(&self) -> Bytes {
        let json = serde_json::to_string(self).expect("a disconnect serialises");
        Bytes::from(format!("event: {DISCONNECT_EVENT}\ndata: {json}\n\n"))
    }
}

/// Moves deliveries from the broker reader into the bounded buffer.
pub(super) struct Pump {
    pub(super) consumer: Consumer,
    pub(super) frames: mpsc::Sender<Frame>,
    pub(super) last: oneshot::Sender<Bytes>,
    pub(super) closing: watch::Receiver<bool>,
    /// The position after the last event read; `None` where there are no cursors.
    pub(super) position: Option<Cursor>,
    pub(super) topic: String,
    pub(super) key: Option<String>,
    /// Only events this CESQL expression (`?filter=`) matches.
    pub(super) filter: Option<Expression>,
    pub(super) typed: bool,
    /// Whether schema-encoded events are decoded back to JSON (`?decode=false` says no).
    pub(super) decode: bool,
    pub(super) buffer: usize,
    pub(super) stall_timeout: Duration,
    /// Decodes schema-encoded events back to JSON before they are rendered.
    /// The broker's name, for the topic map.
    pub(super) broker: String,
    pub(super) presentation: super::Presentation,
    /// Holds one of the server's stream slots until the reader stops.
    pub(super) _slot: OwnedSemaphorePermit,
}

impl Pump {
    /// Pumps until the stream ends, then gives back whatever was not taken.
    pub(super) async fn run(mut self) {
        let end = self.pump().await;
        if let Some(end) = end {
            tracing::debug!(topic = %self.topic, reason = end.reason, detail = %end.detail, "sse stream ends");
            let _ = self.last.send(end.render());
        }
        // Whatever the reader handed over and nobody took goes back to the broker.
        self.consumer.deliveries.close();
        while let Ok(item) = self.consumer.deliveries.try_recv() {
            if let Ok(delivery) = item {
                settle(delivery.settle.nack());
            }
        }
    }

    /// Runs until the client leaves (`None`) or sidebus ends the stream (`Some(why)`).
    async fn pump(&mut self) -> Option<Disconnect> {
        loop {
            let delivery = tokio::select! {
                biased;
                _ = closed(&mut self.closing) => return Some(shutting_down()),
                _ = self.frames.closed() => return None,
                next = self.consumer.deliveries.recv() => match next {
                    None => return Some(Disconnect {
                        reason: "end-of-stream",
                        detail: "the broker reader stopped".into(),
                    }),
                    Some(Err(ConsumeError::Unavailable(e))) => {
                        // Readers reconnect by themselves; the stream waits for them.
                        tracing::warn!(topic = %self.topic, error = %e, "sse reader");
                        continue;
                    }
                    Some(Err(e)) => return Some(Disconnect {
                        reason: "broker-error",
                        detail: e.to_string(),
                    }),
                    Some(Ok(delivery)) => delivery,
                },
            };
            let Delivery {
                topic,
                event,
                spot,
                settle: ack,
                ..
            } = delivery;
            if let Some(position) = &mut self.position {
                position.advance(spot.partition, spot.offset);
            }
            let other_key = self
                .key
                .as_deref()
                .is_some_and(|key| event.partition_key() != Some(key));
            let filtered_out = self.filter.as_ref().is_some_and(|f| !f.matches(&event));
            if other_key || filtered_out {
                // Not for this client: done with it (in a group, skipped for every member).
                settle(ack.ack());
                continue;
            }
            let id = self.position.as_ref().map(|p| p.encode(&self.topic));
            let schemas = &self.presentation.schemas;
            let decoded = match self.decode && schemas.decodes_anything() {
                true => schemas.decode(&event).await,
                false => None,
            };
            let logical = self.presentation.topics.logical(&self.broker, &topic);
            let bytes = render_from(
                Some(logical.as_deref().unwrap_or(&topic)),
                decoded.as_ref().unwrap_or(&event),
                id.as_deref(),
                self.typed,
            );
            let permit = tokio::select! {
                biased;
                _ = closed(&mut self.closing) => {
                    settle(ack.nack());
                    return Some(shutting_down());
                }
                reserved = tokio::time::timeout(self.stall_timeout, self.frames.reserve()) => {
                    match reserved {
                        Ok(Ok(permit)) => permit,
                        Ok(Err(_)) => {
                            settle(ack.nack());
                            return None;
                        }
                        Err(_) => {
                            settle(ack.nack());
                            return Some(Disconnect {
                                reason: "slow-consumer",
                                detail: format!(
                                    "the client did not keep up: its buffer of {} events stayed \
                                     full for {:?}; reconnect with the last event id to resume",
                                    self.buffer, self.stall_timeout
                                ),
                            });
                        }
                    }
                }
            };
            permit.send(Frame { bytes, settle: ack });
        }
    }
}

fn shutting_down() -> Disconnect {
    Disconnect {
        reason: "shutting-down",
        detail: "sidebus is stopping; reconnect with the last event id to resume".into(),
    }
}

/// Resolves once the server closes its streams (never if the signal is gone).
async fn closed(closing: &mut watch::Receiver<bool>) {
    if closing.wait_for(|closing| *closing).await.is_err() {
        std::future::pending::<()>().await;
    }
}

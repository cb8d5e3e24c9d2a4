//! The consuming half of a backend: group subscriptions with per-event acknowledgement (webhook
//! delivery, shared SSE) and positional reads that resume from a cursor (SSE).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};

/// Where a group starts is part of the subscription it serves (config), and of every [`GroupSpec`].
pub use crate::config::StartFrom;
use crate::event::Event;

/// What a group subscription asks of the broker.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// Topic to consume.
    pub topic: String,
    /// Consumer group: members with the same group share the events, groups each get all.
    pub group: String,
    /// Start position for a new group.
    pub start: StartFrom,
    /// Most unacknowledged events handed out at once (JetStream max_ack_pending, AMQP prefetch).
    pub max_in_flight: usize,
}

/// A position to read from: the next event to deliver, per partition where the broker has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFrom {
    /// The oldest event retained.
    Earliest,
    /// Only new events.
    Latest,
    /// Kafka: next offset per partition (partitions not named start at the latest offset).
    Offsets(BTreeMap<i32, i64>),
    /// JetStream: next stream sequence; memory: next offset (as u64).
    Sequence(u64),
}

/// The next event a positional reader delivers, in the broker's own terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadPosition {
    /// One number for the whole topic: JetStream stream sequence, memory offset (as u64).
    Sequence(u64),
    /// Kafka: next offset per partition.
    Offsets(BTreeMap<i32, i64>),
}

impl ReadPosition {
    /// Moves past an event at `partition`/`offset` (both from a broker, so never negative; the
    /// largest offset saturates rather than overflowing). Never steps back.
    pub fn advance(&mut self, partition: i32, offset: i64) {
        match self {
            ReadPosition::Sequence(next) => {
                *next = (*next).max(offset.max(0) as u64 + 1);
            }
            ReadPosition::Offsets(next) => {
                let slot = next.entry(partition).or_insert(0);
                *slot = (*slot).max(offset.saturating_add(1));
            }
        }
    }
}

impl From<StartFrom> for ReadFrom {
    fn from(start: StartFrom) -> Self {
        match start {
            StartFrom::Earliest => ReadFrom::Earliest,
            StartFrom::Latest => ReadFrom::Latest,
        }
    }
}

impl From<ReadPosition> for ReadFrom {
    fn from(position: ReadPosition) -> Self {
        match position {
            ReadPosition::Sequence(next) => ReadFrom::Sequence(next),
            ReadPosition::Offsets(next) => ReadFrom::Offsets(next),
        }
    }
}

/// A positional read and where it starts.
pub struct Reading {
    /// The reader.
    pub consumer: Consumer,
    /// The position the read starts at, which the position after each event grows from;
    /// `None` where the broker has no positions.
    pub start: Option<ReadPosition>,
    /// Whether `start` is exactly where the read begins. `false` when the broker could not
    /// learn it (JetStream `latest`: the stream's last sequence is not known), so only the
    /// first event tells where the read is.
    pub exact: bool,
}

impl Reading {
    /// A read whose start the broker does not tell.
    pub fn unpositioned(consumer: Consumer) -> Self {
        Self {
            consumer,
            start: None,
            exact: false,
        }
    }
}

/// Where a consumed event sits in its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Spot {
    /// Kafka partition; 0 where a broker has no partitions.
    pub partition: i32,
    /// Kafka offset, JetStream stream sequence, memory offset; AMQP: the delivery tag.
    pub offset: i64,
}

impl std::fmt::Display for Spot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.partition, self.offset)
    }
}

/// Settles one delivery with the broker.
pub trait Settle: Send + 'static {
    /// The event is done with (delivered or dead-lettered): the broker may forget it.
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), ConsumeError>>;
    /// The event was not handled: the broker should deliver it again.
    fn nack(self: Box<Self>) -> BoxFuture<'static, Result<(), ConsumeError>>;
}

/// A settle that does nothing, for positional reads where the cursor is the client's.
pub struct NoSettle;

impl Settle for NoSettle {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), ConsumeError>> {
        Box::pin(async { Ok(()) })
    }
    fn nack(self: Box<Self>) -> BoxFuture<'static, Result<(), ConsumeError>> {
        Box::pin(async { Ok(()) })
    }
}

/// One consumed event and the means to acknowledge it.
pub struct Delivery {
    /// Topic it was consumed from.
    pub topic: Arc<str>,
    /// The event, rebuilt from the broker's binary-mode message.
    pub event: Event,
    /// Where it sits.
    pub spot: Spot,
    /// The broker delivered it before (a redelivery after a nack, crash or rebalance).
    pub redelivered: bool,
    /// Acknowledges or rejects it.
    pub settle: Box<dyn Settle>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("topic", &self.topic)
            .field("id", &self.event.id)
            .field("spot", &self.spot)
            .field("redelivered", &self.redelivered)
            .finish()
    }
}

/// A running consumer: deliveries arrive on `deliveries`; dropping it stops consuming.
pub struct Consumer {
    /// The events, in broker order per partition.
    pub deliveries: mpsc::Receiver<Result<Delivery, ConsumeError>>,
    /// Events the broker holds that this consumer has not received yet, when the broker says.
    pub lag: Arc<dyn Fn() -> Option<u64> + Send + Sync>,
    /// Stops the consumer's task when dropped.
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Set by consumers that can stop handing out events while keeping their place in the
    /// group, where leaving and joining again is slow (a Kafka rebalance waits for the group's
    /// other members and the coordinator); `true` holds the consumer, `false` lets it go on.
    pub hold: Option<watch::Sender<bool>>,
}

impl Consumer {
    /// A consumer fed by `deliveries`, stopped through `stop`, with no lag information.
    pub fn new(
        deliveries: mpsc::Receiver<Result<Delivery, ConsumeError>>,
        stop: tokio::sync::oneshot::Sender<()>,
    ) -> Self {
        Self {
            deliveries,
            lag: Arc::new(|| None),
            stop: Some(stop),
            hold: None,
        }
    }

    /// Holds the consumer (no more deliveries until released) or releases it; `false` when
    /// this consumer cannot be held and is to be dropped and subscribed again instead.
    pub fn set_held(&self, held: bool) -> bool {
        self.hold.as_ref().is_some_and(|hold| {
            hold.send_replace(held);
            true
        })
    }
}

/// Why consuming failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsumeError {
    /// The broker cannot be reached; the consumer retries by itself.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The request cannot work (unknown topic with creation off, bad cursor for this broker).
    #[error("{0}")]
    Invalid(String),
    /// This broker kind cannot do what was asked.
    #[error("{0}")]
    Unsupported(String),
}

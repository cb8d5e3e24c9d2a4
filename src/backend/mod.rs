//! Broker adapters behind one trait. A backend knows its broker's client library and nothing of
//! HTTP; the pipeline hands it batches and gets back one result per event, in input order.

#[cfg(feature = "amqp")]
pub mod amqp;
mod capabilities;
pub mod consume;
mod health;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(any(feature = "nats", feature = "amqp"))]
mod tls;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::config::BrokerConfig;
use crate::event::Event;
use consume::{ConsumeError, Consumer, GroupSpec, ReadFrom, Reading};

pub use capabilities::{Capabilities, CursorKind, CursorLayout, NoReplay, TopicInfo};
pub use health::{BrokerStatus, Health};

/// An event on its way to a topic.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// Destination topic (Kafka topic, NATS subject, AMQP exchange).
    pub topic: Arc<str>,
    /// The event.
    pub event: Event,
}

/// Where the broker stored an event; which fields are set depends on the broker. In JSON, only
/// the fields that are set (and the flags that are true) appear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// Kafka partition (0 for the memory broker).
    pub partition: Option<i32>,
    /// Kafka or memory-broker offset within the partition.
    pub offset: Option<i64>,
    /// JetStream stream sequence.
    pub sequence: Option<u64>,
    /// JetStream stream the event was stored in.
    pub stream: Option<String>,
    /// The broker recognised the event id as a duplicate and stored nothing new.
    pub duplicate: bool,
    /// The broker could not take the event now: it is in the broker's durable spool and will be
    /// forwarded in order (answered `202`). No other field is set then.
    pub spooled: bool,
}

impl Position {
    /// Writes the fields that are set into `map`: the position's own JSON object, or the rest
    /// of a publish answer's (serde's `flatten` cost more than the whole answer per request).
    pub fn serialize_fields<M: serde::ser::SerializeMap>(
        &self,
        map: &mut M,
    ) -> Result<(), M::Error> {
        if let Some(partition) = self.partition {
            map.serialize_entry("partition", &partition)?;
        }
        if let Some(offset) = self.offset {
            map.serialize_entry("offset", &offset)?;
        }
        if let Some(sequence) = self.sequence {
            map.serialize_entry("sequence", &sequence)?;
        }
        if let Some(stream) = &self.stream {
            map.serialize_entry("stream", stream)?;
        }
        if self.duplicate {
            map.serialize_entry("duplicate", &true)?;
        }
        if self.spooled {
            map.serialize_entry("spooled", &true)?;
        }
        Ok(())
    }
}

impl serde::Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        self.serialize_fields(&mut map)?;
        map.end()
    }
}

/// Why the broker did not take an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The broker cannot be reached now; retrying later should work (503).
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker answered and refused the event (502).
    #[error("broker rejected the event: {0}")]
    Rejected(String),
    /// No acknowledgement arrived in time; the event may or may not be stored (504).
    #[error("broker acknowledgement timed out after {0:?}")]
    Timeout(Duration),
    /// The topic is not valid on this broker (400).
    #[error("{0}")]
    InvalidTopic(String),
    /// The broker could not take the event now and neither could its spool: full, or failing
    /// to write (507).
    #[error("the broker is unavailable and {0}")]
    SpoolRefused(String),
}

/// The result of one event.
pub type PublishResult = Result<Position, PublishError>;

/// Acknowledgements of a sent batch, resolving to one result per event in input order.
pub type Acks = BoxFuture<'static, Vec<PublishResult>>;

/// A broker adapter.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The config `kind`.
    fn kind(&self) -> &'static str;

    /// Hands `batch` to the broker client in order, and returns the future of the broker's
    /// acknowledgements. Sending is sequential so per-key order holds across batches; awaiting
    /// the returned acks may overlap with later sends.
    async fn send(&self, batch: Vec<Outbound>) -> Acks;

    /// Whether the broker is reachable and the last error seen.
    fn status(&self) -> BrokerStatus;

    /// Joins consumer group `spec.group` on `spec.topic`: each event goes to one member of the
    /// group and must be settled; unsettled events come back (at-least-once).
    async fn subscribe(&self, spec: GroupSpec) -> Result<Consumer, ConsumeError> {
        let _ = spec;
        Err(ConsumeError::Unsupported(format!(
            "{} brokers cannot be subscribed to yet",
            self.kind()
        )))
    }

    /// Reads `topic` from a position without a group; nothing is committed, the position is the
    /// reader's own.
    async fn read_from(&self, topic: &str, from: ReadFrom) -> Result<Consumer, ConsumeError> {
        let _ = (topic, from);
        Err(ConsumeError::Unsupported(format!(
            "{} brokers cannot be read from a position",
            self.kind()
        )))
    }

    /// Reads `topic` like [`Backend::read_from`] and says where the read starts. An SSE stream
    /// announces that position as a cursor before the first event, so a client that reconnects
    /// before any event arrives still resumes where its stream began; only the broker knows how
    /// `Earliest` and `Latest` resolve (a memory topic's end offset, Kafka's watermarks of every
    /// partition). A read from a position starts at that position. The default reads without
    /// telling a start, for brokers that have no positions.
    async fn read_resolved(&self, topic: &str, from: ReadFrom) -> Result<Reading, ConsumeError> {
        Ok(Reading::unpositioned(self.read_from(topic, from).await?))
    }

    /// The topics the broker has whose names start with `prefix` (all with `None`), sorted by
    /// name, for discovery (`GET /v1/brokers/{broker}/topics`): callers learn what exists
    /// without knowing the broker's admin API.
    async fn list_topics(&self, prefix: Option<&str>) -> Result<Vec<TopicInfo>, ConsumeError> {
        let _ = prefix;
        Err(ConsumeError::Unsupported(format!(
            "{} brokers cannot list their topics",
            self.kind()
        )))
    }

    /// What the broker can do (replay, cursor layout), so callers decide from capabilities and
    /// never from the broker's kind. The default: no cursors, nothing refused.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Checks a topic name against broker-specific rules beyond the common ones.
    fn check_topic(&self, _topic: &str) -> Result<(), String> {
        Ok(())
    }
}

/// Every broker kind of this build: its config `kind` and its capabilities, for callers that
/// hold a cursor or a kind name but no backend (cursor decoding, the fuzz targets, tests).
pub fn kinds() -> &'static [(&'static str, Capabilities)] {
    static KINDS: OnceLock<Vec<(&'static str, Capabilities)>> = OnceLock::new();
    KINDS.get_or_init(|| {
        #[allow(unused_mut)]
        let mut kinds = vec![(memory::KIND, memory::CAPABILITIES)];
        #[cfg(feature = "nats")]
        kinds.push((nats::KIND, nats::CAPABILITIES));
        #[cfg(feature = "kafka")]
        kinds.push((kafka::KIND, kafka::CAPABILITIES));
        #[cfg(feature = "amqp")]
        kinds.push((amqp::KIND, amqp::CAPABILITIES));
        kinds
    })
}

/// The cursor kind tagged `byte`, among the kinds of this build.
pub fn cursor_kind(byte: u8) -> Option<CursorKind> {
    kinds()
        .iter()
        .filter_map(|(_, capabilities)| capabilities.cursor)
        .find(|kind| kind.byte == byte)
}

/// Results for a batch that failed as a whole.
pub fn fail_all(n: usize, error: PublishError) -> Acks {
    Box::pin(futures::future::ready(vec![Err(error); n]))
}

/// Settings every backend shares, taken from the top-level config.
#[derive(Debug, Clone)]
pub struct BackendSettings {
    /// How long to wait for a broker acknowledgement.
    pub ack_timeout: Duration,
    /// Idempotency window: the JetStream duplicate window of streams sidebus creates.
    pub dedup_window: Duration,
}

/// Builds the backend for a broker. It never waits for the broker: a broker that is down at
/// startup is reported not ready and connected to in the background.
pub async fn build(
    name: &str,
    config: &BrokerConfig,
    settings: &BackendSettings,
) -> Result<Arc<dyn Backend>, BuildError> {
    Ok(match config {
        BrokerConfig::Memory(c) => Arc::new(memory::MemoryBackend::new(c.into())),
        #[cfg(feature = "kafka")]
        BrokerConfig::Kafka(c) => Arc::new(kafka::KafkaBackend::new(name, c, settings)?),
        #[cfg(feature = "nats")]
        BrokerConfig::Nats(c) => Arc::new(nats::NatsBackend::connect(name, c, settings).await?),
        #[cfg(feature = "amqp")]
        BrokerConfig::Amqp(c) => Arc::new(amqp::AmqpBackend::start(name, c, settings)?),
        #[allow(unreachable_patterns)]
        other => {
            return Err(BuildError {
                broker: name.to_string(),
                reason: format!(
                    "this sidebus was built without the `{}` cargo feature",
                    other.kind()
                ),
            })
        }
    })
}

/// A backend could not be set up from its configuration (not a connection failure).
#[derive(Debug, thiserror::Error)]
#[error("broker `{broker}`: {reason}")]
pub struct BuildError {
    /// Broker name.
    pub broker: String,
    /// What is wrong.
    pub reason: String,
}

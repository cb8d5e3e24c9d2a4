//! Where a stream starts: the client's request checked against the broker kind, and the reader
//! opened at a position cursors can grow from.

use super::cursor::Position;
#[cfg(feature = "kafka")]
use super::kafka;
use crate::backend::consume::{ConsumeError, Consumer, ReadFrom};
use crate::backend::memory::MemoryBackend;
use crate::config::BrokerConfig;
use crate::config::StartFrom;
use crate::pipeline::Broker;

/// Where a stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Right after the event whose cursor this is.
    Cursor(Position),
    /// The oldest retained event, or only new ones.
    From(StartFrom),
}

/// What a client asked for, checked against what the broker kind can do.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    /// Topic to read.
    pub topic: String,
    /// Start position.
    pub start: Start,
    /// Only events with this `partitionkey`.
    pub key: Option<String>,
    /// Read through this consumer group (shared, acknowledged) instead of by position.
    pub group: Option<String>,
    /// Name each SSE event after its CloudEvent type.
    pub typed: bool,
}

impl StreamRequest {
    /// Builds a request for a broker of kind `kind`. `cursor` is the `Last-Event-ID` header, or
    /// else the `lastEventId` parameter; it wins over `from`.
    pub fn new(
        kind: &str,
        topic: &str,
        cursor: Option<&str>,
        from: StartFrom,
        key: Option<String>,
        group: Option<String>,
        typed: bool,
    ) -> Result<Self, String> {
        let amqp = kind == "amqp";
        let start = match cursor {
            Some(_) if amqp => {
                return Err(
                    "AMQP has no replay: a queue forgets what it delivered, so there is \
                     no position to resume from. Reconnect without Last-Event-ID / \
                     lastEventId, or use ?group= for a durable queue that keeps events \
                     while no one is connected"
                        .into(),
                )
            }
            Some(_) if group.is_some() => {
                return Err(
                    "a ?group= stream resumes from the group's acknowledged position; \
                     it takes no cursor (Last-Event-ID / lastEventId)"
                        .into(),
                )
            }
            Some(text) => Start::Cursor(
                Position::decode(text, kind, topic)
                    .map_err(|e| format!("cannot resume from `{}`: {e}", truncate(text, 80)))?,
            ),
            None => Start::From(from),
        };
        if amqp && group.is_none() && from == StartFrom::Earliest {
            return Err(
                "AMQP has no replay: an exchange keeps no history, so ?from=earliest \
                 cannot be served; a stream sees events published after it connects"
                    .into(),
            );
        }
        Ok(Self {
            topic: topic.to_string(),
            start,
            key,
            group,
            typed,
        })
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Opens a reader without a cursor, at a concrete position where sidebus can learn it, so every
/// cursor the stream sends names where it began. Returns the reader, the position cursors grow
/// from (`None` where there are none) and whether that position is known well enough to
/// announce before the first event.
pub(super) async fn open_fresh(
    broker: &Broker,
    broker_config: Option<&BrokerConfig>,
    topic: &str,
    from: StartFrom,
) -> Result<(Consumer, Option<Position>, bool), ConsumeError> {
    let backend = &broker.backend;
    let earliest = from == StartFrom::Earliest;
    match backend.kind() {
        "memory" => {
            let next = match (earliest, backend.as_any().downcast_ref::<MemoryBackend>()) {
                // Reads clamp to the oldest retained offset.
                (true, _) => 0,
                (false, Some(memory)) => memory.end_offset(topic).max(0) as u64,
                (false, None) => {
                    let consumer = backend.read_from(topic, ReadFrom::Latest).await?;
                    return Ok((consumer, Some(Position::Memory(0)), false));
                }
            };
            let consumer = backend.read_from(topic, ReadFrom::Sequence(next)).await?;
            Ok((consumer, Some(Position::Memory(next)), true))
        }
        "nats" if earliest => {
            // Stream sequences start at 1; a start below the first retained one delivers from
            // the first retained one, exactly like "all".
            let consumer = backend.read_from(topic, ReadFrom::Sequence(1)).await?;
            Ok((consumer, Some(Position::JetStream(1)), true))
        }
        "nats" => {
            // The stream's last sequence is not known here, so nothing is announced: the first
            // event carries the first cursor.
            let consumer = backend.read_from(topic, ReadFrom::Latest).await?;
            Ok((consumer, Some(Position::JetStream(0)), false))
        }
        #[cfg(feature = "kafka")]
        "kafka" => {
            let Some(BrokerConfig::Kafka(config)) = broker_config else {
                return Ok((
                    backend.read_from(topic, read_from(from)).await?,
                    None,
                    false,
                ));
            };
            if let Some(offsets) = kafka::start_offsets(config, topic, earliest).await? {
                let consumer = backend
                    .read_from(topic, ReadFrom::Offsets(offsets.clone()))
                    .await?;
                return Ok((consumer, Some(Position::Kafka(offsets)), true));
            }
            // The topic does not exist yet: reading creates it (when create_topics is set) and
            // a new topic starts at offset 0 in every partition.
            let consumer = backend.read_from(topic, ReadFrom::Earliest).await?;
            let offsets = kafka::start_offsets(config, topic, true).await?;
            let announce = offsets.is_some();
            Ok((consumer, offsets.map(Position::Kafka), announce))
        }
        _ => {
            let _ = broker_config;
            Ok((
                backend.read_from(topic, read_from(from)).await?,
                None,
                false,
            ))
        }
    }
}

fn read_from(from: StartFrom) -> ReadFrom {
    match from {
        StartFrom::Earliest => ReadFrom::Earliest,
        StartFrom::Latest => ReadFrom::Latest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_check_cursor_and_broker_rules() {
        let cursor = Position::JetStream(7).encode("t");
        let r = StreamRequest::new(
            "nats",
            "t",
            Some(&cursor),
            StartFrom::Earliest,
            None,
            None,
            false,
        )
        .unwrap();
        assert_eq!(
            r.start,
            Start::Cursor(Position::JetStream(7)),
            "a cursor wins over from"
        );
        assert!(StreamRequest::new(
            "kafka",
            "t",
            Some(&cursor),
            StartFrom::Latest,
            None,
            None,
            false
        )
        .unwrap_err()
        .contains("does not belong"));
        assert!(StreamRequest::new(
            "nats",
            "t",
            Some("garbage!"),
            StartFrom::Latest,
            None,
            None,
            false
        )
        .unwrap_err()
        .contains("malformed"));
        assert!(StreamRequest::new(
            "amqp",
            "t",
            Some(&cursor),
            StartFrom::Latest,
            None,
            None,
            false
        )
        .unwrap_err()
        .contains("AMQP has no replay"));
        assert!(
            StreamRequest::new("amqp", "t", None, StartFrom::Earliest, None, None, false)
                .unwrap_err()
                .contains("AMQP has no replay")
        );
        assert!(StreamRequest::new(
            "amqp",
            "t",
            None,
            StartFrom::Earliest,
            None,
            Some("g".into()),
            false
        )
        .is_ok());
        assert!(StreamRequest::new(
            "nats",
            "t",
            Some(&cursor),
            StartFrom::Latest,
            None,
            Some("g".into()),
            false
        )
        .unwrap_err()
        .contains("group"));
    }
}

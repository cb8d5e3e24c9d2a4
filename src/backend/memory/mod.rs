//! The embedded memory broker: one append-only log per topic, bounded by events and bytes per
//! topic and bytes over all topics (`store`), so sidebus runs with no setup and its memory stays
//! flat. Nothing survives a restart.

mod consume;
mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::consume::{ConsumeError, Consumer, GroupSpec, ReadFrom, ReadPosition, Reading};
use super::{
    Acks, Backend, BrokerStatus, Capabilities, CursorKind, CursorLayout, Outbound, Position,
    TopicInfo,
};
use crate::config::topic::TopicPattern;
use crate::config::MemoryConfig;
use crate::event::Event;
pub use store::Bounds;
use store::Store;

/// The config `kind`.
pub const KIND: &str = "memory";

/// Offsets resume from cursors; nothing is refused.
pub const CAPABILITIES: Capabilities = Capabilities {
    cursor: Some(CursorKind {
        byte: 1,
        name: "memory-broker",
        layout: CursorLayout::Sequence,
    }),
    no_replay: None,
    no_wildcards: None,
    no_wildcard_read: None,
};

/// An event as stored, with its offset in the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Offset in the topic, counting from 0 and never reused.
    pub offset: i64,
    /// The event.
    pub event: Event,
}

/// The in-process broker.
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    log: Arc<Log>,
}

#[derive(Debug)]
struct Log {
    store: Mutex<Store>,
    /// Woken on every append, for consumers waiting at the end of a topic.
    appended: Notify,
    /// Consumer groups by (topic, group).
    groups: Mutex<HashMap<(String, String), Arc<consume::Group>>>,
}

impl From<&MemoryConfig> for Bounds {
    fn from(config: &MemoryConfig) -> Self {
        Self {
            events: config.retention,
            topic_bytes: usize::try_from(config.retention_bytes.as_u64()).unwrap_or(usize::MAX),
            broker_bytes: usize::try_from(config.max_bytes.as_u64()).unwrap_or(usize::MAX),
        }
    }
}

impl MemoryBackend {
    /// A broker that keeps what `bounds` allow, dropping the oldest events beyond them.
    pub fn new(bounds: Bounds) -> Self {
        Self {
            log: Arc::new(Log {
                store: Mutex::new(Store::new(bounds)),
                appended: Notify::new(),
                groups: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Up to `max` events of `topic` from offset `from` on (clamped to what is retained).
    pub fn read(&self, topic: &str, from: i64, max: usize) -> Vec<StoredEvent> {
        self.log.read(topic, from, max)
    }

    /// The offset the next event of `topic` will get.
    pub fn end_offset(&self, topic: &str) -> i64 {
        self.log.bounds(topic).1
    }

    /// The offset of the oldest event of `topic` still kept (its end offset when none is).
    pub fn start_offset(&self, topic: &str) -> i64 {
        self.log.bounds(topic).0
    }

    /// Bytes of events kept over all topics, as `max_bytes` counts them.
    pub fn bytes(&self) -> usize {
        self.log.store().bytes()
    }
}

impl Log {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self, topic: &str, from: i64, max: usize) -> Vec<StoredEvent> {
        self.store().read(topic, from, max)
    }

    /// First retained offset and the next offset of `topic`.
    fn bounds(&self, topic: &str) -> (i64, i64) {
        self.store().bounds(topic)
    }

    fn topics(&self) -> Vec<(String, usize)> {
        self.store().topics()
    }

    fn append(&self, batch: Vec<Outbound>) -> Vec<super::PublishResult> {
        let results = {
            let mut store = self.store();
            batch
                .into_iter()
                .map(|out| {
                    let offset = store.append(&out.topic, out.event);
                    Ok(Position {
                        partition: Some(0),
                        offset: Some(offset),
                        ..Position::default()
                    })
                })
                .collect()
        };
        self.appended.notify_waiters();
        results
    }
}

/// `topic` as a pattern; a malformed one is refused.
fn pattern(topic: &str) -> Result<TopicPattern, ConsumeError> {
    TopicPattern::parse(topic).map_err(|e| ConsumeError::Invalid(e.to_string()))
}

#[async_trait::async_trait]
impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn send(&self, batch: Vec<Outbound>) -> Acks {
        Box::pin(futures::future::ready(self.log.append(batch)))
    }

    async fn subscribe(&self, spec: GroupSpec) -> Result<Consumer, ConsumeError> {
        let pattern = pattern(&spec.topic)?;
        Ok(consume::subscribe(self.log.clone(), spec, pattern))
    }

    async fn read_from(&self, topic: &str, from: ReadFrom) -> Result<Consumer, ConsumeError> {
        Ok(self.read_resolved(topic, from).await?.consumer)
    }

    /// A topic name reads by the topic's offsets; a wildcard by the broker-wide append
    /// sequence, so its cursor is one number across every matching topic.
    async fn read_resolved(&self, topic: &str, from: ReadFrom) -> Result<Reading, ConsumeError> {
        let pattern = pattern(topic)?;
        if pattern.is_wildcard() {
            let next = match from {
                ReadFrom::Earliest => 0,
                ReadFrom::Latest => self.log.store().next_seq(),
                ReadFrom::Sequence(next) => next,
                ReadFrom::Offsets(_) => {
                    return Err(ConsumeError::Invalid(
                        "a memory-broker pattern cursor is one sequence, not partition offsets"
                            .into(),
                    ))
                }
            };
            return Ok(Reading {
                consumer: consume::read_pattern(self.log.clone(), pattern, next),
                start: Some(ReadPosition::Sequence(next)),
                exact: true,
            });
        }
        let next = match from {
            // Reads clamp to the oldest retained offset.
            ReadFrom::Earliest => 0,
            ReadFrom::Latest => self.end_offset(topic).max(0) as u64,
            ReadFrom::Sequence(next) => next,
            ReadFrom::Offsets(_) => {
                return consume::read(self.log.clone(), topic, from).map(Reading::unpositioned)
            }
        };
        Ok(Reading {
            consumer: consume::read(self.log.clone(), topic, ReadFrom::Sequence(next))?,
            start: Some(ReadPosition::Sequence(next)),
            exact: true,
        })
    }

    async fn list_topics(&self, prefix: Option<&str>) -> Result<Vec<TopicInfo>, ConsumeError> {
        let mut topics: Vec<TopicInfo> = self
            .log
            .topics()
            .into_iter()
            .filter(|(name, _)| prefix.is_none_or(|p| name.starts_with(p)))
            .map(|(name, messages)| TopicInfo {
                name,
                partitions: None,
                messages: Some(messages as u64),
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn status(&self) -> BrokerStatus {
        BrokerStatus {
            connected: true,
            last_error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::consume::Delivery;
    use crate::config::StartFrom;
    use bytes::Bytes;
    use std::sync::Arc;

    fn out(topic: &str, data: &'static str) -> Outbound {
        Outbound {
            topic: Arc::from(topic),
            event: Event {
                id: data.into(),
                source: "s".into(),
                ty: "t".into(),
                time: None,
                datacontenttype: None,
                dataschema: None,
                subject: None,
                extensions: vec![],
                data: Bytes::from_static(data.as_bytes()),
            },
        }
    }

    #[tokio::test]
    async fn offsets_count_per_topic_and_retention_drops_oldest() {
        let broker = MemoryBackend::new(Bounds {
            events: 2,
            topic_bytes: usize::MAX,
            broker_bytes: usize::MAX,
        });
        let acks = broker
            .send(vec![
                out("a", "1"),
                out("b", "x"),
                out("a", "2"),
                out("a", "3"),
            ])
            .await
            .await;
        let offsets: Vec<_> = acks.iter().map(|r| r.as_ref().unwrap().offset).collect();
        assert_eq!(offsets, vec![Some(0), Some(0), Some(1), Some(2)]);
        let kept = broker.read("a", 0, 10);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].offset, 1);
        assert_eq!(&kept[1].event.data[..], b"3");
        assert_eq!(broker.end_offset("a"), 3);
        assert!(broker.read("missing", 0, 10).is_empty());
    }

    /// A broker keeping `topic_bytes` per topic and `broker_bytes` in all, events uncounted.
    fn by_bytes(topic_bytes: usize, broker_bytes: usize) -> MemoryBackend {
        MemoryBackend::new(Bounds {
            events: usize::MAX,
            topic_bytes,
            broker_bytes,
        })
    }

    /// Sends `(topic, id)` pairs, each weighing 4 bytes: one-letter id and payload, source and type.
    async fn send(broker: &MemoryBackend, events: &[(&str, &'static str)]) {
        let batch = events.iter().map(|(t, id)| out(t, id)).collect();
        for ack in broker.send(batch).await.await {
            ack.expect("the memory broker takes every event");
        }
    }

    async fn next(consumer: &mut Consumer) -> Delivery {
        consumer
            .deliveries
            .recv()
            .await
            .expect("the consumer runs")
            .expect("no consume error")
    }

    #[tokio::test]
    async fn a_cursor_at_a_trimmed_offset_resumes_at_the_oldest_kept() {
        let broker = by_bytes(3 * 4, usize::MAX);
        send(&broker, &[("a", "1"), ("a", "2"), ("a", "3"), ("a", "4")]).await;
        assert_eq!(broker.start_offset("a"), 1, "1 made room for 4");
        let mut reader = broker.read_from("a", ReadFrom::Sequence(0)).await.unwrap();
        let first = next(&mut reader).await;
        assert_eq!((first.spot.offset, first.event.id.as_str()), (1, "2"));
        send(&broker, &[("b", "5"), ("a", "6"), ("a", "7")]).await;
        let mut reader = broker.read_from("a", ReadFrom::Sequence(2)).await.unwrap();
        let first = next(&mut reader).await;
        assert_eq!((first.spot.offset, first.event.id.as_str()), (3, "4"));
        let mut earliest = broker.read_from("a", ReadFrom::Earliest).await.unwrap();
        assert_eq!(next(&mut earliest).await.spot.offset, 3);
    }

    #[tokio::test]
    async fn a_group_behind_the_broker_bound_resumes_at_the_oldest_kept() {
        let broker = by_bytes(usize::MAX, 3 * 4);
        let mut member = broker
            .subscribe(GroupSpec {
                topic: "a".into(),
                group: "g".into(),
                start: StartFrom::Earliest,
                max_in_flight: 1,
            })
            .await
            .unwrap();
        send(&broker, &[("a", "1"), ("a", "2")]).await;
        let first = next(&mut member).await;
        assert_eq!(first.spot.offset, 0);
        first.settle.nack().await.unwrap();
        send(&broker, &[("b", "3"), ("b", "4"), ("a", "5")]).await;
        assert_eq!(broker.start_offset("a"), 2, "1 and 2 made room");
        assert_eq!(broker.bytes(), 3 * 4);
        assert_eq!((member.lag)(), Some(1), "only what is still there lags");
        let resumed = next(&mut member).await;
        assert_eq!(
            (
                resumed.spot.offset,
                resumed.event.id.as_str(),
                resumed.redelivered
            ),
            (2, "5", false),
            "the nacked 1 is gone, not redelivered; 2 was never handed out"
        );
        resumed.settle.ack().await.unwrap();
        assert_eq!((member.lag)(), Some(0));
    }
}

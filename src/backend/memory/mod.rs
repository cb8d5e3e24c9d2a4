//! The embedded memory broker: one append-only log per topic with bounded retention, so sidebus
//! runs with no setup. Nothing survives a restart.

mod consume;

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::consume::{ConsumeError, Consumer, GroupSpec, ReadFrom};
use super::{Acks, Backend, BrokerStatus, Outbound, Position};
use crate::event::Event;

/// An event as stored, with its offset in the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Offset in the topic, counting from 0 and never reused.
    pub offset: i64,
    /// The event.
    pub event: Event,
}

#[derive(Debug, Default)]
struct TopicLog {
    /// Offset of the first retained event.
    start: i64,
    events: VecDeque<Event>,
}

/// The in-process broker.
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    log: Arc<Log>,
}

#[derive(Debug)]
struct Log {
    retention: usize,
    topics: Mutex<HashMap<String, TopicLog>>,
    /// Woken on every append, for consumers waiting at the end of a topic.
    appended: Notify,
    /// Consumer groups by (topic, group).
    groups: Mutex<HashMap<(String, String), Arc<consume::Group>>>,
}

impl MemoryBackend {
    /// A broker that keeps at most `retention` events per topic.
    pub fn new(retention: usize) -> Self {
        Self {
            log: Arc::new(Log {
                retention,
                topics: Mutex::new(HashMap::new()),
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
}

impl Log {
    fn read(&self, topic: &str, from: i64, max: usize) -> Vec<StoredEvent> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let Some(log) = topics.get(topic) else {
            return Vec::new();
        };
        let skip = (from - log.start).max(0) as usize;
        log.events
            .iter()
            .skip(skip)
            .take(max)
            .enumerate()
            .map(|(i, event)| StoredEvent {
                offset: log.start + (skip + i) as i64,
                event: event.clone(),
            })
            .collect()
    }

    /// First retained offset and the next offset of `topic`.
    fn bounds(&self, topic: &str) -> (i64, i64) {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.get(topic).map_or((0, 0), |log| {
            (log.start, log.start + log.events.len() as i64)
        })
    }

    fn append(&self, batch: Vec<Outbound>) -> Vec<super::PublishResult> {
        let results = self.append_locked(batch);
        self.appended.notify_waiters();
        results
    }

    fn append_locked(&self, batch: Vec<Outbound>) -> Vec<super::PublishResult> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        batch
            .into_iter()
            .map(|out| {
                let log = topics.entry(out.topic.to_string()).or_default();
                let offset = log.start + log.events.len() as i64;
                log.events.push_back(out.event);
                if log.events.len() > self.retention {
                    log.events.pop_front();
                    log.start += 1;
                }
                Ok(Position {
                    partition: Some(0),
                    offset: Some(offset),
                    ..Position::default()
                })
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn send(&self, batch: Vec<Outbound>) -> Acks {
        Box::pin(futures::future::ready(self.log.append(batch)))
    }

    async fn subscribe(&self, spec: GroupSpec) -> Result<Consumer, ConsumeError> {
        Ok(consume::subscribe(self.log.clone(), spec))
    }

    async fn read_from(&self, topic: &str, from: ReadFrom) -> Result<Consumer, ConsumeError> {
        consume::read(self.log.clone(), topic, from)
    }

    fn status(&self) -> BrokerStatus {
        BrokerStatus {
            connected: true,
            last_error: None,
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let broker = MemoryBackend::new(2);
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
}

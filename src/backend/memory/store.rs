//! What the memory broker keeps: one log per topic, trimmed from its oldest end by three bounds —
//! events per topic, bytes per topic, bytes of the whole broker — so memory stays flat whatever
//! the events weigh and however many topics are written.
//!
//! Offsets count per topic and are never reused: a topic trimmed to nothing keeps its next
//! offset. The event just appended is never trimmed, even when it alone outweighs a bound: it
//! has been acknowledged, so it stays readable until the next event of its topic (the topic
//! bounds) or of the broker (`max_bytes`) takes its place.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::StoredEvent;
use crate::config::topic::TopicPattern;
use crate::event::Event;

/// How much the memory broker keeps; an event weighs [`Event::weight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Events kept per topic (`retention`).
    pub events: usize,
    /// Bytes of events kept per topic (`retention_bytes`).
    pub topic_bytes: usize,
    /// Bytes of events kept by the whole broker (`max_bytes`).
    pub broker_bytes: usize,
}

#[derive(Debug)]
struct Slot {
    /// Broker-wide order of appends, to find the oldest event across topics.
    seq: u64,
    weight: usize,
    event: Event,
}

#[derive(Debug, Default)]
struct TopicLog {
    /// Offset of the first kept event.
    start: i64,
    /// Weight of the kept events.
    bytes: usize,
    slots: VecDeque<Slot>,
}

impl TopicLog {
    fn end(&self) -> i64 {
        self.start + self.slots.len() as i64
    }
}

/// The logs of every topic and the bounds over them.
#[derive(Debug)]
pub(super) struct Store {
    bounds: Bounds,
    topics: HashMap<Arc<str>, TopicLog>,
    /// The `seq` of every non-empty topic's first kept event: the first entry names the topic
    /// holding the broker's oldest event.
    oldest: BTreeMap<u64, Arc<str>>,
    /// Weight of every kept event.
    bytes: usize,
    next_seq: u64,
}

impl Store {
    pub(super) fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            topics: HashMap::new(),
            oldest: BTreeMap::new(),
            bytes: 0,
            next_seq: 0,
        }
    }

    /// Appends `event` to `topic`, trims what the bounds no longer allow and returns the
    /// event's offset.
    pub(super) fn append(&mut self, topic: &Arc<str>, event: Event) -> i64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let weight = event.weight();
        let log = match self.topics.get_mut(&**topic) {
            Some(log) => log,
            None => self.topics.entry(topic.clone()).or_default(),
        };
        let offset = log.end();
        if log.slots.is_empty() {
            self.oldest.insert(seq, topic.clone());
        }
        log.slots.push_back(Slot { seq, weight, event });
        log.bytes += weight;
        self.bytes += weight;
        let bounds = self.bounds;
        while log.slots.len() > bounds.events
            || (log.bytes > bounds.topic_bytes && log.slots.len() > 1)
        {
            self.bytes -= trim_front(log, &mut self.oldest, topic);
        }
        while self.bytes > bounds.broker_bytes {
            let Some((&first, name)) = self.oldest.first_key_value() else {
                break;
            };
            if first == seq {
                // Only the event just appended is left.
                break;
            }
            let name = name.clone();
            let log = self
                .topics
                .get_mut(&*name)
                .expect("a topic named in `oldest` has a log");
            self.bytes -= trim_front(log, &mut self.oldest, &name);
        }
        offset
    }

    /// Up to `max` events of `topic` from offset `from` on; an offset already trimmed reads
    /// from the first kept event.
    pub(super) fn read(&self, topic: &str, from: i64, max: usize) -> Vec<StoredEvent> {
        let Some(log) = self.topics.get(topic) else {
            return Vec::new();
        };
        let skip = (from - log.start).max(0) as usize;
        log.slots
            .iter()
            .skip(skip)
            .take(max)
            .enumerate()
            .map(|(i, slot)| StoredEvent {
                offset: log.start + (skip + i) as i64,
                event: slot.event.clone(),
            })
            .collect()
    }

    /// First kept offset and the next offset of `topic`.
    pub(super) fn bounds(&self, topic: &str) -> (i64, i64) {
        self.topics
            .get(topic)
            .map_or((0, 0), |log| (log.start, log.end()))
    }

    /// Every topic written to and the number of events it keeps.
    pub(super) fn topics(&self) -> Vec<(String, usize)> {
        self.topics
            .iter()
            .map(|(name, log)| (name.to_string(), log.slots.len()))
            .collect()
    }

    /// Weight of every event kept, over all topics.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The broker-wide sequence the next event appended to any topic will get.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The broker-wide sequence of the event of `topic` at `offset`, if it is kept.
    pub(super) fn seq_at(&self, topic: &str, offset: i64) -> Option<u64> {
        let log = self.topics.get(topic)?;
        let index = usize::try_from(offset - log.start).ok()?;
        log.slots.get(index).map(|slot| slot.seq)
    }

    /// The topics written to whose names `pattern` matches.
    pub(super) fn matching(&self, pattern: &TopicPattern) -> Vec<Arc<str>> {
        self.topics
            .keys()
            .filter(|name| pattern.matches(name))
            .cloned()
            .collect()
    }

    /// Up to `max` events of the topics `pattern` matches whose broker-wide sequence is `from`
    /// or later, in the order they were appended, each with its topic and sequence.
    pub(super) fn read_since(
        &self,
        pattern: &TopicPattern,
        from: u64,
        max: usize,
    ) -> Vec<(Arc<str>, u64, StoredEvent)> {
        let mut found: Vec<(Arc<str>, u64, StoredEvent)> = Vec::new();
        for (name, log) in self.topics.iter().filter(|(n, _)| pattern.matches(n)) {
            let first = log.slots.partition_point(|slot| slot.seq < from);
            found.extend(
                log.slots
                    .iter()
                    .skip(first)
                    .take(max)
                    .enumerate()
                    .map(|(i, slot)| {
                        let event = StoredEvent {
                            offset: log.start + (first + i) as i64,
                            event: slot.event.clone(),
                        };
                        (name.clone(), slot.seq, event)
                    }),
            );
        }
        found.sort_by_key(|(_, seq, _)| *seq);
        found.truncate(max);
        found
    }
}

/// Drops the first kept event of `log` (topic `name`) and returns its weight.
fn trim_front(log: &mut TopicLog, oldest: &mut BTreeMap<u64, Arc<str>>, name: &Arc<str>) -> usize {
    let slot = log.slots.pop_front().expect("trimming a non-empty log");
    log.start += 1;
    log.bytes -= slot.weight;
    oldest.remove(&slot.seq);
    if let Some(next) = log.slots.front() {
        oldest.insert(next.seq, name.clone());
    }
    slot.weight
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    /// An event of `size` payload bytes with ids of one letter, so its weight is easy to state.
    fn event(id: &str, size: usize) -> Event {
        Event {
            id: id.into(),
            source: "s".into(),
            ty: "t".into(),
            time: None,
            datacontenttype: None,
            dataschema: None,
            subject: None,
            extensions: vec![],
            data: Bytes::from(vec![b'x'; size]),
        }
    }

    /// Weight of `event(one letter, size)`: payload plus id, source and type.
    fn weight(size: usize) -> usize {
        size + 3
    }

    fn store(events: usize, topic_bytes: usize, broker_bytes: usize) -> Store {
        Store::new(Bounds {
            events,
            topic_bytes,
            broker_bytes,
        })
    }

    fn put(store: &mut Store, topic: &str, id: &str, size: usize) -> i64 {
        store.append(&Arc::from(topic), event(id, size))
    }

    fn ids(store: &Store, topic: &str) -> Vec<String> {
        store
            .read(topic, 0, usize::MAX)
            .into_iter()
            .map(|s| s.event.id)
            .collect()
    }

    #[test]
    fn topic_bytes_drop_the_oldest_of_that_topic_only() {
        let mut store = store(1000, 3 * weight(100), usize::MAX);
        put(&mut store, "b", "x", 100);
        for id in ["1", "2", "3", "4", "5"] {
            put(&mut store, "a", id, 100);
        }
        assert_eq!(ids(&store, "a"), ["3", "4", "5"]);
        assert_eq!(store.bounds("a"), (2, 5));
        assert_eq!(ids(&store, "b"), ["x"], "another topic keeps its own");
        assert_eq!(store.bytes(), 4 * weight(100));
    }

    #[test]
    fn broker_bytes_drop_the_oldest_across_topics() {
        let mut store = store(1000, usize::MAX, 4 * weight(10));
        for (topic, id) in [("a", "1"), ("b", "2"), ("a", "3"), ("b", "4")] {
            put(&mut store, topic, id, 10);
        }
        assert_eq!(store.bytes(), 4 * weight(10), "at the bound, nothing goes");
        put(&mut store, "c", "5", 10);
        assert_eq!(ids(&store, "a"), ["3"], "a's 1 was the broker's oldest");
        put(&mut store, "c", "6", 10);
        assert_eq!(ids(&store, "b"), ["4"], "then b's 2");
        put(&mut store, "c", "7", 10);
        assert!(ids(&store, "a").is_empty(), "then a's 3, emptying a");
        assert_eq!(ids(&store, "c"), ["5", "6", "7"]);
        assert_eq!(store.bytes(), 4 * weight(10));
        assert_eq!(
            put(&mut store, "a", "8", 10),
            2,
            "an emptied topic goes on counting where it stopped"
        );
        assert_eq!(store.bounds("a"), (2, 3));
        assert_eq!(ids(&store, "b"), Vec::<String>::new(), "b's 4 made room");
    }

    #[test]
    fn count_and_bytes_together_whichever_bound_is_reached_first() {
        let mut store = store(3, 10 * weight(10), usize::MAX);
        for id in ["1", "2", "3", "4"] {
            put(&mut store, "a", id, 10);
        }
        assert_eq!(ids(&store, "a"), ["2", "3", "4"], "small events: the count");
        put(&mut store, "a", "5", 5 * weight(10));
        assert_eq!(ids(&store, "a"), ["3", "4", "5"], "the count still");
        put(&mut store, "a", "6", 5 * weight(10));
        assert_eq!(ids(&store, "a"), ["6"], "heavy events: the bytes");
        assert_eq!(store.bounds("a"), (5, 6));
    }

    #[test]
    fn an_event_heavier_than_the_bounds_is_kept_alone_until_the_next_one() {
        let mut store = store(1000, 100, 150);
        put(&mut store, "a", "1", 10);
        put(&mut store, "b", "2", 10);
        assert_eq!(put(&mut store, "a", "big", 500), 1);
        assert_eq!(ids(&store, "a"), ["big"], "acknowledged, so kept");
        assert!(ids(&store, "b").is_empty(), "everything older made room");
        assert_eq!(store.bytes(), weight(500) + 2);
        put(&mut store, "b", "3", 10);
        assert!(ids(&store, "a").is_empty(), "the next event replaces it");
        assert_eq!(store.bounds("a"), (2, 2));
        assert_eq!(ids(&store, "b"), ["3"]);
    }

    #[test]
    fn a_trimmed_offset_reads_from_the_oldest_kept() {
        let mut store = store(2, usize::MAX, usize::MAX);
        for id in ["1", "2", "3", "4"] {
            put(&mut store, "a", id, 1);
        }
        let read = store.read("a", 1, 10);
        assert_eq!(read[0].offset, 2);
        assert_eq!(read[0].event.id, "3");
        assert!(store.read("a", 4, 10).is_empty());
        assert!(store.read("missing", 0, 10).is_empty());
    }

    proptest! {
        /// Any appends: offsets count on per topic, every bound holds except for the event just
        /// appended, the weights add up and the newest event of the broker is always there.
        #[test]
        fn bounds_hold_and_offsets_never_repeat(
            appends in proptest::collection::vec((0usize..4, 0usize..200), 1..200),
            events in 1usize..6,
            topic_bytes in 1usize..600,
            broker_bytes in 1usize..1200,
        ) {
            let mut store = store(events, topic_bytes, broker_bytes);
            let mut next = [0i64; 4];
            for (i, (topic, size)) in appends.into_iter().enumerate() {
                let name = topic.to_string();
                let offset = put(&mut store, &name, "e", size);
                prop_assert_eq!(offset, next[topic]);
                next[topic] += 1;
                let kept = store.read(&name, 0, usize::MAX);
                prop_assert_eq!(kept.last().map(|s| s.offset), Some(offset), "after {}", i);
                let (mut total, mut count) = (0, 0);
                for (t, &next) in next.iter().enumerate() {
                    let log = store.read(&t.to_string(), 0, usize::MAX);
                    let (start, end) = store.bounds(&t.to_string());
                    prop_assert_eq!(end, next);
                    prop_assert_eq!(log.len() as i64, end - start);
                    let bytes: usize = log.iter().map(|s| s.event.weight()).sum();
                    prop_assert!(log.len() <= events);
                    prop_assert!(bytes <= topic_bytes || log.len() == 1);
                    total += bytes;
                    count += log.len();
                }
                prop_assert_eq!(total, store.bytes());
                prop_assert!(total <= broker_bytes || count == 1);
            }
        }
    }
}

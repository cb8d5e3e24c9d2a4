//! The state a Kafka group consumer's pump, its settles and librdkafka's callbacks share: per
//! assigned partition, the watermark of what was handed out and the continuity of what was
//! fetched; the callbacks keep it in step with rebalances and statistics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;

use super::fetch::Continuity;
use super::metadata::METADATA_TIMEOUT;
use super::watermark::Watermark;

/// How long a partition that is behind the broker's end may receive nothing while fetching
/// before it is fetched again from further back (see `fetch`): several fetch waits.
const STALLED: Duration = Duration::from_secs(3);

/// The state of one assigned partition.
#[derive(Debug)]
pub(super) struct Part {
    /// Identifies this assignment of the partition: settles of an earlier one are ignored.
    pub(super) assignment: u64,
    /// Identifies the current fetch sequence: received events of an earlier one (before a
    /// rewind) are dropped.
    pub(super) epoch: u64,
    pub(super) watermark: Watermark,
    /// Seek requested by a nack, not done yet: what was received from here on is fetched again.
    pub(super) rewind: Option<i64>,
    /// Seek requested because offsets were skipped, not done yet: fetching again from here
    /// shows whether the broker has them; what was received before stays.
    pub(super) recheck: Option<i64>,
    /// Which offsets the fetches skipped, and whether the broker has them.
    pub(super) continuity: Continuity,
    /// When something was last received, or the fetch last sought because nothing was.
    pub(super) progressed: Instant,
}

#[derive(Debug, Default)]
pub(super) struct GroupState {
    /// The assigned partitions, by topic (several when the group consumes a pattern).
    pub(super) topics: HashMap<Arc<str>, HashMap<i32, Part>>,
    /// Source of assignment and epoch ids.
    pub(super) counter: u64,
    /// A rebalance happened since the pump last looked (it re-applies a pause).
    pub(super) assignment_changed: bool,
    /// The assigned partitions are paused: nothing arrives, by design.
    pub(super) paused: bool,
}

impl GroupState {
    /// The state of `topic`'s `partition`, if it is assigned.
    pub(super) fn part(&self, topic: &str, partition: i32) -> Option<&Part> {
        self.topics.get(topic)?.get(&partition)
    }

    /// The state of `topic`'s `partition`, if it is assigned, for changing it.
    pub(super) fn part_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Part> {
        self.topics.get_mut(topic)?.get_mut(&partition)
    }

    /// The state of `topic`'s `partition`, assigned anew when it was not, and the topic's name
    /// as the state keeps it (shared, not copied, by every event received from it).
    pub(super) fn part_or_fresh(&mut self, topic: &str, partition: i32) -> (Arc<str>, &mut Part) {
        if self.part(topic, partition).is_none() {
            let part = self.fresh();
            self.assign(topic, partition, part);
        }
        let name = self
            .topics
            .get_key_value(topic)
            .map(|(name, _)| name.clone())
            .expect("assigned above");
        let part = self.part_mut(topic, partition).expect("assigned above");
        (name, part)
    }

    /// Records a new assignment of `topic`'s `partition`.
    pub(super) fn assign(&mut self, topic: &str, partition: i32, part: Part) {
        match self.topics.get_mut(topic) {
            Some(parts) => {
                parts.insert(partition, part);
            }
            None => {
                self.topics
                    .insert(Arc::from(topic), HashMap::from([(partition, part)]));
            }
        }
    }

    /// Forgets `topic`'s `partition` (revoked).
    pub(super) fn revoke(&mut self, topic: &str, partition: i32) {
        if let Some(parts) = self.topics.get_mut(topic) {
            parts.remove(&partition);
            if parts.is_empty() {
                self.topics.remove(topic);
            }
        }
    }

    /// Every assigned partition with its topic.
    pub(super) fn parts_mut(&mut self) -> impl Iterator<Item = (&Arc<str>, i32, &mut Part)> {
        self.topics
            .iter_mut()
            .flat_map(|(topic, parts)| parts.iter_mut().map(move |(p, part)| (topic, *p, part)))
    }

    /// A new assignment of a partition, with ids of its own.
    pub(super) fn fresh(&mut self) -> Part {
        self.counter += 1;
        Part {
            assignment: self.counter,
            epoch: self.counter,
            watermark: Watermark::default(),
            rewind: None,
            recheck: None,
            continuity: Continuity::default(),
            progressed: Instant::now(),
        }
    }
}

/// What the group consumer's pump, its settles and its context share.
pub(super) struct Group {
    /// The topic or pattern consumed, for logs.
    pub(super) topic: String,
    pub(super) state: Mutex<GroupState>,
    /// Wakes the pump: a rewind was requested or the assignment changed.
    pub(super) wake: Notify,
}

impl Group {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// librdkafka callbacks: rebalances update the group's partition state, statistics the lag.
pub(super) struct Context {
    /// The topic or pattern consumed, for logs.
    pub(super) topic: String,
    pub(super) group: Option<Arc<Group>>,
    /// Events on the broker not received yet; -1 while unknown.
    pub(super) lag: Arc<AtomicI64>,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        use RDKafkaLogLevel::*;
        match level {
            Emerg | Alert | Critical | Error => {
                tracing::error!(target: "librdkafka", topic = %self.topic, fac, "{message}")
            }
            Warning => tracing::warn!(target: "librdkafka", topic = %self.topic, fac, "{message}"),
            Notice | Info => {
                tracing::info!(target: "librdkafka", topic = %self.topic, fac, "{message}")
            }
            Debug => tracing::debug!(target: "librdkafka", topic = %self.topic, fac, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(topic = %self.topic, %error, reason, "kafka consumer error");
    }

    fn stats(&self, statistics: Statistics) {
        let mut lag = 0i64;
        let mut state = self.group.as_ref().map(|g| g.lock());
        let mut stalled = false;
        for (name, topic) in &statistics.topics {
            for (id, p) in &topic.partitions {
                if *id < 0 || !p.desired {
                    continue;
                }
                let end = if p.ls_offset >= 0 {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                if let Some(state) = state.as_mut().filter(|s| !s.paused) {
                    if let Some(part) = state.part_mut(name, *id) {
                        if part.progressed.elapsed() >= STALLED && part.continuity.behind(end) {
                            part.progressed = Instant::now();
                            if let Some(from) = part.continuity.stalled() {
                                tracing::debug!(topic = %name, partition = id, from, end, "kafka fetch stalled below the end; fetching again");
                                part.recheck = Some(part.recheck.map_or(from, |r| r.min(from)));
                                stalled = true;
                            }
                        }
                    }
                }
                let position = if p.app_offset >= 0 {
                    p.app_offset
                } else {
                    p.committed_offset
                };
                if end >= 0 && position >= 0 {
                    lag += (end - position).max(0);
                }
            }
        }
        self.lag.store(lag, Ordering::Relaxed);
        drop(state);
        if let Some(group) = self.group.as_ref().filter(|_| stalled) {
            group.wake.notify_one();
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Some(group) = &self.group else { return };
        let mut state = group.lock();
        match rebalance {
            Rebalance::Assign(tpl) => {
                for element in tpl.elements() {
                    let part = state.fresh();
                    state.assign(element.topic(), element.partition(), part);
                }
            }
            Rebalance::Revoke(tpl) => {
                for element in tpl.elements() {
                    state.revoke(element.topic(), element.partition());
                }
            }
            Rebalance::Error(error) => {
                tracing::warn!(topic = %self.topic, %error, "kafka rebalance failed");
                state.topics.clear();
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Some(group) = &self.group else { return };
        // Fetching starts at each partition's committed offset, which may lie inside a record
        // batch: expect it first (see `fetch`), so a broker that skips the batch's rest is
        // caught. The lookup blocks this poll for one round trip per rebalance.
        let committed = match rebalance {
            Rebalance::Assign(tpl) => consumer
                .committed_offsets((*tpl).clone(), METADATA_TIMEOUT)
                .map_err(
                    |e| tracing::warn!(topic = %self.topic, error = %e, "kafka committed offsets"),
                )
                .ok(),
            _ => None,
        };
        let mut state = group.lock();
        for element in committed.iter().flat_map(|tpl| tpl.elements()) {
            if let (Offset::Offset(offset), Some(part)) = (
                element.offset(),
                state.part_mut(element.topic(), element.partition()),
            ) {
                part.continuity.expect(offset, 0);
            }
        }
        state.assignment_changed = true;
        drop(state);
        group.wake.notify_one();
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::warn!(topic = %self.topic, %error, "kafka offset commit failed"),
        }
    }
}

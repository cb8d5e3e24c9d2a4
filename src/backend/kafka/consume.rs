//! Kafka group consumers; positional reads are in [`super::read`].
//!
//! A group subscription is a `StreamConsumer` in group `spec.group` with auto-commit on and
//! automatic offset storing off: an offset is stored (and committed by the next auto-commit, on
//! revocation or on close) only once it and every earlier offset of its partition handed out are
//! acknowledged — the per-partition [`Watermark`]. A nack rewinds: the partition is sought back
//! to the nacked offset, so it and everything after it are delivered again (at-least-once; later
//! events that were already in flight may arrive twice). What is handed out is bounded by
//! `max_in_flight`; when that many are unsettled the assigned partitions are paused (the
//! consumer keeps polling so it stays in the group), so a slow subscriber leaves its backlog on
//! the broker instead of in memory.
//!
//! Should a seek fail (librdkafka reports seek errors only in its log), the nacked offset still
//! holds the committed position back, so it is delivered again after the next rebalance or
//! restart; nothing past it is committed meanwhile.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};

use super::watermark::Watermark;
use crate::backend::consume::{
    ConsumeError, Consumer, Delivery, GroupSpec, Settle, Spot, StartFrom,
};
use crate::event::{self, Event, PARTITION_KEY};

/// librdkafka's pre-fetch queue per consumer, in KiB: small, so a slow subscriber's backlog
/// stays on the broker.
const FETCH_QUEUE_KBYTES: &str = "8192";
/// How often librdkafka reports statistics, the source of the consumer lag.
const STATISTICS_INTERVAL_MS: &str = "5000";
/// How long a metadata or watermark request may take.
pub(super) const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to retry a topic whose metadata is not ready yet (a leader being elected).
const METADATA_PATIENCE: Duration = Duration::from_secs(15);

/// Rebuilds the CloudEvent from a Kafka message in binary mode: `ce_<attr>` headers,
/// `content-type`, value = data; the key is the partition key when no header names one.
pub(super) fn to_event(message: &BorrowedMessage<'_>) -> Event {
    let mut attrs: Vec<(String, String)> = Vec::new();
    let mut content_type = None;
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            let Some(value) = header.value.and_then(|v| std::str::from_utf8(v).ok()) else {
                continue;
            };
            if let Some(attr) = header.key.strip_prefix("ce_") {
                attrs.push((attr.to_string(), value.to_string()));
            } else if header.key.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.to_string());
            }
        }
    }
    if !attrs.iter().any(|(name, _)| name == PARTITION_KEY) {
        if let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) {
            attrs.push((PARTITION_KEY.to_string(), key.to_string()));
        }
    }
    let data = Bytes::copy_from_slice(message.payload().unwrap_or_default());
    event::from_broker(attrs, content_type, data)
}

/// The state of one assigned partition.
#[derive(Debug)]
struct Part {
    /// Identifies this assignment of the partition: settles of an earlier one are ignored.
    assignment: u64,
    /// Identifies the current fetch sequence: received events of an earlier one (before a
    /// rewind) are dropped.
    epoch: u64,
    watermark: Watermark,
    /// Seek requested by a nack, not done yet.
    rewind: Option<i64>,
    /// A seek was done; the next event received tells where fetching went on.
    resuming: bool,
}

#[derive(Debug, Default)]
struct GroupState {
    partitions: HashMap<i32, Part>,
    /// Source of assignment and epoch ids.
    counter: u64,
    /// A rebalance happened since the pump last looked (it re-applies a pause).
    assignment_changed: bool,
}

impl GroupState {
    fn fresh(&mut self) -> Part {
        self.counter += 1;
        Part {
            assignment: self.counter,
            epoch: self.counter,
            watermark: Watermark::default(),
            rewind: None,
            resuming: false,
        }
    }
}

/// What the group consumer's pump, its settles and its context share.
pub(super) struct Group {
    topic: String,
    state: Mutex<GroupState>,
    /// Wakes the pump: a rewind was requested or the assignment changed.
    wake: Notify,
}

impl Group {
    fn lock(&self) -> std::sync::MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// librdkafka callbacks: rebalances update the group's partition state, statistics the lag.
pub(super) struct Context {
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
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let mut lag = 0i64;
        for (id, p) in &topic.partitions {
            if *id < 0 || !p.desired {
                continue;
            }
            let end = if p.ls_offset >= 0 {
                p.ls_offset
            } else {
                p.hi_offset
            };
            let position = if p.app_offset >= 0 {
                p.app_offset
            } else {
                p.committed_offset
            };
            if end >= 0 && position >= 0 {
                lag += (end - position).max(0);
            }
        }
        self.lag.store(lag, Ordering::Relaxed);
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Some(group) = &self.group else { return };
        let mut state = group.lock();
        match rebalance {
            Rebalance::Assign(tpl) => {
                for element in tpl.elements_for_topic(&self.topic) {
                    let part = state.fresh();
                    state.partitions.insert(element.partition(), part);
                }
            }
            Rebalance::Revoke(tpl) => {
                for element in tpl.elements_for_topic(&self.topic) {
                    state.partitions.remove(&element.partition());
                }
            }
            Rebalance::Error(error) => {
                tracing::warn!(topic = %self.topic, %error, "kafka rebalance failed");
                state.partitions.clear();
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        if let Some(group) = &self.group {
            group.lock().assignment_changed = true;
            group.wake.notify_one();
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::warn!(topic = %self.topic, %error, "kafka offset commit failed"),
        }
    }
}

pub(super) type KafkaConsumer = StreamConsumer<Context>;

pub(super) fn unavailable(what: &str, error: impl std::fmt::Display) -> ConsumeError {
    ConsumeError::Unavailable(format!("{what}: {error}"))
}

/// Closes a consumer off the async threads (closing waits for the group to let go).
pub(super) fn close(consumer: Arc<KafkaConsumer>) {
    tokio::task::spawn_blocking(move || drop(consumer));
}

/// The number of partitions of `topic`, waiting a little for a topic that is being created.
pub(super) async fn partition_count(
    consumer: &Arc<KafkaConsumer>,
    topic: &str,
) -> Result<i32, ConsumeError> {
    let consumer = consumer.clone();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + METADATA_PATIENCE;
        loop {
            let metadata = consumer
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                .map_err(|e| unavailable("kafka metadata request", e))?;
            let found = metadata.topics().iter().find(|t| t.name() == topic);
            let error = match found {
                Some(t) => match t.error() {
                    None if !t.partitions().is_empty() => return Ok(t.partitions().len() as i32),
                    None => None,
                    Some(e) => Some(RDKafkaErrorCode::from(e)),
                },
                None => Some(RDKafkaErrorCode::UnknownTopicOrPartition),
            };
            if error == Some(RDKafkaErrorCode::UnknownTopicOrPartition) {
                return Err(ConsumeError::Invalid(format!(
                    "Kafka topic `{topic}` does not exist (create it, or configure create_topics)"
                )));
            }
            if std::time::Instant::now() > deadline {
                return Err(ConsumeError::Unavailable(format!(
                    "Kafka topic `{topic}` has no usable partitions: {error:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .map_err(|e| unavailable("kafka metadata task", e))?
}

/// The producer's connection settings and the user's options, with consumer defaults the
/// options may override.
pub(super) fn consumer_config(base: &ClientConfig) -> ClientConfig {
    let mut config = base.clone();
    for (key, value) in [
        ("queued.max.messages.kbytes", FETCH_QUEUE_KBYTES),
        ("statistics.interval.ms", STATISTICS_INTERVAL_MS),
    ] {
        if config.get(key).is_none() {
            config.set(key, value);
        }
    }
    config
}

/// Joins consumer group `spec.group` on `spec.topic`.
pub(super) async fn subscribe(
    base: &ClientConfig,
    spec: GroupSpec,
) -> Result<Consumer, ConsumeError> {
    let max_in_flight = spec.max_in_flight.max(1);
    let mut config = consumer_config(base);
    config
        .set("group.id", &spec.group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set(
            "auto.offset.reset",
            match spec.start {
                StartFrom::Earliest => "earliest",
                StartFrom::Latest => "latest",
            },
        );
    let group = Arc::new(Group {
        topic: spec.topic.clone(),
        state: Mutex::new(GroupState::default()),
        wake: Notify::new(),
    });
    let lag = Arc::new(AtomicI64::new(-1));
    let context = Context {
        topic: spec.topic.clone(),
        group: Some(group.clone()),
        lag: lag.clone(),
    };
    let consumer: Arc<KafkaConsumer> = Arc::new(
        KafkaConsumer::from_config_and_context(&config, context)
            .map_err(|e| ConsumeError::Invalid(format!("invalid Kafka consumer settings: {e}")))?,
    );
    let checked = match partition_count(&consumer, &spec.topic).await {
        Ok(_) => consumer
            .subscribe(&[&spec.topic])
            .map_err(|e| ConsumeError::Invalid(format!("subscribing to {}: {e}", spec.topic))),
        Err(e) => Err(e),
    };
    if let Err(e) = checked {
        close(consumer);
        return Err(e);
    }
    let (tx, rx) = mpsc::channel(max_in_flight);
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(run_group(consumer, group, max_in_flight, tx, stopped));
    let mut out = Consumer::new(rx, stop);
    out.lag = lag_fn(lag);
    Ok(out)
}

pub(super) fn lag_fn(lag: Arc<AtomicI64>) -> Arc<dyn Fn() -> Option<u64> + Send + Sync> {
    Arc::new(move || u64::try_from(lag.load(Ordering::Relaxed)).ok())
}

/// An event received from librdkafka and not handed out yet.
struct Received {
    partition: i32,
    offset: i64,
    assignment: u64,
    epoch: u64,
    event: Event,
}

struct KafkaSettle {
    group: Arc<Group>,
    consumer: Weak<KafkaConsumer>,
    partition: i32,
    offset: i64,
    assignment: u64,
    done: bool,
    /// Frees a place among the `max_in_flight` when the settle goes.
    _permit: OwnedSemaphorePermit,
}

impl KafkaSettle {
    fn finish(&mut self, ack: bool) -> Result<(), ConsumeError> {
        self.done = true;
        let mut state = self.group.lock();
        let Some(part) = state
            .partitions
            .get_mut(&self.partition)
            .filter(|p| p.assignment == self.assignment)
        else {
            // The partition went to another member, which resumes from the last commit.
            return Ok(());
        };
        if !ack {
            if let Some(target) = part.watermark.nack(self.offset) {
                part.rewind = Some(part.rewind.map_or(target, |r| r.min(target)));
                drop(state);
                self.group.wake.notify_one();
            }
            return Ok(());
        }
        let Some(position) = part.watermark.ack(self.offset) else {
            return Ok(());
        };
        let Some(consumer) = self.consumer.upgrade() else {
            return Err(ConsumeError::Unavailable(
                "the Kafka consumer stopped before the acknowledgement".into(),
            ));
        };
        // Stored under the lock, so a revocation cannot slip in between the check and the store.
        let stored = store(&consumer, &self.group.topic, self.partition, position);
        drop(state);
        if Arc::strong_count(&consumer) == 1 {
            close(consumer);
        }
        stored
    }
}

fn store(
    consumer: &KafkaConsumer,
    topic: &str,
    partition: i32,
    position: i64,
) -> Result<(), ConsumeError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(position))
        .and_then(|()| consumer.store_offsets(&tpl))
        .map_err(|e| unavailable("storing the Kafka offset", e))
}

impl Settle for KafkaSettle {
    fn ack(mut self: Box<Self>) -> BoxFuture<'static, Result<(), ConsumeError>> {
        let result = self.finish(true);
        Box::pin(async move { result })
    }

    fn nack(mut self: Box<Self>) -> BoxFuture<'static, Result<(), ConsumeError>> {
        let result = self.finish(false);
        Box::pin(async move { result })
    }
}

impl Drop for KafkaSettle {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.finish(false);
        }
    }
}

/// Performs the seeks nacks asked for; returns whether the assignment changed since last time.
fn apply_requests(consumer: &KafkaConsumer, group: &Group) -> bool {
    let mut state = group.lock();
    let mut rewinds: Vec<(i32, i64)> = Vec::new();
    for (partition, part) in state.partitions.iter_mut() {
        if let Some(offset) = part.rewind.take() {
            rewinds.push((*partition, offset));
        }
    }
    for (partition, offset) in rewinds {
        // A zero timeout makes the seek asynchronous; librdkafka drops what it fetched before.
        let sought = consumer.seek(
            &group.topic,
            partition,
            Offset::Offset(offset),
            Duration::ZERO,
        );
        if let Err(e) = sought {
            tracing::warn!(topic = %group.topic, partition, offset, error = %e, "kafka seek failed");
        }
        state.counter += 1;
        let epoch = state.counter;
        if let Some(part) = state.partitions.get_mut(&partition) {
            part.epoch = epoch;
            part.resuming = true;
        }
    }
    std::mem::take(&mut state.assignment_changed)
}

/// Records a received message, stamped with its partition's current assignment and epoch.
fn receive(consumer: &KafkaConsumer, group: &Group, message: &BorrowedMessage<'_>) -> Received {
    let partition = message.partition();
    let offset = message.offset();
    let mut state = group.lock();
    if !state.partitions.contains_key(&partition) {
        let part = state.fresh();
        state.partitions.insert(partition, part);
    }
    let part = state
        .partitions
        .get_mut(&partition)
        .expect("inserted above");
    if part.resuming {
        part.resuming = false;
        if let Some(position) = part.watermark.resumed_at(offset) {
            let _ = store(consumer, &group.topic, partition, position);
        }
    }
    Received {
        partition,
        offset,
        assignment: part.assignment,
        epoch: part.epoch,
        event: to_event(message),
    }
}

/// Moves `received` into the watermark; `None` when it is stale (revoked or rewound since).
fn hand_out(group: &Group, received: &Received) -> Option<bool> {
    let mut state = group.lock();
    let part = state
        .partitions
        .get_mut(&received.partition)
        .filter(|p| p.assignment == received.assignment && p.epoch == received.epoch)?;
    Some(part.watermark.hand_out(received.offset))
}

fn pause(consumer: &KafkaConsumer, paused: bool) {
    let result = consumer.assignment().and_then(|tpl| {
        if paused {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        }
    });
    if let Err(e) = result {
        tracing::warn!(paused, error = %e, "kafka pause/resume failed");
    }
}

async fn run_group(
    consumer: Arc<KafkaConsumer>,
    group: Arc<Group>,
    max_in_flight: usize,
    tx: mpsc::Sender<Result<Delivery, ConsumeError>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let topic: Arc<str> = Arc::from(group.topic.as_str());
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let weak = Arc::downgrade(&consumer);
    let mut ready: VecDeque<Received> = VecDeque::new();
    let mut paused = false;
    'pump: loop {
        let assignment_changed = apply_requests(&consumer, &group);
        if !ready.is_empty() {
            // Drop what was revoked or rewound since it was received.
            let state = group.lock();
            ready.retain(|r| {
                state
                    .partitions
                    .get(&r.partition)
                    .is_some_and(|p| p.assignment == r.assignment && p.epoch == r.epoch)
            });
        }
        while !ready.is_empty() {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                break;
            };
            let received = ready.pop_front().expect("not empty");
            let Some(redelivered) = hand_out(&group, &received) else {
                continue;
            };
            let delivery = Delivery {
                topic: topic.clone(),
                event: received.event,
                spot: Spot {
                    partition: received.partition,
                    offset: received.offset,
                },
                redelivered,
                settle: Box::new(KafkaSettle {
                    group: group.clone(),
                    consumer: weak.clone(),
                    partition: received.partition,
                    offset: received.offset,
                    assignment: received.assignment,
                    done: false,
                    _permit: permit,
                }),
            };
            tokio::select! {
                _ = &mut stopped => break 'pump,
                sent = tx.send(Ok(delivery)) => if sent.is_err() { break 'pump },
            }
        }
        // At capacity: stop fetching (librdkafka drops what it pre-fetched and fetches it
        // again on resume) but keep polling, for rebalances and the group's liveness check.
        let want_paused = !ready.is_empty();
        if want_paused != paused || (paused && assignment_changed) {
            pause(&consumer, want_paused);
            paused = want_paused;
        }
        tokio::select! {
            _ = &mut stopped => break,
            _ = group.wake.notified() => {}
            _ = permits.acquire(), if !ready.is_empty() => {}
            message = consumer.recv() => match message {
                Ok(message) => ready.push_back(receive(&consumer, &group, &message)),
                Err(error) => {
                    tracing::warn!(topic = %topic, %error, "kafka consume error");
                    let _ = tx.try_send(Err(unavailable("kafka", error)));
                }
            },
        }
    }
    drop(ready);
    // Commit what was acknowledged while the group is stable, then leave it (closing commits
    // again, but a commit racing a rebalance that another member's join started can be refused).
    tokio::task::spawn_blocking(move || {
        if let Err(error) = consumer.commit_consumer_state(CommitMode::Sync) {
            if !matches!(
                error,
                KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)
            ) {
                tracing::warn!(topic = %group.topic, %error, "kafka final commit failed");
            }
        }
        drop(consumer);
    });
}

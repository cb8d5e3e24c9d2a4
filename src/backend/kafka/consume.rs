//! Kafka group consumers; positional reads are in [`super::read`].
//!
//! A group subscription is a `StreamConsumer` in group `spec.group` with auto-commit on and
//! automatic offset storing off: an offset is stored (and committed by the next auto-commit, on
//! revocation or on close) only once it and every earlier offset of its partition handed out are
//! acknowledged — the per-partition [`Watermark`]. A nack rewinds: the partition is sought back
//! to the nacked offset, so it and everything after it are delivered again (at-least-once; later
//! events that were already in flight may arrive twice). What is handed out is bounded by
//! `max_in_flight`; when that many are unsettled, or the consumer is held (a paused
//! subscription), the assigned partitions are paused (the consumer keeps polling so it stays in
//! the group), so a slow subscriber leaves its backlog on the broker instead of in memory, and a
//! resumed subscription goes on at once instead of waiting for a rebalance.
//!
//! Every offset received is checked against the one expected next: when librdkafka goes on past
//! offsets it never handed out, the partition is fetched again from the first of them, and only
//! what that fetch skips again counts as absent (compaction, transaction markers, retention).
//! The watermark never commits past an offset that was neither handed out nor shown absent.
//!
//! Should a seek fail (librdkafka reports seek errors only in its log), the nacked offset still
//! holds the committed position back, so it is delivered again after the next rebalance or
//! restart; nothing past it is committed meanwhile.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};

use super::fetch::Verdict;
use super::group::{Context, Group, GroupState};
use super::metadata::{topic_state, TopicState};
use crate::backend::consume::{
    ConsumeError, Consumer, Delivery, GroupSpec, Settle, Spot, StartFrom,
};
use crate::config::topic::TopicPattern;
use crate::event::{self, Event, PARTITION_KEY};

/// librdkafka's pre-fetch queue per consumer, in KiB: small, so a slow subscriber's backlog
/// stays on the broker.
const FETCH_QUEUE_KBYTES: &str = "8192";
/// How often librdkafka reports statistics, the source of the consumer lag.
const STATISTICS_INTERVAL_MS: &str = "5000";
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
            let error = match topic_state(consumer.client(), &topic)? {
                TopicState::Ready(count) => return Ok(count),
                TopicState::Missing => {
                    return Err(ConsumeError::Invalid(format!(
                        "Kafka topic `{topic}` does not exist (create it, or configure \
                         create_topics)"
                    )))
                }
                TopicState::Unready(error) => error,
            };
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

/// The librdkafka regex subscription for `topic` when it is a wildcard pattern (a subscription
/// starting with `^` is a regex to librdkafka), `None` for a topic name. Topics created later
/// that match join at the consumer's next metadata refresh
/// (`topic.metadata.refresh.interval.ms`, 300000 by default).
pub(super) fn subscription(topic: &str) -> Result<Option<String>, ConsumeError> {
    let pattern = TopicPattern::parse(topic).map_err(|e| ConsumeError::Invalid(e.to_string()))?;
    Ok(pattern.is_wildcard().then(|| regex(&pattern)))
}

/// `pattern` as an anchored regex: `*` is one token (`[^.]+`), `>` the rest (`.+`), a dot is a
/// literal dot; the other characters of a token need no escaping.
fn regex(pattern: &TopicPattern) -> String {
    let tokens: Vec<&str> = pattern
        .as_str()
        .split('.')
        .map(|token| match token {
            "*" => "[^.]+",
            ">" => ".+",
            literal => literal,
        })
        .collect();
    format!("^{}$", tokens.join("\\."))
}

/// Joins consumer group `spec.group` on `spec.topic` (a topic, or a pattern of topics).
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
    let checked = match subscription(&spec.topic) {
        Ok(Some(regex)) => consumer
            .subscribe(&[&regex])
            .map_err(|e| ConsumeError::Invalid(format!("subscribing to {}: {e}", spec.topic))),
        Ok(None) => match partition_count(&consumer, &spec.topic).await {
            Ok(_) => consumer
                .subscribe(&[&spec.topic])
                .map_err(|e| ConsumeError::Invalid(format!("subscribing to {}: {e}", spec.topic))),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if let Err(e) = checked {
        close(consumer);
        return Err(e);
    }
    let (tx, rx) = mpsc::channel(max_in_flight);
    let (stop, stopped) = oneshot::channel();
    let (hold, held) = watch::channel(false);
    tokio::spawn(run_group(consumer, group, max_in_flight, tx, stopped, held));
    let mut out = Consumer::new(rx, stop);
    out.lag = lag_fn(lag);
    out.hold = Some(hold);
    Ok(out)
}

pub(super) fn lag_fn(lag: Arc<AtomicI64>) -> Arc<dyn Fn() -> Option<u64> + Send + Sync> {
    Arc::new(move || u64::try_from(lag.load(Ordering::Relaxed)).ok())
}

/// An event received from librdkafka and not handed out yet.
struct Received {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    assignment: u64,
    epoch: u64,
    event: Event,
}

struct KafkaSettle {
    group: Arc<Group>,
    consumer: Weak<KafkaConsumer>,
    topic: Arc<str>,
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
            .part_mut(&self.topic, self.partition)
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
        let stored = store(&consumer, &self.topic, self.partition, position);
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

/// Performs the seeks that nacks and skipped offsets asked for; returns whether the assignment
/// changed since last time.
fn apply_requests(consumer: &KafkaConsumer, group: &Group) -> bool {
    let mut state = group.lock();
    let mut seeks: Vec<(Arc<str>, i32, i64, bool)> = Vec::new();
    for (topic, partition, part) in state.parts_mut() {
        let rewind = part.rewind.take();
        let recheck = part.recheck.take();
        if let Some(offset) = rewind.into_iter().chain(recheck).min() {
            seeks.push((topic.clone(), partition, offset, rewind.is_some()));
        }
    }
    for (topic, partition, offset, rewound) in seeks {
        // A zero timeout makes the seek asynchronous; librdkafka drops what it fetched before.
        let sought = consumer.seek(&topic, partition, Offset::Offset(offset), Duration::ZERO);
        if let Err(e) = sought {
            tracing::warn!(topic = %topic, partition, offset, error = %e, "kafka seek failed");
        }
        state.counter += 1;
        let epoch = state.counter;
        if let Some(part) = state.part_mut(&topic, partition) {
            if rewound {
                part.epoch = epoch;
                let floor = part.watermark.position().unwrap_or(offset);
                part.continuity.expect(offset, floor);
            }
        }
    }
    std::mem::take(&mut state.assignment_changed)
}

/// Records a received message, stamped with its partition's current assignment and epoch;
/// `None` when librdkafka went on past offsets it never gave us, which are fetched again first.
fn receive(
    consumer: &KafkaConsumer,
    group: &Group,
    message: &BorrowedMessage<'_>,
) -> Option<Received> {
    let partition = message.partition();
    let offset = message.offset();
    let mut state = group.lock();
    let (topic, part) = state.part_or_fresh(message.topic(), partition);
    part.progressed = std::time::Instant::now();
    match part.continuity.received(offset) {
        Verdict::Drop => return None,
        Verdict::Seek(from) => {
            tracing::debug!(topic = %topic, partition, from, received = offset, "kafka fetch skipped offsets; fetching again");
            part.recheck = Some(part.recheck.map_or(from, |r| r.min(from)));
            drop(state);
            group.wake.notify_one();
            return None;
        }
        Verdict::Take { absent } => {
            if let Some((from, to)) = absent {
                tracing::debug!(topic = %topic, partition, from, to, "kafka offsets absent");
                if let Some(position) = part.watermark.absent(from, to) {
                    let _ = store(consumer, &topic, partition, position);
                }
            }
        }
    }
    Some(Received {
        topic,
        partition,
        offset,
        assignment: part.assignment,
        epoch: part.epoch,
        event: to_event(message),
    })
}

/// Moves `received` into the watermark; `None` when it is stale (revoked or rewound since).
fn hand_out(group: &Group, received: &Received) -> Option<bool> {
    let mut state = group.lock();
    let part = state
        .part_mut(&received.topic, received.partition)
        .filter(|p| p.assignment == received.assignment && p.epoch == received.epoch)?;
    let again = part.watermark.hand_out(received.offset);
    if let Some(hole) = part.watermark.first_hole() {
        // Not reached while `receive` sees every skip; the hole holds the commit regardless.
        tracing::warn!(topic = %received.topic, partition = received.partition, hole, "kafka offsets never handed out; fetching them again");
        part.rewind = Some(part.rewind.map_or(hole, |r| r.min(hole)));
        drop(state);
        group.wake.notify_one();
    }
    Some(again)
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
    mut held: watch::Receiver<bool>,
) {
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
                    .part(&r.topic, r.partition)
                    .is_some_and(|p| p.assignment == r.assignment && p.epoch == r.epoch)
            });
        }
        let holding = *held.borrow_and_update();
        while !ready.is_empty() && !holding {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                break;
            };
            let received = ready.pop_front().expect("not empty");
            let Some(redelivered) = hand_out(&group, &received) else {
                continue;
            };
            let delivery = Delivery {
                topic: received.topic.clone(),
                event: received.event,
                spot: Spot {
                    partition: received.partition,
                    offset: received.offset,
                },
                redelivered,
                settle: Box::new(KafkaSettle {
                    group: group.clone(),
                    consumer: weak.clone(),
                    topic: received.topic,
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
        // At capacity or held: stop fetching (librdkafka drops what it pre-fetched and fetches
        // it again on resume) but keep polling, for rebalances and the group's liveness check.
        let want_paused = holding || !ready.is_empty();
        if want_paused != paused || (paused && assignment_changed) {
            pause(&consumer, want_paused);
            paused = want_paused;
            group.lock().paused = paused;
        }
        tokio::select! {
            _ = &mut stopped => break,
            _ = group.wake.notified() => {}
            Ok(()) = held.changed() => {}
            _ = permits.acquire(), if !ready.is_empty() && !holding => {}
            message = consumer.recv() => match message {
                Ok(message) => ready.extend(receive(&consumer, &group, &message)),
                Err(error) => {
                    tracing::warn!(topic = %group.topic, %error, "kafka consume error");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_become_anchored_regexes() {
        let regex_of = |p: &str| subscription(p).unwrap();
        assert_eq!(regex_of("orders"), None);
        assert_eq!(regex_of("orders.*").as_deref(), Some("^orders\\.[^.]+$"));
        assert_eq!(regex_of("orders.>").as_deref(), Some("^orders\\..+$"));
        assert_eq!(
            regex_of("a-b.*.c_d").as_deref(),
            Some("^a-b\\.[^.]+\\.c_d$")
        );
    }
}

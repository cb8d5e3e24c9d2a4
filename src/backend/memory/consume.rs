//! Consumers of the memory broker: shared group cursors with in-flight tracking and
//! redelivery, and positional readers. A group on a topic pattern keeps a cursor per matching
//! topic; a positional read of a pattern follows the broker-wide append sequence, so one number
//! resumes it across topics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, Notify};

use super::Log;
use crate::backend::consume::{
    ConsumeError, Consumer, Delivery, GroupSpec, NoSettle, ReadFrom, Settle, Spot, StartFrom,
};
use crate::config::topic::TopicPattern;

/// Events fetched from the log per step of a positional reader.
const READ_CHUNK: usize = 256;

/// A consumer group's shared position over the topics its pattern matches (one for a topic
/// name; for a wildcard, every matching topic, including those written to after it started).
#[derive(Debug)]
pub(super) struct Group {
    pattern: TopicPattern,
    state: Mutex<GroupState>,
    /// Woken when an event is settled, so members blocked on `max_in_flight` go on.
    settled: Notify,
}

#[derive(Debug, Default)]
struct GroupState {
    topics: BTreeMap<Arc<str>, TopicCursor>,
    in_flight: BTreeSet<(Arc<str>, i64)>,
}

/// Where the group is in one topic.
#[derive(Debug)]
struct TopicCursor {
    next: i64,
    redeliver: BTreeSet<i64>,
}

impl TopicCursor {
    fn at(next: i64) -> Self {
        Self {
            next,
            redeliver: BTreeSet::new(),
        }
    }
}

impl Group {
    fn lock(&self) -> std::sync::MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct GroupSettle {
    group: Arc<Group>,
    topic: Arc<str>,
    offset: i64,
    done: bool,
}

impl GroupSettle {
    fn finish(&mut self, redeliver: bool) {
        self.done = true;
        let mut state = self.group.lock();
        state.in_flight.remove(&(self.topic.clone(), self.offset));
        if redeliver {
            if let Some(cursor) = state.topics.get_mut(&self.topic) {
                cursor.redeliver.insert(self.offset);
            }
        }
        drop(state);
        self.group.settled.notify_waiters();
    }
}

impl Settle for GroupSettle {
    fn ack(mut self: Box<Self>) -> BoxFuture<'static, Result<(), ConsumeError>> {
        self.finish(false);
        Box::pin(async { Ok(()) })
    }

    fn nack(mut self: Box<Self>) -> BoxFuture<'static, Result<(), ConsumeError>> {
        self.finish(true);
        Box::pin(async { Ok(()) })
    }
}

impl Drop for GroupSettle {
    fn drop(&mut self) {
        if !self.done {
            self.finish(true);
        }
    }
}

pub(super) fn subscribe(log: Arc<Log>, spec: GroupSpec, pattern: TopicPattern) -> Consumer {
    let group = {
        let mut groups = log.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups
            .entry((spec.topic.clone(), spec.group.clone()))
            .or_insert_with(|| {
                let store = log.store();
                let mut names = store.matching(&pattern);
                if !pattern.is_wildcard() && names.is_empty() {
                    names.push(Arc::from(pattern.as_str()));
                }
                let topics = names
                    .into_iter()
                    .map(|name| {
                        let (start, end) = store.bounds(&name);
                        let next = match spec.start {
                            StartFrom::Earliest => start,
                            StartFrom::Latest => end,
                        };
                        (name, TopicCursor::at(next))
                    })
                    .collect();
                Arc::new(Group {
                    pattern,
                    state: Mutex::new(GroupState {
                        topics,
                        in_flight: BTreeSet::new(),
                    }),
                    settled: Notify::new(),
                })
            })
            .clone()
    };
    let (tx, rx) = mpsc::channel(spec.max_in_flight.max(1));
    let (stop, stopped) = oneshot::channel();
    let lag_log = log.clone();
    let lag_group = group.clone();
    tokio::spawn(run_member(log, group, spec.max_in_flight, tx, stopped));
    let mut consumer = Consumer::new(rx, stop);
    consumer.lag = Arc::new(move || {
        // Events retention dropped are no longer there to be consumed.
        let store = lag_log.store();
        let state = lag_group.lock();
        let lag = state.topics.iter().map(|(name, cursor)| {
            let (start, end) = store.bounds(name);
            let waiting = cursor.redeliver.range(start..).count() as u64;
            (end - cursor.next.max(start)).max(0) as u64 + waiting
        });
        Some(lag.sum())
    });
    consumer
}

/// The next event a member hands out: one given back first, else the one appended earliest
/// among the group's topics; `None` when there is none or `max_in_flight` are out.
fn pick(log: &Log, group: &Group, max_in_flight: usize) -> Option<(Arc<str>, i64, bool)> {
    let store = log.store();
    let mut state = group.lock();
    if state.in_flight.len() >= max_in_flight {
        return None;
    }
    if group.pattern.is_wildcard() {
        for name in store.matching(&group.pattern) {
            let start = store.bounds(&name).0;
            // Written to after the group started: everything it holds is new to the group.
            state
                .topics
                .entry(name)
                .or_insert_with(|| TopicCursor::at(start));
        }
    }
    let mut earliest: Option<(u64, Arc<str>)> = None;
    let mut again: Option<(Arc<str>, i64)> = None;
    for (name, cursor) in state.topics.iter_mut() {
        let (start, end) = store.bounds(name);
        cursor.next = cursor.next.max(start);
        if again.is_none() {
            if let Some(offset) = cursor.redeliver.pop_first() {
                again = Some((name.clone(), offset));
            }
        }
        if cursor.next < end {
            let seq = store.seq_at(name, cursor.next).unwrap_or(u64::MAX);
            if earliest.as_ref().is_none_or(|(best, _)| seq < *best) {
                earliest = Some((seq, name.clone()));
            }
        }
    }
    let (topic, offset, redelivered) = match (again, earliest) {
        (Some((topic, offset)), _) => (topic, offset, true),
        (None, Some((_, topic))) => {
            let cursor = state.topics.get_mut(&topic).expect("picked from the map");
            cursor.next += 1;
            (topic, cursor.next - 1, false)
        }
        (None, None) => return None,
    };
    state.in_flight.insert((topic.clone(), offset));
    Some((topic, offset, redelivered))
}

async fn run_member(
    log: Arc<Log>,
    group: Arc<Group>,
    max_in_flight: usize,
    tx: mpsc::Sender<Result<Delivery, ConsumeError>>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let appended = log.appended.notified();
        let settled = group.settled.notified();
        tokio::pin!(appended, settled);
        appended.as_mut().enable();
        settled.as_mut().enable();
        let Some((topic, offset, redelivered)) = pick(&log, &group, max_in_flight) else {
            tokio::select! {
                _ = &mut stopped => return,
                _ = appended => continue,
                _ = settled => continue,
            }
        };
        let settle = Box::new(GroupSettle {
            group: group.clone(),
            topic: topic.clone(),
            offset,
            done: false,
        });
        let Some(stored) = log
            .read(&topic, offset, 1)
            .into_iter()
            .find(|s| s.offset == offset)
        else {
            // Dropped by retention before it was delivered: nothing to redeliver.
            let _ = settle.ack().await;
            continue;
        };
        let delivery = Delivery {
            topic,
            event: stored.event,
            spot: Spot {
                partition: 0,
                offset,
            },
            redelivered,
            settle,
        };
        tokio::select! {
            _ = &mut stopped => return,
            sent = tx.send(Ok(delivery)) => if sent.is_err() { return },
        }
    }
}

/// Reads the topics `pattern` matches from broker-wide sequence `next` on, in append order:
/// each delivery's spot is its sequence, which is what a wildcard stream's cursor holds.
pub(super) fn read_pattern(log: Arc<Log>, pattern: TopicPattern, mut next: u64) -> Consumer {
    let (tx, rx) = mpsc::channel(READ_CHUNK);
    let (stop, mut stopped) = oneshot::channel();
    tokio::spawn(async move {
        loop {
            let appended = log.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let chunk = log.store().read_since(&pattern, next, READ_CHUNK);
            if chunk.is_empty() {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = appended => continue,
                }
            }
            for (topic, seq, stored) in chunk {
                next = seq + 1;
                let delivery = Delivery {
                    topic,
                    event: stored.event,
                    spot: Spot {
                        partition: 0,
                        offset: i64::try_from(seq).unwrap_or(i64::MAX),
                    },
                    redelivered: false,
                    settle: Box::new(NoSettle),
                };
                tokio::select! {
                    _ = &mut stopped => return,
                    sent = tx.send(Ok(delivery)) => if sent.is_err() { return },
                }
            }
        }
    });
    Consumer::new(rx, stop)
}

pub(super) fn read(log: Arc<Log>, topic: &str, from: ReadFrom) -> Result<Consumer, ConsumeError> {
    let (start, end) = log.bounds(topic);
    let mut next = match from {
        ReadFrom::Earliest => start,
        ReadFrom::Latest => end,
        ReadFrom::Sequence(n) => i64::try_from(n)
            .map_err(|_| ConsumeError::Invalid(format!("offset {n} is out of range")))?,
        ReadFrom::Offsets(_) => {
            return Err(ConsumeError::Invalid(
                "a memory topic has one partition; its cursor is an offset".into(),
            ))
        }
    };
    let topic: Arc<str> = Arc::from(topic);
    let (tx, rx) = mpsc::channel(READ_CHUNK);
    let (stop, mut stopped) = oneshot::channel();
    tokio::spawn(async move {
        loop {
            let appended = log.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let chunk = log.read(&topic, next, READ_CHUNK);
            if chunk.is_empty() {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = appended => continue,
                }
            }
            for stored in chunk {
                next = stored.offset + 1;
                let delivery = Delivery {
                    topic: topic.clone(),
                    event: stored.event,
                    spot: Spot {
                        partition: 0,
                        offset: stored.offset,
                    },
                    redelivered: false,
                    settle: Box::new(NoSettle),
                };
                tokio::select! {
                    _ = &mut stopped => return,
                    sent = tx.send(Ok(delivery)) => if sent.is_err() { return },
                }
            }
        }
    });
    Ok(Consumer::new(rx, stop))
}

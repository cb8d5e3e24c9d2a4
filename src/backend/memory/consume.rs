//! Consumers of the memory broker: shared group cursors with in-flight tracking and
//! redelivery, and positional readers.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, Notify};

use super::Log;
use crate::backend::consume::{
    ConsumeError, Consumer, Delivery, GroupSpec, NoSettle, ReadFrom, Settle, Spot, StartFrom,
};

/// Events fetched from the log per step of a positional reader.
const READ_CHUNK: usize = 256;

/// A consumer group's shared position.
#[derive(Debug)]
pub(super) struct Group {
    state: Mutex<GroupState>,
    /// Woken when an event is settled, so members blocked on `max_in_flight` go on.
    settled: Notify,
}

#[derive(Debug)]
struct GroupState {
    next: i64,
    in_flight: BTreeSet<i64>,
    redeliver: BTreeSet<i64>,
}

impl Group {
    fn lock(&self) -> std::sync::MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct GroupSettle {
    group: Arc<Group>,
    offset: i64,
    done: bool,
}

impl GroupSettle {
    fn finish(&mut self, redeliver: bool) {
        self.done = true;
        let mut state = self.group.lock();
        state.in_flight.remove(&self.offset);
        if redeliver {
            state.redeliver.insert(self.offset);
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

pub(super) fn subscribe(log: Arc<Log>, spec: GroupSpec) -> Consumer {
    let group = {
        let mut groups = log.groups.lock().unwrap_or_else(|e| e.into_inner());
        groups
            .entry((spec.topic.clone(), spec.group.clone()))
            .or_insert_with(|| {
                let (start, end) = log.bounds(&spec.topic);
                Arc::new(Group {
                    state: Mutex::new(GroupState {
                        next: match spec.start {
                            StartFrom::Earliest => start,
                            StartFrom::Latest => end,
                        },
                        in_flight: BTreeSet::new(),
                        redeliver: BTreeSet::new(),
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
    let lag_topic = spec.topic.clone();
    tokio::spawn(run_member(log, group, spec, tx, stopped));
    let mut consumer = Consumer::new(rx, stop);
    consumer.lag = Arc::new(move || {
        // Events retention dropped are no longer there to be consumed.
        let (start, end) = lag_log.bounds(&lag_topic);
        let state = lag_group.lock();
        let waiting = state.redeliver.range(start..).count() as u64;
        Some((end - state.next.max(start)).max(0) as u64 + waiting)
    });
    consumer
}

async fn run_member(
    log: Arc<Log>,
    group: Arc<Group>,
    spec: GroupSpec,
    tx: mpsc::Sender<Result<Delivery, ConsumeError>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let topic: Arc<str> = Arc::from(spec.topic.as_str());
    loop {
        let appended = log.appended.notified();
        let settled = group.settled.notified();
        tokio::pin!(appended, settled);
        appended.as_mut().enable();
        settled.as_mut().enable();
        let pick = {
            let (start, end) = log.bounds(&spec.topic);
            let mut state = group.lock();
            if state.next < start {
                state.next = start;
            }
            if state.in_flight.len() >= spec.max_in_flight {
                None
            } else if let Some(offset) = state.redeliver.pop_first() {
                state.in_flight.insert(offset);
                Some((offset, true))
            } else if state.next < end {
                let offset = state.next;
                state.next += 1;
                state.in_flight.insert(offset);
                Some((offset, false))
            } else {
                None
            }
        };
        let Some((offset, redelivered)) = pick else {
            tokio::select! {
                _ = &mut stopped => return,
                _ = appended => continue,
                _ = settled => continue,
            }
        };
        let settle = Box::new(GroupSettle {
            group: group.clone(),
            offset,
            done: false,
        });
        let Some(stored) = log
            .read(&spec.topic, offset, 1)
            .into_iter()
            .find(|s| s.offset == offset)
        else {
            // Dropped by retention before it was delivered: nothing to redeliver.
            let _ = settle.ack().await;
            continue;
        };
        let delivery = Delivery {
            topic: topic.clone(),
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

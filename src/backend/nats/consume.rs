//! JetStream consumers: a durable pull consumer per group (explicit acks, `max_ack_pending` =
//! max in flight), and an ordered consumer from a stream sequence for positional reads.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, AckKind};
use async_nats::Subject;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;

use super::NatsBackend;
use crate::backend::consume::{
    ConsumeError, Consumer, Delivery, GroupSpec, NoSettle, ReadFrom, Settle, Spot, StartFrom,
};
use crate::config::topic::TopicPattern;
use crate::event::{self, Event};

/// How long JetStream waits for an ack before redelivering; sidebus extends it with progress
/// acks while an event is being retried, so a slow delivery is not duplicated.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// How often held messages get a progress ack: a message waits at most this long plus half of
/// it for its first one, well inside `ACK_WAIT`.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// A durable consumer name for a group: JetStream names exclude `.`, `*`, `>` and spaces.
pub fn durable_name(group: &str) -> String {
    group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Rebuilds the CloudEvent from a JetStream message in binary mode.
fn to_event(message: &async_nats::Message) -> Event {
    let headers = message.headers.as_ref();
    let attrs = headers.into_iter().flat_map(|h| {
        h.iter().filter_map(|(name, values)| {
            let name: &str = name.as_ref();
            let attr = name.strip_prefix("ce-")?;
            Some((attr, values.first()?.as_str().to_string()))
        })
    });
    let content_type = headers
        .and_then(|h| h.get("Content-Type"))
        .map(|v| v.as_str().to_string());
    event::from_broker(attrs, content_type, message.payload.clone())
}

/// The unsettled messages of one consumer, kept "in progress" by one ticker for all of them
/// (a timer per message cost a task spawn per delivery).
#[derive(Default)]
struct InProgress {
    next: AtomicU64,
    held: Mutex<HashMap<u64, Held>>,
}

struct Held {
    since: Instant,
    reply: Subject,
}

impl InProgress {
    fn hold(&self, reply: Subject) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let held = Held {
            since: Instant::now(),
            reply,
        };
        lock(&self.held).insert(id, held);
        id
    }

    fn release(&self, id: u64) {
        lock(&self.held).remove(&id);
    }

    /// The reply subjects of messages held for at least `age`.
    fn older_than(&self, age: Duration) -> Vec<Subject> {
        let now = Instant::now();
        lock(&self.held)
            .values()
            .filter(|h| now.duration_since(h.since) >= age)
            .map(|h| h.reply.clone())
            .collect()
    }

    /// Sends a progress ack every `PROGRESS_EVERY` for every message held for at least half
    /// that long, so none reaches `ACK_WAIT` while its delivery is still being tried.
    async fn keep(self: Arc<Self>, client: async_nats::Client) {
        let mut ticks = tokio::time::interval(PROGRESS_EVERY);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if Arc::strong_count(&self) == 1 {
                return;
            }
            for reply in self.older_than(PROGRESS_EVERY / 2) {
                let _ = client.publish(reply, AckKind::Progress.into()).await;
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the deliveries of one consumer are settled through; shared by every delivery it holds
/// (one reference count per delivery, where a client clone is several).
struct Acker {
    client: async_nats::Client,
    in_progress: Arc<InProgress>,
}

impl Acker {
    /// Holds the message answering to `reply` in progress until it is settled.
    fn hold(self: &Arc<Self>, reply: Subject) -> NatsSettle {
        NatsSettle {
            id: self.in_progress.hold(reply.clone()),
            reply: Some(reply),
            acker: self.clone(),
        }
    }
}

struct NatsSettle {
    acker: Arc<Acker>,
    /// Taken by `ack`/`nack`; still here on drop means the event was never settled.
    reply: Option<Subject>,
    id: u64,
}

impl NatsSettle {
    fn reply(mut self, kind: AckKind) -> BoxFuture<'static, Result<(), ConsumeError>> {
        self.acker.in_progress.release(self.id);
        let reply = self.reply.take().expect("settled once");
        let acker = self.acker.clone();
        Box::pin(async move {
            acker
                .client
                .publish(reply, kind.into())
                .await
                .map_err(|e| ConsumeError::Unavailable(format!("ack: {e}")))
        })
    }
}

impl Settle for NatsSettle {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), ConsumeError>> {
        self.reply(AckKind::Ack)
    }

    fn nack(self: Box<Self>) -> BoxFuture<'static, Result<(), ConsumeError>> {
        self.reply(AckKind::Nak(None))
    }
}

impl Drop for NatsSettle {
    /// An unsettled event goes back to the stream at once instead of being kept "in progress"
    /// forever.
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take() {
            self.acker.in_progress.release(self.id);
            let client = self.acker.client.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = client.publish(reply, AckKind::Nak(None).into()).await;
                });
            }
        }
    }
}

impl NatsBackend {
    async fn stream_for(&self, topic: &str) -> Result<jetstream::stream::Stream, ConsumeError> {
        let pattern =
            TopicPattern::parse(topic).map_err(|e| ConsumeError::Invalid(e.to_string()))?;
        if pattern.is_wildcard() {
            return self.stream_for_pattern(&pattern).await;
        }
        self.ensure_stream(topic)
            .await
            .map_err(|e| ConsumeError::Unavailable(e.to_string()))?;
        let name = self
            .jetstream
            .stream_by_subject(topic)
            .await
            .map_err(|e| ConsumeError::Unavailable(format!("stream for {topic}: {e}")))?;
        self.jetstream
            .get_stream(&name)
            .await
            .map_err(|e| ConsumeError::Unavailable(format!("stream {name}: {e}")))
    }

    pub(super) async fn subscribe_group(&self, spec: GroupSpec) -> Result<Consumer, ConsumeError> {
        let stream = self.stream_for(&spec.topic).await?;
        let config = pull::Config {
            durable_name: Some(durable_name(&spec.group)),
            filter_subject: spec.topic.clone(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            max_ack_pending: spec.max_in_flight as i64,
            deliver_policy: match spec.start {
                StartFrom::Earliest => DeliverPolicy::All,
                StartFrom::Latest => DeliverPolicy::New,
            },
            ..pull::Config::default()
        };
        let consumer = stream
            .get_or_create_consumer(&durable_name(&spec.group), config)
            .await
            .map_err(|e| ConsumeError::Unavailable(format!("consumer {}: {e}", spec.group)))?;
        let (tx, rx) = mpsc::channel(spec.max_in_flight.max(1));
        let (stop, stopped) = oneshot::channel();
        let pending = Arc::new(AtomicU64::new(0));
        let lag = pending.clone();
        let topic: Arc<str> = Arc::from(spec.topic.as_str());
        let acker = Arc::new(Acker {
            client: self.client.clone(),
            in_progress: Arc::new(InProgress::default()),
        });
        tokio::spawn(acker.in_progress.clone().keep(self.client.clone()));
        let (hold, held) = watch::channel(false);
        tokio::spawn(pump(consumer, topic, tx, stopped, held, pending, acker));
        let mut out = Consumer::new(rx, stop);
        out.hold = Some(hold);
        out.lag = Arc::new(move || Some(lag.load(Ordering::Relaxed)));
        Ok(out)
    }

    pub(super) async fn read_positional(
        &self,
        topic: &str,
        from: ReadFrom,
    ) -> Result<Consumer, ConsumeError> {
        let deliver_policy = match from {
            ReadFrom::Earliest => DeliverPolicy::All,
            ReadFrom::Latest => DeliverPolicy::New,
            ReadFrom::Sequence(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
            ReadFrom::Offsets(_) => {
                return Err(ConsumeError::Invalid(
                    "a JetStream cursor is a stream sequence, not partition offsets".into(),
                ))
            }
        };
        let stream = self.stream_for(topic).await?;
        let ordered = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: topic.to_string(),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| ConsumeError::Unavailable(format!("ordered consumer: {e}")))?;
        let mut messages = ordered
            .messages()
            .await
            .map_err(|e| ConsumeError::Unavailable(format!("ordered consumer: {e}")))?;
        let (tx, rx) = mpsc::channel(256);
        let (stop, mut stopped) = oneshot::channel();
        let topic: Arc<str> = Arc::from(topic);
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = &mut stopped => return,
                    next = messages.next() => next,
                };
                let Some(next) = next else { return };
                let item = match next {
                    Ok(message) => {
                        let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                        Ok(Delivery {
                            topic: subject_of(&message, &topic),
                            event: to_event(&message),
                            spot: Spot {
                                partition: 0,
                                offset: sequence as i64,
                            },
                            redelivered: false,
                            settle: Box::new(NoSettle),
                        })
                    }
                    Err(e) => Err(ConsumeError::Unavailable(e.to_string())),
                };
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
        Ok(Consumer::new(rx, stop))
    }
}

/// The concrete subject of `message`: `consumed` itself unless that is a wildcard.
fn subject_of(message: &async_nats::Message, consumed: &Arc<str>) -> Arc<str> {
    if message.subject.as_str() == &**consumed {
        consumed.clone()
    } else {
        Arc::from(message.subject.as_str())
    }
}

/// Turns a pulled message into a delivery held in progress until it is settled; `None` for a
/// message without a reply subject (nothing to acknowledge it through).
fn delivery(
    message: &jetstream::Message,
    topic: &Arc<str>,
    pending: &AtomicU64,
    acker: &Arc<Acker>,
) -> Option<Delivery> {
    let (sequence, redelivered) = match message.info() {
        Ok(info) => {
            pending.store(info.pending, Ordering::Relaxed);
            (info.stream_sequence, info.delivered > 1)
        }
        Err(_) => (0, false),
    };
    let reply = message.message.reply.clone()?;
    Some(Delivery {
        topic: subject_of(message, topic),
        event: to_event(message),
        spot: Spot {
            partition: 0,
            offset: sequence as i64,
        },
        redelivered,
        settle: Box::new(acker.hold(reply)),
    })
}

/// Pulls messages and forwards them in order; while `held`, keeps pulling (so what is given back
/// meanwhile comes to this consumer, in the order of its naks) but holds what arrives, kept in
/// progress, until released. On stop, what was pulled and not forwarded goes to the subscriber
/// after the pull ends, to be given back in order and not into a pull still running.
async fn pump(
    consumer: jetstream::consumer::Consumer<pull::Config>,
    topic: Arc<str>,
    tx: mpsc::Sender<Result<Delivery, ConsumeError>>,
    mut stopped: oneshot::Receiver<()>,
    mut held: watch::Receiver<bool>,
    pending: Arc<AtomicU64>,
    acker: Arc<Acker>,
) {
    let mut waiting: VecDeque<Delivery> = VecDeque::new();
    loop {
        let mut messages = match consumer.messages().await {
            Ok(m) => m,
            Err(e) => {
                if tx
                    .send(Err(ConsumeError::Unavailable(e.to_string())))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            let holding = *held.borrow_and_update();
            tokio::select! {
                biased;
                _ = &mut stopped => {
                    while let Some(Some(Ok(message))) = messages.next().now_or_never() {
                        waiting.extend(delivery(&message, &topic, &pending, &acker));
                    }
                    drop(messages);
                    for d in waiting {
                        if tx.send(Ok(d)).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                Ok(()) = held.changed() => {}
                permit = tx.reserve(), if !holding && !waiting.is_empty() => match permit {
                    Ok(permit) => permit.send(Ok(waiting.pop_front().expect("not empty"))),
                    Err(_) => return,
                },
                next = messages.next() => match next {
                    None => break,
                    Some(Ok(message)) => waiting.extend(delivery(&message, &topic, &pending, &acker)),
                    Some(Err(e)) => tracing::debug!(error = %e, "jetstream pull"),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_messages_held_long_enough_get_progress() {
        let in_progress = InProgress::default();
        let old = in_progress.hold(Subject::from("$JS.ACK.old"));
        lock(&in_progress.held).get_mut(&old).unwrap().since -= Duration::from_secs(6);
        let young = in_progress.hold(Subject::from("$JS.ACK.young"));
        assert_eq!(
            in_progress.older_than(Duration::from_secs(5)),
            vec![Subject::from("$JS.ACK.old")]
        );
        in_progress.release(old);
        assert!(in_progress.older_than(Duration::from_secs(5)).is_empty());
        in_progress.release(young);
        assert!(lock(&in_progress.held).is_empty());
    }
}

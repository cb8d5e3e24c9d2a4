//! AMQP consumers.
//!
//! A group subscription consumes the durable queue `<group>.<topic>`, bound to the topic's
//! durable exchange (binding key `#` for a topic exchange, the topic name for a direct one — the
//! routing key of events without a partition key —, none for fanout and headers), with manual
//! acknowledgements and prefetch = `max_in_flight`. Ack is `basic.ack`, nack `basic.nack` with
//! requeue; a delivery dropped unsettled is nacked. `start` makes no difference: the queue holds
//! what was published since it was first declared (by the group's first subscription).
//!
//! Each consumer owns a channel on the backend's current connection. When the channel or the
//! connection dies (the consumer stream ends or errs, or a periodic check finds the channel
//! closed), the consumer waits for the supervisor's next connection and declares, binds and
//! consumes again, so a subscription is never silently lost. Unacknowledged deliveries of the
//! old channel are requeued by the broker and come again flagged `redelivered`.
//!
//! AMQP has no replay: a positional reader consumes an exclusive, auto-delete, server-named
//! queue bound to the exchange, so it sees the events published after it started (and loses
//! those published while its connection was down).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Acker, Channel, Connection, ExchangeKind};
use tokio::sync::{mpsc, oneshot};

use super::Shared;
use crate::backend::consume::{
    ConsumeError, Consumer, Delivery, GroupSpec, ReadFrom, Settle, Spot,
};
use crate::event::{self, Event};

/// How often a consumer checks its channel is open and refreshes its lag.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Prefetch of a positional reader (its deliveries are acknowledged as they are handed out).
const READER_PREFETCH: u16 = 256;

/// The queue a consumer reads.
#[derive(Debug, Clone)]
enum QueueKind {
    /// A group's durable, shared queue.
    Group(String),
    /// A reader's exclusive, auto-delete, server-named queue.
    Reader,
}

/// What a consumer declares and consumes, again after every reconnect.
#[derive(Debug, Clone)]
struct Plan {
    topic: String,
    queue: QueueKind,
    prefetch: u16,
}

/// A channel consuming the plan's queue.
struct Established {
    channel: Channel,
    consumer: lapin::Consumer,
    queue: ShortString,
    messages: u32,
}

fn binding_key(kind: &ExchangeKind, topic: &str) -> String {
    match kind {
        ExchangeKind::Topic => "#".into(),
        ExchangeKind::Direct => topic.into(),
        _ => String::new(),
    }
}

async fn establish(
    connection: &Connection,
    shared: &Shared,
    plan: &Plan,
) -> lapin::Result<Established> {
    let channel = connection.create_channel().await?;
    channel
        .exchange_declare(
            ShortString::from(plan.topic.as_str()),
            shared.exchange_kind.clone(),
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let queue = match &plan.queue {
        QueueKind::Group(name) => {
            channel
                .queue_declare(
                    ShortString::from(name.as_str()),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?
        }
        QueueKind::Reader => {
            channel
                .queue_declare(
                    ShortString::from(""),
                    QueueDeclareOptions {
                        exclusive: true,
                        auto_delete: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?
        }
    };
    channel
        .queue_bind(
            queue.name().clone(),
            ShortString::from(plan.topic.as_str()),
            ShortString::from(binding_key(&shared.exchange_kind, &plan.topic)),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .basic_qos(plan.prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            ShortString::from(""),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(Established {
        channel,
        consumer,
        queue: queue.name().clone(),
        messages: queue.message_count(),
    })
}

/// A refused declare or bind (wrong exchange type, access refused) is the request's fault; the
/// rest is the broker's availability.
fn classify(topic: &str, error: lapin::Error) -> ConsumeError {
    if error.is_amqp_soft_error() {
        ConsumeError::Invalid(format!("consuming AMQP exchange `{topic}`: {error}"))
    } else {
        ConsumeError::Unavailable(format!("consuming AMQP exchange `{topic}`: {error}"))
    }
}

fn current(shared: &Shared) -> Option<Arc<Connection>> {
    shared
        .connection
        .borrow()
        .clone()
        .filter(|c| c.status().connected())
}

/// Joins group `spec.group`: consumes the durable queue `<group>.<topic>`.
pub(super) async fn subscribe(
    shared: Arc<Shared>,
    spec: GroupSpec,
) -> Result<Consumer, ConsumeError> {
    let queue = format!("{}.{}", spec.group, spec.topic);
    if queue.len() > 255 {
        return Err(ConsumeError::Invalid(format!(
            "the AMQP queue name `{queue}` is longer than 255 bytes"
        )));
    }
    let max_in_flight = spec.max_in_flight.max(1);
    let plan = Plan {
        topic: spec.topic.clone(),
        queue: QueueKind::Group(queue),
        prefetch: u16::try_from(max_in_flight).unwrap_or(u16::MAX),
    };
    // Declared now when connected, so events published once this returns are kept; a broker
    // that is down is waited for in the background.
    let first = match current(&shared) {
        Some(connection) => Some(
            establish(&connection, &shared, &plan)
                .await
                .map_err(|e| classify(&plan.topic, e))?,
        ),
        None => None,
    };
    let lag = Arc::new(AtomicI64::new(-1));
    let (tx, rx) = mpsc::channel(max_in_flight);
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(run(shared, plan, first, tx, stopped, lag.clone()));
    let mut consumer = Consumer::new(rx, stop);
    consumer.lag = Arc::new(move || u64::try_from(lag.load(Ordering::Relaxed)).ok());
    Ok(consumer)
}

/// Reads `topic` from now on: AMQP keeps no history to replay, so only `latest` works.
pub(super) async fn read_from(
    shared: Arc<Shared>,
    topic: &str,
    from: ReadFrom,
) -> Result<Consumer, ConsumeError> {
    if from != ReadFrom::Latest {
        return Err(ConsumeError::Invalid(
            "AMQP has no replay: a queue holds only events published after it was bound, so \
             an AMQP topic can be read from `latest` only (no earliest, offsets or sequence)"
                .into(),
        ));
    }
    let plan = Plan {
        topic: topic.to_string(),
        queue: QueueKind::Reader,
        prefetch: READER_PREFETCH,
    };
    let connection = current(&shared)
        .ok_or_else(|| ConsumeError::Unavailable("the AMQP broker is not connected".into()))?;
    let first = establish(&connection, &shared, &plan)
        .await
        .map_err(|e| classify(topic, e))?;
    let (tx, rx) = mpsc::channel(usize::from(READER_PREFETCH));
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(run(
        shared,
        plan,
        Some(first),
        tx,
        stopped,
        Arc::new(AtomicI64::new(-1)),
    ));
    Ok(Consumer::new(rx, stop))
}

/// How a consuming channel ended.
enum Ended {
    Stopped,
    Lost(String),
}

async fn run(
    shared: Arc<Shared>,
    plan: Plan,
    mut established: Option<Established>,
    tx: mpsc::Sender<Result<Delivery, ConsumeError>>,
    mut stopped: oneshot::Receiver<()>,
    lag: Arc<AtomicI64>,
) {
    let topic: Arc<str> = Arc::from(plan.topic.as_str());
    loop {
        let live = match established.take() {
            Some(live) => live,
            None => match reestablish(&shared, &plan, &tx, &mut stopped).await {
                Some(live) => live,
                None => return,
            },
        };
        match consume(live, &plan, &topic, &tx, &mut stopped, &lag).await {
            Ended::Stopped => return,
            Ended::Lost(reason) => {
                tracing::warn!(topic = %topic, %reason, "amqp consumer lost; re-establishing");
                let note = match plan.queue {
                    QueueKind::Group(_) => format!("{reason}; re-establishing the consumer"),
                    QueueKind::Reader => format!(
                        "{reason}; events published until the consumer is back are not seen"
                    ),
                };
                let _ = tx.try_send(Err(ConsumeError::Unavailable(note)));
            }
        }
    }
}

/// Waits for a connection and sets the plan up on it; `None` once stopped.
async fn reestablish(
    shared: &Shared,
    plan: &Plan,
    tx: &mpsc::Sender<Result<Delivery, ConsumeError>>,
    stopped: &mut oneshot::Receiver<()>,
) -> Option<Established> {
    let mut connections = shared.connection.subscribe();
    let mut failures: u32 = 0;
    loop {
        let connection = connections
            .borrow_and_update()
            .clone()
            .filter(|c| c.status().connected());
        let Some(connection) = connection else {
            tokio::select! {
                _ = &mut *stopped => return None,
                changed = connections.changed() => if changed.is_err() { return None },
            }
            continue;
        };
        let attempt = tokio::select! {
            _ = &mut *stopped => return None,
            attempt = establish(&connection, shared, plan) => attempt,
        };
        match attempt {
            Ok(live) => {
                tracing::info!(topic = %plan.topic, "amqp consumer established");
                return Some(live);
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let error = classify(&plan.topic, e);
                tracing::warn!(topic = %plan.topic, %error, "amqp consumer setup failed");
                let _ = tx.try_send(Err(error));
            }
        }
        let delay = Duration::from_millis((100u64 << failures.min(6)).min(5000));
        tokio::select! {
            _ = &mut *stopped => return None,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn consume(
    live: Established,
    plan: &Plan,
    topic: &Arc<str>,
    tx: &mpsc::Sender<Result<Delivery, ConsumeError>>,
    stopped: &mut oneshot::Receiver<()>,
    lag: &AtomicI64,
) -> Ended {
    let Established {
        channel,
        mut consumer,
        queue,
        messages,
    } = live;
    let group = matches!(plan.queue, QueueKind::Group(_));
    if group {
        lag.store(i64::from(messages), Ordering::Relaxed);
    }
    let mut check = tokio::time::interval(CHECK_INTERVAL);
    check.tick().await;
    loop {
        tokio::select! {
            _ = &mut *stopped => return Ended::Stopped,
            next = consumer.next() => match next {
                Some(Ok(message)) => {
                    let (delivery, acker) = to_delivery(message, topic, &channel, group);
                    tokio::select! {
                        _ = &mut *stopped => return Ended::Stopped,
                        sent = tx.send(Ok(delivery)) => if sent.is_err() { return Ended::Stopped },
                    }
                    // A reader's position is its own: acknowledged once handed out.
                    if let Some(acker) = acker {
                        let _ = acker.ack(BasicAckOptions::default()).await;
                    }
                }
                Some(Err(e)) => return Ended::Lost(format!("amqp consumer failed: {e}")),
                None => return Ended::Lost("the broker cancelled the amqp consumer".into()),
            },
            _ = check.tick() => {
                if !channel.status().connected() {
                    return Ended::Lost("the amqp channel closed".into());
                }
                if group {
                    let passive = channel
                        .queue_declare(
                            queue.clone(),
                            QueueDeclareOptions {
                                passive: true,
                                ..QueueDeclareOptions::default()
                            },
                            FieldTable::default(),
                        )
                        .await;
                    if let Ok(q) = passive {
                        lag.store(i64::from(q.message_count()), Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Turns a broker delivery into a [`Delivery`]; for a reader, also returns the acker to
/// acknowledge it with once handed out.
fn to_delivery(
    mut message: lapin::message::Delivery,
    topic: &Arc<str>,
    channel: &Channel,
    group: bool,
) -> (Delivery, Option<Acker>) {
    let event = to_event(&mut message);
    let spot = Spot {
        partition: 0,
        offset: i64::try_from(message.delivery_tag).unwrap_or(i64::MAX),
    };
    let (settle, acker): (Box<dyn Settle>, Option<Acker>) = if group {
        let settle = AmqpSettle {
            acker: message.acker.clone(),
            channel: channel.clone(),
            done: false,
        };
        (Box::new(settle), None)
    } else {
        (
            Box::new(crate::backend::consume::NoSettle),
            Some(message.acker.clone()),
        )
    };
    let delivery = Delivery {
        topic: topic.clone(),
        event,
        spot,
        redelivered: message.redelivered,
        settle,
    };
    (delivery, acker)
}

fn header_text(value: &AMQPValue) -> Option<String> {
    Some(match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        _ => return None,
    })
}

/// Rebuilds the CloudEvent from a message in binary mode: `ce-<attr>` headers, `content_type`,
/// body = data; `message_id` stands in for a missing `ce-id`.
fn to_event(message: &mut lapin::message::Delivery) -> Event {
    let mut attrs: Vec<(String, String)> = Vec::new();
    if let Some(headers) = message.properties.headers() {
        for (name, value) in headers.inner() {
            let Some(attr) = name.as_str().strip_prefix("ce-") else {
                continue;
            };
            if let Some(text) = header_text(value) {
                attrs.push((attr.to_string(), text));
            }
        }
    }
    if !attrs.iter().any(|(name, _)| name == "id") {
        if let Some(id) = message.properties.message_id() {
            attrs.push(("id".into(), id.as_str().to_string()));
        }
    }
    let content_type = message
        .properties
        .content_type()
        .as_ref()
        .map(|c| c.as_str().to_string());
    let data = Bytes::from(std::mem::take(&mut message.data));
    event::from_broker(attrs, content_type, data)
}

/// Settles a group delivery; holds the channel open until then.
struct AmqpSettle {
    acker: Acker,
    channel: Channel,
    done: bool,
}

fn settled(what: &str, result: lapin::Result<bool>) -> Result<(), ConsumeError> {
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(ConsumeError::Unavailable(format!(
            "the AMQP channel closed before the {what}; the broker delivers the event again"
        ))),
        Err(e) => Err(ConsumeError::Unavailable(format!("amqp {what}: {e}"))),
    }
}

impl Settle for AmqpSettle {
    fn ack(mut self: Box<Self>) -> BoxFuture<'static, Result<(), ConsumeError>> {
        self.done = true;
        let acker = self.acker.clone();
        Box::pin(async move {
            let result = acker.ack(BasicAckOptions::default()).await;
            drop(self);
            settled("ack", result)
        })
    }

    fn nack(mut self: Box<Self>) -> BoxFuture<'static, Result<(), ConsumeError>> {
        self.done = true;
        let acker = self.acker.clone();
        Box::pin(async move {
            let result = acker
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await;
            drop(self);
            settled("nack", result)
        })
    }
}

impl Drop for AmqpSettle {
    fn drop(&mut self) {
        if self.done || !self.acker.usable() {
            return;
        }
        // Unsettled: give it back to the queue now rather than when the channel closes.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let acker = self.acker.clone();
        let channel = self.channel.clone();
        runtime.spawn(async move {
            let _ = acker
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await;
            drop(channel);
        });
    }
}

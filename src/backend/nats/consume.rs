//! JetStream consumers: a durable pull consumer per group (explicit acks, `max_ack_pending` =
//! max in flight), and an ordered consumer from a stream sequence for positional reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::{self, AckKind};
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::NatsBackend;
use crate::backend::consume::{
    ConsumeError, Consumer, Delivery, GroupSpec, NoSettle, ReadFrom, Settle, Spot, StartFrom,
};
use crate::event::{self, Event};

/// How long JetStream waits for an ack before redelivering; sidebus extends it with progress
/// acks while an event is being retried, so a slow delivery is not duplicated.
const ACK_WAIT: Duration = Duration::from_secs(30);

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
            Some((attr.to_string(), values.first()?.as_str().to_string()))
        })
    });
    let content_type = headers
        .and_then(|h| h.get("Content-Type"))
        .map(|v| v.as_str().to_string());
    event::from_broker(attrs, content_type, message.payload.clone())
}

struct NatsSettle {
    /// Taken by `ack`/`nack`; still here on drop means the event was never settled.
    message: Option<jetstream::Message>,
    keepalive: tokio::task::JoinHandle<()>,
}

impl NatsSettle {
    fn reply(mut self: Box<Self>, kind: AckKind) -> BoxFuture<'static, Result<(), ConsumeError>> {
        self.keepalive.abort();
        let message = self.message.take().expect("settled once");
        Box::pin(async move {
            message
                .ack_with(kind)
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
    /// by the keep-alive forever.
    fn drop(&mut self) {
        self.keepalive.abort();
        if let Some(message) = self.message.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                });
            }
        }
    }
}

fn keepalive(message: jetstream::Message) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ACK_WAIT / 2).await;
            if message.ack_with(AckKind::Progress).await.is_err() {
                return;
            }
        }
    })
}

impl NatsBackend {
    async fn stream_for(&self, topic: &str) -> Result<jetstream::stream::Stream, ConsumeError> {
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
        tokio::spawn(pump(consumer, topic, tx, stopped, pending));
        let mut out = Consumer::new(rx, stop);
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
                            topic: topic.clone(),
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

async fn pump(
    consumer: jetstream::consumer::Consumer<pull::Config>,
    topic: Arc<str>,
    tx: mpsc::Sender<Result<Delivery, ConsumeError>>,
    mut stopped: oneshot::Receiver<()>,
    pending: Arc<AtomicU64>,
) {
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
            let next = tokio::select! {
                _ = &mut stopped => return,
                next = messages.next() => next,
            };
            let Some(next) = next else { break };
            let message = match next {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(error = %e, "jetstream pull");
                    continue;
                }
            };
            let (sequence, redelivered) = match message.info() {
                Ok(info) => {
                    pending.store(info.pending, Ordering::Relaxed);
                    (info.stream_sequence, info.delivered > 1)
                }
                Err(_) => (0, false),
            };
            let delivery = Delivery {
                topic: topic.clone(),
                event: to_event(&message),
                spot: Spot {
                    partition: 0,
                    offset: sequence as i64,
                },
                redelivered,
                settle: Box::new(NatsSettle {
                    keepalive: keepalive(message.clone()),
                    message: Some(message),
                }),
            };
            if tx.send(Ok(delivery)).await.is_err() {
                return;
            }
        }
    }
}

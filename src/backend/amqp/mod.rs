//! AMQP 0-9-1 (RabbitMQ): a topic is a durable exchange; events are published persistent, with
//! publisher confirms and `mandatory`, so an unroutable message is a failure. A supervisor task
//! owns the connection and remakes it after an outage; consumers ([`consume`]) open their own
//! channels on the current connection and re-establish them after it is remade.
//!
//! An `amqps://` URL connects over TLS (rustls), trusting the system store plus `tls_ca_file`
//! and presenting `tls_cert_file`/`tls_key_file` when set. The files are read again for every
//! connection, so renewed certificates take effect at the next reconnect.

mod consume;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    PublisherConfirm,
};
use tokio::sync::{watch, Notify};

use super::consume::{ConsumeError, Consumer, GroupSpec, ReadFrom};
use super::tls::{CheckFiles, TlsFiles};
use super::{
    fail_all, Acks, Backend, BackendSettings, BrokerStatus, BuildError, Capabilities, Health,
    NoReplay, Outbound, Position, PublishError, PublishResult, TopicInfo,
};
use crate::config::topic::TopicPattern;
use crate::config::AmqpConfig;
use crate::event::{prefixed_name, Prefix};

/// The config `kind`.
pub const KIND: &str = "amqp";

/// An exchange keeps no history and a queue forgets what it delivered: no cursors, no replay.
pub const CAPABILITIES: Capabilities = Capabilities {
    cursor: None,
    no_replay: Some(NoReplay {
        cursor: "AMQP has no replay: a queue forgets what it delivered, so there is no position \
                 to resume from. Reconnect without Last-Event-ID / lastEventId, or use ?group= \
                 for a durable queue that keeps events while no one is connected",
        earliest: "AMQP has no replay: an exchange keeps no history, so ?from=earliest cannot \
                   be served; a stream sees events published after it connects",
    }),
    no_wildcards: Some(NO_WILDCARDS),
    no_wildcard_read: None,
};

/// Why a topic pattern cannot be consumed from AMQP.
const NO_WILDCARDS: &str = "AMQP 0-9-1 does not support topic patterns: a sidebus topic is an \
                            exchange, and a queue binds to exchanges by name, so `*` and `>` \
                            cannot select several of them; subscribe to each topic";

/// AMQP `delivery_mode` for messages that survive a broker restart.
const PERSISTENT: u8 = 2;

/// The largest frame sidebus asks the broker for when the URL sets no `frame_max`. lapin keeps a
/// read and a write buffer of 32 frames each for a connection, so RabbitMQ's default of 128 KiB
/// held 8 MiB per connection, more than the rest of an idle sidecar; with 32 KiB it is 2 MiB. A
/// message larger than a frame travels as several frames, 8 bytes of overhead each.
const FRAME_MAX: u32 = 32 * 1024;

/// The broker URL as lapin takes it, with [`FRAME_MAX`] unless the URL names a `frame_max`.
fn connection_uri(url: &str) -> Result<AMQPUri, String> {
    let mut uri: AMQPUri = url.parse()?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    Ok(uri)
}

struct Shared {
    uri: AMQPUri,
    tls: TlsFiles,
    exchange_kind: ExchangeKind,
    channel: Mutex<Option<Channel>>,
    /// The current connection, for consumers to open their channels on; `None` while down.
    connection: watch::Sender<Option<Arc<Connection>>>,
    declared: Mutex<HashSet<String>>,
    health: Health,
    /// Wakes the supervisor to check the connection after a failed publish.
    check: Notify,
}

/// An AMQP 0-9-1 broker.
pub struct AmqpBackend {
    shared: Arc<Shared>,
    ack_timeout: Duration,
    /// Dropping it stops the supervisor.
    _stop: watch::Sender<()>,
}

impl AmqpBackend {
    /// Starts the supervisor that connects in the background and reconnects after failures;
    /// fails only when a configured TLS file is unusable.
    pub fn start(
        name: &str,
        config: &AmqpConfig,
        settings: &BackendSettings,
    ) -> Result<Self, BuildError> {
        let tls = config.tls();
        tls.check().map_err(|reason| BuildError {
            broker: name.to_string(),
            reason,
        })?;
        let exchange_kind = match config.exchange_kind.as_str() {
            "topic" => ExchangeKind::Topic,
            "direct" => ExchangeKind::Direct,
            "headers" => ExchangeKind::Headers,
            _ => ExchangeKind::Fanout,
        };
        let uri = connection_uri(&config.url).map_err(|reason| BuildError {
            broker: name.to_string(),
            reason: format!("url: {reason}"),
        })?;
        let shared = Arc::new(Shared {
            uri,
            tls,
            exchange_kind,
            channel: Mutex::new(None),
            connection: watch::Sender::new(None),
            declared: Mutex::new(HashSet::new()),
            health: Health::default(),
            check: Notify::new(),
        });
        let (stop, stopped) = watch::channel(());
        tokio::spawn(supervise(name.to_string(), shared.clone(), stopped));
        Ok(Self {
            shared,
            ack_timeout: settings.ack_timeout,
            _stop: stop,
        })
    }

    fn channel(&self) -> Option<Channel> {
        self.shared
            .channel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|c| c.status().connected())
    }

    async fn ensure_exchange(&self, channel: &Channel, topic: &str) -> Result<(), PublishError> {
        if self
            .shared
            .declared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(topic)
        {
            return Ok(());
        }
        channel
            .exchange_declare(
                ShortString::from(topic),
                self.shared.exchange_kind.clone(),
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                self.shared.check.notify_one();
                PublishError::Rejected(format!("declaring exchange {topic}: {e}"))
            })?;
        self.shared
            .declared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_string());
        Ok(())
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    /// A TLS file could not be read.
    #[error("{0}")]
    TlsFile(String),
    /// The broker could not be reached, the handshake failed or the channel was refused.
    #[error("{0}")]
    Amqp(#[from] lapin::Error),
}

/// The TLS settings of a connection, read from the configured files.
fn tls_config(files: &TlsFiles) -> Result<OwnedTLSConfig, OpenError> {
    let read = |setting: &str, path: &Path| {
        std::fs::read(path)
            .map_err(|e| OpenError::TlsFile(format!("{setting} {}: {e}", path.display())))
    };
    let cert_chain = match &files.ca {
        Some(path) => Some(String::from_utf8_lossy(&read("tls_ca_file", path)?).into_owned()),
        None => None,
    };
    let identity = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: read("tls_cert_file", cert)?,
            key: read("tls_key_file", key)?,
        }),
        _ => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

async fn open(shared: &Shared) -> Result<(Arc<Connection>, Channel), OpenError> {
    let tls = tls_config(&shared.tls)?;
    let runtime = lapin::runtime::default_runtime()?;
    let connection = Connection::connect_uri_with_config(
        shared.uri.clone(),
        ConnectionProperties::default(),
        tls,
        runtime,
    )
    .await?;
    let connection = Arc::new(connection);
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel))
}

async fn supervise(name: String, shared: Arc<Shared>, mut stopped: watch::Receiver<()>) {
    let mut failures: u32 = 0;
    let mut last_failure = None::<String>;
    loop {
        let connection = tokio::select! {
            _ = stopped.changed() => return,
            opened = open(&shared) => opened,
        };
        match connection {
            Ok((connection, channel)) => {
                failures = 0;
                last_failure = None;
                tracing::info!(broker = %name, "amqp connected");
                let mut events = connection.events_listener();
                *shared.channel.lock().unwrap_or_else(|e| e.into_inner()) = Some(channel);
                shared.connection.send_replace(Some(connection.clone()));
                shared.health.up();
                let reason = loop {
                    tokio::select! {
                        _ = stopped.changed() => {
                            shared.connection.send_replace(None);
                            let _ = connection.close(200, "sidebus stopping".into()).await;
                            return;
                        }
                        event = events.next() => match event {
                            Some(lapin::Event::Error(e)) => break e.to_string(),
                            None => break "connection closed".to_string(),
                            Some(_) => {}
                        },
                        _ = shared.check.notified() => {
                            if !connection.status().connected() {
                                break "connection lost".to_string();
                            }
                            if let Err(e) = reopen_channel(&connection, &shared).await {
                                break format!("reopening channel: {e}");
                            }
                        }
                    }
                };
                *shared.channel.lock().unwrap_or_else(|e| e.into_inner()) = None;
                shared.connection.send_replace(None);
                shared
                    .declared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                shared.health.down(format!("amqp: {reason}"));
                tracing::warn!(broker = %name, %reason, "amqp connection lost; reconnecting");
            }
            Err(e) => {
                let reason = format!("amqp: connecting: {e}");
                if last_failure.as_ref() != Some(&reason) {
                    tracing::warn!(broker = %name, %reason, "amqp connection failed; retrying");
                }
                shared.health.down(reason.clone());
                last_failure = Some(reason);
                failures = failures.saturating_add(1);
            }
        }
        let delay = Duration::from_millis((100u64 << failures.min(6)).min(5000));
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Replaces a channel the broker closed (e.g. after a refused declare) on a live connection.
async fn reopen_channel(connection: &Connection, shared: &Shared) -> lapin::Result<()> {
    let healthy = shared
        .channel
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|c| c.status().connected());
    if healthy {
        return Ok(());
    }
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    *shared.channel.lock().unwrap_or_else(|e| e.into_inner()) = Some(channel);
    shared
        .declared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    Ok(())
}

fn properties(out: &Outbound) -> BasicProperties {
    let event = &out.event;
    let mut headers = FieldTable::default();
    for (name, value) in event.header_attributes() {
        headers.insert(
            ShortString::from(prefixed_name(Prefix::Dash, name).into_owned()),
            AMQPValue::LongString(LongString::from(value)),
        );
    }
    let mut props = BasicProperties::default()
        .with_message_id(ShortString::from(event.id.as_str()))
        .with_delivery_mode(PERSISTENT)
        .with_headers(headers);
    if let Some(ct) = &event.datacontenttype {
        props = props.with_content_type(ShortString::from(ct.as_str()));
    }
    props
}

/// Publishes a batch in order and returns each message's confirmation, to be awaited later.
///
/// lapin's `basic_publish` queues a message's frames (and takes its delivery tag) when first
/// polled, then waits until its I/O loop has written them. Awaiting each in turn would make a
/// batch one wake-up of that loop per message; instead every publish is polled once, in order —
/// which queues the whole batch in order — and only then are the writes awaited, together.
async fn publish_all(
    channel: &Channel,
    batch: &[Outbound],
) -> Vec<lapin::Result<PublisherConfirm>> {
    let mut publishes: Vec<_> = batch
        .iter()
        .map(|out| {
            let routing_key = out.event.partition_key().unwrap_or(&out.topic);
            Box::pin(channel.basic_publish(
                ShortString::from(&*out.topic),
                ShortString::from(routing_key),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                &out.event.data,
                properties(out),
            ))
        })
        .collect();
    let mut written = Vec::with_capacity(publishes.len());
    for publish in &mut publishes {
        written.push(match futures::poll!(publish.as_mut()) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        });
    }
    let mut results = Vec::with_capacity(publishes.len());
    for (publish, written) in publishes.iter_mut().zip(written) {
        results.push(match written {
            Some(result) => result,
            None => publish.await,
        });
    }
    results
}

/// Refuses a topic pattern, which names no exchange.
fn refuse_pattern(topic: &str) -> Result<(), ConsumeError> {
    match TopicPattern::parse(topic) {
        Ok(pattern) if pattern.is_wildcard() => Err(ConsumeError::Invalid(NO_WILDCARDS.into())),
        _ => Ok(()),
    }
}

#[async_trait::async_trait]
impl Backend for AmqpBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn send(&self, batch: Vec<Outbound>) -> Acks {
        let Some(channel) = self.channel() else {
            self.shared.check.notify_one();
            let reason = self
                .shared
                .health
                .status()
                .last_error
                .unwrap_or_else(|| "not connected yet".into());
            return fail_all(batch.len(), PublishError::Unavailable(reason));
        };
        let mut topics: Vec<&str> = batch.iter().map(|o| &*o.topic).collect();
        topics.sort_unstable();
        topics.dedup();
        for topic in topics {
            if let Err(e) = self.ensure_exchange(&channel, topic).await {
                return fail_all(batch.len(), e);
            }
        }
        let pending = publish_all(&channel, &batch).await;
        if pending.iter().any(Result::is_err) {
            self.shared.check.notify_one();
        }
        let ack_timeout = self.ack_timeout;
        let n = batch.len();
        Box::pin(async move {
            let confirms = async {
                let mut results: Vec<PublishResult> = Vec::with_capacity(pending.len());
                for p in pending {
                    let confirmation = match p {
                        Ok(confirm) => confirm.await,
                        Err(e) => Err(e),
                    };
                    results.push(match confirmation {
                        Ok(Confirmation::Ack(None)) => Ok(Position::default()),
                        Ok(Confirmation::Ack(Some(returned))) => {
                            Err(PublishError::Rejected(format!(
                                "unroutable: no queue is bound to exchange {} ({} {})",
                                returned.delivery.exchange,
                                returned.reply_code,
                                returned.reply_text
                            )))
                        }
                        Ok(Confirmation::Nack(_)) => Err(PublishError::Rejected(
                            "the broker nacked the message".into(),
                        )),
                        Ok(Confirmation::NotRequested) => Ok(Position::default()),
                        Err(e) => Err(PublishError::Unavailable(e.to_string())),
                    });
                }
                results
            };
            match tokio::time::timeout(ack_timeout, confirms).await {
                Ok(results) => results,
                Err(_) => vec![Err(PublishError::Timeout(ack_timeout)); n],
            }
        })
    }

    fn status(&self) -> BrokerStatus {
        let mut status = self.shared.health.status();
        status.connected = status.connected && self.channel().is_some();
        status
    }

    async fn subscribe(&self, spec: GroupSpec) -> Result<Consumer, ConsumeError> {
        refuse_pattern(&spec.topic)?;
        consume::subscribe(self.shared.clone(), spec).await
    }

    async fn read_from(&self, topic: &str, from: ReadFrom) -> Result<Consumer, ConsumeError> {
        refuse_pattern(topic)?;
        consume::read_from(self.shared.clone(), topic, from).await
    }

    async fn list_topics(&self, _prefix: Option<&str>) -> Result<Vec<TopicInfo>, ConsumeError> {
        Err(ConsumeError::Unsupported(
            "AMQP 0-9-1 cannot list exchanges: the protocol has no request that enumerates them \
             (RabbitMQ's management HTTP API can)"
                .into(),
        ))
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_32_kib_unless_the_url_says_otherwise() {
        let uri = connection_uri("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(uri.query.frame_max, Some(FRAME_MAX));
        let uri = connection_uri("amqp://127.0.0.1/%2f?frame_max=131072&heartbeat=5").unwrap();
        assert_eq!(uri.query.frame_max, Some(131_072));
        assert_eq!(uri.query.heartbeat, Some(5));
        let err = connection_uri("amqp://127.0.0.1:notaport/").unwrap_err();
        assert!(!err.is_empty());
    }
}

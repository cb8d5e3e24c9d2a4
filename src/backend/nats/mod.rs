//! NATS JetStream: a topic is a subject; `Nats-Msg-Id` = event id so the stream dedups retries;
//! publish acks are pipelined (all of a batch are sent before any is awaited).

mod consume;
mod pattern;
mod topics;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::header::IntoHeaderName;
use async_nats::jetstream::context::{
    ContextBuilder, CreateStreamError, CreateStreamErrorKind, GetStreamByNameErrorKind,
    PublishErrorKind,
};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};
use async_nats::jetstream::ErrorCode;
use async_nats::{HeaderMap, HeaderName, HeaderValue};

use super::consume::{ConsumeError, Consumer, GroupSpec, ReadFrom, ReadPosition, Reading};
use super::tls::CheckFiles;
use super::{
    fail_all, Acks, Backend, BackendSettings, BrokerStatus, BuildError, Capabilities, CursorKind,
    CursorLayout, Health, Outbound, Position, PublishError, PublishResult, TopicInfo,
};
use crate::config::{NatsConfig, StreamCompression};
use crate::event::{prefixed_name, Prefix};

/// The config `kind`.
pub const KIND: &str = "nats";

/// Stream sequences resume from cursors; nothing is refused.
pub const CAPABILITIES: Capabilities = Capabilities {
    cursor: Some(CursorKind {
        byte: 2,
        name: "JetStream",
        layout: CursorLayout::Sequence,
    }),
    no_replay: None,
    no_wildcards: None,
    no_wildcard_read: None,
};

/// A NATS JetStream broker.
pub struct NatsBackend {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    create_streams: bool,
    compression: Option<async_nats::jetstream::stream::Compression>,
    dedup_window: Duration,
    ack_timeout: Duration,
    known_subjects: Mutex<HashSet<String>>,
    health: Arc<Health>,
}

/// The stream sidebus creates for `topic`: `SIDEBUS_` + the topic with `.` and `-` as `_`; in a
/// pattern, `*` becomes `STAR` and `>` becomes `ALL` (`orders.*` -> `SIDEBUS_orders_STAR`).
pub fn stream_name(topic: &str) -> String {
    let name = topic
        .replace(['.', '-'], "_")
        .replace('*', "STAR")
        .replace('>', "ALL");
    format!("SIDEBUS_{name}")
}

impl NatsBackend {
    /// Starts the client; the connection is made (and remade) in the background.
    pub async fn connect(
        name: &str,
        config: &NatsConfig,
        settings: &BackendSettings,
    ) -> Result<Self, BuildError> {
        let build_error = |reason: String| BuildError {
            broker: name.to_string(),
            reason,
        };
        config.tls().check().map_err(build_error)?;
        let health = Arc::new(Health::default());
        let failure = Arc::new(Mutex::new(None::<String>));
        let events = (health.clone(), failure.clone());
        let attempts = (health.clone(), failure, name.to_string());
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("sidebus-{name}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            // Reconnect attempts to a local sidecar's broker are cheap; a cap of a second keeps
            // recovery within about a second of the broker's return.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * 2u64.saturating_pow(attempts.min(6) as u32)).min(1000))
            })
            .reconnect_to_server_callback(move |servers, _info| {
                let (health, failure, name) = &attempts;
                record_failure(name, health, failure, &servers);
                std::future::ready(None)
            })
            .event_callback(move |event| {
                let (health, failure) = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => health.up(),
                        async_nats::Event::Disconnected | async_nats::Event::Closed => {
                            health.down(format!("nats: {event}"))
                        }
                        // Carries only the kind ("IO error", "TLS error"); the cause is in the
                        // server pool, recorded by `record_failure` before the next attempt.
                        async_nats::Event::ClientError(async_nats::ClientError::Other(kind)) => {
                            let detailed = lock(&failure).clone();
                            health.error(detailed.unwrap_or_else(|| format!("nats: {kind}")))
                        }
                        other => health.error(format!("nats: {other}")),
                    }
                }
            });
        if let (Some(user), Some(password)) = (&config.user, &config.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &config.token {
            options = options.token(token.clone());
        }
        if let Some(path) = &config.credentials_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| build_error(format!("credentials_file {}: {e}", path.display())))?;
        }
        if let Some(ca) = &config.tls_ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        let servers: Vec<async_nats::ServerAddr> = config
            .url
            .split(',')
            .map(|u| u.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|e| build_error(format!("url: {e}")))?;
        let client = options
            .connect(servers)
            .await
            .map_err(|e| build_error(format!("connecting: {e}")))?;
        if client.connection_state() == State::Connected {
            health.up();
        }
        let jetstream = ContextBuilder::new()
            .timeout(settings.ack_timeout)
            .max_ack_inflight(1 << 20)
            .build(client.clone());
        Ok(Self {
            client,
            jetstream,
            create_streams: config.create_streams,
            compression: match config.compression {
                StreamCompression::None => None,
                StreamCompression::S2 => Some(async_nats::jetstream::stream::Compression::S2),
            },
            dedup_window: settings.dedup_window,
            ack_timeout: settings.ack_timeout,
            known_subjects: Mutex::new(HashSet::new()),
            health,
        })
    }

    /// Makes sure a stream captures `subject`, creating `SIDEBUS_<topic>` when none does.
    async fn ensure_stream(&self, subject: &str) -> Result<(), PublishError> {
        if self.known(subject) {
            return Ok(());
        }
        match self.jetstream.stream_by_subject(subject).await {
            Ok(_) => {}
            // The server's lookup by subject misses a stream over a wildcard that covers it
            // (`orders.*`, created for a wildcard subscription).
            Err(e)
                if e.kind() == GetStreamByNameErrorKind::NotFound
                    && self.covering_stream(subject).await.is_some() => {}
            Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound && self.create_streams => {
                let config = StreamConfig {
                    name: stream_name(subject),
                    subjects: vec![subject.to_string()],
                    storage: StorageType::File,
                    duplicate_window: self.dedup_window,
                    compression: self.compression.clone(),
                    ..StreamConfig::default()
                };
                match self.jetstream.get_or_create_stream(config).await {
                    Ok(_) => {}
                    // A stream captures the subject after all: one over a wildcard, created or
                    // first listed since the lookups above.
                    Err(e) if subject_overlap(&e) => {}
                    Err(e) => {
                        return Err(PublishError::Rejected(format!(
                            "creating stream for {subject}: {e}"
                        )))
                    }
                }
            }
            Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound => {
                return Err(PublishError::Rejected(format!(
                    "no stream captures subject {subject} and create_streams is off"
                )))
            }
            Err(e) => {
                return Err(PublishError::Unavailable(format!(
                    "looking up the stream for {subject}: {e}"
                )))
            }
        }
        lock(&self.known_subjects).insert(subject.to_string());
        Ok(())
    }

    fn known(&self, subject: &str) -> bool {
        lock(&self.known_subjects).contains(subject)
    }
}

/// Whether creating a stream failed because another stream's subjects overlap its own: for one
/// subject, that stream captures it.
fn subject_overlap(error: &CreateStreamError) -> bool {
    matches!(
        error.kind(),
        CreateStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_SUBJECT_OVERLAP
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Called before every connection attempt with the server pool, whose entries keep the full
/// error of their last failed attempt (e.g. `invalid peer certificate: UnknownIssuer`): makes
/// that the broker's last error and logs it when it changes.
fn record_failure(
    broker: &str,
    health: &Health,
    failure: &Mutex<Option<String>>,
    servers: &[async_nats::Server],
) {
    let failed: Vec<String> = servers
        .iter()
        .filter_map(|s| s.last_error.as_ref().map(|e| format!("{s}: {e}")))
        .collect();
    let reason =
        (!failed.is_empty()).then(|| format!("nats: cannot connect to {}", failed.join("; ")));
    let mut last = lock(failure);
    if let Some(reason) = &reason {
        if last.as_ref() != Some(reason) {
            tracing::warn!(broker = %broker, %reason, "nats connection failed; retrying");
        }
        health.error(reason.clone());
    }
    *last = reason;
}

fn headers(out: &Outbound) -> HeaderMap {
    let event = &out.event;
    let mut headers = HeaderMap::new();
    for (name, value) in event.header_attributes() {
        let name = match prefixed_name(Prefix::Dash, name) {
            Cow::Borrowed(name) => HeaderName::from_static(name),
            Cow::Owned(name) => name.into_header_name(),
        };
        headers.insert(name, HeaderValue::from(value));
    }
    if let Some(ct) = &event.datacontenttype {
        headers.insert("Content-Type", HeaderValue::from(ct.as_str()));
    }
    headers
}

fn classify(kind: PublishErrorKind, error: String, ack_timeout: Duration) -> PublishError {
    match kind {
        PublishErrorKind::TimedOut => PublishError::Timeout(ack_timeout),
        PublishErrorKind::BrokenPipe | PublishErrorKind::StreamNotFound => {
            PublishError::Unavailable(error)
        }
        _ => PublishError::Rejected(error),
    }
}

#[async_trait::async_trait]
impl Backend for NatsBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn send(&self, batch: Vec<Outbound>) -> Acks {
        if self.client.connection_state() != State::Connected {
            let reason = self
                .health
                .status()
                .last_error
                .unwrap_or_else(|| "not connected yet".into());
            return fail_all(batch.len(), PublishError::Unavailable(reason));
        }
        let mut subjects: Vec<&str> = batch.iter().map(|o| &*o.topic).collect();
        subjects.sort_unstable();
        subjects.dedup();
        for subject in subjects {
            if let Err(e) = self.ensure_stream(subject).await {
                return fail_all(batch.len(), e);
            }
        }
        let ack_timeout = self.ack_timeout;
        let mut pending = Vec::with_capacity(batch.len());
        for out in batch {
            // `headers` replaces the whole map, so the message id is set after it.
            let publish = PublishMessage::build()
                .headers(headers(&out))
                .message_id(&out.event.id)
                .payload(out.event.data);
            let subject = out.topic.to_string();
            pending.push(self.jetstream.send_publish(subject, publish).await);
        }
        Box::pin(async move {
            let mut results: Vec<PublishResult> = Vec::with_capacity(pending.len());
            for p in pending {
                let ack = match p {
                    Ok(ack) => ack.await,
                    Err(e) => Err(e),
                };
                results.push(match ack {
                    Ok(ack) => Ok(Position {
                        sequence: Some(ack.sequence),
                        stream: Some(ack.stream),
                        duplicate: ack.duplicate,
                        ..Position::default()
                    }),
                    Err(e) => Err(classify(e.kind(), e.to_string(), ack_timeout)),
                });
            }
            results
        })
    }

    async fn subscribe(&self, spec: GroupSpec) -> Result<Consumer, ConsumeError> {
        self.subscribe_group(spec).await
    }

    async fn read_from(&self, topic: &str, from: ReadFrom) -> Result<Consumer, ConsumeError> {
        self.read_positional(topic, from).await
    }

    async fn read_resolved(&self, topic: &str, from: ReadFrom) -> Result<Reading, ConsumeError> {
        let (from, start, exact) = match from {
            // Stream sequences start at 1; a start below the first retained one delivers from
            // the first retained one, exactly like "all".
            ReadFrom::Earliest => (ReadFrom::Sequence(1), 1, true),
            // The stream's last sequence is not known here: the first event tells it.
            ReadFrom::Latest => (ReadFrom::Latest, 0, false),
            ReadFrom::Sequence(next) => (ReadFrom::Sequence(next), next, true),
            ReadFrom::Offsets(_) => {
                return Ok(Reading::unpositioned(
                    self.read_positional(topic, from).await?,
                ))
            }
        };
        Ok(Reading {
            consumer: self.read_positional(topic, from).await?,
            start: Some(ReadPosition::Sequence(start)),
            exact,
        })
    }

    async fn list_topics(&self, prefix: Option<&str>) -> Result<Vec<TopicInfo>, ConsumeError> {
        self.topics(prefix).await
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn status(&self) -> BrokerStatus {
        let mut status = self.health.status();
        status.connected = self.client.connection_state() == State::Connected;
        status
    }

    fn check_topic(&self, topic: &str) -> Result<(), String> {
        if topic.starts_with('.') || topic.ends_with('.') || topic.contains("..") {
            return Err(format!(
                "topic `{topic}` is not a valid NATS subject: a dot separates non-empty tokens"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_follow_the_design() {
        assert_eq!(stream_name("orders.v1-eu"), "SIDEBUS_orders_v1_eu");
        assert_eq!(stream_name("orders.*.eu"), "SIDEBUS_orders_STAR_eu");
        assert_eq!(stream_name("orders.>"), "SIDEBUS_orders_ALL");
    }
}

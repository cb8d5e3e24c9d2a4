//! The brokers sidebus talks to (`[brokers.<name>]`): one settings struct per `kind`, and
//! their validation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::spool::SpoolConfig;
use super::{invalid, positive, ConfigError};
use crate::config::topic::validate_topic;

/// One broker, chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BrokerConfig {
    /// The embedded in-process broker: no setup, nothing survives a restart.
    Memory(MemoryConfig),
    /// Apache Kafka (or any Kafka-protocol broker) through librdkafka.
    Kafka(KafkaConfig),
    /// NATS JetStream.
    Nats(NatsConfig),
    /// AMQP 0-9-1, e.g. RabbitMQ.
    Amqp(AmqpConfig),
}

impl BrokerConfig {
    /// The `kind` string as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerConfig::Memory(_) => "memory",
            BrokerConfig::Kafka(_) => "kafka",
            BrokerConfig::Nats(_) => "nats",
            BrokerConfig::Amqp(_) => "amqp",
        }
    }

    /// The broker's `topic_prefix`, if it has one.
    pub fn topic_prefix(&self) -> Option<&str> {
        match self {
            BrokerConfig::Memory(m) => m.topic_prefix.as_deref(),
            BrokerConfig::Kafka(k) => k.topic_prefix.as_deref(),
            BrokerConfig::Nats(n) => n.topic_prefix.as_deref(),
            BrokerConfig::Amqp(a) => a.topic_prefix.as_deref(),
        }
    }

    /// The broker's spool, if it has one (the memory broker never does: it is never away).
    pub fn spool(&self) -> Option<&SpoolConfig> {
        match self {
            BrokerConfig::Memory(_) => None,
            BrokerConfig::Kafka(k) => k.spool.as_ref(),
            BrokerConfig::Nats(n) => n.spool.as_ref(),
            BrokerConfig::Amqp(a) => a.spool.as_ref(),
        }
    }
}

/// Settings of the embedded memory broker. Each bound drops the oldest events once it is
/// exceeded, whichever is reached first, so `cargo run` under any load and over any number of
/// topics keeps its memory flat. An event weighs its payload plus its attributes' text. The event
/// just published is never dropped, even when it alone outweighs a byte bound: it has been
/// acknowledged, so it stays readable until the next event of its topic, or for `max_bytes` of
/// the broker, takes its place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Events kept per topic; the topic's oldest go first. Bounds a topic of many small events,
    /// whose bookkeeping the byte bounds do not count.
    pub retention: usize,
    /// Bytes of events kept per topic; the topic's oldest go first. The count alone let a topic
    /// of large events grow to tens of gigabytes (100,000 events of 512 KiB are 50 GiB).
    pub retention_bytes: ByteSize,
    /// Bytes of events kept by the whole broker; the oldest event of the broker goes first,
    /// whichever topic holds it. A per-topic bound cannot cap the memory of a broker whose
    /// clients invent new topics; this one does. Below `retention_bytes` it is the bound that
    /// applies.
    pub max_bytes: ByteSize,
    /// Prepended to every physical topic name on this broker (mapped, unmapped, shadow and
    /// dead-letter topics alike), so tenants sharing a broker never meet; services never see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_prefix: Option<String>,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            retention: 100_000,
            retention_bytes: ByteSize::mib(64),
            max_bytes: ByteSize::mib(256),
            topic_prefix: None,
        }
    }
}

/// Settings of a Kafka broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// Create topics on first use with these settings; without it topics must exist.
    #[serde(default)]
    pub create_topics: Option<CreateTopics>,
    /// Any librdkafka property (TLS, SASL, compression, ...), passed through unchanged.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// `[brokers.<name>.spool]`: spool publishes the broker cannot take now, and forward them
    /// in order once it can (docs/spool.md).
    #[serde(default)]
    pub spool: Option<SpoolConfig>,
    /// Prepended to every physical topic name on this broker (mapped, unmapped, shadow and
    /// dead-letter topics alike), so tenants sharing a broker never meet; services never see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_prefix: Option<String>,
}

/// How sidebus creates Kafka topics that do not exist yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopics {
    /// Partitions of a created topic.
    pub partitions: i32,
    /// Replication factor of a created topic.
    pub replication_factor: i32,
}

/// Settings of a NATS JetStream broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Create a stream `SIDEBUS_<topic>` for a topic no stream captures (default true).
    #[serde(default = "yes")]
    pub create_streams: bool,
    /// Compression of the streams sidebus creates (`s2` or `none`): JetStream compresses what it
    /// stores on disk, trading server CPU for disk. Streams that already exist keep their own.
    #[serde(default)]
    pub compression: StreamCompression,
    /// User name for user/password authentication.
    #[serde(default)]
    pub user: Option<String>,
    /// Password for user/password authentication.
    #[serde(default)]
    pub password: Option<String>,
    /// Token authentication.
    #[serde(default)]
    pub token: Option<String>,
    /// Path of a `.creds` file (JWT + NKey).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// PEM CA certificate(s) to trust for TLS.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// Client key for mutual TLS.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// `[brokers.<name>.spool]`: spool publishes the broker cannot take now, and forward them
    /// in order once it can (docs/spool.md).
    #[serde(default)]
    pub spool: Option<SpoolConfig>,
    /// Prepended to every physical topic name on this broker (mapped, unmapped, shadow and
    /// dead-letter topics alike), so tenants sharing a broker never meet; services never see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_prefix: Option<String>,
}

fn yes() -> bool {
    true
}

/// How JetStream stores the messages of a stream sidebus creates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamCompression {
    /// Uncompressed (JetStream's default).
    #[default]
    None,
    /// S2 (Snappy-compatible) compression.
    S2,
}

impl NatsConfig {
    /// Its TLS files, as the backend reads and checks them.
    pub fn tls(&self) -> TlsFiles {
        TlsFiles {
            ca: self.tls_ca_file.clone(),
            cert: self.tls_cert_file.clone(),
            key: self.tls_key_file.clone(),
        }
    }
}

/// Settings of an AMQP 0-9-1 broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// `amqp://user:pass@host:port/vhost` (or `amqps://`).
    pub url: String,
    /// Type of the exchange declared for a topic: fanout, topic, direct or headers.
    #[serde(default = "default_exchange_kind")]
    pub exchange_kind: String,
    /// PEM CA certificate(s) to trust for TLS, on top of the system trust store; needs an
    /// `amqps://` URL.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `tls_key_file` and an `amqps://` URL.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file` (PKCS#8, PKCS#1 or SEC1, unencrypted).
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// `[brokers.<name>.spool]`: spool publishes the broker cannot take now, and forward them
    /// in order once it can (docs/spool.md).
    #[serde(default)]
    pub spool: Option<SpoolConfig>,
    /// Prepended to every physical topic name on this broker (mapped, unmapped, shadow and
    /// dead-letter topics alike), so tenants sharing a broker never meet; services never see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_prefix: Option<String>,
}

impl AmqpConfig {
    /// Its TLS files, as the backend reads and checks them.
    pub fn tls(&self) -> TlsFiles {
        TlsFiles {
            ca: self.tls_ca_file.clone(),
            cert: self.tls_cert_file.clone(),
            key: self.tls_key_file.clone(),
        }
    }
}

/// The PEM files of a broker's TLS settings (`tls_ca_file`, `tls_cert_file`, `tls_key_file`),
/// one type for every broker that has them. The keys stay plain fields of each broker's table:
/// `#[serde(flatten)]` would lose the key path and the list of expected keys in the error for a
/// misspelt key, which `deny_unknown_fields` gives today.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `tls_ca_file`: PEM CA certificate(s) to trust.
    pub ca: Option<PathBuf>,
    /// `tls_cert_file`: PEM client certificate (chain) for mutual TLS.
    pub cert: Option<PathBuf>,
    /// `tls_key_file`: PEM private key of the client certificate.
    pub key: Option<PathBuf>,
}

fn default_exchange_kind() -> String {
    "fanout".into()
}

/// Checks one broker's settings; `name` is its key under `[brokers]`.
pub(super) fn validate_broker(name: &str, broker: &BrokerConfig) -> Result<(), ConfigError> {
    if validate_topic(name).is_err() {
        return Err(invalid(
            format!("brokers.{name}"),
            "a broker name is 1-249 characters of [A-Za-z0-9._-]",
        ));
    }
    let key = |field: &str| format!("brokers.{name}.{field}");
    if let Some(spool) = broker.spool() {
        spool.validate(&key("spool"))?;
    }
    if let Some(prefix) = broker.topic_prefix() {
        super::topic_map::validate_prefix(&key("topic_prefix"), prefix)?;
    }
    match broker {
        BrokerConfig::Memory(m) => {
            positive(&key("retention"), m.retention)?;
            positive_size(&key("retention_bytes"), m.retention_bytes)?;
            positive_size(&key("max_bytes"), m.max_bytes)
        }
        BrokerConfig::Kafka(k) => {
            if k.bootstrap_servers.trim().is_empty() {
                return Err(invalid(key("bootstrap_servers"), "must not be empty"));
            }
            if let Some(c) = &k.create_topics {
                if c.partitions < 1 {
                    return Err(invalid(
                        key("create_topics.partitions"),
                        "must be at least 1",
                    ));
                }
                if c.replication_factor < 1 {
                    return Err(invalid(
                        key("create_topics.replication_factor"),
                        "must be at least 1",
                    ));
                }
            }
            Ok(())
        }
        BrokerConfig::Nats(n) => {
            for url in n.url.split(',') {
                let url = url.trim();
                let scheme_ok = ["nats://", "tls://", "ws://", "wss://"]
                    .iter()
                    .any(|s| url.starts_with(s))
                    || !url.contains("://");
                if url.is_empty() || !scheme_ok {
                    return Err(invalid(
                        key("url"),
                        format!("`{url}` is not a nats:// or tls:// URL"),
                    ));
                }
            }
            client_certificate(&key, &n.tls())
        }
        BrokerConfig::Amqp(a) => {
            if !(a.url.starts_with("amqp://") || a.url.starts_with("amqps://")) {
                return Err(invalid(key("url"), "must start with amqp:// or amqps://"));
            }
            if !["fanout", "topic", "direct", "headers"].contains(&a.exchange_kind.as_str()) {
                return Err(invalid(
                    key("exchange_kind"),
                    "must be one of fanout, topic, direct, headers",
                ));
            }
            let tls = a.tls();
            let tls_settings = [
                ("tls_ca_file", &tls.ca),
                ("tls_cert_file", &tls.cert),
                ("tls_key_file", &tls.key),
            ];
            if let Some((setting, _)) = tls_settings.iter().find(|(_, path)| path.is_some()) {
                if !a.url.starts_with("amqps://") {
                    return Err(invalid(
                        key(setting),
                        "needs an amqps:// url: an amqp:// connection does not use TLS",
                    ));
                }
            }
            client_certificate(&key, &tls)
        }
    }
}

/// A byte size of at least one byte.
fn positive_size(key: &str, size: ByteSize) -> Result<(), ConfigError> {
    if size.as_u64() == 0 {
        return Err(invalid(key, "must be more than 0 bytes"));
    }
    Ok(())
}

/// A client certificate and its key go together.
fn client_certificate(key: &dyn Fn(&str) -> String, tls: &TlsFiles) -> Result<(), ConfigError> {
    match (&tls.cert, &tls.key) {
        (Some(_), None) => Err(invalid(
            key("tls_key_file"),
            "is required with tls_cert_file: the client certificate's private key",
        )),
        (None, Some(_)) => Err(invalid(
            key("tls_cert_file"),
            "is required with tls_key_file: the client certificate",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use bytesize::ByteSize;

    use crate::config::tests::parse;
    use crate::config::BrokerConfig;

    #[test]
    fn unknown_key_is_named() {
        let err = parse("[brokers.x]\nkind = \"nats\"\nurl = \"nats://a\"\nurll = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn amqp_tls_files_need_an_amqps_url_and_go_in_pairs() {
        let amqp = |url: &str, tls: &str| {
            parse(&format!(
                "[brokers.q]\nkind = \"amqp\"\nurl = \"{url}\"\n{tls}"
            ))
        };
        let err = amqp("amqp://h/%2f", "tls_ca_file = \"/ca.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("brokers.q.tls_ca_file"), "{err}");
        assert!(err.contains("amqps://"), "{err}");
        let err = amqp("amqps://h/%2f", "tls_cert_file = \"/c.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("brokers.q.tls_key_file"), "{err}");
        let err = amqp("amqps://h/%2f", "tls_key_file = \"/k.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("brokers.q.tls_cert_file"), "{err}");
        let tls =
            "tls_ca_file = \"/ca.pem\"\ntls_cert_file = \"/c.pem\"\ntls_key_file = \"/k.pem\"\n";
        amqp("amqps://h/%2f", tls).expect("a full TLS setup is valid");
        amqp("amqp://h/%2f", "").expect("plain AMQP needs no TLS files");
    }

    #[test]
    fn memory_bounds_default_and_parse_as_sizes() {
        let memory = |toml: &str| parse(&format!("[brokers.m]\nkind = \"memory\"\n{toml}"));
        let config = memory("").unwrap();
        let Some(BrokerConfig::Memory(m)) = config.brokers.get("m") else {
            panic!("a memory broker: {:?}", config.brokers);
        };
        assert_eq!(m.retention, 100_000);
        assert_eq!(m.retention_bytes, ByteSize::mib(64));
        assert_eq!(m.max_bytes, ByteSize::mib(256));
        let config = memory("retention_bytes = \"4MiB\"\nmax_bytes = \"8MiB\"").unwrap();
        let Some(BrokerConfig::Memory(m)) = config.brokers.get("m") else {
            panic!("a memory broker");
        };
        assert_eq!(
            (m.retention_bytes.as_u64(), m.max_bytes.as_u64()),
            (4 << 20, 8 << 20)
        );
        for (toml, key) in [
            ("retention = 0", "brokers.m.retention"),
            ("retention_bytes = \"0B\"", "brokers.m.retention_bytes"),
            ("max_bytes = 0", "brokers.m.max_bytes"),
        ] {
            let err = memory(toml).unwrap_err().to_string();
            assert!(
                err.contains(key) && err.contains("more than 0"),
                "{toml}: {err}"
            );
        }
        let err = memory("max_bytes = \"lots\"").unwrap_err().to_string();
        assert!(err.contains("lots") && err.contains("brokers.m"), "{err}");
    }

    #[test]
    fn unknown_kind_is_rejected() {
        let err = parse("[brokers.a]\nkind = \"redis\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis"), "{err}");
    }
}

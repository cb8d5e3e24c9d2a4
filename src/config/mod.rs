//! Configuration: `sidebus.toml` layered with `SIDEBUS_*` environment variables, parsed into a
//! [`RawConfig`] that mirrors the file, then checked by the pure [`RawConfig::validate`] step into
//! the [`Config`] the rest of sidebus runs on.
mod access;
pub mod audit;
mod brokers;
mod error;
mod idempotency;
mod limits;
mod pipeline;
pub mod quota;
pub mod rate_limit;
pub mod schema;
mod spool;
mod sse;
pub mod subscription;
mod telemetry;
pub mod topic;
pub mod topic_map;
mod whole;

pub use access::{AccessConfig, PrincipalConfig};
pub use audit::{AuditConfig, AuditTopic};
pub use brokers::{
    AmqpConfig, BrokerConfig, CreateTopics, KafkaConfig, MemoryConfig, NatsConfig,
    StreamCompression, TlsFiles,
};
pub use error::{ConfigError, Origin, Problem};
pub use idempotency::{IdempotencyConfig, RawIdempotency};
pub use limits::{Limits, RawLimits};
pub use pipeline::{PipelineConfig, RawPipeline};
pub use quota::QuotaRule;
pub use schema::{Encoding, SchemaRegistryConfig, SchemaRule};
pub use spool::SpoolConfig;
pub use sse::{RawSse, SseConfig};
pub use subscription::{StartFrom, SubscriptionSpec};
pub use telemetry::{OtlpConfig, OtlpProtocol, RawTelemetry, TelemetryConfig};
pub use topic_map::TopicRule;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use serde::{Deserialize, Serialize};

use brokers::validate_broker;
use error::EnvSource;

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Prefix of the environment variables that set configuration keys.
const ENV_PREFIX: &str = "SIDEBUS_";

/// What joins nested keys in an environment variable's name (`SIDEBUS_LIMITS__MAX_BODY`).
const ENV_SPLIT: &str = "__";

/// Top-level keys; other `SIDEBUS_*` variables (`SIDEBUS_CONFIG`, `SIDEBUS_LOG`, test settings)
/// are not configuration.
const CONFIG_KEYS: &[&str] = &[
    "listen",
    "state_dir",
    "source",
    "limits",
    "pipeline",
    "idempotency",
    "brokers",
    "subscriptions",
    "access",
    "shutdown_grace",
    "sse",
    "telemetry",
    "schema_registry",
    "schemas",
    "quotas",
    "topics",
    "audit",
];

/// The configuration file as written, before validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address the HTTP API listens on; loopback by default so only the local service reaches it.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Directory for state that must survive a restart (runtime subscriptions).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// CloudEvents `source` given to events published without one; default `sidebus://<hostname>`.
    #[serde(default)]
    pub source: Option<String>,
    /// Size and queue limits that keep memory bounded under any load.
    #[serde(default)]
    pub limits: RawLimits,
    /// How events are grouped before they are handed to a broker.
    #[serde(default)]
    pub pipeline: RawPipeline,
    /// How long an `Idempotency-Key` is remembered, and how many keys at most.
    #[serde(default)]
    pub idempotency: RawIdempotency,
    /// The brokers by name; the name is the `{broker}` path segment of the API.
    #[serde(default = "default_brokers")]
    pub brokers: BTreeMap<String, BrokerConfig>,
    /// Webhook subscriptions declared here (each with a `name`); more can be added at runtime.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionSpec>,
    /// Who may call the API and which topics each direction may use.
    #[serde(default)]
    pub access: AccessConfig,
    /// How long SIGTERM/SIGINT may take: finishing requests and draining every pipeline. Past
    /// it sidebus exits non-zero; events not yet acknowledged were never answered 200.
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Server-Sent Events streams (`GET /v1/subscribe/{broker}/{topic}`).
    #[serde(default)]
    pub sse: RawSse,
    /// Trace export to an OpenTelemetry collector (cargo feature `otlp`).
    #[serde(default)]
    pub telemetry: RawTelemetry,
    /// The Confluent-compatible Schema Registry that `[[schemas]]` rules with a `subject` and
    /// the delivery of Confluent-framed payloads use; absent = no registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// Schema rules checked at publish: the first rule matching an event's broker, topic and
    /// type validates its JSON `data` (and may encode it to Avro / Protobuf).
    #[serde(default)]
    pub schemas: Vec<SchemaRule>,
    /// `[[quotas]]`: rates shared by every caller of the topics each names.
    #[serde(default)]
    pub quotas: Vec<QuotaRule>,
    /// `[[topics]]`: logical topic names mapped to physical ones, with optional shadow copies.
    #[serde(default)]
    pub topics: Vec<TopicRule>,
    /// `[audit]`: the audit log's file and/or topic; absent = no audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditConfig>,
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}

fn default_listen() -> String {
    "127.0.0.1:8642".into()
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("./sidebus-state")
}

fn default_brokers() -> BTreeMap<String, BrokerConfig> {
    BTreeMap::from([(
        "default".to_string(),
        BrokerConfig::Memory(MemoryConfig::default()),
    )])
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            state_dir: default_state_dir(),
            source: None,
            limits: RawLimits::default(),
            pipeline: RawPipeline::default(),
            idempotency: RawIdempotency::default(),
            brokers: default_brokers(),
            subscriptions: Vec::new(),
            access: AccessConfig::default(),
            shutdown_grace: default_grace(),
            sse: RawSse::default(),
            telemetry: RawTelemetry::default(),
            schema_registry: None,
            schemas: Vec::new(),
            quotas: Vec::new(),
            topics: Vec::new(),
            audit: None,
        }
    }
}

/// The validated configuration sidebus runs on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// State directory.
    pub state_dir: PathBuf,
    /// Default CloudEvents source.
    pub source: String,
    /// Request and queue limits.
    pub limits: Limits,
    /// Batching settings.
    pub pipeline: PipelineConfig,
    /// Idempotency settings.
    pub idempotency: IdempotencyConfig,
    /// Brokers by name.
    pub brokers: BTreeMap<String, BrokerConfig>,
    /// Webhook subscriptions from the file, each with its name set.
    pub subscriptions: Vec<SubscriptionSpec>,
    /// API token and topic allow-lists.
    pub access: AccessConfig,
    /// Longest graceful shutdown.
    pub shutdown_grace: Duration,
    /// Server-Sent Events settings.
    pub sse: SseConfig,
    /// Trace export settings.
    pub telemetry: TelemetryConfig,
    /// The Schema Registry, when configured.
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// Schema rules, in the order they are tried.
    pub schemas: Vec<SchemaRule>,
    /// Quota rules by broker and topic.
    pub quotas: Vec<QuotaRule>,
    /// Topic mapping rules.
    pub topics: Vec<TopicRule>,
    /// The audit log's sinks, when configured.
    pub audit: Option<AuditConfig>,
}

impl RawConfig {
    /// Reads the optional TOML file, then `SIDEBUS_*` environment variables over it (nested keys
    /// joined by `__`, e.g. `SIDEBUS_BROKERS__EVENTS__BOOTSTRAP_SERVERS`).
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let figment = match path {
            Some(path) if !path.exists() => return Err(ConfigError::Missing(path.to_path_buf())),
            Some(path) => with_file(Toml::file_exact(path)),
            None => Figment::from(Serialized::defaults(RawConfig::default())),
        };
        let env = Env::prefixed(ENV_PREFIX).split(ENV_SPLIT).filter(|key| {
            // Keys keep the variable's case; configuration keys are lowercase.
            let key = key.as_str().to_ascii_lowercase();
            CONFIG_KEYS.contains(&key.split('.').next().unwrap_or(""))
        });
        let env_metadata = env.metadata();
        let figment = figment.merge(env);
        figment.extract().map_err(|error| {
            let env = EnvSource {
                metadata: env_metadata,
                names: std::env::vars_os()
                    .map(|(name, _)| name.to_string_lossy().into_owned())
                    .collect(),
            };
            ConfigError::from_figment(error, &figment, Some(&env))
        })
    }

    /// Parses TOML text alone (no environment), as a file would be read.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let figment = with_file(Toml::string(text));
        figment
            .extract()
            .map_err(|error| ConfigError::from_figment(error, &figment, None))
    }

    /// Checks every value and builds the runtime [`Config`]; touches nothing outside itself.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|e| {
            invalid(
                "listen",
                format!("`{}` is not host:port ({e})", self.listen),
            )
        })?;
        let source = match self.source {
            Some(s) if s.is_empty() => return Err(invalid("source", "must not be empty")),
            Some(s) => s,
            None => format!("sidebus://{}", hostname()),
        };
        let limits = self.limits.validate()?;
        let pipeline = self.pipeline.validate()?;
        let idempotency = self.idempotency.validate()?;
        if self.brokers.is_empty() {
            return Err(invalid("brokers", "at least one broker must be configured"));
        }
        for (name, broker) in &self.brokers {
            validate_broker(name, broker)?;
        }
        self.access.validate()?;
        let mut names = std::collections::BTreeSet::new();
        for (i, sub) in self.subscriptions.iter().enumerate() {
            let name = sub
                .name
                .as_deref()
                .ok_or_else(|| invalid(format!("subscriptions[{i}].name"), "is required"))?;
            let key = |field: &str| format!("subscriptions[{i}] ({name}).{field}");
            crate::config::subscription::validate_name(name)
                .map_err(|e| invalid(key("name"), e.reason))?;
            if !names.insert(name) {
                return Err(invalid(key("name"), "is used twice"));
            }
            sub.validate(|b| self.brokers.contains_key(b))
                .map_err(|e| invalid(key(&e.field), e.reason))?;
        }
        let sse = self.sse.validate()?;
        let telemetry = self.telemetry.validate()?;
        schema::validate(self.schema_registry.as_ref(), &self.schemas, |b| {
            self.brokers.contains_key(b)
        })?;
        quota::validate(&self.quotas, |b| self.brokers.contains_key(b))?;
        topic_map::validate(&self.topics, |b| {
            self.brokers
                .get(b)
                .map(|broker| broker.topic_prefix().unwrap_or_default())
        })?;
        if let Some(audit) = &self.audit {
            audit.validate(|b| self.brokers.contains_key(b))?;
        }
        Ok(Config {
            listen,
            state_dir: self.state_dir,
            source,
            limits,
            pipeline,
            idempotency,
            brokers: self.brokers,
            subscriptions: self.subscriptions,
            access: self.access,
            shutdown_grace: self.shutdown_grace,
            sse,
            telemetry,
            schema_registry: self.schema_registry,
            schemas: self.schemas,
            quotas: self.quotas,
            topics: self.topics,
            audit: self.audit,
        })
    }
}

/// Defaults under a file; a file that names brokers replaces the default memory broker rather
/// than adding to it.
fn with_file(file: figment::providers::Data<Toml>) -> Figment {
    let figment = Figment::from(Serialized::defaults(RawConfig {
        brokers: BTreeMap::new(),
        ..RawConfig::default()
    }))
    .merge(file);
    let names_brokers = figment
        .find_value("brokers")
        .ok()
        .and_then(|v| v.into_dict())
        .is_some_and(|brokers| !brokers.is_empty());
    if names_brokers {
        figment
    } else {
        figment.merge(Serialized::default("brokers", default_brokers()))
    }
}

fn positive(key: &str, value: usize) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be more than 0"));
    }
    Ok(())
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses and validates TOML text, as the tests of every config module do.
    pub(super) fn parse(toml: &str) -> Result<Config, ConfigError> {
        RawConfig::from_toml(toml)?.validate()
    }

    #[test]
    fn no_config_is_one_memory_broker_on_loopback() {
        let config = RawConfig::default().validate().unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8642");
        assert_eq!(config.brokers.len(), 1);
        assert!(matches!(config.brokers["default"], BrokerConfig::Memory(_)));
        assert!(config.source.starts_with("sidebus://"));
    }

    #[test]
    fn design_example_parses() {
        let config = parse(
            r#"
            listen = "127.0.0.1:8642"
            source = "sidebus://checkout"
            limits = { max_body = "4MiB", max_event = "1MiB", max_batch = 1000, pipeline_depth = 65536 }
            [brokers.default]
            kind = "memory"
            [brokers.events]
            kind = "kafka"
            bootstrap_servers = "127.0.0.1:9092"
            create_topics = { partitions = 3, replication_factor = 1 }
            options = { "compression.type" = "lz4" }
            [brokers.jobs]
            kind = "nats"
            url = "nats://127.0.0.1:4222"
            [brokers.tasks]
            kind = "amqp"
            url = "amqp://guest:guest@127.0.0.1:5672/%2f"
            "#,
        )
        .unwrap();
        assert_eq!(config.limits.max_body, 4 * 1024 * 1024);
        assert_eq!(config.brokers.len(), 4);
        assert_eq!(config.source, "sidebus://checkout");
    }

    #[test]
    fn a_file_without_brokers_keeps_the_memory_broker() {
        let config = parse("listen = \"127.0.0.1:9000\"\n").unwrap();
        assert!(matches!(config.brokers["default"], BrokerConfig::Memory(_)));
        let config = parse("[brokers.only]\nkind = \"memory\"\n").unwrap();
        assert_eq!(config.brokers.keys().collect::<Vec<_>>(), ["only"]);
    }

    #[test]
    fn unknown_top_level_key_is_named() {
        let err = parse("lisen = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("listen = \"nope\"\n[brokers.a]\nkind=\"memory\"", "listen"),
            (
                "[brokers.a]\nkind = \"amqp\"\nurl = \"http://x\"",
                "brokers.a.url",
            ),
            (
                "[brokers.a]\nkind = \"kafka\"\nbootstrap_servers = \"x\"\ncreate_topics = { partitions = 0, replication_factor = 1 }",
                "brokers.a.create_topics.partitions",
            ),
            (
                "limits = { max_batch = 0 }\n[brokers.a]\nkind=\"memory\"",
                "limits.max_batch",
            ),
            ("[brokers.\"bad name\"]\nkind=\"memory\"", "brokers.bad name"),
            (
                "limits = { pipeline_bytes = \"1MiB\" }\n[brokers.a]\nkind=\"memory\"",
                "limits.pipeline_bytes",
            ),
        ];
        for (toml, key) in cases {
            let err = parse(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn durations_and_sizes_are_strings() {
        let config = parse(
            "[pipeline]\nlinger = \"2ms\"\nack_timeout = \"5s\"\n[limits]\nmax_event = \"10KiB\"\n[brokers.a]\nkind=\"memory\"",
        )
        .unwrap();
        assert_eq!(config.pipeline.linger, Duration::from_millis(2));
        assert_eq!(config.pipeline.ack_timeout, Duration::from_secs(5));
        assert_eq!(config.limits.max_event, 10 * 1024);
    }
}
#[cfg(test)]
mod env_tests {
    /// The only test that touches the process environment (tests run on threads).
    #[test]
    fn env_overrides_listen() {
        std::env::set_var("SIDEBUS_LISTEN", "127.0.0.1:1999");
        let raw = super::RawConfig::load(None).unwrap();
        std::env::remove_var("SIDEBUS_LISTEN");
        assert_eq!(raw.listen, "127.0.0.1:1999");
    }
}

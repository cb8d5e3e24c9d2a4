//! What a reload replaces (design §8.8): the [`Live`] policy every request reads — principals,
//! quotas, schemas, topic mapping, audit, limits — built from a validated [`Config`], and the
//! comparison that names what only a restart can change.

use std::collections::HashMap;
use std::sync::Arc;

use metrics::Counter;

use serde::Serialize;

use super::audit::{Audit, AuditError};
use crate::config::{BrokerConfig, Config};
use crate::pipeline::Pipeline;
use crate::policy::access::{MissingToken, Principals};
use crate::policy::topics::TopicMap;
use crate::quota::Quotas;
use crate::schemas::{LoadError, SchemaStore};
use crate::telemetry;

/// The policy in force: swapped whole by a reload, so a request sees one configuration from
/// start to end.
pub struct Live {
    /// The configuration it was built from. Only what [`restart_required`] leaves out is in
    /// force from it; broker definitions, `listen` and the rest stay as sidebus started.
    pub config: Config,
    /// Who may call the API, by bearer token.
    pub principals: Principals,
    /// Every quota's buckets.
    pub quotas: Arc<Quotas>,
    /// The schema rules and the decoder of schema-encoded events.
    pub schemas: Arc<SchemaStore>,
    /// Logical → physical topic names.
    pub topics: Arc<TopicMap>,
    /// The audit log, when configured.
    pub audit: Option<Audit>,
    /// `sidebus_principal_requests_total` per principal: labels bounded by the config.
    pub requests: HashMap<Arc<str>, Counter>,
}

/// Why a configuration could not be put in force; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// A principal's `token_env` names a variable that is not set.
    #[error(transparent)]
    Access(#[from] MissingToken),
    /// A schema rule could not be loaded.
    #[error(transparent)]
    Schemas(#[from] LoadError),
    /// The audit file could not be opened.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl Live {
    /// Builds the policy of `config`, reusing from `previous` what did not change: quota
    /// buckets keep their state, schemas are not fetched again, the audit writer keeps going.
    pub async fn build(
        config: Config,
        previous: Option<&Live>,
        pipeline: impl Fn(&str) -> Option<Pipeline>,
    ) -> Result<Self, LiveError> {
        let principals = Principals::compile(&config.access, |var| std::env::var(var).ok())?;
        let quotas = match previous {
            Some(p) if p.config.access == config.access && p.config.quotas == config.quotas => {
                p.quotas.clone()
            }
            _ => Arc::new(Quotas::new(&config.access, &config.quotas)),
        };
        let schemas = match previous {
            Some(p)
                if p.config.schemas == config.schemas
                    && p.config.schema_registry == config.schema_registry =>
            {
                p.schemas.clone()
            }
            _ => Arc::new(SchemaStore::load(&config).await?),
        };
        let topics = Arc::new(TopicMap::new(&config));
        // The audit topic is a physical name: the broker's `topic_prefix` applies, no rule does.
        let audit_topic = config.audit.as_ref().and_then(|a| a.topic.as_ref());
        let physical = audit_topic.map(|t| Arc::from(topics.prefixed(&t.broker, &t.topic)));
        let audit = match (&config.audit, previous.and_then(|p| p.audit.as_ref())) {
            (None, _) => None,
            (Some(wanted), Some(running)) if running.writes_as(wanted, physical.as_ref()) => {
                Some(running.clone())
            }
            (Some(wanted), _) => {
                let sink = audit_topic.and_then(|t| pipeline(&t.broker)).zip(physical);
                Some(Audit::start(wanted, sink)?)
            }
        };
        let requests = principals
            .names()
            .map(|name| {
                let counter = metrics::counter!(telemetry::PRINCIPAL_REQUESTS, "principal" => name.to_string());
                (name.clone(), counter)
            })
            .collect();
        Ok(Self {
            requests,
            topics,
            principals,
            quotas,
            schemas,
            audit,
            config,
        })
    }
}

/// The key paths whose change needs a restart, comparing the configuration sidebus started
/// with (`old`) with `new`: what only a restart applies stays listed until one.
pub fn restart_required(old: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let mut changed = |differs: bool, key: &str| {
        if differs {
            keys.push(key.to_string());
        }
    };
    changed(old.listen != new.listen, "listen");
    changed(old.state_dir != new.state_dir, "state_dir");
    changed(old.shutdown_grace != new.shutdown_grace, "shutdown_grace");
    changed(old.pipeline != new.pipeline, "pipeline");
    changed(old.idempotency != new.idempotency, "idempotency");
    changed(
        old.sse.max_streams != new.sse.max_streams,
        "sse.max_streams",
    );
    changed(
        old.sse.allow_any_origin != new.sse.allow_any_origin
            || old.sse.allowed_origins != new.sse.allowed_origins,
        "sse.allowed_origins",
    );
    changed(old.telemetry != new.telemetry, "telemetry");
    changed(
        old.limits.pipeline_depth != new.limits.pipeline_depth,
        "limits.pipeline_depth",
    );
    changed(
        old.limits.pipeline_bytes != new.limits.pipeline_bytes,
        "limits.pipeline_bytes",
    );
    let mut names: Vec<&String> = old.brokers.keys().chain(new.brokers.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let differs = match (old.brokers.get(name), new.brokers.get(name)) {
            (Some(a), Some(b)) => without_prefix(a) != without_prefix(b),
            _ => true,
        };
        changed(differs, &format!("brokers.{name}"));
    }
    keys
}

/// A broker's definition apart from its `topic_prefix`, which applies live.
fn without_prefix(broker: &BrokerConfig) -> BrokerConfig {
    let mut broker = broker.clone();
    match &mut broker {
        BrokerConfig::Memory(m) => m.topic_prefix = None,
        BrokerConfig::Kafka(k) => k.topic_prefix = None,
        BrokerConfig::Nats(n) => n.topic_prefix = None,
        BrokerConfig::Amqp(a) => a.topic_prefix = None,
    }
    broker
}

/// `GET /v1/config`: what is in force and how the last reload went. Never a secret.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigStatus {
    /// `sha256:<hex>` of the configuration file as last applied (of nothing, without a file).
    pub hash: String,
    /// When it was applied (RFC 3339).
    pub applied_at: String,
    /// The file, when sidebus runs from one.
    pub path: Option<String>,
    /// The last reload that failed since the last one that succeeded.
    pub last_error: Option<ReloadFailure>,
    /// Changed keys that were not applied: they need a restart.
    pub restart_required: Vec<String>,
}

/// A reload that changed nothing.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadFailure {
    /// When (RFC 3339).
    pub at: String,
    /// Why.
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn config(toml: &str) -> Config {
        RawConfig::from_toml(toml).unwrap().validate().unwrap()
    }

    #[test]
    fn only_what_needs_a_restart_is_named() {
        let old = config("[brokers.a]\nkind = \"memory\"\n");
        let live_only = config(
            "limits = { max_body = \"1MiB\" }\n[brokers.a]\nkind = \"memory\"\ntopic_prefix = \"t.\"\n\
             [[topics]]\nname = \"o\"\nbroker = \"a\"\nphysical = \"p\"\n",
        );
        assert_eq!(restart_required(&old, &live_only), Vec::<String>::new());
        let restart = config(
            "listen = \"127.0.0.1:1\"\nlimits = { pipeline_depth = 5000 }\n\
             [brokers.a]\nkind = \"memory\"\nretention = 5\n[brokers.b]\nkind = \"memory\"\n",
        );
        assert_eq!(
            restart_required(&old, &restart),
            ["listen", "limits.pipeline_depth", "brokers.a", "brokers.b"]
        );
    }
}

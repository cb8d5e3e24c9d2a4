//! What the HTTP handlers share: the brokers with their pipelines, the idempotency window and
//! the metrics handle.

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use super::idempotency::IdempotencyStore;
use crate::backend::{self, BackendSettings, BuildError};
use crate::config::Config;
use crate::delivery::Registry;
use crate::pipeline::{Broker, Pipeline};
use crate::policy::access::{MissingToken, Principals};
use crate::quota::Quotas;
use crate::schemas::{LoadError, SchemaStore};
use crate::spool::Spool;
use crate::telemetry;

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A broker's settings were refused by its client library (or a subscription could not
    /// start).
    #[error(transparent)]
    Backend(#[from] BuildError),
    /// A schema rule's file is missing, its schema does not compile or the registry did not
    /// answer.
    #[error(transparent)]
    Schemas(#[from] LoadError),
    /// A broker's spool directory cannot be opened or read.
    #[error(transparent)]
    Spool(#[from] crate::spool::OpenError),
    /// A principal's `token_env` names a variable that is not set.
    #[error(transparent)]
    Access(#[from] MissingToken),
}

/// Shared state behind every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    brokers: Arc<BTreeMap<String, Broker>>,
    subscriptions: Arc<Registry>,
    schemas: Arc<SchemaStore>,
    idempotency: Arc<IdempotencyStore>,
    metrics: PrometheusHandle,
    /// Stops every spool's forwarder (what they hold stays on disk for the next start).
    stop_spools: watch::Sender<bool>,
    principals: Principals,
    quotas: Quotas,
}

impl AppState {
    /// Loads the schema rules (files, registry subjects), builds every backend (without
    /// waiting for brokers to be reachable) and starts their pipelines. Fails on a schema rule
    /// that cannot be loaded and on settings a client library refuses.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let metrics = telemetry::prometheus();
        let principals = Principals::compile(&config.access, |var| std::env::var(var).ok())?;
        let quotas = Quotas::new(&config.access, &config.quotas);
        let schemas = Arc::new(SchemaStore::load(&config).await?);
        let settings = BackendSettings {
            ack_timeout: config.pipeline.ack_timeout,
            dedup_window: config.idempotency.window,
        };
        let mut brokers = BTreeMap::new();
        let (stop_spools, spools_stopped) = watch::channel(false);
        for (name, broker_config) in &config.brokers {
            let backend = backend::build(name, broker_config, &settings).await?;
            let spool = match broker_config.spool() {
                Some(spool) => Some(Spool::start(
                    name,
                    &config.state_dir.join("spool").join(name),
                    spool,
                    backend.clone(),
                    config.pipeline.ack_timeout,
                    spools_stopped.clone(),
                )?),
                None => None,
            };
            let pipeline = Pipeline::start(
                name,
                backend.clone(),
                config.pipeline.clone(),
                config.limits.pipeline_depth,
                config.limits.pipeline_bytes,
                spool,
            );
            brokers.insert(
                name.clone(),
                Broker {
                    name: name.clone(),
                    backend,
                    pipeline,
                },
            );
        }
        let idempotency =
            IdempotencyStore::new(config.idempotency.window, config.idempotency.max_keys);
        let brokers = Arc::new(brokers);
        let subscriptions = Registry::new(
            brokers.clone(),
            config.state_dir.clone(),
            &config.source,
            schemas.clone(),
        );
        subscriptions
            .start(config.subscriptions.clone())
            .map_err(|e| BuildError {
                broker: "subscriptions".into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                brokers,
                subscriptions,
                schemas,
                idempotency,
                metrics,
                stop_spools,
                principals,
                quotas,
            }),
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// A broker by name.
    pub fn broker(&self, name: &str) -> Option<&Broker> {
        self.inner.brokers.get(name)
    }

    /// Every broker, by name.
    pub fn brokers(&self) -> impl Iterator<Item = &Broker> {
        self.inner.brokers.values()
    }

    /// The webhook subscriptions.
    pub fn subscriptions(&self) -> &Arc<Registry> {
        &self.inner.subscriptions
    }

    /// The schema rules and the decoder of schema-encoded events.
    pub fn schemas(&self) -> &Arc<SchemaStore> {
        &self.inner.schemas
    }

    /// Who may call the API, by bearer token.
    pub fn principals(&self) -> &Principals {
        &self.inner.principals
    }

    /// Every quota's buckets.
    pub fn quotas(&self) -> &Quotas {
        &self.inner.quotas
    }

    /// The idempotency window.
    pub fn idempotency(&self) -> &Arc<IdempotencyStore> {
        &self.inner.idempotency
    }

    /// Renders the Prometheus exposition.
    pub fn render_metrics(&self) -> String {
        for broker in self.brokers() {
            let up = if broker.backend.status().connected {
                1.0
            } else {
                0.0
            };
            metrics::gauge!(telemetry::BROKER_CONNECTED, "broker" => broker.name.clone()).set(up);
        }
        self.inner.metrics.render()
    }

    /// Stops the subscriptions (waiting for their deliveries in flight), then intake on every
    /// pipeline, and waits until each event taken has its broker result (or is spooled); then
    /// stops the spools' forwarders.
    pub async fn drain(&self) {
        self.inner.subscriptions.stop_all().await;
        futures::future::join_all(self.brokers().map(|b| b.pipeline.drain())).await;
        let _ = self.inner.stop_spools.send(true);
    }
}

//! What the HTTP handlers share: the brokers with their pipelines, the idempotency window and
//! the metrics handle.

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use super::idempotency::IdempotencyStore;
use crate::backend::{self, BackendSettings, BuildError};
use crate::config::Config;
use crate::delivery::Registry;
use crate::pipeline::{Broker, Pipeline};
use crate::telemetry;

/// Shared state behind every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    brokers: Arc<BTreeMap<String, Broker>>,
    subscriptions: Arc<Registry>,
    idempotency: Arc<IdempotencyStore>,
    metrics: PrometheusHandle,
}

impl AppState {
    /// Builds every backend (without waiting for brokers to be reachable) and starts their
    /// pipelines. Fails only on settings a client library refuses.
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        let metrics = telemetry::prometheus();
        let settings = BackendSettings {
            ack_timeout: config.pipeline.ack_timeout,
            dedup_window: config.idempotency.window,
        };
        let mut brokers = BTreeMap::new();
        for (name, broker_config) in &config.brokers {
            let backend = backend::build(name, broker_config, &settings).await?;
            let pipeline = Pipeline::start(
                name,
                backend.clone(),
                config.pipeline.clone(),
                config.limits.pipeline_depth,
                config.limits.pipeline_bytes,
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
        let subscriptions =
            Registry::new(brokers.clone(), config.state_dir.clone(), &config.source);
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
                idempotency,
                metrics,
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
    /// pipeline, and waits until each event taken has its broker result.
    pub async fn drain(&self) {
        self.inner.subscriptions.stop_all().await;
        futures::future::join_all(self.brokers().map(|b| b.pipeline.drain())).await;
    }
}

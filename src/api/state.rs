//! What the HTTP handlers share: the brokers with their pipelines, the idempotency window and
//! the metrics handle.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use super::audit::{now, AuditError};
use super::idempotency::IdempotencyStore;
use super::live::{self, ConfigStatus, Live, LiveError, ReloadFailure};
use crate::backend::{self, BackendSettings, BuildError};
use crate::config::Config;
use crate::delivery::{Registry, Views};
use crate::pipeline::{Broker, Pipeline};
use crate::policy::access::MissingToken;
use crate::schemas::LoadError;
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
    /// The audit log's file cannot be opened.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Shared state behind every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    /// The policy in force; a reload swaps it whole.
    live: ArcSwap<Live>,
    brokers: Arc<BTreeMap<String, Broker>>,
    subscriptions: Arc<Registry>,
    /// What delivery reads of the live policy (schemas, topic map).
    views: Arc<Views>,
    idempotency: Arc<IdempotencyStore>,
    metrics: PrometheusHandle,
    /// Stops every spool's forwarder (what they hold stays on disk for the next start).
    stop_spools: watch::Sender<bool>,
    /// What `GET /v1/config` shows.
    status: Mutex<ConfigStatus>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// The configuration at startup, which keys needing a restart are compared with.
    started: Config,
}

impl AppState {
    /// Loads the schema rules (files, registry subjects), builds every backend (without
    /// waiting for brokers to be reachable) and starts their pipelines. Fails on a schema rule
    /// that cannot be loaded and on settings a client library refuses.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let metrics = telemetry::prometheus();
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
        let live = Live::build(config, None, |name| {
            brokers.get(name).map(|b| b.pipeline.clone())
        })
        .await
        .map_err(|e| match e {
            LiveError::Access(e) => StartError::Access(e),
            LiveError::Schemas(e) => StartError::Schemas(e),
            LiveError::Audit(e) => StartError::Audit(e),
        })?;
        let config = &live.config;
        let started = config.clone();
        let idempotency =
            IdempotencyStore::new(config.idempotency.window, config.idempotency.max_keys);
        let brokers = Arc::new(brokers);
        let views = Arc::new(Views::new(live.schemas.clone(), live.topics.clone()));
        let subscriptions = Registry::new(
            brokers.clone(),
            config.state_dir.clone(),
            &config.source,
            views.clone(),
        );
        subscriptions
            .start(config.subscriptions.clone())
            .map_err(|e| BuildError {
                broker: "subscriptions".into(),
                reason: e.to_string(),
            })?;
        let status = ConfigStatus {
            hash: hash_of(b""),
            applied_at: now(),
            path: None,
            last_error: None,
            restart_required: Vec::new(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                live: ArcSwap::from_pointee(live),
                brokers,
                subscriptions,
                views,
                idempotency,
                metrics,
                stop_spools,
                status: Mutex::new(status),
                reloading: tokio::sync::Mutex::new(()),
                started,
            }),
        })
    }

    /// The policy in force: read it once per request, so one request sees one configuration.
    pub fn live(&self) -> Guard<Arc<Live>> {
        self.inner.live.load()
    }

    /// The policy in force, held past an `await` (a publish waiting for its broker).
    pub fn live_full(&self) -> Arc<Live> {
        self.inner.live.load_full()
    }

    /// Records the file the configuration was read from (for `GET /v1/config`).
    pub fn set_source(&self, path: Option<&Path>, bytes: &[u8]) {
        let mut status = self.status();
        status.path = path.map(|p| p.display().to_string());
        status.hash = hash_of(bytes);
    }

    /// `GET /v1/config`'s body.
    pub fn config_status(&self) -> ConfigStatus {
        self.status().clone()
    }

    fn status(&self) -> std::sync::MutexGuard<'_, ConfigStatus> {
        self.inner.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `config` (read from a file whose bytes were `bytes`) in force: principals, quotas,
    /// audit, schemas, topic mapping, limits and config-file subscriptions. Returns the keys
    /// that changed but need a restart. On an error nothing changed, and the error is kept for
    /// `GET /v1/config`.
    pub async fn reload(
        &self,
        config: Result<Config, String>,
        bytes: &[u8],
    ) -> Result<Vec<String>, String> {
        let _one = self.inner.reloading.lock().await;
        let outcome = match config {
            Ok(config) => self.apply(config).await,
            Err(e) => Err(e),
        };
        let result = if outcome.is_ok() {
            "applied"
        } else {
            "invalid"
        };
        metrics::counter!(telemetry::CONFIG_RELOADS, "result" => result).increment(1);
        let mut status = self.status();
        match &outcome {
            Ok(restart_required) => {
                status.hash = hash_of(bytes);
                status.applied_at = now();
                status.last_error = None;
                status.restart_required = restart_required.clone();
                tracing::info!(restart_required = ?restart_required, "configuration reloaded");
            }
            Err(detail) => {
                status.last_error = Some(ReloadFailure {
                    at: now(),
                    detail: detail.clone(),
                });
                tracing::error!(error = %detail, "configuration reload refused; nothing changed");
            }
        }
        outcome
    }

    async fn apply(&self, config: Config) -> Result<Vec<String>, String> {
        let old = self.live_full();
        let restart = live::restart_required(&self.inner.started, &config);
        let brokers = &self.inner.brokers;
        let live = Live::build(config, Some(&old), |name| {
            brokers.get(name).map(|b| b.pipeline.clone())
        })
        .await
        .map_err(|e| e.to_string())?;
        let subscriptions = live.config.subscriptions.clone();
        let checked = self
            .inner
            .subscriptions
            .check_config(&subscriptions)
            .map_err(|e| e.to_string())?;
        self.inner
            .views
            .set(live.schemas.clone(), live.topics.clone());
        self.inner.live.store(Arc::new(live));
        self.inner.subscriptions.reconcile(checked);
        Ok(restart)
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
    /// pipeline, and waits until each event taken has its broker result (or is spooled); then
    /// stops the spools' forwarders.
    pub async fn drain(&self) {
        self.inner.subscriptions.stop_all().await;
        futures::future::join_all(self.brokers().map(|b| b.pipeline.drain())).await;
        let _ = self.inner.stop_spools.send(true);
    }
}

/// `sha256:<hex>` of `bytes`.
fn hash_of(bytes: &[u8]) -> String {
    let digest = hmac_sha256::Hash::hash(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

//! The set of running subscriptions: from the config, and created at runtime through the API
//! (persisted in `state_dir/subscriptions.json` so they survive a restart).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::status::{Status, StatusView};
use super::webhook::client::WebhookClient;
use super::webhook::request::SigningKey;
use super::webhook::{self, RunState, Worker};
use super::Views;
use crate::config::subscription::{validate_name, SpecError, SubscriptionSpec};
use crate::config::topic::TopicPattern;
use crate::config::StartFrom;
use crate::pipeline::Broker;
use crate::policy::filter::{FilterError, Filters};

/// Where a subscription was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `[[subscriptions]]` in the config file: read-only through the API.
    Config,
    /// `PUT /v1/subscriptions/{name}`.
    Runtime,
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Its `filters` do not compile.
    #[error("subscription field `filters`: {0}")]
    Filter(#[from] FilterError),
    /// No subscription has that name.
    #[error("no subscription named `{0}`")]
    NotFound(String),
    /// The subscription comes from the config file.
    #[error("subscription `{0}` is declared in the config file; change it there")]
    FromConfig(String),
    /// The state directory could not be written.
    #[error("saving subscriptions to {path}: {source}")]
    Persist {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

struct Entry {
    worker: Arc<Worker>,
    spec: SubscriptionSpec,
    /// The topic (or pattern) its consumer reads on the broker, as mapped when it started.
    physical: String,
    origin: Origin,
    status: Arc<Status>,
    control: Arc<watch::Sender<RunState>>,
}

impl Drop for Entry {
    /// Stops its worker, unless that worker retires (drains the topic it reads first).
    fn drop(&mut self) {
        if self.worker.retiring.get().is_none() {
            self.control.send_replace(RunState::Stopped);
        }
    }
}

/// A subscription as shown by the API.
#[derive(Debug, Serialize)]
pub struct SubscriptionView {
    /// Name.
    pub name: String,
    /// Where it was declared.
    pub origin: Origin,
    /// The spec, secret redacted.
    #[serde(flatten)]
    pub spec: SubscriptionSpec,
    /// Live status.
    pub status: StatusView,
}

/// What is persisted per runtime subscription.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    spec: SubscriptionSpec,
    paused: bool,
}

/// All subscriptions of this sidecar.
pub struct Registry {
    brokers: Arc<BTreeMap<String, Broker>>,
    /// Built with the first subscription: a sidecar that only publishes never loads a TLS
    /// library or its certificate store.
    http: OnceLock<WebhookClient>,
    file: PathBuf,
    /// `WebHook-Request-Origin` of every handshake: the host of the config `source`.
    origin: Arc<str>,
    /// The schema decoder and topic map in force, shared with every worker.
    views: Arc<Views>,
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Held for a whole save: concurrent saves would share the temporary file (one rename then
    /// finds it gone) and could land out of order, leaving an older snapshot on disk.
    saving: Mutex<()>,
    /// Workers still draining the physical topic their subscription moved away from, by
    /// subscription name: they pause, resume and stop with it.
    retiring: Mutex<Vec<(String, Arc<watch::Sender<RunState>>)>>,
    /// The dispatcher tasks, awaited at shutdown so that deliveries in flight finish or go back
    /// to the broker (and their spans end) before sidebus exits.
    dispatchers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Registry {
    /// An empty registry persisting to `state_dir/subscriptions.json`; `source` is the config's
    /// CloudEvents source, whose host names this sidecar in webhook handshakes; `views` decodes
    /// schema-encoded events and maps topic names for delivery.
    pub fn new(
        brokers: Arc<BTreeMap<String, Broker>>,
        state_dir: PathBuf,
        source: &str,
        views: Arc<Views>,
    ) -> Arc<Self> {
        Arc::new(Self {
            brokers,
            http: OnceLock::new(),
            file: state_dir.join("subscriptions.json"),
            origin: Arc::from(webhook::handshake::origin_of(source)),
            views,
            entries: Mutex::new(BTreeMap::new()),
            saving: Mutex::new(()),
            retiring: Mutex::new(Vec::new()),
            dispatchers: Mutex::new(Vec::new()),
        })
    }

    /// The webhook client shared by every subscription (redirects are never followed: a 3xx is
    /// a permanent failure).
    fn http_client(&self) -> WebhookClient {
        self.http.get_or_init(WebhookClient::new).clone()
    }

    /// Starts the config's subscriptions and the runtime ones saved by an earlier run.
    pub fn start(
        self: &Arc<Self>,
        from_config: Vec<SubscriptionSpec>,
    ) -> Result<(), RegistryError> {
        for mut spec in from_config {
            let name = spec.name.take().unwrap_or_default();
            self.insert(&name, spec, Origin::Config, false, false)?;
        }
        let saved: BTreeMap<String, Saved> = match std::fs::read(&self.file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(file = %self.file.display(), error = %e, "ignoring unreadable saved subscriptions");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        for (name, saved) in saved {
            if let Err(e) = self.insert(&name, saved.spec, Origin::Runtime, saved.paused, false) {
                tracing::error!(subscription = %name, error = %e, "saved subscription no longer valid");
            }
        }
        Ok(())
    }

    fn validate(&self, name: &str, spec: &SubscriptionSpec) -> Result<(), SpecError> {
        validate_name(name)?;
        spec.validate(|b| self.brokers.contains_key(b))?;
        let capabilities = self.brokers[&spec.broker].backend.capabilities();
        match capabilities.no_wildcards {
            Some(reason) if TopicPattern::parse(&spec.topic).is_ok_and(|p| p.is_wildcard()) => {
                Err(SpecError {
                    field: "topic".into(),
                    reason: format!("`{}` is a topic pattern: {reason}", spec.topic),
                })
            }
            _ => Ok(()),
        }
    }

    /// Starts subscription `name` (replacing one of that name). `moved`: its topic now maps to
    /// another physical topic, where its group has no position yet — it starts there from the
    /// earliest event, so nothing another sidecar published there before this one moved is
    /// missed.
    fn insert(
        self: &Arc<Self>,
        name: &str,
        mut spec: SubscriptionSpec,
        origin: Origin,
        paused: bool,
        moved: bool,
    ) -> Result<(), RegistryError> {
        spec.name = None;
        self.validate(name, &spec)?;
        let filters = match &spec.filters {
            Some(written) => Filters::compile(written)?,
            None => Filters::default(),
        };
        let endpoint = spec.endpoint_url()?;
        let broker = &self.brokers[&spec.broker];
        let status = Status::new(name, paused);
        let initial = if paused {
            RunState::Paused
        } else {
            RunState::Running
        };
        let control = Arc::new(watch::channel(initial).0);
        let worker = Arc::new(Worker {
            name: Arc::from(name),
            key: spec.secret.as_deref().and_then(SigningKey::from_secret),
            limiter: OnceLock::new(),
            byte_limiter: spec
                .rate_limit
                .and_then(|r| r.bytes_per_second)
                .and_then(|b| NonZeroU32::new(u32::try_from(b.as_u64()).ok()?))
                .map(|rate| {
                    let quota = governor::Quota::per_second(rate);
                    let clock = governor::clock::MonotonicClock;
                    (governor::RateLimiter::direct_with_clock(quota, clock), rate)
                }),
            origin: self.origin.clone(),
            views: self.views.clone(),
            filters,
            spec: Arc::new(SubscriptionSpec {
                start: if moved {
                    StartFrom::Earliest
                } else {
                    spec.start
                },
                ..spec.clone()
            }),
            http: self.http_client(),
            endpoint,
            pipeline: broker.pipeline.clone(),
            status: status.clone(),
            control: control.clone(),
            order: webhook::order::OrderGuard::default(),
            returned: Default::default(),
            retiring: OnceLock::new(),
        });
        let dispatcher = tokio::spawn(webhook::run(worker.clone(), broker.backend.clone()));
        {
            let mut dispatchers = self.dispatchers.lock().unwrap_or_else(|e| e.into_inner());
            dispatchers.retain(|d| !d.is_finished());
            dispatchers.push(dispatcher);
        }
        if origin == Origin::Runtime {
            // A pause the dispatcher decides (410 Gone) is saved like one asked through the API.
            let mut changes = control.subscribe();
            let registry = Arc::downgrade(self);
            tokio::spawn(async move {
                while changes.changed().await.is_ok() {
                    let state = *changes.borrow_and_update();
                    if state == RunState::Stopped {
                        return;
                    }
                    if let Some(registry) = registry.upgrade() {
                        if let Err(e) = registry.persist() {
                            tracing::error!(error = %e, "saving subscriptions");
                        }
                    }
                }
            });
        }
        let physical = self.physical_of(&spec);
        let previous = self.lock().insert(
            name.to_string(),
            Entry {
                worker,
                physical,
                spec,
                origin,
                status,
                control,
            },
        );
        drop(previous);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates or replaces runtime subscription `name`; true when it was created.
    pub fn put(
        self: &Arc<Self>,
        name: &str,
        mut spec: SubscriptionSpec,
    ) -> Result<bool, RegistryError> {
        spec.name = None;
        self.validate(name, &spec)?;
        let existed = match self.lock().get(name) {
            Some(e) if e.origin == Origin::Config => {
                return Err(RegistryError::FromConfig(name.into()))
            }
            Some(e) if e.spec == spec => return Ok(false),
            Some(_) => true,
            None => false,
        };
        self.insert(name, spec, Origin::Runtime, false, false)?;
        self.persist()?;
        Ok(!existed)
    }

    /// Stops and forgets runtime subscription `name`.
    pub fn delete(&self, name: &str) -> Result<(), RegistryError> {
        let removed = {
            let mut entries = self.lock();
            match entries.get(name) {
                None => return Err(RegistryError::NotFound(name.into())),
                Some(e) if e.origin == Origin::Config => {
                    return Err(RegistryError::FromConfig(name.into()))
                }
                Some(_) => entries.remove(name),
            }
        };
        drop(removed);
        self.set_retiring(name, RunState::Stopped);
        self.persist()
    }

    /// Pauses (`true`) or resumes subscription `name`.
    pub fn set_paused(&self, name: &str, paused: bool) -> Result<(), RegistryError> {
        {
            let entries = self.lock();
            let entry = entries
                .get(name)
                .ok_or_else(|| RegistryError::NotFound(name.into()))?;
            let state = if paused {
                RunState::Paused
            } else {
                RunState::Running
            };
            entry.control.send_replace(state);
            entry.status.set_paused(paused);
            self.set_retiring(name, state);
        }
        self.persist()
    }

    fn physical_of(&self, spec: &SubscriptionSpec) -> String {
        self.views
            .topics()
            .physical(&spec.broker, &spec.topic)
            .into_owned()
    }

    /// Checks the config file's subscriptions as a reload would start them, changing nothing:
    /// the first refused one is named.
    pub fn check_config(
        &self,
        specs: &[SubscriptionSpec],
    ) -> Result<Vec<(String, SubscriptionSpec)>, RegistryError> {
        specs
            .iter()
            .map(|spec| {
                let mut spec = spec.clone();
                let name = spec.name.take().unwrap_or_default();
                self.validate(&name, &spec)?;
                if let Some(written) = &spec.filters {
                    Filters::compile(written)?;
                }
                spec.endpoint_url()?;
                Ok((name, spec))
            })
            .collect()
    }

    /// Lets the worker of `entry`, whose topic moved, go on reading the physical topic it reads
    /// until it has drained it (see [`webhook::RETIRE_IDLE`]); a paused one just stops.
    fn retire(&self, name: &str, entry: &Entry) {
        if *entry.control.borrow() != RunState::Running {
            return;
        }
        let _ = entry.worker.retiring.set(entry.physical.clone());
        let mut retiring = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
        retiring.retain(|(_, control)| *control.borrow() != RunState::Stopped);
        retiring.push((name.to_string(), entry.control.clone()));
    }

    /// Passes `state` on to the retiring workers of subscription `name`.
    fn set_retiring(&self, name: &str, state: RunState) {
        let retiring = self.retiring.lock().unwrap_or_else(|e| e.into_inner());
        for (_, control) in retiring.iter().filter(|(n, _)| n == name) {
            if *control.borrow() != RunState::Stopped {
                control.send_replace(state);
            }
        }
    }

    /// Brings the running subscriptions in line with a reloaded config (`from_config`, as
    /// [`Registry::check_config`] returned it): config subscriptions that are gone stop, new
    /// ones start, changed ones are replaced; so is any subscription whose topic now maps to
    /// another physical topic. Unchanged ones keep running without a redelivery.
    pub fn reconcile(self: &Arc<Self>, from_config: Vec<(String, SubscriptionSpec)>) {
        let wanted: BTreeMap<String, SubscriptionSpec> = from_config.into_iter().collect();
        let mut restart = Vec::new();
        let removed: Vec<(String, Entry)> = {
            let mut entries = self.lock();
            let gone: Vec<String> = entries
                .iter()
                .filter(|(name, e)| e.origin == Origin::Config && !wanted.contains_key(*name))
                .map(|(name, _)| name.clone())
                .collect();
            for (name, entry) in entries.iter() {
                let paused = *entry.control.borrow() == RunState::Paused;
                let moved = entry.physical != self.physical_of(&entry.spec);
                match wanted.get(name) {
                    Some(spec) if *spec != entry.spec => {
                        let moved = spec.topic == entry.spec.topic && moved;
                        if moved {
                            self.retire(name, entry);
                        }
                        restart.push((name.clone(), spec.clone(), Origin::Config, false, moved))
                    }
                    Some(spec) if moved => {
                        self.retire(name, entry);
                        restart.push((name.clone(), spec.clone(), Origin::Config, paused, true))
                    }
                    None if entry.origin == Origin::Runtime && moved => {
                        self.retire(name, entry);
                        let spec = entry.spec.clone();
                        restart.push((name.clone(), spec, Origin::Runtime, paused, true));
                    }
                    _ => {}
                }
            }
            for (name, spec) in &wanted {
                if !entries.contains_key(name) {
                    restart.push((name.clone(), spec.clone(), Origin::Config, false, false));
                }
            }
            gone.iter()
                .filter_map(|name| entries.remove(name).map(|e| (name.clone(), e)))
                .collect()
        };
        for (name, _) in &removed {
            self.set_retiring(name, RunState::Stopped);
        }
        drop(removed);
        for (name, spec, origin, paused, moved) in restart {
            if let Err(e) = self.insert(&name, spec, origin, paused, moved) {
                tracing::error!(subscription = %name, error = %e, "subscription not restarted");
            }
        }
    }

    /// One subscription.
    pub fn get(&self, name: &str) -> Result<SubscriptionView, RegistryError> {
        self.lock()
            .get(name)
            .map(|e| view(name, e))
            .ok_or_else(|| RegistryError::NotFound(name.into()))
    }

    /// Every subscription, by name.
    pub fn list(&self) -> Vec<SubscriptionView> {
        self.lock().iter().map(|(n, e)| view(n, e)).collect()
    }

    /// Stops every subscription (shutdown) and waits until their deliveries in flight have
    /// finished or gone back to the broker.
    pub async fn stop_all(&self) {
        for entry in self.lock().values() {
            entry.control.send_replace(RunState::Stopped);
        }
        for (_, control) in self
            .retiring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            control.send_replace(RunState::Stopped);
        }
        let dispatchers =
            std::mem::take(&mut *self.dispatchers.lock().unwrap_or_else(|e| e.into_inner()));
        for dispatcher in dispatchers {
            let _ = dispatcher.await;
        }
    }

    fn persist(&self) -> Result<(), RegistryError> {
        // The snapshot is taken under the save lock, so the last save writes the latest state.
        let _saving = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        let saved: BTreeMap<String, Saved> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.origin == Origin::Runtime)
            .map(|(name, e)| {
                let paused = *e.control.borrow() == RunState::Paused;
                (
                    name.clone(),
                    Saved {
                        spec: e.spec.clone(),
                        paused,
                    },
                )
            })
            .collect();
        let persist_error = |source| RegistryError::Persist {
            path: self.file.clone(),
            source,
        };
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(persist_error)?;
        }
        let tmp = self.file.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&saved).expect("specs serialise");
        std::fs::write(&tmp, bytes).map_err(persist_error)?;
        std::fs::rename(&tmp, &self.file).map_err(persist_error)
    }
}

fn view(name: &str, e: &Entry) -> SubscriptionView {
    SubscriptionView {
        name: name.to_string(),
        origin: e.origin,
        spec: e.spec.redacted(),
        status: e.status.view(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Concurrent API changes each save the file: they must not trip over one another's
    /// temporary file (a rename found it gone, and the change was answered 503).
    #[test]
    fn concurrent_saves_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new(
            Arc::new(BTreeMap::new()),
            dir.path().join("state"),
            "sidebus://test",
            Arc::new(Views::new(
                Arc::new(crate::schemas::SchemaStore::empty()),
                Arc::default(),
            )),
        );
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        registry.persist().expect("every save succeeds");
                    }
                });
            }
        });
        let saved = std::fs::read(dir.path().join("state/subscriptions.json")).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&saved).unwrap(),
            serde_json::json!({})
        );
    }
}

//! The I/O around schema rules: reading the schema files and fetching registry subjects at
//! startup (then compiling them all with `crate::policy::schema`), and, on the delivery side,
//! fetching a registry schema by id once to decode a Confluent-framed payload.

pub mod client;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::config::schema::SchemaSource;
use crate::config::Config;
use crate::event::Event;
use crate::policy::schema::{self, Codec, DecodeWith, Kind, Schemas, Source};
pub use client::RegistryClient;

/// Why the schema rules could not be loaded; startup stops with it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("schema rule `{rule}`: {reason}")]
pub struct LoadError {
    /// The rule's name.
    pub rule: String,
    /// The file that is missing, the schema that does not compile, the registry that did not
    /// answer.
    pub reason: String,
}

impl From<schema::CompileError> for LoadError {
    fn from(e: schema::CompileError) -> Self {
        Self {
            rule: e.rule,
            reason: e.reason,
        }
    }
}

/// The compiled rules and, with a registry, the schemas fetched by id since startup: what
/// publish checks events with and what delivery decodes them with.
pub struct SchemaStore {
    schemas: Schemas,
    registry: Option<RegistryClient>,
    by_id: Mutex<HashMap<u32, Arc<Codec>>>,
}

impl std::fmt::Debug for SchemaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaStore")
            .field("schemas", &self.schemas)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl SchemaStore {
    /// Reads every rule's schema (files relative to the working directory, registry subjects
    /// at their latest version) and compiles them; the first that fails names its rule.
    pub async fn load(config: &Config) -> Result<Self, LoadError> {
        let registry = config.schema_registry.as_ref().map(RegistryClient::new);
        let mut sources = Vec::with_capacity(config.schemas.len());
        for rule in &config.schemas {
            let fail = |reason: String| LoadError {
                rule: rule.name.clone(),
                reason,
            };
            let read = |path: &std::path::Path| {
                std::fs::read_to_string(path)
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))
            };
            let file_source = |kind, path: &std::path::Path, message| {
                Ok::<_, LoadError>(Source {
                    kind,
                    text: read(path)?,
                    name: path.file_name().map_or_else(
                        || path.display().to_string(),
                        |n| n.to_string_lossy().into(),
                    ),
                    message,
                    registry_id: None,
                    dataschema: path.display().to_string(),
                })
            };
            let source = match rule.source() {
                SchemaSource::JsonSchema(path) => file_source(Kind::JsonSchema, &path, None)?,
                SchemaSource::Avro(path) => file_source(Kind::Avro, &path, None)?,
                SchemaSource::Protobuf(p) => {
                    file_source(Kind::Protobuf, &p.file, Some(p.message.clone()))?
                }
                SchemaSource::Subject(subject) => {
                    let registry = registry
                        .as_ref()
                        .ok_or_else(|| fail("no [schema_registry] is configured".into()))?;
                    let fetched = registry.latest(&subject).await.map_err(|e| {
                        fail(format!(
                            "fetching subject `{subject}` from the schema registry: {e}"
                        ))
                    })?;
                    let id = fetched.id.unwrap_or_default();
                    Source {
                        kind: fetched.kind().map_err(|e| fail(e.to_string()))?,
                        text: fetched.schema,
                        name: format!("registry-{id}.proto"),
                        message: None,
                        registry_id: Some(id),
                        dataschema: registry.schema_url(id),
                    }
                }
            };
            sources.push((rule.clone(), source));
        }
        Ok(Self {
            schemas: Schemas::compile(sources)?,
            registry,
            by_id: Mutex::new(HashMap::new()),
        })
    }

    /// A store with no rules and no registry (nothing is checked or decoded).
    pub fn empty() -> Self {
        Self {
            schemas: Schemas::default(),
            registry: None,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    /// Whether any event could be decoded: false without rules and registry, so delivery
    /// skips the look-up.
    pub fn decodes_anything(&self) -> bool {
        !self.schemas.is_empty() || self.registry.is_some()
    }

    /// The compiled rules.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    /// `event` with its Avro / Protobuf data decoded to JSON, or `None` when it is not encoded
    /// with a schema sidebus knows or can fetch (it is then delivered as it is).
    pub async fn decode(&self, event: &Event) -> Option<Event> {
        let registry = self.registry.as_ref();
        let (codec, framed) = match self.schemas.decode_with(event, registry.map(|r| r.base())) {
            DecodeWith::Nothing => return None,
            DecodeWith::Codec(codec, framed) => {
                return decode_with(codec, event, framed);
            }
            DecodeWith::RegistryId(id) => (self.fetch(id).await?, true),
        };
        decode_with(&codec, event, framed)
    }

    /// Registry schema `id`, compiled, fetched once: a failed fetch is tried again by the next
    /// event that needs it.
    async fn fetch(&self, id: u32) -> Option<Arc<Codec>> {
        let registry = self.registry.as_ref()?;
        let mut cache = self.by_id.lock().await;
        if let Some(codec) = cache.get(&id) {
            return Some(codec.clone());
        }
        let compiled = async {
            let fetched = registry.by_id(id).await.map_err(|e| e.to_string())?;
            let source = Source {
                kind: fetched.kind().map_err(|e| e.to_string())?,
                text: fetched.schema,
                name: format!("registry-{id}.proto"),
                message: None,
                registry_id: Some(id),
                dataschema: registry.schema_url(id),
            };
            Codec::compile(&source)
        };
        match compiled.await {
            Ok(codec) => {
                let codec = Arc::new(codec);
                cache.insert(id, codec.clone());
                Some(codec)
            }
            Err(e) => {
                tracing::warn!(schema_id = id, error = %e, "cannot decode: registry schema unavailable");
                None
            }
        }
    }
}

fn decode_with(codec: &Codec, event: &Event, framed: bool) -> Option<Event> {
    match codec.decode(&event.data, framed) {
        Ok(value) => Some(schema::with_json(event, &value)),
        Err(e) => {
            tracing::warn!(event = %event.id, error = %e, "cannot decode the event's data; delivering it as it is");
            None
        }
    }
}

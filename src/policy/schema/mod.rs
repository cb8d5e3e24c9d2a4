//! Schema rules (design §8.1), pure: the schemas arrive as text (read from files or fetched from
//! a registry by `crate::schemas` at startup), are compiled once here, and each published event
//! is checked against the first rule that matches it, and may be encoded to Avro / Protobuf.
//! Decoding an encoded event back to JSON for delivery is here too; fetching a schema by id for
//! it is not.

pub mod avro;
pub mod json;
pub mod proto;
pub mod wire;

use std::sync::Arc;

use bytes::Bytes;

use crate::config::{Encoding, SchemaRule};
use crate::event::{is_json_content_type, Event};

pub use avro::AvroCodec;
pub use json::JsonCheck;
pub use proto::ProtoCodec;

/// `datacontenttype` of Avro-encoded events.
pub const AVRO: &str = "application/avro";
/// `datacontenttype` of Protobuf-encoded events.
pub const PROTOBUF: &str = "application/protobuf";

/// One failing member: a JSON Pointer relative to the checked value, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// RFC 6901 pointer into the value (`""` = the value itself).
    pub pointer: String,
    /// What is wrong.
    pub detail: String,
}

/// Why an event was refused by its rule; the API answers it with 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event's data does not satisfy schema rule `{rule}`")]
pub struct Violation {
    /// The rule's name.
    pub rule: Arc<str>,
    /// Each failing member, pointers into the structured event (`/data/...`).
    pub failures: Vec<Failure>,
}

/// What kind of schema a text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON Schema document.
    JsonSchema,
    /// An Avro schema (`.avsc`).
    Avro,
    /// A `.proto` file.
    Protobuf,
}

/// A schema's text as loaded, with what the rule says about it.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its kind.
    pub kind: Kind,
    /// The text.
    pub text: String,
    /// The file name (Protobuf imports and errors), or the subject.
    pub name: String,
    /// For Protobuf: the message (`None` = the file's first).
    pub message: Option<String>,
    /// The registry's id for it, when it came from the registry: encoded payloads then carry
    /// the Confluent header.
    pub registry_id: Option<u32>,
    /// The `dataschema` of events encoded with it.
    pub dataschema: String,
}

/// A compiled schema of any kind.
#[derive(Debug)]
pub enum Codec {
    /// Validates JSON.
    Json(JsonCheck),
    /// Validates and encodes to Avro.
    Avro(AvroCodec),
    /// Validates and encodes to Protobuf.
    Protobuf(ProtoCodec),
}

impl Codec {
    /// Compiles a source.
    pub fn compile(source: &Source) -> Result<Self, String> {
        Ok(match source.kind {
            Kind::JsonSchema => {
                let document: serde_json::Value =
                    serde_json::from_str(&source.text).map_err(|e| format!("not JSON: {e}"))?;
                Codec::Json(JsonCheck::compile(&document)?)
            }
            Kind::Avro => Codec::Avro(AvroCodec::compile(&source.text)?),
            Kind::Protobuf => Codec::Protobuf(ProtoCodec::compile(
                &source.name,
                &source.text,
                source.message.as_deref(),
            )?),
        })
    }

    /// Decodes a payload (after the Confluent header when `framed`) to JSON.
    pub fn decode(&self, data: &[u8], framed: bool) -> Result<serde_json::Value, String> {
        let body = if framed {
            wire::unframe(data)
                .ok_or("the payload has no Confluent header")?
                .1
        } else {
            data
        };
        match self {
            Codec::Json(_) => serde_json::from_slice(body).map_err(|e| e.to_string()),
            Codec::Avro(codec) => codec.decode(body),
            Codec::Protobuf(codec) if framed => {
                let (indexes, body) = wire::read_indexes(body)?;
                codec.decode(body, Some(&indexes))
            }
            Codec::Protobuf(codec) => codec.decode(body, None),
        }
    }
}

/// A rule with its compiled schema.
#[derive(Debug)]
struct Compiled {
    rule: SchemaRule,
    name: Arc<str>,
    codec: Arc<Codec>,
    registry_id: Option<u32>,
    dataschema: String,
}

/// Why a rule could not be compiled.
#[derive(Debug, Clone, thiserror::Error)]
#[error("schema rule `{rule}`: {reason}")]
pub struct CompileError {
    /// The rule's name.
    pub rule: String,
    /// What is wrong with its schema.
    pub reason: String,
}

/// Every rule, compiled, in the order they are tried.
#[derive(Debug, Default)]
pub struct Schemas {
    rules: Vec<Compiled>,
}

/// How an event read from a broker can be decoded.
pub enum DecodeWith<'a> {
    /// Not encoded by a schema sidebus knows of.
    Nothing,
    /// With a compiled schema; `framed` says whether the Confluent header comes first.
    Codec(&'a Codec, bool),
    /// With registry schema `id`, which the caller fetches.
    RegistryId(u32),
}

impl Schemas {
    /// Compiles each rule's source; fails naming the first rule whose schema does not compile
    /// or whose encoding does not suit its schema.
    pub fn compile(rules: Vec<(SchemaRule, Source)>) -> Result<Self, CompileError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (rule, source) in rules {
            let fail = |reason: String| CompileError {
                rule: rule.name.clone(),
                reason,
            };
            let codec =
                Codec::compile(&source).map_err(|e| fail(format!("{}: {e}", source.name)))?;
            if rule.encoding == Encoding::Native && matches!(codec, Codec::Json(_)) {
                return Err(fail(format!(
                    "{} is a JSON Schema; encoding = \"native\" needs Avro or Protobuf",
                    source.name
                )));
            }
            compiled.push(Compiled {
                name: Arc::from(rule.name.as_str()),
                rule,
                codec: Arc::new(codec),
                registry_id: source.registry_id,
                dataschema: source.dataschema,
            });
        }
        Ok(Self { rules: compiled })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Checks `event`, published to `broker`/`topic`, against the first rule that matches it;
    /// returns it unchanged, or encoded when the rule says `native`.
    pub fn apply(&self, broker: &str, topic: &str, mut event: Event) -> Result<Event, Violation> {
        let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.rule.applies(broker, topic, &event.ty))
        else {
            return Ok(event);
        };
        let violation = |failures: Vec<Failure>| Violation {
            rule: rule.name.clone(),
            failures: failures
                .into_iter()
                .map(|f| Failure {
                    pointer: format!("/data{}", f.pointer),
                    detail: f.detail,
                })
                .collect(),
        };
        let one = |detail: String| {
            violation(vec![Failure {
                pointer: String::new(),
                detail,
            }])
        };
        if let Some(ct) = event.datacontenttype.as_deref() {
            if !is_json_content_type(ct) {
                return Err(one(format!(
                    "rule `{}` takes JSON data (application/json or +json); this event's \
                     datacontenttype is `{ct}`",
                    rule.name
                )));
            }
        }
        let parse = || {
            serde_json::from_slice::<serde_json::Value>(&event.data)
                .map_err(|e| one(format!("is not valid JSON: {e}")))
        };
        let encoded = match &*rule.codec {
            Codec::Json(check) => {
                if !check.accepts_text(&event.data) {
                    check.check(&parse()?).map_err(violation)?;
                }
                return Ok(event);
            }
            // Read once as text where it fits; the tree says why where it does not.
            Codec::Avro(codec) => match codec.encode_text(&event.data) {
                Some(payload) => (payload, AVRO, None),
                None => (codec.encode(&parse()?).map_err(violation)?, AVRO, None),
            },
            Codec::Protobuf(codec) => (
                codec.encode(&parse()?).map_err(violation)?,
                PROTOBUF,
                Some(codec.indexes()),
            ),
        };
        if rule.rule.encoding == Encoding::Json {
            return Ok(event);
        }
        let (payload, content_type, indexes) = encoded;
        event.data = match rule.registry_id {
            Some(id) => Bytes::from(wire::frame(id, indexes, &payload)),
            None => Bytes::from(payload),
        };
        event.datacontenttype = Some(content_type.to_string());
        event.dataschema = Some(rule.dataschema.clone());
        Ok(event)
    }

    /// How `event`, read from a broker, is decoded: by the rule whose `dataschema` it names,
    /// or by the registry id of its Confluent header when `registry` is the registry's URL.
    pub fn decode_with(&self, event: &Event, registry: Option<&str>) -> DecodeWith<'_> {
        let encoded = matches!(event.datacontenttype.as_deref(), Some(AVRO | PROTOBUF));
        let json = event
            .datacontenttype
            .as_deref()
            .is_some_and(is_json_content_type);
        if encoded {
            if let Some(schema) = event.dataschema.as_deref() {
                if let Some(rule) = self.rules.iter().find(|r| r.dataschema == schema) {
                    return DecodeWith::Codec(&rule.codec, rule.registry_id.is_some());
                }
            }
        }
        match (registry, wire::unframe(&event.data)) {
            (Some(_), Some((id, _))) if !json => {
                match self.rules.iter().find(|r| r.registry_id == Some(id)) {
                    Some(rule) if !matches!(&*rule.codec, Codec::Json(_)) => {
                        DecodeWith::Codec(&rule.codec, true)
                    }
                    _ => DecodeWith::RegistryId(id),
                }
            }
            _ => DecodeWith::Nothing,
        }
    }
}

/// `event` with `value` as its JSON data (what a webhook or SSE client gets for an encoded one).
pub fn with_json(event: &Event, value: &serde_json::Value) -> Event {
    let mut decoded = event.clone();
    decoded.data = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
    decoded.datacontenttype = Some("application/json".into());
    decoded
}

#[cfg(test)]
mod tests;

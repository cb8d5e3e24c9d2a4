//! Schema rules (`[[schemas]]`) and the Schema Registry they may name (`[schema_registry]`),
//! with their pure validation. Loading the files and fetching from the registry happen at
//! startup in `crate::schemas`; the checks themselves are `crate::policy::schema`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::topic::{tokens_match, validate_tokens, TopicPattern};
use super::{invalid, ConfigError};

/// A Confluent-compatible Schema Registry (`[schema_registry]`): rules with a `subject` take the
/// subject's latest schema from it at startup, and delivery looks up the ids of Confluent-framed
/// payloads in it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Base URL, e.g. `http://127.0.0.1:8081` (http or https); also the prefix of the
    /// `dataschema` of events encoded with one of its schemas (`<url>/schemas/ids/<id>`).
    pub url: String,
    /// HTTP Basic user name (with `password`); keep secrets out of the file with
    /// `SIDEBUS_SCHEMA_REGISTRY__USERNAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// HTTP Basic password; `SIDEBUS_SCHEMA_REGISTRY__PASSWORD` sets it from the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Bearer token, instead of a user name and password;
    /// `SIDEBUS_SCHEMA_REGISTRY__TOKEN` sets it from the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// How an event that satisfies its rule goes to the broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Validate only: the payload goes to the broker unchanged.
    #[default]
    Json,
    /// JSON in, Avro or Protobuf binary on the broker, so native consumers read the broker's
    /// own format; only for `avro`, `protobuf` and registry subjects of those types.
    Native,
}

/// A `.proto` file and the message in it that events must be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProtobufSource {
    /// The `.proto` file; it may import the `google/protobuf/*.proto` well-known types.
    pub file: PathBuf,
    /// Fully qualified message name, e.g. `shop.v1.Order`.
    pub message: String,
}

/// One `[[schemas]]` rule: which events it applies to and the schema they must satisfy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SchemaRule {
    /// Names the rule in errors, 422 details and the `rule` label of
    /// `sidebus_schema_rejected_total`.
    pub name: String,
    /// Only events published to this broker; absent = every broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
    /// Topic patterns (`orders`, `orders.*`, `orders.>`): the rule applies to a topic that any
    /// of them matches.
    pub topics: Vec<String>,
    /// CloudEvent `type` patterns in the same syntax; absent = every type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    /// A JSON Schema file (draft 2020-12 unless its `$schema` names draft 7 or 2019-09).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<PathBuf>,
    /// An Avro schema file (`.avsc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avro: Option<PathBuf>,
    /// A Protobuf file and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protobuf: Option<ProtobufSource>,
    /// A Schema Registry subject: its latest version at startup (needs `[schema_registry]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Validate only (`json`), or encode to Avro / Protobuf binary (`native`).
    #[serde(default)]
    pub encoding: Encoding,
}

/// Where a rule's schema comes from: exactly one of the four keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaSource {
    /// `json_schema = "file"`.
    JsonSchema(PathBuf),
    /// `avro = "file.avsc"`.
    Avro(PathBuf),
    /// `protobuf = { file, message }`.
    Protobuf(ProtobufSource),
    /// `subject = "name"`: the registry decides the kind.
    Subject(String),
}

impl SchemaRule {
    /// The one source the rule names (validated beforehand).
    pub fn source(&self) -> SchemaSource {
        match (&self.json_schema, &self.avro, &self.protobuf, &self.subject) {
            (Some(f), _, _, _) => SchemaSource::JsonSchema(f.clone()),
            (_, Some(f), _, _) => SchemaSource::Avro(f.clone()),
            (_, _, Some(p), _) => SchemaSource::Protobuf(p.clone()),
            (_, _, _, Some(s)) => SchemaSource::Subject(s.clone()),
            _ => unreachable!("validate() requires one schema source"),
        }
    }

    /// Whether the rule applies to an event of type `ty` published to `broker`/`topic`.
    pub fn applies(&self, broker: &str, topic: &str, ty: &str) -> bool {
        self.broker.as_deref().is_none_or(|b| b == broker)
            && self.topics.iter().any(|p| tokens_match(p, topic))
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.iter().any(|p| tokens_match(p, ty)))
    }
}

/// Checks `[schema_registry]` and every `[[schemas]]` rule; errors name the rule.
pub(super) fn validate(
    registry: Option<&SchemaRegistryConfig>,
    rules: &[SchemaRule],
    broker_exists: impl Fn(&str) -> bool,
) -> Result<(), ConfigError> {
    if let Some(registry) = registry {
        let url: Result<http::Uri, _> = registry.url.parse();
        let ok = url.as_ref().is_ok_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some()
        });
        if !ok {
            return Err(invalid(
                "schema_registry.url",
                format!("`{}` is not an http(s) URL", registry.url),
            ));
        }
        if registry.username.is_some() != registry.password.is_some() {
            return Err(invalid(
                "schema_registry",
                "username and password go together (HTTP Basic auth)",
            ));
        }
        if registry.token.is_some() && registry.username.is_some() {
            return Err(invalid(
                "schema_registry.token",
                "is bearer auth; use it or username/password, not both",
            ));
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let key = |field: &str| format!("schemas[{i}] ({}).{field}", rule.name);
        if rule.name.is_empty() {
            return Err(invalid(format!("schemas[{i}].name"), "must not be empty"));
        }
        if !names.insert(rule.name.as_str()) {
            return Err(invalid(key("name"), "is used by another rule"));
        }
        if let Some(broker) = &rule.broker {
            if !broker_exists(broker) {
                return Err(invalid(
                    key("broker"),
                    format!("no broker named `{broker}`"),
                ));
            }
        }
        if rule.topics.is_empty() {
            return Err(invalid(key("topics"), "needs at least one topic pattern"));
        }
        for pattern in &rule.topics {
            TopicPattern::parse(pattern).map_err(|e| invalid(key("topics"), e.to_string()))?;
        }
        for pattern in rule.types.iter().flatten() {
            validate_tokens(pattern, |b| b.is_ascii_graphic() && b != b'.')
                .map_err(|e| invalid(key("types"), format!("`{pattern}`: {e}")))?;
        }
        let sources = [
            rule.json_schema.is_some(),
            rule.avro.is_some(),
            rule.protobuf.is_some(),
            rule.subject.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(invalid(
                key("json_schema"),
                "a rule names exactly one of json_schema, avro, protobuf or subject",
            ));
        }
        if rule.json_schema.is_some() && rule.encoding == Encoding::Native {
            return Err(invalid(
                key("encoding"),
                "`native` is for avro and protobuf schemas; a JSON Schema validates only",
            ));
        }
        if let Some(proto) = &rule.protobuf {
            if proto.message.is_empty() {
                return Err(invalid(key("protobuf.message"), "must name a message"));
            }
        }
        if let Some(subject) = &rule.subject {
            if subject.is_empty() {
                return Err(invalid(key("subject"), "must not be empty"));
            }
            if registry.is_none() {
                return Err(invalid(
                    key("subject"),
                    "needs a [schema_registry] to fetch it from",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::tests::parse;

    const RULE: &str = "[[schemas]]\nname = \"orders\"\ntopics = [\"orders.*\"]\n";

    #[test]
    fn a_rule_applies_by_broker_topic_and_type() {
        let config = parse(&format!(
            "{RULE}json_schema = \"o.json\"\ntypes = [\"com.example.>\"]\n"
        ))
        .unwrap();
        let rule = &config.schemas[0];
        assert!(rule.applies("default", "orders.eu", "com.example.placed"));
        assert!(!rule.applies("default", "orders", "com.example.placed"));
        assert!(!rule.applies("default", "orders.eu", "com.other"));
    }

    #[test]
    fn bad_rules_are_named() {
        let cases = [
            (RULE.to_string(), "exactly one of"),
            (
                format!("{RULE}avro = \"a.avsc\"\njson_schema = \"b.json\""),
                "exactly one of",
            ),
            (
                format!("{RULE}json_schema = \"a.json\"\nencoding = \"native\""),
                "encoding",
            ),
            (format!("{RULE}subject = \"orders-value\""), "schema_registry"),
            (format!("{RULE}avro = \"a\"\nbroker = \"nope\""), "broker"),
            (
                "[[schemas]]\nname = \"orders\"\ntopics = [\"a.>.b\"]\navro = \"a\"".into(),
                "topics",
            ),
            (
                format!("{RULE}avro = \"a\"\n[[schemas]]\nname = \"orders\"\ntopics = [\"x\"]\navro = \"a\""),
                "used by another rule",
            ),
            (
                format!("[schema_registry]\nurl = \"ftp://x\"\n{RULE}avro = \"a\""),
                "schema_registry.url",
            ),
            (
                format!("[schema_registry]\nurl = \"http://x\"\nusername = \"u\"\n{RULE}avro = \"a\""),
                "username and password",
            ),
        ];
        for (toml, expected) in cases {
            let err = parse(&toml).unwrap_err().to_string();
            assert!(err.contains(expected), "{toml}: {err}");
            if !toml.contains("schema_registry]") && expected != "topics" {
                assert!(err.contains("(orders)"), "{toml}: {err}");
            }
        }
    }

    #[test]
    fn registry_and_native_protobuf_parse() {
        let config = parse(&format!(
            "[schema_registry]\nurl = \"http://127.0.0.1:8081\"\ntoken = \"t\"\n{RULE}protobuf = {{ file = \"o.proto\", message = \"shop.Order\" }}\nencoding = \"native\"\n"
        ))
        .unwrap();
        assert_eq!(config.schemas[0].encoding, super::Encoding::Native);
        assert_eq!(config.schema_registry.unwrap().token.as_deref(), Some("t"));
    }
}

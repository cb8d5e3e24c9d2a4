//! `[audit]`: where the audit log goes (design §8.6) — a daily-rotated JSON-lines file, a broker
//! topic, or both.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::topic::validate_topic;
use super::{invalid, ConfigError};

/// The audit log's sinks. Each state-changing request and each refusal (`401`/`403`) becomes
/// one JSON line; payloads, tokens and secrets never do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// A JSON-lines file, rotated at midnight UTC: the day's lines go to `<path>.YYYY-MM-DD`
    /// beside it (relative paths are taken from the working directory).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A broker topic each line is also published to, as a CloudEvent of type
    /// `dev.sidebus.audit` with the line as its JSON data.
    #[serde(default)]
    pub topic: Option<AuditTopic>,
    /// Lines held in memory for the sinks before new ones are dropped (and counted): the audit
    /// log never slows down or fails a request.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
}

/// The broker topic of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditTopic {
    /// A configured broker.
    pub broker: String,
    /// Its topic (the physical name; topic mapping does not apply).
    pub topic: String,
}

fn default_buffer() -> usize {
    10_000
}

impl AuditConfig {
    /// Checks that some sink is named and that the topic's broker exists.
    pub(super) fn validate(&self, broker_exists: impl Fn(&str) -> bool) -> Result<(), ConfigError> {
        if self.path.is_none() && self.topic.is_none() {
            return Err(invalid("audit", "needs `path`, `topic` or both"));
        }
        if self.path.as_ref().is_some_and(|p| p.file_name().is_none()) {
            return Err(invalid("audit.path", "must name a file"));
        }
        if let Some(topic) = &self.topic {
            if !broker_exists(&topic.broker) {
                return Err(invalid(
                    "audit.topic.broker",
                    format!("no broker named `{}` is configured", topic.broker),
                ));
            }
            validate_topic(&topic.topic).map_err(|e| invalid("audit.topic.topic", e.reason))?;
        }
        super::positive("audit.buffer", self.buffer)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::parse;

    #[test]
    fn sinks_are_checked() {
        let ok = parse("[audit]\npath = \"audit/audit.jsonl\"\ntopic = { broker = \"default\", topic = \"sidebus.audit\" }\n").unwrap();
        assert!(ok.audit.is_some());
        for (toml, key) in [
            ("[audit]\n", "audit"),
            (
                "[audit]\ntopic = { broker = \"nope\", topic = \"a\" }\n",
                "audit.topic.broker",
            ),
            (
                "[audit]\ntopic = { broker = \"default\", topic = \"a b\" }\n",
                "audit.topic.topic",
            ),
            ("[audit]\npath = \"a\"\nbuffer = 0\n", "audit.buffer"),
        ] {
            let err = parse(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }
}

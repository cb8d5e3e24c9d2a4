//! `[[topics]]`: logical topic names mapped to what a broker really has, with an optional shadow
//! copy (design §8.7). The per-broker `topic_prefix` lives with each broker's settings.

use serde::{Deserialize, Serialize};

use super::topic::validate_topic;
use super::{invalid, ConfigError};

/// Longest `topic_prefix`: leaves room for a topic name of its own within Kafka's 249.
pub const MAX_PREFIX_LEN: usize = 100;

/// One logical topic on one broker. Services publish to and subscribe to `name`; the broker sees
/// `physical` (and `shadow`), each behind the broker's `topic_prefix`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TopicRule {
    /// The logical name services use; unique per broker.
    pub name: String,
    /// The broker whose topic this is.
    pub broker: String,
    /// The topic the broker has; absent = the logical name (useful with `shadow` alone). Flip
    /// it with a reload to move every sidecar to a new topic at once (blue/green).
    #[serde(default)]
    pub physical: Option<String>,
    /// A topic every published event is also produced to (a canary's or an analytics copy);
    /// a copy that fails is counted and logged and never fails the publish.
    #[serde(default)]
    pub shadow: Option<String>,
}

/// Checks every `[[topics]]` rule: known broker, valid names (also behind the broker's
/// `topic_prefix`), one rule per logical name and broker, a shadow that differs from the
/// physical topic. `prefix_of` gives a broker's prefix, `None` for an unknown broker.
pub(super) fn validate<'a>(
    rules: &[TopicRule],
    prefix_of: impl Fn(&str) -> Option<&'a str>,
) -> Result<(), ConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let key = |field: &str| format!("topics[{i}] ({}).{field}", rule.name);
        validate_topic(&rule.name).map_err(|e| invalid(key("name"), e.reason))?;
        let Some(prefix) = prefix_of(&rule.broker) else {
            return Err(invalid(
                key("broker"),
                format!("no broker named `{}` is configured", rule.broker),
            ));
        };
        if !seen.insert((&rule.broker, &rule.name)) {
            return Err(invalid(
                key("name"),
                format!("is mapped twice on broker `{}`", rule.broker),
            ));
        }
        for (field, value) in [("physical", &rule.physical), ("shadow", &rule.shadow)] {
            if let Some(value) = value {
                validate_topic(value).map_err(|e| invalid(key(field), e.reason))?;
                validate_topic(&format!("{prefix}{value}")).map_err(|e| {
                    invalid(
                        key(field),
                        format!("behind the broker's topic_prefix, {}", e.reason),
                    )
                })?;
            }
        }
        let physical = rule.physical.as_deref().unwrap_or(&rule.name);
        if rule.shadow.as_deref() == Some(physical) {
            return Err(invalid(
                key("shadow"),
                "must differ from the physical topic",
            ));
        }
    }
    Ok(())
}

/// Checks a broker's `topic_prefix`; `key` names it in errors.
pub(super) fn validate_prefix(key: &str, prefix: &str) -> Result<(), ConfigError> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        return Err(invalid(key, "must be 1-100 characters"));
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            key,
            "only the characters A-Z a-z 0-9 . _ - are allowed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::tests::parse;

    const BROKER: &str = "[brokers.events]\nkind = \"memory\"\n";

    #[test]
    fn rules_parse_with_a_prefix() {
        let config = parse(&format!(
            "{BROKER}topic_prefix = \"team-a.\"\n[[topics]]\nname = \"orders\"\nbroker = \"events\"\nphysical = \"orders.v2\"\nshadow = \"orders.canary\"\n"
        ))
        .unwrap();
        assert_eq!(config.topics.len(), 1);
        assert_eq!(config.brokers["events"].topic_prefix(), Some("team-a."));
    }

    #[test]
    fn bad_rules_name_their_key() {
        let cases = [
            (
                "name = \"orders\"\nbroker = \"nope\"",
                "topics[0] (orders).broker",
            ),
            (
                "name = \"o rders\"\nbroker = \"events\"",
                "topics[0] (o rders).name",
            ),
            (
                "name = \"orders\"\nbroker = \"events\"\nphysical = \"a/b\"",
                "topics[0] (orders).physical",
            ),
            (
                "name = \"orders\"\nbroker = \"events\"\nshadow = \"orders\"",
                "topics[0] (orders).shadow",
            ),
        ];
        for (rule, key) in cases {
            let err = parse(&format!("{BROKER}[[topics]]\n{rule}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{rule}: {err}");
        }
        let twice = format!(
            "{BROKER}[[topics]]\nname = \"o\"\nbroker = \"events\"\n[[topics]]\nname = \"o\"\nbroker = \"events\"\n"
        );
        assert!(parse(&twice)
            .unwrap_err()
            .to_string()
            .contains("mapped twice"));
        let prefix = format!("{BROKER}topic_prefix = \"a/\"\n");
        assert!(parse(&prefix)
            .unwrap_err()
            .to_string()
            .contains("brokers.events.topic_prefix"));
    }
}

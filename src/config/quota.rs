//! Quotas (design §8.6): token buckets in events and bytes per second, per principal
//! (`[access.principals.<name>] quota = { ... }`) and per broker/topic rule (`[[quotas]]`).

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use super::topic::TopicPattern;
use super::{invalid, ConfigError};

/// A rate in events and/or bytes per second; each is a token bucket.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Events per second (an event counts one).
    #[serde(default)]
    pub events_per_second: Option<u32>,
    /// Payload bytes per second.
    #[serde(default)]
    pub bytes_per_second: Option<ByteSize>,
    /// Events that may come at once after a quiet spell (default: one second's worth); the
    /// byte bucket holds one second's bytes.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl Limits {
    /// Checks the rates; `key` names the table in errors.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.events_per_second.is_none() && self.bytes_per_second.is_none() {
            return Err(invalid(
                key.to_string(),
                "needs `events_per_second`, `bytes_per_second` or both",
            ));
        }
        if self.events_per_second == Some(0) {
            return Err(invalid(
                format!("{key}.events_per_second"),
                "must be at least 1",
            ));
        }
        match self.bytes_per_second.map(|b| b.as_u64()) {
            Some(0) => {
                return Err(invalid(
                    format!("{key}.bytes_per_second"),
                    "must be at least 1B",
                ))
            }
            Some(b) if b > u64::from(u32::MAX) => {
                return Err(invalid(
                    format!("{key}.bytes_per_second"),
                    "must be at most 4GiB",
                ))
            }
            _ => {}
        }
        if self.burst == Some(0) {
            return Err(invalid(format!("{key}.burst"), "must be at least 1"));
        }
        if self.burst.is_some() && self.events_per_second.is_none() {
            return Err(invalid(
                format!("{key}.burst"),
                "counts events: it needs `events_per_second`",
            ));
        }
        Ok(())
    }
}

/// `[[quotas]]`: a rate shared by every caller publishing to the topics it names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QuotaRule {
    /// Names the rule in `429` details and metrics; unique.
    pub name: String,
    /// The broker it applies to; absent = every broker.
    #[serde(default)]
    pub broker: Option<String>,
    /// Topic patterns it applies to (`*` one token, a last `>` the rest).
    pub topics: Vec<String>,
    /// Its rates.
    #[serde(flatten)]
    pub limits: Limits,
}

impl QuotaRule {
    /// Whether the rule covers `topic` on `broker`.
    pub fn applies(&self, broker: &str, topic: &str) -> bool {
        self.broker.as_deref().is_none_or(|b| b == broker)
            && self
                .topics
                .iter()
                .any(|p| super::topic::tokens_match(p, topic))
    }
}

/// Checks every `[[quotas]]` rule.
pub(super) fn validate(
    rules: &[QuotaRule],
    broker_exists: impl Fn(&str) -> bool,
) -> Result<(), ConfigError> {
    let mut names = std::collections::BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let key = format!("quotas[{i}] ({})", rule.name);
        if rule.name.is_empty() || !names.insert(rule.name.as_str()) {
            return Err(invalid(format!("{key}.name"), "must be set and unique"));
        }
        if let Some(broker) = &rule.broker {
            if !broker_exists(broker) {
                return Err(invalid(
                    format!("{key}.broker"),
                    format!("no broker `{broker}` is configured"),
                ));
            }
        }
        if rule.topics.is_empty() {
            return Err(invalid(
                format!("{key}.topics"),
                "needs at least one topic pattern",
            ));
        }
        for (j, pattern) in rule.topics.iter().enumerate() {
            TopicPattern::parse(pattern)
                .map_err(|e| invalid(format!("{key}.topics[{j}]"), e.to_string()))?;
        }
        rule.limits.validate(&key)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_checked_and_rules_match_by_broker_and_pattern() {
        let limits = |events: Option<u32>, bytes: Option<&str>, burst: Option<u32>| Limits {
            events_per_second: events,
            bytes_per_second: bytes.map(|b| b.parse().unwrap()),
            burst,
        };
        assert!(limits(Some(10), None, None).validate("q").is_ok());
        assert!(limits(None, Some("1MiB"), None).validate("q").is_ok());
        let err = |l: Limits| l.validate("q").unwrap_err().to_string();
        assert!(err(limits(None, None, None)).contains("needs"));
        assert!(err(limits(Some(0), None, None)).contains("q.events_per_second"));
        assert!(err(limits(None, Some("1MiB"), Some(5))).contains("q.burst"));
        let rule = QuotaRule {
            name: "orders".into(),
            broker: Some("events".into()),
            topics: vec!["orders.*".into()],
            limits: limits(Some(10), None, None),
        };
        assert!(rule.applies("events", "orders.eu"));
        assert!(!rule.applies("other", "orders.eu"));
        assert!(!rule.applies("events", "orders"));
        assert!(validate(std::slice::from_ref(&rule), |b| b == "events").is_ok());
        let e = validate(&[rule.clone(), rule], |_| true).unwrap_err();
        assert!(e.to_string().contains("unique"), "{e}");
    }
}

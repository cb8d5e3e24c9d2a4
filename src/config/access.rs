//! Who may call the API and which topics each direction may use (`[access]`).

use serde::{Deserialize, Serialize};

/// API token and per-direction topic allow-lists (`[access]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// When set, every `/v1` route requires `Authorization: Bearer <token>` (health, readiness
    /// and metrics stay open for probes and scrapers).
    pub api_token: Option<String>,
    /// Topics that may be published to, as glob patterns (`*`, `?`); absent = all.
    pub publish: Option<Vec<String>>,
    /// Topics that may be subscribed to (webhooks, SSE), as glob patterns; absent = all.
    pub subscribe: Option<Vec<String>>,
}

impl AccessConfig {
    /// Whether `topic` may be published to.
    pub fn may_publish(&self, topic: &str) -> bool {
        allowed(self.publish.as_deref(), topic)
    }

    /// Whether `topic` may be subscribed to.
    pub fn may_subscribe(&self, topic: &str) -> bool {
        allowed(self.subscribe.as_deref(), topic)
    }
}

fn allowed(patterns: Option<&[String]>, topic: &str) -> bool {
    patterns.is_none_or(|patterns| {
        patterns
            .iter()
            .any(|p| wildmatch::WildMatch::new(p).matches(topic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_are_globs() {
        let access = AccessConfig {
            api_token: None,
            publish: Some(vec!["orders.*".into(), "audit".into()]),
            subscribe: None,
        };
        assert!(access.may_publish("orders.eu"));
        assert!(access.may_publish("audit"));
        assert!(!access.may_publish("payments"));
        assert!(!access.may_publish("audit.x"));
        assert!(access.may_subscribe("anything"));
    }
}

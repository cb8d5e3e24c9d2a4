//! Who may call the API and which topics each direction may use (`[access]`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::topic::TopicPattern;
use super::{invalid, ConfigError};

/// API token or principals, and per-direction topic allow-lists (`[access]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// When set, every `/v1` route requires `Authorization: Bearer <token>` (health, readiness
    /// and metrics stay open for probes and scrapers). The one-principal shorthand: whoever
    /// holds it may do everything the allow-lists below permit.
    pub api_token: Option<String>,
    /// Topics that may be published to, as glob patterns (`*`, `?`); absent = all. Applies to
    /// every caller, principals included.
    pub publish: Option<Vec<String>>,
    /// Topics that may be subscribed to (webhooks, SSE), as glob patterns; absent = all.
    pub subscribe: Option<Vec<String>>,
    /// `[access.principals.<name>]`: callers told apart by their bearer token, each with its
    /// own topics and rights. With any configured, every `/v1` request needs one's token.
    pub principals: BTreeMap<String, PrincipalConfig>,
}

/// One caller of the API (`[access.principals.<name>]`): the name goes into `403` details,
/// logs and spans, never the token.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    /// Hex SHA-256 of the principal's bearer token (`printf %s "$TOKEN" | sha256sum`), so the
    /// config file holds no secret. Exactly one of this and `token_env`.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Name of an environment variable holding the token itself (a Kubernetes Secret mounted
    /// as an env var), read at startup.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Topic patterns this principal may publish to (`*` one dot-separated token, a last `>`
    /// one or more); none when absent — a principal gets only what it is given.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Topic patterns it may stream (SSE) or subscribe a webhook to; a subscription to a
    /// pattern needs a pattern here that covers it token by token.
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Whether it may create, replace, delete, pause and resume runtime subscriptions.
    #[serde(default)]
    pub manage_subscriptions: bool,
    /// How much it may publish: a request that does not fit is `429` with `Retry-After`.
    #[serde(default)]
    pub quota: Option<super::quota::Limits>,
}

impl PrincipalConfig {
    /// Checks one principal; `key` is `access.principals.<name>`.
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        match (&self.token_sha256, &self.token_env) {
            (Some(hash), None) => {
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid(
                        format!("{key}.token_sha256"),
                        "must be 64 hex digits (the SHA-256 of the token)",
                    ));
                }
            }
            (None, Some(var)) if !var.is_empty() => {}
            (None, Some(_)) => {
                return Err(invalid(format!("{key}.token_env"), "must name a variable"))
            }
            _ => {
                return Err(invalid(
                    key.to_string(),
                    "needs exactly one of `token_sha256` and `token_env`",
                ))
            }
        }
        if let Some(quota) = &self.quota {
            quota.validate(&format!("{key}.quota"))?;
        }
        for (field, patterns) in [("publish", &self.publish), ("subscribe", &self.subscribe)] {
            for (i, pattern) in patterns.iter().enumerate() {
                TopicPattern::parse(pattern)
                    .map_err(|e| invalid(format!("{key}.{field}[{i}]"), e.to_string()))?;
            }
        }
        Ok(())
    }
}

impl AccessConfig {
    /// Checks the token and every principal.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.api_token.as_deref().is_some_and(|t| t.len() < 16) {
            return Err(invalid(
                "access.api_token",
                "must be at least 16 characters",
            ));
        }
        if self.api_token.is_some() && !self.principals.is_empty() {
            return Err(invalid(
                "access.api_token",
                "use either one API token or principals, not both (a principal with \
                 `publish = [\">\"]`, `subscribe = [\">\"]` and `manage_subscriptions = true` \
                 is what the token allows)",
            ));
        }
        for (name, principal) in &self.principals {
            let key = format!("access.principals.{name}");
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid_name {
                return Err(invalid(
                    key,
                    "a principal name is 1-64 characters of [A-Za-z0-9._-]",
                ));
            }
            principal.validate(&key)?;
        }
        Ok(())
    }

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
            publish: Some(vec!["orders.*".into(), "audit".into()]),
            ..AccessConfig::default()
        };
        assert!(access.may_publish("orders.eu"));
        assert!(access.may_publish("audit"));
        assert!(!access.may_publish("payments"));
        assert!(!access.may_publish("audit.x"));
        assert!(access.may_subscribe("anything"));
    }

    #[test]
    fn principals_need_one_token_source_valid_patterns_and_no_api_token_beside_them() {
        let principal = |hash: Option<&str>, env: Option<&str>| PrincipalConfig {
            token_sha256: hash.map(str::to_string),
            token_env: env.map(str::to_string),
            publish: vec!["orders.*".into()],
            ..PrincipalConfig::default()
        };
        let with = |name: &str, p: PrincipalConfig| AccessConfig {
            principals: [(name.to_string(), p)].into(),
            ..AccessConfig::default()
        };
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert!(with("checkout", principal(Some(hash), None))
            .validate()
            .is_ok());
        assert!(with("checkout", principal(None, Some("TOKEN")))
            .validate()
            .is_ok());
        let err = |access: AccessConfig| access.validate().unwrap_err().to_string();
        assert!(err(with("c", principal(Some(hash), Some("T")))).contains("exactly one"));
        assert!(err(with("c", principal(None, None))).contains("exactly one"));
        assert!(err(with("c", principal(Some("abc"), None)))
            .contains("access.principals.c.token_sha256"));
        assert!(err(with("bad name", principal(Some(hash), None))).contains("principal name"));
        let mut bad = principal(Some(hash), None);
        bad.subscribe = vec!["orders.>.x".into()];
        assert!(err(with("c", bad)).contains("access.principals.c.subscribe[0]"));
        let mut both = with("c", principal(Some(hash), None));
        both.api_token = Some("0123456789abcdef".into());
        assert!(err(both).contains("either one API token or principals"));
    }
}

//! A webhook subscription as written in `[[subscriptions]]` or the body of
//! `PUT /v1/subscriptions/{name}`, with its pure validation.

use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::config::rate_limit::RateLimit;
use crate::config::topic::{validate_topic, TopicPattern};

/// Where a consumer group starts when it has no committed position yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    /// Only events published after the subscription starts.
    #[default]
    Latest,
    /// Everything the broker still holds.
    Earliest,
}

/// How deliveries are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    /// One event in flight per partition (Kafka); one overall elsewhere.
    Partition,
    /// Different keys in parallel, one at a time per `partitionkey`.
    #[default]
    Key,
    /// Up to `max_in_flight` regardless of key.
    None,
}

/// How an event is put into the webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentMode {
    /// Body = data, attributes in `ce-*` headers.
    #[default]
    Binary,
    /// Body = one `application/cloudevents+json` object.
    Structured,
    /// Body = `application/cloudevents-batch+json` array of up to `max_batch` events.
    Batch,
}

/// Retries of a failed delivery: exponential backoff with jitter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    #[serde(deserialize_with = "crate::config::whole::deserialize")]
    pub max_attempts: u32,
    /// Delay before the second attempt.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Cap on the backoff (a `Retry-After` from the endpoint may exceed it, up to 1 hour).
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// One subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSpec {
    /// Name; required in the config file, taken from the path in the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Broker to consume from (a configured broker name).
    pub broker: String,
    /// Topic to consume, or a topic pattern (`orders.*`, `orders.>`) where the broker can
    /// consume one.
    pub topic: String,
    /// The service's webhook URL (http or https).
    pub endpoint: String,
    /// Consumer group; sidecar replicas with the same group share the events. Default: the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Where a new group starts.
    #[serde(default)]
    pub start: StartFrom,
    /// Delivery ordering.
    #[serde(default)]
    pub ordering: Ordering,
    /// Most events being delivered at once; in batch mode, most batch requests at once.
    #[serde(
        default = "default_max_in_flight",
        deserialize_with = "crate::config::whole::deserialize"
    )]
    pub max_in_flight: usize,
    /// Time allowed for one webhook request.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Retry policy.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Topic on the same broker that receives events that could not be delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
    /// How events are encoded in the request.
    #[serde(default)]
    pub content_mode: ContentMode,
    /// Most events per request in batch mode.
    #[serde(
        default = "default_max_batch",
        deserialize_with = "crate::config::whole::deserialize"
    )]
    pub max_batch: usize,
    /// Standard Webhooks signing secret (`whsec_` + base64); deliveries are signed when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Most events (a number) or events and/or payload bytes (a table) delivered per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Run the CloudEvents Webhook abuse-protection handshake (`OPTIONS`) before the first
    /// delivery, so an endpoint that did not agree to receive events gets none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub handshake: bool,
    /// CloudEvents Subscriptions API filters (`exact`, `prefix`, `suffix`, `all`, `any`, `not`,
    /// `sql`): one filter object or an array, all of which must match. Kept as written; the
    /// subscription compiles them when it starts, and one that does not compile is refused.
    /// Events that do not match are acknowledged and never delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<serde_json::Value>,
    /// Decode events a `[[schemas]]` rule encoded to Avro / Protobuf (or that carry the
    /// Confluent header of a registry schema) back to JSON before delivering them; `false`
    /// delivers the broker's bytes as they are, for services that decode them themselves.
    #[serde(default = "decode_default", skip_serializing_if = "is_true")]
    pub decode: bool,
}

fn decode_default() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// The most unsettled events a consumer may hold: AMQP's prefetch is 16 bits.
const MAX_UNSETTLED: usize = u16::MAX as usize;

impl SubscriptionSpec {
    /// Most events the broker hands out before any is settled (JetStream `max_ack_pending`, AMQP
    /// prefetch, Kafka's pause threshold). In batch mode this leaves room for every batch in
    /// flight and one more filling behind them, so batches reach `max_batch` instead of being
    /// starved by the acknowledgements of the ones being delivered.
    pub fn unsettled_limit(&self) -> usize {
        match self.content_mode {
            ContentMode::Batch => {
                ((self.batches_in_flight() + 1) * self.max_batch).min(MAX_UNSETTLED)
            }
            ContentMode::Binary | ContentMode::Structured => self.max_in_flight,
        }
    }

    /// Batch requests delivered at once: a batch spans keys and partitions, so only `ordering =
    /// none` lets several overlap.
    pub fn batches_in_flight(&self) -> usize {
        match self.ordering {
            Ordering::None => self.max_in_flight,
            Ordering::Key | Ordering::Partition => 1,
        }
    }
}

fn default_max_in_flight() -> usize {
    64
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_batch() -> usize {
    100
}

/// A field of a subscription that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subscription field `{field}`: {reason}")]
pub struct SpecError {
    /// The field, e.g. `endpoint` or `retry.max_attempts`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Longest subscription name (it becomes a file key and a consumer name).
const MAX_NAME: usize = 128;

/// Checks a subscription name: 1-128 characters of `[A-Za-z0-9._-]`.
pub fn validate_name(name: &str) -> Result<(), SpecError> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(bad("name", "must be 1-128 characters of [A-Za-z0-9._-]"));
    }
    Ok(())
}

impl SubscriptionSpec {
    /// The consumer group: `group`, or the subscription's name.
    pub fn group_or<'a>(&'a self, name: &'a str) -> &'a str {
        self.group.as_deref().unwrap_or(name)
    }

    /// The endpoint as the URL every request goes to: absolute, http or https.
    pub fn endpoint_url(&self) -> Result<http::Uri, SpecError> {
        let uri: http::Uri = self
            .endpoint
            .parse()
            .map_err(|e| bad("endpoint", format!("`{}` is not a URL: {e}", self.endpoint)))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(bad(
                "endpoint",
                format!(
                    "`{}` must be an absolute http:// or https:// URL",
                    self.endpoint
                ),
            ));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad(
                "endpoint",
                format!(
                    "`{}` carries credentials, which are never sent; use `secret` to sign \
                     deliveries instead",
                    self.endpoint
                ),
            ));
        }
        Ok(uri)
    }

    /// Checks every field; `broker_exists` tells whether a broker name is configured.
    pub fn validate(&self, broker_exists: impl Fn(&str) -> bool) -> Result<(), SpecError> {
        if !broker_exists(&self.broker) {
            return Err(bad(
                "broker",
                format!("no broker named `{}` is configured", self.broker),
            ));
        }
        let pattern = TopicPattern::parse(&self.topic).map_err(|e| bad("topic", e.to_string()))?;
        self.endpoint_url()?;
        if let Some(group) = &self.group {
            validate_name(group)
                .map_err(|_| bad("group", "must be 1-128 characters of [A-Za-z0-9._-]"))?;
        }
        if self.max_in_flight == 0 || self.max_in_flight > 10_000 {
            return Err(bad("max_in_flight", "must be 1-10000"));
        }
        if self.timeout.is_zero() {
            return Err(bad("timeout", "must be more than 0"));
        }
        if self.retry.max_attempts == 0 {
            return Err(bad("retry.max_attempts", "must be at least 1"));
        }
        if self.retry.initial_backoff > self.retry.max_backoff {
            return Err(bad(
                "retry.initial_backoff",
                "must not exceed retry.max_backoff",
            ));
        }
        if let Some(dlq) = &self.dead_letter {
            validate_topic(dlq).map_err(|e| bad("dead_letter", e.to_string()))?;
            if dlq == &self.topic {
                return Err(bad("dead_letter", "must differ from topic"));
            }
            if pattern.matches(dlq) {
                return Err(bad(
                    "dead_letter",
                    format!("must not be a topic `{}` matches", self.topic),
                ));
            }
        }
        if self.max_batch == 0 || self.max_batch > 10_000 {
            return Err(bad("max_batch", "must be 1-10000"));
        }
        if let Some(secret) = &self.secret {
            let key = secret
                .strip_prefix("whsec_")
                .ok_or_else(|| bad("secret", "must start with whsec_"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(key)
                .map_err(|_| bad("secret", "must be whsec_ followed by base64"))?;
            if bytes.len() < 16 {
                return Err(bad("secret", "must hold at least 16 bytes of key"));
            }
        }
        if let Some(reason) = self.rate_limit.as_ref().and_then(RateLimit::problem) {
            return Err(bad("rate_limit", reason));
        }
        Ok(())
    }

    /// The spec as shown by the API: the secret replaced by a marker.
    pub fn redacted(&self) -> Self {
        let mut shown = self.clone();
        if shown.secret.is_some() {
            shown.secret = Some("whsec_***".into());
        }
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SubscriptionSpec {
        serde_json::from_value(serde_json::json!({
            "broker": "b", "topic": "orders", "endpoint": "http://127.0.0.1:3000/events"
        }))
        .unwrap()
    }

    #[test]
    fn defaults_follow_the_design() {
        let s = spec();
        assert_eq!(s.ordering, Ordering::Key);
        assert_eq!(s.content_mode, ContentMode::Binary);
        assert_eq!(s.retry.max_attempts, 8);
        assert_eq!(s.group_or("name"), "name");
        assert!(s.validate(|b| b == "b").is_ok());
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("broker", serde_json::json!({"broker": "nope"})),
            ("topic", serde_json::json!({"topic": "a b"})),
            ("endpoint", serde_json::json!({"endpoint": "ftp://x/y"})),
            ("endpoint", serde_json::json!({"endpoint": "/relative"})),
            (
                "endpoint",
                serde_json::json!({"endpoint": "http://user:pass@x/y"}),
            ),
            ("max_in_flight", serde_json::json!({"max_in_flight": 0})),
            (
                "retry.max_attempts",
                serde_json::json!({"retry": {"max_attempts": 0}}),
            ),
            ("dead_letter", serde_json::json!({"dead_letter": "orders"})),
            ("secret", serde_json::json!({"secret": "plain"})),
            ("rate_limit", serde_json::json!({"rate_limit": 0})),
        ];
        for (field, patch) in cases {
            let mut value = serde_json::to_value(spec()).unwrap();
            for (k, v) in patch.as_object().unwrap() {
                value[k] = v.clone();
            }
            let s: SubscriptionSpec = serde_json::from_value(value).unwrap();
            let err = s.validate(|b| b == "b").unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }

    /// JSON Schema's `integer` includes `2346.0`; encoders that write floats send it so.
    #[test]
    fn integer_fields_take_whole_floats() {
        let s: SubscriptionSpec = serde_json::from_str(
            r#"{"broker": "b", "topic": "t", "endpoint": "http://x", "max_batch": 2346.0,
                "max_in_flight": 1629.0, "rate_limit": 15177.0, "retry": {"max_attempts": 3.0}}"#,
        )
        .unwrap();
        assert_eq!(
            (
                s.max_batch,
                s.max_in_flight,
                s.rate_limit,
                s.retry.max_attempts
            ),
            (
                2346,
                1629,
                Some(RateLimit {
                    events_per_second: Some(15177),
                    bytes_per_second: None
                }),
                3
            )
        );
        assert!(serde_json::from_str::<SubscriptionSpec>(
            r#"{"broker": "b", "topic": "t", "endpoint": "http://x", "max_batch": 1.5}"#
        )
        .is_err());
    }

    #[test]
    fn unknown_fields_are_rejected_and_secrets_redacted() {
        let err = serde_json::from_value::<SubscriptionSpec>(serde_json::json!({
            "broker": "b", "topic": "t", "endpoint": "http://x", "endpont": "typo"
        }));
        assert!(err.unwrap_err().to_string().contains("endpont"));
        let mut s = spec();
        s.secret = Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        assert!(s.validate(|_| true).is_ok());
        assert_eq!(s.redacted().secret.as_deref(), Some("whsec_***"));
    }
}

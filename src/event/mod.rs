//! The CloudEvents 1.0 event model shared by every layer, and its parsing from HTTP.
//!
//! sidebus keeps its own small model instead of the `cloudevents-sdk` crate: the payload stays a
//! reference-counted [`Bytes`] from the HTTP body to the broker client (no copy, no JSON
//! re-encoding of structured `data`), which the SDK's `Data` enum cannot express.

mod parse;
mod structured;
pub mod trace;

use bytes::Bytes;

pub use parse::{parse_batch_json, parse_binary, parse_ndjson, parse_structured, Defaults};
pub use structured::{to_json, to_json_with, write_json, write_json_with, JSON_ROOM};

/// The CloudEvents spec version sidebus speaks.
pub const SPEC_VERSION: &str = "1.0";

/// The extension attribute that carries the ordering / partition key (CloudEvents partitioning).
pub const PARTITION_KEY: &str = "partitionkey";

/// The extension attribute sidebus adds to every event it delivers in structured form (webhook
/// structured and batch modes, SSE `data:`): the concrete topic the event was consumed from.
pub const TOPIC_ATTRIBUTE: &str = "sidebustopic";

/// How a broker binding spells the `ce` prefix of binary-mode attribute names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// `ce-<name>`: NATS, AMQP and HTTP headers.
    Dash,
    /// `ce_<name>`: Kafka headers (the CloudEvents Kafka binding).
    Underscore,
}

macro_rules! prefixed_names {
    ($($name:literal),* $(,)?) => {
        /// `ce-<name>` or `ce_<name>`: a static string for the attributes every event carries
        /// (core attributes and the extensions sidebus sets), so encoding the headers of an
        /// event allocates no names for them; other extensions get a new string.
        pub fn prefixed_name(prefix: Prefix, name: &str) -> std::borrow::Cow<'static, str> {
            match (prefix, name) {
                $(
                    (Prefix::Dash, $name) => std::borrow::Cow::Borrowed(concat!("ce-", $name)),
                    (Prefix::Underscore, $name) => std::borrow::Cow::Borrowed(concat!("ce_", $name)),
                )*
                (Prefix::Dash, other) => std::borrow::Cow::Owned(format!("ce-{other}")),
                (Prefix::Underscore, other) => std::borrow::Cow::Owned(format!("ce_{other}")),
            }
        }
    };
}

prefixed_names!(
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    "dataschema",
    "partitionkey",
    "traceparent",
    "tracestate",
);

/// One CloudEvent: context attributes plus the opaque payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `id`: unique per source; also the broker-side dedup id where the broker has one.
    pub id: String,
    /// `source`: URI-reference of the producer.
    pub source: String,
    /// `type`: what happened, e.g. `com.example.order.created`.
    pub ty: String,
    /// `time`: RFC 3339 timestamp.
    pub time: Option<String>,
    /// `datacontenttype`: media type of `data`; travels as the broker's content-type.
    pub datacontenttype: Option<String>,
    /// `dataschema`: URI of the schema `data` adheres to.
    pub dataschema: Option<String>,
    /// `subject`: the subject of the event within the source.
    pub subject: Option<String>,
    /// Extension attributes (lowercase alphanumeric names), in the order they were given.
    pub extensions: Vec<(String, String)>,
    /// The payload, exactly as received.
    pub data: Bytes,
}

impl Event {
    /// The partition / ordering key, if the event has one.
    pub fn partition_key(&self) -> Option<&str> {
        self.extension(PARTITION_KEY)
    }

    /// The value of an extension attribute.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets an extension attribute, replacing an earlier value.
    pub fn set_extension(&mut self, name: &str, value: String) {
        match self.extensions.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.extensions.push((name.to_string(), value)),
        }
    }

    /// Every context attribute except `datacontenttype` (which brokers carry as their own
    /// content-type), as `(name, value)` pairs: what a binary-mode binding turns into headers.
    pub fn header_attributes(&self) -> impl Iterator<Item = (&str, &str)> {
        let required = [
            ("specversion", SPEC_VERSION),
            ("id", self.id.as_str()),
            ("source", self.source.as_str()),
            ("type", self.ty.as_str()),
        ];
        let optional = [
            ("time", self.time.as_deref()),
            ("subject", self.subject.as_deref()),
            ("dataschema", self.dataschema.as_deref()),
        ];
        required
            .into_iter()
            .chain(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))))
            .chain(
                self.extensions
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
    }

    /// The event's payload plus its attributes' text, in bytes: what the pipeline's byte bound
    /// (`limits.pipeline_bytes`) and the memory broker's byte retention count.
    pub fn weight(&self) -> usize {
        let optional = [
            &self.time,
            &self.datacontenttype,
            &self.dataschema,
            &self.subject,
        ];
        self.data.len()
            + self.id.len()
            + self.source.len()
            + self.ty.len()
            + optional
                .iter()
                .map(|a| a.as_deref().map_or(0, str::len))
                .sum::<usize>()
            + self
                .extensions
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

/// Rebuilds an event from the binary-mode attributes of a broker message (names without their
/// `ce-`/`ce_` prefix). Lenient: an attribute a native producer got wrong is dropped rather than
/// losing the event; absent required attributes stay empty for the consumer to fill.
pub fn from_broker<N: AsRef<str>>(
    attributes: impl IntoIterator<Item = (N, String)>,
    content_type: Option<String>,
    data: Bytes,
) -> Event {
    let mut event = parse::empty_event(data);
    for (name, value) in attributes {
        let name = name.as_ref();
        if parse::set_attribute(&mut event, name, value).is_err() {
            tracing::debug!(attribute = %name, "dropping an invalid attribute read from a broker");
        }
    }
    event.datacontenttype = content_type;
    event
}

/// Why an event was refused; each maps to a 400 or 413 problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The body or an attribute is not what the CloudEvents spec allows.
    #[error("{0}")]
    Invalid(String),
    /// A structured event lacks an attribute CloudEvents 1.0 requires (`specversion`, `id`,
    /// `source` or `type`); sidebus fills those in for binary-mode events only.
    #[error(
        "structured CloudEvent has no `{0}`: CloudEvents 1.0 requires it as a non-empty string \
         member; add it (sidebus fills it in only for binary-mode events)"
    )]
    MissingAttribute(&'static str),
    /// The payload exceeds `limits.max_event`.
    #[error("event data is {size} bytes; the limit (limits.max_event) is {limit} bytes")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
}

/// True for media types whose body is JSON (`application/json`, `*/*+json`, `text/json`).
pub fn is_json_content_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let ends_with = |suffix: &str| {
        essence.len() >= suffix.len()
            && essence.as_bytes()[essence.len() - suffix.len()..]
                .eq_ignore_ascii_case(suffix.as_bytes())
    };
    essence.eq_ignore_ascii_case("application/json")
        || essence.eq_ignore_ascii_case("text/json")
        || ends_with("+json")
}

/// Whether a non-JSON `datacontenttype` declares text, which the JSON format carries as a `data`
/// string: `text/*`, XML (`application/xml`, `+xml`), form data, or any type with a `charset`
/// parameter. Everything else (`application/octet-stream`, `application/avro`,
/// `application/protobuf`, ...) is binary and goes as `data_base64`, even when its bytes happen
/// to be valid UTF-8.
pub fn is_text_content_type(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let charset = parts.any(|p| {
        p.trim()
            .get(..8)
            .is_some_and(|name| name.eq_ignore_ascii_case("charset="))
    });
    charset
        || essence.starts_with("text/")
        || essence == "application/xml"
        || essence.ends_with("+xml")
        || essence == "application/x-www-form-urlencoded"
}

/// Extension attribute names are lowercase ASCII letters or digits (CloudEvents §3.1.1
/// recommends at most 20; sidebus accepts up to 64 so longer names from other producers pass).
pub fn validate_attribute_name(name: &str) -> Result<(), EventError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(EventError::Invalid(format!(
            "attribute name `{name}` must be 1-64 lowercase letters or digits"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            id: "1".into(),
            source: "s".into(),
            ty: "t".into(),
            time: Some("2026-01-01T00:00:00Z".into()),
            datacontenttype: Some("text/plain".into()),
            dataschema: None,
            subject: Some("sub".into()),
            extensions: vec![("partitionkey".into(), "k".into())],
            data: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn weight_is_the_payload_and_every_attribute_text() {
        let e = event();
        let text = "1".len()
            + "s".len()
            + "t".len()
            + "2026-01-01T00:00:00Z".len()
            + "text/plain".len()
            + "sub".len()
            + "partitionkey".len()
            + "k".len();
        assert_eq!(e.weight(), e.data.len() + text);
    }

    #[test]
    fn header_attributes_skip_absent_and_content_type() {
        let e = event();
        let attrs: Vec<_> = e.header_attributes().collect();
        assert_eq!(
            attrs,
            vec![
                ("specversion", "1.0"),
                ("id", "1"),
                ("source", "s"),
                ("type", "t"),
                ("time", "2026-01-01T00:00:00Z"),
                ("subject", "sub"),
                ("partitionkey", "k"),
            ]
        );
    }

    #[test]
    fn prefixed_names_are_static_for_known_attributes_only() {
        use std::borrow::Cow;
        let name = prefixed_name(Prefix::Dash, "traceparent");
        assert!(matches!(name, Cow::Borrowed("ce-traceparent")), "{name:?}");
        let name = prefixed_name(Prefix::Underscore, PARTITION_KEY);
        assert!(matches!(name, Cow::Borrowed("ce_partitionkey")), "{name:?}");
        let name = prefixed_name(Prefix::Underscore, "comexampleextension");
        assert!(
            matches!(&name, Cow::Owned(n) if n == "ce_comexampleextension"),
            "{name:?}"
        );
    }

    #[test]
    fn set_extension_replaces() {
        let mut e = event();
        e.set_extension("partitionkey", "z".into());
        e.set_extension("traceparent", "00-x".into());
        assert_eq!(e.partition_key(), Some("z"));
        assert_eq!(e.extensions.len(), 2);
    }

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json; charset=utf-8"));
        assert!(is_json_content_type("application/vnd.x+json"));
        assert!(!is_json_content_type("text/plain"));
    }

    #[test]
    fn attribute_names() {
        assert!(validate_attribute_name("traceparent").is_ok());
        assert!(validate_attribute_name("Bad").is_err());
        assert!(validate_attribute_name("a_b").is_err());
        assert!(validate_attribute_name("").is_err());
    }
}

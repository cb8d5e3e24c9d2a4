//! CloudEvents HTTP binding: binary mode, structured mode, JSON batch and NDJSON bodies.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use bytes::Bytes;
use http::HeaderMap;
use serde::de::{MapAccess, Visitor};
use serde::Deserializer;
use serde_json::value::RawValue;

use super::{is_json_content_type, validate_attribute_name, Event, EventError, PARTITION_KEY};

/// Payloads up to this size are copied out of the request buffer (see `Defaults::complete`).
const COPY_BELOW: usize = 4096;

/// Attribute values sidebus fills in when the publisher left them out. `id`, `source` and
/// `type` are filled in binary mode only: a structured event claims to be a CloudEvent, so it
/// must carry them itself.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// `source` for binary-mode events without one (config `source`).
    pub source: String,
    /// `type` for binary-mode events without one.
    pub ty: &'static str,
    /// Largest accepted payload (`limits.max_event`).
    pub max_event: usize,
    /// `?key=` on the request: the partition key of every event that has none.
    pub partition_key: Option<String>,
    /// `Idempotency-Key` on the request: a binary-mode event without an `id` gets one derived
    /// from it, so a retried request carries the same id and brokers that dedup by id
    /// (JetStream) drop repeats.
    pub id_seed: Option<String>,
    /// W3C trace context of the request (`traceparent`, `tracestate`), given to events that
    /// carry none. The publish API starts one trace per request that brings none, shared by
    /// its events as a request's own context would be; with `None` here every event that
    /// carries none starts a trace of its own.
    pub trace: Option<crate::event::trace::TraceContext>,
}

impl Defaults {
    /// Fills the attributes only binary mode may leave out: `id`, `source` and `type`.
    fn identify(&self, mut event: Event) -> Event {
        if event.id.is_empty() {
            event.id = match &self.id_seed {
                // `/0` (the event's position in its request) keeps the ids earlier versions
                // derived, so a retry across an upgrade still deduplicates.
                Some(seed) => {
                    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{seed}/0").as_bytes())
                        .to_string()
                }
                None => uuid::Uuid::now_v7()
                    .hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer())
                    .to_string(),
            };
        }
        if event.source.is_empty() {
            event.source.clone_from(&self.source);
        }
        if event.ty.is_empty() {
            event.ty = self.ty.to_string();
        }
        event
    }

    /// Checks the payload size and fills what any event may leave out: `time`, the trace
    /// context and the request's partition key.
    fn complete(&self, mut event: Event) -> Result<Event, EventError> {
        if event.data.len() > self.max_event {
            return Err(EventError::TooLarge {
                size: event.data.len(),
                limit: self.max_event,
            });
        }
        if event.data.len() <= COPY_BELOW {
            // A small body is a slice of the connection's 8 KiB+ read buffer; holding it while
            // the event waits for its broker would keep the whole buffer alive per event.
            event.data = Bytes::copy_from_slice(&event.data);
        }
        if event.time.is_none() {
            event.time =
                Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
        }
        if event.extension("traceparent").is_none() {
            let trace = self
                .trace
                .clone()
                .unwrap_or_else(crate::event::trace::TraceContext::new_root);
            event.set_extension("traceparent", trace.traceparent);
            if let Some(state) = trace.tracestate {
                event.set_extension("tracestate", state);
            }
        }
        if let Some(key) = &self.partition_key {
            if event.partition_key().is_none() {
                event.extensions.push((PARTITION_KEY.into(), key.clone()));
            }
        }
        Ok(event)
    }
}

pub(super) fn empty_event(data: Bytes) -> Event {
    Event {
        id: String::new(),
        source: String::new(),
        ty: String::new(),
        time: None,
        datacontenttype: None,
        dataschema: None,
        subject: None,
        extensions: Vec::new(),
        data,
    }
}

fn invalid(msg: impl Into<String>) -> EventError {
    EventError::Invalid(msg.into())
}

/// Sets a context attribute by name, validating its value; unknown names become extensions.
pub(super) fn set_attribute(
    event: &mut Event,
    name: &str,
    value: String,
) -> Result<(), EventError> {
    let non_empty = |v: String| {
        if v.is_empty() {
            Err(invalid(format!("attribute `{name}` must not be empty")))
        } else {
            Ok(v)
        }
    };
    match name {
        "specversion" => {
            let value = non_empty(value)?;
            if value != super::SPEC_VERSION {
                return Err(invalid(format!(
                    "specversion `{value}` is not supported; use 1.0"
                )));
            }
        }
        "id" => event.id = non_empty(value)?,
        "source" => event.source = non_empty(value)?,
        "type" => event.ty = non_empty(value)?,
        "time" => {
            chrono::DateTime::parse_from_rfc3339(&value)
                .map_err(|e| invalid(format!("time `{value}` is not RFC 3339: {e}")))?;
            event.time = Some(value);
        }
        "subject" => event.subject = Some(value),
        "dataschema" => event.dataschema = Some(non_empty(value)?),
        "datacontenttype" => event.datacontenttype = Some(non_empty(value)?),
        "data" => {
            return Err(invalid(
                "`data` names the payload in structured mode, so it cannot be an attribute",
            ))
        }
        _ => {
            validate_attribute_name(name)?;
            event.set_extension(name, value);
        }
    }
    Ok(())
}

/// Binary mode: the body is the data, `Content-Type` its type, attributes come from `ce-*`
/// headers (percent-decoded as the HTTP binding prescribes).
pub fn parse_binary(
    headers: &HeaderMap,
    body: Bytes,
    defaults: &Defaults,
) -> Result<Event, EventError> {
    let mut event = empty_event(body);
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        if attr == "datacontenttype" {
            return Err(invalid(
                "in binary mode the data content type is the Content-Type header, not ce-datacontenttype",
            ));
        }
        let raw = value
            .to_str()
            .map_err(|_| invalid(format!("header {name} is not visible ASCII")))?;
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| invalid(format!("header {name} is not UTF-8 once percent-decoded")))?;
        set_attribute(&mut event, attr, decoded.into_owned())?;
    }
    if let Some(ct) = headers.get(http::header::CONTENT_TYPE) {
        let ct = ct
            .to_str()
            .map_err(|_| invalid("Content-Type is not visible ASCII"))?;
        // An empty Content-Type declares nothing; kept, it would be a `datacontenttype` the
        // structured encoding cannot carry.
        event.datacontenttype = (!ct.is_empty()).then(|| ct.to_string());
    }
    defaults.complete(defaults.identify(event))
}

/// The members of a JSON object in their written order, values left unparsed.
struct RawMembers<'a>(Vec<(MemberName<'a>, &'a RawValue)>);

/// A member name, borrowed from the body unless it had to be unescaped.
struct MemberName<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for MemberName<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = MemberName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Owned(name.to_string())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for RawMembers<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = RawMembers<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a CloudEvent JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(entry) = map.next_entry::<MemberName<'de>, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(RawMembers(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Attributes whose CloudEvents type is String: the core ones, and the extensions sidebus
/// knows (partitioning, distributed tracing). In JSON they must be strings.
const STRING_ATTRIBUTES: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "datacontenttype",
    "dataschema",
    "subject",
    PARTITION_KEY,
    "traceparent",
    "tracestate",
];

/// A JSON attribute value as a string: strings unescaped, numbers and booleans (allowed for
/// other extensions only) as written, `null` as absent.
fn attribute_value(name: &str, raw: &RawValue) -> Result<Option<String>, EventError> {
    let text = raw.get();
    let first = text.as_bytes().first();
    if STRING_ATTRIBUTES.contains(&name) && !matches!(first, Some(b'"' | b'n')) {
        return Err(invalid(format!("attribute `{name}` must be a string")));
    }
    match first {
        // Valid JSON (a `RawValue`) without a backslash has nothing to unescape.
        Some(b'"') if !text.contains('\\') => Ok(Some(text[1..text.len() - 1].to_string())),
        Some(b'"') => serde_json::from_str::<String>(text)
            .map(Some)
            .map_err(|e| invalid(format!("attribute `{name}`: {e}"))),
        Some(b'n') => Ok(None),
        Some(b't' | b'f' | b'-' | b'0'..=b'9') => Ok(Some(text.to_string())),
        _ => Err(invalid(format!(
            "attribute `{name}` must be a string, number or boolean"
        ))),
    }
}

/// Structured mode: one CloudEvent as a JSON object (`data` or `data_base64`). `json` must lie
/// within `body`, so JSON `data` is sliced out of the request body without a copy. The
/// attributes CloudEvents 1.0 requires must be present and non-empty; only `time` and
/// `datacontenttype` are filled in.
pub fn parse_structured(
    body: &Bytes,
    json: &[u8],
    defaults: &Defaults,
) -> Result<Event, EventError> {
    let RawMembers(members) = serde_json::from_slice(json)
        .map_err(|e| invalid(format!("not a CloudEvent JSON object: {e}")))?;
    let mut event = empty_event(Bytes::new());
    let mut data: Option<&RawValue> = None;
    let mut data_base64: Option<&RawValue> = None;
    let mut has_specversion = false;
    for (MemberName(name), raw) in members {
        match &*name {
            "data" => data = Some(raw),
            "data_base64" => data_base64 = Some(raw),
            _ => {
                if let Some(value) = attribute_value(&name, raw)? {
                    has_specversion |= name == "specversion";
                    set_attribute(&mut event, &name, value)?;
                }
            }
        }
    }
    if let Some(attribute) = missing_required(&event, has_specversion) {
        return Err(EventError::MissingAttribute(attribute));
    }
    match (data, data_base64) {
        (Some(_), Some(_)) => return Err(invalid("only one of data and data_base64 may be set")),
        (None, Some(raw)) => {
            let text: String = serde_json::from_str(raw.get())
                .map_err(|_| invalid("data_base64 must be a string"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|e| invalid(format!("data_base64 is not base64: {e}")))?;
            event.data = Bytes::from(bytes);
        }
        (Some(raw), None) if raw.get() != "null" => {
            let content_type = event
                .datacontenttype
                .get_or_insert_with(|| "application/json".to_string());
            event.data = if is_json_content_type(content_type) {
                slice_of(body, raw.get().as_bytes())
            } else {
                match serde_json::from_str::<String>(raw.get()) {
                    Ok(text) => Bytes::from(text),
                    Err(_) => slice_of(body, raw.get().as_bytes()),
                }
            };
        }
        _ => {}
    }
    defaults.complete(event)
}

/// The first attribute CloudEvents 1.0 requires that a structured event left out (or set to
/// `null`); an empty one was already refused when it was set.
fn missing_required(event: &Event, has_specversion: bool) -> Option<&'static str> {
    [
        ("specversion", has_specversion),
        ("id", !event.id.is_empty()),
        ("source", !event.source.is_empty()),
        ("type", !event.ty.is_empty()),
    ]
    .into_iter()
    .find(|(_, present)| !present)
    .map(|(name, _)| name)
}

fn slice_of(body: &Bytes, part: &[u8]) -> Bytes {
    let start = body.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    if at >= start && at + part.len() <= start + body.len() {
        body.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

/// `application/cloudevents-batch+json`: a JSON array of structured events. A body that is not a
/// JSON array fails as a whole; a malformed entry fails alone.
pub fn parse_batch_json(
    body: &Bytes,
    defaults: &Defaults,
) -> Result<Vec<Result<Event, EventError>>, EventError> {
    let entries: Vec<&RawValue> = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("batch body is not a JSON array: {e}")))?;
    Ok(entries
        .into_iter()
        .map(|raw| parse_structured(body, raw.get().as_bytes(), defaults))
        .collect())
}

/// `application/x-ndjson`: one structured event per line; blank lines are skipped and a
/// malformed line fails alone.
pub fn parse_ndjson(body: &Bytes, defaults: &Defaults) -> Vec<Result<Event, EventError>> {
    body.split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| parse_structured(body, line, defaults))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            source: "sidebus://test".into(),
            ty: "sidebus.event",
            max_event: 1024,
            partition_key: None,
            id_seed: None,
            trace: None,
        }
    }

    #[test]
    fn binary_fills_defaults_and_keeps_body() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.insert("ce-subject", "caf%C3%A9".parse().unwrap());
        headers.insert("ce-partitionkey", "k1".parse().unwrap());
        let e = parse_binary(&headers, Bytes::from_static(b"hello"), &defaults()).unwrap();
        assert_eq!(&e.data[..], b"hello");
        assert_eq!(e.datacontenttype.as_deref(), Some("text/plain"));
        assert_eq!(e.subject.as_deref(), Some("café"));
        assert_eq!(e.partition_key(), Some("k1"));
        assert_eq!(e.source, "sidebus://test");
        assert_eq!(e.ty, "sidebus.event");
        assert_eq!(uuid::Uuid::parse_str(&e.id).unwrap().get_version_num(), 7);
        assert!(e.time.is_some());
    }

    #[test]
    fn binary_rejects_bad_attributes() {
        for (name, value) in [
            ("ce-specversion", "0.3"),
            ("ce-time", "yesterday"),
            ("ce-id", ""),
            ("ce-bad_name", "x"),
            // Would collide with the payload member of the structured encoding.
            ("ce-data", "x"),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
            assert!(
                parse_binary(&headers, Bytes::new(), &defaults()).is_err(),
                "{name}: {value}"
            );
        }
    }

    /// Found by the `event_binary` fuzz target: `datacontenttype: ""` made the structured
    /// encoding of the event unreadable.
    #[test]
    fn empty_content_type_is_no_content_type() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "".parse().unwrap());
        let e = parse_binary(&headers, Bytes::from_static(b"x"), &defaults()).unwrap();
        assert_eq!(e.datacontenttype, None);
    }

    #[test]
    fn oversized_event_is_too_large() {
        let err = parse_binary(&HeaderMap::new(), Bytes::from(vec![0; 2000]), &defaults());
        assert!(matches!(err, Err(EventError::TooLarge { size: 2000, .. })));
    }

    #[test]
    fn structured_json_data_is_the_raw_json() {
        let body = Bytes::from_static(
            br#"{"specversion":"1.0","id":"a","source":"s","type":"t","n":5,"ok":true,"data":{"x": [1, 2]}}"#,
        );
        let e = parse_structured(&body, &body, &defaults()).unwrap();
        assert_eq!(&e.data[..], br#"{"x": [1, 2]}"#);
        assert_eq!(e.datacontenttype.as_deref(), Some("application/json"));
        assert_eq!(e.extension("n"), Some("5"));
        assert_eq!(e.extension("ok"), Some("true"));
    }

    #[test]
    fn structured_names_and_values_are_unescaped_and_control_characters_refused() {
        let body = Bytes::from_static(
            br#"{"spec\u0076ersion":"1.0","id":"a\"b","source":"s\u00e9","type":"plain","d\u0061ta":1}"#,
        );
        let e = parse_structured(&body, &body, &defaults()).unwrap();
        assert_eq!(e.id, "a\"b");
        assert_eq!(e.source, "s\u{e9}");
        assert_eq!(e.ty, "plain");
        assert_eq!(&e.data[..], b"1");
        let body = Bytes::from_static(
            b"{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"s\",\"type\":\"a\x01b\"}",
        );
        assert!(matches!(
            parse_structured(&body, &body, &defaults()),
            Err(EventError::Invalid(_))
        ));
    }

    #[test]
    fn structured_text_and_base64() {
        let body = Bytes::from_static(
            br#"{"specversion":"1.0","id":"a","source":"s","type":"t","datacontenttype":"text/plain","data":"hi \"there\""}"#,
        );
        let e = parse_structured(&body, &body, &defaults()).unwrap();
        assert_eq!(&e.data[..], b"hi \"there\"");
        let body = Bytes::from_static(
            br#"{"specversion":"1.0","id":"a","source":"s","type":"t","data_base64":"AAEC"}"#,
        );
        let e = parse_structured(&body, &body, &defaults()).unwrap();
        assert_eq!(&e.data[..], &[0, 1, 2]);
    }

    #[test]
    fn structured_refuses_invalid_shapes() {
        for body in [
            r#"[1]"#,
            r#"{"specversion":"1.0","id":{"x":1},"source":"s","type":"t"}"#,
            r#"{"specversion":"1.0","id":"a","source":"s","type":"t","data":1,"data_base64":"AA=="}"#,
            r#"{"specversion":"1.0","id":"a","source":"s","type":"t","data_base64":"!!"}"#,
            r#"{"specversion":"0.3","id":"a","source":"s","type":"t"}"#,
            // String-typed attributes take no numbers or booleans.
            r#"{"specversion":1.0,"id":"a","source":"s","type":"t"}"#,
            r#"{"specversion":"1.0","id":2534111,"source":"s","type":"t"}"#,
            r#"{"specversion":"1.0","id":"a","source":"s","type":"t","datacontenttype":573485148}"#,
            r#"{"specversion":"1.0","id":"a","source":"s","type":"t","subject":true}"#,
            r#"{"specversion":"1.0","id":"a","source":"s","type":"t","partitionkey":42}"#,
        ] {
            let b = Bytes::from(body);
            let result = parse_structured(&b, &b, &defaults());
            assert!(
                matches!(result, Err(EventError::Invalid(_))),
                "{body}: {result:?}"
            );
        }
    }

    /// The attributes CloudEvents 1.0 requires, with valid values.
    const REQUIRED: [(&str, &str); 4] = [
        ("specversion", "1.0"),
        ("id", "e-1"),
        ("source", "/s"),
        ("type", "t"),
    ];

    /// A structured event with every required attribute, except that with `Some((attribute,
    /// value))` that attribute is left out (`value` `None`) or has the JSON text `value`.
    fn event_json(lacking: Option<(&str, Option<&str>)>) -> String {
        let (attribute, value) = lacking.unwrap_or_default();
        let mut members: Vec<String> = REQUIRED
            .iter()
            .filter(|(name, _)| *name != attribute)
            .map(|(name, value)| format!("\"{name}\":\"{value}\""))
            .collect();
        if let Some(value) = value {
            members.push(format!("\"{attribute}\":{value}"));
        }
        members.push("\"data\":1".into());
        format!("{{{}}}", members.join(","))
    }

    /// Checks the refusal of an event whose `attribute` was left out (`value` `None` or
    /// `null`) or empty: it names the attribute.
    fn assert_refused(result: &Result<Event, EventError>, attribute: &str, value: Option<&str>) {
        match (value, result) {
            (None | Some("null"), Err(EventError::MissingAttribute(name))) => {
                assert_eq!(*name, attribute)
            }
            (Some(r#""""#), Err(EventError::Invalid(detail))) => {
                assert!(detail.contains(&format!("`{attribute}`")), "{detail}")
            }
            _ => panic!("{attribute} = {value:?}: {result:?}"),
        }
    }

    /// Each way of lacking a required attribute: left out, `null`, empty.
    const LACKING: [Option<&str>; 3] = [None, Some("null"), Some(r#""""#)];

    #[test]
    fn structured_refuses_a_missing_or_empty_required_attribute() {
        for (attribute, _) in REQUIRED {
            for value in LACKING {
                let body = Bytes::from(event_json(Some((attribute, value))));
                assert_refused(
                    &parse_structured(&body, &body, &defaults()),
                    attribute,
                    value,
                );
            }
        }
    }

    #[test]
    fn batch_refuses_the_entry_lacking_a_required_attribute_alone() {
        let valid = event_json(None);
        for (attribute, _) in REQUIRED {
            for value in LACKING {
                let entry = event_json(Some((attribute, value)));
                let body = Bytes::from(format!("[{valid},{entry},{valid}]"));
                let results = parse_batch_json(&body, &defaults()).unwrap();
                assert_eq!(results.len(), 3);
                assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
                assert_refused(&results[1], attribute, value);
            }
        }
    }

    #[test]
    fn ndjson_refuses_the_line_lacking_a_required_attribute_alone() {
        let valid = event_json(None);
        for (attribute, _) in REQUIRED {
            for value in LACKING {
                let line = event_json(Some((attribute, value)));
                let body = Bytes::from(format!("{valid}\n{line}\n{valid}\n"));
                let results = parse_ndjson(&body, &defaults());
                assert_eq!(results.len(), 3);
                assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
                assert_refused(&results[1], attribute, value);
            }
        }
    }

    #[test]
    fn structured_fills_in_only_time_and_datacontenttype() {
        let d = Defaults {
            id_seed: Some("key-1".into()),
            ..defaults()
        };
        let body = Bytes::from(event_json(None));
        let e = parse_structured(&body, &body, &d).unwrap();
        assert_eq!(
            (e.id.as_str(), e.source.as_str(), e.ty.as_str()),
            ("e-1", "/s", "t")
        );
        assert_eq!(e.datacontenttype.as_deref(), Some("application/json"));
        assert!(e.time.is_some());
    }

    #[test]
    fn structured_extensions_may_be_numbers_and_null_means_absent() {
        let body = Bytes::from_static(
            br#"{"specversion":"1.0","id":"a","source":"s","type":"t","subject":null,"count":42,"flag":true}"#,
        );
        let event = parse_structured(&body, &body, &defaults()).unwrap();
        assert_eq!(event.subject, None);
        assert_eq!(event.extension("count"), Some("42"));
        assert_eq!(event.extension("flag"), Some("true"));
    }

    #[test]
    fn idempotency_seed_gives_stable_ids() {
        let d = Defaults {
            id_seed: Some("key-1".into()),
            ..defaults()
        };
        let a = parse_binary(&HeaderMap::new(), Bytes::new(), &d).unwrap();
        let b = parse_binary(&HeaderMap::new(), Bytes::new(), &d).unwrap();
        assert_eq!(a.id, b.id);
    }

    #[test]
    fn batch_entries_fail_alone() {
        let body = Bytes::from_static(
            br#"[{"specversion":"1.0","id":"a","source":"s","type":"t","data":1},{"nope":true},{"specversion":"1.0","id":"b","source":"s","type":"t","data":2}]"#,
        );
        let results = parse_batch_json(&body, &defaults()).unwrap();
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
        assert!(parse_batch_json(&Bytes::from_static(b"{\"a\":1}"), &defaults()).is_err());
    }

    #[test]
    fn ndjson_lines_fail_alone() {
        let body = Bytes::from_static(
            b"{\"specversion\":\"1.0\",\"id\":\"a\",\"source\":\"s\",\"type\":\"t\",\"data\":1}\r\n\n{broken\n{\"specversion\":\"1.0\",\"id\":\"b\",\"source\":\"s\",\"type\":\"t\",\"data\":2}\n",
        );
        let results = parse_ndjson(&body, &defaults());
        assert_eq!(results.len(), 3);
        assert_eq!(&results[0].as_ref().unwrap().data[..], b"1");
        assert!(results[1].is_err());
        assert_eq!(&results[2].as_ref().unwrap().data[..], b"2");
    }
}

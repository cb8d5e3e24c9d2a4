//! Encoding an event as structured-mode CloudEvents JSON (webhook structured and batch modes,
//! SSE `data:`).

use base64::Engine;
use serde_json::value::RawValue;

use super::{is_json_content_type, is_text_content_type, Event, SPEC_VERSION};

/// Room an event's attributes and JSON punctuation usually take beyond its data: what a
/// buffer for its JSON reserves.
pub const JSON_ROOM: usize = 256;

/// The event as one CloudEvents JSON object (see [`write_json`]).
pub fn to_json(event: &Event) -> String {
    to_json_with(event, &[])
}

/// The event as one CloudEvents JSON object with the extension attributes `extra` added (see
/// [`write_json_with`]).
pub fn to_json_with(event: &Event, extra: &[(&str, &str)]) -> String {
    let mut out = Vec::new();
    write_json_with(event, extra, &mut out);
    String::from_utf8(out).expect("JSON text is UTF-8")
}

/// Appends the event as one CloudEvents JSON object to `out` (see [`write_json_with`]).
pub fn write_json(event: &Event, out: &mut Vec<u8>) {
    write_json_with(event, &[], out)
}

/// Appends the event as one CloudEvents JSON object to `out`, written straight from the event
/// (no intermediate map, no second pass to validate the result). JSON data is embedded as JSON,
/// UTF-8 text of a declared non-JSON type as a string, anything else as `data_base64`: under a
/// JSON type, or none (which the JSON format reads as JSON), a string would read back as a JSON
/// string, quotes included, so text that is not valid JSON goes as `data_base64` there.
///
/// Member names never repeat: core attributes are fields of [`Event`], and an extension can be
/// named neither like one of them nor `data`/`data_base64` (the parsers refuse those). The
/// extension attributes `extra` (sidebus's own, such as `sidebustopic`) replace the event's of
/// the same name.
pub fn write_json_with(event: &Event, extra: &[(&str, &str)], out: &mut Vec<u8>) {
    out.reserve(event.data.len() + JSON_ROOM);
    out.extend_from_slice(b"{\"specversion\":\"");
    out.extend_from_slice(SPEC_VERSION.as_bytes());
    out.push(b'"');
    let optional = [
        ("time", &event.time),
        ("subject", &event.subject),
        ("dataschema", &event.dataschema),
        ("datacontenttype", &event.datacontenttype),
    ];
    let present = optional
        .iter()
        .filter_map(|(name, value)| Some((*name, value.as_deref()?)));
    let attributes = [
        ("id", event.id.as_str()),
        ("source", event.source.as_str()),
        ("type", event.ty.as_str()),
    ]
    .into_iter()
    .chain(present)
    .chain(
        event
            .extensions
            .iter()
            .filter(|(n, _)| !extra.iter().any(|(name, _)| name == n))
            .map(|(n, v)| (n.as_str(), v.as_str())),
    )
    .chain(extra.iter().copied());
    for (name, value) in attributes {
        out.push(b',');
        string(out, name);
        out.push(b':');
        string(out, value);
    }
    let content_type = event.datacontenttype.as_deref();
    if event.data.is_empty() && content_type.is_none() {
        out.push(b'}');
        return;
    }
    let json_type = content_type.is_none_or(is_json_content_type);
    let text = match content_type {
        Some(ct) if !json_type && is_text_content_type(ct) => std::str::from_utf8(&event.data).ok(),
        _ => None,
    };
    // `&RawValue` checks UTF-8 too, which skipping the value as `IgnoredAny` does not.
    if json_type && serde_json::from_slice::<&RawValue>(&event.data).is_ok() {
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(&event.data);
    } else if let Some(text) = text {
        out.extend_from_slice(b",\"data\":");
        string(out, text);
    } else {
        out.extend_from_slice(b",\"data_base64\":\"");
        let start = out.len();
        let encoded = base64::encoded_len(event.data.len(), true).expect("data fits in memory");
        out.resize(start + encoded, 0);
        base64::engine::general_purpose::STANDARD
            .encode_slice(&event.data, &mut out[start..])
            .expect("sized above");
        out.push(b'"');
    }
    out.push(b'}');
}

/// Appends `value` as a JSON string.
fn string(out: &mut Vec<u8>, value: &str) {
    serde_json::to_writer(&mut *out, value).expect("writing to memory cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::Value;

    fn event(ct: Option<&str>, data: &'static [u8]) -> Event {
        Event {
            id: "1".into(),
            source: "/s".into(),
            ty: "t".into(),
            time: None,
            datacontenttype: ct.map(String::from),
            dataschema: None,
            subject: None,
            extensions: vec![("partitionkey".into(), "k".into())],
            data: Bytes::from_static(data),
        }
    }

    fn defaults() -> super::super::Defaults {
        super::super::Defaults {
            source: "other".into(),
            ty: "other",
            max_event: 1 << 20,
            partition_key: None,
            id_seed: None,
            trace: None,
        }
    }

    fn parse(e: &Event) -> Value {
        serde_json::from_str(&to_json(e)).unwrap()
    }

    #[test]
    fn json_text_and_binary_data() {
        let v = parse(&event(Some("application/json"), br#"{"a":[1]}"#));
        assert_eq!(v["data"], serde_json::json!({"a":[1]}));
        assert_eq!(v["partitionkey"], "k");
        assert_eq!(v["specversion"], "1.0");
        let v = parse(&event(Some("text/plain"), b"hi"));
        assert_eq!(v["data"], "hi");
        let v = parse(&event(Some("application/octet-stream"), &[0xff, 0]));
        assert_eq!(v["data_base64"], "/wA=");
        // Binary types go as base64 even when their bytes are valid UTF-8.
        let v = parse(&event(Some("application/avro"), b"\x04a1\x00"));
        assert_eq!(v["data_base64"], "BGExAA==");
        let v = parse(&event(Some("application/xml; charset=utf-8"), b"<a/>"));
        assert_eq!(v["data"], "<a/>");
        let v = parse(&event(Some("application/json"), b"\"\xff\""));
        assert_eq!(v["data_base64"], "Iv8i");
        let v = parse(&event(Some("application/json"), b"not json"));
        assert_eq!(v["data_base64"], "bm90IGpzb24=");
        let v = parse(&event(None, b"plain text"));
        assert_eq!(v["data_base64"], "cGxhaW4gdGV4dA==");
        assert!(v.get("datacontenttype").is_none());
    }

    /// Text without a declared type used to go out as a JSON string, which reads back as JSON
    /// text with its quotes (found by the `event_binary` fuzz seed corpus).
    #[test]
    fn text_of_no_or_a_json_type_round_trips_exactly() {
        let defaults = defaults();
        for original in [
            event(None, b"plain text"),
            event(Some("application/json"), b"not json"),
            event(Some("text/plain"), b"\"quoted\""),
        ] {
            let body = Bytes::from(to_json(&original));
            let back = super::super::parse_structured(&body, &body, &defaults).unwrap();
            assert_eq!(back.data, original.data);
            assert_eq!(back.datacontenttype, original.datacontenttype);
        }
    }

    /// Every attribute present, with characters JSON must escape: the object written member by
    /// member is valid JSON and reads back as the same event, and a batch of them is an array.
    #[test]
    fn every_attribute_with_escapes_round_trips() {
        let mut original = event(
            Some("text/plain; charset=utf-8"),
            b"line\n\"quoted\"\t\x01 caf\xc3\xa9",
        );
        original.id = "id \"1\"\\".into();
        original.time = Some("2026-12-03T10:00:00Z".into());
        original.subject = Some("a\u{0}b\r\nc".into());
        original.dataschema = Some("https://example.com/s?q=\"x\"".into());
        original.extensions.extend([
            ("comexample".into(), "\u{1f600} </script>".into()),
            (
                "traceparent".into(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            ),
        ]);
        let defaults = defaults();
        let body = Bytes::from(to_json(&original));
        let back = super::super::parse_structured(&body, &body, &defaults).unwrap();
        assert_eq!(back, original);

        let mut batch = b"[".to_vec();
        write_json(&original, &mut batch);
        batch.push(b',');
        write_json(&event(None, b""), &mut batch);
        batch.push(b']');
        let array: Vec<Value> = serde_json::from_slice(&batch).unwrap();
        assert_eq!(array.len(), 2);
        assert_eq!(array[0]["subject"], "a\u{0}b\r\nc");
        assert_eq!(
            array[1],
            serde_json::json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "partitionkey": "k"})
        );
    }

    #[test]
    fn round_trips_through_the_structured_parser() {
        let original = event(Some("application/json"), br#"{"x":1}"#);
        let body = Bytes::from(to_json(&original));
        let defaults = defaults();
        let back = super::super::parse_structured(&body, &body, &defaults).unwrap();
        assert_eq!(back.id, original.id);
        assert_eq!(back.data, original.data);
        assert_eq!(back.partition_key(), original.partition_key());
    }
}

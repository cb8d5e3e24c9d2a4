//! Encoding an event as structured-mode CloudEvents JSON (webhook structured and batch modes,
//! SSE `data:`).

use base64::Engine;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{is_json_content_type, Event, SPEC_VERSION};

/// The event as one CloudEvents JSON object. JSON data is embedded as JSON, UTF-8 text of a
/// declared non-JSON type as a string, anything else as `data_base64`: under a JSON type, or
/// none (which the JSON format reads as JSON), a string would read back as a JSON string, quotes
/// included, so text that is not valid JSON goes as `data_base64` there.
pub fn to_json(event: &Event) -> Box<RawValue> {
    let mut object = Map::new();
    object.insert("specversion".into(), SPEC_VERSION.into());
    object.insert("id".into(), event.id.clone().into());
    object.insert("source".into(), event.source.clone().into());
    object.insert("type".into(), event.ty.clone().into());
    for (name, value) in [
        ("time", &event.time),
        ("subject", &event.subject),
        ("dataschema", &event.dataschema),
        ("datacontenttype", &event.datacontenttype),
    ] {
        if let Some(value) = value {
            object.insert(name.into(), value.clone().into());
        }
    }
    for (name, value) in &event.extensions {
        object.insert(name.clone(), value.clone().into());
    }
    let json_data = event
        .datacontenttype
        .as_deref()
        .is_none_or(is_json_content_type)
        .then(|| serde_json::from_slice::<&RawValue>(&event.data).ok())
        .flatten();
    let mut text = serde_json::to_string(&Value::Object(object)).expect("a map serialises");
    if event.data.is_empty() && event.datacontenttype.is_none() {
        return RawValue::from_string(text).expect("valid JSON");
    }
    text.pop();
    let utf8 = match event.datacontenttype.as_deref() {
        Some(content_type) if !is_json_content_type(content_type) => {
            std::str::from_utf8(&event.data).ok()
        }
        _ => None,
    };
    match (json_data, utf8) {
        (Some(raw), _) => {
            text.push_str(",\"data\":");
            text.push_str(raw.get());
        }
        (None, Some(utf8)) => {
            text.push_str(",\"data\":");
            text.push_str(&serde_json::to_string(utf8).expect("a string serialises"));
        }
        (None, None) => {
            text.push_str(",\"data_base64\":\"");
            text.push_str(&base64::engine::general_purpose::STANDARD.encode(&event.data));
            text.push('"');
        }
    }
    text.push('}');
    RawValue::from_string(text).expect("valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

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

    fn parse(e: &Event) -> Value {
        serde_json::from_str(to_json(e).get()).unwrap()
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
        let defaults = super::super::Defaults {
            source: "other".into(),
            ty: "other",
            max_event: 1 << 20,
            partition_key: None,
            id_seed: None,
            trace: None,
        };
        for original in [
            event(None, b"plain text"),
            event(Some("application/json"), b"not json"),
            event(Some("text/plain"), b"\"quoted\""),
        ] {
            let body = Bytes::from(to_json(&original).get().to_string());
            let back = super::super::parse_structured(&body, &body, &defaults, 0).unwrap();
            assert_eq!(back.data, original.data);
            assert_eq!(back.datacontenttype, original.datacontenttype);
        }
    }

    #[test]
    fn round_trips_through_the_structured_parser() {
        let original = event(Some("application/json"), br#"{"x":1}"#);
        let json = to_json(&original);
        let body = Bytes::from(json.get().to_string());
        let defaults = super::super::Defaults {
            source: "other".into(),
            ty: "other",
            max_event: 1 << 20,
            partition_key: None,
            id_seed: None,
            trace: None,
        };
        let back = super::super::parse_structured(&body, &body, &defaults, 0).unwrap();
        assert_eq!(back.id, original.id);
        assert_eq!(back.data, original.data);
        assert_eq!(back.partition_key(), original.partition_key());
    }
}

//! Entry points shared by the cargo-fuzz targets in `fuzz/` and by `tests/it/fuzz_corpus.rs`, which
//! replays their committed corpora. Each takes one raw fuzzer input, runs it through the code
//! under test, panics when an invariant breaks and returns whether the input was accepted. Not
//! a supported API.
//!
//! Inputs are text-shaped so corpus files stay readable and seeds are easy to write:
//!
//! - `event_binary`: header lines `name: value`, an empty line, then the body (any bytes);
//!   lines that are not a valid header are skipped, as an HTTP server would refuse them.
//! - `event_structured`, `event_batch`, `event_ndjson`: the request body.
//! - `sse_cursor`: a line with the broker kind, one with the topic, one with the cursor, then
//!   lines `partition offset` the position is advanced past.
//! - `config_toml`: the file.
//! - `schema_validate`: a first line naming the rule's topic (`json`, `avro` or `proto`),
//!   then the event's JSON data.
//! - `cesql`: a CESQL expression, evaluated against a fixed event.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::backend::consume::ReadPosition;
use crate::delivery::sse::cursor::Cursor;
use crate::event::{self, Defaults, Event};

/// A fuzz target: runs one input, panics on a broken invariant, returns whether it was accepted.
pub type Target = fn(&[u8]) -> bool;

/// Every target by name: the fuzz targets' binary names and their corpus directories.
pub const TARGETS: &[(&str, Target)] = &[
    ("event_binary", event_binary),
    ("event_structured", event_structured),
    ("event_batch", event_batch),
    ("event_ndjson", event_ndjson),
    ("sse_cursor", sse_cursor),
    ("config_toml", config_toml),
    ("schema_validate", schema_validate),
    ("cesql", cesql),
];

fn defaults() -> Defaults {
    Defaults {
        source: "sidebus://fuzz".into(),
        ty: "sidebus.event",
        max_event: 4096,
        partition_key: Some("fuzz".into()),
        id_seed: Some("fuzz".into()),
        trace: Some(crate::event::trace::TraceContext {
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            tracestate: None,
        }),
    }
}

/// A parsed event has every required attribute, fits the size limit, and survives the
/// structured encoding sidebus delivers it in (webhooks, SSE) unchanged.
fn check_event(event: &Event) {
    let defaults = defaults();
    assert!(!event.id.is_empty() && !event.source.is_empty() && !event.ty.is_empty());
    assert!(event.data.len() <= defaults.max_event);
    let json = event::to_json(event);
    let body = Bytes::from(json.clone());
    let back = event::parse_structured(&body, &body, &defaults)
        .unwrap_or_else(|e| panic!("{json} does not parse back: {e}"));
    assert_eq!(canonical(back), canonical(event.clone()), "through {json}");
}

/// What the structured encoding does not keep: the order of members, whitespace around JSON
/// data, and an absent `datacontenttype` of JSON data, which the JSON format reads as JSON.
fn canonical(mut event: Event) -> Event {
    event.extensions.sort();
    let declared_json = event
        .datacontenttype
        .as_deref()
        .is_none_or(event::is_json_content_type);
    if declared_json && serde_json::from_slice::<serde::de::IgnoredAny>(&event.data).is_ok() {
        event.data = Bytes::copy_from_slice(event.data.trim_ascii());
        event
            .datacontenttype
            .get_or_insert_with(|| "application/json".into());
    }
    event
}

/// Binary mode: `ce-*` headers plus the body.
pub fn event_binary(data: &[u8]) -> bool {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii_start();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let Ok(event) = event::parse_binary(&headers, Bytes::copy_from_slice(body), &defaults()) else {
        return false;
    };
    assert_eq!(&event.data[..], body);
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .filter(|ct| !ct.is_empty());
    assert_eq!(
        event.datacontenttype.as_deref().map(str::as_bytes),
        content_type.map(HeaderValue::as_bytes)
    );
    check_event(&event);
    true
}

/// Structured mode: one JSON object.
pub fn event_structured(data: &[u8]) -> bool {
    let body = Bytes::copy_from_slice(data);
    let Ok(event) = event::parse_structured(&body, &body, &defaults()) else {
        return false;
    };
    check_event(&event);
    true
}

/// `application/cloudevents-batch+json`.
pub fn event_batch(data: &[u8]) -> bool {
    let body = Bytes::copy_from_slice(data);
    let Ok(results) = event::parse_batch_json(&body, &defaults()) else {
        return false;
    };
    for event in results.iter().flatten() {
        check_event(event);
    }
    results.iter().any(Result::is_ok)
}

/// `application/x-ndjson`.
pub fn event_ndjson(data: &[u8]) -> bool {
    let body = Bytes::copy_from_slice(data);
    let results = event::parse_ndjson(&body, &defaults());
    for event in results.iter().flatten() {
        check_event(event);
    }
    results.iter().any(Result::is_ok)
}

/// SSE resume cursors: a decoded cursor is the one text of its position, and advancing it
/// never steps back and still round-trips.
pub fn sse_cursor(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut lines = text.split('\n');
    let kind = lines.next().unwrap_or_default();
    let topic = lines.next().unwrap_or_default();
    let cursor = lines.next().unwrap_or_default();
    let here = crate::backend::kinds()
        .iter()
        .find(|(name, _)| *name == kind)
        .and_then(|(_, capabilities)| capabilities.cursor);
    let Ok(mut position) = Cursor::decode(cursor, here, kind, topic) else {
        return false;
    };
    assert_eq!(Some(position.kind()), here);
    assert_eq!(
        position.encode(topic),
        cursor,
        "a position has one cursor text"
    );
    for line in lines {
        let Some((partition, offset)) = line.split_once(' ') else {
            continue;
        };
        // Brokers number partitions and offsets from 0.
        let (Ok(partition @ 0..), Ok(offset @ 0..)) = (partition.parse(), offset.parse()) else {
            continue;
        };
        let before = position.clone();
        position.advance(partition, offset);
        assert!(
            at_or_past(position.position(), before.position()),
            "{before:?} -> {position:?}"
        );
        let next = match position.position() {
            ReadPosition::Sequence(next) => *next as i128,
            ReadPosition::Offsets(next) => i128::from(next[&partition]),
        };
        assert!(
            next > i128::from(offset) || offset == i64::MAX,
            "{position:?} is not past {offset}"
        );
        let text = position.encode(topic);
        assert_eq!(
            Cursor::decode(&text, here, kind, topic),
            Ok(position.clone())
        );
    }
    true
}

fn at_or_past(now: &ReadPosition, before: &ReadPosition) -> bool {
    match (now, before) {
        (ReadPosition::Sequence(a), ReadPosition::Sequence(b)) => a >= b,
        (ReadPosition::Offsets(a), ReadPosition::Offsets(b)) => b
            .iter()
            .all(|(partition, offset)| a.get(partition).is_some_and(|o| o >= offset)),
        _ => false,
    }
}

/// `sidebus.toml`: parsing and validation refuse bad files with an error, never a panic.
pub fn config_toml(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    crate::RawConfig::from_toml(text)
        .and_then(crate::RawConfig::validate)
        .is_ok()
}

/// The rules `schema_validate` checks against: one JSON Schema, one native Avro and one native
/// Protobuf rule (framed as if from a registry), compiled once.
/// The JSON Schema of the `json` topic in [`schema_validate`].
const FUZZ_JSON_SCHEMA: &str = r#"{"type":"object","required":["id"],"properties":{"id":{"type":"string",
    "minLength":1},"total":{"type":"number","minimum":0},"lines":{"type":"array",
    "items":{"type":"object","required":["sku"],"additionalProperties":false,
    "properties":{"sku":{"type":"string","pattern":"^[A-Z]+$"},"qty":{"type":"integer"}}}}}}"#;

fn fuzz_schemas() -> &'static crate::policy::schema::Schemas {
    use crate::config::{Encoding, SchemaRule};
    use crate::policy::schema::{Kind, Schemas, Source};
    static SCHEMAS: std::sync::OnceLock<Schemas> = std::sync::OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let rule = |name: &str, encoding| SchemaRule {
            name: name.into(),
            broker: None,
            topics: vec![name.into()],
            types: None,
            json_schema: None,
            avro: None,
            protobuf: None,
            subject: None,
            encoding,
        };
        let source = |kind, text: &str, name: &str, registry_id| Source {
            kind,
            text: text.into(),
            name: name.into(),
            message: None,
            registry_id,
            dataschema: name.into(),
        };
        let avro = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},
            {"name":"total","type":["null","double"],"default":null},
            {"name":"tag","type":["null","bytes","long","Order"],"default":null},
            {"name":"kind","type":{"type":"enum","name":"K","symbols":["A","B"]},"default":"A"},
            {"name":"lines","type":{"type":"map","values":{"type":"fixed","name":"F","size":2}},
             "default":{}}]}"#;
        let proto = "syntax = \"proto3\"; package f; message Order { string id = 1; \
            double total = 2; repeated Line lines = 3; map<string, int64> counts = 4; \
            message Line { string sku = 1; int32 qty = 2; } }";
        Schemas::compile(vec![
            (
                rule("json", Encoding::Json),
                source(Kind::JsonSchema, FUZZ_JSON_SCHEMA, "o.json", None),
            ),
            (
                rule("avro", Encoding::Native),
                source(Kind::Avro, avro, "o.avsc", None),
            ),
            (
                rule("proto", Encoding::Native),
                source(Kind::Protobuf, proto, "o.proto", Some(3)),
            ),
        ])
        .expect("the fuzz schemas compile")
    })
}

/// `schema_validate`: checks the data against the rule of the first line's topic. A refusal
/// points into `/data`; an accepted event is unchanged under the JSON rule, and an encoded one
/// decodes again.
pub fn schema_validate(data: &[u8]) -> bool {
    use crate::policy::schema::{Codec, DecodeWith};
    let (topic, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let topic = String::from_utf8_lossy(topic).trim().to_string();
    let mut event = event::from_broker(
        [("id", "1".to_string()), ("type", "fuzz".to_string())],
        Some("application/json".into()),
        Bytes::copy_from_slice(body),
    );
    event.source = "sidebus://fuzz".into();
    let schemas = fuzz_schemas();
    match schemas.apply("fuzz", &topic, event.clone()) {
        Ok(checked) => {
            if topic != "avro" && topic != "proto" {
                assert_eq!(checked, event, "a validate-only rule changed the event");
                if topic == "json" {
                    // Whatever the text reader accepted, serde_json reads and the tree accepts.
                    let tree = serde_json::from_slice(body).expect("an accepted event is JSON");
                    static CHECK: std::sync::OnceLock<crate::policy::schema::JsonCheck> =
                        std::sync::OnceLock::new();
                    let check = CHECK.get_or_init(|| {
                        let schema =
                            serde_json::from_str(FUZZ_JSON_SCHEMA).expect("the fuzz schema");
                        crate::policy::schema::JsonCheck::compile(&schema).expect("it compiles")
                    });
                    assert_eq!(
                        check.check(&tree),
                        Ok(()),
                        "the tree refuses an accepted event"
                    );
                }
                return true;
            }
            let DecodeWith::Codec(codec, framed) = schemas.decode_with(&checked, None) else {
                panic!("an encoded event is not recognised for decoding");
            };
            let decoded = codec
                .decode(&checked.data, framed)
                .expect("what sidebus encoded decodes");
            if let Codec::Avro(avro) = codec {
                // Whichever writer encoded it, the tree writer takes it and means the same.
                let tree = avro
                    .encode(&serde_json::from_slice(body).expect("an encoded event was JSON"))
                    .expect("the tree writer takes what the text writer took");
                assert_eq!(avro.decode(&tree).as_ref(), Ok(&decoded));
            }
            true
        }
        Err(violation) => {
            if topic == "avro" {
                let mut encoded = event;
                encoded.datacontenttype = Some(crate::policy::schema::AVRO.into());
                encoded.dataschema = Some("o.avsc".into());
                if let DecodeWith::Codec(Codec::Avro(avro), _) = schemas.decode_with(&encoded, None)
                {
                    assert_eq!(
                        avro.encode_text(body),
                        None,
                        "the text writer took a refused event"
                    );
                }
            }
            assert!(
                !violation.failures.is_empty(),
                "a violation without failures"
            );
            for failure in &violation.failures {
                assert!(failure.pointer.starts_with("/data"), "{failure:?}");
            }
            false
        }
    }
}

/// CESQL: parsing refuses bad text with a position inside it, never a panic; a parsed
/// expression evaluates without panicking, `matches` agrees with `evaluate`, and its text
/// parses again to the same expression.
pub fn cesql(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let expression = match crate::policy::cesql::parse(text) {
        Ok(expression) => expression,
        Err(e) => {
            assert!(
                (1..=text.chars().count() + 1).contains(&e.position),
                "{text:?}: {e}"
            );
            return false;
        }
    };
    let mut event = crate::event::from_broker(
        [
            ("id", "fuzz-1".to_owned()),
            ("source", "/shop/eu".to_owned()),
            ("type", "com.example.order.placed".to_owned()),
            ("subject", "orders/42".to_owned()),
            ("priority", "5".to_owned()),
            ("flag", "true".to_owned()),
        ],
        Some("application/json".into()),
        Bytes::from_static(b"{}"),
    );
    for _ in 0..2 {
        let (value, error) = expression.evaluate(&event);
        let matches = value == crate::policy::cesql::Value::Boolean(true) && error.is_none();
        assert_eq!(expression.matches(&event), matches, "{text:?}");
        event.subject = None;
    }
    assert_eq!(
        crate::policy::cesql::parse(expression.as_str()),
        Ok(expression)
    );
    true
}

use bytes::Bytes;
use serde_json::json;

use super::*;
use crate::config::Encoding;

fn rule(name: &str, topics: &[&str], encoding: Encoding) -> SchemaRule {
    SchemaRule {
        name: name.into(),
        broker: None,
        topics: topics.iter().map(|t| t.to_string()).collect(),
        types: None,
        json_schema: None,
        avro: None,
        protobuf: None,
        subject: None,
        encoding,
    }
}

fn source(kind: Kind, text: &str, name: &str, registry_id: Option<u32>) -> Source {
    Source {
        kind,
        text: text.into(),
        name: name.into(),
        message: None,
        registry_id,
        dataschema: match registry_id {
            Some(id) => format!("http://registry/schemas/ids/{id}"),
            None => name.into(),
        },
    }
}

fn event(data: &str) -> Event {
    Event {
        id: "1".into(),
        source: "s".into(),
        ty: "order.placed".into(),
        time: None,
        datacontenttype: Some("application/json".into()),
        dataschema: None,
        subject: None,
        extensions: vec![],
        data: Bytes::from(data.to_string()),
    }
}

const AVSC: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;
const PROTO: &str = "syntax = \"proto3\"; package p; message A { string id = 1; }";

fn schemas() -> Schemas {
    Schemas::compile(vec![
        (
            rule("json", &["j.*"], Encoding::Json),
            source(
                Kind::JsonSchema,
                r#"{"type":"object","required":["id"],"properties":{"n":{"type":"integer"}}}"#,
                "o.json",
                None,
            ),
        ),
        (
            rule("avro", &["a"], Encoding::Native),
            source(Kind::Avro, AVSC, "o.avsc", None),
        ),
        (
            rule("proto", &["p"], Encoding::Native),
            source(Kind::Protobuf, PROTO, "a.proto", Some(7)),
        ),
    ])
    .unwrap()
}

#[test]
fn json_rules_validate_and_point_into_data() {
    let set = schemas();
    let ok = set.apply("b", "j.x", event(r#"{"id":1}"#)).unwrap();
    assert_eq!(ok.data, r#"{"id":1}"#);
    let err = set.apply("b", "j.x", event(r#"{"n":"x"}"#)).unwrap_err();
    assert_eq!(&*err.rule, "json");
    let mut pointers: Vec<_> = err.failures.iter().map(|f| f.pointer.as_str()).collect();
    pointers.sort();
    assert_eq!(pointers, ["/data", "/data/n"]);
    assert!(set.apply("b", "other", event("not json")).is_ok());
    let mut text = event("x");
    text.datacontenttype = Some("text/plain".into());
    let err = set.apply("b", "j.x", text).unwrap_err();
    assert!(err.failures[0].detail.contains("text/plain"), "{err:?}");
    let err = set.apply("b", "j.x", event("{")).unwrap_err();
    assert_eq!(err.failures[0].pointer, "/data");
}

#[test]
fn native_rules_encode_and_decode_back() {
    let set = schemas();
    let avro = set.apply("b", "a", event(r#"{"id":"o1"}"#)).unwrap();
    assert_eq!(avro.datacontenttype.as_deref(), Some(AVRO));
    assert_eq!(avro.dataschema.as_deref(), Some("o.avsc"));
    assert_eq!(&avro.data[..], [4, b'o', b'1']);
    let proto = set.apply("b", "p", event(r#"{"id":"o1"}"#)).unwrap();
    assert_eq!(&proto.data[..6], [0, 0, 0, 0, 7, 0]);
    for encoded in [&avro, &proto] {
        let DecodeWith::Codec(codec, framed) = set.decode_with(encoded, None) else {
            panic!("not recognised");
        };
        assert_eq!(
            codec.decode(&encoded.data, framed).unwrap(),
            json!({"id": "o1"})
        );
    }
    let mut foreign = proto.clone();
    foreign.dataschema = None;
    foreign.data = Bytes::from(wire::frame(99, None, b"x"));
    assert!(matches!(
        set.decode_with(&foreign, Some("http://registry")),
        DecodeWith::RegistryId(99)
    ));
    assert!(matches!(
        set.decode_with(&foreign, None),
        DecodeWith::Nothing
    ));
    assert!(matches!(
        set.decode_with(&event("{}"), Some("http://registry")),
        DecodeWith::Nothing
    ));
    let err = set.apply("b", "a", event(r#"{"id":5}"#)).unwrap_err();
    assert_eq!(err.failures[0].pointer, "/data/id");
}

#[test]
fn a_native_json_schema_is_refused_naming_the_rule() {
    let err = Schemas::compile(vec![(
        rule("bad", &["x"], Encoding::Native),
        source(Kind::JsonSchema, "{}", "x.json", Some(1)),
    )])
    .unwrap_err();
    assert!(err.to_string().contains("`bad`"), "{err}");
    let err = Schemas::compile(vec![(
        rule("broken", &["x"], Encoding::Json),
        source(Kind::Avro, "{", "x.avsc", None),
    )])
    .unwrap_err();
    assert!(err.to_string().contains("`broken`"), "{err}");
}

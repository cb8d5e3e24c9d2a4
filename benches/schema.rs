//! Criterion micro-benchmarks of schema rules on the publish path (design §8.1), per 1 KiB event:
//! no rule matching (the cost every event pays once rules exist), a JSON Schema check, and native
//! Avro and Protobuf encoding — each `Schemas::apply` as the publish handler calls it, JSON
//! parsing of the data included — for a realistic order (nested objects, eight line items) and
//! for the load harness's flat `{"p":"xxx…"}`; and the JSON parsing alone.
//!
//! Run: `cargo bench --bench schema --no-default-features` (no broker client is needed).

#[path = "common/schema.rs"]
mod order;

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sidebus::config::{Encoding, SchemaRule};
use sidebus::event::Event;
use sidebus::policy::schema::{Kind, Schemas, Source};

// The same allocator as the `sidebus` binary: these paths allocate per event.
sidebus::mimalloc_on_demand!();

fn rule(name: &str, ty: &str, encoding: Encoding) -> SchemaRule {
    SchemaRule {
        name: name.into(),
        broker: None,
        topics: vec!["orders".into()],
        types: Some(vec![ty.into()]),
        json_schema: None,
        avro: None,
        protobuf: None,
        subject: None,
        encoding,
    }
}

fn source(kind: Kind, text: &str, name: &str, message: Option<&str>) -> Source {
    Source {
        kind,
        text: text.into(),
        name: name.into(),
        message: message.map(str::to_string),
        registry_id: None,
        dataschema: name.into(),
    }
}

fn schemas() -> Schemas {
    Schemas::compile(vec![
        (
            rule("json", "order.json", Encoding::Json),
            source(
                Kind::JsonSchema,
                order::ORDER_JSON_SCHEMA,
                "order.json",
                None,
            ),
        ),
        (
            rule("avro", "order.avro", Encoding::Native),
            source(Kind::Avro, order::ORDER_AVSC, "order.avsc", None),
        ),
        (
            rule("flat-json", "flat.json", Encoding::Json),
            source(Kind::JsonSchema, FLAT_JSON_SCHEMA, "flat.json", None),
        ),
        (
            rule("flat-avro", "flat.avro", Encoding::Native),
            source(Kind::Avro, FLAT_AVSC, "flat.avsc", None),
        ),
        (
            rule("proto", "order.proto", Encoding::Native),
            source(
                Kind::Protobuf,
                order::ORDER_PROTO,
                "order.proto",
                Some("bench.Order"),
            ),
        ),
    ])
    .expect("the benchmark schemas compile")
}

fn event(ty: &str) -> Event {
    Event {
        id: "018f2c4e-7b1a-7cde-9f00-3a5b6c7d8e9f".into(),
        source: "/shop/checkout".into(),
        ty: ty.into(),
        time: Some("2026-05-01T12:34:56.789Z".into()),
        datacontenttype: Some("application/json".into()),
        dataschema: None,
        subject: None,
        extensions: vec![],
        data: Bytes::from(order::order(1024).to_string()),
    }
}

/// The load harness's other events: `{"p":"xxx…"}`, one string member.
const FLAT_JSON_SCHEMA: &str =
    r#"{"type":"object","required":["p"],"properties":{"p":{"type":"string"}}}"#;
const FLAT_AVSC: &str =
    r#"{"type":"record","name":"Flat","fields":[{"name":"p","type":"string"}]}"#;

fn schema(c: &mut Criterion) {
    let schemas = schemas();
    let mut group = c.benchmark_group("schema_apply_1KiB");
    let flat = format!("{{\"p\":\"{}\"}}", "x".repeat(1024 - 8));
    for (name, ty) in [
        ("no_rule", "order.none"),
        ("json_schema", "order.json"),
        ("avro_native", "order.avro"),
        ("protobuf_native", "order.proto"),
        ("flat_json_schema", "flat.json"),
        ("flat_avro_native", "flat.avro"),
    ] {
        let mut event = event(ty);
        if name.starts_with("flat") {
            event.data = Bytes::from(flat.clone());
        }
        assert_eq!(event.data.len(), 1024);
        let applied = schemas
            .apply("b", "orders", event.clone())
            .expect("the benchmark order satisfies every schema");
        if name.ends_with("native") {
            assert_ne!(applied.data, event.data, "{name} encodes");
        }
        group.bench_function(name, |b| {
            b.iter_batched(
                || event.clone(),
                |e| black_box(schemas.apply("b", "orders", e)),
                BatchSize::SmallInput,
            )
        });
    }
    // What every rule pays before its schema does anything: the data parsed as JSON.
    let data = event("order.none").data;
    group.bench_function("json_parse_only", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&data)))
    });
    group.finish();
}

criterion_group!(benches, schema);
criterion_main!(benches);

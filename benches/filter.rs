//! Criterion micro-benchmarks of subscription filtering, which runs once per delivered event:
//! a three-clause CESQL expression, the same test as Subscriptions API dialects, and parsing.
//!
//! Run: `cargo bench --bench filter --no-default-features` (no broker client is needed).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use sidebus::event::Event;
use sidebus::policy::cesql;
use sidebus::policy::filter::Filters;

const EXPRESSION: &str =
    "type = 'com.example.order.placed' AND source LIKE '/shop/%' AND EXISTS subject";

/// An order event as a webhook subscription sees it: core attributes, trace context and a
/// partition key, a 1 KiB payload.
fn event() -> Event {
    Event {
        id: "018f2c4e-7b1a-7cde-9f00-3a5b6c7d8e9f".into(),
        source: "/shop/eu-west/checkout".into(),
        ty: "com.example.order.placed".into(),
        time: Some("2026-05-01T12:34:56.789Z".into()),
        datacontenttype: Some("application/json".into()),
        dataschema: None,
        subject: Some("orders/4711".into()),
        extensions: vec![
            ("partitionkey".into(), "customer-42".into()),
            (
                "traceparent".into(),
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            ),
        ],
        data: Bytes::from(vec![b'x'; 1024]),
    }
}

fn filter(c: &mut Criterion) {
    let event = event();
    let expression = cesql::parse(EXPRESSION).expect("the benchmark expression parses");
    assert!(expression.matches(&event));
    let mut group = c.benchmark_group("filter");
    group.bench_function("cesql_matches", |b| {
        b.iter(|| black_box(&expression).matches(black_box(&event)))
    });
    group.bench_function("cesql_evaluate", |b| {
        b.iter(|| black_box(&expression).evaluate(black_box(&event)))
    });
    let mut other = event.clone();
    other.ty = "com.example.order.cancelled".into();
    group.bench_function("cesql_matches_false", |b| {
        b.iter(|| black_box(&expression).matches(black_box(&other)))
    });
    let dialects: Filters = serde_json::from_str(
        r#"[{"exact": {"type": "com.example.order.placed"}},
            {"prefix": {"source": "/shop/"}},
            {"not": {"suffix": {"subject": ".tmp"}}}]"#,
    )
    .expect("the benchmark filters parse");
    assert!(dialects.matches(&event));
    group.bench_function("dialects_matches", |b| {
        b.iter(|| black_box(&dialects).matches(black_box(&event)))
    });
    group.bench_function("cesql_parse", |b| {
        b.iter(|| cesql::parse(black_box(EXPRESSION)))
    });
    group.finish();
}

criterion_group!(benches, filter);
criterion_main!(benches);

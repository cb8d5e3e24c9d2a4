//! Criterion micro-benchmarks of the publish path below HTTP: CloudEvents parsing (binary
//! headers, structured JSON, a batch of 100) and the batching pipeline's round trip through the
//! memory backend.
//!
//! Run: `cargo bench --bench pipeline` (add `-- parse` or `-- pipeline` to pick a group).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::{HeaderMap, HeaderValue};
use sidebus::backend::memory::{Bounds, MemoryBackend};
use sidebus::backend::{Backend, Outbound};
use sidebus::config::{MemoryConfig, PipelineConfig};
use sidebus::event::{parse_batch_json, parse_binary, parse_structured, Defaults, Event};
use sidebus::pipeline::Pipeline;

/// Payload size of every event, as in the load harness.
const SIZE: usize = 1024;
/// Events in a batch body.
const BATCH: usize = 100;

fn defaults() -> Defaults {
    Defaults {
        source: "sidebus://bench".into(),
        ty: "sidebus.event",
        max_event: 1 << 20,
        partition_key: None,
        id_seed: None,
        trace: None,
    }
}

/// A JSON object of exactly `size` bytes (for `size` >= 8).
fn payload(size: usize) -> String {
    assert!(size >= 8, "payload size must be at least 8 bytes");
    format!("{{\"p\":\"{}\"}}", "x".repeat(size - 8))
}

/// One structured CloudEvent with a JSON `data` member of `size` bytes.
fn structured(size: usize, i: usize) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"evt-{i}","source":"/bench","type":"com.example.bench","time":"2026-01-01T00:00:00.000000Z","datacontenttype":"application/json","partitionkey":"k{i}","data":{}}}"#,
        payload(size)
    )
}

fn binary_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/json"),
        ("ce-specversion", "1.0"),
        ("ce-id", "evt-1"),
        ("ce-source", "/bench"),
        ("ce-type", "com.example.bench"),
        ("ce-time", "2026-01-01T00:00:00.000000Z"),
        ("ce-partitionkey", "order-7"),
        (
            "ce-traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        // Headers a real request carries that parse_binary has to skip.
        ("host", "127.0.0.1:8642"),
        ("user-agent", "bench/1.0"),
        ("accept", "*/*"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
}

fn parsing(c: &mut Criterion) {
    let defaults = defaults();
    let mut group = c.benchmark_group("parse");

    let headers = binary_headers();
    let body = Bytes::from(payload(SIZE));
    group.throughput(Throughput::Elements(1));
    group.bench_function("binary_1KiB_all_attributes", |b| {
        b.iter(|| parse_binary(black_box(&headers), body.clone(), &defaults).unwrap())
    });
    // What the load harness sends: Content-Type and ce-type only; id, source and time are filled in.
    let mut minimal = HeaderMap::new();
    minimal.insert("content-type", HeaderValue::from_static("application/json"));
    minimal.insert("ce-type", HeaderValue::from_static("com.example.bench"));
    group.bench_function("binary_1KiB_defaults_filled", |b| {
        b.iter(|| parse_binary(black_box(&minimal), body.clone(), &defaults).unwrap())
    });

    let one = Bytes::from(structured(SIZE, 0));
    group.throughput(Throughput::Bytes(one.len() as u64));
    group.bench_function("structured_1KiB", |b| {
        b.iter(|| parse_structured(black_box(&one), &one, &defaults).unwrap())
    });

    let entries: Vec<String> = (0..BATCH).map(|i| structured(SIZE, i)).collect();
    let batch = Bytes::from(format!("[{}]", entries.join(",")));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("batch_json_100x1KiB", |b| {
        b.iter(|| {
            let parsed = parse_batch_json(black_box(&batch), &defaults).unwrap();
            assert_eq!(parsed.len(), BATCH);
            parsed
        })
    });
    group.finish();
}

fn event(i: usize) -> Event {
    Event {
        id: format!("evt-{i}"),
        source: "/bench".into(),
        ty: "com.example.bench".into(),
        time: Some("2026-01-01T00:00:00.000000Z".into()),
        datacontenttype: Some("application/json".into()),
        dataschema: None,
        subject: None,
        extensions: Vec::new(),
        data: Bytes::from(payload(SIZE)),
    }
}

fn round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Retention bounds the memory broker, so the benchmark's memory stays flat.
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new(Bounds {
        events: 10_000,
        ..Bounds::from(&MemoryConfig::default())
    }));
    let config = PipelineConfig {
        max_batch_events: 512,
        max_batch_bytes: 4 << 20,
        linger: Duration::ZERO,
        max_in_flight_batches: 8,
        ack_timeout: Duration::from_secs(30),
    };
    let pipeline = {
        let _guard = rt.enter();
        Pipeline::start("bench", backend, config, 65_536, 1 << 30, None)
    };
    let topic: Arc<str> = Arc::from("bench");
    let outbound = |n: usize| -> Vec<Outbound> {
        (0..n)
            .map(|i| Outbound {
                topic: topic.clone(),
                event: event(i),
            })
            .collect()
    };

    let mut group = c.benchmark_group("pipeline_memory");
    for n in [1usize, BATCH] {
        let events = outbound(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("submit_await", n), &events, |b, events| {
            b.to_async(&rt).iter(|| async {
                let results = pipeline
                    .submit(events.clone(), true)
                    .expect("pipeline takes the events")
                    .expect("a receiver when waiting")
                    .await
                    .expect("the batcher answers");
                assert!(results.iter().all(Result::is_ok));
                results
            })
        });
    }
    // 64 one-event requests at once, as 64 keep-alive HTTP connections would submit them: shows
    // what batching across requests buys.
    let concurrent = 64usize;
    let singles: Vec<Vec<Outbound>> = (0..concurrent).map(|_| outbound(1)).collect();
    group.throughput(Throughput::Elements(concurrent as u64));
    group.bench_function("submit_await_64_concurrent_x1", |b| {
        b.to_async(&rt).iter(|| async {
            let waits: Vec<_> = singles
                .iter()
                .map(|events| {
                    pipeline
                        .submit(events.clone(), true)
                        .expect("pipeline takes the events")
                        .expect("a receiver when waiting")
                })
                .collect();
            for results in futures::future::join_all(waits).await {
                assert!(results.expect("the batcher answers")[0].is_ok());
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = parsing, round_trip
}
criterion_main!(benches);

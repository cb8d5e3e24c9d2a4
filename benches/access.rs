//! Criterion micro-benchmarks of what the policy layer costs each request (design §8.6, §8.7):
//! finding the principal of a bearer token (one SHA-256 and a constant-time comparison per
//! principal), taking a publish from a principal's quota and a `[[quotas]]` rule, finding a
//! topic's route, and queueing a publish's audit line.
//!
//! Run: `cargo bench --bench access --no-default-features` (no broker client is needed).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sidebus::api::audit::{self, Audit, Record};
use sidebus::config::quota::{Limits, QuotaRule};
use sidebus::config::AuditConfig;
use sidebus::config::{AccessConfig, PrincipalConfig};
use sidebus::policy::access::Principals;
use sidebus::policy::topics::TopicMap;
use sidebus::quota::Quotas;

sidebus::mimalloc_on_demand!();

const TOKEN: &str = "checkout-7f3a9c2e-token";

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `n` principals, the last of which holds [`TOKEN`], each with a quota that never refuses.
fn access(n: usize) -> AccessConfig {
    let principal = |token: &str| PrincipalConfig {
        token_sha256: Some(sha256_hex(token)),
        publish: vec![">".into()],
        quota: Some(Limits {
            events_per_second: Some(1_000_000_000),
            bytes_per_second: Some("1000MiB".parse().unwrap()),
            burst: None,
        }),
        ..PrincipalConfig::default()
    };
    let mut principals: std::collections::BTreeMap<String, PrincipalConfig> = (1..n)
        .map(|i| (format!("other-{i}"), principal(&format!("other-token-{i}"))))
        .collect();
    principals.insert("checkout".into(), principal(TOKEN));
    AccessConfig {
        principals,
        ..AccessConfig::default()
    }
}

fn governance(c: &mut Criterion) {
    let mut group = c.benchmark_group("governance");
    for n in [1, 10] {
        let principals = Principals::compile(&access(n), |_| None).unwrap();
        assert!(principals.authenticate(TOKEN).is_some());
        group.bench_function(format!("authenticate_of_{n}"), |b| {
            b.iter(|| principals.authenticate(black_box(TOKEN)))
        });
    }
    let rule = QuotaRule {
        name: "orders".into(),
        broker: None,
        topics: vec!["orders.*".into()],
        limits: Limits {
            events_per_second: Some(1_000_000_000),
            bytes_per_second: None,
            burst: None,
        },
    };
    let quotas = Quotas::new(&access(1), &[rule]);
    assert!(quotas
        .admit(Some("checkout"), "events", "orders.eu", 1, 1024)
        .is_ok());
    group.bench_function("admit_principal_and_rule", |b| {
        b.iter(|| {
            quotas.admit(
                black_box(Some("checkout")),
                "events",
                black_box("orders.eu"),
                1,
                1024,
            )
        })
    });
    // The case: one principal with one quota (events and bytes), no rule.
    let alone = Quotas::new(&access(1), &[]);
    group.bench_function("admit_principal", |b| {
        b.iter(|| {
            alone.admit(
                black_box(Some("checkout")),
                "events",
                black_box("orders.eu"),
                1,
                1024,
            )
        })
    });
    group.finish();
}

/// The topic map's lookup per publish, and the audit line of a publish queued for the writer
/// (which writes 256 lines per `write`).
fn mapping_and_audit(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy");
    let config = |extra: &str| {
        sidebus::RawConfig::from_toml(&format!("[brokers.events]\nkind = \"memory\"\n{extra}"))
            .and_then(sidebus::RawConfig::validate)
            .unwrap()
    };
    let topic: std::sync::Arc<str> = "orders".into();
    let none = TopicMap::new(&config(""));
    group.bench_function("route_without_rules", |b| {
        b.iter(|| none.route(black_box("events"), black_box(&topic)))
    });
    let mapped = TopicMap::new(&config(
        "[[topics]]\nname = \"orders\"\nbroker = \"events\"\nphysical = \"orders.v2\"\n",
    ));
    group.bench_function("route_by_rule", |b| {
        b.iter(|| mapped.route(black_box("events"), black_box(&topic)))
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::start(
        &AuditConfig {
            path: Some(dir.path().join("audit.jsonl")),
            topic: None,
            buffer: 1 << 20,
        },
        None,
    )
    .unwrap();
    group.bench_function("audit_publish_line", |b| {
        b.iter(|| {
            audit.log(black_box(&Record {
                time: audit::now(),
                principal: Some("checkout".into()),
                action: "publish",
                broker: Some("events".into()),
                topic: Some("orders".into()),
                physical_topic: Some("orders.v2".into()),
                events: 1,
                bytes: 1024,
                status: 200,
                ids: vec!["0193a4c1-7f3a-7c2e-9b1d-5e8f2a6c4d10".into()],
                ..Record::default()
            }))
        })
    });
    group.finish();
}

criterion_group!(benches, governance, mapping_and_audit);
criterion_main!(benches);

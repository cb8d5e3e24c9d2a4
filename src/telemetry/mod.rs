//! Metric names (all in one place) and the Prometheus recorder; logs, spans and their OTLP
//! export are set up in [`tracing`].

#[cfg(feature = "otlp")]
pub mod otlp;
pub mod tracing;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter: publish HTTP requests by `broker`, `mode` (single|batch) and `status` (HTTP code).
pub const PUBLISH_REQUESTS: &str = "sidebus_publish_requests_total";
/// Counter: events through the pipeline by `broker` and `outcome`
/// (ok|unavailable|rejected|timeout|invalid_topic).
pub const PUBLISH_EVENTS: &str = "sidebus_publish_events_total";
/// Histogram (seconds): from request arrival to response, by `broker` and `mode`.
pub const PUBLISH_LATENCY: &str = "sidebus_publish_duration_seconds";
/// Histogram: events per batch handed to a broker, by `broker`.
pub const BATCH_SIZE: &str = "sidebus_batch_events";
/// Counter: batches flushed by `broker` and `reason` (full|bytes|idle|linger).
pub const BATCH_FLUSHES: &str = "sidebus_batch_flushes_total";
/// Gauge: events held by a broker's pipeline (queued or awaiting acknowledgement), by `broker`.
pub const PIPELINE_DEPTH: &str = "sidebus_pipeline_depth";
/// Gauge: bytes of the events a broker's pipeline holds, as `limits.pipeline_bytes` counts
/// them, by `broker`.
pub const PIPELINE_BYTES: &str = "sidebus_pipeline_bytes";
/// Counter: publishes refused with 429 because the pipeline was full, by `broker`.
pub const PIPELINE_REJECTED: &str = "sidebus_pipeline_rejected_total";
/// Counter: events refused with 422 because their data broke a `[[schemas]]` rule, by `rule`.
pub const SCHEMA_REJECTED: &str = "sidebus_schema_rejected_total";
/// Counter: publishes refused with 429 by a quota, by `quota` (a principal's or a rule's name).
pub const QUOTA_REJECTED: &str = "sidebus_quota_rejected_total";
/// Gauge: 1 when a broker is connected, 0 otherwise, by `broker`.
pub const BROKER_CONNECTED: &str = "sidebus_broker_connected";

/// Counter: webhook delivery attempts by `subscription` and `outcome` (delivered|retried|failed).
pub const DELIVERY_ATTEMPTS: &str = "sidebus_delivery_attempts_total";
/// Histogram (seconds): from the first attempt to the endpoint's 2xx, by `subscription`.
pub const DELIVERY_LATENCY: &str = "sidebus_delivery_duration_seconds";
/// Gauge: events being delivered, by `subscription`.
pub const DELIVERY_IN_FLIGHT: &str = "sidebus_delivery_in_flight";
/// Counter: events published to a dead-letter topic, by `subscription`.
pub const DEAD_LETTERED: &str = "sidebus_dead_lettered_total";
/// Counter: events a subscription's `filters` did not match (acknowledged, never delivered), by
/// `subscription`.
pub const DELIVERY_FILTERED: &str = "sidebus_delivery_filtered_total";
/// Gauge: events on the broker not yet received by a subscription, by `subscription`.
pub const CONSUMER_LAG: &str = "sidebus_consumer_lag";
/// Gauge: events in a broker's spool, not yet acknowledged by the broker, by `broker`.
pub const SPOOL_EVENTS: &str = "sidebus_spool_events";
/// Gauge: bytes of a broker's spool files (what counts against its `max_bytes`), by `broker`.
pub const SPOOL_BYTES: &str = "sidebus_spool_bytes";
/// Gauge: age in seconds of the oldest event in a broker's spool (0 when empty), by `broker`.
pub const SPOOL_OLDEST_AGE: &str = "sidebus_spool_oldest_age_seconds";
/// Counter: events written to a broker's spool, by `broker`.
pub const SPOOL_SPOOLED: &str = "sidebus_spool_spooled_total";
/// Counter: spooled events the broker acknowledged (their rate is the forward rate), by `broker`.
pub const SPOOL_FORWARDED: &str = "sidebus_spool_forwarded_total";
/// Counter: spooled events dropped because the broker refused them for good, by `broker`.
pub const SPOOL_DROPPED: &str = "sidebus_spool_dropped_total";

/// Counter: `/v1` requests that authenticated as a principal, by `principal`.
pub const PRINCIPAL_REQUESTS: &str = "sidebus_principal_requests_total";
/// Counter: audit lines dropped because the audit queue was full.
pub const AUDIT_DROPPED: &str = "sidebus_audit_dropped_total";
/// Counter: audit lines a sink failed to take, by `sink` (file|topic).
pub const AUDIT_FAILED: &str = "sidebus_audit_failed_total";
/// Counter: shadow copies that failed (the publish itself did not), by `broker`.
pub const SHADOW_FAILED: &str = "sidebus_shadow_failed_total";
/// Counter: configuration reloads by `result` (applied|invalid).
pub const CONFIG_RELOADS: &str = "sidebus_config_reloads_total";

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns the handle that renders it.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(BATCH_SIZE.into()),
                        &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0],
                    )
                })
                .expect("static bucket lists are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (embedding); rendering then shows ours empty.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            // Histogram samples accumulate until upkeep drains them; without it memory grows
            // with every request when nobody scrapes /metrics.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("sidebus-metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                })
                .expect("spawning a thread");
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        PUBLISH_REQUESTS,
        "Publish HTTP requests by broker, mode and status"
    );
    describe_counter!(PUBLISH_EVENTS, "Events published by broker and outcome");
    describe_histogram!(PUBLISH_LATENCY, Unit::Seconds, "Publish request latency");
    describe_histogram!(
        BATCH_SIZE,
        Unit::Count,
        "Events per batch handed to a broker"
    );
    describe_counter!(BATCH_FLUSHES, "Batches flushed by reason");
    describe_gauge!(PIPELINE_DEPTH, "Events queued or awaiting acknowledgement");
    describe_gauge!(
        PIPELINE_BYTES,
        Unit::Bytes,
        "Bytes of the events queued or awaiting acknowledgement"
    );
    describe_counter!(
        PIPELINE_REJECTED,
        "Publishes refused because the pipeline was full"
    );
    describe_gauge!(BROKER_CONNECTED, "1 when the broker is connected");
    describe_counter!(DELIVERY_ATTEMPTS, "Webhook delivery attempts by outcome");
    describe_histogram!(
        DELIVERY_LATENCY,
        Unit::Seconds,
        "Time to a successful delivery"
    );
    describe_gauge!(DELIVERY_IN_FLIGHT, "Events being delivered");
    describe_counter!(
        SCHEMA_REJECTED,
        "Events refused with 422 because their data broke a schema rule, by rule"
    );
    describe_counter!(DEAD_LETTERED, "Events published to a dead-letter topic");
    describe_counter!(QUOTA_REJECTED, "Publishes refused with 429 by a quota");
    describe_gauge!(SPOOL_EVENTS, "Events in the spool awaiting the broker");
    describe_gauge!(SPOOL_BYTES, Unit::Bytes, "Bytes of the spool's files");
    describe_gauge!(
        SPOOL_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest event in the spool"
    );
    describe_counter!(SPOOL_SPOOLED, "Events written to the spool");
    describe_counter!(SPOOL_FORWARDED, "Spooled events the broker acknowledged");
    describe_counter!(
        SPOOL_DROPPED,
        "Spooled events dropped after the broker refused them for good"
    );
    describe_counter!(
        DELIVERY_FILTERED,
        "Events a subscription's filters did not match, acknowledged undelivered"
    );
    describe_gauge!(CONSUMER_LAG, "Events on the broker not yet received");
}

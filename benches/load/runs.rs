//! The two kinds of run, each a sequence of phases: throughput (closed loop) and steady rate
//! (open loop).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, StatusCode};

use crate::brokers::BrokerSetup;
use crate::drive::Drive;
use crate::native::native_ops;
use crate::ops::{Body, HttpOp, HttpRequest};
use crate::phase::{phase, Phase, Spec};
use crate::report::Report;
use crate::schema::order;
use crate::server::BENCH_TOKEN;
use crate::{
    batch_body, payload, Ctx, AWAY, BROKER, EVENT_TYPE, SCHEMA_AVRO_TYPE, SCHEMA_JSON_TYPE,
    SCHEMA_NONE_TYPE, SPOOLED,
};

async fn connections(ctx: &Ctx, addr: SocketAddr, request: HttpRequest) -> Vec<HttpOp> {
    let request = Arc::new(request);
    let mut ops = Vec::with_capacity(ctx.args.connections);
    for _ in 0..ctx.args.connections {
        match HttpOp::connect(addr, request.clone()).await {
            Ok(op) => ops.push(op),
            Err(e) => panic!("load: {}", e.message),
        }
    }
    ops
}

/// One event of type `ty` in binary mode: the payload as body, `Content-Type` and `ce-type`
/// headers; sidebus fills in id, source and time.
fn binary_request(
    path: String,
    ty: &'static str,
    prefer_async: bool,
    payload: Bytes,
) -> HttpRequest {
    let mut headers = vec![
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (
            HeaderName::from_static("ce-type"),
            HeaderValue::from_static(ty),
        ),
    ];
    if prefer_async {
        headers.push((
            HeaderName::from_static("prefer"),
            HeaderValue::from_static("respond-async"),
        ));
    }
    HttpRequest {
        path,
        headers,
        body: Body::Fixed(payload),
        expect: if prefer_async {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        },
    }
}

const NO_NATIVE: &str = "n/a: the memory broker has no native client";

/// The throughput run: phases a, b, c, c', d and the schema phases, each closed-loop.
pub(crate) async fn run_throughput(ctx: &Ctx, setup: &BrokerSetup) -> Report {
    let args = &ctx.args;
    let sidebus = ctx.sidebus.addr;
    let closed = Drive::Closed {
        duration: Duration::from_secs_f64(args.seconds),
    };
    let conns = format!("{} conns", args.connections);
    let single = |prefer_async| {
        binary_request(
            ctx.events_path(),
            EVENT_TYPE,
            prefer_async,
            ctx.payload.clone(),
        )
    };
    let mut phases = Vec::new();

    if args.measures("a") {
        let request = binary_request("/bare".into(), EVENT_TYPE, false, ctx.payload.clone());
        let ops = connections(ctx, ctx.bare.addr, request).await;
        let spec = Spec::new("a", "http-bare (discard handler)", &conns).on(&ctx.bare);
        phases.push(phase(ctx, spec, ops, closed).await);
    }

    for (key, in_flight) in [("b", args.native_inflight), ("b_single", args.connections)] {
        if args.measures(key) {
            setup.empty().await;
            phases.push(match setup.native(&ctx.topic).await {
                Some(native) => {
                    let ops = native_ops(&native, in_flight, &ctx.payload);
                    let label = format!("native ({})", native.label());
                    let spec = Spec::new(key, label, format!("{in_flight} in flight"));
                    phase(ctx, spec, ops, closed).await
                }
                None => Phase::skipped(key, "native", NO_NATIVE),
            });
        }
    }

    for (key, label, prefer_async) in [
        ("c", "sidebus single, ack-wait", false),
        ("c_async", "sidebus single, respond-async", true),
    ] {
        if args.measures(key) {
            setup.empty().await;
            let ops = connections(ctx, sidebus, single(prefer_async)).await;
            let spec = Spec::new(key, label, &conns).sidebus(&ctx.sidebus);
            phases.push(phase(ctx, spec, ops, closed).await);
        }
    }

    if args.measures("d") {
        let label = format!("sidebus batch of {}, ack-wait", args.batch);
        let spec = Spec::new("d", label, &conns);
        phases.push(batch_phase(ctx, setup, sidebus, closed, spec, BROKER).await);
    }

    schema_phases(ctx, sidebus, setup, closed, "", &mut phases).await;

    if args.measures("c_spool") {
        phases.push(match setup {
            BrokerSetup::Memory => Phase::skipped("c_spool", "spool", NO_SPOOL),
            _ => {
                setup.empty().await;
                let path = ctx.path_for(SPOOLED);
                let request = binary_request(path, EVENT_TYPE, false, ctx.payload.clone());
                let ops = connections(ctx, sidebus, request).await;
                let label = "sidebus single, ack-wait, spool configured";
                let spec = Spec::new("c_spool", label, &conns).sidebus(&ctx.sidebus);
                phase(ctx, spec, ops, closed).await
            }
        });
    }
    if args.measures("d_spool") {
        let label = format!("sidebus batch of {}, broker away: spooled", args.batch);
        let spec = Spec::new("d_spool", label, &conns).expect(StatusCode::ACCEPTED);
        phases.push(batch_phase(ctx, setup, sidebus, closed, spec, AWAY).await);
    }
    let governed = [
        ("c_gov", "principal + quota", &ctx.governed),
        (
            "c_pol",
            "principal + quota + topic rule + audit log",
            &ctx.policed,
        ),
    ];
    for (name, what, sidebus) in governed {
        let Some(sidebus) = sidebus else { continue };
        setup.empty().await;
        let mut request = binary_request(ctx.events_path(), EVENT_TYPE, false, ctx.payload.clone());
        request.headers.push((
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {BENCH_TOKEN}")).expect("a header value"),
        ));
        let ops = connections(ctx, sidebus.addr, request).await;
        let label = format!("sidebus single, ack-wait, {what}");
        let spec = Spec::new(name, label, &conns).sidebus(sidebus);
        phases.push(phase(ctx, spec, ops, closed).await);
    }
    Report::new(setup, phases, None)
}

const NO_SPOOL: &str = "n/a: the memory broker takes no spool";

/// The order event with no rule (s), checked by a JSON Schema (s_json) and encoded as Avro
/// (s_avro), `--rounds` times in rotated order so that drift between phases biases no rule.
async fn schema_phases(
    ctx: &Ctx,
    sidebus: SocketAddr,
    setup: &BrokerSetup,
    drive: Drive,
    suffix: &str,
    phases: &mut Vec<Phase>,
) {
    let args = &ctx.args;
    let conns = format!("{} conns", args.connections);
    let order = Bytes::from(order(args.size).to_string());
    let schema_phases = [
        (
            "s",
            "sidebus single, order event, no rule",
            SCHEMA_NONE_TYPE,
        ),
        (
            "s_json",
            "sidebus single, order event, JSON Schema",
            SCHEMA_JSON_TYPE,
        ),
        (
            "s_avro",
            "sidebus single, order event, Avro native",
            SCHEMA_AVRO_TYPE,
        ),
    ];
    for round in 0..args.rounds.max(1) {
        for i in 0..schema_phases.len() {
            let (key, label, ty) = schema_phases[(i + round) % schema_phases.len()];
            if args.measures(key) {
                setup.empty().await;
                let request = binary_request(ctx.events_path(), ty, false, order.clone());
                let ops = connections(ctx, sidebus, request).await;
                let spec = Spec::new(key, format!("{label}{suffix}"), &conns).sidebus(&ctx.sidebus);
                phases.push(phase(ctx, spec, ops, drive).await);
            }
        }
    }
}

/// Batches of `--batch` structured events to `broker`, awaiting acknowledgement (phase d), or
/// spooling (d_spool).
async fn batch_phase(
    ctx: &Ctx,
    setup: &BrokerSetup,
    sidebus: SocketAddr,
    closed: Drive,
    spec: Spec,
    broker: &str,
) -> Phase {
    let args = &ctx.args;
    let batch = HttpRequest {
        path: format!("{}/batch", ctx.path_for(broker)),
        headers: vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/cloudevents-batch+json"),
        )],
        body: Body::Batch(batch_body(args.batch, &payload(args.size))),
        expect: spec.expect,
    };
    setup.empty().await;
    let ops = connections(ctx, sidebus, batch).await;
    let spec = spec.sidebus(&ctx.sidebus).events_per_op(args.batch as u64);
    phase(ctx, spec, ops, closed).await
}

/// The steady-rate run: bare HTTP, native publish-to-ack, sidebus single events and the schema
/// phases, each at the same offered rate, open loop — where a rule's CPU cost is measured without
/// the contention of a saturated machine.
pub(crate) async fn run_rate(ctx: &Ctx, setup: &BrokerSetup, rate: f64) -> Report {
    let args = &ctx.args;
    let n = args.connections;
    let open = Drive::Open {
        rate,
        total: ((rate * args.seconds) as u64).max(1),
    };
    let conns = format!("{n} conns");
    let mut phases = Vec::new();

    if args.measures("a") {
        let request = binary_request("/bare".into(), EVENT_TYPE, false, ctx.payload.clone());
        let ops = connections(ctx, ctx.bare.addr, request).await;
        let spec = Spec::new("a", format!("http-bare @ {rate}/s"), &conns).on(&ctx.bare);
        phases.push(phase(ctx, spec, ops, open).await);
    }

    if args.measures("b") {
        setup.empty().await;
        phases.push(match setup.native(&ctx.topic).await {
            Some(native) => {
                let ops = native_ops(&native, n, &ctx.payload);
                let label = format!("native @ {rate}/s ({})", native.label());
                let spec = Spec::new("b", label, format!("{n} publishers"));
                phase(ctx, spec, ops, open).await
            }
            None => Phase::skipped("b", "native", NO_NATIVE),
        });
    }

    if args.measures("c") {
        setup.empty().await;
        let request = binary_request(ctx.events_path(), EVENT_TYPE, false, ctx.payload.clone());
        let ops = connections(ctx, ctx.sidebus.addr, request).await;
        let spec = Spec::new("c", format!("sidebus single, ack-wait @ {rate}/s"), &conns)
            .sidebus(&ctx.sidebus);
        phases.push(phase(ctx, spec, ops, open).await);
    }

    let suffix = format!(" @ {rate}/s");
    schema_phases(ctx, ctx.sidebus.addr, setup, open, &suffix, &mut phases).await;
    Report::new(setup, phases, Some(rate))
}

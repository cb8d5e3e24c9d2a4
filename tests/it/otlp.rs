//! OTLP trace export (cargo feature `otlp`; CI runs `cargo test --features otlp --test it -- otlp::`):
//! the real binary exports its spans to a collector endpoint run by the test, and the spans form
//! one tree with the publisher's trace and the webhook request.
#![cfg(feature = "otlp")]


use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use bytes::Bytes;
use crate::common::process::Sidebus;
use crate::common::receiver::Receiver;
use serde_json::Value;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

/// Export requests as received: content type and body.
type Exports = Arc<Mutex<Vec<(String, Bytes)>>>;

/// Starts an OTLP/HTTP traces endpoint on a free port; returns its URL and what it receives.
async fn collector() -> (String, Exports) {
    async fn receive(State(exports): State<Exports>, headers: HeaderMap, body: Bytes) {
        let content_type = headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        exports.lock().unwrap().push((content_type, body));
    }
    let exports = Exports::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(receive))
        .with_state(exports.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, exports)
}

/// Runs sidebus exporting to `endpoint` with `protocol`, subscribes `receiver`, publishes one
/// event under the caller's trace, waits for its delivery and stops sidebus (which flushes the
/// spans); returns the `traceparent` the webhook request carried.
async fn publish_and_deliver(endpoint: &str, protocol: &str, receiver: &Receiver) -> String {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[telemetry]
otlp_endpoint = "{endpoint}"
otlp_protocol = "{protocol}"
service_name = "orders-sidecar"

[[subscriptions]]
name = "traced"
broker = "default"
topic = "orders"
endpoint = "{}"
start = "earliest"
"#,
        receiver.url
    );
    let http = reqwest::Client::new();
    let sidebus = Sidebus::start(&toml, dir.path(), &http).await;
    let r = http
        .post(format!("{}/v1/publish/default/orders", sidebus.base))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .header("ce-id", "traced-1")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = receiver
        .wait_until(Duration::from_secs(30), |r| !r.is_empty())
        .await;
    let status = sidebus.terminate(Duration::from_secs(60)).await;
    assert!(status.success(), "{status:?}");
    got[0].header("traceparent").expect("a traceparent")
}

/// The spans of every JSON export request, flattened.
fn spans(exports: &Exports) -> Vec<Value> {
    let exports = exports.lock().unwrap();
    let mut spans = Vec::new();
    for (content_type, body) in exports.iter() {
        assert_eq!(content_type, "application/json");
        let request: Value = serde_json::from_slice(body).unwrap();
        for resource in request["resourceSpans"].as_array().unwrap() {
            let service = resource["resource"]["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["key"] == "service.name")
                .map(|a| a["value"]["stringValue"].clone());
            assert_eq!(service, Some(Value::from("orders-sidecar")));
            for scope in resource["scopeSpans"].as_array().unwrap() {
                spans.extend(scope["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    spans
}

#[tokio::test]
async fn spans_continue_the_callers_trace_into_the_webhook_request() {
    let (endpoint, exports) = collector().await;
    let receiver = Receiver::start().await;
    let arrived = publish_and_deliver(&endpoint, "http/json", &receiver).await;

    let spans = spans(&exports);
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name && s["traceId"] == TRACE_ID)
            .unwrap_or_else(|| panic!("a `{name}` span in trace {TRACE_ID}: {spans:#?}"))
    };
    let publish = named("publish");
    assert_eq!(
        publish["parentSpanId"], CALLER_SPAN,
        "publish is the caller's child"
    );
    let deliver = named("deliver");
    assert_eq!(
        deliver["parentSpanId"], publish["spanId"],
        "delivery continues from the publish span the event carried"
    );
    let deliver_span = deliver["spanId"].as_str().unwrap();
    assert_eq!(
        arrived,
        format!("00-{TRACE_ID}-{deliver_span}-01"),
        "the webhook request is the deliver span's child"
    );
}

#[tokio::test]
async fn protobuf_export_carries_the_same_trace() {
    let (endpoint, exports) = collector().await;
    let receiver = Receiver::start().await;
    publish_and_deliver(&endpoint, "http/protobuf", &receiver).await;

    let exports = exports.lock().unwrap();
    assert!(!exports.is_empty(), "spans were exported");
    let trace_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let carries = |needle: &[u8]| {
        exports
            .iter()
            .any(|(_, body)| body.windows(needle.len()).any(|w| w == needle))
    };
    assert!(exports
        .iter()
        .all(|(content_type, _)| content_type == "application/x-protobuf"));
    assert!(carries(&trace_id), "the caller's trace id, as 16 raw bytes");
    assert!(
        carries(b"publish") && carries(b"deliver"),
        "both span names"
    );
}

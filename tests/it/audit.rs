//! The audit log (design §8.6): one JSON line per state-changing request and per refusal, in the
//! daily file and on the audit topic, never with a payload or a token; a failing sink shows in
//! `/readyz` and a metric while publishing goes on.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::brokers::nats_url;
use crate::common::receiver::Receiver;
use crate::common::{metric_value, sha256_hex, stored, unique_topic, TestServer};

const OPS_TOKEN: &str = "ops-token-audit-0001";
const READER_TOKEN: &str = "reader-token-audit-0002";
const PAYLOAD: &str = "payload-that-must-never-be-audited";
const WAIT: Duration = Duration::from_secs(30);

fn config(dir: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
state_dir = "{dir}"
[brokers.mem]
kind = "memory"
{extra}
[[topics]]
name = "orders"
broker = "mem"
physical = "orders.v2"

[access.principals.ops]
token_sha256 = "{}"
publish = ["orders"]
subscribe = ["orders"]
manage_subscriptions = true

[access.principals.reader]
token_sha256 = "{}"
subscribe = ["orders"]
"#,
        sha256_hex(OPS_TOKEN),
        sha256_hex(READER_TOKEN),
        dir = dir.display(),
    )
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> u16 {
    let mut request = server.http.request(method, server.url(path)).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap().status().as_u16()
}

/// The lines of the day's audit file once there are `n`.
async fn lines(dir: &std::path::Path, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut text = String::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("audit.jsonl.") {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap());
            }
        }
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        if lines.len() >= n {
            assert_eq!(lines.len(), n, "{lines:#?}");
            assert!(!text.contains(PAYLOAD), "a payload was audited");
            assert!(!text.contains(OPS_TOKEN) && !text.contains(READER_TOKEN));
            return lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} audit lines: {lines:#?}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_action_and_refusal_is_one_line_in_the_file_and_on_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let audit_dir = dir.path().join("audit");
    let extra = format!(
        "[audit]\npath = \"{}\"\ntopic = {{ broker = \"mem\", topic = \"sidebus.audit\" }}\n",
        audit_dir.join("audit.jsonl").display()
    );
    let server = TestServer::start(&config(dir.path(), &extra)).await;
    let receiver = Receiver::start().await;
    let ops = Some(OPS_TOKEN);

    let single = [
        ("content-type", "text/plain"),
        ("ce-id", "evt-1"),
        ("idempotency-key", "idem-1"),
        ("x-request-id", "req-1"),
    ];
    assert_eq!(
        send(
            &server,
            Method::POST,
            "/v1/publish/mem/orders",
            ops,
            &single,
            PAYLOAD
        )
        .await,
        200
    );
    let batch = json!([
        {"specversion":"1.0","id":"evt-2","source":"/t","type":"t","data":PAYLOAD},
        {"specversion":"1.0","id":"evt-3","source":"/t","type":"t","data":PAYLOAD}
    ]);
    let batch_headers = [("content-type", "application/cloudevents-batch+json")];
    let status = send(
        &server,
        Method::POST,
        "/v1/publish/mem/orders/batch",
        ops,
        &batch_headers,
        batch.to_string(),
    )
    .await;
    assert_eq!(status, 200);
    let spec = json!({"broker":"mem","topic":"orders","endpoint":receiver.url});
    let json_headers = [("content-type", "application/json")];
    let sub = "/v1/subscriptions/audited";
    assert_eq!(
        send(
            &server,
            Method::PUT,
            sub,
            ops,
            &json_headers,
            spec.to_string()
        )
        .await,
        201
    );
    assert_eq!(
        send(&server, Method::POST, &format!("{sub}/pause"), ops, &[], "").await,
        200
    );
    assert_eq!(
        send(
            &server,
            Method::POST,
            &format!("{sub}/resume"),
            ops,
            &[],
            ""
        )
        .await,
        200
    );
    assert_eq!(send(&server, Method::DELETE, sub, ops, &[], "").await, 204);
    // Refusals: no token, a wrong token, a principal without the right.
    assert_eq!(
        send(&server, Method::GET, "/v1/brokers", None, &[], "").await,
        401
    );
    assert_eq!(
        send(&server, Method::GET, "/v1/brokers", Some("nope"), &[], "").await,
        401
    );
    let status = send(
        &server,
        Method::POST,
        "/v1/publish/mem/orders",
        Some(READER_TOKEN),
        &single,
        PAYLOAD,
    )
    .await;
    assert_eq!(status, 403);
    // Reading changes nothing and is not audited.
    assert_eq!(
        send(&server, Method::GET, "/v1/subscriptions", ops, &[], "").await,
        200
    );

    let lines = lines(&audit_dir, 9).await;
    let field = |i: usize, key: &str| lines[i][key].clone();
    let actions: Vec<&str> = lines
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "publish",
            "publish",
            "subscription.put",
            "subscription.pause",
            "subscription.resume",
            "subscription.delete",
            "denied",
            "denied",
            "denied"
        ]
    );
    assert_eq!(field(0, "principal"), "ops");
    assert_eq!(field(0, "broker"), "mem");
    assert_eq!(field(0, "topic"), "orders");
    assert_eq!(field(0, "physical_topic"), "orders.v2");
    assert_eq!(field(0, "events"), 1);
    assert_eq!(field(0, "bytes"), PAYLOAD.len());
    assert_eq!(field(0, "status"), 200);
    assert_eq!(field(0, "ids"), json!(["evt-1"]));
    assert_eq!(field(0, "idempotency_key"), "idem-1");
    assert_eq!(field(0, "request_id"), "req-1");
    assert!(field(0, "time").as_str().unwrap().ends_with('Z'));
    assert_eq!(field(1, "events"), 2);
    assert_eq!(field(1, "ids"), json!(["evt-2", "evt-3"]));
    let produced = stored(&server, "mem", "orders.v2", 10).await;
    let batch_bytes: usize = produced[1..].iter().map(|e| e.event.data.len()).sum();
    assert_eq!(field(1, "bytes"), batch_bytes);
    for i in 2..6 {
        assert_eq!(field(i, "subscription"), "audited");
        assert_eq!(field(i, "principal"), "ops");
    }
    assert_eq!(field(2, "status"), 201);
    assert_eq!(field(5, "status"), 204);
    assert_eq!(field(6, "status"), 401);
    assert_eq!(field(6, "principal"), Value::Null);
    assert_eq!(field(6, "request"), "GET /v1/brokers");
    assert_eq!(field(8, "status"), 403);
    assert_eq!(field(8, "principal"), "reader");
    assert_eq!(field(8, "topic"), "orders");

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let on_topic = stored(&server, "mem", "sidebus.audit", 100).await;
        if on_topic.len() == lines.len() {
            for (event, line) in on_topic.iter().zip(&lines) {
                assert_eq!(event.event.ty, "dev.sidebus.audit");
                let data: Value = serde_json::from_slice(&event.event.data).unwrap();
                assert_eq!(&data, line);
            }
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} on the topic",
            on_topic.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn a_failing_sink_shows_in_readyz_while_publishing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // A NATS broker that creates no streams: the audit subject has none, so each audit
    // publish is refused while the broker itself stays connected.
    let audit_topic = unique_topic("audit.nostream");
    let extra = format!(
        "[brokers.nats]\nkind = \"nats\"\nurl = \"{}\"\ncreate_streams = false\n\
         [audit]\ntopic = {{ broker = \"nats\", topic = \"{audit_topic}\" }}\n",
        nats_url()
    );
    let server = TestServer::start(&config(dir.path(), &extra)).await;
    let headers = [("content-type", "text/plain")];
    assert_eq!(
        send(
            &server,
            Method::POST,
            "/v1/publish/mem/orders",
            Some(OPS_TOKEN),
            &headers,
            "x"
        )
        .await,
        200
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let ready = loop {
        let response = server.http.get(server.url("/readyz")).send().await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "a failing audit sink does not make sidebus unready"
        );
        let ready: Value = response.json().await.unwrap();
        if !ready["audit_failures"].as_array().unwrap().is_empty() {
            break ready;
        }
        assert!(tokio::time::Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let failure = ready["audit_failures"][0].as_str().unwrap();
    assert!(failure.starts_with("audit topic: "), "{failure}");
    assert_eq!(
        send(
            &server,
            Method::POST,
            "/v1/publish/mem/orders",
            Some(OPS_TOKEN),
            &headers,
            "y"
        )
        .await,
        200
    );
    assert!(
        metric_value(
            &server.metrics().await,
            "sidebus_audit_failed_total{sink=\"topic\"}"
        ) >= 1.0
    );
    assert_eq!(stored(&server, "mem", "orders.v2", 10).await.len(), 2);
    server.stop().await;
}

//! Schema rules (design §8.1) against real brokers: JSON Schema, Avro and Protobuf validation
//! with 422 `errors` per entry, native encoding read back by native broker clients and decoded
//! by independent readers, the registry path with the Confluent wire format, webhook decoding,
//! and startup refusals naming the rule.

use std::path::Path;
use std::time::Duration;

use apache_avro::types::Value as Avro;
use rdkafka::Message;
use serde_json::{json, Value};

use crate::common::brokers::{
    amqp_channel, amqp_consumer, amqp_read, kafka_headers, nats_client, nats_url, Kafka,
};
use crate::common::process::free_port;
use crate::common::receiver::Receiver;
use crate::common::schema_registry::{
    proto_field, read_avro, read_proto, rules, schema_files, Registered, TestRegistry, ORDER_AVSC,
};
use crate::common::{assert_problem, metric_value, stored, TestServer};

const WAIT: Duration = Duration::from_secs(30);

fn structured(id: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "/test", "type": "shop.order.placed",
        "datacontenttype": "application/json", "data": data})
}

async fn publish_one(
    server: &TestServer,
    broker: &str,
    topic: &str,
    data: Value,
) -> reqwest::Response {
    server
        .post(
            &format!("/v1/publish/{broker}/{topic}"),
            &[("content-type", "application/cloudevents+json")],
            structured(&uuid::Uuid::now_v7().to_string(), data).to_string(),
        )
        .await
}

/// Publishes `entries` as a batch, asserting which failed with 422 and returning the results.
async fn publish_batch(
    server: &TestServer,
    broker: &str,
    topic: &str,
    entries: &[Value],
    failing: &[usize],
) -> Vec<Value> {
    let body: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, d)| structured(&format!("b-{i}"), d.clone()))
        .collect();
    let response = server
        .post(
            &format!("/v1/publish/{broker}/{topic}/batch"),
            &[("content-type", "application/cloudevents-batch+json")],
            Value::Array(body).to_string(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], failing.len(), "{body}");
    let results = body["results"].as_array().unwrap().clone();
    for (i, result) in results.iter().enumerate() {
        let expected = if failing.contains(&i) { 422 } else { 200 };
        assert_eq!(result["status"], expected, "entry {i}: {body}");
        assert_eq!(result["id"], format!("b-{i}"), "{body}");
    }
    results
}

/// A fresh topic under `prefix` (one more token, so `prefix.*` matches it).
fn fresh(prefix: &str) -> String {
    format!("{prefix}.{}", uuid::Uuid::now_v7().simple())
}

fn pointers(problem: &Value) -> Vec<String> {
    let mut out: Vec<String> = problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn json_schema_on_memory_single_and_batch_with_pointers() {
    let dir = tempfile::tempdir().unwrap();
    schema_files(dir.path());
    let toml = format!(
        "[brokers.mem]\nkind = \"memory\"\n{}",
        rules(dir.path(), "mem", "m")
    );
    let server = TestServer::start(&toml).await;
    let topic = fresh("m.json");
    let ok = publish_one(&server, "mem", &topic, json!({"id": "o1", "total": 3})).await;
    assert_eq!(ok.status(), 200);
    let bad = publish_one(
        &server,
        "mem",
        &topic,
        json!({"total": -1, "lines": [{"qty": 1.5}]}),
    )
    .await;
    let problem = assert_problem(bad, 422).await;
    assert_eq!(problem["type"], "urn:sidebus:problem:schema-violation");
    assert_eq!(
        pointers(&problem),
        ["/data", "/data/lines/0", "/data/lines/0/qty", "/data/total"]
    );
    let missing: Vec<&Value> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["pointer"] == "/data")
        .collect();
    assert!(
        missing[0]["detail"].as_str().unwrap().contains("`id`"),
        "{problem}"
    );
    let binary = server
        .post(
            &format!("/v1/publish/mem/{topic}"),
            &[("content-type", "text/plain")],
            "hello",
        )
        .await;
    let problem = assert_problem(binary, 422).await;
    assert_eq!(pointers(&problem), ["/data"]);
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("text/plain"),
        "{problem}"
    );
    let results = publish_batch(
        &server,
        "mem",
        &topic,
        &[
            json!({"id": "a", "total": 1}),
            json!({"id": "b", "total": "x"}),
            json!({"id": "c", "total": 2}),
        ],
        &[1],
    )
    .await;
    assert_eq!(
        results[1]["error"]["type"],
        "urn:sidebus:problem:schema-violation"
    );
    assert_eq!(pointers(&results[1]["error"]), ["/data/total"]);
    let held = stored(&server, "mem", &topic, 10).await;
    let ids: Vec<&str> = held.iter().map(|s| s.event.id.as_str()).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(&ids[1..], ["b-0", "b-2"]);
    let other = publish_one(&server, "mem", &fresh("m.free"), json!("anything")).await;
    assert_eq!(other.status(), 200);
    let metrics = server.metrics().await;
    assert_eq!(
        metric_value(&metrics, "sidebus_schema_rejected_total{rule=\"m-json\"}"),
        3.0
    );
    server.stop().await;
}

#[tokio::test]
async fn avro_and_protobuf_on_nats_are_native_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    schema_files(dir.path());
    let toml = format!(
        "[brokers.jobs]\nkind = \"nats\"\nurl = \"{}\"\n{}",
        nats_url(),
        rules(dir.path(), "jobs", "n")
    );
    let server = TestServer::start(&toml).await;
    let avro_topic = fresh("n.avro");
    let ok = publish_one(
        &server,
        "jobs",
        &avro_topic,
        json!({"id": "o1", "total": 2.5, "tag": "AAE="}),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let bad = publish_one(
        &server,
        "jobs",
        &avro_topic,
        json!({"id": 7, "total": 1, "extra": true}),
    )
    .await;
    assert_eq!(
        pointers(&assert_problem(bad, 422).await),
        ["/data/extra", "/data/id"]
    );
    let proto_topic = fresh("n.proto");
    let results = publish_batch(
        &server,
        "jobs",
        &proto_topic,
        &[
            json!({"id": "p1", "total": 4, "lines": [{"sku": "a", "qty": "3"}]}),
            json!({"id": "p2", "lines": [{"sku": "a", "qty": "lots"}]}),
        ],
        &[1],
    )
    .await;
    assert_eq!(pointers(&results[1]["error"]), ["/data/lines/0/qty"]);
    let js = async_nats::jetstream::new(nats_client().await);
    let read = |topic: String| {
        let js = js.clone();
        async move {
            let stream = js
                .get_stream(sidebus::backend::nats::stream_name(&topic))
                .await
                .unwrap();
            stream.get_raw_message(1).await.unwrap()
        }
    };
    let avro = read(avro_topic).await;
    assert_eq!(
        avro.headers.get("Content-Type").unwrap().as_str(),
        "application/avro"
    );
    assert!(avro
        .headers
        .get("ce-dataschema")
        .unwrap()
        .as_str()
        .ends_with("order.avsc"));
    assert_eq!(
        read_avro(&avro.payload),
        Avro::Record(vec![
            ("id".into(), Avro::String("o1".into())),
            ("total".into(), Avro::Double(2.5)),
            ("note".into(), Avro::Union(0, Box::new(Avro::Null))),
            (
                "tag".into(),
                Avro::Union(1, Box::new(Avro::Bytes(vec![0, 1])))
            ),
        ])
    );
    let proto = read(proto_topic).await;
    assert_eq!(
        proto.headers.get("Content-Type").unwrap().as_str(),
        "application/protobuf"
    );
    let message = read_proto(dir.path(), &proto.payload);
    assert_eq!(proto_field(&message, "id").as_str(), Some("p1"));
    assert_eq!(proto_field(&message, "total").as_f64(), Some(4.0));
    let lines = proto_field(&message, "lines");
    let line = lines.as_list().unwrap()[0].as_message().unwrap().clone();
    assert_eq!(proto_field(&line, "qty").as_i64(), Some(3));
    server.stop().await;
}

#[tokio::test]
async fn avro_on_kafka_and_json_schema_on_amqp() {
    let dir = tempfile::tempdir().unwrap();
    schema_files(dir.path());
    let kafka = Kafka::start_mock();
    let toml = format!(
        "[pipeline]\nack_timeout = \"10s\"\n[brokers.events]\nkind = \"kafka\"\nbootstrap_servers = \"{}\"\n[brokers.tasks]\nkind = \"amqp\"\nurl = \"{}\"\n{}{}",
        kafka.bootstrap,
        crate::common::brokers::amqp_url(),
        rules(dir.path(), "events", "k"),
        rules(dir.path(), "tasks", "q"),
    );
    let server = TestServer::start(&toml).await;
    let topic = fresh("k.avro");
    kafka.create_topic(&topic, 1).await;
    publish_batch(
        &server,
        "events",
        &topic,
        &[
            json!({"id": "k1", "total": 1, "note": "n"}),
            json!({"total": 1}),
            json!({"id": "k3", "total": 3}),
        ],
        &[1],
    )
    .await;
    let bad = publish_one(
        &server,
        "events",
        &topic,
        json!({"id": "x", "total": 1, "note": 5}),
    )
    .await;
    assert_eq!(pointers(&assert_problem(bad, 422).await), ["/data/note"]);
    let messages = kafka.read(&topic, 1, 2);
    let headers = kafka_headers(&messages[0]);
    assert!(
        headers.contains(&("content-type".into(), "application/avro".into())),
        "{headers:?}"
    );
    let first = read_avro(messages[0].payload().unwrap());
    let Avro::Record(fields) = first else {
        panic!("{first:?}")
    };
    assert_eq!(fields[0].1, Avro::String("k1".into()));
    assert_eq!(
        fields[2].1,
        Avro::Union(1, Box::new(Avro::String("n".into())))
    );
    let second = read_avro(messages[1].payload().unwrap());
    let Avro::Record(fields) = second else {
        panic!("{second:?}")
    };
    assert_eq!(fields[1].1, Avro::Double(3.0));

    let amqp_topic = fresh("q.json");
    let channel = amqp_channel().await;
    let mut consumer = amqp_consumer(&channel, &amqp_topic).await;
    let bad = publish_one(&server, "tasks", &amqp_topic, json!({"id": "a"})).await;
    assert_eq!(pointers(&assert_problem(bad, 422).await), ["/data"]);
    let ok = publish_one(
        &server,
        "tasks",
        &amqp_topic,
        json!({"id": "a", "total": 1}),
    )
    .await;
    assert_eq!(ok.status(), 200);
    let delivered = amqp_read(&mut consumer, 1).await;
    let data: Value = serde_json::from_slice(&delivered[0].data).unwrap();
    assert_eq!(data, json!({"id": "a", "total": 1}));
    server.stop().await;
}

const REFUND_PROTO: &str = "syntax = \"proto3\";\npackage shop.v1;\nmessage Refund { string order_id = 1; int64 cents = 2; }\n";

#[tokio::test]
async fn registry_subjects_frame_payloads_and_webhooks_decode_them() {
    let registry = TestRegistry::start(
        vec![
            (
                "orders-value",
                Registered {
                    id: 11,
                    schema_type: None,
                    schema: ORDER_AVSC.into(),
                },
            ),
            (
                "refunds-value",
                Registered {
                    id: 12,
                    schema_type: Some("PROTOBUF"),
                    schema: REFUND_PROTO.into(),
                },
            ),
        ],
        vec![Registered {
            id: 13,
            schema_type: None,
            schema: r#"{"type":"record","name":"Ping","fields":[{"name":"n","type":"long"}]}"#
                .into(),
        }],
        "sr-user",
        "sr-secret",
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
state_dir = "{}"
[brokers.mem]
kind = "memory"
[schema_registry]
url = "{}"
username = "sr-user"
password = "sr-secret"
[[schemas]]
name = "orders"
topics = ["r.orders"]
subject = "orders-value"
encoding = "native"
[[schemas]]
name = "refunds"
topics = ["r.refunds"]
subject = "refunds-value"
encoding = "native"
"#,
        state.path().display(),
        registry.url
    );
    let server = TestServer::start(&toml).await;
    assert!(
        publish_one(&server, "mem", "r.orders", json!({"id": "o1", "total": 5}))
            .await
            .status()
            == 200
    );
    assert!(
        publish_one(
            &server,
            "mem",
            "r.refunds",
            json!({"orderId": "o1", "cents": "250"})
        )
        .await
        .status()
            == 200
    );
    let bad = publish_one(&server, "mem", "r.refunds", json!({"orderId": 1})).await;
    assert_eq!(pointers(&assert_problem(bad, 422).await), ["/data/orderId"]);
    let order = &stored(&server, "mem", "r.orders", 1).await[0].event;
    assert_eq!(&order.data[..5], [0, 0, 0, 0, 11]);
    assert_eq!(
        order.dataschema.as_deref(),
        Some(format!("{}/schemas/ids/11", registry.url).as_str())
    );
    assert_eq!(order.datacontenttype.as_deref(), Some("application/avro"));
    assert_eq!(
        read_avro(&order.data[5..]),
        Avro::Record(vec![
            ("id".into(), Avro::String("o1".into())),
            ("total".into(), Avro::Double(5.0)),
            ("note".into(), Avro::Union(0, Box::new(Avro::Null))),
            ("tag".into(), Avro::Union(0, Box::new(Avro::Null))),
        ])
    );
    let refund = &stored(&server, "mem", "r.refunds", 1).await[0].event;
    assert_eq!(
        &refund.data[..6],
        [0, 0, 0, 0, 12, 0],
        "magic, id 12, message index [0]"
    );
    assert_eq!(
        refund.datacontenttype.as_deref(),
        Some("application/protobuf")
    );

    let decoded = Receiver::start().await;
    let raw = Receiver::start().await;
    for (name, receiver, decode) in [("dec", &decoded, true), ("raw", &raw, false)] {
        for topic in ["r.orders", "r.refunds", "r.native"] {
            server
                .subscribe(
                    &format!("{name}-{}", &topic[2..]),
                    json!({"broker": "mem", "topic": topic, "endpoint": receiver.url,
                        "start": "earliest", "decode": decode}),
                )
                .await;
        }
    }
    let native = [0u8, 0, 0, 0, 13, 84];
    let response = server
        .post(
            "/v1/publish/mem/r.native",
            &[
                ("content-type", "application/octet-stream"),
                ("ce-id", "native-1"),
            ],
            native.to_vec(),
        )
        .await;
    assert_eq!(response.status(), 200);
    decoded.wait_until(WAIT, |r| r.len() >= 3).await;
    raw.wait_until(WAIT, |r| r.len() >= 3).await;
    let by_type = |receiver: &Receiver, ct: &str| {
        receiver
            .received()
            .into_iter()
            .filter(|r| r.header("content-type").as_deref() == Some(ct))
            .collect::<Vec<_>>()
    };
    let json_bodies: Vec<Value> = by_type(&decoded, "application/json")
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(json_bodies.len(), 3, "{json_bodies:?}");
    assert!(
        json_bodies.contains(&json!({"id": "o1", "total": 5.0, "note": null, "tag": null})),
        "{json_bodies:?}"
    );
    assert!(
        json_bodies.contains(&json!({"orderId": "o1", "cents": "250"})),
        "{json_bodies:?}"
    );
    assert!(json_bodies.contains(&json!({"n": 42})), "{json_bodies:?}");
    let raw_avro = by_type(&raw, "application/avro");
    assert_eq!(raw_avro.len(), 1);
    assert_eq!(&raw_avro[0].body[..5], [0, 0, 0, 0, 11]);
    assert_eq!(by_type(&raw, "application/protobuf").len(), 1);
    assert_eq!(
        &by_type(&raw, "application/octet-stream")[0].body[..],
        native
    );
    let requests = registry.requests();
    assert_eq!(
        requests.iter().filter(|p| *p == "/schemas/ids/13").count(),
        1,
        "{requests:?}"
    );
    assert!(requests.contains(&"/subjects/orders-value/versions/latest".to_string()));
    server.stop().await;
}

/// Runs the binary with `toml` and returns its stderr once it has exited non-zero.
fn refused(dir: &Path, toml: &str) -> String {
    let path = dir.join("sidebus.toml");
    std::fs::write(&path, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sidebus"))
        .current_dir(dir)
        .arg("--config")
        .arg(&path)
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .env_remove("SIDEBUS_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with:\n{toml}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn startup_fails_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.avsc"),
        r#"{"type": "record", "name": "X"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("bad.proto"), "message {").unwrap();
    let rule = |name: &str, source: &str| {
        format!("[[schemas]]\nname = \"{name}\"\ntopics = [\"t\"]\n{source}\n")
    };
    let cases = [
        (
            rule("gone", "json_schema = \"missing.json\""),
            "missing.json",
        ),
        (rule("broken-avro", "avro = \"bad.avsc\""), "bad.avsc"),
        (
            rule(
                "broken-proto",
                "protobuf = { file = \"bad.proto\", message = \"X\" }",
            ),
            "bad.proto",
        ),
        (
            format!(
                "[schema_registry]\nurl = \"http://127.0.0.1:{}\"\n{}",
                free_port(),
                rule("far", "subject = \"s-value\"")
            ),
            "s-value",
        ),
    ];
    for (toml, detail) in cases {
        let stderr = refused(dir.path(), &toml);
        let name = toml
            .split("name = \"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(
            stderr.contains(&format!("schema rule `{name}`")),
            "{stderr}"
        );
        assert!(stderr.contains(detail), "{stderr}");
    }
}

/// One valid and one invalid event per format, as the matrix test publishes them.
struct FormatCase {
    format: &'static str,
    valid: Value,
    invalid: Value,
    pointers: &'static [&'static str],
    content_type: &'static str,
    file: &'static str,
}

fn format_cases() -> [FormatCase; 3] {
    [
        FormatCase {
            format: "json",
            valid: json!({"id": "j1", "total": 2.5, "lines": [{"sku": "a", "qty": 2}]}),
            invalid: json!({"id": "j2", "total": -1, "lines": [{"qty": 1.5}]}),
            pointers: &["/data/lines/0", "/data/lines/0/qty", "/data/total"],
            content_type: "application/json",
            file: "order.json",
        },
        FormatCase {
            format: "avro",
            valid: json!({"id": "a1", "total": 2.5, "note": "n"}),
            invalid: json!({"id": "a2", "total": "lots"}),
            pointers: &["/data/total"],
            content_type: "application/avro",
            file: "order.avsc",
        },
        FormatCase {
            format: "proto",
            valid: json!({"id": "p1", "total": 2.5, "lines": [{"sku": "a", "qty": "2"}]}),
            invalid: json!({"id": "p2", "lines": [{"sku": "a", "qty": "lots"}]}),
            pointers: &["/data/lines/0/qty"],
            content_type: "application/protobuf",
            file: "order.proto",
        },
    ]
}

/// Decodes a payload read natively with the independent readers and checks it is `case.valid`.
fn assert_native(dir: &Path, case: &FormatCase, content_type: &str, payload: &[u8], at: &str) {
    assert_eq!(content_type, case.content_type, "{at}");
    match case.format {
        "json" => assert_eq!(
            serde_json::from_slice::<Value>(payload).unwrap(),
            case.valid,
            "{at}"
        ),
        "avro" => assert_eq!(
            read_avro(payload),
            Avro::Record(vec![
                ("id".into(), Avro::String("a1".into())),
                ("total".into(), Avro::Double(2.5)),
                (
                    "note".into(),
                    Avro::Union(1, Box::new(Avro::String("n".into())))
                ),
                ("tag".into(), Avro::Union(0, Box::new(Avro::Null))),
            ]),
            "{at}"
        ),
        _ => {
            let message = read_proto(dir, payload);
            assert_eq!(proto_field(&message, "id").as_str(), Some("p1"), "{at}");
            assert_eq!(proto_field(&message, "total").as_f64(), Some(2.5), "{at}");
            let lines = proto_field(&message, "lines");
            let line = lines.as_list().unwrap()[0].as_message().unwrap().clone();
            assert_eq!(proto_field(&line, "sku").as_str(), Some("a"), "{at}");
            assert_eq!(proto_field(&line, "qty").as_i64(), Some(2), "{at}");
        }
    }
}

/// Every format on every networked broker: the invalid event is 422 with its pointers and never
/// reaches the broker, the valid one is read back by the broker's own client as exactly one
/// message and decoded independently.
#[tokio::test]
async fn every_format_on_kafka_nats_and_amqp_is_checked_and_read_back_natively() {
    let dir = tempfile::tempdir().unwrap();
    schema_files(dir.path());
    let kafka = Kafka::start();
    let toml = format!(
        "[pipeline]\nack_timeout = \"10s\"\n\
         [brokers.k]\nkind = \"kafka\"\nbootstrap_servers = \"{}\"\n\
         [brokers.n]\nkind = \"nats\"\nurl = \"{}\"\n\
         [brokers.q]\nkind = \"amqp\"\nurl = \"{}\"\n{}{}{}",
        kafka.bootstrap,
        nats_url(),
        crate::common::brokers::amqp_url(),
        rules(dir.path(), "k", "xk"),
        rules(dir.path(), "n", "xn"),
        rules(dir.path(), "q", "xq"),
    );
    let server = TestServer::start(&toml).await;
    let js = async_nats::jetstream::new(nats_client().await);
    let channel = amqp_channel().await;
    for broker in ["k", "n", "q"] {
        for case in format_cases() {
            let at = format!("{} on broker {broker}", case.format);
            let topic = fresh(&format!("x{broker}.{}", case.format));
            let mut amqp = None;
            match broker {
                "k" => kafka.create_topic(&topic, 1).await,
                "q" => amqp = Some(amqp_consumer(&channel, &topic).await),
                _ => {}
            }
            let bad = publish_one(&server, broker, &topic, case.invalid.clone()).await;
            assert_eq!(
                pointers(&assert_problem(bad, 422).await),
                case.pointers,
                "{at}"
            );
            let ok = publish_one(&server, broker, &topic, case.valid.clone()).await;
            assert_eq!(ok.status(), 200, "{at}");
            let (content_type, payload) = match broker {
                "k" => {
                    let messages = kafka.read(&topic, 1, 1);
                    let content_type = kafka_headers(&messages[0])
                        .into_iter()
                        .find(|(name, _)| name == "content-type")
                        .map(|(_, value)| value)
                        .unwrap_or_default();
                    (content_type, messages[0].payload().unwrap().to_vec())
                }
                "n" => {
                    let stream = js
                        .get_stream(sidebus::backend::nats::stream_name(&topic))
                        .await
                        .unwrap();
                    assert_eq!(
                        stream.cached_info().state.messages,
                        1,
                        "{at}: the invalid event must not be on the stream"
                    );
                    let message = stream.get_raw_message(1).await.unwrap();
                    let content_type = message.headers.get("Content-Type").unwrap().to_string();
                    (content_type, message.payload.to_vec())
                }
                _ => {
                    let delivery = amqp_read(amqp.as_mut().unwrap(), 1).await.remove(0);
                    let content_type = delivery
                        .properties
                        .content_type()
                        .as_ref()
                        .map(|c| c.to_string())
                        .unwrap_or_default();
                    (content_type, delivery.data)
                }
            };
            assert_native(dir.path(), &case, &content_type, &payload, &at);
        }
    }
    // Kafka and AMQP: one message each was read after the 422; it was the valid one (asserted
    // above), so the invalid one never came first.
    server.stop().await;
}

/// SSE decodes what a rule encoded back to JSON; `?decode=false` streams the broker's bytes,
/// which the independent readers decode to the same event.
#[tokio::test]
async fn sse_decodes_avro_and_protobuf_unless_asked_not_to() {
    use crate::common::sse::{connect, subscribe_path};
    use base64::Engine;

    let dir = tempfile::tempdir().unwrap();
    schema_files(dir.path());
    let toml = format!(
        "[brokers.mem]\nkind = \"memory\"\n{}",
        rules(dir.path(), "mem", "s")
    );
    let server = TestServer::start(&toml).await;
    for case in format_cases().into_iter().skip(1) {
        let topic = fresh(&format!("s.{}", case.format));
        let ok = publish_one(&server, "mem", &topic, case.valid.clone()).await;
        assert_eq!(ok.status(), 200);
        let path = subscribe_path("mem", &topic, "from=earliest");
        let decoded = connect(&server, &path, None)
            .await
            .events(1)
            .await
            .remove(0);
        assert_eq!(decoded.json["datacontenttype"], "application/json");
        let mut expected = case.valid.clone();
        if case.format == "avro" {
            expected["tag"] = Value::Null;
        }
        assert_eq!(decoded.json["data"], expected, "{}", case.format);
        assert!(decoded.json["dataschema"]
            .as_str()
            .unwrap()
            .ends_with(case.file));

        let raw_path = subscribe_path("mem", &topic, "from=earliest&decode=false");
        let raw = connect(&server, &raw_path, None)
            .await
            .events(1)
            .await
            .remove(0);
        assert_eq!(raw.json["id"], decoded.json["id"]);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw.json["data_base64"].as_str().unwrap())
            .unwrap();
        let content_type = raw.json["datacontenttype"].as_str().unwrap();
        assert_native(dir.path(), &case, content_type, &bytes, case.format);
    }
    let bad = crate::common::sse::get(
        &server,
        &subscribe_path("mem", "s.avro.x", "decode=maybe"),
        None,
    )
    .await;
    let problem = assert_problem(bad, 400).await;
    assert!(problem["detail"].as_str().unwrap().contains("decode"));
    server.stop().await;
}

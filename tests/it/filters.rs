//! Subscriptions that choose what they get (DESIGN §8.3): the CloudEvents Subscriptions API
//! filter dialects and CESQL on webhook subscriptions against every broker, `?filter=` on SSE,
//! refusals with the position of a parse error, and `POST /v1/filters/evaluate`.

use std::time::{Duration, Instant};

use crate::common::brokers::{amqp_url, nats_url, Kafka};
use crate::common::receiver::Receiver;
use crate::common::sse::{connect, subscribe_path};
use crate::common::{assert_problem, unique_topic, TestServer};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// The events each broker gets: `(id, type, source, subject, priority extension)`.
const EVENTS: &[(&str, &str, &str, Option<&str>, &str)] = &[
    (
        "f-01",
        "com.example.order.placed",
        "/shop/eu",
        Some("orders/1"),
        "5",
    ),
    ("f-02", "com.example.order.placed", "/shop/us", None, "9"),
    (
        "f-03",
        "com.example.order.cancelled",
        "/shop/eu",
        Some("orders/2"),
        "7",
    ),
    (
        "f-04",
        "com.example.invoice.sent",
        "/billing",
        Some("inv/3"),
        "8",
    ),
    (
        "f-05",
        "com.example.order.placed",
        "/shop/eu",
        Some("orders/4"),
        "2",
    ),
    (
        "f-06",
        "com.example.order.placed",
        "/shop/eu",
        Some("orders/5"),
        "8",
    ),
    (
        "f-07",
        "com.other.order.placed",
        "/shop/eu",
        Some("orders/6"),
        "9",
    ),
    (
        "f-08",
        "com.example.order.shipped",
        "/shop/asia",
        Some("orders/7"),
        "6",
    ),
];

/// Orders from the shop that are placed or shipped, with a priority above 4, outside the US,
/// and with a subject: every dialect, nested.
fn filters() -> Value {
    json!([
        {"prefix": {"type": "com.example.order."}},
        {"any": [
            {"suffix": {"type": ".placed"}},
            {"exact": {"type": "com.example.order.shipped"}}
        ]},
        {"all": [
            {"not": {"exact": {"source": "/shop/us"}}},
            {"sql": "INT(priority) > 4 AND source LIKE '/shop/%' AND EXISTS subject"}
        ]}
    ])
}

/// The ids [`filters`] lets through, in publish order.
const MATCHING: &[&str] = &["f-01", "f-06", "f-08"];

async fn publish_all(server: &TestServer, broker: &str, topic: &str) {
    for (id, ty, source, subject, priority) in EVENTS {
        let mut headers = vec![
            ("ce-id", *id),
            ("ce-type", *ty),
            ("ce-source", *source),
            ("ce-priority", *priority),
        ];
        if let Some(subject) = subject {
            headers.push(("ce-subject", subject));
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let r = server
                .post(
                    &format!("/v1/publish/{broker}/{topic}?key=k"),
                    &headers,
                    "{}",
                )
                .await;
            if r.status() == 200 {
                break;
            }
            // AMQP: unroutable until the subscription's queue is bound.
            assert_eq!(r.status(), 502, "{id}");
            assert!(Instant::now() < deadline, "{id} never routable");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn deliver_filtered(server: &TestServer, broker: &str) {
    let topic = unique_topic("flt");
    let receiver = Receiver::start().await;
    let name = format!("filtered-{broker}");
    server
        .subscribe(
            &name,
            json!({"broker":broker,"topic":topic,"endpoint":receiver.url,"start":"earliest",
                   "filters": filters()}),
        )
        .await;
    publish_all(server, broker, &topic).await;
    let deadline = Instant::now() + WAIT;
    let status = loop {
        let status = server.get_json(&format!("/v1/subscriptions/{name}")).await["status"].clone();
        let seen =
            status["delivered"].as_u64().unwrap_or(0) + status["filtered"].as_u64().unwrap_or(0);
        if seen >= EVENTS.len() as u64 && status["in_flight"] == 0 {
            break status;
        }
        assert!(Instant::now() < deadline, "{broker}: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status["delivered"], MATCHING.len(), "{broker}: {status}");
    assert_eq!(
        status["filtered"],
        EVENTS.len() - MATCHING.len(),
        "{broker}: {status}"
    );
    let got: Vec<String> = receiver
        .accepted()
        .iter()
        .map(|r| r.header("ce-id").unwrap())
        .collect();
    assert_eq!(
        got, MATCHING,
        "{broker}: exactly the matching events, in key order"
    );
    let shown = server.get_json(&format!("/v1/subscriptions/{name}")).await;
    assert_eq!(
        shown["filters"],
        filters(),
        "the filters are shown as written"
    );
}

fn all_brokers(dir: &std::path::Path, kafka: &Kafka) -> String {
    format!(
        "state_dir = \"{}\"\n[brokers.mem]\nkind = \"memory\"\n[brokers.jobs]\nkind = \"nats\"\n\
         url = \"{}\"\n[brokers.tasks]\nkind = \"amqp\"\nurl = \"{}\"\n[brokers.events]\n\
         kind = \"kafka\"\nbootstrap_servers = \"{}\"\ncreate_topics = {{ partitions = 1, replication_factor = 1 }}\n",
        dir.display(),
        nats_url(),
        amqp_url(),
        kafka.bootstrap
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dialect_delivers_exactly_the_matching_events_on_every_broker() {
    let kafka = Kafka::start();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&all_brokers(dir.path(), &kafka)).await;
    for broker in ["mem", "jobs", "tasks", "events"] {
        deliver_filtered(&server, broker).await;
    }
}

#[tokio::test]
async fn a_filter_that_does_not_compile_is_400_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "state_dir = \"{}\"\n[brokers.mem]\nkind = \"memory\"\n",
        dir.path().display()
    ))
    .await;
    let put = |filters: Value| {
        server
            .http
            .put(server.url("/v1/subscriptions/bad-filter"))
            .json(
                &json!({"broker":"mem","topic":"t","endpoint":"http://127.0.0.1:9/e",
                          "filters": filters}),
            )
            .send()
    };
    let problem = assert_problem(put(json!({"sql": "type = 'a' AND"})).await.unwrap(), 400).await;
    assert_eq!(problem["type"], "urn:sidebus:problem:invalid-filter");
    assert_eq!(problem["position"], 15, "{problem}");
    let problem = assert_problem(put(json!({"exactly": {"type": "a"}})).await.unwrap(), 400).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("exactly"),
        "the unknown dialect is named: {problem}"
    );
    assert!(problem.get("position").is_none());
    let r = server
        .http
        .get(server.url("/v1/subscriptions/bad-filter"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 404).await;
}

#[tokio::test]
async fn sse_takes_a_cesql_filter() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "state_dir = \"{}\"\n[brokers.mem]\nkind = \"memory\"\n",
        dir.path().display()
    ))
    .await;
    let topic = unique_topic("sse.flt");
    publish_all(&server, "mem", &topic).await;
    let expression = "type LIKE 'com.example.order.%' AND INT(priority) >= 8";
    let query = format!(
        "from=earliest&filter={}",
        percent_encoding::utf8_percent_encode(expression, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut stream = connect(&server, &subscribe_path("mem", &topic, &query), None).await;
    let got: Vec<String> = stream
        .events(2)
        .await
        .iter()
        .map(|e| e.json["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, ["f-02", "f-06"]);
    stream.expect_idle().await;
    let r = server
        .http
        .get(server.url(&subscribe_path("mem", &topic, "filter=type%20%3D")))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let problem = assert_problem(r, 400).await;
    assert_eq!(problem["position"], 7, "{problem}");
}

#[tokio::test]
async fn filters_evaluate_answers_what_cesql_yields() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&format!(
        "state_dir = \"{}\"\n[brokers.mem]\nkind = \"memory\"\n",
        dir.path().display()
    ))
    .await;
    let event = json!({"specversion":"1.0","id":"1","source":"/shop/eu",
        "type":"com.example.order.placed","priority":"7","data":{"total":42}});
    let evaluate = |expression: &str| {
        let body = json!({"expression": expression, "event": event});
        let request = server
            .http
            .post(server.url("/v1/filters/evaluate"))
            .json(&body);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(
        evaluate("type = 'com.example.order.placed' AND source LIKE '/shop/%'").await,
        json!({"result": true, "error": null})
    );
    assert_eq!(
        evaluate("INT(priority) * 6").await,
        json!({"result": 42, "error": null})
    );
    assert_eq!(
        evaluate("LOWER(source)").await,
        json!({"result": "/shop/eu", "error": null})
    );
    let missing = evaluate("subject = 'x'").await;
    assert_eq!(missing["result"], false);
    assert_eq!(missing["error"]["kind"], "missingAttribute");
    let cast = evaluate("INT(source) = 1").await;
    assert_eq!(cast["error"]["kind"], "cast", "{cast}");
    let math = evaluate("1 / 0").await;
    assert_eq!(math["result"], 0);
    assert_eq!(math["error"]["kind"], "math");
    let unknown = evaluate("NOPE(type)").await;
    assert_eq!(unknown["error"]["kind"], "missingFunction");
    let parse = evaluate("type = ").await;
    assert_eq!(parse["result"], Value::Null);
    assert_eq!(parse["error"]["kind"], "parse");
    for body in [
        json!({"event": event}),
        json!({"expression": "true", "event": {"id": "1"}}),
    ] {
        let r = server
            .http
            .post(server.url("/v1/filters/evaluate"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(r, 400).await;
    }
}

//! Publish path against real NATS JetStream: binary mapping, order, dedup, outage and recovery.


use std::time::Duration;

use async_nats::jetstream;
use crate::common::brokers::{nats_client, nats_url, PrivateNats};
use crate::common::{assert_problem, unique_topic, TestServer};
use serde_json::Value;

fn config(url: &str) -> String {
    format!(
        r#"
source = "sidebus://test"
[pipeline]
ack_timeout = "5s"
[brokers.jobs]
kind = "nats"
url = "{url}"
"#
    )
}

async fn stream_messages(
    topic: &str,
    n: u64,
) -> Vec<async_nats::jetstream::message::StreamMessage> {
    let js = jetstream::new(nats_client().await);
    let stream = js
        .get_stream(sidebus::backend::nats::stream_name(topic))
        .await
        .expect("sidebus created the stream");
    let info = stream.get_info().await.unwrap();
    assert_eq!(info.config.subjects, vec![topic.to_string()]);
    assert_eq!(info.state.messages, n, "messages in the stream");
    let mut out = Vec::new();
    for seq in 1..=n {
        out.push(stream.get_raw_message(seq).await.unwrap());
    }
    out
}

fn header<'a>(m: &'a async_nats::jetstream::message::StreamMessage, name: &str) -> Option<&'a str> {
    m.headers.get(name).map(|v| v.as_str())
}

#[tokio::test]
async fn binary_structured_and_batch_arrive_in_binary_mode() {
    let server = TestServer::start(&config(&nats_url())).await;
    let topic = unique_topic("nats.bin");
    let response = server
        .post(
            &format!("/v1/publish/jobs/{topic}?key=k1"),
            &[
                ("content-type", "text/plain"),
                ("ce-id", "n-1"),
                ("ce-type", "job.created"),
                ("ce-subject", "caf%C3%A9"),
            ],
            "hello",
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], "n-1");
    assert_eq!(body["sequence"], 1);
    assert_eq!(body["stream"], sidebus::backend::nats::stream_name(&topic));

    let response = server
        .post(
            &format!("/v1/publish/jobs/{topic}"),
            &[("content-type", "application/cloudevents+json")],
            r#"{"specversion":"1.0","id":"n-2","source":"/s","type":"t","data":{"a":1}}"#,
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = server
        .post(
            &format!("/v1/publish/jobs/{topic}/batch"),
            &[("content-type", "application/x-ndjson")],
            "{\"specversion\":\"1.0\",\"id\":\"n-3\",\"source\":\"/s\",\"type\":\"t\",\"data_base64\":\"AAEC\"}\n{\"specversion\":\"1.0\",\"id\":\"n-4\",\"source\":\"/s\",\"type\":\"t\",\"data\":\"x\",\"datacontenttype\":\"text/plain\"}\n",
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 0, "{body}");
    assert_eq!(body["results"][1]["sequence"], 4);

    let messages = stream_messages(&topic, 4).await;
    let m = &messages[0];
    assert_eq!(&m.payload[..], b"hello");
    assert_eq!(header(m, "Content-Type"), Some("text/plain"));
    assert_eq!(header(m, "ce-id"), Some("n-1"));
    assert_eq!(header(m, "ce-specversion"), Some("1.0"));
    assert_eq!(header(m, "ce-type"), Some("job.created"));
    assert_eq!(header(m, "ce-source"), Some("sidebus://test"));
    assert_eq!(header(m, "ce-subject"), Some("café"));
    assert_eq!(header(m, "ce-partitionkey"), Some("k1"));
    assert!(header(m, "ce-time").is_some());
    assert_eq!(header(m, "Nats-Msg-Id"), Some("n-1"));
    assert_eq!(&messages[1].payload[..], br#"{"a":1}"#);
    assert_eq!(
        header(&messages[1], "Content-Type"),
        Some("application/json")
    );
    assert_eq!(&messages[2].payload[..], &[0, 1, 2]);
    assert_eq!(header(&messages[2], "Content-Type"), None);
    assert_eq!(&messages[3].payload[..], b"x");
}

#[tokio::test]
async fn structured_event_without_type_is_400_naming_it_and_never_reaches_the_stream() {
    let server = TestServer::start(&config(&nats_url())).await;
    let topic = unique_topic("nats.required");
    let path = format!("/v1/publish/jobs/{topic}");
    let response = server
        .post(
            &path,
            &[("content-type", "application/cloudevents+json")],
            r#"{"specversion":"1.0","id":"no-type","source":"/s","data":{"a":1}}"#,
        )
        .await;
    let problem = assert_problem(response, 400).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("`type`"), "{detail}");
    // A valid event after it creates the stream; had the refused one been produced, it would
    // be the stream's first message.
    let response = server
        .post(
            &path,
            &[("content-type", "text/plain"), ("ce-id", "after")],
            "x",
        )
        .await;
    assert_eq!(response.status(), 200);
    let messages = stream_messages(&topic, 1).await;
    assert_eq!(header(&messages[0], "ce-id"), Some("after"));
}

#[tokio::test]
async fn batch_entry_without_id_fails_alone_and_the_others_reach_the_stream() {
    let server = TestServer::start(&config(&nats_url())).await;
    let topic = unique_topic("nats.required");
    let response = server
        .post(
            &format!("/v1/publish/jobs/{topic}/batch"),
            &[("content-type", "application/cloudevents-batch+json")],
            r#"[{"specversion":"1.0","id":"r-1","source":"/s","type":"t","data":1},{"specversion":"1.0","source":"/s","type":"t","data":2},{"specversion":"1.0","id":"r-3","source":"/s","type":"t","data":3}]"#,
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["failed"], 1, "{body}");
    let statuses: Vec<_> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(statuses, [Some(200), Some(400), Some(200)], "{body}");
    let detail = body["results"][1]["error"]["detail"].as_str().unwrap();
    assert!(detail.contains("`id`"), "{detail}");
    let ids: Vec<_> = stream_messages(&topic, 2)
        .await
        .iter()
        .map(|m| (header(m, "ce-id").map(String::from), m.payload.to_vec()))
        .collect();
    assert_eq!(
        ids,
        [
            (Some("r-1".to_string()), b"1".to_vec()),
            (Some("r-3".to_string()), b"3".to_vec())
        ]
    );
}

#[tokio::test]
async fn order_per_key_holds_for_hundreds_of_events() {
    let server = TestServer::start(&config(&nats_url())).await;
    let topic = unique_topic("nats.order");
    let keys = ["a", "b", "c"];
    // Three publishers, one per key, each sending its events one after the other, concurrently.
    let tasks: Vec<_> = keys
        .iter()
        .map(|key| {
            let http = server.http.clone();
            let url = server.url(&format!("/v1/publish/jobs/{topic}?key={key}"));
            let key = key.to_string();
            tokio::spawn(async move {
                for i in 0..100 {
                    let r = http
                        .post(&url)
                        .header("prefer", "respond-async")
                        .body(format!("{key}-{i}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 202);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    server.state.drain().await;
    let messages = stream_messages(&topic, 300).await;
    for key in keys {
        let seen: Vec<String> = messages
            .iter()
            .filter(|m| header(m, "ce-partitionkey") == Some(key))
            .map(|m| String::from_utf8(m.payload.to_vec()).unwrap())
            .collect();
        let expected: Vec<String> = (0..100).map(|i| format!("{key}-{i}")).collect();
        assert_eq!(seen, expected, "order of key {key}");
    }
}

#[tokio::test]
async fn idempotency_key_is_deduplicated_by_the_stream_across_instances() {
    let topic = unique_topic("nats.idem");
    let path = format!("/v1/publish/jobs/{topic}");
    let headers = [("idempotency-key", "pay-1"), ("content-type", "text/plain")];
    let first = TestServer::start(&config(&nats_url())).await;
    let a: Value = first
        .post(&path, &headers, "charge")
        .await
        .json()
        .await
        .unwrap();
    // A second sidecar knows nothing of the first's window: the stream's dedup catches it.
    let second = TestServer::start(&config(&nats_url())).await;
    let response = second.post(&path, &headers, "charge").await;
    assert_eq!(response.status(), 200);
    let b: Value = response.json().await.unwrap();
    assert_eq!(a["id"], b["id"], "the id derives from the key");
    assert_eq!(b["duplicate"], true);
    assert_eq!(a["sequence"], b["sequence"]);
    stream_messages(&topic, 1).await;
}

#[tokio::test]
async fn invalid_subject_is_400() {
    let server = TestServer::start(&config(&nats_url())).await;
    let response = server.post("/v1/publish/jobs/a..b", &[], "x").await;
    assert_problem(response, 400).await;
}

#[tokio::test]
async fn outage_gives_503_and_publishing_recovers_by_itself() {
    let mut nats = PrivateNats::start();
    let server = TestServer::start(&config(&nats.url())).await;
    let topic = unique_topic("nats.outage");
    let path = format!("/v1/publish/jobs/{topic}");
    assert_eq!(server.post(&path, &[], "before").await.status(), 200);

    nats.kill();
    server
        .wait_readyz(
            Duration::from_secs(30),
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
        )
        .await
        .expect("readyz reports the outage");
    let response = server.post(&path, &[], "during").await;
    assert_eq!(response.headers()["retry-after"], "1");
    let problem = assert_problem(response, 503).await;
    assert_eq!(problem["type"], "urn:sidebus:problem:broker-unavailable");
    let brokers: Value = server
        .http
        .get(server.url("/v1/brokers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(brokers["brokers"][0]["connected"], false);
    assert!(brokers["brokers"][0]["last_error"].is_string());

    nats.restart();
    server.wait_ready(Duration::from_secs(30)).await;
    let response = server.post(&path, &[], "after").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["sequence"], 2,
        "the stream on disk kept the first event"
    );
}

//! Publish path against real RabbitMQ: binary mapping, confirms, unroutable, order, outage.


use std::net::SocketAddr;
use std::time::Duration;

use crate::common::brokers::{amqp_channel, amqp_consumer, amqp_read, amqp_url};
use crate::common::proxy::Proxy;
use crate::common::{assert_problem, unique_topic, TestServer};
use lapin::types::AMQPValue;
use serde_json::Value;

fn config(url: &str) -> String {
    format!(
        r#"
source = "sidebus://test"
[pipeline]
ack_timeout = "5s"
[brokers.tasks]
kind = "amqp"
url = "{url}"
"#
    )
}

fn header(d: &lapin::message::Delivery, name: &str) -> Option<String> {
    let headers = d.properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        other => panic!("header {name} is {other:?}"),
    }
}

#[tokio::test]
async fn events_arrive_with_properties_and_ce_headers() {
    let server = TestServer::start(&config(&amqp_url())).await;
    let topic = unique_topic("amqp.bin");
    let channel = amqp_channel().await;
    let mut consumer = amqp_consumer(&channel, &topic).await;

    let response = server
        .post(
            &format!("/v1/publish/tasks/{topic}?key=k9"),
            &[
                ("content-type", "application/json"),
                ("ce-id", "a-1"),
                ("ce-type", "task.created"),
            ],
            r#"{"n":1}"#,
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"id":"a-1","broker":"tasks","topic":topic})
    );
    let batch = server
        .post(
            &format!("/v1/publish/tasks/{topic}/batch"),
            &[("content-type", "application/cloudevents-batch+json")],
            r#"[{"specversion":"1.0","id":"a-2","source":"/s","type":"t","data_base64":"/w=="},{"specversion":"1.0","id":"a-3","source":"/s","type":"t","data":"hi","datacontenttype":"text/plain"}]"#,
        )
        .await;
    let batch: Value = batch.json().await.unwrap();
    assert_eq!(batch["failed"], 0, "{batch}");

    let got = amqp_read(&mut consumer, 3).await;
    let d = &got[0];
    assert_eq!(d.data, br#"{"n":1}"#);
    assert_eq!(
        d.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(
        d.properties.message_id().as_ref().map(|s| s.as_str()),
        Some("a-1")
    );
    assert_eq!(*d.properties.delivery_mode(), Some(2));
    assert_eq!(header(d, "ce-id").as_deref(), Some("a-1"));
    assert_eq!(header(d, "ce-type").as_deref(), Some("task.created"));
    assert_eq!(header(d, "ce-specversion").as_deref(), Some("1.0"));
    assert_eq!(header(d, "ce-source").as_deref(), Some("sidebus://test"));
    assert_eq!(header(d, "ce-partitionkey").as_deref(), Some("k9"));
    assert_eq!(d.routing_key.as_str(), "k9");
    assert_eq!(got[1].data, vec![0xff]);
    assert_eq!(got[2].data, b"hi");
    assert_eq!(
        got[2]
            .properties
            .content_type()
            .as_ref()
            .map(|s| s.as_str()),
        Some("text/plain")
    );
}

#[tokio::test]
async fn unroutable_event_is_a_failure_not_a_success() {
    let server = TestServer::start(&config(&amqp_url())).await;
    let topic = unique_topic("amqp.nobody");
    let response = server
        .post(&format!("/v1/publish/tasks/{topic}"), &[], "lost?")
        .await;
    let problem = assert_problem(response, 502).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("unroutable"),
        "{problem}"
    );
    // The channel stays usable afterwards.
    let channel = amqp_channel().await;
    let mut consumer = amqp_consumer(&channel, &topic).await;
    assert_eq!(
        server
            .post(&format!("/v1/publish/tasks/{topic}"), &[], "kept")
            .await
            .status(),
        200
    );
    assert_eq!(amqp_read(&mut consumer, 1).await[0].data, b"kept");
}

#[tokio::test]
async fn order_holds_for_hundreds_of_events() {
    let server = TestServer::start(&config(&amqp_url())).await;
    let topic = unique_topic("amqp.order");
    let channel = amqp_channel().await;
    let mut consumer = amqp_consumer(&channel, &topic).await;
    let url = server.url(&format!("/v1/publish/tasks/{topic}"));
    for i in 0..300 {
        let r = server
            .http
            .post(&url)
            .header("prefer", "respond-async")
            .body(format!("{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let got: Vec<String> = amqp_read(&mut consumer, 300)
        .await
        .into_iter()
        .map(|d| String::from_utf8(d.data).unwrap())
        .collect();
    assert_eq!(got, (0..300).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[tokio::test]
async fn connection_cut_gives_503_and_recovers_by_itself() {
    let target: SocketAddr = "127.0.0.1:5672".parse().unwrap();
    amqp_channel().await; // fails with instructions when RabbitMQ is absent
    let proxy = Proxy::start(target).await;
    let server =
        TestServer::start(&config(&format!("amqp://guest:guest@{}/%2f", proxy.addr))).await;
    let topic = unique_topic("amqp.outage");
    let channel = amqp_channel().await;
    let mut consumer = amqp_consumer(&channel, &topic).await;
    let path = format!("/v1/publish/tasks/{topic}");
    assert_eq!(server.post(&path, &[], "before").await.status(), 200);

    proxy.cut();
    server
        .wait_readyz(
            Duration::from_secs(30),
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
        )
        .await
        .expect("readyz reports the outage");
    let response = server.post(&path, &[], "during").await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(response, 503).await;

    proxy.restore();
    server.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(server.post(&path, &[], "after").await.status(), 200);
    let got: Vec<Vec<u8>> = amqp_read(&mut consumer, 2)
        .await
        .into_iter()
        .map(|d| d.data)
        .collect();
    assert_eq!(got, vec![b"before".to_vec(), b"after".to_vec()]);
}

//! AMQP over TLS and mutual TLS: a TLS-terminating proxy inside the test serves certificates the
//! test generates and forwards to the machine's RabbitMQ, whose own config stays untouched.
//! Publishing and consuming work with the right CA and client certificate, and a sidecar that
//! cannot complete the handshake reports why instead of publishing.


use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::common::brokers::{amqp_channel, amqp_consumer, amqp_read, amqp_url};
use crate::common::receiver::Receiver;
use crate::common::tls::{assert_ready, assert_refused, assert_startup_fails, broker_config, TestPki};
use crate::common::tls_proxy::TlsProxy;
use crate::common::{unique_topic, TestServer};
use serde_json::json;

const PAYLOAD: &[u8] = b"\x00\xffpaid over AMQPS\r\n";
const WAIT: Duration = Duration::from_secs(30);

/// RabbitMQ's plain AMQP address, from [`amqp_url`].
async fn rabbitmq_addr() -> SocketAddr {
    let url = amqp_url();
    let host_port = url
        .split_once("://")
        .and_then(|(_, rest)| {
            rest.rsplit_once('@')
                .map_or(rest, |(_, r)| r)
                .split('/')
                .next()
        })
        .unwrap_or_else(|| panic!("no host in {url}"));
    let host_port = if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:5672")
    };
    let mut addrs = tokio::net::lookup_host(&host_port).await.unwrap();
    addrs.next().unwrap()
}

/// [`amqp_url`] with the scheme `amqps` and the host and port of `proxy`.
fn amqps_url(proxy: &TlsProxy) -> String {
    let url = amqp_url();
    let rest = url.split_once("://").unwrap().1;
    let (credentials, rest) = rest.rsplit_once('@').unwrap_or(("", rest));
    let vhost = rest.split_once('/').map_or("", |(_, v)| v);
    let at = if credentials.is_empty() { "" } else { "@" };
    format!("amqps://{credentials}{at}{}/{vhost}", proxy.addr)
}

/// Starts RabbitMQ's TLS proxy (checking RabbitMQ is there first).
async fn proxy(pki: &TestPki, require_client_cert: bool) -> TlsProxy {
    amqp_channel().await;
    TlsProxy::start(pki, require_client_cert, rabbitmq_addr().await).await
}

/// A sidecar config with one AMQP broker `tasks` at `url` (see [`broker_config`]).
fn config(url: &str, ca: &Path, client: Option<&TestPki>) -> String {
    broker_config("tasks", "amqp", url, ca, client)
}

/// Publishes `PAYLOAD` through `server` and reads it back with a native consumer on a plain
/// connection straight to RabbitMQ.
async fn publish_and_read_back(server: &TestServer) {
    let topic = unique_topic("amqps.tasks");
    let channel = amqp_channel().await;
    let mut consumer = amqp_consumer(&channel, &topic).await;
    let response = server
        .post(
            &format!("/v1/publish/tasks/{topic}"),
            &[
                ("content-type", "application/octet-stream"),
                ("ce-id", "over-tls-1"),
            ],
            PAYLOAD,
        )
        .await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let delivery = amqp_read(&mut consumer, 1).await.remove(0);
    assert_eq!(delivery.data, PAYLOAD);
    assert_eq!(
        delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some("over-tls-1")
    );
}

#[tokio::test]
async fn publishes_and_consumes_over_tls_with_the_configured_ca() {
    let pki = TestPki::generate("amqps");
    let proxy = proxy(&pki, false).await;
    let server = TestServer::start(&config(&amqps_url(&proxy), &pki.ca(), None)).await;
    assert_ready(&server).await;
    publish_and_read_back(&server).await;

    let topic = unique_topic("amqps.hook");
    let receiver = Receiver::start().await;
    server
        .subscribe(
            "over-tls",
            json!({"broker": "tasks", "topic": topic, "endpoint": receiver.url}),
        )
        .await;
    // Unroutable (502) until the subscription's queue, declared over TLS, is bound.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let response = server
            .post(
                &format!("/v1/publish/tasks/{topic}"),
                &[("ce-id", "hooked-1")],
                PAYLOAD,
            )
            .await;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 502, "{:?}", response.text().await);
        assert!(tokio::time::Instant::now() < deadline, "queue never bound");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = receiver.wait_until(WAIT, |r| !r.is_empty()).await;
    assert_eq!(received[0].header("ce-id").as_deref(), Some("hooked-1"));
    assert_eq!(&received[0].body[..], PAYLOAD);
    let status = server.get_json("/v1/subscriptions/over-tls").await;
    assert_eq!(status["status"]["state"], "running", "{status}");
    assert!(proxy.refused().is_empty(), "{:?}", proxy.refused());
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = TestPki::generate("amqps-mtls");
    let proxy = proxy(&pki, true).await;
    let url = amqps_url(&proxy);

    let with_cert = TestServer::start(&config(&url, &pki.ca(), Some(&pki))).await;
    assert_ready(&with_cert).await;
    publish_and_read_back(&with_cert).await;
    assert!(proxy.refused().is_empty(), "{:?}", proxy.refused());

    let without_cert = TestServer::start_unready(&config(&url, &pki.ca(), None)).await;
    assert_refused(&without_cert, "tasks", &["CertificateRequired"]).await;
    assert!(
        proxy
            .refused()
            .iter()
            .any(|e| e.contains("peer sent no certificates")),
        "{:?}",
        proxy.refused()
    );
}

#[tokio::test]
async fn certificates_from_another_ca_are_refused() {
    let pki = TestPki::generate("amqps-right");
    let other = TestPki::generate("amqps-other");
    let proxy = proxy(&pki, true).await;
    let url = amqps_url(&proxy);

    let wrong_ca = TestServer::start_unready(&config(&url, &other.ca(), Some(&pki))).await;
    assert_refused(
        &wrong_ca,
        "tasks",
        &["invalid peer certificate: UnknownIssuer"],
    )
    .await;

    let foreign_client = TestServer::start_unready(&config(&url, &pki.ca(), Some(&other))).await;
    assert_refused(&foreign_client, "tasks", &["BadCertificate", "UnknownCA"]).await;
}

#[tokio::test]
async fn an_amqps_url_never_falls_back_to_plain_amqp() {
    let pki = TestPki::generate("amqps-plain");
    amqp_channel().await;
    let plain_port = format!("amqps://guest:guest@{}/%2f", rabbitmq_addr().await);
    let server = TestServer::start_unready(&config(&plain_port, &pki.ca(), None)).await;
    assert_refused(&server, "tasks", &["IO error: received corrupt message"]).await;
}

fn validation_error(toml: &str) -> String {
    sidebus::RawConfig::from_toml(toml)
        .expect("parses")
        .validate()
        .expect_err("the config is refused")
        .to_string()
}

#[test]
fn a_client_certificate_without_its_key_is_rejected_naming_the_key() {
    let toml = config(
        "amqps://guest:guest@127.0.0.1:5671/%2f",
        Path::new("/etc/sidebus/ca.pem"),
        None,
    ) + "tls_cert_file = \"/etc/sidebus/client.pem\"\n";
    let err = validation_error(&toml);
    assert!(err.contains("brokers.tasks.tls_key_file"), "{err}");
}

#[test]
fn tls_files_with_a_plain_amqp_url_are_rejected() {
    let toml = config(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        Path::new("/etc/sidebus/ca.pem"),
        None,
    );
    let err = validation_error(&toml);
    assert!(err.contains("brokers.tasks.tls_ca_file"), "{err}");
    assert!(err.contains("needs an amqps:// url"), "{err}");
}

#[tokio::test]
async fn unusable_tls_files_stop_startup_naming_the_setting() {
    let pki = TestPki::generate("amqps-files");
    let missing = pki.ca().with_file_name("missing.pem");
    let url = "amqps://guest:guest@127.0.0.1:5671/%2f";
    let cases = [
        (
            config(url, &missing, None),
            format!("tls_ca_file {}: I/O error", missing.display()),
        ),
        (
            config(url, &pki.ca(), None)
                + &format!(
                    "tls_cert_file = {:?}\ntls_key_file = {:?}\n",
                    pki.client_cert(),
                    pki.client_cert()
                ),
            format!(
                "tls_key_file {}: holds no PEM private key",
                pki.client_cert().display()
            ),
        ),
    ];
    assert_startup_fails(cases.into(), "tasks").await;
}

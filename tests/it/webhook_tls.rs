//! Webhook deliveries to `https://` endpoints, through a TLS-terminating proxy in front of a real
//! receiver. The endpoint's certificate is checked against the system trust store, which this
//! test process points at its own CA with `SSL_CERT_FILE` (read by the native TLS library); a
//! certificate from any other CA is a connection failure that is retried, never a delivery.


use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::receiver::Receiver;
use crate::common::tls::TestPki;
use crate::common::tls_proxy::TlsProxy;
use crate::common::TestServer;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// The CA this process trusts; set before any webhook client of the process is built.
fn trusted() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        let pki = TestPki::generate("webhook-trusted");
        std::env::set_var("SSL_CERT_FILE", pki.ca());
        pki
    })
}

async fn sidecar() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "state_dir = \"{}\"\n[brokers.mem]\nkind = \"memory\"\n",
        dir.path().display()
    );
    (TestServer::start(&toml).await, dir)
}

/// A receiver behind a TLS proxy serving `pki`'s certificate (SANs 127.0.0.1 and localhost).
async fn tls_receiver(pki: &TestPki) -> (Receiver, TlsProxy) {
    let receiver = Receiver::start().await;
    let plain: SocketAddr = receiver
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/events")
        .parse()
        .unwrap();
    let proxy = TlsProxy::start(pki, false, plain).await;
    (receiver, proxy)
}

async fn publish(server: &TestServer, topic: &str, id: &str, body: &str) {
    let r = server
        .post(
            &format!("/v1/publish/mem/{topic}"),
            &[("ce-id", id), ("content-type", "text/plain")],
            body.to_string(),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn delivers_to_an_https_endpoint_whose_certificate_the_system_trusts() {
    let pki = trusted();
    let (receiver, proxy) = tls_receiver(pki).await;
    let (server, _dir) = sidecar().await;
    server
        .subscribe(
            "tls-trusted",
            json!({"broker": "mem", "topic": "secure", "start": "earliest",
                   "endpoint": format!("https://localhost:{}/events", proxy.addr.port())}),
        )
        .await;
    publish(&server, "secure", "tls-1", "over tls").await;
    let got = receiver.wait_until(WAIT, |r| !r.is_empty()).await;
    assert_eq!(&got[0].body[..], b"over tls");
    assert_eq!(got[0].header("ce-id").as_deref(), Some("tls-1"));
    assert_eq!(got[0].header("content-type").as_deref(), Some("text/plain"));
    assert!(proxy.refused().is_empty(), "{:?}", proxy.refused());
    server.stop().await;
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_is_never_delivered_to() {
    trusted();
    let stranger = TestPki::generate("webhook-stranger");
    let (receiver, proxy) = tls_receiver(&stranger).await;
    let (server, _dir) = sidecar().await;
    server
        .subscribe(
            "tls-untrusted",
            json!({"broker": "mem", "topic": "insecure", "start": "earliest",
                   "endpoint": format!("https://127.0.0.1:{}/events", proxy.addr.port()),
                   "retry": {"max_attempts": 2, "initial_backoff": "10ms", "max_backoff": "10ms"}}),
        )
        .await;
    publish(&server, "insecure", "tls-2", "must not arrive").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let status: Value = loop {
        let view = server.get_json("/v1/subscriptions/tls-untrusted").await;
        if view["status"]["failed"].as_u64() == Some(1) {
            break view["status"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event was not given up on: {view}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot connect to the endpoint") && error.contains("certificate"),
        "{status}"
    );
    assert_eq!(status["retried"], 1, "{status}");
    assert!(receiver.received().is_empty());
    assert!(
        !proxy.refused().is_empty(),
        "the proxy saw no refused handshake"
    );
    server.stop().await;
}

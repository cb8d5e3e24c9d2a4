//! Certificates made for one test: a CA, a server certificate for `127.0.0.1` and `localhost`
//! and a client certificate for mutual TLS, all signed by that CA and written as PEM files; and
//! the checks of a sidecar whose broker is (or cannot be) reached over TLS.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{assert_problem, unique_topic, TestServer};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A private certificate authority and the certificates it issued, in a temporary directory.
pub struct TestPki {
    dir: tempfile::TempDir,
}

impl TestPki {
    /// Generates a fresh CA named `name` with a server and a client certificate.
    pub fn generate(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name
            .push(DnType::CommonName, format!("sidebus test CA {name}"));
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        write(dir.path(), "ca.pem", &ca_cert.pem());

        let leaf = |sans: &[&str], common_name: &str, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            let mut params =
                CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            params.use_authority_key_identifier_extension = true;
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (cert, key) = leaf(
            &["127.0.0.1", "localhost"],
            "nats-server",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        write(dir.path(), "server.pem", &cert);
        write(dir.path(), "server-key.pem", &key);
        let (cert, key) = leaf(&[], "sidebus", ExtendedKeyUsagePurpose::ClientAuth);
        write(dir.path(), "client.pem", &cert);
        write(dir.path(), "client-key.pem", &key);
        Self { dir }
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate (SANs `127.0.0.1` and `localhost`).
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server's private key (PKCS#8 PEM).
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server-key.pem")
    }

    /// The client certificate for mutual TLS.
    pub fn client_cert(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    /// The client's private key (PKCS#8 PEM).
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client-key.pem")
    }

    /// A nats-server `tls { }` block serving the server certificate; with `verify` the server
    /// also demands a client certificate signed by this CA.
    pub fn nats_tls_block(&self, verify: bool) -> String {
        format!(
            "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: {verify}\n  timeout: 5\n}}\n",
            self.server_cert(),
            self.server_key(),
            self.ca(),
        )
    }
}

fn write(dir: &Path, file: &str, pem: &str) {
    std::fs::write(dir.join(file), pem).unwrap();
}

/// A sidecar config with one broker `name` of `kind` at `url`, trusting `ca` and presenting the
/// client certificate of `client` when given.
pub fn broker_config(
    name: &str,
    kind: &str,
    url: &str,
    ca: &Path,
    client: Option<&TestPki>,
) -> String {
    let mut toml = format!(
        "source = \"sidebus://test\"\n[pipeline]\nack_timeout = \"5s\"\n[brokers.{name}]\n\
         kind = \"{kind}\"\nurl = \"{url}\"\ntls_ca_file = {ca:?}\n"
    );
    if let Some(pki) = client {
        toml.push_str(&format!(
            "tls_cert_file = {:?}\ntls_key_file = {:?}\n",
            pki.client_cert(),
            pki.client_key()
        ));
    }
    toml
}

/// Asserts `/readyz` is 200 "ready" with the (only) broker connected.
pub async fn assert_ready(server: &TestServer) {
    let response = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["brokers"][0]["connected"], true, "{body}");
}

/// Waits until `server` has recorded why it cannot connect to its only broker, `broker`, then
/// checks that `/readyz` and a publish both answer 503 problem+json carrying that reason, which
/// must contain one of `expected`.
pub async fn assert_refused(server: &TestServer, broker: &str, expected: &[&str]) {
    let says = |text: &str| expected.iter().any(|e| text.contains(e));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let reason = loop {
        let brokers = server.get_json("/v1/brokers").await;
        let status = &brokers["brokers"][0];
        assert_eq!(status["connected"], false, "{brokers}");
        if let Some(error) = status["last_error"].as_str() {
            break error.to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no connection error recorded: {brokers}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        says(&reason),
        "the recorded error `{reason}` says none of {expected:?}"
    );

    let readyz = server.http.get(server.url("/readyz")).send().await.unwrap();
    let problem = assert_problem(readyz, 503).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(says(detail), "readyz: {problem}");

    let response = server
        .post(
            &format!("/v1/publish/{broker}/{}", unique_topic("tls.refused")),
            &[],
            "refused",
        )
        .await;
    let problem = assert_problem(response, 503).await;
    assert_eq!(problem["type"], "urn:sidebus:problem:broker-unavailable");
    let detail = problem["detail"].as_str().unwrap();
    assert!(says(detail), "publish: {problem}");
}

/// Builds sidebus from each `(config, expected)` case and checks that startup fails with a
/// message holding `expected` and naming broker `broker`.
pub async fn assert_startup_fails(cases: Vec<(String, String)>, broker: &str) {
    for (toml, expected) in cases {
        let config = sidebus::RawConfig::from_toml(&toml)
            .unwrap()
            .validate()
            .unwrap();
        let err = match sidebus::AppState::build(config).await {
            Ok(_) => panic!("started with unusable TLS files:\n{toml}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(&expected), "{err}");
        assert!(err.contains(&format!("broker `{broker}`")), "{err}");
    }
}

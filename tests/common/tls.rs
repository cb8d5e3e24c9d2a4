//! Certificates made for one test: a CA, a server certificate for `127.0.0.1` and `localhost`
//! and a client certificate for mutual TLS, all signed by that CA and written as PEM files.

use std::path::{Path, PathBuf};

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

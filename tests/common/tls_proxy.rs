//! A TLS-terminating proxy inside the test: serves a [`TestPki`] server certificate on a free
//! loopback port, optionally demands a client certificate signed by that CA, and forwards the
//! decrypted stream to a plain-TCP broker, so TLS is tested without touching the broker's config.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::tls::TestPki;

/// Terminates TLS on `addr` and forwards to a target while the test runs.
pub struct TlsProxy {
    /// Where clients connect (127.0.0.1).
    pub addr: SocketAddr,
    refused: Arc<Mutex<Vec<String>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    /// Starts serving `pki`'s server certificate and forwarding to `target`; with
    /// `require_client_cert`, a client must present a certificate signed by `pki`'s CA.
    pub async fn start(pki: &TestPki, require_client_cert: bool, target: SocketAddr) -> Self {
        let provider = Arc::new(ring::default_provider());
        let acceptor =
            TlsAcceptor::from(Arc::new(server_config(pki, require_client_cert, provider)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = Arc::new(Mutex::new(Vec::new()));
        let handshakes = refused.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let handshakes = handshakes.clone();
                tokio::spawn(async move {
                    let mut client = match acceptor.accept(client).await {
                        Ok(client) => client,
                        Err(e) => {
                            handshakes.lock().unwrap().push(e.to_string());
                            return;
                        }
                    };
                    let Ok(mut upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        Self {
            addr,
            refused,
            accepting,
        }
    }

    /// Why the proxy refused the handshakes it refused so far.
    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

fn server_config(
    pki: &TestPki,
    require_client_cert: bool,
    provider: Arc<CryptoProvider>,
) -> ServerConfig {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki.server_cert())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.server_key()).unwrap();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if require_client_cert {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(pki.ca()).unwrap())
            .unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder.with_single_cert(chain, key).unwrap()
}

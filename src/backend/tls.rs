//! The PEM files of a broker's TLS settings (`tls_ca_file`, `tls_cert_file`, `tls_key_file`),
//! shared by the brokers that have them.

use std::path::Path;

use rustls_pki_types::pem::{Error as PemError, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use crate::config::TlsFiles;

/// Reading a broker's TLS files at startup.
pub trait CheckFiles {
    /// Fails startup when a configured file cannot be read or holds no PEM certificate or key,
    /// naming the setting; otherwise the client would retry forever on an error without the
    /// path.
    fn check(&self) -> Result<(), String>;
}

impl CheckFiles for TlsFiles {
    fn check(&self) -> Result<(), String> {
        for (setting, path) in [("tls_ca_file", &self.ca), ("tls_cert_file", &self.cert)] {
            if let Some(path) = path {
                let found = CertificateDer::from_pem_file(path).map(drop);
                pem_found(setting, path, "certificate", found)?;
            }
        }
        if let Some(path) = &self.key {
            let found = PrivateKeyDer::from_pem_file(path).map(drop);
            pem_found("tls_key_file", path, "private key", found)?;
        }
        Ok(())
    }
}

fn pem_found(
    setting: &str,
    path: &Path,
    what: &str,
    found: Result<(), PemError>,
) -> Result<(), String> {
    found.map_err(|e| match e {
        PemError::NoItemsFound => format!("{setting} {}: holds no PEM {what}", path.display()),
        e => format!("{setting} {}: {e}", path.display()),
    })
}

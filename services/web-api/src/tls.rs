//! TLS for the HTTPS listener: loading the certificate chain and key named in
//! the configuration into a rustls server configuration, and writing a
//! self-signed pair for labs (`web-api gen-cert`).
//!
//! Holds no socket code; [`crate::server`] wraps accepted connections.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// Why TLS material could not be loaded or written.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{path}: cannot read certificate chain: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("{path}: no certificate in file (expected PEM `BEGIN CERTIFICATE`)")]
    NoCert { path: PathBuf },
    #[error("{path}: cannot read private key: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("certificate {cert} and key {key} do not form a usable pair: {source}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Loads `cert` (chain, leaf first) and `key` into a server configuration
/// offering HTTP/1.1 by ALPN.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = load_certs(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Pair {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|source| TlsError::Pair {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Cert {
            path: path.to_owned(),
            reason: e.to_string(),
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Cert {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// Writes a self-signed certificate for `names` (DNS names or IP addresses)
/// to `cert` and its private key to `key` (mode 0600).
pub fn generate_self_signed(names: &[String], cert: &Path, key: &Path) -> Result<(), TlsError> {
    let ck = rcgen::generate_simple_self_signed(names.to_vec())?;
    write_file(cert, ck.cert.pem().as_bytes(), 0o644)?;
    write_file(key, ck.key_pair.serialize_pem().as_bytes(), 0o600)?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_pair_loads_and_key_is_private() {
        let dir = std::env::temp_dir().join(format!("web-api-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k) = (dir.join("c.pem"), dir.join("k.pem"));
        generate_self_signed(&["localhost".into(), "127.0.0.1".into()], &c, &k).unwrap();
        assert!(server_config(&c, &k).is_ok());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&k).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Key and certificate swapped: a clear error naming the key file.
        let e = server_config(&k, &c).unwrap_err().to_string();
        assert!(e.contains("c.pem") || e.contains("k.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

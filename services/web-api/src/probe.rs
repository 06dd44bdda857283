//! `web-api probe`: a health check of a running web-api for the supervisor's
//! command probes and operators, with health-style exit codes (0 OK,
//! 2 CRITICAL, 3 UNKNOWN; there is no WARNING state).
//!
//! Connects to the configured listen address (loopback when it is a
//! wildcard), pins the server to the certificate named in the configuration
//! (the probe runs on the node itself, where the name in a self-signed or
//! CA-issued certificate need not match the address it connects to), and asks
//! `GET /health`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// 0 OK, 2 CRITICAL, 3 UNKNOWN.
    pub code: u8,
    pub detail: String,
}

impl Verdict {
    pub fn word(&self) -> &'static str {
        match self.code {
            0 => "OK",
            1 => "WARNING",
            2 => "CRITICAL",
            _ => "UNKNOWN",
        }
    }
}

/// Accepts exactly one certificate (byte for byte), still checking the
/// handshake signatures with it.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "server certificate differs from the configured tls.cert".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The address to probe for a listen address (wildcards mean loopback).
pub fn target(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Probes `GET /health` at `addr`, trusting only `cert`.
pub async fn probe(addr: SocketAddr, cert: CertificateDer<'static>, timeout: Duration) -> Verdict {
    match tokio::time::timeout(timeout, ask(addr, cert)).await {
        Ok(Ok((200, _))) => Verdict {
            code: 0,
            detail: format!("https://{addr}/health: database up"),
        },
        Ok(Ok((status, body))) => Verdict {
            code: 2,
            detail: format!("https://{addr}/health answered {status}: {body}"),
        },
        Ok(Err(e)) => Verdict {
            code: 2,
            detail: format!("https://{addr}/health: {e}"),
        },
        Err(_) => Verdict {
            code: 2,
            detail: format!(
                "https://{addr}/health: no answer within {} ms",
                timeout.as_millis()
            ),
        },
    }
}

async fn ask(addr: SocketAddr, cert: CertificateDer<'static>) -> Result<(u16, String), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { cert, provider }))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .uri("/health")
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_is_probed_on_loopback() {
        let t = |s: &str| target(s.parse().unwrap_or_else(|_| SocketAddr::from(([0; 4], 0))));
        assert_eq!(t("0.0.0.0:443"), SocketAddr::from(([127, 0, 0, 1], 443)));
        assert_eq!(t("[::]:443").ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            t("198.51.100.150:443"),
            SocketAddr::from(([198, 51, 100, 150], 443))
        );
    }
}

//! TLS on the front side: a rustls client (certificate generated in the test
//! with rcgen) talks SIP over TLS to sip-lb, which relays over UDP to a sipp
//! proxy stand-in and returns the answers over the same TLS connection.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

fn read_response(tls: &mut impl Read) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            return head;
        }
        let n = tls.read(&mut chunk).expect("TLS read");
        assert!(n > 0, "connection closed before a response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn sip_over_tls_is_relayed_to_udp_proxy_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let be = Backend::start(dir.path(), "127.0.0.2");
    let mut opts = LbOpts::new(vec![be.addr]);
    opts.tls = Some((cert, key));
    let lb = Lb::start(opts);
    let tls_addr = lb.tls.unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let sock = TcpStream::connect(tls_addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);

    let opt = format!(
        "OPTIONS sip:service@{tls_addr};transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS {local};branch=z9hG4bKtls1\r\nMax-Forwards: 70\r\n\
         From: <sip:tls@127.0.0.1>;tag=x1\r\nTo: <sip:service@127.0.0.1>\r\n\
         Call-ID: tls-options-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(opt.as_bytes()).unwrap();
    let resp = read_response(&mut tls);
    assert!(resp.starts_with("SIP/2.0 200 OK\r\n"), "{resp}");
    assert!(
        resp.contains("SIPpOpt"),
        "answered by the backend, not the lb: {resp}"
    );
    assert!(
        resp.contains(&format!("Via: SIP/2.0/TLS {local};branch=z9hG4bKtls1;")),
        "{resp}"
    );

    let reg = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKtls2\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@flexvisor.test>;tag=r1\r\nTo: <sip:alice@flexvisor.test>\r\n\
         Call-ID: tls-register-1\r\nCSeq: 1 REGISTER\r\nContact: <sip:alice@{local};transport=tls>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    tls.write_all(reg.as_bytes()).unwrap();
    let resp = read_response(&mut tls);
    assert!(resp.starts_with("SIP/2.0 401 Unauthorized\r\n"), "{resp}");
    let msgs = std::fs::read_to_string(&be.messages).unwrap();
    let path = format!(
        "Path: <sip:{};lr;received=sip:{local}%3Btransport%3Dtls>",
        lb.internal
    );
    assert!(
        msgs.contains(&path),
        "Path with TLS received address:\n{msgs}"
    );
    assert!(lb.metric("sip_lb_rx_tls_total") >= 2);
}

//! The HTTPS listener: accepts TCP connections, completes the TLS handshake,
//! serves HTTP/1.1 on each with [`crate::api::serve`], and on shutdown stops
//! accepting, lets in-flight requests finish (closing idle keep-alive
//! connections at once) and gives up after the grace period.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::api::App;

/// A TLS handshake taking longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request head taking longer than this to arrive closes the connection.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds `addr` (with IP_FREEBIND when `freebind`, for a shared address this
/// node does not hold yet).
pub fn bind(addr: SocketAddr, freebind: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if freebind {
        if addr.is_ipv4() {
            sock.set_freebind_v4(true)?;
        } else {
            sock.set_freebind_v6(true)?;
        }
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    TcpListener::from_std(sock.into())
}

/// Serves until `shutdown` turns true, then drains for at most `grace`.
pub async fn run(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Arc<App>,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    eprintln!("web-api: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while conns.try_join_next().is_some() {}
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = Arc::clone(&app);
        let stop = shutdown.clone();
        conns.spawn(async move {
            let _permit = permit;
            connection(tcp, peer, acceptor, app, stop).await;
        });
    }
    // No new connections from here on.
    drop(listener);
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        eprintln!(
            "web-api: {} connections still busy after {} s; closing them",
            conns.len(),
            grace.as_secs()
        );
        conns.abort_all();
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(_)) | Err(_) => {
            app.metrics.tls_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    app.metrics.connections.fetch_add(1, Ordering::Relaxed);
    let svc_app = Arc::clone(&app);
    let svc = service_fn(move |req| {
        let app = Arc::clone(&svc_app);
        async move { Ok::<_, std::convert::Infallible>(crate::api::serve(app, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), svc);
    tokio::pin!(conn);
    let res = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            // Finish the request in progress, then close (idle ones close now).
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = res {
        if !e.is_incomplete_message() && !e.is_timeout() {
            eprintln!("web-api: connection from {peer}: {e}");
        }
    }
    app.metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

//! `cargo bench -p web-api [-- --concurrency N --seconds S]`: requests per
//! second and p50/p99 latency for GET subscriber and POST subscriber through
//! web-api (HTTPS, admin Basic auth, private MariaDB), side by side with
//! nginx serving a static file of similar size over HTTPS with the same
//! certificate, in the same run, as ratios.
//!
//! The load generator is in this process: a fixed number of clients, each
//! with one TLS keep-alive connection (hyper client over tokio-rustls,
//! verifying the server certificate) sending requests back to back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use sip_proxy::testbed::{find_binary, free_tcp_port, MariaDb, TempDir};

struct Proc {
    child: Child,
    name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_port(port: u16, p: &mut Proc, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(st)) = p.child.try_wait() {
            panic!(
                "{} exited ({st}): {}",
                p.name,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "{} not listening", p.name);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Clone)]
enum Work {
    Static,
    GetSubscriber(u64),
    PostSubscriber { customer: u64 },
}

struct Outcome {
    latencies_us: Vec<u32>,
    errors: u64,
    elapsed: Duration,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Option<Sender> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::IpAddress(addr.ip().into());
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

fn request(work: &Work, client: usize, n: u64, auth: &str) -> Request<Full<Bytes>> {
    let b = Request::builder()
        .header("host", "127.0.0.1")
        .header("authorization", auth);
    match work {
        Work::Static => b
            .uri("/subscriber.json")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        Work::GetSubscriber(id) => b
            .uri(format!("/api/v1/subscribers/{id}"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
        Work::PostSubscriber { customer } => b
            .method("POST")
            .uri("/api/v1/subscribers")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(format!(
                r#"{{"username": "b{client}n{n}", "domain": "example.com", "password": "bench-password", "customer_id": {customer}}}"#
            ))))
            .unwrap(),
    }
}

/// One workload: `work` against `addr` from `clients` connections.
struct Load {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    work: Work,
    clients: usize,
    warmup: Duration,
    secs: Duration,
    auth: String,
    /// Distinguishes usernames between workloads.
    round: u64,
}

/// Runs the load for `warmup` (not counted) then `secs`.
async fn load(l: Load) -> Outcome {
    let Load {
        addr,
        tls,
        work,
        clients,
        warmup,
        secs,
        auth,
        round,
    } = l;
    let start = Instant::now() + warmup;
    let end = start + secs;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (tls, work, auth) = (Arc::clone(&tls), work.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut sender = None;
            let mut n = round * 10_000_000;
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                if sender.is_none() {
                    sender = connect(addr, Arc::clone(&tls)).await;
                    if sender.is_none() {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
                let Some(s) = sender.as_mut() else { continue };
                n += 1;
                let t0 = Instant::now();
                let ok = match s.ready().await {
                    Ok(()) => match s.send_request(request(&work, c, n, &auth)).await {
                        Ok(resp) => {
                            let good = resp.status().is_success();
                            good && resp.into_body().collect().await.is_ok()
                        }
                        Err(_) => false,
                    },
                    Err(_) => false,
                };
                if !ok {
                    sender = None;
                }
                if t0 >= start {
                    if ok {
                        let us = t0.elapsed().as_micros();
                        lat.push(u32::try_from(us).unwrap_or(u32::MAX));
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut out = Outcome {
        latencies_us: Vec::new(),
        errors: 0,
        elapsed: secs,
    };
    for t in tasks {
        let (lat, e) = t.await.unwrap();
        out.latencies_us.extend(lat);
        out.errors += e;
    }
    out.latencies_us.sort_unstable();
    out
}

fn pct(v: &[u32], p: usize) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    f64::from(v[(v.len() * p / 100).min(v.len() - 1)]) / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let clients = arg("--concurrency", 16) as usize;
    let secs = Duration::from_secs(arg("--seconds", 5));
    let warmup = Duration::from_secs(1);

    let dir = TempDir::new("web-api-bench").unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    web_api::tls::generate_self_signed(&["127.0.0.1".into()], &cert, &key).unwrap();
    let db = MariaDb::start().unwrap_or_else(|e| panic!("starting MariaDB: {e}"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // Schema, admin (default PBKDF2 cost), domain, customer, one subscriber.
    let (customer, sub_id) = rt.block_on(async {
        let st = web_api::store::Store::connect(&db.url("flexvisor"), 2)
            .await
            .unwrap();
        st.apply_schema().await.unwrap();
        let hash = web_api::secrets::hash_admin_password(
            "bench-admin-pw",
            web_api::secrets::DEFAULT_ITERATIONS,
        );
        st.add_admin("bench", &hash).await.unwrap();
        st.create_domain(&web_api::model::DomainInput {
            name: "example.com".into(),
        })
        .await
        .unwrap();
        let c = st
            .create_customer(&web_api::model::CustomerInput {
                id: None,
                name: "bench".into(),
                max_concurrent_calls: None,
            })
            .await
            .unwrap();
        let s = st
            .create_subscriber(&web_api::model::SubscriberInput {
                username: "alice".into(),
                domain: "example.com".into(),
                password: Some("alice-password".into()),
                customer_id: c.id,
                max_concurrent_calls: Some(2),
            })
            .await
            .unwrap();
        (c.id, s.id)
    });

    // web-api.
    let api_port = free_tcp_port("127.0.0.1").unwrap();
    let cfg = dir.path().join("web-api.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{api_port}\"\ndatabase_url = \"{}\"\nworkers = 2\n\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            db.url("flexvisor"),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let api_log = dir.path().join("web-api.log");
    let mut api = Proc {
        child: Command::new(env!("CARGO_BIN_EXE_web-api"))
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&api_log).unwrap())
            .spawn()
            .unwrap(),
        name: "web-api",
    };
    wait_port(api_port, &mut api, &api_log);

    // nginx with the same certificate, two workers (web-api: two threads).
    let nginx = find_binary("nginx", "nginx-light");
    let mut anchor = None;
    let nginx_port = free_tcp_port("127.0.0.1").unwrap();
    match &nginx {
        Ok(bin) => {
            let www = dir.path().join("www");
            std::fs::create_dir_all(&www).unwrap();
            std::fs::write(
                www.join("subscriber.json"),
                format!(
                    r#"{{"id":{sub_id},"username":"alice","domain":"example.com","customer_id":{customer},"max_concurrent_calls":2}}"#
                ),
            )
            .unwrap();
            let tmp = dir.path().join("nginx-tmp");
            std::fs::create_dir_all(&tmp).unwrap();
            let conf = dir.path().join("nginx.conf");
            let d = dir.path().display();
            std::fs::write(
                &conf,
                format!(
                    "worker_processes 2;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx.err;\n\
                     events {{ worker_connections 1024; }}\n\
                     http {{\n access_log off;\n keepalive_requests 10000000;\n\
                     client_body_temp_path {t}/body;\n proxy_temp_path {t}/proxy;\n\
                     server {{\n  listen 127.0.0.1:{nginx_port} ssl;\n  ssl_certificate {c};\n  ssl_certificate_key {k};\n\
                       root {w};\n  default_type application/json;\n }}\n}}\n",
                    t = tmp.display(),
                    c = cert.display(),
                    k = key.display(),
                    w = www.display()
                ),
            )
            .unwrap();
            let nlog = dir.path().join("nginx.err");
            let mut p = Proc {
                child: Command::new(bin)
                    .arg("-c")
                    .arg(&conf)
                    .arg("-e")
                    .arg(&nlog)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
                name: "nginx",
            };
            wait_port(nginx_port, &mut p, &nlog);
            anchor = Some(p);
        }
        Err(e) => println!("nginx anchor not run: {e}"),
    }

    let mut roots = rustls::RootCertStore::empty();
    for c in web_api::tls::load_certs(&cert).unwrap() {
        roots.add(c).unwrap();
    }
    let tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    use base64::Engine as _;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bench:bench-admin-pw")
    );
    let api_addr: SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    let nginx_addr: SocketAddr = format!("127.0.0.1:{nginx_port}").parse().unwrap();

    let mut rows = Vec::new();
    let runs: Vec<(&str, SocketAddr, Work)> = {
        let mut v = Vec::new();
        if anchor.is_some() {
            v.push(("nginx static file (HTTPS)", nginx_addr, Work::Static));
        }
        v.push((
            "web-api GET subscriber",
            api_addr,
            Work::GetSubscriber(sub_id),
        ));
        v.push((
            "web-api POST subscriber",
            api_addr,
            Work::PostSubscriber { customer },
        ));
        v
    };
    for (round, (name, addr, work)) in runs.into_iter().enumerate() {
        let o = rt.block_on(load(Load {
            addr,
            tls: Arc::clone(&tls),
            work,
            clients,
            warmup,
            secs,
            auth: auth.clone(),
            round: round as u64,
        }));
        let rps = o.latencies_us.len() as f64 / o.elapsed.as_secs_f64();
        rows.push((
            name,
            rps,
            pct(&o.latencies_us, 50),
            pct(&o.latencies_us, 99),
            o.errors,
        ));
    }
    let base = anchor.as_ref().map(|_| rows[0].1);
    println!(
        "\nweb-api bench: {clients} clients, one TLS keep-alive connection each, {} s per workload after 1 s warm-up;\n\
         load generator in the same process; {} CPUs on this machine (shared)\n",
        secs.as_secs(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!(
        "{:<28} {:>11} {:>9} {:>9} {:>7} {:>15}",
        "workload", "requests/s", "p50 ms", "p99 ms", "errors", "ratio to nginx"
    );
    for (name, rps, p50, p99, errors) in &rows {
        let ratio = base
            .map(|b| format!("{:.2}", rps / b))
            .unwrap_or_else(|| "n/a".into());
        println!("{name:<28} {rps:>11.0} {p50:>9.2} {p99:>9.2} {errors:>7} {ratio:>15}");
    }
    if anchor.is_none() {
        println!("(no nginx: install Debian package nginx-light for the anchor)");
    }
    drop(anchor);
    drop(api);
}

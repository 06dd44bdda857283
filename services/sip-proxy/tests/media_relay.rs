//! End to end with media: sip-proxy configured with `[media_relay]`, the
//! media-relay binary, and two sipp phones. Bob registers and answers with
//! `-rtp_echo`; alice calls, plays G.711 RTP from a pcap to the address in
//! the 200's SDP, then hangs up. The relay must have rewritten both SDPs
//! (media counters on both legs > 0: alice's RTP in, bob's echo back), and
//! after the BYE the call must be gone from the relay with its ports free.
#![allow(clippy::unwrap_used)]

mod common;

use common::{free_port, scenario, sipp_register, wait_for, Backends, ProxyProc, Sub, Vars};
use media_relay::bencode::{dict, Value};
use media_relay::client::Client;
use sip_proxy::spool::EventKind;
use sip_proxy::testbed::{find_binary, free_udp_port, TempDir};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PCAP: &str = "/usr/share/sip-tester/g711a.pcap";

/// The media-relay binary of this workspace (built when missing).
fn media_relay_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("media-relay");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "-p", "media-relay", "--bin", "media-relay"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build -p media-relay");
        assert!(st.success(), "cargo build -p media-relay failed");
    }
    bin
}

struct Relay {
    child: Child,
    control: std::net::SocketAddr,
    dir: TempDir,
}

impl Relay {
    fn start() -> Relay {
        let dir = TempDir::new("media-relay-for-proxy").unwrap();
        let control: std::net::SocketAddr =
            format!("127.0.0.1:{}", free_udp_port("127.0.0.1").unwrap())
                .parse()
                .unwrap();
        let min = 36000 + (std::process::id() % 200) as u16 * 20;
        let cfg = dir.path().join("relay.toml");
        std::fs::write(
            &cfg,
            format!(
                "control = \"{control}\"\naddress = \"127.0.0.1\"\nport_min = {min}\nport_max = {}\n",
                min + 19
            ),
        )
        .unwrap();
        let sock = dir.path().join("notify");
        let notify = UnixDatagram::bind(&sock).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let log = std::fs::File::create(dir.path().join("relay.log")).unwrap();
        let child = Command::new(media_relay_binary())
            .arg("--config")
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &sock)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning media-relay");
        let mut buf = [0u8; 32];
        let n = notify
            .recv(&mut buf)
            .expect("media-relay never became ready");
        assert!(buf[..n].starts_with(b"READY=1"));
        Relay {
            child,
            control,
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.log")).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// sipp with extra media options (-mp, -rtp_echo), killed on drop.
struct MediaSipp {
    child: Option<Child>,
    dir: TempDir,
    name: String,
}

impl MediaSipp {
    fn start(
        name: &str,
        xml: &str,
        port: u16,
        media_port: u16,
        target: Option<std::net::SocketAddr>,
        echo: bool,
    ) -> MediaSipp {
        let bin = find_binary("sipp", "sip-tester").unwrap_or_else(|e| panic!("{e}"));
        let dir = TempDir::new(&format!("sipp-{name}")).unwrap();
        let sf = dir.path().join("scenario.xml");
        std::fs::write(&sf, xml).unwrap();
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .arg("-sf")
            .arg(&sf)
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &media_port.to_string()])
            .args(["-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error"])
            .args(["-trace_err", "-trace_msg"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if echo {
            cmd.arg("-rtp_echo");
        }
        if let Some(t) = target {
            cmd.arg(t.to_string());
        }
        MediaSipp {
            child: Some(cmd.spawn().expect("spawning sipp")),
            dir,
            name: name.into(),
        }
    }

    fn expect_success(mut self, context: impl FnOnce() -> String) {
        let mut child = self.child.take().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        let code = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break st.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut traces = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                traces.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        assert_eq!(
            code,
            Some(0),
            "sipp {} failed:\n{traces}\n{}",
            self.name,
            context()
        );
    }
}

impl Drop for MediaSipp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn stat(q: &Value, tag: &str, kind: usize) -> i64 {
    q.get("tags")
        .and_then(|t| t.get(tag))
        .and_then(|t| t.get("medias"))
        .and_then(Value::as_list)
        .and_then(|m| m.first())
        .and_then(|m| m.get("streams"))
        .and_then(Value::as_list)
        .and_then(|s| s.get(kind))
        .and_then(|s| s.get("stats"))
        .and_then(|s| s.get("packets"))
        .and_then(Value::as_int)
        .unwrap_or(0)
}

fn local_ports(q: &Value) -> Vec<u16> {
    let mut out = Vec::new();
    for t in q
        .get("tags")
        .and_then(Value::as_dict)
        .map(|d| d.values().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        for m in t.get("medias").and_then(Value::as_list).unwrap_or(&[]) {
            for s in m.get("streams").and_then(Value::as_list).unwrap_or(&[]) {
                if let Some(p) = s.get("local port").and_then(Value::as_int) {
                    out.push(p as u16);
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_media_flows_through_the_relay_and_its_ports_are_freed_after_bye() {
    assert!(
        std::path::Path::new(PCAP).exists(),
        "{PCAP} missing: install Debian package sip-tester"
    );
    let b = Backends::start(
        &[
            Sub::new("alice", "alicepw", 1, Some(2)),
            Sub::new("bob", "bobpw", 1, Some(2)),
        ],
        Some(5),
    )
    .await;
    let relay = Relay::start();
    let ng = Client::new(relay.control).await.unwrap();
    let proxy = ProxyProc::start(
        &b,
        &format!("[media_relay]\ncontrol = \"{}\"\n", relay.control),
    );
    let bob_port = free_port();
    let (bob_media, alice_media) = (free_port(), free_port());

    tokio::task::block_in_place(|| {
        sipp_register(&proxy, "bob", "bobpw", bob_port);
        let v = Vars {
            user: "bob",
            ..Vars::default()
        };
        let callee = MediaSipp::start(
            "bob-media",
            &scenario("uas_media.xml", &v),
            bob_port,
            bob_media,
            None,
            true,
        );
        let v = Vars {
            pause_ms: 4000,
            ..Vars::call("alice", "alicepw", "bob")
        };
        let xml = scenario("uac_media.xml", &v).replace("{pcap}", PCAP);
        let caller = MediaSipp::start(
            "alice-media",
            &xml,
            free_port(),
            alice_media,
            Some(proxy.addr),
            false,
        );

        let start = proxy.wait_for_event(EventKind::Start, 30, "accounting start event");
        let rt = tokio::runtime::Handle::current();
        // While the call is up: RTP from alice reached the relay's port for
        // her, bob's echo reached the relay's port for him.
        let q = wait_for(30, "RTP counted on both legs of the relay", || {
            let q = rt
                .block_on(ng.call(&dict([
                    ("command", Value::str("query")),
                    ("call-id", Value::str(&start.call_id)),
                ])))
                .ok()?;
            (stat(&q, &start.from_tag, 0) > 0 && stat(&q, &start.to_tag, 0) > 0).then_some(q)
        });
        let ports = local_ports(&q);
        assert_eq!(ports.len(), 4, "{q:?}");

        caller.expect_success(|| format!("{}\n{}", proxy.log(), relay.log()));
        callee.expect_success(|| format!("{}\n{}", proxy.log(), relay.log()));

        // BYE deleted the call: not listed, ports free again.
        wait_for(20, "the relay to drop the call after BYE", || {
            let l = rt
                .block_on(ng.call(&dict([("command", Value::str("list"))])))
                .ok()?;
            l.get("calls")
                .and_then(Value::as_list)
                .is_some_and(|c| c.is_empty())
                .then_some(())
        });
        for p in ports {
            wait_for(20, &format!("relay port {p} freed"), || {
                std::net::UdpSocket::bind(("127.0.0.1", p)).ok().map(|_| ())
            });
        }
    });
}

/// With the relay down, a call with SDP is refused (503) rather than set up
/// with media bypassing the relay, and its call counters are released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_down_refuses_the_call_with_503_and_releases_counters() {
    let b = Backends::start(
        &[
            Sub::new("alice", "alicepw", 1, Some(2)),
            Sub::new("bob", "bobpw", 1, Some(2)),
        ],
        Some(5),
    )
    .await;
    // Nothing listens on this control port.
    let dead = free_udp_port("127.0.0.1").unwrap();
    let proxy = ProxyProc::start(
        &b,
        &format!("[media_relay]\ncontrol = \"127.0.0.1:{dead}\"\ntimeout_ms = 100\n"),
    );
    let bob_port = free_port();
    tokio::task::block_in_place(|| {
        sipp_register(&proxy, "bob", "bobpw", bob_port);
        let v = Vars {
            expect: 503,
            ..Vars::call("alice", "alicepw", "bob")
        };
        common::Sipp::client(
            "alice-relay-down",
            "uac_fail_media.xml",
            &v,
            free_port(),
            proxy.addr,
        )
        .expect_success_or(|| proxy.log());
        assert!(proxy.log().contains("media relay offer"), "{}", proxy.log());
    });
    common::assert_counters_free(&b.calls().await, &["cc:sub:alice@example.com", "cc:cust:1"])
        .await;
}

//! The switch fabrics with plain unix datagram endpoints standing in for
//! NICs: learning, flooding, ports down, the uplink path between modules,
//! partitions, and the VRRP observation scenarios rely on.

#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use qemu_tests::fabric::Fabrics;

struct Host {
    sock: UnixDatagram,
    mac: [u8; 6],
}

impl Host {
    fn new(f: &Fabrics, label: &str, switch: &str, port: &str, owner: &str, last: u8) -> Host {
        let path = f.endpoint_path(label).expect("path");
        let sock = UnixDatagram::bind(&path).expect("bind");
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        f.add_port(switch, port, Some(owner), &path).expect("port");
        sock.connect(f.switch_path(switch).expect("switch"))
            .expect("connect");
        Host {
            sock,
            mac: [0x52, 0x54, 0, 0, 0, last],
        }
    }

    fn send(&self, dst: [u8; 6], payload: &[u8]) {
        let mut f = dst.to_vec();
        f.extend(self.mac);
        f.extend([0x88, 0xb5]);
        f.extend(payload);
        self.sock.send(&f).expect("send");
    }

    /// Payloads received within 300 ms.
    fn received(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = self.sock.recv(&mut buf) {
            out.push(buf[14..n].to_vec());
        }
        out
    }
}

const BCAST: [u8; 6] = [0xff; 6];

#[test]
fn frames_are_switched_and_steered_by_the_harness() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = Fabrics::start(dir.path(), &["io1", "io2", "upstream"]).expect("start");
    f.link("io1", "EXT", "upstream", "io1").expect("link");
    f.link("io2", "EXT", "upstream", "io2").expect("link");
    let a = Host::new(&f, "a", "io1", "INTA5", "lb1a", 1);
    let b = Host::new(&f, "b", "io1", "INTA6", "lb1b", 2);
    let c = Host::new(&f, "c", "io2", "INTA7", "proxy1a", 3);

    // Broadcast floods to every other node, across the uplinks too.
    a.send(BCAST, b"hello");
    assert_eq!(b.received(), vec![b"hello".to_vec()]);
    assert_eq!(c.received(), vec![b"hello".to_vec()]);
    assert!(a.received().is_empty(), "no echo to the sender");

    // Unicast to a learned MAC goes only there.
    b.send(a.mac, b"to-a");
    assert_eq!(a.received(), vec![b"to-a".to_vec()]);
    assert!(c.received().is_empty());

    // io2 uplinks down: c is cut off from a, a and b still talk.
    f.set_port_up("io2", "EXT", false).expect("down");
    a.send(BCAST, b"2");
    assert!(c.received().is_empty());
    assert_eq!(b.received(), vec![b"2".to_vec()]);
    f.set_port_up("io2", "EXT", true).expect("up");
    c.send(a.mac, b"back");
    assert_eq!(a.received(), vec![b"back".to_vec()]);

    // Partition a and b: nothing between them, c still hears both.
    f.set_partition("lb1a", "lb1b", true);
    a.send(BCAST, b"p");
    assert!(b.received().is_empty());
    assert_eq!(c.received(), vec![b"p".to_vec()]);
    f.set_partition("lb1b", "lb1a", false);
    a.send(b.mac, b"healed");
    assert_eq!(b.received(), vec![b"healed".to_vec()]);
    assert!(f.stats("io1", "INTA6").expect("stats").dropped >= 1);

    // Garbage and frames from unknown senders do not disturb the switch.
    let stranger = UnixDatagram::bind(dir.path().join("x.ep")).expect("bind");
    stranger
        .send_to(&[0u8; 3], f.switch_path("io1").expect("path"))
        .expect("send");
    stranger
        .send_to(&[0xffu8; 64], f.switch_path("io1").expect("path"))
        .expect("send");
    a.send(b.mac, b"still");
    assert_eq!(b.received(), vec![b"still".to_vec()]);
}

#[test]
fn vrrp_adverts_are_attributed_to_the_sending_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = Fabrics::start(dir.path(), &["io1"]).expect("start");
    let a = Host::new(&f, "a", "io1", "INTA5", "lb1a", 1);
    let _b = Host::new(&f, "b", "io1", "INTA6", "lb1b", 2);
    let t0 = Instant::now();
    let mut frame = vec![0x01, 0x00, 0x5e, 0, 0, 0x12];
    frame.extend(a.mac);
    frame.extend([0x08, 0x00]);
    frame.extend([
        0x45, 0, 0, 32, 0, 0, 0, 0, 255, 112, 0, 0, 10, 20, 1, 105, 224, 0, 0, 18,
    ]);
    frame.extend([0x31, 31, 150, 1, 0, 100, 0, 0, 10, 20, 1, 12]);
    a.sock.send(&frame).expect("send");
    let seen = qemu_tests::proc::poll(Duration::from_secs(5), || {
        let v = f.advertisers(31, t0);
        (!v.is_empty()).then_some(v)
    });
    assert_eq!(seen, Some(vec!["lb1a".to_string()]));
    assert!(f.advertisers(41, t0).is_empty());
    assert!(Path::new(&f.switch_path("io1").unwrap()).exists());
}

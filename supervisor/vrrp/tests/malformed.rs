//! Malformed and misaddressed advertisements from the network are dropped, counted
//! by reason in the status, and never disturb the running master.

mod common;
use common::*;
use flexvisor_vrrp::packet::{Advertisement, MULTICAST_V4};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// Sends each payload as an IP protocol 112 datagram to 224.0.0.18 from the client
/// namespace, with the given TTL.
fn send_from_client(lab: &Lab, packets: &[(Vec<u8>, u32)]) {
    let path = format!("/run/netns/{}", lab.client);
    std::thread::scope(|s| {
        s.spawn(|| {
            let ns = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on a valid namespace descriptor; it only moves this
            // helper thread, which ends when the sends are done.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            let sock = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::RAW,
                Some(socket2::Protocol::from(112)),
            )
            .expect("raw socket");
            sock.set_multicast_if_v4(&Ipv4Addr::new(10, 77, 0, 200))
                .expect("mcast if");
            let dst = SocketAddrV4::new(MULTICAST_V4, 0).into();
            for (p, ttl) in packets {
                sock.set_multicast_ttl_v4(*ttl).expect("ttl");
                sock.send_to(p, &dst).expect("send");
            }
        })
        .join()
        .expect("sender thread");
    });
}

#[test]
fn malformed_advertisements_are_dropped_and_counted_by_reason() {
    require(&["ip"]);
    let lab = Lab::new(1);
    let node = Vrrpd::start(&lab, 0, &["--priority", "100", "--advert-interval", "20"]);
    node.wait_state("Master", T);

    let src = IpAddr::V4(Ipv4Addr::new(10, 77, 0, 200));
    let dst = IpAddr::V4(MULTICAST_V4);
    let vip: IpAddr = VIP.parse().expect("vip");
    let adv = |vrid: u8, addrs: Vec<IpAddr>| Advertisement {
        vrid,
        priority: 254,
        max_adver_int: 20,
        addresses: addrs,
    };
    let good = adv(51, vec![vip]).encode(src, dst).expect("encode");
    let mut bad_sum = good.clone();
    bad_sum[6] ^= 0x55;
    let mut v2 = good.clone();
    v2[0] = 0x21;
    let wrong_vrid = adv(52, vec![vip]).encode(src, dst).expect("encode");
    let wrong_list = adv(51, vec!["10.77.0.99".parse().expect("ip")])
        .encode(src, dst)
        .expect("encode");
    let mut packets = vec![
        (bad_sum, 255),
        (v2, 255),
        (wrong_vrid, 255),
        (wrong_list, 255),
        (good[..5].to_vec(), 255),
        // A perfectly good higher-priority advertisement that crossed a router.
        (good.clone(), 64),
    ];
    let mut x: u32 = 0x1234_5678;
    for len in 0..40 {
        let junk: Vec<u8> = (0..len * 3)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x & 0xff) as u8
            })
            .collect();
        packets.push((junk, 255));
    }
    send_from_client(&lab, &packets);

    wait_for(T, "every kind of bad packet to be counted", || {
        let d = node.field("dropped").unwrap_or_default();
        [
            "checksum",
            "version",
            "vrid",
            "address_list",
            "truncated",
            "ttl",
        ]
        .iter()
        .all(|k| d.get(*k).and_then(|v| v.as_u64()).unwrap_or(0) >= 1)
    });
    // The higher-priority advertisement with TTL 64 did not preempt, nothing crashed,
    // and the master keeps advertising.
    let sent = node
        .field("adverts_sent")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    wait_for(T, "the master to keep advertising", || {
        node.field("adverts_sent")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
            > sent + 3
    });
    assert_eq!(node.state().as_deref(), Some("Master"));
    assert_eq!(node.field("adverts_received"), Some(serde_json::json!(0)));
}

//! Call-ID dispatch over two proxy pairs (two sipp backends): the digest
//! challenge and its answer meet at the same pair, both pairs get a share,
//! and when one pair stops answering OPTIONS the other takes its share.

mod common;
use common::*;

#[test]
fn same_call_id_reaches_same_pair_and_both_pairs_get_a_share() {
    let dir = tempfile::tempdir().unwrap();
    let a = Backend::start(dir.path(), "127.0.0.2");
    let b = Backend::start(dir.path(), "127.0.0.3");
    let lb = Lb::start(LbOpts::new(vec![a.addr, b.addr]));
    // Each registration is REGISTER -> 401 -> REGISTER(auth) -> 200 with one
    // Call-ID. A backend only answers 200 to a retry of a challenge it issued
    // itself, so all 40 succeed only if every retry met its challenger.
    uac(
        dir.path(),
        "register_uac.xml",
        lb.udp,
        "127.0.0.6",
        40,
        40,
        "u1",
    )
    .assert_ok("registrations with challenge across two pairs");
    let (ra, rb) = (a.received("REGISTER"), b.received("REGISTER"));
    assert_eq!(ra + rb, 80);
    assert!(ra % 2 == 0 && rb % 2 == 0, "pairs of REGISTERs: {ra} {rb}");
    assert!(ra >= 10 && rb >= 10, "both pairs get a share: {ra} {rb}");
}

#[test]
fn dead_pair_is_skipped_and_next_pair_takes_its_share() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Backend::start(dir.path(), "127.0.0.2");
    let b = Backend::start(dir.path(), "127.0.0.3");
    let a_addr = a.addr;
    let lb = Lb::start(LbOpts::new(vec![a.addr, b.addr]));
    uac(
        dir.path(),
        "call_uac.xml",
        lb.udp,
        "127.0.0.7",
        20,
        40,
        "u1",
    )
    .assert_ok("calls, both pairs up");
    let (a1, b1) = (a.received("INVITE"), b.received("INVITE"));
    assert!(a1 > 0 && b1 > 0, "both pairs used: {a1} {b1}");

    a.stop();
    lb.wait_until("pair1 marked down", |lb| {
        lb.metric("sip_lb_pair_up{pair=\"pair1\"}") == 0
    });
    uac(
        dir.path(),
        "call_uac.xml",
        lb.udp,
        "127.0.0.7",
        20,
        40,
        "u1",
    )
    .assert_ok("calls with pair1 down");
    assert_eq!(b.received("INVITE"), b1 + 20, "pair2 took every call");
    assert_eq!(lb.metric("sip_lb_pair_down_events_total"), 1);

    // pair1 answers OPTIONS again: it is marked up and gets its share back.
    let a2 = Backend::start_on(dir.path(), a_addr);
    lb.wait_until("pair1 marked up", |lb| {
        lb.metric("sip_lb_pair_up{pair=\"pair1\"}") == 1
    });
    uac(
        dir.path(),
        "call_uac.xml",
        lb.udp,
        "127.0.0.7",
        20,
        40,
        "u1",
    )
    .assert_ok("calls after recovery");
    assert!(a2.received("INVITE") > 0, "recovered pair gets calls again");
}

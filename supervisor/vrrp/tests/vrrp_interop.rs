//! Interoperability with keepalived (the Debian package), VRRPv3, same VRID: each
//! backs the other up and takes over when it dies, and at every step both agree on
//! who the master is, as does the client.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(40);

fn master_of(d: &Vrrpd) -> Option<String> {
    d.field("master")
        .and_then(|m| m.as_str().map(str::to_string))
}

#[test]
fn flexvisor_backs_up_a_keepalived_master_and_takes_over_when_it_dies() {
    require(&["ip", "ping", "keepalived"]);
    let lab = Lab::new(2);
    let mut ka = Keepalived::start(&lab, 0, 200, 50);
    ka.wait_state("MASTER", T);
    let fv = Vrrpd::start(&lab, 1, &["--priority", "100", "--advert-interval", "50"]);
    fv.wait_state("Backup", T);
    // Agreement: flexvisor accepted keepalived's advertisements (checksum, TTL,
    // address list) and names it master; keepalived still is master.
    wait_for(T, "flexvisor to name keepalived master", || {
        master_of(&fv) == Some(lab.ip(0))
    });
    let received = |d: &Vrrpd| {
        d.field("adverts_received")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    wait_for(
        T,
        "flexvisor to keep receiving keepalived's adverts",
        || received(&fv) >= 5,
    );
    assert_eq!(ka.state().as_deref(), Some("MASTER"));
    assert_eq!(
        fv.field("dropped"),
        Some(serde_json::json!({})),
        "nothing from keepalived dropped"
    );
    lab.wait_client_served_by(&lab.nodes[0], T);

    ka.kill9();
    fv.wait_state("Master", T);
    lab.wait_client_served_by(&lab.nodes[1], T);
}

#[test]
fn keepalived_backs_up_a_flexvisor_master_and_takes_over_when_it_dies() {
    require(&["ip", "ping", "keepalived"]);
    let lab = Lab::new(2);
    let mut fv = Vrrpd::start(&lab, 1, &["--priority", "200", "--advert-interval", "50"]);
    fv.wait_state("Master", T);
    let ka = Keepalived::start(&lab, 0, 100, 50);
    ka.wait_state("BACKUP", T);
    lab.wait_client_served_by(&lab.nodes[1], T);
    // keepalived stays backup for many of its Master_Down_Intervals: it accepts
    // flexvisor's advertisements.
    let sent = |d: &Vrrpd| {
        d.field("adverts_sent")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    let before = sent(&fv);
    wait_for(T, "ten more advertisements from flexvisor", || {
        sent(&fv) >= before + 10
    });
    assert_eq!(
        ka.state().as_deref(),
        Some("BACKUP"),
        "keepalived log:\n{}",
        ka.log_text()
    );
    assert_eq!(fv.state().as_deref(), Some("Master"));
    assert_eq!(lab.vip_holders(), vec![1]);

    fv.kill9();
    ka.wait_state("MASTER", T);
    lab.wait_client_served_by(&lab.nodes[0], T);
}

#[test]
fn keepalived_takes_over_at_once_on_orderly_stop_and_flexvisor_preempts_back() {
    require(&["ip", "ping", "keepalived"]);
    let lab = Lab::new(2);
    let mut fv = Vrrpd::start(&lab, 1, &["--priority", "200", "--advert-interval", "50"]);
    fv.wait_state("Master", T);
    let ka = Keepalived::start(&lab, 0, 100, 50);
    ka.wait_state("BACKUP", T);
    let status = fv.stop().expect("exit status");
    assert!(status.success());
    ka.wait_state("MASTER", T);
    lab.wait_client_served_by(&lab.nodes[0], T);

    // flexvisor comes back with the higher priority: it preempts keepalived, and
    // keepalived agrees by going back to BACKUP.
    let fv = Vrrpd::start(&lab, 1, &["--priority", "200", "--advert-interval", "50"]);
    fv.wait_state("Master", T);
    ka.wait_state("BACKUP", T);
    wait_for(T, "exactly one holder", || lab.vip_holders() == vec![1]);
    lab.wait_client_served_by(&lab.nodes[1], T);
}

#[test]
fn ipv6_flexvisor_and_keepalived_back_each_other_up() {
    require(&["ip", "keepalived"]);
    let lab = Lab::new(2);
    lab.wait_link_local();
    let vip = "fd77::100/64";
    // keepalived master, flexvisor backup: flexvisor accepts its IPv6 advertisements
    // (pseudo-header checksum over link-local source and ff02::12, hop limit 255).
    let mut ka = Keepalived::start_for(&lab, 0, 200, 50, vip);
    ka.wait_state("MASTER", T);
    let fv = Vrrpd::start_for(
        &lab,
        1,
        vip,
        &["--priority", "100", "--advert-interval", "50"],
    );
    fv.wait_state("Backup", T);
    let received = |d: &Vrrpd| {
        d.field("adverts_received")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    wait_for(T, "flexvisor to accept keepalived's IPv6 adverts", || {
        received(&fv) >= 5
    });
    assert_eq!(fv.field("dropped"), Some(serde_json::json!({})));
    let master = master_of(&fv).unwrap_or_default();
    assert!(
        master.starts_with("fe80:"),
        "master named by its link-local address: {master}"
    );
    assert_eq!(ka.state().as_deref(), Some("MASTER"));
    ka.kill9();
    fv.wait_state("Master", T);
    drop(ka);

    // Now keepalived, lower priority, backs flexvisor up.
    must(&[
        "ip",
        "-n",
        &lab.nodes[0],
        "addr",
        "flush",
        "dev",
        "eth0",
        "to",
        vip,
    ]);
    let ka = Keepalived::start_for(&lab, 0, 50, 50, vip);
    ka.wait_state("BACKUP", T);
    let sent = |d: &Vrrpd| {
        d.field("adverts_sent")
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    };
    let before = sent(&fv);
    wait_for(T, "ten more advertisements from flexvisor", || {
        sent(&fv) >= before + 10
    });
    assert_eq!(
        ka.state().as_deref(),
        Some("BACKUP"),
        "keepalived log:\n{}",
        ka.log_text()
    );
    assert_eq!(fv.state().as_deref(), Some("Master"));
}

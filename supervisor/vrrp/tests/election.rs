//! Election: the highest priority becomes master, the others back it up, and the
//! client reaches the virtual address through the master.

mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[test]
fn two_nodes_elect_the_higher_priority_and_the_client_reaches_it() {
    require(&["ip", "ping"]);
    let lab = Lab::new(2);
    let low = Vrrpd::start(&lab, 0, &["--priority", "100", "--advert-interval", "50"]);
    let high = Vrrpd::start(&lab, 1, &["--priority", "150", "--advert-interval", "50"]);
    high.wait_state("Master", T);
    low.wait_state("Backup", T);
    wait_for(T, "backup to learn the master's address", || {
        low.field("master")
            .and_then(|m| m.as_str().map(str::to_string))
            == Some(lab.ip(1))
    });
    assert_eq!(
        lab.vip_holders(),
        vec![1],
        "only the master holds the address"
    );
    lab.wait_client_served_by(&lab.nodes[1], T);
    assert_eq!(high.field("priority"), Some(serde_json::json!(150)));
}

#[test]
fn three_nodes_elect_exactly_one_master() {
    require(&["ip", "ping"]);
    let lab = Lab::new(3);
    let n: Vec<Vrrpd> = [("100", 0), ("200", 1), ("150", 2)]
        .iter()
        .map(|(p, i)| Vrrpd::start(&lab, *i, &["--priority", p, "--advert-interval", "50"]))
        .collect();
    n[1].wait_state("Master", T);
    for i in [0, 2] {
        n[i].wait_state("Backup", T);
        wait_for(T, "backups to agree on the master", || {
            n[i].field("master")
                .and_then(|m| m.as_str().map(str::to_string))
                == Some(lab.ip(1))
        });
    }
    assert_eq!(lab.vip_holders(), vec![1]);
    lab.wait_client_served_by(&lab.nodes[1], T);
    // Nothing the nodes sent was dropped as malformed.
    for d in &n {
        let dropped = d.field("dropped").unwrap_or_default();
        assert!(
            dropped.get("checksum").is_none() && dropped.get("ttl").is_none(),
            "unexpected drops: {dropped}"
        );
    }
}

#[test]
fn unicast_peers_elect_without_multicast() {
    require(&["ip", "ping"]);
    let lab = Lab::new(2);
    let low = Vrrpd::start(
        &lab,
        0,
        &[
            "--priority",
            "100",
            "--advert-interval",
            "50",
            "--unicast-peer",
            &lab.ip(1),
        ],
    );
    let high = Vrrpd::start(
        &lab,
        1,
        &[
            "--priority",
            "150",
            "--advert-interval",
            "50",
            "--unicast-peer",
            &lab.ip(0),
        ],
    );
    high.wait_state("Master", T);
    low.wait_state("Backup", T);
    wait_for(T, "backup to learn the master over unicast", || {
        low.field("master")
            .and_then(|m| m.as_str().map(str::to_string))
            == Some(lab.ip(1))
    });
    lab.wait_client_served_by(&lab.nodes[1], T);
}

#[test]
fn sigusr1_prints_json_status() {
    require(&["ip"]);
    let lab = Lab::new(1);
    let only = Vrrpd::start(
        &lab,
        0,
        &["--priority", "100", "--advert-interval", "20", "--json"],
    );
    only.wait_state("Master", T);
    let out = std::process::Command::new("kill")
        .args(["-USR1", &only.pid().to_string()])
        .status()
        .expect("kill");
    assert!(out.success());
    wait_for(T, "SIGUSR1 to print the status", || {
        let text = std::fs::read_to_string(&only.out).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(text.trim())
            .is_ok_and(|v| v[0]["state"] == "Master")
    });
    let text = std::fs::read_to_string(&only.out).unwrap_or_default();
    let st: serde_json::Value = serde_json::from_str(text.trim()).expect("JSON on stdout");
    assert_eq!(st[0]["vrid"], 51);
    assert_eq!(st[0]["addresses"][0], format!("{VIP}/24"));
    assert_eq!(st[0]["priority_why"], "configured 100 => 100");
    // The status file says the same.
    assert_eq!(only.status().expect("status file")["state"], "Master");
}

#[test]
fn address_owner_becomes_master_at_startup_and_takes_over() {
    require(&["ip", "ping"]);
    let lab = Lab::new(2);
    let other = Vrrpd::start(&lab, 0, &["--priority", "200", "--advert-interval", "50"]);
    other.wait_state("Master", T);
    let owner = Vrrpd::start(&lab, 1, &["--priority", "255", "--advert-interval", "50"]);
    owner.wait_state("Master", T);
    // Straight from Initialize, without waiting for a Master_Down_Interval.
    let t = owner.field("last_transition").unwrap_or_default();
    assert_eq!(
        (t["from"].as_str(), t["cause"].as_str()),
        (Some("Initialize"), Some("startup"))
    );
    other.wait_state("Backup", T);
    lab.wait_client_served_by(&lab.nodes[1], T);
}

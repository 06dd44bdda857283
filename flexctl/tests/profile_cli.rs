//! `flexctl profile ...` as an operator or a script runs it.

use std::process::{Command, Output};

fn flexctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flexctl"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("run flexctl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_accepts_the_seed_profiles() {
    let o = flexctl(&[
        "profile",
        "check",
        "chassis-profiles/c5-50k.toml",
        "chassis-profiles/c5-200k.toml",
        "chassis-profiles/c5-400k-2chassis.toml",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("c5-200k.toml: ok (1 chassis, 14 nodes, 7 pairs)"),
        "{out}"
    );
    assert!(
        out.contains("c5-400k-2chassis.toml: ok (2 chassis, 28 nodes, 14 pairs)"),
        "{out}"
    );
}

#[test]
fn check_reports_every_problem_and_fails() {
    let o = flexctl(&[
        "profile",
        "check",
        "chassis-profiles/c5-50k.toml",
        "chassis/tests/fixtures/broken/many-problems.toml",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for needle in [
        "error[db-replication]",
        "error[unknown-key]: unknown key `lacp_rate`",
        "error[bay-range]: bay 16 does not exist",
        "error[advert-interval]",
        "--> chassis/tests/fixtures/broken/many-problems.toml:11:15",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
fn check_json_is_machine_readable() {
    let o = flexctl(&[
        "profile",
        "check",
        "--json",
        "chassis/tests/fixtures/broken/duplicate-bay.toml",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let first = &v[0];
    assert_eq!(first["code"], "duplicate-bay");
    assert_eq!(first["line"], 111);
    assert_eq!(first["field"], "chassis[0].bays[3].bay");
}

#[test]
fn show_lists_every_bay_for_a_technician() {
    let o = flexctl(&["profile", "show", "chassis-profiles/c5-200k.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("chassis1 ")).collect();
    assert_eq!(rows.len(), 14, "{out}");
    assert!(out.contains("proxy4b"), "{out}");
    let json = flexctl(&["profile", "show", "--json", "chassis-profiles/c5-200k.toml"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["nodes"].as_array().map(Vec::len), Some(14));
    assert_eq!(v["nodes"][13]["hostname"], "proxy4b");
}

#[test]
fn node_resolves_what_the_image_bakes_in() {
    let o = flexctl(&[
        "profile",
        "node",
        "chassis-profiles/c5-50k.toml",
        "--bay",
        "5",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let n: chassis::NodeConfig = serde_json::from_slice(&o.stdout).expect("NodeConfig json");
    assert_eq!(n.hostname, "lb1a");
    assert_eq!(n.pair.peer.hostname, "lb1b");
    assert_eq!(n.services, vec!["sip-lb"]);
    assert_eq!(n.vips.len(), 2);
    assert_eq!(n.network.bond.slaves.len(), 2);
    // The TOML form is the same configuration.
    let t = flexctl(&[
        "profile",
        "node",
        "chassis-profiles/c5-50k.toml",
        "--bay",
        "5",
    ]);
    let from_toml: chassis::NodeConfig = toml::from_str(&stdout(&t)).expect("NodeConfig toml");
    assert_eq!(from_toml, n);
}

#[test]
fn node_needs_chassis_when_ambiguous_and_rejects_unknown_bays() {
    let o = flexctl(&[
        "profile",
        "node",
        "chassis-profiles/c5-400k-2chassis.toml",
        "--bay",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--chassis"), "{}", stderr(&o));
    let o = flexctl(&[
        "profile",
        "node",
        "chassis-profiles/c5-400k-2chassis.toml",
        "--bay",
        "3",
        "--chassis",
        "chassis2",
    ]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("hostname = \"db2a\""));
    let o = flexctl(&[
        "profile",
        "node",
        "chassis-profiles/c5-50k.toml",
        "--bay",
        "12",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no node in bay 12"), "{}", stderr(&o));
}

#[test]
fn inventory_groups_hosts_by_role_and_pair() {
    let o = flexctl(&[
        "profile",
        "inventory",
        "chassis-profiles/c5-200k.toml",
        "--list",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["proxy"]["hosts"].as_array().map(Vec::len), Some(8));
    assert_eq!(v["pair_db1"]["hosts"], serde_json::json!(["db1a", "db1b"]));
    assert_eq!(
        v["_meta"]["hostvars"]["lb1b"]["ansible_host"],
        "10.10.1.106"
    );
    assert_eq!(v["_meta"]["hostvars"]["lb1b"]["flexvisor_node"]["bay"], 6);
}

//! Real Ansible (ansible-core from PyPI) reads the profile's inventory
//! through `ansible/inventory.sh`, as a technician's playbook run would.

use std::process::Command;

#[test]
fn ansible_inventory_reads_groups_and_hostvars() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("ansible-inventory")
        .args(["-i", "ansible/inventory.sh", "--list"])
        .env("FLEXCTL", env!("CARGO_BIN_EXE_flexctl"))
        .env("FLEXVISOR_PROFILE", "chassis-profiles/c5-200k.toml")
        .env("ANSIBLE_LOCAL_TEMP", std::env::temp_dir())
        .current_dir(root)
        .output()
        .expect("ansible-inventory must be installed (scripts/deps/pip.txt: ansible-core)");
    assert!(
        out.status.success(),
        "ansible-inventory failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inventory json");
    assert_eq!(
        v["pair_proxy3"]["hosts"],
        serde_json::json!(["proxy3a", "proxy3b"])
    );
    assert_eq!(v["web"]["hosts"].as_array().map(Vec::len), Some(2));
    let hv = &v["_meta"]["hostvars"]["db1b"];
    assert_eq!(hv["ansible_host"], "10.10.1.104");
    assert_eq!(hv["flexvisor_node"]["pair"]["peer"]["hostname"], "db1a");
    assert_eq!(hv["flexvisor_deployment"], "c5-200k");
}

//! Orderly shutdown of the master: the VRRP instances are stopped first
//! (priority 0 sent) before any service stops, and the backup takes over.
#![allow(clippy::unwrap_used)]
mod common;
use common::pair::*;
use common::*;

#[test]
fn poweroff_of_the_master_releases_the_vip_before_services_stop() {
    require_root();
    let (_net, nodes) = lab();
    let (mut a, na) = start(&nodes[0], 0, "status=ok\n");
    let (b, nb) = start(&nodes[1], 1, "status=ok\n");
    wait_for("a master, b backup", || {
        state(&a).is_some_and(|(s, _)| s == "Master")
            && state(&b).is_some_and(|(s, m)| s == "Backup" && m == "10.78.0.1")
    });
    wait_for("a's active services up", || active_running(&a, &na));

    let (st, console) = a.shutdown();
    assert!(st.success(), "{console}");
    let stopped = console
        .find("instances stopped (priority 0 sent)")
        .unwrap_or_else(|| panic!("no priority-0 stop on the console:\n{console}"));
    let shutting = console.find("shutting down").unwrap();
    assert!(stopped < shutting, "{console}");

    wait_for("b takes over", || {
        state(&b).is_some_and(|(s, m)| s == "Master" && m == "10.78.0.2")
    });
    wait_for("b's active services up", || active_running(&b, &nb));
}

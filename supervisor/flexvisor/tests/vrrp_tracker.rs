//! A health tracker with a weight moves the shared address: the master's
//! md array degrading (fixture root) lowers its effective priority below the
//! backup's, which preempts; the array recovering brings it back.
#![allow(clippy::unwrap_used)]
mod common;
use common::pair::*;
use common::*;

const CLEAN: &str = "Personalities : [raid1]\n\
md0 : active raid1 sdb1[1] sda1[0]\n      1046528 blocks super 1.2 [2/2] [UU]\n\n\
unused devices: <none>\n";
const DEGRADED: &str = "Personalities : [raid1]\n\
md0 : active raid1 sdb1[1](F) sda1[0]\n      1046528 blocks super 1.2 [2/1] [U_]\n\n\
unused devices: <none>\n";

fn priority(sup: &Sup) -> (u64, String) {
    let v = vip(sup);
    (
        v[0]["priority"].as_u64().unwrap(),
        v[0]["priority_why"].as_str().unwrap_or("").to_owned(),
    )
}

#[test]
fn degraded_raid_on_the_master_hands_the_vip_over_and_back() {
    require_root();
    let (_net, nodes) = lab();
    let weighted = |n: &mut chassis::NodeConfig| {
        n.health.raid_arrays = vec!["md0".into()];
        n.vips[0].track[0].weight = Some(-60);
    };
    let (a, na) = start_with(&nodes[0], 0, "status=ok\n", weighted);
    let (b, _nb) = start_with(&nodes[1], 1, "status=ok\n", weighted);
    let mdstat_a = a.path("sysroot/proc/mdstat");
    std::fs::write(&mdstat_a, CLEAN).unwrap();
    std::fs::write(b.path("sysroot/proc/mdstat"), CLEAN).unwrap();
    wait_for("a master at full priority", || {
        state(&a).is_some_and(|(s, _)| s == "Master")
            && state(&b).is_some_and(|(s, m)| s == "Backup" && m == "10.78.0.1")
            && priority(&a).0 == 150
    });
    wait_for("a's active services up", || active_running(&a, &na));

    std::fs::write(&mdstat_a, DEGRADED).unwrap();
    a.wait_console("raid CRITICAL");
    wait_for("b preempts the degraded master", || {
        state(&b).is_some_and(|(s, _)| s == "Master")
            && state(&a).is_some_and(|(s, m)| s == "Backup" && m == "10.78.0.2")
    });
    let (p, why) = priority(&a);
    assert_eq!(p, 90, "{why}");
    assert!(why.contains("raid"), "{why}");
    wait_for("a's active services stopped", || active_down(&a, &na));

    std::fs::write(&mdstat_a, CLEAN).unwrap();
    wait_for("a preempts back once its array is clean", || {
        state(&a).is_some_and(|(s, _)| s == "Master")
            && state(&b).is_some_and(|(s, m)| s == "Backup" && m == "10.78.0.1")
    });
}

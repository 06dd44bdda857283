//! The CI smoke scenario: the lb1 pair of c5-50k cold-booted from the node
//! images, health OK on both, one failover of its shared addresses (QMP
//! quit of the master) and the master's return through its BMC.
//!
//! Everything it needs is made here: the static flexvisor, flexctl and
//! sip-lb (cargo, into `target/image-musl`, shared with the image crate's
//! tests; progress on stderr), the two bays' images, the chassis around
//! them. Only a PASS passes: a scenario that ends BLOCKED (something it
//! needs is missing) fails this test like a FAIL does.

#![allow(clippy::unwrap_used)]

mod common;

use qemu_tests::report::Outcome;

#[test]
fn smoke_lb1_pair_cold_boot_and_failover() {
    let (r, out) = common::run::scenario("smoke");
    common::run::say(&serde_json::to_string_pretty(&r).expect("json"));
    match &r.outcome {
        Outcome::Pass => {
            assert!(
                r.figures.iter().any(|f| f.name.starts_with("lb1 takeover")),
                "a pass measured the takeover: {r:?}"
            );
            assert!(
                r.details
                    .iter()
                    .any(|d| d.starts_with("health OK on every node")),
                "a pass read health OK on both nodes: {:?}",
                r.details
            );
        }
        o => {
            let kept = common::run::keep_logs(out);
            panic!(
                "smoke scenario {}: {}\ndetails: {:#?}\nconsoles, QMP events and simulator logs kept in {}",
                o.label(),
                o.reason(),
                r.details,
                kept.display()
            )
        }
    }
}

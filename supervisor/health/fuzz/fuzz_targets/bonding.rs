//! Fuzz the /proc/net/bonding parser.
#![no_main]

use flexvisor_health::uplinks::bonding;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bonding::parse("fuzz", &String::from_utf8_lossy(data));
});

//! Fuzz the rtnetlink datagram parser used for node link state.
#![no_main]

use flexvisor_health::uplinks::netlink;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = netlink::parse_datagram(data);
});

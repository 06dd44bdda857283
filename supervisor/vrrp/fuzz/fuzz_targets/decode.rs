//! Fuzzes everything the VRRP receive path does with bytes from the network:
//! IPv4 header parsing, VRRPv3 decoding for both families, the receive checks, and
//! the encode/decode round trip of whatever decodes. Run with
//! `cargo +nightly fuzz run decode` from `supervisor/vrrp/fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flexvisor_vrrp::packet::fuzz_receive(data);
});

//! Kernel acknowledgements read back after an nf_tables batch (Accept_Mode off):
//! any bytes must parse without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = flexvisor_vrrp::nftables::parse_acks(data);
});

//! Fuzz the CMM power module table decoding: an SNMP response message as
//! it comes off the wire (v1/v2c, BER) into powerModuleHealthTable rows.
#![no_main]

use flexvisor_health::power::cmm_snmp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rows) = cmm_snmp::rows_from_message(data) {
        for r in rows.values() {
            let _ = r.psu_state("PSU1").problem();
        }
    }
});

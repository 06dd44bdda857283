//! Fuzz what we decode from BMC replies: SDR records (through ipmi-rs's
//! parser, as the partial reader reassembles them), Get SDR / Get Sensor
//! Reading responses and the PSU/redundancy state bits.
#![no_main]

use flexvisor_health::power::ipmi::{self, GetSensorReadingRaw};
use flexvisor_health::power::sdr_partial::GetSdrPartial;
use ipmi_rs::connection::IpmiCommand;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = GetSdrPartial::parse_success_response(data);
    if let Ok(resp) = GetSensorReadingRaw::parse_success_response(data) {
        let bits = ipmi::state_bits(&resp);
        let _ = ipmi::psu_state("PSU", 1, bits);
        let _ = bits.map(ipmi::redundancy_state);
    }
    if let Ok(record) = ipmi_rs::storage::sdr::Record::parse(data) {
        let _ = ipmi::power_sensors(&[(record, data.to_vec())]);
    }
});

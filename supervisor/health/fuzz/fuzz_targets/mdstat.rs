//! Fuzz the /proc/mdstat parser and the verdict built on it: any byte
//! string must parse without panicking, and the verdict must be computable.
#![no_main]

use flexvisor_health::raid;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let stat = raid::mdstat::parse(&text);
    let snap = raid::merge(&stat, &[]);
    let _ = raid::verdict(&snap, &["md0".to_string()]);
    let _ = raid::events::diff(None, &snap);
});

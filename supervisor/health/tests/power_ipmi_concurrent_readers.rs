//! Eight nodes polling one chassis CMM at once: OpenIPMI's `ipmi_sim` has
//! one SDR reservation per management controller, so every reader's
//! Reserve SDR Repository cancels the others'. Each reader (its own RMCP+
//! session, its own thread) must still get all six PSUs and the
//! redundancy sensor on every scan, and read the SDR only once.

use flexvisor_health::power::ipmi::{IpmiTarget, PsuScanner};
use flexvisor_health::power::Redundancy;
use flexvisor_health::testing::ipmi_sim::{self, IpmiSim};
use std::time::Duration;

const READERS: usize = 8;
const SCANS: u64 = 5;

#[test]
fn eight_concurrent_readers_all_get_six_psus_and_redundancy() {
    let sim = IpmiSim::start().expect("start ipmi_sim");
    let port = sim.lan_port;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(READERS));
    let handles: Vec<_> = (0..READERS)
        .map(|n| {
            let barrier = barrier.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let mut scanner = PsuScanner::new(
                    IpmiTarget::Lan {
                        host: "127.0.0.1".into(),
                        port,
                        username: ipmi_sim::USER.into(),
                        password: ipmi_sim::PASSWORD.into(),
                    },
                    Duration::from_secs(5),
                );
                barrier.wait();
                for scan in 0..SCANS {
                    let r = scanner
                        .scan(100 + scan)
                        .map_err(|e| format!("reader {n} scan {scan}: {e}"))?;
                    let names: Vec<&str> = r.psus.iter().map(|p| p.name.as_str()).collect();
                    if names != ["PSU1", "PSU2", "PSU3", "PSU4", "PSU5", "PSU6"] {
                        return Err(format!("reader {n} scan {scan}: PSUs {names:?}"));
                    }
                    if r.redundancy != Some(Redundancy::Full) {
                        return Err(format!(
                            "reader {n} scan {scan}: redundancy {:?}",
                            r.redundancy
                        ));
                    }
                    if let Some(p) = r.psus.iter().find(|p| !p.is_working()) {
                        return Err(format!("reader {n} scan {scan}: {p:?} not working"));
                    }
                }
                // The SDR was read once; later scans only read sensors.
                if scanner.sdr_reads != 1 {
                    return Err(format!(
                        "reader {n}: SDR read {} times in {SCANS} scans",
                        scanner.sdr_reads
                    ));
                }
                Ok(())
            })
        })
        .collect();
    let errors: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| Err("reader panicked".into())))
        .filter_map(Result::err)
        .collect();
    assert!(
        errors.is_empty(),
        "{} of {READERS} readers failed:\n{}\nsim log:\n{}",
        errors.len(),
        errors.join("\n"),
        sim.log()
    );
}

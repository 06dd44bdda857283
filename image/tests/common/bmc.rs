//! A node BMC for the image tests: OpenIPMI's `ipmi_sim` (package
//! `openipmi`) serving qemu's external-BMC channel on 127.0.0.1, with a FRU
//! inventory whose product asset tag says which bay the chassis put the
//! node in. Killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Bmc {
    child: Child,
    pub port: u16,
}

/// A free TCP port on 127.0.0.1 (bound, then released for ipmi_sim).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl Bmc {
    /// Start `ipmi_sim` in `dir` reporting `bay=N` in its FRU; panics with
    /// the reason when it cannot (a missing ipmi_sim fails the test).
    pub fn start(dir: &Path, bay: u32) -> Bmc {
        let port = free_port();
        let fru = flexvisor_image::bay::fru_with_asset_tag(&format!("bay={bay}"));
        let bytes: Vec<String> = fru.iter().map(|b| format!("{b:#04x}")).collect();
        std::fs::create_dir_all(dir.join("state")).expect("state dir");
        std::fs::write(
            dir.join("lan.conf"),
            format!(
                "name \"bmc-test\"\nset_working_mc 0x20\n  serial 15 127.0.0.1 {port} codec VM\n"
            ),
        )
        .expect("lan.conf");
        std::fs::write(
            dir.join("bmc.emu"),
            format!(
                "mc_setbmc 0x20\n\
                 mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
                 mc_add_fru_data 0x20 0 {} data {}\n\
                 mc_enable 0x20\n",
                fru.len(),
                bytes.join(" ")
            ),
        )
        .expect("bmc.emu");
        let child = Command::new("ipmi_sim")
            .arg("-c")
            .arg(dir.join("lan.conf"))
            .arg("-f")
            .arg(dir.join("bmc.emu"))
            .arg("-s")
            .arg(dir.join("state"))
            .arg("-n")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ipmi_sim (package openipmi): {e}"));
        let mut bmc = Bmc { child, port };
        let start = Instant::now();
        // Watched in /proc/net/tcp, not probed: ipmi_sim serves one VM
        // connection, and a probe would take qemu's place.
        while !listening(port) {
            if let Ok(Some(st)) = bmc.child.try_wait() {
                panic!("ipmi_sim exited ({st}) before listening on 127.0.0.1:{port}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "ipmi_sim did not listen on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        bmc
    }
}

/// Whether a socket listens on TCP `port` (IPv4, any address).
fn listening(port: u16) -> bool {
    let want = format!(":{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|t| {
            t.lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
            })
        })
        .unwrap_or(false)
}

impl Drop for Bmc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

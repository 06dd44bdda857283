//! Booting a node image under qemu: TCG by default (KVM does not work on the
//! build machines), q35, two virtio disks (the image and a mirror disk,
//! created empty beside it), the node's NICs on UDP datagram sockets on
//! loopback (a virtual switch fabric listens there, or nothing), a serial
//! console logged to a file, an i6300esb hardware watchdog that resets the
//! machine when it bites, a QMP socket for power control and a second one
//! on which [`QmpEvents`] collects events (`WATCHDOG`, `RESET`, ...).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a VM could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start qemu-system-x86_64 (install the `qemu-system-x86` package): {0}")]
    Spawn(#[source] std::io::Error),
    #[error("{what} is missing at {path}")]
    Missing { what: &'static str, path: PathBuf },
    #[error(
        "timed out after {secs} s waiting for `{pattern}` on the console; last lines:\n{tail}"
    )]
    Timeout {
        pattern: String,
        secs: u64,
        tail: String,
    },
    #[error(
        "qemu exited ({status}) before `{pattern}` appeared on the console; last lines:\n{tail}"
    )]
    Exited {
        status: String,
        pattern: String,
        tail: String,
    },
    #[error("QMP on {path}: {detail}")]
    Qmp { path: PathBuf, detail: String },
    #[error("{0} is not a node image name (expected DIR/<stem>.img)")]
    BadImageName(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QemuError + '_ {
    move |source| QemuError::Io {
        path: path.to_owned(),
        source,
    }
}

/// OVMF firmware from Debian's `ovmf` package.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// One NIC: a UDP datagram socket pair on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub local_port: u16,
    pub remote_port: u16,
    pub mac: String,
}

/// Everything about one boot.
#[derive(Debug, Clone)]
pub struct BootSpec {
    pub image: PathBuf,
    /// Direct kernel boot (kernel, initrd, cmdline) instead of UEFI.
    pub direct: Option<(PathBuf, PathBuf, String)>,
    pub second_disk: PathBuf,
    pub memory_mib: u32,
    /// SMBIOS chassis asset tag bay (`bay=N`); `None` leaves it unset.
    pub bay: Option<u32>,
    pub nics: Vec<Nic>,
    pub console_log: PathBuf,
    /// Also copy the console to qemu's stdout.
    pub console_stdout: bool,
    pub qmp: PathBuf,
    /// A second QMP socket, for [`Vm::events`] (one client per socket).
    pub qmp_events: PathBuf,
    /// An emulated i6300esb watchdog (`-device i6300esb`, action reset).
    pub watchdog: bool,
    /// Where per-boot files (OVMF variables) go.
    pub run_dir: PathBuf,
    /// An external BMC (e.g. `ipmi_sim`, `serial ... codec VM`) listening
    /// on this TCP port of 127.0.0.1: qemu connects to it as the node's
    /// IPMI system interface (KCS), so the guest has `/dev/ipmi0`.
    pub bmc_port: Option<u16>,
    /// Size of both disks: a smaller image file is extended (sparse) and
    /// the second disk created this large, as a real node's disks are
    /// larger than the image (`fv-data` grows on first boot). `None`: the
    /// image's size.
    pub disk_bytes: Option<u64>,
    pub accel: String,
}

impl BootSpec {
    /// The defaults for `DIR/<stem>.img` built by [`crate::builder`]:
    /// direct boot from `<stem>.vmlinuz`/`.initrd`/`.cmdline`, bay and NICs
    /// from `<stem>.node.toml`, run files in `DIR/<stem>.run/`.
    pub fn for_image(image: &Path) -> Result<BootSpec, QemuError> {
        let stem = image
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_suffix(".img"))
            .ok_or_else(|| QemuError::BadImageName(image.to_owned()))?
            .to_owned();
        let dir = image.parent().unwrap_or(Path::new(".")).to_owned();
        if !image.is_file() {
            return Err(QemuError::Missing {
                what: "node image",
                path: image.to_owned(),
            });
        }
        let side = |ext: &str| dir.join(format!("{stem}.{ext}"));
        let node: Option<chassis::NodeConfig> = std::fs::read_to_string(side("node.toml"))
            .ok()
            .and_then(|s| toml::from_str(&s).ok());
        let bay = node.as_ref().map(|n| n.bay);
        let nic_count = node
            .as_ref()
            .map_or(2, |n| n.network.bond.slaves.len().max(1));
        let b = bay.unwrap_or(0) as u16;
        let nics = (0..nic_count as u16)
            .map(|i| Nic {
                // Per bay and NIC, so nodes of one chassis can run side by side.
                local_port: 40000 + b * 20 + i,
                remote_port: 40000 + b * 20 + 10 + i,
                mac: format!("52:54:00:fe:{:02x}:{:02x}", b, i),
            })
            .collect();
        let cmdline = std::fs::read_to_string(side("cmdline"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| crate::builder::CMDLINE.to_owned());
        let run_dir = side("run");
        Ok(BootSpec {
            image: image.to_owned(),
            direct: Some((side("vmlinuz"), side("initrd"), cmdline)),
            second_disk: side("disk2.img"),
            memory_mib: 384,
            bay,
            nics,
            console_log: run_dir.join("console.log"),
            console_stdout: false,
            qmp: run_dir.join("qmp.sock"),
            qmp_events: run_dir.join("qmp-events.sock"),
            watchdog: true,
            run_dir,
            bmc_port: None,
            // Nodes running MariaDB need room for its datadir.
            disk_bytes: node
                .as_ref()
                .filter(|n| n.services.iter().any(|s| s == "mariadb"))
                .map(|_| 1024 * 1024 * 1024),
            accel: "tcg".into(),
        })
    }

    /// The qemu command line (without the program name).
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-machine".into(),
            "q35".into(),
            "-accel".into(),
            self.accel.clone(),
            "-m".into(),
            self.memory_mib.to_string(),
            "-smp".into(),
            "1".into(),
            "-nodefaults".into(),
            "-display".into(),
            "none".into(),
            "-no-user-config".into(),
        ];
        let con = if self.console_stdout {
            format!(
                "stdio,id=con,signal=off,logfile={}",
                self.console_log.display()
            )
        } else {
            format!("file,id=con,path={}", self.console_log.display())
        };
        a.extend([
            "-chardev".into(),
            con,
            "-serial".into(),
            "chardev:con".into(),
        ]);
        for q in [&self.qmp, &self.qmp_events] {
            a.extend([
                "-qmp".into(),
                format!("unix:{},server=on,wait=off", q.display()),
            ]);
        }
        if self.watchdog {
            a.extend([
                "-device".into(),
                "i6300esb".into(),
                "-action".into(),
                "watchdog=reset".into(),
            ]);
        }
        for (i, d) in [&self.image, &self.second_disk].iter().enumerate() {
            a.extend([
                "-drive".into(),
                format!(
                    "file={},format=raw,if=none,id=d{i},cache=unsafe",
                    d.display()
                ),
                "-device".into(),
                format!("virtio-blk-pci,drive=d{i},serial=fv-disk{}", i + 1),
            ]);
        }
        for (i, n) in self.nics.iter().enumerate() {
            a.extend([
                "-netdev".into(),
                format!(
                    "dgram,id=n{i},local.type=inet,local.host=127.0.0.1,local.port={},remote.type=inet,remote.host=127.0.0.1,remote.port={}",
                    n.local_port, n.remote_port
                ),
                "-device".into(),
                format!("virtio-net-pci,netdev=n{i},mac={}", n.mac),
            ]);
        }
        if let Some(port) = self.bmc_port {
            a.extend([
                "-chardev".into(),
                format!("socket,id=bmcchr,host=127.0.0.1,port={port},reconnect=1"),
                "-device".into(),
                "ipmi-bmc-extern,chardev=bmcchr,id=bmc0".into(),
                "-device".into(),
                "isa-ipmi-kcs,bmc=bmc0".into(),
            ]);
        }
        if let Some(bay) = self.bay {
            a.extend([
                "-smbios".into(),
                format!("type=3,manufacturer=flexvisor,asset=bay={bay}"),
            ]);
        }
        match &self.direct {
            Some((k, i, c)) => a.extend([
                "-kernel".into(),
                k.display().to_string(),
                "-initrd".into(),
                i.display().to_string(),
                "-append".into(),
                c.clone(),
            ]),
            None => a.extend([
                "-drive".into(),
                format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
                "-drive".into(),
                format!(
                    "if=pflash,format=raw,unit=1,file={}",
                    self.run_dir.join("OVMF_VARS.fd").display()
                ),
            ]),
        }
        a
    }
}

/// A running VM; killed on drop if still running.
#[derive(Debug)]
pub struct Vm {
    child: Child,
    spec: BootSpec,
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Vm {
    /// Prepare the run directory and the second disk, and start qemu.
    pub fn start(spec: BootSpec) -> Result<Vm, QemuError> {
        std::fs::create_dir_all(&spec.run_dir).map_err(io(&spec.run_dir))?;
        for (what, p) in [
            ("kernel", spec.direct.as_ref().map(|d| &d.0)),
            ("initrd", spec.direct.as_ref().map(|d| &d.1)),
        ] {
            if let Some(p) = p {
                if !p.is_file() {
                    return Err(QemuError::Missing {
                        what,
                        path: p.clone(),
                    });
                }
            }
        }
        let mut len = std::fs::metadata(&spec.image)
            .map_err(io(&spec.image))?
            .len();
        if let Some(want) = spec.disk_bytes.filter(|w| *w > len) {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&spec.image)
                .map_err(io(&spec.image))?;
            f.set_len(want).map_err(io(&spec.image))?;
            len = want;
        }
        if !spec.second_disk.exists() {
            let f = std::fs::File::create(&spec.second_disk).map_err(io(&spec.second_disk))?;
            f.set_len(len).map_err(io(&spec.second_disk))?;
        }
        if spec.direct.is_none() {
            if !Path::new(OVMF_CODE).is_file() {
                return Err(QemuError::Missing {
                    what: "OVMF firmware (package ovmf)",
                    path: OVMF_CODE.into(),
                });
            }
            let vars = spec.run_dir.join("OVMF_VARS.fd");
            std::fs::copy(OVMF_VARS, &vars).map_err(io(&vars))?;
        }
        let _ = std::fs::remove_file(&spec.console_log);
        let _ = std::fs::remove_file(&spec.qmp);
        let _ = std::fs::remove_file(&spec.qmp_events);
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(spec.args()).stdin(Stdio::null());
        if !spec.console_stdout {
            cmd.stdout(Stdio::null());
        }
        let child = cmd.spawn().map_err(QemuError::Spawn)?;
        Ok(Vm { child, spec })
    }

    pub fn spec(&self) -> &BootSpec {
        &self.spec
    }

    /// The console so far.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.spec.console_log).unwrap_or_default())
            .into_owned()
    }

    /// Wait until `pattern` appears on the console; return the console.
    pub fn wait_for(&mut self, pattern: &str, timeout: Duration) -> Result<String, QemuError> {
        let start = Instant::now();
        loop {
            let text = self.console();
            if text.contains(pattern) {
                return Ok(text);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(QemuError::Exited {
                    status: status.to_string(),
                    pattern: pattern.into(),
                    tail: tail(&self.spec.console_log, 40),
                });
            }
            if start.elapsed() > timeout {
                return Err(QemuError::Timeout {
                    pattern: pattern.into(),
                    secs: timeout.as_secs(),
                    tail: tail(&self.spec.console_log, 40),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Run one QMP command; return its `return` value.
    pub fn qmp(&self, execute: &str) -> Result<serde_json::Value, QemuError> {
        let p = &self.spec.qmp;
        let err = |detail: String| QemuError::Qmp {
            path: p.clone(),
            detail,
        };
        let s = UnixStream::connect(p).map_err(|e| err(format!("connect: {e}")))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| err(e.to_string()))?;
        let mut w = s.try_clone().map_err(|e| err(e.to_string()))?;
        let mut r = BufReader::new(s);
        let reply = |r: &mut BufReader<UnixStream>| -> Result<serde_json::Value, QemuError> {
            loop {
                let mut line = String::new();
                if r.read_line(&mut line)
                    .map_err(|e| err(format!("read: {e}")))?
                    == 0
                {
                    return Err(err("connection closed".into()));
                }
                let v: serde_json::Value = serde_json::from_str(&line)
                    .map_err(|e| err(format!("bad reply {line:?}: {e}")))?;
                if v.get("event").is_some() {
                    continue;
                }
                if let Some(e) = v.get("error") {
                    return Err(err(format!("error: {e}")));
                }
                return Ok(v);
            }
        };
        reply(&mut r)?; // greeting
        for cmd in ["qmp_capabilities", execute] {
            writeln!(w, "{}", serde_json::json!({ "execute": cmd }))
                .map_err(|e| err(format!("write: {e}")))?;
            let v = reply(&mut r)?;
            if cmd == execute {
                return Ok(v.get("return").cloned().unwrap_or_default());
            }
        }
        Ok(serde_json::Value::Null)
    }

    /// Connect to the event socket ([`BootSpec::qmp_events`]) and collect
    /// every event from now on in the background. Call it right after
    /// [`Vm::start`]: qemu only sends events to connected clients.
    pub fn events(&self) -> Result<QmpEvents, QemuError> {
        let p = &self.spec.qmp_events;
        let err = |detail: String| QemuError::Qmp {
            path: p.clone(),
            detail,
        };
        let start = Instant::now();
        let s = loop {
            match UnixStream::connect(p) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > Duration::from_secs(30) => {
                    return Err(err(format!("connect: {e}")))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let mut w = s.try_clone().map_err(|e| err(e.to_string()))?;
        let mut r = BufReader::new(s);
        let mut greeting = String::new();
        r.read_line(&mut greeting)
            .map_err(|e| err(format!("read: {e}")))?;
        writeln!(
            w,
            "{}",
            serde_json::json!({ "execute": "qmp_capabilities" })
        )
        .map_err(|e| err(format!("write: {e}")))?;
        let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let sink = Arc::clone(&seen);
        // Ends when qemu closes the socket (it exited or was killed).
        std::thread::spawn(move || {
            let mut line = String::new();
            while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if v.get("event").is_some() {
                        if let Ok(mut q) = sink.lock() {
                            q.push(v);
                        }
                    }
                }
                line.clear();
            }
        });
        Ok(QmpEvents { seen })
    }

    /// Wait for qemu to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, QemuError> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().map_err(io(Path::new("qemu")))? {
                return Ok(s);
            }
            if start.elapsed() > timeout {
                return Err(QemuError::Timeout {
                    pattern: "qemu to exit".into(),
                    secs: timeout.as_secs(),
                    tail: tail(&self.spec.console_log, 40),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Wait for qemu to exit on its own, with stdout shared (interactive).
    pub fn wait(&mut self) -> Result<ExitStatus, QemuError> {
        self.child.wait().map_err(io(Path::new("qemu")))
    }

    /// Read qemu's stdout, if it was not inherited (for diagnostics).
    pub fn stdout(&mut self) -> String {
        let mut s = String::new();
        if let Some(o) = self.child.stdout.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    }
}

/// Events qemu sent on the event socket, collected by a background thread.
#[derive(Debug, Clone)]
pub struct QmpEvents {
    seen: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl QmpEvents {
    /// Every event so far, oldest first (`{"event": NAME, "data": ...}`).
    pub fn all(&self) -> Vec<serde_json::Value> {
        self.seen.lock().map(|q| q.clone()).unwrap_or_default()
    }

    /// The events named `name` so far.
    pub fn named(&self, name: &str) -> Vec<serde_json::Value> {
        self.all()
            .into_iter()
            .filter(|e| e["event"] == name)
            .collect()
    }

    /// Wait until an event named `name` has arrived; return it.
    pub fn wait_for(&self, name: &str, timeout: Duration) -> Option<serde_json::Value> {
        let start = Instant::now();
        loop {
            if let Some(e) = self.named(name).into_iter().next() {
                return Some(e);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// What [`boot_until_ready`] saw.
#[derive(Debug, Clone)]
pub struct Ready {
    /// From starting qemu to `flexvisor: ready` on the console.
    pub to_ready: Duration,
    pub console: String,
}

/// Boot, wait for `flexvisor: ready` (and the console report, briefly),
/// then power off through ACPI and wait for qemu to exit.
pub fn boot_until_ready(spec: BootSpec, timeout: Duration) -> Result<Ready, QemuError> {
    let start = Instant::now();
    let mut vm = Vm::start(spec)?;
    let console = vm.wait_for("flexvisor: ready", timeout)?;
    let to_ready = start.elapsed();
    let console = vm
        .wait_for("flexvisor-report: mdstat end", Duration::from_secs(60))
        .unwrap_or(console);
    vm.qmp("system_powerdown")?;
    vm.wait_exit(Duration::from_secs(120))?;
    Ok(Ready { to_ready, console })
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uefi_boot_uses_pflash_and_direct_boot_does_not() {
        let mut s = BootSpec {
            image: "/x/bay05.img".into(),
            direct: None,
            second_disk: "/x/bay05.disk2.img".into(),
            memory_mib: 256,
            bay: Some(5),
            nics: vec![Nic {
                local_port: 1,
                remote_port: 2,
                mac: "52:54:00:00:00:01".into(),
            }],
            console_log: "/x/c.log".into(),
            console_stdout: false,
            qmp: "/x/q.sock".into(),
            qmp_events: "/x/qe.sock".into(),
            watchdog: true,
            run_dir: "/x/run".into(),
            bmc_port: Some(9002),
            disk_bytes: None,
            accel: "tcg".into(),
        };
        let a = s.args().join(" ");
        assert!(a.contains("if=pflash"));
        assert!(a.contains("type=3,manufacturer=flexvisor,asset=bay=5"));
        assert!(a.contains("local.host=127.0.0.1,local.port=1"));
        assert!(a.contains("-device i6300esb -action watchdog=reset"));
        assert!(a.contains("-qmp unix:/x/qe.sock,server=on,wait=off"));
        assert!(a.contains("port=9002") && a.contains("isa-ipmi-kcs,bmc=bmc0"));
        s.watchdog = false;
        assert!(!s.args().join(" ").contains("i6300esb"));
        s.direct = Some(("/k".into(), "/i".into(), "console=ttyS0".into()));
        let a = s.args().join(" ");
        assert!(!a.contains("pflash") && a.contains("-kernel /k"));
    }
}

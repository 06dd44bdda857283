//! The qemu command line of one chassis node, and the script its BMC runs
//! to power it on.
//!
//! A node is a q35 machine under TCG with: two virtio disks, each on its
//! own PCIe root port so it can be pulled and replaced while running; one
//! virtio NIC per switch module on qemu's `dgram` backend (unix sockets,
//! see [`crate::fabric`]); the external BMC device wired to the node's
//! `ipmi_sim` (guest `/dev/ipmi0` through KCS); the serial console appended
//! to a log file; a QMP socket; the bay in SMBIOS (type 3 asset tag
//! `bay=N`, what the image reads when no BMC answers with the bay); a
//! second serial port on a unix socket (the technician's console).

use std::path::{Path, PathBuf};

/// How the VM boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// `-kernel`/`-initrd`/`-append`.
    Direct {
        kernel: PathBuf,
        initrd: PathBuf,
        cmdline: String,
    },
    /// UEFI (OVMF) from the first disk; the variables file is per node.
    Uefi { code: PathBuf, vars: PathBuf },
}

/// One NIC of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSpec {
    /// Guest-facing id (`eth0`), also the QMP `set_link` name.
    pub id: String,
    /// MAC address.
    pub mac: String,
    /// qemu's own socket (`local.path`).
    pub local: PathBuf,
    /// The switch socket (`remote.path`).
    pub switch: PathBuf,
}

/// One disk of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// Device id (`disk0`), used by `device_del`.
    pub id: String,
    /// Raw image file.
    pub file: PathBuf,
    /// Serial the guest sees (`/dev/disk/by-id/virtio-<serial>`).
    pub serial: String,
}

/// Everything about one node VM.
#[derive(Debug, Clone)]
pub struct VmSpec {
    /// Node name (hostname).
    pub name: String,
    /// Bay number.
    pub bay: u32,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Boot method.
    pub boot: Boot,
    /// Disks, in order.
    pub disks: Vec<DiskSpec>,
    /// NICs, in order.
    pub nics: Vec<NicSpec>,
    /// TCP port on 127.0.0.1 of the node's BMC simulator (VM channel).
    pub bmc_port: Option<u16>,
    /// Console log file.
    pub console: PathBuf,
    /// QMP socket.
    pub qmp: PathBuf,
    /// The second serial port (guest `ttyS1`) as a unix socket server: the
    /// technician's console the harness runs commands through (see
    /// [`crate::guest::TECH_CONSOLE_SERVICE`]); `None`: no second port.
    pub ctl: Option<PathBuf>,
    /// Pid file (the harness kills a VM left behind by its BMC).
    pub pidfile: PathBuf,
    /// Accelerator (`tcg`).
    pub accel: String,
}

/// Number of spare PCIe root ports for replacement disks.
const SPARE_PORTS: usize = 2;

impl VmSpec {
    /// The root port a disk's device sits on (`rp<n>`); replacements use
    /// the ports after the initial disks.
    pub fn root_port(index: usize) -> String {
        format!("rp{index}")
    }

    /// The qemu arguments (without the program).
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "-name",
            &self.name,
            "-machine",
            "q35",
            "-accel",
            &self.accel,
            "-smp",
            "1",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        a.extend(["-m".into(), self.memory_mib.to_string()]);
        a.extend([
            "-chardev".into(),
            format!("file,id=con0,path={},append=on", self.console.display()),
            "-serial".into(),
            "chardev:con0".into(),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", self.qmp.display()),
            "-pidfile".into(),
            self.pidfile.display().to_string(),
        ]);
        if let Some(ctl) = &self.ctl {
            a.extend([
                "-chardev".into(),
                format!("socket,id=ctl0,path={},server=on,wait=off", ctl.display()),
                "-serial".into(),
                "chardev:ctl0".into(),
            ]);
        }
        for i in 0..self.disks.len() + SPARE_PORTS {
            a.extend([
                "-device".into(),
                format!(
                    "pcie-root-port,id={},bus=pcie.0,chassis={},slot={}",
                    Self::root_port(i),
                    i + 1,
                    i + 1
                ),
            ]);
        }
        for (i, d) in self.disks.iter().enumerate() {
            a.extend([
                "-blockdev".into(),
                format!(
                    "driver=raw,node-name={id}-blk,file.driver=file,file.filename={f},cache.no-flush=on",
                    id = d.id,
                    f = d.file.display()
                ),
                "-device".into(),
                format!(
                    "virtio-blk-pci,id={id},drive={id}-blk,serial={s},bus={rp}",
                    id = d.id,
                    s = d.serial,
                    rp = Self::root_port(i)
                ),
            ]);
        }
        for n in &self.nics {
            a.extend([
                "-netdev".into(),
                format!(
                    "dgram,id={id},local.type=unix,local.path={l},remote.type=unix,remote.path={r}",
                    id = n.id,
                    l = n.local.display(),
                    r = n.switch.display()
                ),
                "-device".into(),
                format!(
                    "virtio-net-pci,netdev={id},id=nic-{id},mac={m}",
                    id = n.id,
                    m = n.mac
                ),
            ]);
        }
        if let Some(port) = self.bmc_port {
            a.extend([
                "-chardev".into(),
                format!("socket,id=bmcchr,host=127.0.0.1,port={port},reconnect=2"),
                "-device".into(),
                "ipmi-bmc-extern,chardev=bmcchr,id=bmc0".into(),
                "-device".into(),
                "isa-ipmi-kcs,bmc=bmc0".into(),
            ]);
        }
        a.extend([
            "-smbios".into(),
            format!("type=3,manufacturer=flexvisor,asset=bay={}", self.bay),
            "-smbios".into(),
            format!("type=1,manufacturer=IBM,product=x240,serial={}", self.name),
        ]);
        match &self.boot {
            Boot::Direct {
                kernel,
                initrd,
                cmdline,
            } => a.extend([
                "-kernel".into(),
                kernel.display().to_string(),
                "-initrd".into(),
                initrd.display().to_string(),
                "-append".into(),
                cmdline.clone(),
            ]),
            Boot::Uefi { code, vars } => a.extend([
                "-drive".into(),
                format!(
                    "if=pflash,format=raw,unit=0,readonly=on,file={}",
                    code.display()
                ),
                "-drive".into(),
                format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            ]),
        }
        a
    }

    /// The power-on script the BMC runs: `exec qemu-system-x86_64 ...`
    /// with every argument single-quoted.
    pub fn power_on_script(&self) -> String {
        let quoted: Vec<String> = self.args().iter().map(|a| shell_quote(a)).collect();
        format!(
            "#!/bin/sh\n# Written by qemu-tests: the BMC of {} runs this on power on.\nrm -f {}\nexec qemu-system-x86_64 {}\n",
            self.name,
            shell_quote(&self.qmp.display().to_string()),
            quoted.join(" ")
        )
    }

    /// The pid of the running VM, from its pid file.
    pub fn running_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(&self.pidfile)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let alive = Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.starts_with("qemu"))
                .unwrap_or(false);
        alive.then_some(pid)
    }

    /// Kill the VM if it still runs (SIGKILL): the last resort on teardown.
    pub fn kill(&self) {
        if let Some(pid) = self.running_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Quote `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            name: "lb1a".into(),
            bay: 5,
            memory_mib: 256,
            boot: Boot::Direct {
                kernel: "/k".into(),
                initrd: "/i".into(),
                cmdline: "console=ttyS0 it's".into(),
            },
            disks: vec![DiskSpec {
                id: "disk0".into(),
                file: "/d0.img".into(),
                serial: "lb1a-d0".into(),
            }],
            nics: vec![NicSpec {
                id: "eth0".into(),
                mac: "52:54:00:05:00:00".into(),
                local: "/r/lb1a-eth0.ep".into(),
                switch: "/r/io1.sw".into(),
            }],
            bmc_port: Some(9005),
            console: "/r/lb1a.console".into(),
            qmp: "/r/lb1a.qmp".into(),
            ctl: Some("/r/lb1a.ctl".into()),
            pidfile: "/r/lb1a.pid".into(),
            accel: "tcg".into(),
        }
    }

    #[test]
    fn disks_sit_on_hotpluggable_root_ports_and_bmc_is_external() {
        let a = spec().args().join(" ");
        assert!(
            a.contains("virtio-blk-pci,id=disk0,drive=disk0-blk,serial=lb1a-d0,bus=rp0"),
            "{a}"
        );
        assert!(a.contains("pcie-root-port,id=rp2"), "spare ports: {a}");
        assert!(a.contains("ipmi-bmc-extern,chardev=bmcchr"), "{a}");
        assert!(a.contains("remote.type=unix,remote.path=/r/io1.sw"), "{a}");
        assert!(a.contains("asset=bay=5"), "{a}");
        // The console first (ttyS0), the technician's port second (ttyS1).
        let con = a.find("-serial chardev:con0").expect("console serial");
        let ctl = a
            .find("socket,id=ctl0,path=/r/lb1a.ctl,server=on,wait=off -serial chardev:ctl0")
            .expect("technician serial");
        assert!(con < ctl, "{a}");
    }

    #[test]
    fn script_quotes_arguments_for_the_shell() {
        let s = spec().power_on_script();
        assert!(s.contains("'console=ttyS0 it'\\''s'"), "{s}");
        assert!(s.contains("exec qemu-system-x86_64 '-name' 'lb1a'"), "{s}");
    }
}

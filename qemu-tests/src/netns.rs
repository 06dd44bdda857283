//! The network namespace the harness creates for one run.
//!
//! Everything with an IP port (the BMC and CMM simulators, the EN2092 SNMP
//! agents, qemu's connection to its BMC) runs inside it, on the namespace's
//! own loopback, so a run touches no host address and two runs never clash.
//! The name carries the pid and a counter; the namespace is deleted on drop.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::proc::{self, ProcError};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace owned by this process; removed on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Create `fvq<pid>-<n>` with its loopback up.
    pub fn create() -> Result<Netns, ProcError> {
        proc::require("ip", "iproute2")?;
        let name = format!(
            "fvq{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        proc::run(Command::new("ip").args(["netns", "add", &name]))?;
        crate::cleanup::add_netns(&name);
        let ns = Netns { name };
        proc::run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    /// The namespace's name (`ip netns list` shows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Add `addr/prefix` to the namespace's loopback, so a simulator can
    /// listen on the address the profile gives it.
    pub fn add_loopback_address(&self, cidr: &str) -> Result<(), ProcError> {
        proc::run(Command::new("ip").args(["-n", &self.name, "addr", "add", cidr, "dev", "lo"]))
            .map(|_| ())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        crate::cleanup::remove_netns(&self.name);
    }
}

impl Netns {
    /// Run `f` on a thread that has entered the namespace, and return its
    /// result. Sockets `f` creates stay in the namespace and may be used
    /// from any thread afterwards (e.g. a simulator's console connection).
    pub fn within<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, std::io::Error> {
        let path = format!("/run/netns/{}", self.name);
        let file = std::fs::File::open(&path)?;
        std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| std::io::Error::other(format!("setns {path}: {e}")))?;
            Ok(f())
        })
        .join()
        .map_err(|_| std::io::Error::other("namespace thread panicked"))?
    }
}

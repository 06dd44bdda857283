//! Test harness: runs the real `flexvisor` binary as PID 1 of a fresh PID
//! namespace (`unshare --pid --fork --mount-proc --kill-child`) with
//! service definitions in a temp dir, and talks to it over its control
//! socket with the library client. Everything is killed on drop.
#![allow(dead_code, clippy::unwrap_used)]

pub mod pair;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flexvisor::control::client::Client;
use flexvisor::control::proto::{Op, ServiceStatus, Status};

/// Generous bound for anything to happen (a hang guard, not a measurement).
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Sup {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub output: Arc<Mutex<Vec<String>>>,
    /// Network namespace to run flexvisor in (`ip netns exec`).
    pub netns: Option<String>,
}

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests run flexvisor as PID 1 of a new PID namespace and need root"
    );
}

/// A unique number to mark processes of one test in `ps`.
pub fn marker() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    800_000 + (t ^ std::process::id()) % 100_000
}

impl Sup {
    pub fn services_dir(&self) -> PathBuf {
        self.dir.path().join("services.d")
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn write_service(&self, name: &str, toml: &str) {
        std::fs::write(self.services_dir().join(format!("{name}.toml")), toml).unwrap();
    }

    /// Prepare a directory with these definitions; `{dir}` in them is
    /// replaced by the temp dir.
    pub fn prepare(services: &[(&str, &str)]) -> Self {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("services.d")).unwrap();
        let socket = dir.path().join("run/control.sock");
        let s = Self {
            child: None,
            dir,
            socket,
            output: Arc::new(Mutex::new(Vec::new())),
            netns: None,
        };
        for (name, text) in services {
            let text = text.replace("{dir}", &s.dir.path().display().to_string());
            s.write_service(name, &text);
        }
        s
    }

    /// Start flexvisor with the standard test flags plus `extra`.
    pub fn launch(mut self, extra: &[&str]) -> Self {
        let bin = env!("CARGO_BIN_EXE_flexvisor");
        let d = self.dir.path();
        // `ip netns exec` execs unshare: the child stays unshare either way.
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "unshare"]);
                c
            }
            None => Command::new("unshare"),
        };
        cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(bin)
            .arg("--no-init")
            .arg("--services-dir")
            .arg(d.join("services.d"))
            .arg("--run-dir")
            .arg(d.join("run"))
            .arg("--log-dir")
            .arg(d.join("log"))
            // Tests touch loopback only.
            .args(["--metrics-bind", "127.0.0.1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .expect("cannot run `unshare` (util-linux) to create a PID namespace");
        let out = self.output.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                out.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
        let t0 = Instant::now();
        // The socket file appears at bind(), before listen(): wait until a
        // connection is accepted.
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("flexvisor exited early ({st}):\n{}", self.console());
            }
            assert!(
                t0.elapsed() < WAIT,
                "no control socket:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self
    }

    pub fn start(services: &[(&str, &str)]) -> Self {
        Self::prepare(services).launch(&[])
    }

    pub fn console(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket).unwrap()
    }

    pub fn call(&self, op: Op) -> Result<serde_json::Value, String> {
        self.client().call(op).map_err(|e| e.to_string())
    }

    pub fn status(&self) -> Status {
        serde_json::from_value(self.call(Op::Status).unwrap()).unwrap()
    }

    pub fn service(&self, name: &str) -> ServiceStatus {
        self.status()
            .services
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    /// Poll status until `pred` holds; panics with the console after WAIT.
    pub fn wait_until(&self, what: &str, pred: impl Fn(&Status) -> bool) -> Status {
        let t0 = Instant::now();
        loop {
            let st = self.status();
            if pred(&st) {
                return st;
            }
            assert!(
                t0.elapsed() < WAIT,
                "timed out waiting for {what}; status: {st:#?}\nconsole:\n{}\nevents:\n{}",
                self.console(),
                self.call(Op::Events {
                    follow: false,
                    since: 0
                })
                .map(|v| v.to_string())
                .unwrap_or_else(|e| e)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_state(&self, name: &str, state: &str) -> ServiceStatus {
        let st = self.wait_until(&format!("{name} {state}"), |st| {
            st.services
                .iter()
                .any(|s| s.name == name && s.state == state)
        });
        st.services.into_iter().find(|s| s.name == name).unwrap()
    }

    pub fn wait_console(&self, needle: &str) {
        let t0 = Instant::now();
        while !self.console().contains(needle) {
            assert!(
                t0.elapsed() < WAIT,
                "console never said {needle:?}:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Host pid of flexvisor (the child of unshare).
    pub fn host_pid(&self) -> u32 {
        let u = self.child.as_ref().unwrap().id();
        let t0 = Instant::now();
        loop {
            let c =
                std::fs::read_to_string(format!("/proc/{u}/task/{u}/children")).unwrap_or_default();
            if let Some(p) = c.split_whitespace().next() {
                return p.parse().unwrap();
            }
            assert!(t0.elapsed() < WAIT, "unshare has no child");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Ask for poweroff and wait for the process to end.
    pub fn shutdown(&mut self) -> (ExitStatus, String) {
        let _ = self.call(Op::Poweroff);
        let st = self.wait_exit();
        (st, self.console())
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                // Let the stderr reader catch up.
                std::thread::sleep(Duration::from_millis(50));
                return st;
            }
            assert!(t0.elapsed() < WAIT * 2, "flexvisor did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sup {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            // --kill-child: SIGKILL reaches flexvisor, and with PID 1 of the
            // namespace gone every process in it dies.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Host pids whose command line contains `needle`.
pub fn pids_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) && !cmd.contains("flexvisor") {
            out.push(pid);
        }
    }
    out
}

/// Zombie children of `parent` (host pids).
pub fn zombies_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        if field("PPid:") == parent.to_string() && field("State:").starts_with('Z') {
            out.push(pid);
        }
    }
    out
}

pub fn wait_for(what: &str, f: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A cgroup2 mount usable for service cgroups, if this machine has one.
pub fn cgroup2_root() -> Option<&'static str> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|p| flexvisor::cgroup::is_cgroup2(Path::new(p)))
}

/// The `flexctl` binary next to ours, (re)built so it is never stale.
pub fn flexctl_bin() -> PathBuf {
    let me = PathBuf::from(env!("CARGO_BIN_EXE_flexvisor"));
    let path = me.with_file_name("flexctl");
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "flexctl"])
            .status()
            .expect("cannot run cargo to build flexctl");
        assert!(st.success(), "building flexctl failed");
    });
    assert!(
        path.exists(),
        "flexctl binary not found at {}",
        path.display()
    );
    path
}

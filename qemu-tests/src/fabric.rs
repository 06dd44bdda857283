//! A small userspace Ethernet switch: the virtual EN2092 fabrics.
//!
//! Every port is a unix datagram socket address: a VM's NIC (qemu's
//! `-netdev dgram,local.type=unix,...,remote.type=unix,remote.path=<switch>`)
//! or another switch (a module's uplink into the upstream network). Each
//! switch is one socket and one thread; a frame's ingress port is the
//! sender's address. Forwarding is plain MAC learning with flooding of
//! broadcast, multicast and unknown unicast.
//!
//! The harness controls the wiring while frames flow: a port can be taken
//! down (a node's link, a module's uplinks), and two nodes can be
//! partitioned from each other on every switch at once (split brain). Only
//! unix sockets in a directory the caller owns are used, so no host network
//! interface, bridge or address is touched.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest frame accepted (jumbo frames are not used in the chassis).
const MAX_FRAME: usize = 9216;
/// Shortest frame that carries both MAC addresses.
const MIN_FRAME: usize = 14;

/// Errors building or steering the fabrics.
#[derive(Debug, thiserror::Error)]
pub enum FabricError {
    #[error("cannot bind switch `{switch}` at {path}: {source}")]
    Bind {
        switch: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("socket path {0} is longer than the 107 bytes a unix socket allows; use a shorter run directory")]
    PathTooLong(PathBuf),
    #[error("no switch named `{0}`")]
    NoSwitch(String),
    #[error("switch `{switch}` has no port `{port}`")]
    NoPort { switch: String, port: String },
    #[error("switch `{switch}` already has a port `{port}`")]
    DuplicatePort { switch: String, port: String },
}

/// Frame counters of one port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received from the port's peer.
    pub rx: u64,
    /// Frames sent to the port's peer.
    pub tx: u64,
    /// Frames dropped because the port was down or partitioned.
    pub dropped: u64,
}

#[derive(Debug)]
struct Port {
    name: String,
    /// The node this port faces, for partitions; `None` for switch links.
    owner: Option<String>,
    peer: PathBuf,
    up: bool,
    stats: PortStats,
}

#[derive(Debug)]
struct Switch {
    name: String,
    path: PathBuf,
    ports: Vec<Port>,
    macs: HashMap<[u8; 6], usize>,
    unknown_sender: u64,
}

#[derive(Debug, Default)]
struct State {
    switches: Vec<Switch>,
    /// Source MAC -> node that sent it first (learned on node-facing ports).
    mac_owner: HashMap<[u8; 6], String>,
    /// Unordered node pairs that must not hear each other.
    blocked: HashSet<(String, String)>,
    /// VRRP adverts and ARP announcements seen, oldest first.
    seen: Vec<Seen>,
}

/// How many observations the fabric keeps.
const SEEN_MAX: usize = 20_000;

/// A protocol event observed on a switch (the harness's view of who holds
/// a shared address, taken from the wire like an upstream router would).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A VRRP advertisement (RFC 5798 §5.1) for `vrid` at `priority`.
    Advert { vrid: u8, priority: u8 },
    /// An ARP packet whose sender claims `ip` (gratuitous ARP after a
    /// takeover, RFC 5798 §6.4.2).
    Arp { ip: std::net::Ipv4Addr },
}

/// One observation: when, on which switch, from which MAC and node.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When the switch received it.
    pub at: std::time::Instant,
    /// Switch name.
    pub switch: String,
    /// Source MAC of the frame.
    pub src: [u8; 6],
    /// Node that sent it, if learned.
    pub node: Option<String>,
    /// What it was.
    pub what: Observed,
}

/// Classify a frame: VRRP advert or ARP, else `None`. Tolerates any
/// garbage (the fabric carries whatever guests send).
pub fn observe(frame: &[u8]) -> Option<Observed> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let l3 = frame.get(14..)?;
    match ethertype {
        0x0800 => {
            let ihl = usize::from(l3.first()? & 0x0F) * 4;
            if l3.first()? >> 4 != 4 || ihl < 20 || *l3.get(9)? != 112 {
                return None;
            }
            let v = l3.get(ihl..)?;
            // Version 3 (or 2), type 1 = advertisement.
            if v.first()? & 0x0F != 1 {
                return None;
            }
            Some(Observed::Advert {
                vrid: *v.get(1)?,
                priority: *v.get(2)?,
            })
        }
        0x0806 => {
            let spa = l3.get(14..18)?;
            Some(Observed::Arp {
                ip: std::net::Ipv4Addr::new(spa[0], spa[1], spa[2], spa[3]),
            })
        }
        _ => None,
    }
}

/// The running fabrics; the threads stop and sockets are removed on drop.
#[derive(Debug)]
pub struct Fabrics {
    dir: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn key(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic in a forwarding thread must not take the harness down with
    // it; the state stays consistent between frames.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks the length limit of `sockaddr_un.sun_path`.
pub fn check_socket_path(p: &Path) -> Result<(), FabricError> {
    if p.as_os_str().len() > 107 {
        Err(FabricError::PathTooLong(p.to_owned()))
    } else {
        Ok(())
    }
}

impl Fabrics {
    /// Start one switch per name, each bound at `dir/<name>.sw`.
    pub fn start(dir: &Path, names: &[&str]) -> Result<Fabrics, FabricError> {
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (idx, name) in names.iter().enumerate() {
            let path = dir.join(format!("{name}.sw"));
            check_socket_path(&path)?;
            let _ = std::fs::remove_file(&path);
            let bind = |source| FabricError::Bind {
                switch: (*name).to_owned(),
                path: path.clone(),
                source,
            };
            let socket = UnixDatagram::bind(&path).map_err(bind)?;
            socket
                .set_read_timeout(Some(Duration::from_millis(200)))
                .map_err(bind)?;
            // A peer that stops reading (a paused VM) must not stall the
            // switch: a send waits at most this long, then the frame is lost.
            socket
                .set_write_timeout(Some(Duration::from_millis(20)))
                .map_err(bind)?;
            let socket = Arc::new(socket);
            lock(&state).switches.push(Switch {
                name: (*name).to_owned(),
                path,
                ports: Vec::new(),
                macs: HashMap::new(),
                unknown_sender: 0,
            });
            let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
            threads.push(std::thread::spawn(move || serve(idx, &socket, &st, &sp)));
        }
        Ok(Fabrics {
            dir: dir.to_owned(),
            state,
            stop,
            threads,
        })
    }

    /// Address of switch `name`: the `remote.path` a NIC connects to.
    pub fn switch_path(&self, name: &str) -> Result<PathBuf, FabricError> {
        let st = lock(&self.state);
        st.switches
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.path.clone())
            .ok_or_else(|| FabricError::NoSwitch(name.to_owned()))
    }

    /// A fresh address in the fabric directory for a NIC's `local.path`.
    pub fn endpoint_path(&self, label: &str) -> Result<PathBuf, FabricError> {
        let p = self.dir.join(format!("{label}.ep"));
        check_socket_path(&p)?;
        let _ = std::fs::remove_file(&p);
        Ok(p)
    }

    /// Add port `port` to `switch`, sending to `peer` and owned by node
    /// `owner` (if it faces a node).
    pub fn add_port(
        &self,
        switch: &str,
        port: &str,
        owner: Option<&str>,
        peer: &Path,
    ) -> Result<(), FabricError> {
        let mut st = lock(&self.state);
        let sw = find(&mut st, switch)?;
        if sw.ports.iter().any(|p| p.name == port) {
            return Err(FabricError::DuplicatePort {
                switch: switch.to_owned(),
                port: port.to_owned(),
            });
        }
        sw.ports.push(Port {
            name: port.to_owned(),
            owner: owner.map(str::to_owned),
            peer: peer.to_owned(),
            up: true,
            stats: PortStats::default(),
        });
        Ok(())
    }

    /// Cable port `a_port` of switch `a` to port `b_port` of switch `b`.
    pub fn link(&self, a: &str, a_port: &str, b: &str, b_port: &str) -> Result<(), FabricError> {
        let (pa, pb) = (self.switch_path(a)?, self.switch_path(b)?);
        self.add_port(a, a_port, None, &pb)?;
        self.add_port(b, b_port, None, &pa)
    }

    /// Bring a port up or down (down: frames both ways are dropped).
    pub fn set_port_up(&self, switch: &str, port: &str, up: bool) -> Result<(), FabricError> {
        let mut st = lock(&self.state);
        let p = find_port(&mut st, switch, port)?;
        p.up = up;
        Ok(())
    }

    /// Whether a port is up.
    pub fn port_up(&self, switch: &str, port: &str) -> Result<bool, FabricError> {
        let mut st = lock(&self.state);
        Ok(find_port(&mut st, switch, port)?.up)
    }

    /// Counters of a port.
    pub fn stats(&self, switch: &str, port: &str) -> Result<PortStats, FabricError> {
        let mut st = lock(&self.state);
        Ok(find_port(&mut st, switch, port)?.stats)
    }

    /// Observations since `since` (all of them with `None`).
    pub fn seen_since(&self, since: Option<std::time::Instant>) -> Vec<Seen> {
        let st = lock(&self.state);
        st.seen
            .iter()
            .filter(|s| since.is_none_or(|t| s.at >= t))
            .cloned()
            .collect()
    }

    /// Nodes whose VRRP adverts for `vrid` were seen since `since`.
    pub fn advertisers(&self, vrid: u8, since: std::time::Instant) -> Vec<String> {
        let mut v: Vec<String> = self
            .seen_since(Some(since))
            .into_iter()
            .filter(|s| matches!(s.what, Observed::Advert { vrid: r, priority } if r == vrid && priority > 0))
            .map(|s| s.node.unwrap_or_else(|| format!("{:02x?}", s.src)))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Partition nodes `a` and `b` from each other on every switch (or heal
    /// the partition). Frames from one never reach a port facing the other.
    pub fn set_partition(&self, a: &str, b: &str, cut: bool) {
        let mut st = lock(&self.state);
        if cut {
            st.blocked.insert(key(a, b));
        } else {
            st.blocked.remove(&key(a, b));
        }
    }
}

fn find<'a>(st: &'a mut State, switch: &str) -> Result<&'a mut Switch, FabricError> {
    st.switches
        .iter_mut()
        .find(|s| s.name == switch)
        .ok_or_else(|| FabricError::NoSwitch(switch.to_owned()))
}

fn find_port<'a>(st: &'a mut State, switch: &str, port: &str) -> Result<&'a mut Port, FabricError> {
    find(st, switch)?
        .ports
        .iter_mut()
        .find(|p| p.name == port)
        .ok_or_else(|| FabricError::NoPort {
            switch: switch.to_owned(),
            port: port.to_owned(),
        })
}

fn mac(b: &[u8]) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[..6]);
    m
}

/// The receive loop of switch `idx`.
fn serve(idx: usize, socket: &UnixDatagram, state: &Mutex<State>, stop: &AtomicBool) {
    let mut buf = vec![0u8; MAX_FRAME];
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(v) => v,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if n < MIN_FRAME {
            continue;
        }
        let Some(from) = from.as_pathname().map(Path::to_owned) else {
            continue;
        };
        forward(idx, &buf[..n], &from, state, socket);
    }
}

/// Forward one frame that arrived at switch `idx` from `from`.
fn forward(idx: usize, frame: &[u8], from: &Path, state: &Mutex<State>, socket: &UnixDatagram) {
    let mut guard = lock(state);
    let st = &mut *guard;
    let sw = &mut st.switches[idx];
    let Some(ingress) = sw.ports.iter().position(|p| p.peer == from) else {
        sw.unknown_sender += 1;
        return;
    };
    if !sw.ports[ingress].up {
        sw.ports[ingress].stats.dropped += 1;
        return;
    }
    sw.ports[ingress].stats.rx += 1;
    let (dst, src) = (mac(&frame[0..6]), mac(&frame[6..12]));
    sw.macs.insert(src, ingress);
    if let Some(owner) = &sw.ports[ingress].owner {
        st.mac_owner.entry(src).or_insert_with(|| owner.clone());
    }
    let src_owner = st.mac_owner.get(&src).cloned();
    if let Some(what) = observe(frame) {
        if st.seen.len() >= SEEN_MAX {
            st.seen.drain(..SEEN_MAX / 2);
        }
        st.seen.push(Seen {
            at: std::time::Instant::now(),
            switch: st.switches[idx].name.clone(),
            src,
            node: src_owner.clone(),
            what,
        });
    }
    let sw = &mut st.switches[idx];
    let unicast = dst[0] & 1 == 0;
    let targets: Vec<usize> = match sw.macs.get(&dst) {
        Some(&p) if unicast => vec![p],
        _ => (0..sw.ports.len()).collect(),
    };
    for t in targets {
        if t == ingress {
            continue;
        }
        let port = &sw.ports[t];
        let partitioned = match (&src_owner, &port.owner) {
            (Some(s), Some(o)) => st.blocked.contains(&key(s, o)),
            _ => false,
        };
        let port = &mut sw.ports[t];
        if !port.up || partitioned {
            port.stats.dropped += 1;
            continue;
        }
        // A peer that is not running (VM powered off) is not an error.
        if socket.send_to(frame, &port.peer).is_ok() {
            port.stats.tx += 1;
        }
    }
}

impl Drop for Fabrics {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for s in &lock(&self.state).switches {
            let _ = std::fs::remove_file(&s.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend([0x52, 0x54, 0, 0, 5, 0]);
        f.extend(ethertype.to_be_bytes());
        f.extend(payload);
        f
    }

    #[test]
    fn vrrp_adverts_and_arp_are_recognised_and_garbage_is_not() {
        let mut ip = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 255, 112, 0, 0, 10, 20, 1, 5, 224, 0, 0, 18,
        ];
        ip.extend([0x31, 31, 150, 1, 0, 100, 0, 0, 10, 20, 1, 12]);
        assert_eq!(
            observe(&eth(0x0800, &ip)),
            Some(Observed::Advert {
                vrid: 31,
                priority: 150
            })
        );
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 2, 0x52, 0x54, 0, 0, 5, 0];
        arp.extend([10, 20, 1, 12]);
        arp.extend([0; 10]);
        assert_eq!(
            observe(&eth(0x0806, &arp)),
            Some(Observed::Arp {
                ip: "10.20.1.12".parse().unwrap()
            })
        );
        assert_eq!(observe(&eth(0x0800, &ip[..22])), None);
        assert_eq!(observe(&[0u8; 13]), None);
        ip[9] = 6;
        assert_eq!(observe(&eth(0x0800, &ip)), None);
    }

    #[test]
    fn partition_key_is_unordered() {
        assert_eq!(key("lb1b", "lb1a"), key("lb1a", "lb1b"));
    }

    #[test]
    fn long_socket_paths_are_refused_with_the_path() {
        let p = PathBuf::from(format!("/tmp/{}", "x".repeat(120)));
        let e = check_socket_path(&p).unwrap_err();
        assert!(e.to_string().contains("107 bytes"), "{e}");
    }
}

//! Minimal rtnetlink (RFC 3549; include/uapi/linux/rtnetlink.h,
//! if_link.h): just what boot needs: link up, bond with slaves, VLAN
//! links, addresses and default routes. Messages are built and acks parsed
//! by pure functions; one blocking NETLINK_ROUTE socket does the I/O.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_LINK: u16 = 5;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_BOND_MODE: u16 = 1;
const IFLA_BOND_MIIMON: u16 = 3;
const IFLA_VLAN_ID: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const IFF_UP: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(String),
    #[error("{what}: {}", std::io::Error::from_raw_os_error(*errno))]
    Kernel { what: String, errno: i32 },
    #[error("{what}: malformed netlink reply")]
    Malformed { what: String },
    #[error("no interface named `{0}`")]
    NoSuchLink(String),
    #[error("unknown bond mode `{0}` (balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, balance-alb)")]
    BondMode(String),
}

/// Bond mode name to the kernel's number (drivers/net/bonding).
pub fn bond_mode(name: &str) -> Option<u8> {
    Some(match name {
        "balance-rr" => 0,
        "active-backup" => 1,
        "balance-xor" => 2,
        "broadcast" => 3,
        "802.3ad" | "lacp" => 4,
        "balance-tlb" => 5,
        "balance-alb" => 6,
        _ => return None,
    })
}

/// A message under construction: header + fixed part + attributes.
#[derive(Debug, Clone)]
pub struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    pub fn new(kind: u16, flags: u16, seq: u32) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        Self { buf, nests: vec![] }
    }

    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.buf.extend_from_slice(b);
        self
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    pub fn attr(mut self, kind: u16, data: &[u8]) -> Self {
        let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    pub fn begin(mut self, kind: u16) -> Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self
    }

    pub fn end(mut self) -> Self {
        if let Some(start) = self.nests.pop() {
            let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.pad();
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![0u8; 4]; // family, pad, type
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&change.to_ne_bytes());
    b
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn ip_bytes(a: IpAddr) -> (u8, Vec<u8>) {
    match a {
        IpAddr::V4(v) => (libc::AF_INET as u8, v.octets().to_vec()),
        IpAddr::V6(v) => (libc::AF_INET6 as u8, v.octets().to_vec()),
    }
}

/// Result of one ack: `Some(errno)` for an error, `Some(0)` for success,
/// `None` if `reply` holds no ack for `seq`.
pub fn parse_ack(reply: &[u8], seq: u32) -> Option<i32> {
    let mut off = 0;
    while off + 16 <= reply.len() {
        let len = u32::from_ne_bytes(reply[off..off + 4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(reply[off + 4..off + 6].try_into().ok()?);
        let mseq = u32::from_ne_bytes(reply[off + 8..off + 12].try_into().ok()?);
        if len < 16 || off + len > reply.len() {
            return None;
        }
        if kind == NLMSG_ERROR && mseq == seq && len >= 20 {
            let err = i32::from_ne_bytes(reply[off + 16..off + 20].try_into().ok()?);
            return Some(-err);
        }
        off += (len + 3) & !3;
    }
    None
}

/// A NETLINK_ROUTE socket doing one request at a time.
#[derive(Debug)]
pub struct Netlink {
    sock: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub fn open() -> Result<Self, NetlinkError> {
        let sock = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| NetlinkError::Socket(e.to_string()))?;
        bind(sock.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| NetlinkError::Socket(e.to_string()))?;
        Ok(Self { sock, seq: 1 })
    }

    fn request(
        &mut self,
        what: &str,
        build: impl FnOnce(u32) -> Vec<u8>,
    ) -> Result<(), NetlinkError> {
        self.seq += 1;
        let seq = self.seq;
        let msg = build(seq);
        send(self.sock.as_raw_fd(), &msg, MsgFlags::empty())
            .map_err(|e| NetlinkError::Socket(e.to_string()))?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = recv(self.sock.as_raw_fd(), &mut buf, MsgFlags::empty())
                .map_err(|e| NetlinkError::Socket(e.to_string()))?;
            if n == 0 {
                return Err(NetlinkError::Malformed { what: what.into() });
            }
            match parse_ack(&buf[..n], seq) {
                Some(0) => return Ok(()),
                Some(errno) => {
                    return Err(NetlinkError::Kernel {
                        what: what.into(),
                        errno,
                    })
                }
                None => {}
            }
        }
    }

    pub fn index(name: &str) -> Result<i32, NetlinkError> {
        nix::net::if_::if_nametoindex(name)
            .map(|i| i32::try_from(i).unwrap_or(0))
            .map_err(|_| NetlinkError::NoSuchLink(name.to_owned()))
    }

    pub fn set_up(&mut self, name: &str, up: bool) -> Result<(), NetlinkError> {
        let idx = Self::index(name)?;
        let flags = if up { IFF_UP } else { 0 };
        self.request(
            &format!("set {name} {}", if up { "up" } else { "down" }),
            |seq| {
                Msg::new(RTM_NEWLINK, 0, seq)
                    .bytes(&ifinfomsg(idx, flags, IFF_UP))
                    .finish()
            },
        )
    }

    /// Create a bond; an existing link of that name is kept.
    pub fn add_bond(&mut self, name: &str, mode: &str, miimon_ms: u32) -> Result<(), NetlinkError> {
        let m = bond_mode(mode).ok_or_else(|| NetlinkError::BondMode(mode.into()))?;
        let r = self.request(&format!("create bond {name}"), |seq| {
            Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, seq)
                .bytes(&ifinfomsg(0, 0, 0))
                .attr(IFLA_IFNAME, &cstr(name))
                .begin(IFLA_LINKINFO)
                .attr(IFLA_INFO_KIND, b"bond")
                .begin(IFLA_INFO_DATA)
                .attr(IFLA_BOND_MODE, &[m])
                .attr(IFLA_BOND_MIIMON, &miimon_ms.to_ne_bytes())
                .end()
                .end()
                .finish()
        });
        ignore_exists(r)
    }

    pub fn enslave(&mut self, slave: &str, master: &str) -> Result<(), NetlinkError> {
        let s = Self::index(slave)?;
        let m = Self::index(master)?;
        self.request(&format!("enslave {slave} to {master}"), |seq| {
            Msg::new(RTM_NEWLINK, 0, seq)
                .bytes(&ifinfomsg(s, 0, 0))
                .attr(IFLA_MASTER, &m.to_ne_bytes())
                .finish()
        })
    }

    pub fn add_vlan(&mut self, name: &str, parent: &str, id: u16) -> Result<(), NetlinkError> {
        let p = Self::index(parent)?;
        let r = self.request(&format!("create vlan {name}"), |seq| {
            Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, seq)
                .bytes(&ifinfomsg(0, 0, 0))
                .attr(IFLA_IFNAME, &cstr(name))
                .attr(IFLA_LINK, &p.to_ne_bytes())
                .begin(IFLA_LINKINFO)
                .attr(IFLA_INFO_KIND, b"vlan")
                .begin(IFLA_INFO_DATA)
                .attr(IFLA_VLAN_ID, &id.to_ne_bytes())
                .end()
                .end()
                .finish()
        });
        ignore_exists(r)
    }

    pub fn add_address(
        &mut self,
        link: &str,
        addr: IpAddr,
        prefix: u8,
    ) -> Result<(), NetlinkError> {
        let idx = Self::index(link)?;
        let (family, bytes) = ip_bytes(addr);
        let r = self.request(&format!("add {addr}/{prefix} to {link}"), |seq| {
            let mut fixed = vec![family, prefix, 0, 0];
            fixed.extend_from_slice(&idx.to_ne_bytes());
            Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, seq)
                .bytes(&fixed)
                .attr(IFA_LOCAL, &bytes)
                .attr(IFA_ADDRESS, &bytes)
                .finish()
        });
        ignore_exists(r)
    }

    pub fn add_default_route(&mut self, gateway: IpAddr) -> Result<(), NetlinkError> {
        let (family, bytes) = ip_bytes(gateway);
        let r = self.request(&format!("add default route via {gateway}"), |seq| {
            // rtmsg: family, dst_len, src_len, tos, table main, proto boot,
            // scope universe, type unicast, flags.
            let mut fixed = vec![family, 0, 0, 0, 254, 3, 0, 1];
            fixed.extend_from_slice(&0u32.to_ne_bytes());
            Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, seq)
                .bytes(&fixed)
                .attr(RTA_GATEWAY, &bytes)
                .finish()
        });
        ignore_exists(r)
    }
}

fn ignore_exists(r: Result<(), NetlinkError>) -> Result<(), NetlinkError> {
    match r {
        Err(NetlinkError::Kernel { errno, .. }) if errno == libc::EEXIST => Ok(()),
        other => other,
    }
}

/// Bring up loopback and the node's bond, VLANs, addresses and default
/// route. Every step is attempted; the failures are returned, so a PID 1
/// keeps booting (and says what is missing).
pub fn bring_up(net: &chassis::node::NetworkConfig) -> Vec<NetlinkError> {
    let mut errs = Vec::new();
    let mut nl = match Netlink::open() {
        Ok(nl) => nl,
        Err(e) => return vec![e],
    };
    let mut note = |r: Result<(), NetlinkError>| {
        if let Err(e) = r {
            errs.push(e);
        }
    };
    note(nl.set_up("lo", true));
    let bond = &net.bond;
    note(nl.add_bond(&bond.name, &bond.mode, bond.miimon_ms));
    for nic in &bond.slaves {
        // A slave must be down to be enslaved.
        note(nl.set_up(&nic.name, false));
        note(nl.enslave(&nic.name, &bond.name));
    }
    note(nl.set_up(&bond.name, true));
    for nic in &bond.slaves {
        note(nl.set_up(&nic.name, true));
    }
    let mut gateway_done = false;
    for a in &net.addresses {
        if let Some(vlan) = a.vlan {
            note(nl.add_vlan(&a.interface, &bond.name, vlan));
            note(nl.set_up(&a.interface, true));
        }
        note(nl.add_address(&a.interface, a.address, a.prefix_len));
        if let (Some(gw), false) = (a.gateway, gateway_done) {
            note(nl.add_default_route(gw));
            gateway_done = true;
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_nested_attributes_with_lengths() {
        let m = Msg::new(RTM_NEWLINK, 0, 7)
            .bytes(&ifinfomsg(0, 0, 0))
            .begin(IFLA_LINKINFO)
            .attr(IFLA_INFO_KIND, b"bond")
            .end()
            .finish();
        assert_eq!(m.len(), 16 + 16 + 4 + 8);
        assert_eq!(
            u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize,
            m.len()
        );
        // nest header length covers its child (4 + 8).
        assert_eq!(u16::from_ne_bytes(m[32..34].try_into().unwrap()), 12);
    }

    #[test]
    fn parses_ack_and_error() {
        let mut ack = vec![];
        ack.extend_from_slice(&36u32.to_ne_bytes());
        ack.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&0u16.to_ne_bytes());
        ack.extend_from_slice(&5u32.to_ne_bytes());
        ack.extend_from_slice(&0u32.to_ne_bytes());
        ack.extend_from_slice(&(-17i32).to_ne_bytes());
        ack.extend_from_slice(&[0u8; 16]);
        assert_eq!(parse_ack(&ack, 5), Some(17));
        assert_eq!(parse_ack(&ack, 6), None);
        assert_eq!(parse_ack(&ack[..10], 5), None);
    }

    proptest::proptest! {
        #[test]
        fn parse_ack_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..128), seq: u32) {
            let _ = parse_ack(&b, seq);
        }
    }
}

//! Link state from rtnetlink (`RTM_GETLINK` dumps and `RTMGRP_LINK` events,
//! rtnetlink(7)), with a pure parser for the kernel's replies.
//!
//! Only the fields the uplink check needs are decoded: name, index, flags
//! (`IFF_UP`, `IFF_LOWER_UP`), operstate (RFC 2863 values as in
//! `IF_OPER_*`), carrier and master index. A netlink socket belongs to the
//! network namespace it was created in, which lets tests read a namespace
//! they created without entering it for every read.

use nix::sys::socket::{
    bind, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};
use nix::sys::time::TimeVal;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_CARRIER: u16 = 33;
const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x1_0000;
/// `RTMGRP_LINK` multicast group.
const RTMGRP_LINK: u32 = 0x1;

/// Error talking rtnetlink.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// A socket call failed.
    #[error("rtnetlink {what}: {source}")]
    Sys {
        /// Which call.
        what: &'static str,
        /// errno.
        #[source]
        source: nix::Error,
    },
    /// The kernel answered with an error message.
    #[error("rtnetlink request refused: errno {0}")]
    Refused(i32),
    /// A reply could not be decoded.
    #[error("rtnetlink reply malformed: {0}")]
    Malformed(String),
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Interface index.
    pub index: i32,
    /// Name (`eth0`).
    pub name: String,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// Lower layer up (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// `IFLA_OPERSTATE` (6 = up, 2 = down, 0 = unknown...).
    pub operstate: u8,
    /// `IFLA_CARRIER`, when present.
    pub carrier: Option<bool>,
    /// `IFLA_MASTER` index (bond), when enslaved.
    pub master: Option<i32>,
}

impl Link {
    /// The link carries traffic: admin up and operationally up (or
    /// unknown operstate with carrier, as some drivers report).
    pub fn is_up(&self) -> bool {
        self.admin_up
            && self.lower_up
            && (self.operstate == 6 || (self.operstate == 0 && self.carrier != Some(false)))
    }

    /// Operstate as the word `ip link` prints.
    pub fn operstate_word(&self) -> &'static str {
        match self.operstate {
            1 => "NOTPRESENT",
            2 => "DOWN",
            3 => "LOWERLAYERDOWN",
            4 => "TESTING",
            5 => "DORMANT",
            6 => "UP",
            _ => "UNKNOWN",
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Outcome of parsing one datagram.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// `RTM_NEWLINK` messages.
    pub links: Vec<Link>,
    /// Indexes from `RTM_DELLINK`.
    pub removed: Vec<i32>,
    /// `NLMSG_DONE` seen (end of a dump).
    pub done: bool,
}

/// Parse one datagram of rtnetlink messages. Pure; never panics.
pub fn parse_datagram(buf: &[u8]) -> Result<Parsed, NetlinkError> {
    let mut out = Parsed::default();
    let mut off = 0usize;
    while off + NLMSG_HDRLEN <= buf.len() {
        let len = u32_at(buf, off).unwrap_or(0) as usize;
        let ty = u16_at(buf, off + 4).unwrap_or(0);
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            return Err(NetlinkError::Malformed(format!(
                "message at offset {off} claims length {len}, datagram has {}",
                buf.len()
            )));
        }
        let payload = &buf[off + NLMSG_HDRLEN..off + len];
        match ty {
            NLMSG_DONE => out.done = true,
            NLMSG_NOOP => {}
            NLMSG_ERROR => {
                let errno = i32_at(payload, 0).unwrap_or(0);
                if errno != 0 {
                    return Err(NetlinkError::Refused(-errno));
                }
            }
            RTM_NEWLINK => out.links.push(parse_link(payload)?),
            RTM_DELLINK => out.removed.push(parse_link(payload)?.index),
            _ => {}
        }
        off += (len + 3) & !3;
    }
    Ok(out)
}

fn parse_link(p: &[u8]) -> Result<Link, NetlinkError> {
    if p.len() < IFINFOMSG_LEN {
        return Err(NetlinkError::Malformed(format!(
            "ifinfomsg of {} bytes, need {IFINFOMSG_LEN}",
            p.len()
        )));
    }
    let index = i32_at(p, 4).unwrap_or(0);
    let flags = u32_at(p, 8).unwrap_or(0);
    let mut link = Link {
        index,
        name: String::new(),
        admin_up: flags & IFF_UP != 0,
        lower_up: flags & IFF_LOWER_UP != 0,
        operstate: 0,
        carrier: None,
        master: None,
    };
    let mut off = IFINFOMSG_LEN;
    while off + 4 <= p.len() {
        let alen = usize::from(u16_at(p, off).unwrap_or(0));
        let aty = u16_at(p, off + 2).unwrap_or(0) & 0x3FFF;
        if alen < 4 || off + alen > p.len() {
            return Err(NetlinkError::Malformed(format!(
                "attribute at offset {off} of link {index} claims length {alen}"
            )));
        }
        let data = &p[off + 4..off + alen];
        match aty {
            IFLA_IFNAME => {
                let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
                link.name = String::from_utf8_lossy(&data[..end]).into_owned();
            }
            IFLA_OPERSTATE => link.operstate = data.first().copied().unwrap_or(0),
            IFLA_CARRIER => link.carrier = data.first().map(|c| *c != 0),
            IFLA_MASTER => link.master = i32_at(data, 0),
            _ => {}
        }
        off += (alen + 3) & !3;
    }
    Ok(link)
}

fn nl_socket(groups: u32, timeout: Duration) -> Result<OwnedFd, NetlinkError> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(|source| NetlinkError::Sys {
        what: "socket",
        source,
    })?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups)).map_err(|source| NetlinkError::Sys {
        what: "bind",
        source,
    })?;
    let tv = TimeVal::new(
        i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        i64::from(timeout.subsec_micros()),
    );
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv).map_err(|source| NetlinkError::Sys {
        what: "SO_RCVTIMEO",
        source,
    })?;
    Ok(fd)
}

/// A socket for link dumps, bound to the network namespace of the thread
/// that created it.
#[derive(Debug)]
pub struct LinkReader {
    fd: OwnedFd,
    seq: u32,
}

impl LinkReader {
    /// Open a reader in the calling thread's network namespace.
    pub fn new(timeout: Duration) -> Result<LinkReader, NetlinkError> {
        Ok(LinkReader {
            fd: nl_socket(0, timeout)?,
            seq: 1,
        })
    }

    /// Dump all links.
    pub fn dump(&mut self) -> Result<Vec<Link>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut req = Vec::with_capacity(NLMSG_HDRLEN + IFINFOMSG_LEN);
        req.extend_from_slice(&((NLMSG_HDRLEN + IFINFOMSG_LEN) as u32).to_ne_bytes());
        req.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
        req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req.extend_from_slice(&self.seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(&[0u8; IFINFOMSG_LEN]);
        send(self.fd.as_raw_fd(), &req, MsgFlags::empty()).map_err(|source| NetlinkError::Sys {
            what: "send RTM_GETLINK",
            source,
        })?;
        let mut links = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|source| {
                NetlinkError::Sys {
                    what: "recv RTM_NEWLINK",
                    source,
                }
            })?;
            let parsed = parse_datagram(&buf[..n])?;
            links.extend(parsed.links);
            if parsed.done || n == 0 {
                return Ok(links);
            }
        }
    }
}

/// Subscription to link change events (`RTMGRP_LINK`).
#[derive(Debug)]
pub struct LinkEvents {
    fd: OwnedFd,
}

impl LinkEvents {
    /// Subscribe in the calling thread's network namespace; `wait` returns
    /// after `timeout` when nothing happens.
    pub fn new(timeout: Duration) -> Result<LinkEvents, NetlinkError> {
        Ok(LinkEvents {
            fd: nl_socket(RTMGRP_LINK, timeout)?,
        })
    }

    /// Block until a link event arrives (returns the links it carried) or
    /// the timeout passes (returns an empty list).
    pub fn wait(&mut self) -> Result<Vec<Link>, NetlinkError> {
        let mut buf = vec![0u8; 32 * 1024];
        match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => Ok(parse_datagram(&buf[..n])?.links),
            Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => Ok(Vec::new()),
            // Overrun: events were lost, the caller re-dumps anyway.
            Err(nix::Error::ENOBUFS) => Ok(Vec::new()),
            Err(source) => Err(NetlinkError::Sys {
                what: "recv link event",
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn attr(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    pub(super) fn newlink(index: i32, name: &str, flags: u32, oper: u8) -> Vec<u8> {
        let mut p = vec![0u8, 0, 1, 0];
        p.extend_from_slice(&index.to_ne_bytes());
        p.extend_from_slice(&flags.to_ne_bytes());
        p.extend_from_slice(&0u32.to_ne_bytes());
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        p.extend(attr(IFLA_IFNAME, &n));
        p.extend(attr(IFLA_OPERSTATE, &[oper]));
        p.extend(attr(IFLA_CARRIER, &[u8::from(oper == 6)]));
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + p.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend(p);
        m
    }

    #[test]
    fn parses_newlink_and_done() {
        let mut d = newlink(3, "eth0", IFF_UP | IFF_LOWER_UP, 6);
        d.extend(newlink(4, "eth1", IFF_UP, 2));
        let mut done = Vec::new();
        done.extend_from_slice(&20u32.to_ne_bytes());
        done.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        done.extend_from_slice(&[0u8; 14]);
        d.extend(done);
        let p = parse_datagram(&d).expect("parse");
        assert!(p.done);
        assert_eq!(p.links.len(), 2);
        assert!(p.links[0].is_up());
        assert_eq!(p.links[1].name, "eth1");
        assert!(!p.links[1].is_up());
        assert_eq!(p.links[1].operstate_word(), "DOWN");
    }

    #[test]
    fn truncated_message_is_an_error_not_a_panic() {
        let d = newlink(3, "eth0", IFF_UP, 6);
        assert!(parse_datagram(&d[..d.len() - 3]).is_err());
    }

    #[test]
    fn dumps_loopback_of_this_namespace() {
        let mut r = LinkReader::new(Duration::from_secs(2)).expect("netlink");
        let links = r.dump().expect("dump");
        assert!(links.iter().any(|l| l.name == "lo"), "{links:?}");
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256),
                               flip in any::<(usize, u8)>()) {
            let _ = parse_datagram(&bytes);
            let mut d = newlink(7, "ethX", IFF_UP, 6);
            let at = flip.0 % d.len();
            d[at] = flip.1;
            let _ = parse_datagram(&d);
        }
    }
}

//! Accept_Mode off: a master that is not the address owner does not accept packets
//! addressed to the virtual addresses (RFC 5798 §6.1 Accept_Mode, §6.4.3 "MUST NOT
//! accept packets addressed to the IPvX address(es) associated with the virtual router
//! if it is not the IPvX address owner and Accept_Mode is False").
//!
//! The kernel does the dropping: one nf_tables table per instance, written through
//! nfnetlink (`NETLINK_NETFILTER`) with no C library and no `nft` binary:
//!
//! ```text
//! table ip flexvisor-vrrp-<iface>-<vrid> {          # ip6 for IPv6 instances
//!     chain input {
//!         type filter hook input priority 0; policy accept;
//!         meta iif <iface> meta l4proto ipv6-icmp icmpv6 type 135-136 accept   # ip6 only: ND
//!         meta iif <iface> ip daddr <vip> drop                                  # per address
//!     }
//! }
//! ```
//!
//! ARP is another netfilter family and never reaches this table, so the master keeps
//! answering ARP for the addresses; for IPv6, neighbour solicitations and
//! advertisements are let through explicitly. The rule matches the VRRP interface
//! only: the node's own processes can still reach the address over loopback.
//!
//! Installing replaces the table in one atomic batch (create, delete, create again
//! with its chain and rules), so repeating it never duplicates rules; removing is
//! create-then-delete, which succeeds whether the table existed or not.
//!
//! [`Batch`] builds the messages (pure, unit-tested); [`apply`] sends a batch and
//! reads the kernel's acknowledgements.

use std::net::IpAddr;

/// Why the filter could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The netfilter netlink socket could not be opened or used.
    #[error("nf_tables: {what}: {source}")]
    Socket {
        /// What was being done.
        what: &'static str,
        /// The system's answer.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a message of the batch.
    #[error("nf_tables: kernel refused {message} for table {table}: {source}")]
    Refused {
        /// Which message.
        message: &'static str,
        /// The table.
        table: String,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// The kernel did not acknowledge every message.
    #[error("nf_tables: no acknowledgement for {0} for table {1}")]
    NoAck(&'static str, String),
}

// Constants of the kernel's uapi (linux/netfilter/nfnetlink.h, nf_tables.h).
const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NF_INET_LOCAL_IN: u32 = 1;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_L4PROTO: u32 = 16;
const NFT_META_IIF: u32 = 4;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_LTE: u32 = 3;
const NFT_CMP_GTE: u32 = 5;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;

const CHAIN: &str = "input";

/// The name of an instance's table: `flexvisor-vrrp-<iface>-<vrid>`.
pub fn table_name(iface: &str, vrid: u8) -> String {
    format!("flexvisor-vrrp-{iface}-{vrid}")
}

/// Netlink attributes being written into a message.
struct Attrs(Vec<u8>);

impl Attrs {
    fn new() -> Self {
        Attrs(Vec::new())
    }

    fn raw(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        // nla_len counts header and data, not the padding to 4 bytes.
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
        self
    }

    fn string(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.raw(kind, &d)
    }

    /// nf_tables integers are big-endian.
    fn be32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.raw(kind, &v.to_be_bytes())
    }

    fn nested(&mut self, kind: u16, f: impl FnOnce(&mut Attrs)) -> &mut Self {
        let mut inner = Attrs::new();
        f(&mut inner);
        self.raw(kind | NLA_F_NESTED, &inner.0)
    }
}

/// One expression of a rule.
fn expr(list: &mut Attrs, name: &str, data: impl FnOnce(&mut Attrs)) {
    list.nested(NFTA_LIST_ELEM, |e| {
        e.string(NFTA_EXPR_NAME, name);
        e.nested(NFTA_EXPR_DATA, data);
    });
}

fn meta(list: &mut Attrs, key: u32) {
    expr(list, "meta", |d| {
        d.be32(NFTA_META_KEY, key).be32(NFTA_META_DREG, NFT_REG_1);
    });
}

fn payload(list: &mut Attrs, base: u32, offset: u32, len: u32) {
    expr(list, "payload", |d| {
        d.be32(NFTA_PAYLOAD_DREG, NFT_REG_1)
            .be32(NFTA_PAYLOAD_BASE, base)
            .be32(NFTA_PAYLOAD_OFFSET, offset)
            .be32(NFTA_PAYLOAD_LEN, len);
    });
}

fn cmp(list: &mut Attrs, op: u32, value: &[u8]) {
    expr(list, "cmp", |d| {
        d.be32(NFTA_CMP_SREG, NFT_REG_1).be32(NFTA_CMP_OP, op);
        d.nested(NFTA_CMP_DATA, |v| {
            v.raw(NFTA_DATA_VALUE, value);
        });
    });
}

fn verdict(list: &mut Attrs, code: u32) {
    expr(list, "immediate", |d| {
        d.be32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
        d.nested(NFTA_IMMEDIATE_DATA, |v| {
            v.nested(NFTA_DATA_VERDICT, |c| {
                c.be32(NFTA_VERDICT_CODE, code);
            });
        });
    });
}

/// A batch of nf_tables messages for one table, with the name of each message for
/// error reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The table.
    pub table: String,
    /// The serialized netlink messages, batch begin and end included.
    pub bytes: Vec<u8>,
    /// (sequence number, name) of every message that asks for an acknowledgement.
    pub acked: Vec<(u32, &'static str)>,
}

struct Builder {
    family: u8,
    table: String,
    seq: u32,
    bytes: Vec<u8>,
    acked: Vec<(u32, &'static str)>,
}

impl Builder {
    fn new(family: u8, table: String, seq: u32) -> Self {
        let mut b = Builder {
            family,
            table,
            seq,
            bytes: Vec::new(),
            acked: Vec::new(),
        };
        // Batch delimiters carry the subsystem in res_id (big-endian).
        b.message(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
            None,
        );
        b
    }

    fn message(
        &mut self,
        kind: u16,
        flags: u16,
        family: u8,
        res_id: u16,
        attrs: &[u8],
        name: Option<&'static str>,
    ) {
        let len = 16 + 4 + attrs.len();
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.bytes.extend_from_slice(&(len as u32).to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(&flags.to_ne_bytes());
        self.bytes.extend_from_slice(&seq.to_ne_bytes());
        self.bytes.extend_from_slice(&0u32.to_ne_bytes());
        // struct nfgenmsg
        self.bytes.push(family);
        self.bytes.push(0);
        self.bytes.extend_from_slice(&res_id.to_be_bytes());
        self.bytes.extend_from_slice(attrs);
        if let Some(n) = name {
            self.acked.push((seq, n));
        }
    }

    fn nft(&mut self, msg: u16, extra: u16, attrs: Attrs, name: &'static str) {
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | msg;
        self.message(
            kind,
            NLM_F_REQUEST | NLM_F_ACK | extra,
            self.family,
            0,
            &attrs.0,
            Some(name),
        );
    }

    fn table(&mut self, msg: u16, extra: u16, name: &'static str) {
        let mut a = Attrs::new();
        a.string(NFTA_TABLE_NAME, &self.table);
        self.nft(msg, extra, a, name);
    }

    fn finish(mut self) -> Batch {
        self.message(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            0,
            NFNL_SUBSYS_NFTABLES,
            &[],
            None,
        );
        Batch {
            table: self.table,
            bytes: self.bytes,
            acked: self.acked,
        }
    }
}

fn family_of(addrs: &[IpAddr]) -> u8 {
    if addrs.first().is_some_and(IpAddr::is_ipv6) {
        NFPROTO_IPV6
    } else {
        NFPROTO_IPV4
    }
}

impl Batch {
    /// Replace the instance's table with one that drops what arrives on interface
    /// `ifindex` for `addrs` (all of one family). `seq` numbers the messages.
    pub fn install(table: &str, ifindex: u32, addrs: &[IpAddr], seq: u32) -> Batch {
        let family = family_of(addrs);
        let mut b = Builder::new(family, table.to_owned(), seq);
        b.table(NFT_MSG_NEWTABLE, NLM_F_CREATE, "new table");
        b.table(NFT_MSG_DELTABLE, 0, "delete old table");
        b.table(NFT_MSG_NEWTABLE, NLM_F_CREATE, "new table");
        let mut c = Attrs::new();
        c.string(NFTA_CHAIN_TABLE, table)
            .string(NFTA_CHAIN_NAME, CHAIN)
            .nested(NFTA_CHAIN_HOOK, |h| {
                h.be32(NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_IN)
                    .be32(NFTA_HOOK_PRIORITY, 0);
            })
            .be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
            .string(NFTA_CHAIN_TYPE, "filter");
        b.nft(NFT_MSG_NEWCHAIN, NLM_F_CREATE, c, "new chain");
        let rule = |b: &mut Builder, exprs: Attrs, name| {
            let mut r = Attrs::new();
            r.string(NFTA_RULE_TABLE, table)
                .string(NFTA_RULE_CHAIN, CHAIN)
                .raw(NFTA_RULE_EXPRESSIONS | NLA_F_NESTED, &exprs.0);
            b.nft(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, r, name);
        };
        if family == NFPROTO_IPV6 {
            // Neighbour discovery keeps working (RFC 5798 §6.4.3 exempts ND).
            let mut e = Attrs::new();
            meta(&mut e, NFT_META_IIF);
            cmp(&mut e, NFT_CMP_EQ, &ifindex.to_ne_bytes());
            meta(&mut e, NFT_META_L4PROTO);
            cmp(&mut e, NFT_CMP_EQ, &[IPPROTO_ICMPV6]);
            payload(&mut e, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
            cmp(&mut e, NFT_CMP_GTE, &[ND_NEIGHBOR_SOLICIT]);
            cmp(&mut e, NFT_CMP_LTE, &[ND_NEIGHBOR_ADVERT]);
            verdict(&mut e, NF_ACCEPT);
            rule(&mut b, e, "new rule (accept neighbour discovery)");
        }
        for a in addrs {
            let mut e = Attrs::new();
            // The interface index is compared in host byte order, as the kernel
            // stores it in the register.
            meta(&mut e, NFT_META_IIF);
            cmp(&mut e, NFT_CMP_EQ, &ifindex.to_ne_bytes());
            match a {
                IpAddr::V4(v4) => {
                    payload(&mut e, NFT_PAYLOAD_NETWORK_HEADER, 16, 4);
                    cmp(&mut e, NFT_CMP_EQ, &v4.octets());
                }
                IpAddr::V6(v6) => {
                    payload(&mut e, NFT_PAYLOAD_NETWORK_HEADER, 24, 16);
                    cmp(&mut e, NFT_CMP_EQ, &v6.octets());
                }
            }
            verdict(&mut e, NF_DROP);
            rule(&mut b, e, "new rule (drop)");
        }
        b.finish()
    }

    /// Remove the instance's table (whether or not it exists).
    pub fn remove(table: &str, v6: bool, seq: u32) -> Batch {
        let family = if v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 };
        let mut b = Builder::new(family, table.to_owned(), seq);
        b.table(NFT_MSG_NEWTABLE, NLM_F_CREATE, "new table");
        b.table(NFT_MSG_DELTABLE, 0, "delete table");
        b.finish()
    }
}

/// An acknowledgement read back from the kernel: (sequence number, errno; 0 = ok).
/// Malformed or truncated input ends the list; it never panics.
pub fn parse_acks(buf: &[u8]) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while buf.len().saturating_sub(at) >= 16 {
        let word = |o: usize| -> Option<[u8; 4]> { buf.get(at + o..at + o + 4)?.try_into().ok() };
        let (Some(len), Some(kind)) = (word(0), buf.get(at + 4..at + 6)) else {
            break;
        };
        let len = u32::from_ne_bytes(len) as usize;
        let kind = u16::from_ne_bytes([kind[0], kind[1]]);
        if len < 16 || at + len > buf.len() {
            break;
        }
        if kind == NLMSG_ERROR && len >= 20 {
            // struct nlmsgerr: int error; struct nlmsghdr msg (the request's header).
            // The echoed header's sequence number when it is all there, else the
            // reply's own (the kernel sets both to the request's).
            let seq = if len >= 32 { word(28) } else { word(8) };
            if let (Some(err), Some(seq)) = (word(16), seq) {
                out.push((u32::from_ne_bytes(seq), i32::from_ne_bytes(err)));
            }
        }
        at += (len + 3) & !3;
    }
    out
}

/// Send `batch` to the kernel and wait for an acknowledgement of every message.
pub fn apply(batch: &Batch) -> Result<(), NftError> {
    let sock = NetlinkSocket::open()?;
    sock.send(&batch.bytes)?;
    let mut pending: Vec<(u32, &'static str)> = batch.acked.clone();
    let mut buf = vec![0u8; 16 * 1024];
    while !pending.is_empty() {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let first = pending.first().map(|p| p.1).unwrap_or("?");
                return Err(NftError::NoAck(first, batch.table.clone()));
            }
            Err(source) => {
                return Err(NftError::Socket {
                    what: "receive",
                    source,
                })
            }
        };
        for (seq, errno) in parse_acks(&buf[..n]) {
            let Some(i) = pending.iter().position(|p| p.0 == seq) else {
                continue;
            };
            let (_, name) = pending.remove(i);
            if errno != 0 {
                return Err(NftError::Refused {
                    message: name,
                    table: batch.table.clone(),
                    source: std::io::Error::from_raw_os_error(-errno),
                });
            }
        }
    }
    Ok(())
}

/// A blocking `NETLINK_NETFILTER` socket with a receive timeout.
struct NetlinkSocket(std::os::fd::OwnedFd);

impl NetlinkSocket {
    fn open() -> Result<Self, NftError> {
        use std::os::fd::FromRawFd;
        let err = |what| NftError::Socket {
            what,
            source: std::io::Error::last_os_error(),
        };
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(err("open socket"));
        }
        // SAFETY: fd is a fresh descriptor owned by nothing else.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: fd is valid; tv is a live timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(err("set receive timeout"));
        }
        Ok(NetlinkSocket(owned))
    }

    fn send(&self, bytes: &[u8]) -> Result<(), NftError> {
        use std::os::fd::AsRawFd;
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value (the kernel).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: the buffer and address are live for the call, sizes match.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(NftError::Socket {
                what: "send",
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        // SAFETY: buf is a live, writable buffer of the length passed.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            // SO_RCVTIMEO expiry reads as EAGAIN.
            return Err(e);
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Walk the messages of a batch: (type, flags, seq, family, attrs length).
    fn messages(b: &[u8]) -> Vec<(u16, u16, u32, u8, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < b.len() {
            let len = u32::from_ne_bytes(b[at..at + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(b[at + 4..at + 6].try_into().unwrap());
            let flags = u16::from_ne_bytes(b[at + 6..at + 8].try_into().unwrap());
            let seq = u32::from_ne_bytes(b[at + 8..at + 12].try_into().unwrap());
            out.push((kind, flags, seq, b[at + 16], len - 20));
            assert!(len.is_multiple_of(4), "messages stay 4-byte aligned");
            at += len;
        }
        assert_eq!(at, b.len());
        out
    }

    #[test]
    fn install_is_one_atomic_batch_replacing_the_table() {
        let b = Batch::install("t", 2, &["10.0.0.1".parse().unwrap()], 100);
        let m = messages(&b.bytes);
        let kinds: Vec<u16> = m.iter().map(|x| x.0).collect();
        let nft = |k: u16| (10 << 8) | k;
        assert_eq!(
            kinds,
            vec![0x10, nft(0), nft(2), nft(0), nft(3), nft(6), 0x11]
        );
        assert!(m[1..6]
            .iter()
            .all(|x| x.3 == NFPROTO_IPV4 && x.1 & NLM_F_ACK != 0));
        assert_eq!(b.acked.len(), 5);
        assert_eq!(b.acked[0].0, 101);
    }

    #[test]
    fn ipv6_install_lets_neighbour_discovery_through_first() {
        let b = Batch::install(
            "t",
            2,
            &[
                "2001:db8::1".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            ],
            1,
        );
        let names: Vec<&str> = b.acked.iter().map(|a| a.1).collect();
        assert_eq!(
            &names[4..],
            &[
                "new rule (accept neighbour discovery)",
                "new rule (drop)",
                "new rule (drop)"
            ]
        );
        assert!(messages(&b.bytes)[1..7].iter().all(|x| x.3 == NFPROTO_IPV6));
    }

    #[test]
    fn attributes_carry_unpadded_lengths_and_nul_terminated_names() {
        let mut a = Attrs::new();
        a.string(1, "input");
        assert_eq!(u16::from_ne_bytes([a.0[0], a.0[1]]), 4 + 6);
        assert_eq!(a.0.len(), 12);
        assert_eq!(&a.0[4..10], b"input\0");
    }

    #[test]
    fn acks_are_read_with_their_sequence_and_errno() {
        // NLMSG_ERROR carrying errno -2 (ENOENT) for request seq 7.
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&7u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-2i32).to_ne_bytes());
        m.extend_from_slice(&20u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&7u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        assert_eq!(parse_acks(&m), vec![(7, -2)]);
    }

    proptest! {
        #[test]
        fn ack_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_acks(&bytes);
        }

        #[test]
        fn every_batch_is_well_formed(
            addrs in proptest::collection::vec(any::<[u8; 4]>(), 1..8),
            ifindex in 1u32..10_000, seq in any::<u32>(),
        ) {
            let addrs: Vec<IpAddr> = addrs.into_iter().map(IpAddr::from).collect();
            let b = Batch::install("flexvisor-vrrp-eth0-51", ifindex, &addrs, seq);
            let m = messages(&b.bytes);
            prop_assert_eq!(m.len(), 4 + addrs.len() + 2);
            prop_assert_eq!(b.acked.len(), 4 + addrs.len());
        }
    }
}

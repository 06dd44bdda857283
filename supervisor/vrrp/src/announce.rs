//! Telling the neighbours who holds the virtual addresses: gratuitous ARP for IPv4
//! (RFC 5227 §3 "ARP Announcement") and unsolicited Neighbor Advertisements for IPv6
//! (RFC 4861 §7.2.6), sent by a new master (RFC 5798 §6.4.2) and, as split-brain
//! healing, by a master that hears a lower-priority one.
//!
//! The frame builders are pure; [`PacketSender`] is the one place that writes whole
//! Ethernet frames to an interface through an `AF_PACKET` socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::packet::{add_bytes, fold};

/// How a master announces its addresses, after keepalived's `garp_master_*` knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceConfig {
    /// Frames per address in each burst (at least 1).
    pub repeat: u32,
    /// Gap between the frames of a burst.
    pub spacing: Duration,
    /// A second burst this long after becoming master (zero: none).
    pub delay: Duration,
    /// Periodic refresh while master (zero: none).
    pub refresh: Duration,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        AnnounceConfig {
            repeat: 5,
            spacing: Duration::from_millis(10),
            delay: Duration::from_secs(5),
            refresh: Duration::ZERO,
        }
    }
}

const BROADCAST: [u8; 6] = [0xff; 6];
const ALL_NODES_MAC: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A gratuitous ARP request announcing that `ip` is at `mac`: broadcast, sender and
/// target protocol address both `ip`, target hardware address zero (RFC 5227 §3).
pub fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&BROADCAST);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06]); // ARP
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet/IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip.octets());
    f
}

/// An unsolicited Neighbor Advertisement for `target` at `mac`, from `src` (a
/// link-local address of the interface) to all nodes, hop limit 255, Override set
/// and the Target Link-Layer Address option (RFC 4861 §4.4, §7.2.6).
pub fn unsolicited_na(mac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[136, 0, 0, 0]); // type NA, code, checksum
    icmp.extend_from_slice(&[0x20, 0, 0, 0]); // Override
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[2, 1]); // Target Link-Layer Address, 8 bytes
    icmp.extend_from_slice(&mac);
    let mut sum = add_bytes(0, &src.octets());
    sum = add_bytes(sum, &ALL_NODES.octets());
    // The ICMPv6 message is 32 bytes: the conversion cannot truncate.
    sum = add_bytes(sum, &(icmp.len() as u32).to_be_bytes());
    sum += 58;
    sum = add_bytes(sum, &icmp);
    let c = !fold(sum);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());

    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&ALL_NODES_MAC);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&ALL_NODES.octets());
    f.extend_from_slice(&icmp);
    f
}

/// The frames that announce `addresses`; IPv6 ones need the interface's link-local
/// address as source and are skipped when it has none.
pub fn frames(mac: [u8; 6], link_local: Option<Ipv6Addr>, addresses: &[IpAddr]) -> Vec<Vec<u8>> {
    addresses
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(gratuitous_arp(mac, *a)),
            IpAddr::V6(a) => link_local.map(|ll| unsolicited_na(mac, ll, *a)),
        })
        .collect()
}

/// Sends whole Ethernet frames out of one interface.
#[derive(Debug)]
pub struct PacketSender {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSender {
    /// Opens an `AF_PACKET` socket for sending on interface `ifindex` (needs
    /// CAP_NET_RAW). It is bound to no protocol, so it receives nothing.
    pub fn open(ifindex: u32) -> io::Result<Self> {
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index"))?;
        // SAFETY: plain syscall with constant arguments; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(PacketSender { fd, ifindex })
    }

    /// Sends one frame (destination MAC in its first six bytes).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        if frame.len() < 14 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "short frame"));
        }
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        sll.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
        // SAFETY: the buffer and the address are valid for the lengths passed, and
        // the descriptor is owned by self.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 7];

    #[test]
    fn garp_is_a_broadcast_request_for_its_own_address() {
        let f = gratuitous_arp(MAC, Ipv4Addr::new(10, 9, 0, 100));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[..6], &BROADCAST);
        assert_eq!(&f[12..14], &[8, 6]);
        assert_eq!(&f[20..22], &[0, 1]);
        assert_eq!(&f[22..28], &MAC);
        assert_eq!(&f[28..32], &[10, 9, 0, 100]);
        assert_eq!(&f[38..42], &[10, 9, 0, 100]);
    }

    #[test]
    fn na_checksum_verifies_and_flags_override() {
        let src: Ipv6Addr = "fe80::7".parse().unwrap();
        let target: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let f = unsolicited_na(MAC, src, target);
        assert_eq!(f.len(), 14 + 40 + 32);
        assert_eq!(f[21], 255, "hop limit");
        let icmp = &f[54..];
        assert_eq!(icmp[0], 136);
        assert_eq!(icmp[4] & 0x20, 0x20);
        let mut sum = add_bytes(0, &src.octets());
        sum = add_bytes(sum, &ALL_NODES.octets());
        sum = add_bytes(sum, &32u32.to_be_bytes());
        sum += 58;
        sum = add_bytes(sum, icmp);
        assert_eq!(
            fold(sum),
            0xffff,
            "checksum over the whole message must verify"
        );
    }

    #[test]
    fn frames_skip_ipv6_without_link_local() {
        let addrs: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        assert_eq!(frames(MAC, None, &addrs).len(), 1);
        assert_eq!(
            frames(MAC, Some("fe80::1".parse().unwrap()), &addrs).len(),
            2
        );
    }
}

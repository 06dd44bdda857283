//! VRRP version 3 advertisements on the wire (RFC 5798 §5), for IPv4 and IPv6.
//!
//! This module is pure: it turns bytes into [`Advertisement`]s and back, computes the
//! checksum over the pseudo-header (§5.2.8) and performs every receive-side check of
//! §7.1 that can be made from the packet alone or against the local configuration
//! ([`check_received`]). It never touches a socket and never panics on any input; every
//! rejection is a typed [`PacketError`] whose [`PacketError::reason`] is the key under
//! which the runtime counts dropped packets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP (RFC 5798 §5.1.1.4, §5.1.2.3).
pub const IPPROTO_VRRP: u8 = 112;
/// IPv4 multicast group of VRRP (RFC 5798 §5.1.1.2).
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP (RFC 5798 §5.1.2.2).
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The only TTL / hop limit a VRRP packet may carry (RFC 5798 §5.1.1.3, §7.1).
pub const REQUIRED_TTL: u8 = 255;
/// Length of the fixed VRRP header.
pub const HEADER_LEN: usize = 8;
/// Largest interval the 12-bit Max Adver Int field can hold, in centiseconds.
pub const MAX_ADVER_INT_CS: u16 = 0x0fff;

const VERSION: u8 = 3;
const TYPE_ADVERTISEMENT: u8 = 1;

/// Why a packet was not accepted. Every variant names what was wrong with which value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer bytes than the fixed header or the IP header needs.
    #[error("packet truncated: {len} bytes, need at least {need}")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The IPv4 header around the advertisement is malformed.
    #[error("malformed IPv4 header: {0}")]
    BadIpHeader(&'static str),
    /// Not VRRP (IP protocol other than 112).
    #[error("IP protocol {0} is not VRRP (112)")]
    NotVrrp(u8),
    /// Version field other than 3 (RFC 5798 §7.1).
    #[error("VRRP version {0} (only version 3 is accepted)")]
    BadVersion(u8),
    /// Type field other than 1, ADVERTISEMENT (RFC 5798 §5.2.2).
    #[error("VRRP type {0} (only 1, ADVERTISEMENT, exists)")]
    BadType(u8),
    /// Length does not match the address count (RFC 5798 §7.1: the complete packet).
    #[error("{count} IPv{family} address(es) announced but {len} bytes of VRRP payload")]
    LengthMismatch {
        /// Count IPvX Addr field.
        count: u8,
        /// 4 or 6.
        family: u8,
        /// Payload length in bytes.
        len: usize,
    },
    /// The checksum over the pseudo-header does not match (RFC 5798 §5.2.8).
    #[error("checksum 0x{got:04x} wrong, computed 0x{want:04x}")]
    BadChecksum {
        /// Value in the packet.
        got: u16,
        /// Value computed.
        want: u16,
    },
    /// TTL or hop limit other than 255: the packet crossed a router (RFC 5798 §7.1).
    #[error("TTL/hop limit {0}, must be 255")]
    BadTtl(u8),
    /// Advertisement for a virtual router not configured here.
    #[error("VRID {got}, this instance is VRID {want}")]
    WrongVrid {
        /// VRID in the packet.
        got: u8,
        /// Local VRID.
        want: u8,
    },
    /// The address list differs from the local configuration (RFC 5798 §7.1).
    #[error("address list {got:?} differs from the configured {want:?}")]
    AddressListMismatch {
        /// Addresses in the packet.
        got: Vec<IpAddr>,
        /// Configured addresses.
        want: Vec<IpAddr>,
    },
    /// A zero advertisement interval would make every timer fire at once.
    #[error("Max Adver Int is 0")]
    ZeroInterval,
    /// Source and destination, or the addresses, are of different families.
    #[error("address family mismatch: {0}")]
    FamilyMismatch(&'static str),
    /// Too many addresses to encode (the count field is one byte).
    #[error("{0} addresses, at most 255 fit in one advertisement")]
    TooManyAddresses(usize),
    /// Interval outside 1..=4095 centiseconds.
    #[error("advertisement interval {0} cs outside 1..=4095")]
    IntervalOutOfRange(u16),
}

impl PacketError {
    /// A short stable key for counters and logs ("checksum", "ttl", ...).
    pub fn reason(&self) -> &'static str {
        match self {
            PacketError::Truncated { .. } => "truncated",
            PacketError::BadIpHeader(_) => "ip_header",
            PacketError::NotVrrp(_) => "not_vrrp",
            PacketError::BadVersion(_) => "version",
            PacketError::BadType(_) => "type",
            PacketError::LengthMismatch { .. } => "address_count",
            PacketError::BadChecksum { .. } => "checksum",
            PacketError::BadTtl(_) => "ttl",
            PacketError::WrongVrid { .. } => "vrid",
            PacketError::AddressListMismatch { .. } => "address_list",
            PacketError::ZeroInterval => "interval",
            PacketError::FamilyMismatch(_) => "family",
            PacketError::TooManyAddresses(_) => "too_many_addresses",
            PacketError::IntervalOutOfRange(_) => "interval",
        }
    }
}

/// One VRRPv3 ADVERTISEMENT as carried on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// Virtual Router Identifier, 1..=255 in practice (RFC 5798 §5.2.3).
    pub vrid: u8,
    /// Sender's priority: 255 owner, 1..=254 backup, 0 master stopping (§5.2.4).
    pub priority: u8,
    /// Advertisement interval of the sender in centiseconds, 12 bits (§5.2.7).
    pub max_adver_int: u16,
    /// Virtual addresses; all of the family of the IP packet carrying them (§5.2.9).
    pub addresses: Vec<IpAddr>,
}

impl Advertisement {
    /// Encodes the advertisement as the IP payload sent from `src` to `dst`,
    /// including the checksum over the pseudo-header (RFC 5798 §5.2.8).
    pub fn encode(&self, src: IpAddr, dst: IpAddr) -> Result<Vec<u8>, PacketError> {
        if self.max_adver_int == 0 || self.max_adver_int > MAX_ADVER_INT_CS {
            return Err(PacketError::IntervalOutOfRange(self.max_adver_int));
        }
        let v6 = match (src, dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => false,
            (IpAddr::V6(_), IpAddr::V6(_)) => true,
            _ => return Err(PacketError::FamilyMismatch("source and destination")),
        };
        if self.addresses.iter().any(|a| a.is_ipv6() != v6) {
            return Err(PacketError::FamilyMismatch("virtual address and packet"));
        }
        let count = u8::try_from(self.addresses.len())
            .map_err(|_| PacketError::TooManyAddresses(self.addresses.len()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + self.addresses.len() * 16);
        out.push((VERSION << 4) | TYPE_ADVERTISEMENT);
        out.push(self.vrid);
        out.push(self.priority);
        out.push(count);
        out.extend_from_slice(&(self.max_adver_int & MAX_ADVER_INT_CS).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        for a in &self.addresses {
            match a {
                IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
            }
        }
        let sum = checksum(&out, src, dst);
        out[6..8].copy_from_slice(&sum.to_be_bytes());
        Ok(out)
    }

    /// Decodes the VRRP payload of an IP packet from `src` to `dst`, checking version,
    /// type, length against the address count and the checksum (RFC 5798 §7.1). The
    /// address family is that of `src`.
    pub fn decode(payload: &[u8], src: IpAddr, dst: IpAddr) -> Result<Self, PacketError> {
        if src.is_ipv6() != dst.is_ipv6() {
            return Err(PacketError::FamilyMismatch("source and destination"));
        }
        let [b0, vrid, priority, count, i0, i1, c0, c1, rest @ ..] = payload else {
            return Err(PacketError::Truncated {
                len: payload.len(),
                need: HEADER_LEN,
            });
        };
        let version = b0 >> 4;
        if version != VERSION {
            return Err(PacketError::BadVersion(version));
        }
        let kind = b0 & 0x0f;
        if kind != TYPE_ADVERTISEMENT {
            return Err(PacketError::BadType(kind));
        }
        let (alen, family) = if src.is_ipv6() { (16, 6) } else { (4, 4) };
        if rest.len() != usize::from(*count) * alen {
            return Err(PacketError::LengthMismatch {
                count: *count,
                family,
                len: payload.len(),
            });
        }
        let got = u16::from_be_bytes([*c0, *c1]);
        // The checksum over a packet that includes its own checksum folds to zero.
        let want_zero = checksum(payload, src, dst);
        if want_zero != 0 {
            let mut copy = payload.to_vec();
            copy[6] = 0;
            copy[7] = 0;
            return Err(PacketError::BadChecksum {
                got,
                want: checksum(&copy, src, dst),
            });
        }
        let max_adver_int = u16::from_be_bytes([*i0, *i1]) & MAX_ADVER_INT_CS;
        if max_adver_int == 0 {
            return Err(PacketError::ZeroInterval);
        }
        let addresses = rest
            .chunks_exact(alen)
            .map(|c| match <[u8; 16]>::try_from(c) {
                Ok(b16) => IpAddr::V6(Ipv6Addr::from(b16)),
                // chunks_exact(4) for IPv4: the only other length.
                Err(_) => IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
            })
            .collect();
        Ok(Advertisement {
            vrid: *vrid,
            priority: *priority,
            max_adver_int,
            addresses,
        })
    }
}

/// What the receive path knows about a packet besides its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// IP source address.
    pub src: IpAddr,
    /// IP destination address (multicast group or our unicast address).
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit as received.
    pub ttl: u8,
}

/// Decodes an advertisement and performs the receive-side checks of RFC 5798 §7.1 that
/// depend on the local configuration: TTL/hop limit 255, VRID, and the address list
/// (order-insensitive). The owner check (§7.1 "not the IPvX address owner") is the state
/// machine's business.
pub fn check_received(
    payload: &[u8],
    env: Envelope,
    vrid: u8,
    configured: &[IpAddr],
) -> Result<Advertisement, PacketError> {
    if env.ttl != REQUIRED_TTL {
        return Err(PacketError::BadTtl(env.ttl));
    }
    let adv = Advertisement::decode(payload, env.src, env.dst)?;
    if adv.vrid != vrid {
        return Err(PacketError::WrongVrid {
            got: adv.vrid,
            want: vrid,
        });
    }
    let mut got = adv.addresses.clone();
    let mut want = configured.to_vec();
    got.sort();
    want.sort();
    if got != want {
        return Err(PacketError::AddressListMismatch {
            got: adv.addresses,
            want: configured.to_vec(),
        });
    }
    Ok(adv)
}

/// An IPv4 datagram as read from a raw socket (which includes the IP header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Datagram<'a> {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Time to live.
    pub ttl: u8,
    /// The bytes after the IP header, limited to the header's total length.
    pub payload: &'a [u8],
}

/// Splits an IPv4 datagram carrying VRRP into header fields and payload.
pub fn parse_ipv4(buf: &[u8]) -> Result<Ipv4Datagram<'_>, PacketError> {
    if buf.len() < 20 {
        return Err(PacketError::Truncated {
            len: buf.len(),
            need: 20,
        });
    }
    if buf[0] >> 4 != 4 {
        return Err(PacketError::BadIpHeader("version is not 4"));
    }
    let ihl = usize::from(buf[0] & 0x0f) * 4;
    if ihl < 20 || ihl > buf.len() {
        return Err(PacketError::BadIpHeader("header length out of range"));
    }
    // The kernel hands raw sockets the total length in network order on Linux.
    let total = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    if total < ihl || total > buf.len() {
        return Err(PacketError::BadIpHeader("total length out of range"));
    }
    let frag = u16::from_be_bytes([buf[6], buf[7]]);
    if frag & 0x3fff != 0 {
        return Err(PacketError::BadIpHeader("fragment"));
    }
    if buf[9] != IPPROTO_VRRP {
        return Err(PacketError::NotVrrp(buf[9]));
    }
    Ok(Ipv4Datagram {
        src: Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]),
        dst: Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]),
        ttl: buf[8],
        payload: &buf[ihl..total],
    })
}

/// The Internet checksum of `data` preceded by the IPv4 or IPv6 pseudo-header for
/// protocol 112 (RFC 5798 §5.2.8, RFC 8200 §8.1).
pub fn checksum(data: &[u8], src: IpAddr, dst: IpAddr) -> u16 {
    let mut sum: u32 = 0;
    let len = data.len();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum = add_bytes(sum, &s.octets());
            sum = add_bytes(sum, &d.octets());
            sum += u32::from(IPPROTO_VRRP);
            // Lengths are bounded by the 64 KiB datagram the bytes came from.
            sum += (len & 0xffff) as u32;
        }
        (s, d) => {
            sum = add_bytes(sum, &ipv6_octets(s));
            sum = add_bytes(sum, &ipv6_octets(d));
            sum = add_bytes(sum, &((len & 0xffff_ffff) as u32).to_be_bytes());
            sum += u32::from(IPPROTO_VRRP);
        }
    }
    sum = add_bytes(sum, data);
    !fold(sum)
}

fn ipv6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// One's-complement sum of 16-bit words, folding carries as it goes so it never
/// overflows however long the input.
pub(crate) fn add_bytes(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

pub(crate) fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // Folded above: fits 16 bits.
    sum as u16
}

/// The fuzzing harness (`fuzz/fuzz_targets/decode.rs`), kept here so the seed corpus
/// also runs as a unit test: feeds `data` to every receive-path parser and checks
/// that whatever decodes encodes back to the same advertisement.
#[doc(hidden)]
pub fn fuzz_receive(data: &[u8]) {
    if let Ok(d) = parse_ipv4(data) {
        let env = Envelope {
            src: d.src.into(),
            dst: d.dst.into(),
            ttl: d.ttl,
        };
        let configured = [IpAddr::V4(Ipv4Addr::new(10, 77, 0, 100))];
        let _ = check_received(d.payload, env, 51, &configured);
        if let Ok(adv) = Advertisement::decode(d.payload, env.src, env.dst) {
            round_trip(&adv, env.src, env.dst);
        }
    }
    let (s6, d6) = (
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(MULTICAST_V6),
    );
    if let Ok(adv) = Advertisement::decode(data, s6, d6) {
        round_trip(&adv, s6, d6);
    }
}

fn round_trip(adv: &Advertisement, src: IpAddr, dst: IpAddr) {
    match adv.encode(src, dst) {
        Ok(bytes) => assert_eq!(Advertisement::decode(&bytes, src, dst).as_ref(), Ok(adv)),
        Err(e) => panic!("decoded advertisement does not encode: {e}: {adv:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse().unwrap())
    }

    fn sample() -> Advertisement {
        Advertisement {
            vrid: 51,
            priority: 150,
            max_adver_int: 100,
            addresses: vec![v4("10.9.0.100"), v4("10.9.0.101")],
        }
    }

    #[test]
    fn encodes_header_fields_in_rfc_layout() {
        let b = sample()
            .encode(v4("10.9.0.1"), IpAddr::V4(MULTICAST_V4))
            .unwrap();
        assert_eq!(b.len(), 16);
        assert_eq!(b[0], 0x31);
        assert_eq!(b[1], 51);
        assert_eq!(b[2], 150);
        assert_eq!(b[3], 2);
        assert_eq!(u16::from_be_bytes([b[4], b[5]]), 100);
        assert_eq!(&b[8..12], &[10, 9, 0, 100]);
    }

    #[test]
    fn checksum_matches_hand_computed_pseudo_header_sum() {
        // 192.168.0.1 -> 224.0.0.18, VRID 1, prio 100, one address 192.168.0.10,
        // interval 100 cs. Sum computed by hand word by word.
        let adv = Advertisement {
            vrid: 1,
            priority: 100,
            max_adver_int: 100,
            addresses: vec![v4("192.168.0.10")],
        };
        let b = adv
            .encode(v4("192.168.0.1"), IpAddr::V4(MULTICAST_V4))
            .unwrap();
        let words: u32 = 0xc0a8 + 0x0001 + 0xe000 + 0x0012 + 112 + 12 // pseudo-header
            + 0x3101 + 0x6401 + 0x0064 + 0xc0a8 + 0x000a; // VRRP
        let folded = fold(words);
        assert_eq!(u16::from_be_bytes([b[6], b[7]]), !folded);
    }

    #[test]
    fn rejects_each_malformation_with_its_reason() {
        let src = v4("10.9.0.1");
        let dst = IpAddr::V4(MULTICAST_V4);
        let good = sample().encode(src, dst).unwrap();
        let env = Envelope { src, dst, ttl: 255 };
        let want = sample().addresses;
        assert!(check_received(&good, env, 51, &want).is_ok());

        let mut bad = good.clone();
        bad[0] = 0x21;
        assert_eq!(
            Advertisement::decode(&bad, src, dst),
            Err(PacketError::BadVersion(2))
        );
        let mut bad = good.clone();
        bad[0] = 0x32;
        assert_eq!(
            Advertisement::decode(&bad, src, dst).unwrap_err().reason(),
            "type"
        );
        let mut bad = good.clone();
        bad[9] ^= 1;
        assert_eq!(
            Advertisement::decode(&bad, src, dst).unwrap_err().reason(),
            "checksum"
        );
        assert_eq!(
            Advertisement::decode(&good[..12], src, dst)
                .unwrap_err()
                .reason(),
            "address_count"
        );
        assert_eq!(
            Advertisement::decode(&good[..5], src, dst)
                .unwrap_err()
                .reason(),
            "truncated"
        );
        // A checksum computed for another destination does not verify.
        assert_eq!(
            Advertisement::decode(&good, src, v4("10.9.0.2"))
                .unwrap_err()
                .reason(),
            "checksum"
        );
        let ttl = Envelope { ttl: 254, ..env };
        assert_eq!(
            check_received(&good, ttl, 51, &want),
            Err(PacketError::BadTtl(254))
        );
        assert_eq!(
            check_received(&good, env, 52, &want).unwrap_err().reason(),
            "vrid"
        );
        assert_eq!(
            check_received(&good, env, 51, &want[..1])
                .unwrap_err()
                .reason(),
            "address_list"
        );
        // Order of the list does not matter.
        let rev: Vec<_> = want.iter().rev().copied().collect();
        assert!(check_received(&good, env, 51, &rev).is_ok());
    }

    #[test]
    fn ipv6_round_trip_and_pseudo_header() {
        let src: IpAddr = "fe80::1".parse().unwrap();
        let dst = IpAddr::V6(MULTICAST_V6);
        let adv = Advertisement {
            vrid: 7,
            priority: 255,
            max_adver_int: 10,
            addresses: vec!["fe80::7".parse().unwrap(), "2001:db8::7".parse().unwrap()],
        };
        let b = adv.encode(src, dst).unwrap();
        assert_eq!(b.len(), 8 + 32);
        assert_eq!(Advertisement::decode(&b, src, dst).unwrap(), adv);
        // An IPv4 view of the same bytes fails on the length, not with a panic.
        assert_eq!(
            Advertisement::decode(&b, v4("1.2.3.4"), v4("5.6.7.8"))
                .unwrap_err()
                .reason(),
            "address_count"
        );
    }

    #[test]
    fn encode_refuses_what_cannot_be_sent() {
        let mut adv = sample();
        adv.max_adver_int = 0;
        assert!(adv.encode(v4("1.1.1.1"), v4("2.2.2.2")).is_err());
        let adv = sample();
        assert!(adv
            .encode("fe80::1".parse().unwrap(), v4("2.2.2.2"))
            .is_err());
        assert!(adv
            .encode("fe80::1".parse().unwrap(), IpAddr::V6(MULTICAST_V6))
            .is_err());
    }

    #[test]
    fn parses_ipv4_header_and_rejects_fragments() {
        let payload = sample()
            .encode(v4("10.9.0.1"), IpAddr::V4(MULTICAST_V4))
            .unwrap();
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 255, 112, 0, 0, 10, 9, 0, 1, 224, 0, 0, 18,
        ];
        let total = (ip.len() + payload.len()) as u16;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&payload);
        let d = parse_ipv4(&ip).unwrap();
        assert_eq!(d.ttl, 255);
        assert_eq!(d.src, "10.9.0.1".parse::<Ipv4Addr>().unwrap());
        assert_eq!(d.payload, &payload[..]);
        let mut frag = ip.clone();
        frag[6] = 0x20;
        assert_eq!(parse_ipv4(&frag).unwrap_err().reason(), "ip_header");
        let mut other = ip.clone();
        other[9] = 6;
        assert_eq!(parse_ipv4(&other), Err(PacketError::NotVrrp(6)));
    }

    #[test]
    fn seed_corpus_decodes_as_named() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
        let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
        let mut count = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            fuzz_receive(&std::fs::read(e.unwrap().path()).unwrap());
            count += 1;
        }
        assert!(count >= 7, "seed corpus missing");
        let want = [IpAddr::V4(Ipv4Addr::new(10, 77, 0, 100))];
        let rx = |n: &str| {
            let b = read(n);
            let d = parse_ipv4(&b).map(|d| (d.src, d.dst, d.ttl, d.payload.to_vec()));
            d.and_then(|(s, t, ttl, p)| {
                let env = Envelope {
                    src: s.into(),
                    dst: t.into(),
                    ttl,
                };
                check_received(&p, env, 51, &want)
            })
        };
        assert_eq!(rx("v4-one-address").unwrap().priority, 150);
        assert_eq!(rx("v4-priority-zero").unwrap().priority, 0);
        assert_eq!(
            rx("v4-two-addresses-10cs").unwrap_err().reason(),
            "address_list"
        );
        assert_eq!(rx("v4-bad-checksum").unwrap_err().reason(), "checksum");
        assert_eq!(rx("v4-ttl-254").unwrap_err(), PacketError::BadTtl(254));
        assert_eq!(rx("v4-truncated").unwrap_err().reason(), "ip_header");
        let v6 = Advertisement::decode(
            &read("v6-payload"),
            "fe80::1".parse().unwrap(),
            IpAddr::V6(MULTICAST_V6),
        )
        .unwrap();
        assert_eq!((v6.vrid, v6.priority, v6.addresses.len()), (7, 200, 2));
    }

    fn arb_adv(v6: bool) -> impl Strategy<Value = Advertisement> {
        let addr = if v6 {
            any::<[u8; 16]>().prop_map(|b| IpAddr::V6(b.into())).boxed()
        } else {
            any::<[u8; 4]>().prop_map(|b| IpAddr::V4(b.into())).boxed()
        };
        (
            any::<u8>(),
            any::<u8>(),
            1u16..=4095,
            proptest::collection::vec(addr, 0..20),
        )
            .prop_map(|(vrid, priority, max_adver_int, addresses)| Advertisement {
                vrid,
                priority,
                max_adver_int,
                addresses,
            })
    }

    proptest! {
        #[test]
        fn round_trip_v4(adv in arb_adv(false), s in any::<[u8; 4]>(), d in any::<[u8; 4]>()) {
            let (s, d) = (IpAddr::V4(s.into()), IpAddr::V4(d.into()));
            let b = adv.encode(s, d).unwrap();
            prop_assert_eq!(Advertisement::decode(&b, s, d).unwrap(), adv);
        }

        #[test]
        fn round_trip_v6(adv in arb_adv(true), s in any::<[u8; 16]>(), d in any::<[u8; 16]>()) {
            let (s, d) = (IpAddr::V6(s.into()), IpAddr::V6(d.into()));
            let b = adv.encode(s, d).unwrap();
            prop_assert_eq!(Advertisement::decode(&b, s, d).unwrap(), adv);
        }

        #[test]
        fn any_single_bit_flip_is_rejected(adv in arb_adv(false), bit in 0usize..128) {
            let (s, d) = (v4("10.0.0.1"), IpAddr::V4(MULTICAST_V4));
            let mut b = adv.encode(s, d).unwrap();
            let bit = bit % (b.len() * 8);
            b[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Advertisement::decode(&b, s, d).is_err());
        }

        #[test]
        fn harness_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            fuzz_receive(&b);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_ipv4(&b);
            let _ = Advertisement::decode(&b, v4("10.0.0.1"), IpAddr::V4(MULTICAST_V4));
            let _ = Advertisement::decode(&b, "fe80::1".parse().unwrap(), IpAddr::V6(MULTICAST_V6));
        }
    }
}

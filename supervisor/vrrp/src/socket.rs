//! Raw IP sockets for protocol 112 (RFC 5798 §5.1): joined to 224.0.0.18 or ff02::12 on
//! one interface, sending with TTL / hop limit 255, receiving every VRRP packet with
//! the envelope (source, destination, TTL) the receive checks need.
//!
//! IPv4 raw sockets deliver the IP header, which [`crate::packet::parse_ipv4`] reads;
//! IPv6 ones do not, so the hop limit and destination come from `IPV6_HOPLIMIT` and
//! `IPV6_PKTINFO` control messages.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use socket2::{
    Domain, InterfaceIndexOrAddress, MaybeUninitSlice, MsgHdrMut, Protocol, SockAddr, Socket, Type,
};
use tokio::io::unix::AsyncFd;

use crate::packet::{self, Envelope, PacketError, IPPROTO_VRRP, MULTICAST_V4, MULTICAST_V6};

/// A received datagram: envelope and VRRP payload, or why its IP layer was unusable.
#[derive(Debug)]
pub struct Received {
    /// Source, destination and TTL.
    pub envelope: Result<Envelope, PacketError>,
    /// The VRRP bytes.
    pub payload: Vec<u8>,
}

/// One VRRP raw socket bound to an interface.
#[derive(Debug)]
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    v6: bool,
}

impl VrrpSocket {
    /// Opens the socket for `ifname` (index `ifindex`), multicasting from `local`.
    pub fn open(ifname: &str, ifindex: u32, local: IpAddr) -> io::Result<Self> {
        let v6 = local.is_ipv6();
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let s = Socket::new(
            domain,
            Type::RAW.cloexec(),
            Some(Protocol::from(i32::from(IPPROTO_VRRP))),
        )?;
        s.bind_device(Some(ifname.as_bytes()))?;
        match local {
            IpAddr::V4(l) => {
                s.set_multicast_if_v4(&l)?;
                s.set_multicast_ttl_v4(255)?;
                s.set_ttl_v4(255)?;
                s.set_multicast_loop_v4(false)?;
                s.join_multicast_v4_n(&MULTICAST_V4, &InterfaceIndexOrAddress::Index(ifindex))?;
            }
            IpAddr::V6(_) => {
                s.set_multicast_if_v6(ifindex)?;
                s.set_multicast_hops_v6(255)?;
                s.set_unicast_hops_v6(255)?;
                s.set_multicast_loop_v6(false)?;
                s.set_recv_hoplimit_v6(true)?;
                set_recv_pktinfo_v6(&s)?;
                s.join_multicast_v6(&MULTICAST_V6, ifindex)?;
            }
        }
        s.set_nonblocking(true)?;
        // SAFETY: the Socket owns its descriptor, and the AsyncFd owns the Socket
        // until both are dropped together; nothing replaces or closes it meanwhile.
        let fd = unsafe { AsyncFd::register(s)? };
        Ok(VrrpSocket { fd, v6 })
    }

    /// Sends a VRRP payload to `dst` (the group or a unicast peer).
    pub async fn send(&self, payload: &[u8], dst: IpAddr) -> io::Result<()> {
        let addr: SockAddr = match dst {
            IpAddr::V4(d) => SocketAddrV4::new(d, 0).into(),
            IpAddr::V6(d) => SocketAddrV6::new(d, 0, 0, 0).into(),
        };
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|s| s.get_ref().send_to(payload, &addr)) {
                Ok(r) => return r.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }

    /// Waits for the next datagram.
    pub async fn recv(&self) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| {
                if self.v6 {
                    recv_v6(s.get_ref())
                } else {
                    recv_v4(s.get_ref())
                }
            }) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

fn recv_v4(s: &Socket) -> io::Result<Received> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    let n = s.recv(&mut buf)?;
    let bytes: Vec<u8> = buf[..n]
        .iter()
        // SAFETY: recv initialised the first n bytes.
        .map(|b| unsafe { b.assume_init() })
        .collect();
    Ok(match packet::parse_ipv4(&bytes) {
        Ok(d) => Received {
            envelope: Ok(Envelope {
                src: d.src.into(),
                dst: d.dst.into(),
                ttl: d.ttl,
            }),
            payload: d.payload.to_vec(),
        },
        Err(e) => Received {
            envelope: Err(e),
            payload: Vec::new(),
        },
    })
}

fn recv_v6(s: &Socket) -> io::Result<Received> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    let mut control = [MaybeUninit::<u8>::uninit(); 128];
    let mut from: SockAddr = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0).into();
    let (n, clen) = {
        let mut bufs = [MaybeUninitSlice::new(&mut buf)];
        let mut msg = MsgHdrMut::new()
            .with_addr(&mut from)
            .with_buffers(&mut bufs)
            .with_control(&mut control);
        let n = s.recvmsg(&mut msg, 0)?;
        (n, msg.control_len())
    };
    // SAFETY: recvmsg initialised the first n payload bytes and clen control bytes.
    let payload: Vec<u8> = buf[..n]
        .iter()
        .map(|b| unsafe { b.assume_init() })
        .collect();
    // SAFETY: as above, for the control buffer.
    let control: Vec<u8> = control[..clen.min(control.len())]
        .iter()
        .map(|b| unsafe { b.assume_init() })
        .collect();
    let (dst, ttl) = parse_cmsgs_v6(&control);
    let src = match from.as_socket() {
        Some(SocketAddr::V6(a)) => Some(*a.ip()),
        _ => None,
    };
    let envelope = match (src, dst, ttl) {
        (Some(src), Some(dst), Some(ttl)) => Ok(Envelope {
            src: src.into(),
            dst: dst.into(),
            ttl,
        }),
        _ => Err(PacketError::BadIpHeader(
            "IPv6 source, destination or hop limit missing",
        )),
    };
    Ok(Received { envelope, payload })
}

/// Reads IPV6_PKTINFO (destination) and IPV6_HOPLIMIT from a control buffer laid out
/// as Linux `cmsghdr`s (length as usize, level and type as i32, data aligned to usize).
fn parse_cmsgs_v6(c: &[u8]) -> (Option<Ipv6Addr>, Option<u8>) {
    const W: usize = std::mem::size_of::<usize>();
    let hdr = W + 8;
    let (mut dst, mut ttl) = (None, None);
    let mut off = 0;
    while off + hdr <= c.len() {
        let mut lenb = [0u8; W];
        lenb.copy_from_slice(&c[off..off + W]);
        let len = usize::from_ne_bytes(lenb);
        let level =
            i32::from_ne_bytes([c[off + W], c[off + W + 1], c[off + W + 2], c[off + W + 3]]);
        let kind = i32::from_ne_bytes([
            c[off + W + 4],
            c[off + W + 5],
            c[off + W + 6],
            c[off + W + 7],
        ]);
        if len < hdr || off + len > c.len() {
            break;
        }
        let data = &c[off + hdr..off + len];
        if level == libc::IPPROTO_IPV6 {
            if kind == libc::IPV6_PKTINFO && data.len() >= 16 {
                let mut a = [0u8; 16];
                a.copy_from_slice(&data[..16]);
                dst = Some(Ipv6Addr::from(a));
            } else if kind == libc::IPV6_HOPLIMIT && data.len() >= 4 {
                let h = i32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
                ttl = u8::try_from(h).ok();
            }
        }
        off += len.div_ceil(W) * W;
    }
    (dst, ttl)
}

fn set_recv_pktinfo_v6(s: &Socket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: valid descriptor, pointer to a c_int of the length passed.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVPKTINFO,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        const W: usize = std::mem::size_of::<usize>();
        let len = W + 8 + data.len();
        let mut v = len.to_ne_bytes().to_vec();
        v.extend_from_slice(&level.to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(data);
        while !v.len().is_multiple_of(W) {
            v.push(0);
        }
        v
    }

    #[test]
    fn parses_pktinfo_and_hoplimit_and_survives_garbage() {
        let mut pi = MULTICAST_V6.octets().to_vec();
        pi.extend_from_slice(&3i32.to_ne_bytes());
        let mut c = cmsg(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &pi);
        c.extend(cmsg(
            libc::IPPROTO_IPV6,
            libc::IPV6_HOPLIMIT,
            &255i32.to_ne_bytes(),
        ));
        assert_eq!(parse_cmsgs_v6(&c), (Some(MULTICAST_V6), Some(255)));
        for cut in 0..c.len() {
            let _ = parse_cmsgs_v6(&c[..cut]);
        }
        let mut bad = c.clone();
        bad[0] = 0xff;
        let _ = parse_cmsgs_v6(&bad);
    }
}

//! Interface facts and virtual-address changes through rtnetlink.
//!
//! Finds an interface's index, MAC address, primary IPv4 address and IPv6 link-local
//! address, and adds or removes the virtual addresses (RFC 5798 §6.4.2 "add the
//! virtual addresses", §6.4.3 on leaving Master). Adding an address that is already
//! there and removing one that is gone both succeed, so the runtime can repeat them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::stream::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{AddressMessageBuilder, Handle, MulticastGroup};

/// What went wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The netlink socket could not be opened.
    #[error("cannot open rtnetlink socket: {0}")]
    Open(#[source] std::io::Error),
    /// No interface of that name exists in this network namespace.
    #[error("interface {0:?} not found")]
    NoInterface(String),
    /// The interface has no address usable as VRRP source.
    #[error("interface {iface:?} has no {what} address to send VRRP from; configure one or set `source`")]
    NoSource {
        /// Interface.
        iface: String,
        /// "IPv4" or "IPv6 link-local".
        what: &'static str,
    },
    /// The interface has no 6-byte MAC address.
    #[error("interface {0:?} has no Ethernet address")]
    NoMac(String),
    /// A request failed.
    #[error("{op} {addr} on interface index {index}: {source}")]
    Request {
        /// "add" or "delete".
        op: &'static str,
        /// The address.
        addr: String,
        /// Interface index.
        index: u32,
        /// Kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// A dump failed.
    #[error("listing {0}: {1}")]
    Dump(&'static str, #[source] rtnetlink::Error),
}

/// What the runtime needs to know about its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// Kernel index.
    pub index: u32,
    /// Ethernet address (used as the source of announcements).
    pub mac: [u8; 6],
    /// First IPv4 address that is not a virtual address.
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 link-local address.
    pub link_local: Option<Ipv6Addr>,
    /// Administratively up with carrier.
    pub up: bool,
}

fn link_is_up(l: &LinkMessage) -> bool {
    l.header.flags.contains(LinkFlags::Up) && l.header.flags.contains(LinkFlags::LowerUp)
}

/// Link up/down notifications for one interface (RTNLGRP_LINK).
pub struct LinkWatch {
    index: u32,
    rx: futures_util::stream::BoxStream<'static, NetlinkMessage<RouteNetlinkMessage>>,
}

impl std::fmt::Debug for LinkWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWatch")
            .field("index", &self.index)
            .finish()
    }
}

impl LinkWatch {
    /// Subscribes to link changes; must run inside a tokio runtime.
    pub fn open(index: u32) -> Result<Self, NetlinkError> {
        let (conn, _handle, messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
                .map_err(NetlinkError::Open)?;
        tokio::spawn(conn);
        Ok(LinkWatch {
            index,
            rx: messages.map(|(m, _)| m).boxed(),
        })
    }

    /// The next up (true) / down (false) report for the interface; None when the
    /// netlink connection is gone.
    pub async fn next(&mut self) -> Option<bool> {
        while let Some(m) = self.rx.next().await {
            if let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) = m.payload {
                if l.header.index == self.index {
                    return Some(link_is_up(&l));
                }
            }
        }
        None
    }
}

/// A connection to the kernel's routing netlink, driven by a spawned tokio task.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the connection; must run inside a tokio runtime.
    pub fn open() -> Result<Self, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Open)?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// Looks up `name`, skipping addresses in `virtual_addrs` when picking the
    /// primary IPv4 address.
    pub async fn interface(
        &self,
        name: &str,
        virtual_addrs: &[IpAddr],
    ) -> Result<Interface, NetlinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        let link = match links.try_next().await {
            Ok(Some(l)) => l,
            Ok(None) | Err(_) => return Err(NetlinkError::NoInterface(name.to_string())),
        };
        let index = link.header.index;
        let up = link_is_up(&link);
        let mac = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(m) => <[u8; 6]>::try_from(m.as_slice()).ok(),
                _ => None,
            })
            .ok_or_else(|| NetlinkError::NoMac(name.to_string()))?;
        let mut ipv4 = None;
        let mut link_local = None;
        let mut addrs = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(msg) = addrs
            .try_next()
            .await
            .map_err(|e| NetlinkError::Dump("addresses", e))?
        {
            for a in address_of(&msg) {
                match a {
                    IpAddr::V4(v4) if ipv4.is_none() && !virtual_addrs.contains(&a) => {
                        ipv4 = Some(v4)
                    }
                    IpAddr::V6(v6)
                        if link_local.is_none()
                            && is_link_local(v6)
                            && !virtual_addrs.contains(&a) =>
                    {
                        link_local = Some(v6)
                    }
                    _ => {}
                }
            }
        }
        Ok(Interface {
            name: name.to_string(),
            index,
            mac,
            ipv4,
            link_local,
            up,
        })
    }

    /// Adds `addr/prefix` to interface `index` (IPv6 without duplicate address
    /// detection, so it is usable at once). Already present is success.
    pub async fn add(&self, index: u32, addr: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
        let mut req = self.handle.address().add(index, addr, prefix);
        if addr.is_ipv6() {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            Err(source) => Err(NetlinkError::Request {
                op: "add",
                addr: format!("{addr}/{prefix}"),
                index,
                source,
            }),
        }
    }

    /// Removes `addr/prefix` from interface `index`. Already absent is success.
    pub async fn delete(&self, index: u32, addr: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
        let msg = match addr {
            IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
                .index(index)
                .address(a, prefix)
                .build(),
            IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
                .index(index)
                .address(a, prefix)
                .build(),
        };
        match self.handle.address().del(msg).execute().await {
            Ok(()) => Ok(()),
            Err(e) if matches!(errno(&e), Some(libc::EADDRNOTAVAIL) | Some(libc::ENODEV)) => Ok(()),
            Err(source) => Err(NetlinkError::Request {
                op: "delete",
                addr: format!("{addr}/{prefix}"),
                index,
                source,
            }),
        }
    }
}

fn address_of(msg: &AddressMessage) -> Vec<IpAddr> {
    // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS
    // otherwise. Prefer Local when present.
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let addr = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    local.or(addr).into_iter().collect()
}

fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

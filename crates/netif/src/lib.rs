//! What Ferry needs from the kernel's networking, without shelling out: interface addresses
//! and link state through rtnetlink (the thesis used `ifconfig`), and TUN devices through
//! tun-rs.
//!
//! Everything acts on the network namespace of the calling thread, so the same code serves a
//! real server and a testbed namespace (`ip netns exec …`).

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::{Handle, LinkUnspec};
use std::net::{IpAddr, Ipv4Addr};

/// Errors talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetifError {
    /// No interface of that name in this namespace.
    #[error("no network interface named {0:?} here")]
    NoSuchInterface(String),
    /// The kernel refused a netlink request.
    #[error("netlink {op} on {iface}: {source}")]
    Netlink {
        /// What was attempted.
        op: &'static str,
        /// Interface.
        iface: String,
        /// The kernel's answer.
        source: rtnetlink::Error,
    },
    /// Socket / runtime / device creation failure.
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    /// Invalid interface name or prefix length.
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, NetifError>;

/// An IPv4 address with prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    /// Address.
    pub addr: Ipv4Addr,
    /// Prefix length 0..=32.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// Validated constructor.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self> {
        if prefix > 32 {
            return Err(NetifError::Invalid("prefix length", prefix.to_string()));
        }
        Ok(Ipv4Cidr { addr, prefix })
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for Ipv4Cidr {
    type Err = NetifError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || NetifError::Invalid("IPv4 address/prefix", s.to_string());
        let (a, p) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        Ipv4Cidr::new(addr, prefix)
    }
}

/// Checks an interface name the way the kernel will (1–15 bytes, no '/', no whitespace).
pub fn check_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(())
    } else {
        Err(NetifError::Invalid("interface name", format!("{name:?}")))
    }
}

/// A blocking rtnetlink client bound to the calling thread's network namespace.
///
/// rtnetlink is async; a private current-thread tokio runtime drives it so that callers
/// (the agent, the modem's setup) stay plain synchronous code.
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

impl Netlink {
    /// Opens a netlink socket.
    pub fn new() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| NetifError::Io("tokio runtime", e))?;
        let (conn, handle) = rt.block_on(async {
            rtnetlink::new_connection()
                .map(|(c, h, _)| (c, h))
                .map_err(|e| NetifError::Io("netlink socket", e))
        })?;
        rt.spawn(conn);
        Ok(Netlink { rt, handle })
    }

    /// Interface index by name.
    pub fn link_index(&self, iface: &str) -> Result<u32> {
        check_ifname(iface)?;
        let h = self.handle.clone();
        let name = iface.to_string();
        let res = self
            .rt
            .block_on(async move { h.link().get().match_name(name).execute().try_next().await });
        match res {
            Ok(Some(msg)) => Ok(msg.header.index),
            Ok(None) => Err(NetifError::NoSuchInterface(iface.into())),
            // ENODEV comes back as an error message.
            Err(_) => Err(NetifError::NoSuchInterface(iface.into())),
        }
    }

    /// Whether the interface exists.
    pub fn exists(&self, iface: &str) -> bool {
        self.link_index(iface).is_ok()
    }

    /// Names of every interface here.
    pub fn links(&self) -> Result<Vec<String>> {
        let h = self.handle.clone();
        let msgs: Vec<_> = self
            .rt
            .block_on(async move { h.link().get().execute().try_collect::<Vec<_>>().await })
            .map_err(|source| NetifError::Netlink {
                op: "link dump",
                iface: "*".into(),
                source,
            })?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| {
                m.attributes.into_iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n),
                    _ => None,
                })
            })
            .collect())
    }

    /// Brings the interface up.
    pub fn set_up(&self, iface: &str) -> Result<()> {
        let index = self.link_index(iface)?;
        let h = self.handle.clone();
        self.rt
            .block_on(async move {
                h.link()
                    .set(LinkUnspec::new_with_index(index).up().build())
                    .execute()
                    .await
            })
            .map_err(|source| NetifError::Netlink {
                op: "link up",
                iface: iface.into(),
                source,
            })
    }

    /// IPv4 addresses on the interface.
    pub fn ipv4_addrs(&self, iface: &str) -> Result<Vec<Ipv4Cidr>> {
        Ok(self
            .addr_messages(iface)?
            .into_iter()
            .filter_map(|m| {
                let prefix = m.header.prefix_len;
                m.attributes.into_iter().find_map(|a| match a {
                    AddressAttribute::Local(IpAddr::V4(v4))
                    | AddressAttribute::Address(IpAddr::V4(v4)) => {
                        Some(Ipv4Cidr { addr: v4, prefix })
                    }
                    _ => None,
                })
            })
            .fold(Vec::new(), |mut acc, c| {
                if !acc.contains(&c) {
                    acc.push(c);
                }
                acc
            }))
    }

    /// The kernel's address messages for one interface (the filter is a hint to the kernel,
    /// so the index is checked again here).
    fn addr_messages(
        &self,
        iface: &str,
    ) -> Result<Vec<rtnetlink::packet_route::address::AddressMessage>> {
        let index = self.link_index(iface)?;
        let h = self.handle.clone();
        let msgs: Vec<_> = self
            .rt
            .block_on(async move {
                h.address()
                    .get()
                    .set_link_index_filter(index)
                    .execute()
                    .try_collect::<Vec<_>>()
                    .await
            })
            .map_err(|source| NetifError::Netlink {
                op: "address dump",
                iface: iface.into(),
                source,
            })?;
        Ok(msgs
            .into_iter()
            .filter(|m| m.header.index == index)
            .collect())
    }

    /// Whether the interface holds `addr` (any prefix).
    pub fn has_ipv4(&self, iface: &str, addr: Ipv4Addr) -> Result<bool> {
        Ok(self.ipv4_addrs(iface)?.iter().any(|c| c.addr == addr))
    }

    /// Adds an address; already present is success (idempotent).
    pub fn add_ipv4(&self, iface: &str, cidr: Ipv4Cidr) -> Result<()> {
        if self.ipv4_addrs(iface)?.contains(&cidr) {
            return Ok(());
        }
        let index = self.link_index(iface)?;
        let h = self.handle.clone();
        self.rt
            .block_on(async move {
                h.address()
                    .add(index, IpAddr::V4(cidr.addr), cidr.prefix)
                    .execute()
                    .await
            })
            .map_err(|source| NetifError::Netlink {
                op: "address add",
                iface: iface.into(),
                source,
            })
    }

    /// Removes an address (any prefix length); absent is success. Returns whether it was there.
    pub fn del_ipv4(&self, iface: &str, addr: Ipv4Addr) -> Result<bool> {
        let mut removed = false;
        for m in self.addr_messages(iface)? {
            let matches = m.attributes.iter().any(|a| {
                matches!(a, AddressAttribute::Local(IpAddr::V4(v)) | AddressAttribute::Address(IpAddr::V4(v)) if *v == addr)
            });
            if matches {
                let h = self.handle.clone();
                self.rt
                    .block_on(async move { h.address().del(m).execute().await })
                    .map_err(|source| NetifError::Netlink {
                        op: "address del",
                        iface: iface.into(),
                        source,
                    })?;
                removed = true;
            }
        }
        Ok(removed)
    }

    /// Replaces `from` by `to` on the interface: the thesis' eth3 flip between 192.168.10.1
    /// and 192.168.20.x. The new address is added only after the old one is gone, so the
    /// interface never answers for both.
    pub fn move_ipv4(&self, iface: &str, from: Ipv4Addr, to: Ipv4Cidr) -> Result<()> {
        self.del_ipv4(iface, from)?;
        self.add_ipv4(iface, to)
    }
}

/// Moves the calling thread into network namespace `name` (as made by `ip netns add`, under
/// /run/netns). Only this thread moves; use a dedicated thread.
pub fn enter_netns(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(NetifError::Invalid("namespace name", format!("{name:?}")));
    }
    let f = std::fs::File::open(format!("/run/netns/{name}"))
        .map_err(|e| NetifError::Io("opening /run/netns entry", e))?;
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a valid fd we own; it only changes this thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(NetifError::Io("setns", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// A layer-3 TUN device carrying raw IP packets.
pub struct Tun {
    dev: tun_rs::SyncDevice,
    name: String,
}

impl Tun {
    /// Creates TUN device `name` with `addr`, MTU `mtu`, and brings it up. The address is set
    /// through netlink.
    pub fn create(name: &str, addr: Ipv4Cidr, mtu: u16) -> Result<Self> {
        check_ifname(name)?;
        let dev = tun_rs::DeviceBuilder::new()
            .name(name)
            .mtu(mtu)
            .enable(false)
            .build_sync()
            .map_err(|e| NetifError::Io("creating TUN device (needs root or CAP_NET_ADMIN)", e))?;
        let nl = Netlink::new()?;
        nl.add_ipv4(name, addr)?;
        nl.set_up(name)?;
        Ok(Tun {
            dev,
            name: name.to_string(),
        })
    }

    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one IP packet (blocking unless set non-blocking).
    pub fn recv(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.dev.recv(buf)
    }

    /// Writes one IP packet.
    pub fn send(&self, pkt: &[u8]) -> std::io::Result<usize> {
        self.dev.send(pkt)
    }

    /// Switches blocking mode.
    pub fn set_nonblocking(&self, nb: bool) -> std::io::Result<()> {
        self.dev.set_nonblocking(nb)
    }

    /// Raw fd for poll(2).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.dev.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing() {
        let c: Ipv4Cidr = "192.168.40.9/24".parse().unwrap();
        assert_eq!(
            c,
            Ipv4Cidr {
                addr: Ipv4Addr::new(192, 168, 40, 9),
                prefix: 24
            }
        );
        assert_eq!("10.0.0.1".parse::<Ipv4Cidr>().unwrap().prefix, 32);
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4/33",
            "1.2.3.4/x",
            "a/24",
            "1.2.3.4/24/1",
        ] {
            assert!(bad.parse::<Ipv4Cidr>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn interface_names() {
        assert!(check_ifname("eth3").is_ok());
        assert!(check_ifname("tun-ferry").is_ok());
        for bad in ["", "a/b", "with space", "sixteen-chars-xx", "a:1"] {
            assert!(check_ifname(bad).is_err(), "{bad:?} accepted");
        }
    }
}

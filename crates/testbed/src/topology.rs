//! The thesis topology as data, and the plan of `ip` invocations that builds it.
//!
//! Pure: nothing here touches the system. [`crate::netns`] executes the plan.
//!
//! ```text
//!   server1 ──eth3──┐                 ┌──mgmt0── server1
//!   server2 ──eth3──┤  bridge "fh"    │  bridge "mgmt"   (agents, ZeroMQ)
//!   server3 ──eth3──┤  (the gigabit   ├──mgmt0── server2 / server3 / server4
//!   server4 ──eth3──┤   switch)       │
//!   radio   ──fh0───┘                 └──mgmt0── radio room (link control)
//! ```
//! Both bridges live in a switch namespace `<prefix>-sw`, so nothing leaks into the host's
//! own network namespace.

use serde::Serialize;
use std::net::Ipv4Addr;

/// The N210's own address on the fronthaul (thesis 3.3.1).
pub const POOL_RADIO_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 2);
/// The one address the N210 streams to (thesis 3.3.1): exactly one pool server holds it.
pub const LEGACY_HOST_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
/// Far-end terminal's TUN address (thesis 3.6.1).
pub const FAR_END_TUN: Ipv4Addr = Ipv4Addr::new(192, 168, 40, 8);
/// Pool-side TUN address that moves with the task (thesis 3.6.1).
pub const POOL_TUN: Ipv4Addr = Ipv4Addr::new(192, 168, 40, 9);

/// Which bridge an interface plugs into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bridge {
    /// Fronthaul: the gigabit switch between servers' `eth3` and the radios.
    Fh,
    /// Management LAN: agents and console over ZeroMQ, radio link control.
    Mgmt,
}

impl Bridge {
    /// Bridge device name inside the switch namespace.
    pub fn device(self) -> &'static str {
        match self {
            Bridge::Fh => "fh",
            Bridge::Mgmt => "mgmt",
        }
    }
}

/// What a host is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A baseband-pool server running an agent (server1, server2).
    PoolServer,
    /// The far-end terminal that generates traffic (server3).
    FarEnd,
    /// The video receiver behind the relay (server4, chapter 4).
    RelayReceiver,
    /// The radio room: `ferry air` with the emulated radios.
    RadioRoom,
    /// The pool's control host (`ferry demo pool`): etcd and the pool controller.
    Controller,
}

/// An address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cidr {
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

const fn cidr(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
    Cidr {
        addr: Ipv4Addr::new(a, b, c, d),
        prefix,
    }
}

/// One veth interface of a host, plugged into a bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Iface {
    /// Name inside the host's namespace (`eth3`, `mgmt0`, `fh0`).
    pub name: String,
    /// Name of the veth peer inside the switch namespace (unique there, ≤ 15 bytes).
    pub peer: String,
    /// Bridge it is enslaved to.
    pub bridge: Bridge,
    /// Addresses that stay for the testbed's lifetime.
    pub addrs: Vec<Cidr>,
    /// Addresses set at creation that the system later moves (the legacy parking address).
    pub initial: Vec<Cidr>,
}

/// One host of the testbed: a network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    /// Short name used on the command line (`server1`, `radio`).
    pub name: String,
    /// Namespace name (`<prefix>-server1`).
    pub ns: String,
    /// What it is for.
    pub role: Role,
    /// Its interfaces.
    pub ifaces: Vec<Iface>,
}

impl Host {
    /// The host's permanent address on the management LAN.
    pub fn mgmt_addr(&self) -> Option<Ipv4Addr> {
        self.ifaces
            .iter()
            .find(|i| i.bridge == Bridge::Mgmt)
            .and_then(|i| i.addrs.first())
            .map(|c| c.addr)
    }

    /// The host's permanent fronthaul address (for pool servers, the one the radio can always
    /// reach for make-before-break; the legacy .10.1 / .20.x address moves separately).
    pub fn fh_addr(&self) -> Option<Ipv4Addr> {
        self.ifaces
            .iter()
            .find(|i| i.bridge == Bridge::Fh)
            .and_then(|i| i.addrs.first())
            .map(|c| c.addr)
    }
}

/// The whole testbed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// Prefix of every namespace name; lets tests run beside a demo.
    pub prefix: String,
    /// The switch namespace holding both bridges.
    pub switch_ns: String,
    /// Hosts.
    pub hosts: Vec<Host>,
}

/// Why a prefix is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid testbed prefix {0:?}: use 1–12 characters from [a-z0-9], starting with a letter")]
pub struct BadPrefix(pub String);

/// Checks a namespace prefix: short (namespace names stay readable), and nothing a shell or
/// `ip` could misread.
pub fn check_prefix(prefix: &str) -> Result<(), BadPrefix> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 12
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(BadPrefix(prefix.to_string()))
    }
}

impl Topology {
    /// The thesis topology (figures 3-8, 3-17 and 4-5) with namespaces named `<prefix>-…`.
    ///
    /// Addresses:
    /// - fronthaul `fh`: radio room 192.168.10.2 (the pool's N210), 192.168.13.2 (server3's
    ///   radio), 192.168.14.2 (server4's radio); server1/server2 `eth3` carry a permanent
    ///   192.168.10.11 / .12 and start parked at 192.168.20.1 / 192.168.20.2 (the thesis'
    ///   "other subnet"); `DS` moves 192.168.10.1 onto one of them. server3 192.168.13.1,
    ///   server4 192.168.14.1.
    /// - management `mgmt`: 10.99.0.1–.4 for server1–4, 10.99.0.10 for the radio room.
    pub fn thesis(prefix: &str) -> Result<Topology, BadPrefix> {
        check_prefix(prefix)?;
        let ns = |n: &str| format!("{prefix}-{n}");
        let mgmt = |short: &str, last: u8| Iface {
            name: "mgmt0".into(),
            peer: format!("{short}-mgmt"),
            bridge: Bridge::Mgmt,
            addrs: vec![cidr(10, 99, 0, last, 24)],
            initial: vec![],
        };
        let eth3 = |short: &str, addrs: Vec<Cidr>, initial: Vec<Cidr>| Iface {
            name: "eth3".into(),
            peer: format!("{short}-eth3"),
            bridge: Bridge::Fh,
            addrs,
            initial,
        };
        let host = |name: &str, role: Role, ifaces: Vec<Iface>| Host {
            name: name.into(),
            ns: ns(name),
            role,
            ifaces,
        };
        Ok(Topology {
            prefix: prefix.to_string(),
            switch_ns: ns("sw"),
            hosts: vec![
                host(
                    "server1",
                    Role::PoolServer,
                    vec![
                        eth3(
                            "s1",
                            vec![cidr(192, 168, 10, 11, 24)],
                            vec![cidr(192, 168, 20, 1, 24)],
                        ),
                        mgmt("s1", 1),
                    ],
                ),
                host(
                    "server2",
                    Role::PoolServer,
                    vec![
                        eth3(
                            "s2",
                            vec![cidr(192, 168, 10, 12, 24)],
                            vec![cidr(192, 168, 20, 2, 24)],
                        ),
                        mgmt("s2", 2),
                    ],
                ),
                host(
                    "server3",
                    Role::FarEnd,
                    vec![
                        eth3("s3", vec![cidr(192, 168, 13, 1, 24)], vec![]),
                        mgmt("s3", 3),
                    ],
                ),
                host(
                    "server4",
                    Role::RelayReceiver,
                    vec![
                        eth3("s4", vec![cidr(192, 168, 14, 1, 24)], vec![]),
                        mgmt("s4", 4),
                    ],
                ),
                host(
                    "radio",
                    Role::RadioRoom,
                    vec![
                        Iface {
                            name: "fh0".into(),
                            peer: "rr-fh0".into(),
                            bridge: Bridge::Fh,
                            addrs: vec![
                                Cidr {
                                    addr: POOL_RADIO_ADDR,
                                    prefix: 24,
                                },
                                cidr(192, 168, 13, 2, 24),
                                cidr(192, 168, 14, 2, 24),
                            ],
                            initial: vec![],
                        },
                        mgmt("rr", 10),
                    ],
                ),
            ],
        })
    }

    /// The pool testbed of `ferry demo pool`: `servers` pool servers (2–9) with the thesis'
    /// addressing (server n: `eth3` 192.168.10.1n, parked 192.168.20.n, mgmt 10.99.0.n),
    /// one far-end host `farend` for every cell's far terminal (192.168.13.1, mgmt
    /// 10.99.0.20), the control host `control` for etcd and the pool controller (mgmt
    /// 10.99.0.9) and the radio room (192.168.10.2 and 192.168.13.2, mgmt 10.99.0.10).
    pub fn pool(prefix: &str, servers: u8) -> Result<Topology, BadPrefix> {
        check_prefix(prefix)?;
        let servers = servers.clamp(2, 9);
        let ns = |n: &str| format!("{prefix}-{n}");
        let mgmt = |short: &str, last: u8| Iface {
            name: "mgmt0".into(),
            peer: format!("{short}-mgmt"),
            bridge: Bridge::Mgmt,
            addrs: vec![cidr(10, 99, 0, last, 24)],
            initial: vec![],
        };
        let eth3 = |short: &str, addrs: Vec<Cidr>, initial: Vec<Cidr>| Iface {
            name: "eth3".into(),
            peer: format!("{short}-eth3"),
            bridge: Bridge::Fh,
            addrs,
            initial,
        };
        let host = |name: &str, role: Role, ifaces: Vec<Iface>| Host {
            name: name.into(),
            ns: ns(name),
            role,
            ifaces,
        };
        let mut hosts: Vec<Host> = (1..=servers)
            .map(|n| {
                let short = format!("s{n}");
                host(
                    &format!("server{n}"),
                    Role::PoolServer,
                    vec![
                        eth3(
                            &short,
                            vec![cidr(192, 168, 10, 10 + n, 24)],
                            vec![cidr(192, 168, 20, n, 24)],
                        ),
                        mgmt(&short, n),
                    ],
                )
            })
            .collect();
        hosts.push(host(
            "farend",
            Role::FarEnd,
            vec![
                eth3("fe", vec![cidr(192, 168, 13, 1, 24)], vec![]),
                mgmt("fe", 20),
            ],
        ));
        hosts.push(host("control", Role::Controller, vec![mgmt("ct", 9)]));
        hosts.push(host(
            "radio",
            Role::RadioRoom,
            vec![
                Iface {
                    name: "fh0".into(),
                    peer: "rr-fh0".into(),
                    bridge: Bridge::Fh,
                    addrs: vec![
                        Cidr {
                            addr: POOL_RADIO_ADDR,
                            prefix: 24,
                        },
                        cidr(192, 168, 13, 2, 24),
                    ],
                    initial: vec![],
                },
                mgmt("rr", 10),
            ],
        ));
        Ok(Topology {
            prefix: prefix.to_string(),
            switch_ns: ns("sw"),
            hosts,
        })
    }

    /// Every namespace of the testbed, switch first.
    pub fn namespaces(&self) -> Vec<&str> {
        std::iter::once(self.switch_ns.as_str())
            .chain(self.hosts.iter().map(|h| h.ns.as_str()))
            .collect()
    }

    /// A host by short name (`server1`) or namespace name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name || h.ns == name)
    }

    /// The `ip` invocations (argument vectors, no shell) that build the testbed from nothing.
    pub fn plan_up(&self) -> Vec<Vec<String>> {
        let mut plan: Vec<Vec<String>> = Vec::new();
        let mut ip = |args: &[&str]| plan.push(args.iter().map(|s| s.to_string()).collect());
        for ns in self.namespaces() {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let sw = self.switch_ns.as_str();
        for br in [Bridge::Fh, Bridge::Mgmt] {
            ip(&["-n", sw, "link", "add", br.device(), "type", "bridge"]);
            ip(&["-n", sw, "link", "set", br.device(), "up"]);
        }
        for h in &self.hosts {
            for i in &h.ifaces {
                ip(&[
                    "-n", sw, "link", "add", &i.peer, "type", "veth", "peer", "name", &i.name,
                    "netns", &h.ns,
                ]);
                ip(&[
                    "-n",
                    sw,
                    "link",
                    "set",
                    &i.peer,
                    "master",
                    i.bridge.device(),
                    "up",
                ]);
                for a in i.addrs.iter().chain(&i.initial) {
                    ip(&["-n", &h.ns, "addr", "add", &a.to_string(), "dev", &i.name]);
                }
                ip(&["-n", &h.ns, "link", "set", &i.name, "up"]);
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("ferry").is_ok());
        assert!(check_prefix("t123").is_ok());
        for bad in ["", "1abc", "Ferry", "a b", "a;rm", "abcdefghijklm", "a-b"] {
            assert!(check_prefix(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_fit_linux_limits_and_are_unique() {
        let t = Topology::thesis("abcdefghijkl").unwrap();
        let mut peers = HashSet::new();
        for h in &t.hosts {
            let mut names = HashSet::new();
            for i in &h.ifaces {
                assert!(i.name.len() <= 15 && i.peer.len() <= 15);
                assert!(names.insert(&i.name), "duplicate iface in {}", h.name);
                assert!(peers.insert(&i.peer), "duplicate peer {}", i.peer);
            }
        }
        let ns: HashSet<_> = t.namespaces().into_iter().collect();
        assert_eq!(ns.len(), 6);
    }

    #[test]
    fn addresses_are_unique_and_legacy_address_is_nobodys_at_start() {
        let t = Topology::thesis("ferry").unwrap();
        let mut seen = HashSet::new();
        for h in &t.hosts {
            for i in &h.ifaces {
                for a in i.addrs.iter().chain(&i.initial) {
                    assert!(seen.insert(a.addr), "{} twice", a.addr);
                    assert_ne!(a.addr, LEGACY_HOST_ADDR, "DS, not the testbed, takes .10.1");
                }
            }
        }
        assert_eq!(t.host("radio").unwrap().fh_addr(), Some(POOL_RADIO_ADDR));
        assert_eq!(
            t.host("server2").unwrap().mgmt_addr(),
            Some(Ipv4Addr::new(10, 99, 0, 2))
        );
    }

    #[test]
    fn pool_topology_has_unique_names_and_addresses() {
        let t = Topology::pool("abcdefghijkl", 5).unwrap();
        let (mut peers, mut addrs) = (HashSet::new(), HashSet::new());
        for h in &t.hosts {
            for i in &h.ifaces {
                assert!(i.name.len() <= 15 && i.peer.len() <= 15);
                assert!(peers.insert(i.peer.clone()), "duplicate peer {}", i.peer);
                for a in i.addrs.iter().chain(&i.initial) {
                    assert!(addrs.insert(a.addr), "{} twice", a.addr);
                }
            }
        }
        let pool = t
            .hosts
            .iter()
            .filter(|h| h.role == Role::PoolServer)
            .count();
        assert_eq!(pool, 5);
        assert_eq!(
            t.host("server5").unwrap().fh_addr(),
            Some(Ipv4Addr::new(192, 168, 10, 15))
        );
        assert_eq!(t.namespaces().len(), 1 + 5 + 3);
    }

    #[test]
    fn plan_creates_namespaces_before_using_them() {
        let t = Topology::thesis("ferry").unwrap();
        let plan = t.plan_up();
        let mut created = HashSet::new();
        for argv in &plan {
            if argv[0] == "netns" && argv[1] == "add" {
                created.insert(argv[2].clone());
            }
            if argv[0] == "-n" {
                assert!(created.contains(&argv[1]), "{argv:?} before netns add");
            }
            if let Some(p) = argv.iter().position(|a| a == "netns").filter(|&p| p > 0) {
                assert!(created.contains(&argv[p + 1]), "{argv:?} before netns add");
            }
        }
        assert_eq!(created.len(), 6);
    }
}

//! Executes testbed plans with iproute2's `ip`, always as an argument vector (never a shell),
//! and reads the testbed's state back.
//!
//! Namespaces are created the way `ip netns add` does it (a bind mount under /run/netns), so
//! `ip netns exec`, `ip -n` and every other iproute2 tool see them.

use crate::topology::Topology;
use serde::Serialize;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Errors of the IO side.
#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    /// The testbed needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
    #[error("the namespace testbed needs root (network namespaces, veth, bridges): run it with sudo, or as root in CI")]
    NotRoot,
    /// `ip` is missing.
    #[error("`ip` (iproute2) not found: install it with `apt-get install iproute2`")]
    NoIproute2,
    /// An `ip` invocation failed.
    #[error("`ip {argv}` failed ({status}): {stderr}")]
    Command {
        /// Arguments, space-joined for the message.
        argv: String,
        /// Exit status.
        status: String,
        /// What `ip` said.
        stderr: String,
    },
    /// Spawning failed.
    #[error("could not run `{0}`: {1}")]
    Spawn(String, std::io::Error),
    /// A topology error.
    #[error(transparent)]
    Prefix(#[from] crate::topology::BadPrefix),
}

/// True when running as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Fails with [`TestbedError::NotRoot`] unless root, and checks that `ip` exists.
pub fn require_root() -> Result<(), TestbedError> {
    if !is_root() {
        return Err(TestbedError::NotRoot);
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(TestbedError::NoIproute2),
    }
}

fn output(argv: &[&str]) -> Result<Output, TestbedError> {
    Command::new("ip")
        .args(argv)
        .output()
        .map_err(|e| TestbedError::Spawn("ip".into(), e))
}

/// Runs `ip ARGV…`; a non-zero exit is an error carrying `ip`'s own message.
pub fn ip<S: AsRef<str>>(argv: &[S]) -> Result<String, TestbedError> {
    let args: Vec<&str> = argv.iter().map(|s| s.as_ref()).collect();
    let out = output(&args)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(TestbedError::Command {
            argv: args.join(" "),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Names of existing network namespaces (from /run/netns, where `ip netns add` puts them).
pub fn list_namespaces() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Namespaces belonging to a testbed with this prefix.
pub fn testbed_namespaces(prefix: &str) -> Vec<String> {
    let p = format!("{prefix}-");
    list_namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&p))
        .collect()
}

/// Process IDs running inside a namespace.
pub fn pids_in(ns: &str) -> Vec<i32> {
    ip(&["netns", "pids", ns])
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// Stops every process inside `ns`: SIGTERM, then SIGKILL after `grace`.
pub fn kill_all_in(ns: &str, grace: Duration) -> usize {
    let pids = pids_in(ns);
    for &p in &pids {
        // SAFETY: plain kill(2) on a pid we just listed; failure (already gone) is fine.
        unsafe { libc::kill(p, libc::SIGTERM) };
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && pids.iter().any(|&p| alive(p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &p in pids.iter().filter(|&&p| alive(p)) {
        // SAFETY: as above.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    pids.len()
}

/// Removes every namespace of the testbed with this prefix, stopping what runs inside.
/// Works after a crash too: it needs nothing but the prefix. Returns the namespaces removed.
pub fn down(prefix: &str) -> Result<Vec<String>, TestbedError> {
    crate::topology::check_prefix(prefix)?;
    require_root()?;
    let nss = testbed_namespaces(prefix);
    for ns in &nss {
        kill_all_in(ns, Duration::from_millis(1500));
    }
    for ns in &nss {
        // veth pairs and bridges vanish with their namespaces.
        ip(&["netns", "del", ns.as_str()])?;
    }
    Ok(nss)
}

/// What `up` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpOutcome {
    /// Built from nothing.
    Created,
    /// Leftovers (a crash, a half-built testbed) were removed and the testbed rebuilt.
    Rebuilt,
    /// Everything was already there and healthy: nothing touched.
    AlreadyUp,
}

/// Builds the testbed. Idempotent: a healthy testbed is left alone (running processes keep
/// running); a partial one is torn down and rebuilt.
pub fn up(topo: &Topology) -> Result<UpOutcome, TestbedError> {
    require_root()?;
    let existing = testbed_namespaces(&topo.prefix);
    let outcome = if existing.is_empty() {
        UpOutcome::Created
    } else if check(topo).healthy() {
        return Ok(UpOutcome::AlreadyUp);
    } else {
        down(&topo.prefix)?;
        UpOutcome::Rebuilt
    };
    for argv in topo.plan_up() {
        if let Err(e) = ip(&argv) {
            // Leave nothing half-built behind.
            let _ = down(&topo.prefix);
            return Err(e);
        }
    }
    Ok(outcome)
}

/// One interface as found on the system.
#[derive(Debug, Clone, Serialize)]
pub struct IfaceState {
    /// Interface name.
    pub name: String,
    /// Operational state as the kernel reports it.
    pub state: String,
    /// Addresses (CIDR) currently on it.
    pub addrs: Vec<String>,
}

/// One host as found on the system.
#[derive(Debug, Clone, Serialize)]
pub struct HostState {
    /// Short name.
    pub name: String,
    /// Namespace.
    pub ns: String,
    /// Whether the namespace exists.
    pub present: bool,
    /// Interfaces (empty when absent).
    pub ifaces: Vec<IfaceState>,
    /// Processes running inside.
    pub pids: Vec<i32>,
    /// What is missing compared with the topology.
    pub missing: Vec<String>,
}

/// The whole testbed as found.
#[derive(Debug, Clone, Serialize)]
pub struct TestbedState {
    /// Prefix.
    pub prefix: String,
    /// Switch namespace present.
    pub switch_present: bool,
    /// Hosts.
    pub hosts: Vec<HostState>,
    /// Namespaces with the prefix that the topology does not know (leftovers).
    pub strays: Vec<String>,
}

impl TestbedState {
    /// Everything present, nothing missing.
    pub fn healthy(&self) -> bool {
        self.switch_present && self.hosts.iter().all(|h| h.present && h.missing.is_empty())
    }

    /// Nothing of this testbed exists.
    pub fn absent(&self) -> bool {
        !self.switch_present && self.hosts.iter().all(|h| !h.present) && self.strays.is_empty()
    }
}

#[derive(serde::Deserialize)]
struct IpAddrJson {
    ifname: String,
    #[serde(default)]
    operstate: String,
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
}

#[derive(serde::Deserialize)]
struct IpAddrInfo {
    family: String,
    local: String,
    prefixlen: u8,
}

/// Interfaces and IPv4 addresses inside `ns`, read with `ip -j` (JSON).
pub fn ifaces_in(ns: &str) -> Vec<IfaceState> {
    let Ok(json) = ip(&["-j", "-n", ns, "addr", "show"]) else {
        return vec![];
    };
    let parsed: Vec<IpAddrJson> = serde_json::from_str(&json).unwrap_or_default();
    parsed
        .into_iter()
        .map(|i| IfaceState {
            name: i.ifname,
            state: i.operstate,
            addrs: i
                .addr_info
                .into_iter()
                .filter(|a| a.family == "inet")
                .map(|a| format!("{}/{}", a.local, a.prefixlen))
                .collect(),
        })
        .collect()
}

/// Whether interface `iface` inside `ns` holds IPv4 address `addr` (any prefix length).
pub fn holds_addr(ns: &str, iface: &str, addr: std::net::Ipv4Addr) -> bool {
    let want = format!("{addr}/");
    ifaces_in(ns)
        .iter()
        .filter(|i| i.name == iface)
        .any(|i| i.addrs.iter().any(|a| a.starts_with(&want)))
}

/// Reads the testbed's state and compares it with the topology.
pub fn check(topo: &Topology) -> TestbedState {
    let present = testbed_namespaces(&topo.prefix);
    let has = |ns: &str| present.iter().any(|p| p == ns);
    let hosts = topo
        .hosts
        .iter()
        .map(|h| {
            let here = has(&h.ns);
            let ifaces = if here { ifaces_in(&h.ns) } else { vec![] };
            let mut missing = vec![];
            if here {
                for want in &h.ifaces {
                    match ifaces.iter().find(|i| i.name == want.name) {
                        None => missing.push(format!("interface {}", want.name)),
                        Some(got) => {
                            for a in &want.addrs {
                                if !got.addrs.contains(&a.to_string()) {
                                    missing.push(format!("{} on {}", a, want.name));
                                }
                            }
                        }
                    }
                }
            } else {
                missing.push("namespace".into());
            }
            HostState {
                name: h.name.clone(),
                ns: h.ns.clone(),
                present: here,
                pids: if here { pids_in(&h.ns) } else { vec![] },
                ifaces,
                missing,
            }
        })
        .collect();
    let known: Vec<&str> = topo.namespaces();
    TestbedState {
        prefix: topo.prefix.clone(),
        switch_present: has(&topo.switch_ns),
        hosts,
        strays: present
            .iter()
            .filter(|p| !known.contains(&p.as_str()))
            .cloned()
            .collect(),
    }
}

/// A command that runs `program args…` inside namespace `ns` (via `ip netns exec`, no shell).
pub fn command_in(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

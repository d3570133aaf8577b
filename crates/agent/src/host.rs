//! The host side of every migration step: performs the core's [`LocalOp`]s on this server
//! (eth3 and tun addresses through netlink, the radio link as the thesis' USRP object, the
//! modem child process, the collector) and reports typed results. Shared by `ferry agent`
//! (destination steps) and `ferry ctl` (the console's own host).

use crate::collector::{Collected, Collector};
use crate::modem::{modem_call, ModemCommand, ModemProcess, ModemStart};
use crossbeam_channel::{Receiver, Sender};
use ferry_migrate::lease::Observation;
use ferry_migrate::{Control, HostStatus, LocalOp, LocalValue, ModemMode, ModemStatus, RouteList};
use ferry_modem::ModemRequest;
use ferry_netif::{Ipv4Cidr, Netlink};
use ferry_radio::{ControlClient, RadioLink, RadioLinkConfig};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// How a step ended badly: an expected failure (the thesis' rollbacks follow) or an
/// unexpected error of the shell itself (the thesis' "command raised").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The step failed (radio absent, address refused, modem refused ...).
    #[error("{0}")]
    Failed(String),
    /// The shell could not even attempt the step (netlink socket, thread, internal error).
    #[error("{0}")]
    Raised(String),
}

/// A netlink error as a step result: the kernel refusing a request is a failure of the
/// step; a missing interface or an unusable socket means the host is not what the agent
/// was configured for, which the thesis' controller saw as an exception ("raised").
fn netif_error(what: &str, e: ferry_netif::NetifError) -> StepError {
    use ferry_netif::NetifError as N;
    match e {
        N::Netlink { .. } => StepError::Failed(format!("{what}: {e}")),
        N::NoSuchInterface(_) | N::Io(..) | N::Invalid(..) => {
            StepError::Raised(format!("{what}: {e}"))
        }
    }
}

/// Whether `a` lies in `b`'s subnet (by `b`'s prefix).
fn same_subnet(a: &Ipv4Cidr, b: &Ipv4Cidr) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(b.prefix.min(32)))
        .unwrap_or(0);
    (u32::from(a.addr) & mask) == (u32::from(b.addr) & mask)
}

/// Where addresses are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// Through rtnetlink, in this process's network namespace.
    Netlink,
    /// In memory only (`--dry`: tests and demos outside the testbed).
    Dry,
}

/// `SCHED_FIFO` priority of the modem's death watch: above the modem's default 10, so the
/// report is not queued behind the real-time loops it is about.
const WATCH_RT_PRIORITY: i32 = 15;

/// How the radio is reached (the thesis' USRP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RadioAccess {
    /// Address-bound (legacy) radio: streams only to whoever holds the active eth3 address;
    /// discovery by fronthaul probe; the "USRP object" is the bound fronthaul socket.
    Legacy {
        /// The radio's fronthaul address (192.168.10.2:49156 in the testbed).
        radio: SocketAddr,
        /// Local fronthaul socket (0.0.0.0:49200).
        bind: SocketAddr,
        /// Sample rate, for the link's bookkeeping.
        rate_hz: u32,
    },
    /// A radio moved by `ferry air` link control.
    Controlled {
        /// Link-control endpoint.
        control: String,
        /// Radio name.
        radio: String,
        /// Local fronthaul socket (a concrete address: the radio streams to it).
        bind: SocketAddr,
        /// Link-control key and the air's identity.
        auth: Option<ferry_radio::LinkAuth>,
    },
    /// No radio: probes answer if `present` (`--dry`).
    Dry {
        /// Whether discovery finds a radio.
        present: bool,
    },
}

/// Settings of one pool server.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Fronthaul interface (thesis: eth3).
    pub eth3: String,
    /// TUN interface the modem creates.
    pub tun: String,
    /// eth3 address the radio talks to (192.168.10.1).
    pub active_addr: Ipv4Addr,
    /// This host's parked eth3 address (192.168.20.x).
    pub parked_addr: Ipv4Addr,
    /// Prefix length of eth3 addresses.
    pub eth3_prefix: u8,
    /// Prefix length of the tun address.
    pub tun_prefix: u8,
    /// Netlink or dry.
    pub addressing: Addressing,
    /// The radio.
    pub radio: RadioAccess,
    /// Wait for one discovery answer.
    pub probe_wait: Duration,
    /// Wait for the first RX block when linking a legacy radio.
    pub link_wait: Duration,
    /// The modem itself holds the radio link (a real `ferry modem`): the USRP object is the
    /// modem's link, `make_usrp` checks the modem runs, `link_usrp` waits until the modem
    /// reports the radio streaming to it as primary, `kill_usrp` leaves it to `kill_d2d`.
    pub usrp_in_modem: bool,
    /// The modem program; `None`: `start_d2d` fails clearly.
    pub modem: Option<ModemCommand>,
    /// How long the modem may take to open its control socket.
    pub modem_ready: Duration,
    /// Collector period (thesis: 10 s).
    pub collector_period: Duration,
    /// The modem's fronthaul endpoint as the radio sees it (its `--bind`): when the modem
    /// exits on its own, the agent reports this endpoint dead to a controlled radio at once
    /// (`primary_dead`), a faster path than the radio's liveness interval.
    pub modem_fronthaul: Option<SocketAddr>,
}

impl HostConfig {
    /// Dry defaults: in-memory addresses, a present dry radio, no modem, 10 s collector.
    pub fn dry() -> HostConfig {
        HostConfig {
            eth3: "eth3".into(),
            tun: "tun0".into(),
            active_addr: ferry_migrate::console::ACTIVE_ADDR,
            parked_addr: ferry_migrate::console::PARKED_ADDR,
            eth3_prefix: 24,
            tun_prefix: 24,
            addressing: Addressing::Dry,
            radio: RadioAccess::Dry { present: true },
            probe_wait: Duration::from_millis(250),
            link_wait: Duration::from_millis(1000),
            usrp_in_modem: false,
            modem: None,
            modem_ready: Duration::from_secs(3),
            collector_period: Duration::from_secs(10),
            modem_fronthaul: None,
        }
    }
}

/// Addresses of the two interfaces the steps touch.
enum Addrs {
    Netlink(Netlink),
    Dry {
        eth3: BTreeSet<Ipv4Addr>,
        tun: BTreeSet<Ipv4Addr>,
    },
}

/// The thesis' USRP object.
enum Usrp {
    Link(Box<RadioLink>),
    Dry,
}

/// What the radio (the arbiter) uses a host's fronthaul endpoint for.
pub use ferry_migrate::lease::RadioRole;

/// The role `endpoint` has in the radio's `status`, if any (the first of primary, switch
/// target, shadow, standby, fallback).
pub fn radio_role(
    report: &ferry_fronthaul::control::StatusReport,
    endpoint: SocketAddr,
) -> Option<RadioRole> {
    let a = &report.arbiter;
    if report.linked == Some(endpoint) {
        Some(RadioRole::Primary)
    } else if report.pending_switch.is_some_and(|(_, h)| h == endpoint) {
        Some(RadioRole::SwitchTarget)
    } else if report.shadow == Some(endpoint) {
        Some(RadioRole::Shadow)
    } else if a.standby == Some(endpoint) {
        Some(RadioRole::Standby)
    } else if a.fallback.is_some_and(|(h, _)| h == endpoint) {
        Some(RadioRole::Fallback)
    } else {
        None
    }
}

/// Performs local steps on this host and owns what they start.
pub struct HostExec {
    cfg: HostConfig,
    addrs: Option<Addrs>,
    usrp: Option<Usrp>,
    usrp_linked: bool,
    modem: Option<ModemProcess>,
    /// How the last modem ended on its own (named in later failures).
    modem_exit: Option<String>,
    collector: Option<Collector>,
    /// Reports the modem's death to the radio the moment it happens (deathwatch).
    watch: Option<crate::deathwatch::DeathWatch>,
    collected_tx: Sender<Collected>,
    collected_rx: Receiver<Collected>,
    control: Option<Control>,
    routes: Option<RouteList>,
    tun_ip: Option<Ipv4Addr>,
}

impl HostExec {
    /// A host with nothing running.
    pub fn new(cfg: HostConfig) -> HostExec {
        let (collected_tx, collected_rx) = crossbeam_channel::unbounded();
        HostExec {
            cfg,
            addrs: None,
            usrp: None,
            usrp_linked: false,
            modem: None,
            watch: None,
            modem_exit: None,
            collector: None,
            collected_tx,
            collected_rx,
            control: None,
            routes: None,
            tun_ip: None,
        }
    }

    /// Settings.
    pub fn config(&self) -> &HostConfig {
        &self.cfg
    }

    /// Adopt the modem an earlier agent on this host started, if it still runs (a
    /// restarted agent: after a crash, `kill -9` or `SIGTERM`, the modem keeps serving).
    /// Its TUN address is taken from its status and the collector is started, so the
    /// agent reports it and can migrate or stop it. Returns what happened, for the log.
    pub fn adopt_modem(&mut self) -> Option<String> {
        let cmd = self.cfg.modem.clone()?;
        match ModemProcess::adopt(&cmd) {
            Ok(Some(p)) => {
                let pid = p.pid();
                let tun = modem_call(p.socket(), &ModemRequest::Status, Duration::from_secs(1))
                    .ok()
                    .and_then(|v| serde_json::from_value::<ferry_modem::ModemStatus>(v).ok())
                    .and_then(|st| st.tun_addr)
                    .and_then(|a| a.split('/').next().and_then(|ip| ip.parse().ok()));
                self.modem = Some(p);
                self.modem_exit = None;
                self.arm_watch();
                if tun.is_some() {
                    self.tun_ip = tun;
                }
                // A modem the radio has no role for is what an interrupted migration or a
                // failover left behind while no agent owned it: nobody else will stop it.
                match self.radio_role_of_modem() {
                    Ok(Some(None)) => {
                        let endpoint = self.cfg.modem_fronthaul;
                        let how = match self.kill_d2d() {
                            Ok(_) => "stopped".to_string(),
                            Err(e) => format!("could not stop it: {e:?}"),
                        };
                        return Some(format!(
                            "adopted modem pid {pid} is an orphan: the radio neither serves \
                             from, shadows to, protects with nor falls back to {endpoint:?} \
                             (left by an interrupted migration or a failover); {how}"
                        ));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("adopted modem pid {pid}: radio not asked ({e}); kept")
                    }
                }
                let collector = match self.start_collector() {
                    Ok(_) => "collector started".to_string(),
                    Err(e) => format!("collector: {e:?}"),
                };
                Some(format!(
                    "adopted the running modem pid {pid} (tun {tun:?}; {collector})"
                ))
            }
            Ok(None) => None,
            Err(e) => Some(format!("not adopted: {e}")),
        }
    }

    /// The role the radio gives this host's modem (`Ok(None)` when it only runs on the
    /// side, `Ok(Some(None))` when the radio has no role for it). `Ok(None)` too when the
    /// question has no answer here: no controlled radio, or the modem does not hold the link.
    fn radio_role_of_modem(&self) -> Result<Option<Option<RadioRole>>, String> {
        let Some(link) = self.modem_link_control() else {
            return Ok(None);
        };
        let (_, report) = link
            .client()
            .status(&link.radio)
            .map_err(|e| e.to_string())?;
        Ok(Some(radio_role(&report, link.endpoint)))
    }

    /// Where and how to speak to the radio about this host's modem: only with a controlled
    /// radio, the modem holding the link and its endpoint known.
    fn modem_link_control(&self) -> Option<crate::deathwatch::Report> {
        let (
            RadioAccess::Controlled {
                control,
                radio,
                auth,
                ..
            },
            Some(endpoint),
            true,
        ) = (
            &self.cfg.radio,
            self.cfg.modem_fronthaul,
            self.cfg.usrp_in_modem,
        )
        else {
            return None;
        };
        Some(crate::deathwatch::Report {
            control: control.clone(),
            radio: radio.clone(),
            auth: auth.clone(),
            endpoint,
        })
    }

    /// What the agent's lease judges (`ferry_migrate::lease`): the modem's cutover state
    /// and, when that state can be a leftover (shadow, takeover armed, released, fenced),
    /// its role at the radio; an active or release-armed modem is never a leftover, so the
    /// radio is not asked about it (its role shows as none). `None` when no modem runs, it
    /// does not answer, or the radio cannot be asked: an unknown is never judged.
    pub fn lease_observation(&mut self) -> Option<Observation> {
        self.modem.as_ref()?;
        let v = self.modem_request(ModemRequest::Status).ok()?;
        let st = serde_json::from_value::<ferry_modem::ModemStatus>(v).ok()?;
        let mode = map_modem_status(&st).mode;
        if matches!(mode, ModemMode::Active | ModemMode::ReleaseArmed) {
            return Some(Observation { mode, role: None });
        }
        match self.radio_role_of_modem() {
            Ok(Some(role)) => Some(Observation { mode, role }),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!("lease: radio not asked ({e})");
                None
            }
        }
    }

    /// Stop a leftover the lease ended: the collector and the modem (its TUN goes with
    /// it) and, with `unshadow`, the radio's RX copy to it (only if it still copies to this
    /// host's modem: a migration begun since keeps its shadow). Returns what was done.
    pub fn stop_leftover(&mut self, unshadow: bool) -> String {
        let link = self.modem_link_control();
        if let Some(mut c) = self.collector.take() {
            c.stop();
        }
        let modem = match self.kill_d2d() {
            Ok(_) => "modem stopped".to_string(),
            Err(e) => format!("modem not stopped: {e}"),
        };
        let radio = match (unshadow, link) {
            (false, _) => String::new(),
            (true, None) => "; the radio's shadow not removed (no controlled radio)".into(),
            (true, Some(l)) => {
                let req = ferry_fronthaul::control::Request::Unshadow {
                    radio: l.radio.clone(),
                    endpoint: l.endpoint,
                };
                match l.client().call(&req) {
                    Ok(_) => format!("; the radio no longer shadows to {}", l.endpoint),
                    Err(e) => format!("; the radio's shadow not removed: {e}"),
                }
            }
        };
        format!("{modem}{radio}")
    }

    /// Whether a modem child runs.
    pub fn modem_running(&self) -> bool {
        self.modem.is_some()
    }

    /// Pid of the modem child, if any.
    pub fn modem_pid(&self) -> Option<u32> {
        self.modem.as_ref().map(ModemProcess::pid)
    }

    /// Notice a modem that died on its own: reap it, stop the collector, and say so (with
    /// what the radio answered the death watch's report, see [`crate::deathwatch`]).
    pub fn check_modem(&mut self) -> Option<String> {
        let st = self.modem.as_mut()?.exited()?;
        self.modem = None;
        self.modem_exit = Some(st.clone());
        // The death watch reported it to the radio the moment it happened.
        let reported = self
            .watch
            .take()
            .and_then(|w| w.outcome(Duration::from_secs(1)))
            .map_or_else(String::new, |o| format!("; {o}"));
        if let Some(mut c) = self.collector.take() {
            c.stop();
        }
        Some(format!(
            "modem exited on its own ({st}); collector stopped{reported}"
        ))
    }

    /// Start the death watch of the modem just started or adopted (controlled radio, modem
    /// holding the link, endpoint known); see [`crate::deathwatch`].
    fn arm_watch(&mut self) {
        self.watch = None;
        tracing::debug!(
            fronthaul = ?self.cfg.modem_fronthaul,
            in_modem = self.cfg.usrp_in_modem,
            "arming the death watch"
        );
        let (Some(report), Some(pid)) = (self.modem_link_control(), self.modem_pid()) else {
            return;
        };
        let endpoint = report.endpoint;
        match crate::deathwatch::DeathWatch::start(pid, report, WATCH_RT_PRIORITY) {
            Ok(w) => {
                tracing::info!(pid, %endpoint, "death watch armed");
                self.watch = Some(w);
            }
            Err(e) => tracing::warn!("no death watch for the modem (pid {pid}): {e}"),
        }
    }

    /// Take what the collector gathered since the last call (also kept for
    /// `ReadControl` / `ReadRoutes`).
    pub fn poll_collected(&mut self) -> Vec<Collected> {
        let got: Vec<Collected> = self.collected_rx.try_iter().collect();
        for c in &got {
            match c {
                Collected::Control(c) => self.control = Some(c.clone()),
                Collected::Routes(r) => self.routes = Some(r.clone()),
                Collected::Failed(_) => {}
            }
        }
        got
    }

    /// The running modem's route list read now (the route collector, on demand), kept as
    /// the latest collected. A migration must carry the routes of the moment: the
    /// collector's copy may date from the modem's start, before discovery found the far
    /// end, and a destination without routes drops its traffic until the next beacon.
    pub fn collect_routes_now(&mut self) -> Option<RouteList> {
        let v = self.modem_request(ModemRequest::GetRoutes).ok()?;
        let r = RouteList::from_value(&v).ok()?;
        self.routes = Some(r.clone());
        Some(r)
    }

    fn addrs(&mut self) -> Result<&mut Addrs, StepError> {
        if self.addrs.is_none() {
            self.addrs = Some(match self.cfg.addressing {
                Addressing::Netlink => Addrs::Netlink(
                    Netlink::new().map_err(|e| StepError::Raised(format!("netlink: {e}")))?,
                ),
                Addressing::Dry => Addrs::Dry {
                    eth3: BTreeSet::from([self.cfg.parked_addr]),
                    tun: BTreeSet::new(),
                },
            });
        }
        self.addrs
            .as_mut()
            .ok_or_else(|| StepError::Raised("address backend missing".into()))
    }

    /// The current eth3 address among {active, parked}.
    pub fn eth3_addr(&mut self) -> Result<Option<Ipv4Addr>, StepError> {
        let (iface, active, parked) = (
            self.cfg.eth3.clone(),
            self.cfg.active_addr,
            self.cfg.parked_addr,
        );
        let held: Vec<Ipv4Addr> = match self.addrs()? {
            Addrs::Netlink(nl) => nl
                .ipv4_addrs(&iface)
                .map_err(|e| netif_error("eth3", e))?
                .iter()
                .map(|c| c.addr)
                .collect(),
            Addrs::Dry { eth3, .. } => eth3.iter().copied().collect(),
        };
        Ok([active, parked].into_iter().find(|a| held.contains(a)))
    }

    fn set_eth3(&mut self, to: Ipv4Addr) -> Result<LocalValue, StepError> {
        let (iface, prefix) = (self.cfg.eth3.clone(), self.cfg.eth3_prefix);
        let others: Vec<Ipv4Addr> = [self.cfg.active_addr, self.cfg.parked_addr]
            .into_iter()
            .filter(|a| *a != to)
            .collect();
        match self.addrs()? {
            Addrs::Netlink(nl) => {
                let cidr =
                    Ipv4Cidr::new(to, prefix).map_err(|e| StepError::Failed(e.to_string()))?;
                let err = |e| netif_error("eth3", e);
                // The host's own fronthaul addresses (e.g. 192.168.10.11) stay, but those in
                // the new address's subnet are taken off and put back after it: the first
                // address of a subnet is the kernel's preferred source, and the radio accepts
                // TX only from the address it streams to.
                let own: Vec<Ipv4Cidr> = nl
                    .ipv4_addrs(&iface)
                    .map_err(err)?
                    .into_iter()
                    .filter(|c| c.addr != to && !others.contains(&c.addr))
                    .collect();
                let same_subnet: Vec<Ipv4Cidr> = own
                    .iter()
                    .copied()
                    .filter(|c| same_subnet(c, &cidr))
                    .collect();
                // The old address goes first, so eth3 never answers for both.
                for a in others {
                    nl.del_ipv4(&iface, a).map_err(err)?;
                }
                for c in &same_subnet {
                    nl.del_ipv4(&iface, c.addr).map_err(err)?;
                }
                nl.add_ipv4(&iface, cidr).map_err(err)?;
                // Put back every own address (deleting a subnet's primary address also
                // removes its secondaries unless promote_secondaries is set).
                for c in &own {
                    nl.add_ipv4(&iface, *c).map_err(err)?;
                }
                // Tell the radio the address moved (else it streams to the old MAC).
                if let Err(e) = crate::garp::announce(&iface, to) {
                    tracing::warn!("gratuitous ARP for {to} on {iface}: {e}");
                }
            }
            Addrs::Dry { eth3, .. } => {
                for a in others {
                    eth3.remove(&a);
                }
                eth3.insert(to);
            }
        }
        Ok(LocalValue::Unit)
    }

    fn tun_addr(&mut self) -> Result<Option<Ipv4Addr>, StepError> {
        let iface = self.cfg.tun.clone();
        let stored = self.tun_ip;
        Ok(match self.addrs()? {
            Addrs::Netlink(nl) if nl.exists(&iface) => nl
                .ipv4_addrs(&iface)
                .map_err(|e| netif_error("tun", e))?
                .first()
                .map(|c| c.addr)
                .or(stored),
            Addrs::Netlink(_) => stored,
            Addrs::Dry { tun, .. } => tun.iter().next().copied(),
        })
    }

    fn set_tun(&mut self, ip: Ipv4Addr) -> Result<LocalValue, StepError> {
        let (iface, prefix) = (self.cfg.tun.clone(), self.cfg.tun_prefix);
        match self.addrs()? {
            Addrs::Netlink(nl) if nl.exists(&iface) => {
                let cidr =
                    Ipv4Cidr::new(ip, prefix).map_err(|e| StepError::Failed(e.to_string()))?;
                let old = nl.ipv4_addrs(&iface).map_err(|e| netif_error("tun", e))?;
                for c in old.iter().filter(|c| c.addr != ip) {
                    nl.del_ipv4(&iface, c.addr)
                        .map_err(|e| netif_error("tun", e))?;
                }
                nl.add_ipv4(&iface, cidr)
                    .map_err(|e| netif_error("tun", e))?;
            }
            // No tun yet: the modem creates it with this address (`--tun-ip`).
            Addrs::Netlink(_) => {}
            Addrs::Dry { tun, .. } => {
                tun.clear();
                tun.insert(ip);
            }
        }
        self.tun_ip = Some(ip);
        Ok(LocalValue::Unit)
    }

    fn probe(&mut self) -> Result<LocalValue, StepError> {
        match &self.cfg.radio {
            RadioAccess::Dry { present: true } => Ok(LocalValue::Unit),
            RadioAccess::Dry { present: false } => {
                Err(StepError::Failed("no UHD device found".into()))
            }
            RadioAccess::Legacy { radio, rate_hz, .. } => {
                let any: SocketAddr = ([0, 0, 0, 0], 0).into();
                let link = RadioLink::create_legacy(any, *radio, 0, *rate_hz)
                    .map_err(|e| StepError::Raised(format!("probe socket: {e}")))?;
                link.probe(1, self.cfg.probe_wait)
                    .map(|_| LocalValue::Unit)
                    .map_err(|e| StepError::Failed(format!("no UHD device found ({e})")))
            }
            RadioAccess::Controlled {
                control,
                radio,
                auth,
                ..
            } => ControlClient::new(control.clone(), self.cfg.probe_wait)
                .with_auth(auth.clone())
                .with_name("agent")
                .discover(radio)
                .map(|_| LocalValue::Unit)
                .map_err(|e| StepError::Failed(format!("no UHD device found ({e})"))),
        }
    }

    /// `usrp_in_modem`: wait until the modem says the radio streams to it as primary and
    /// its sample clock advances.
    fn modem_link(&mut self) -> Result<LocalValue, StepError> {
        let end = Instant::now() + self.cfg.link_wait;
        let mut first: Option<u64> = None;
        loop {
            let v = self.modem_request(ModemRequest::Status)?;
            let st: ferry_modem::ModemStatus = serde_json::from_value(v)
                .map_err(|e| StepError::Failed(format!("unreadable modem status: {e}")))?;
            if st.primary && first.is_some_and(|t| st.sample_time > t) {
                self.usrp_linked = true;
                return Ok(LocalValue::Unit);
            }
            if st.primary && first.is_none() {
                first = Some(st.sample_time);
            }
            if Instant::now() >= end {
                return Err(StepError::Failed(format!(
                    "get_device: the radio does not stream to the modem (primary {}, sample {})",
                    st.primary, st.sample_time
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn make_usrp(&mut self) -> Result<LocalValue, StepError> {
        if self.cfg.usrp_in_modem {
            // A modem that died since the last look must not count as the USRP object: the
            // source would stop serving for a destination that cannot take over.
            if let Some(why) = self.check_modem() {
                tracing::warn!("{why}");
            }
            return match (&self.modem, &self.modem_exit) {
                (Some(_), _) => {
                    self.usrp = Some(Usrp::Dry);
                    Ok(LocalValue::Unit)
                }
                (None, Some(st)) => Err(StepError::Failed(format!(
                    "the D2D program holding the USRP object exited on its own ({st})"
                ))),
                (None, None) => Err(StepError::Failed(
                    "the USRP object lives in the modem: start D2D first".into(),
                )),
            };
        }
        if self.usrp.is_some() {
            return Ok(LocalValue::Unit);
        }
        let u = match &self.cfg.radio {
            RadioAccess::Dry { .. } => Usrp::Dry,
            RadioAccess::Legacy {
                radio,
                bind,
                rate_hz,
            } => Usrp::Link(Box::new(
                RadioLink::create_legacy(*bind, *radio, 0, *rate_hz)
                    .map_err(|e| StepError::Failed(format!("USRP object: {e}")))?,
            )),
            RadioAccess::Controlled {
                control,
                radio,
                bind,
                auth,
            } => {
                let mut c =
                    RadioLinkConfig::new(control.clone(), radio.clone()).with_auth(auth.clone());
                c.bind = *bind;
                Usrp::Link(Box::new(
                    RadioLink::create(&c)
                        .map_err(|e| StepError::Failed(format!("USRP object: {e}")))?,
                ))
            }
        };
        self.usrp = Some(u);
        self.usrp_linked = false;
        Ok(LocalValue::Unit)
    }

    fn link_usrp(&mut self) -> Result<LocalValue, StepError> {
        if self.cfg.usrp_in_modem {
            if self.usrp.is_none() {
                return Err(StepError::Failed("no USRP object (make_usrp first)".into()));
            }
            return self.modem_link();
        }
        let wait = self.cfg.link_wait;
        let present = !matches!(self.cfg.radio, RadioAccess::Dry { present: false });
        let Some(u) = self.usrp.as_mut() else {
            return Err(StepError::Failed("no USRP object (make_usrp first)".into()));
        };
        match u {
            Usrp::Dry if present => {}
            Usrp::Dry => return Err(StepError::Failed("no UHD device found".into())),
            Usrp::Link(l) if l.control().is_some() => {
                l.link()
                    .map_err(|e| StepError::Failed(format!("get_device: {e}")))?;
            }
            Usrp::Link(l) => {
                // A legacy radio cannot be told to link: the link is up once its stream
                // reaches us. Old datagrams from an earlier hold of the address don't count.
                while l.recv_i16(Duration::ZERO).is_ok() {}
                let end = Instant::now() + wait;
                loop {
                    if l.recv_i16(Duration::from_millis(20)).is_ok() {
                        break;
                    }
                    if Instant::now() >= end {
                        return Err(StepError::Failed(format!(
                            "get_device: no stream from the radio within {} ms",
                            wait.as_millis()
                        )));
                    }
                }
            }
        }
        self.usrp_linked = true;
        Ok(LocalValue::Unit)
    }

    fn kill_usrp(&mut self) -> Result<LocalValue, StepError> {
        if let Some(Usrp::Link(mut l)) = self.usrp.take() {
            if l.control().is_some() && self.usrp_linked {
                // Only unlinks if the radio still streams to us (never cuts a successor off).
                let _ = l.unlink();
            }
        }
        self.usrp_linked = false;
        Ok(LocalValue::Unit)
    }

    fn start_d2d(
        &mut self,
        warm: bool,
        control: &Option<Control>,
        routes: &Option<RouteList>,
        mode: ferry_migrate::protocol::StartMode,
    ) -> Result<LocalValue, StepError> {
        use ferry_migrate::protocol::StartMode;
        if self.check_modem().is_none() && self.modem.is_some() {
            return Err(StepError::Failed("D2D already running".into()));
        }
        let Some(cmd) = self.cfg.modem.clone() else {
            return Err(StepError::Failed(
                "no modem program configured (--modem)".into(),
            ));
        };
        let start = ModemStart {
            warm,
            control: control.clone(),
            routes: routes.clone(),
            shadow: mode != StartMode::Normal,
            hot_standby: mode == StartMode::Standby,
            tun_ip: self.tun_ip,
            tun_prefix: self.cfg.tun_prefix,
        };
        let p =
            ModemProcess::start(&cmd, &start, self.cfg.modem_ready).map_err(StepError::Failed)?;
        tracing::info!(pid = p.pid(), "modem started");
        self.modem = Some(p);
        self.modem_exit = None;
        self.arm_watch();
        Ok(LocalValue::Unit)
    }

    fn kill_d2d(&mut self) -> Result<LocalValue, StepError> {
        self.modem_exit = None;
        if self.cfg.usrp_in_modem {
            // The modem's link goes with it.
            self.usrp = None;
            self.usrp_linked = false;
        }
        // A stop we make is no death to report.
        if let Some(w) = self.watch.take() {
            w.disarm();
        }
        if let Some(mut p) = self.modem.take() {
            let how = p
                .kill(Duration::from_millis(500))
                .map_err(StepError::Failed)?;
            tracing::info!("modem stopped: {how}");
        }
        Ok(LocalValue::Unit)
    }

    fn start_collector(&mut self) -> Result<LocalValue, StepError> {
        let Some(p) = &self.modem else {
            return Err(StepError::Failed("no D2D running to collect from".into()));
        };
        if let Some(mut c) = self.collector.take() {
            c.stop();
        }
        let c = Collector::start(
            p.socket().to_path_buf(),
            self.cfg.collector_period,
            self.collected_tx.clone(),
        )
        .map_err(|e| StepError::Raised(format!("collector thread: {e}")))?;
        self.collector = Some(c);
        Ok(LocalValue::Unit)
    }

    fn modem_request(&mut self, req: ModemRequest) -> Result<Value, StepError> {
        if let Some(why) = self.check_modem() {
            tracing::warn!("{why}");
        }
        let Some(p) = &self.modem else {
            return Err(StepError::Failed("no D2D running".into()));
        };
        modem_call(p.socket(), &req, Duration::from_secs(1)).map_err(StepError::Failed)
    }

    fn status(&mut self) -> Result<LocalValue, StepError> {
        let _ = self.check_modem();
        let eth3 = self.eth3_addr().unwrap_or(None);
        let tun_ip = self.tun_addr().unwrap_or(self.tun_ip);
        let modem = match self.modem_request(ModemRequest::Status) {
            Ok(v) => match serde_json::from_value::<ferry_modem::ModemStatus>(v) {
                Ok(st) => Some(map_modem_status(&st)),
                Err(e) => return Err(StepError::Failed(format!("unreadable modem status: {e}"))),
            },
            // A modem that does not answer shows as running without cutover state.
            Err(_) => None,
        };
        Ok(LocalValue::Status(HostStatus {
            d2d: self.modem.is_some(),
            usrp: self.usrp.is_some(),
            collector: self.collector.is_some(),
            modem_pid: self.modem_pid(),
            eth3,
            tun_ip,
            modem,
        }))
    }

    /// Perform one step. Never panics on any input.
    pub fn perform(&mut self, op: &LocalOp) -> Result<LocalValue, StepError> {
        match op {
            LocalOp::SetEth3(ip) => self.set_eth3(*ip),
            LocalOp::ProbeRadio { .. } => self.probe(),
            LocalOp::StartD2d {
                warm,
                control,
                routes,
                mode,
            } => self.start_d2d(*warm, control, routes, *mode),
            LocalOp::StartUsrp { .. } => {
                // Ferry's radios initialise once at power-up; "full init" is the object
                // plus the link.
                self.make_usrp()?;
                self.link_usrp()
            }
            LocalOp::MakeUsrp => self.make_usrp(),
            LocalOp::LinkUsrp => self.link_usrp(),
            LocalOp::KillD2d => self.kill_d2d(),
            LocalOp::KillUsrp => self.kill_usrp(),
            LocalOp::StartCollector => self.start_collector(),
            LocalOp::StopCollector => {
                if let Some(mut c) = self.collector.take() {
                    c.stop();
                }
                Ok(LocalValue::Unit)
            }
            LocalOp::GetTunIp => match self.tun_addr()? {
                Some(ip) => Ok(LocalValue::TunIp(ip)),
                None => Err(StepError::Failed("no tun address".into())),
            },
            LocalOp::SetTunIp(ip) => self.set_tun(*ip),
            LocalOp::ReadControl => {
                self.poll_collected();
                self.control
                    .clone()
                    .map(LocalValue::Control)
                    .ok_or_else(|| StepError::Failed("no Control collected yet".into()))
            }
            LocalOp::ReadRoutes => {
                self.poll_collected();
                let _ = self.collect_routes_now();
                self.routes
                    .clone()
                    .map(LocalValue::Routes)
                    .ok_or_else(|| StepError::Failed("no route list collected yet".into()))
            }
            LocalOp::Status => self.status(),
            LocalOp::ModemTakeoverAt { at, forward_token } => self
                .modem_request(ModemRequest::TakeoverAt {
                    at_sample: *at,
                    forward_token: Some(forward_token.clone()),
                })
                .map(|_| LocalValue::Unit),
            LocalOp::ModemReleaseAt {
                at,
                forward_to,
                forward_token,
            } => self
                .modem_request(ModemRequest::ReleaseAt {
                    at_sample: *at,
                    forward_to: *forward_to,
                    forward_token: Some(forward_token.clone()),
                })
                .map(|_| LocalValue::Unit),
            LocalOp::ModemCancelCutover => self
                .modem_request(ModemRequest::CancelCutover)
                .map(|_| LocalValue::Unit),
        }
    }

    /// Leave the running task to run on without this process (a legacy console that ends:
    /// EOF, `q`, SIGINT or SIGTERM at its prompt). The modem, its TUN, the radio's link and
    /// the addresses stay; only the collector stops. A later console or agent on this host
    /// adopts the modem ([`HostExec::adopt_modem`]). Returns what was left running.
    pub fn detach(&mut self) -> Option<String> {
        if let Some(mut c) = self.collector.take() {
            c.stop();
        }
        let _ = self.check_modem();
        self.watch = None;
        // Neither the modem (its Drop kills it) nor the radio link (its Drop unlinks) are
        // dropped: both belong to the task, which runs on.
        if let Some(u) = self.usrp.take() {
            std::mem::forget(u);
        }
        let tun = self.tun_addr().unwrap_or(self.tun_ip);
        let p = self.modem.take()?;
        let (pid, socket) = (p.pid(), p.socket().to_path_buf());
        std::mem::forget(p);
        let show = |a: Option<Ipv4Addr>| a.map_or_else(|| "none".to_string(), |a| a.to_string());
        let eth3 = self.eth3_addr().ok().flatten();
        Some(format!(
            "modem pid {pid} (control socket {}, tun {}, eth3 {})",
            socket.display(),
            show(tun),
            show(eth3)
        ))
    }

    /// Stop everything this host started (collector, modem, USRP object). Addresses stay.
    pub fn shutdown(&mut self) {
        if let Some(mut c) = self.collector.take() {
            c.stop();
        }
        let _ = self.kill_d2d();
        let _ = self.kill_usrp();
    }
}

impl Drop for HostExec {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The modem's `status` (docs/MODEM-CONTROL.md) as the agent protocol's modem state.
pub fn map_modem_status(st: &ferry_modem::ModemStatus) -> ModemStatus {
    use ferry_modem::{CutoverArm, ModemState};
    let mode = match (st.state, &st.cutover) {
        (ModemState::Released, _) => ModemMode::Released,
        (ModemState::Fenced, _) => ModemMode::Fenced,
        (_, Some(CutoverArm::Takeover { .. })) => ModemMode::TakeoverArmed,
        (_, Some(CutoverArm::Release { .. })) => ModemMode::ReleaseArmed,
        (ModemState::Shadow, _) => ModemMode::Shadow,
        _ => ModemMode::Active,
    };
    let cutover_at = match &st.cutover {
        Some(CutoverArm::Takeover { at_sample }) | Some(CutoverArm::Release { at_sample, .. }) => {
            Some(*at_sample)
        }
        None => None,
    };
    ModemStatus {
        mode,
        synced: st.synced,
        cutover_at,
        // What a released source still holds for the destination.
        forward_pending: if mode == ModemMode::Released {
            u32::try_from(st.counters.queue_depth).unwrap_or(u32::MAX)
        } else {
            0
        },
        air_capacity_bytes: st.counters.air_capacity_bytes,
        air_payload_bytes: st.counters.air_payload_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_modem::{CutoverArm, ModemCounters, ModemState, Role};

    fn modem_status(
        state: ModemState,
        cutover: Option<CutoverArm>,
        queue: u64,
    ) -> ferry_modem::ModemStatus {
        ferry_modem::ModemStatus {
            role: Role::Slave,
            state,
            synced: true,
            primary: true,
            sample_time: 0,
            sample_rate: 1_920_000,
            frame_start_sample: None,
            sfn: None,
            cfo_hz: 0.0,
            snr_db: None,
            cutover,
            node_id: 1,
            tun_name: None,
            tun_addr: None,
            counters: ModemCounters {
                queue_depth: queue,
                ..ModemCounters::default()
            },
            epoch: 0,
            clock_ppm: None,
            harq: None,
            election: None,
        }
    }

    #[test]
    fn modem_state_maps_onto_the_agent_protocol() {
        let fwd: SocketAddr = "10.0.0.2:7000".parse().expect("addr");
        let cases = [
            (ModemState::Active, None, ModemMode::Active, None),
            (ModemState::Fenced, None, ModemMode::Fenced, None),
            (ModemState::Shadow, None, ModemMode::Shadow, None),
            (
                ModemState::Shadow,
                Some(CutoverArm::Takeover { at_sample: 960 }),
                ModemMode::TakeoverArmed,
                Some(960),
            ),
            (
                ModemState::Active,
                Some(CutoverArm::Release {
                    at_sample: 1920,
                    forward_to: fwd,
                }),
                ModemMode::ReleaseArmed,
                Some(1920),
            ),
            (ModemState::Released, None, ModemMode::Released, None),
        ];
        for (state, arm, mode, at) in cases {
            let m = map_modem_status(&modem_status(state, arm, 3));
            assert_eq!((m.mode, m.cutover_at), (mode, at), "{state:?}");
            // Held packets count only once released.
            assert_eq!(
                m.forward_pending,
                if mode == ModemMode::Released { 3 } else { 0 }
            );
        }
    }

    #[test]
    fn dry_eth3_holds_exactly_one_of_active_and_parked() {
        let mut h = HostExec::new(HostConfig::dry());
        let (active, parked) = (h.config().active_addr, h.config().parked_addr);
        assert_eq!(h.eth3_addr(), Ok(Some(parked)));
        for to in [active, parked, active, active] {
            assert_eq!(h.perform(&LocalOp::SetEth3(to)), Ok(LocalValue::Unit));
            assert_eq!(h.eth3_addr(), Ok(Some(to)));
            if let Some(Addrs::Dry { eth3, .. }) = &h.addrs {
                assert_eq!(eth3.len(), 1, "{eth3:?}");
            }
        }
    }

    #[test]
    fn steps_without_their_prerequisites_fail_clearly() {
        let mut h = HostExec::new(HostConfig::dry());
        let fail = |r: Result<LocalValue, StepError>| match r {
            Err(StepError::Failed(e)) => e,
            other => panic!("expected a failure, got {other:?}"),
        };
        assert!(fail(h.perform(&LocalOp::LinkUsrp)).contains("make_usrp first"));
        assert!(fail(h.perform(&LocalOp::StartCollector)).contains("no D2D"));
        assert!(fail(h.perform(&LocalOp::ReadControl)).contains("no Control"));
        assert!(fail(h.perform(&LocalOp::GetTunIp)).contains("no tun address"));
        assert!(fail(h.perform(&LocalOp::ModemCancelCutover)).contains("no D2D"));
        let start = LocalOp::StartD2d {
            warm: false,
            control: None,
            routes: None,
            mode: ferry_migrate::protocol::StartMode::Normal,
        };
        assert!(fail(h.perform(&start)).contains("no modem program"));
        // Kills of what does not run succeed (cleanups stay idempotent).
        assert_eq!(h.perform(&LocalOp::KillD2d), Ok(LocalValue::Unit));
        assert_eq!(h.perform(&LocalOp::KillUsrp), Ok(LocalValue::Unit));
        let mut none = HostConfig::dry();
        none.radio = RadioAccess::Dry { present: false };
        let mut h = HostExec::new(none);
        assert!(
            fail(h.perform(&LocalOp::ProbeRadio { attempt: 1, of: 8 })).contains("no UHD device")
        );
    }
}

#[cfg(test)]
mod role_tests {
    use super::{radio_role, RadioRole};
    use ferry_fronthaul::control::{ArbiterStatus, StatusReport};
    use std::net::SocketAddr;

    fn report() -> StatusReport {
        StatusReport {
            info: serde_json::from_value(serde_json::json!({
                "radio": "pool", "number": 1, "serial": "F1", "fronthaul": "10.0.0.1:1",
                "sample_rate_hz": 1_000_000, "freq_hz": 1.9e9, "legacy": false
            }))
            .expect("radio info"),
            ready: true,
            linked: None,
            shadow: None,
            pending_switch: None,
            counters: Default::default(),
            arbiter: ArbiterStatus::default(),
        }
    }

    #[test]
    fn every_role_the_radio_can_give_an_endpoint_is_found_and_none_is_invented() {
        let me: SocketAddr = "192.168.10.12:49200".parse().unwrap();
        let other: SocketAddr = "192.168.10.11:49200".parse().unwrap();
        let mut r = report();
        assert_eq!(radio_role(&r, me), None);
        r.linked = Some(other);
        r.shadow = Some(other);
        r.arbiter.standby = Some(other);
        r.arbiter.fallback = Some((other, 9));
        r.pending_switch = Some((5, other));
        assert_eq!(
            radio_role(&r, me),
            None,
            "another host's roles are not mine"
        );
        type Set = fn(&mut StatusReport, SocketAddr);
        let cases: [(Set, RadioRole); 5] = [
            (|r, e| r.linked = Some(e), RadioRole::Primary),
            (
                |r, e| r.pending_switch = Some((7, e)),
                RadioRole::SwitchTarget,
            ),
            (|r, e| r.shadow = Some(e), RadioRole::Shadow),
            (|r, e| r.arbiter.standby = Some(e), RadioRole::Standby),
            (
                |r, e| r.arbiter.fallback = Some((e, 9)),
                RadioRole::Fallback,
            ),
        ];
        for (set, role) in cases {
            let mut r = report();
            set(&mut r, me);
            assert_eq!(radio_role(&r, me), Some(role));
        }
    }
}

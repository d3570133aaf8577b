//! Test harness: two pool servers (each with an agent), the radio and a virtual clock,
//! played against each other (the quinn `Pair` idea). Local steps are executed on simulated
//! hosts, requests travel as authenticated frames to the simulated agents, and faults
//! (failures, hangs, dead peers) are injected by rule. Every executed step is traced so tests
//! can check exact orders, and the "at most one host holds 192.168.10.1" invariant is checked
//! after every step.

#![allow(dead_code)]

use ferry_migrate::auth::{self, AuthKey, ReplayGuard};
use ferry_migrate::console::{ACTIVE_ADDR, PARKED_ADDR};
use ferry_migrate::control::{Control, RouteList};
use ferry_migrate::machine::{
    Action, Event, LocalOp, LocalValue, Outcome, Peer, RadioClock, RadioOp, RadioValue, Report,
    Sequence,
};
use ferry_migrate::protocol::{HostStatus, ModemMode, ModemStatus, Reply, Request, StartMode};
use ferry_migrate::{Agent, AgentAction, AgentConfig};
use serde_json::json;
use std::net::Ipv4Addr;

/// Radio sample rate in the simulation (5 MHz LTE: 7.68 Msps).
pub const RATE: u64 = 7_680_000;
/// Samples per ms.
pub const SPMS: u64 = RATE / 1000;
/// One-way LAN latency in ms.
pub const LAN_MS: u64 = 1;

/// USRP state on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usrp {
    /// Nothing.
    None,
    /// Device object created (`make_usrp`), not linked.
    Object,
    /// Process running and streaming (started with init, or linked).
    Running,
}

/// Simulated modem cutover state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModemSim {
    pub mode: ModemMode,
    pub cutover_at: Option<u64>,
    pub shadow_since_ms: Option<u64>,
    pub released_at_ms: Option<u64>,
    pub forward_total: u32,
    /// Whether this modem ever stopped delivering (released) — must stay false on abort.
    pub ever_released: bool,
    /// First sample this modem delivered from when it took over.
    pub took_over_at: Option<u64>,
}

/// A simulated pool server.
#[derive(Debug, Clone)]
pub struct Host {
    pub tag: &'static str,
    pub port: &'static str,
    pub eth3: Ipv4Addr,
    pub d2d: bool,
    pub d2d_warm: Option<bool>,
    pub d2d_routes: Option<RouteList>,
    pub usrp: Usrp,
    pub linked_at_ms: Option<u64>,
    pub collector: bool,
    pub tun_ip: Option<Ipv4Addr>,
    pub collected: Option<Control>,
    pub collected_routes: Option<RouteList>,
    pub modem: Option<ModemSim>,
}

impl Host {
    fn new(tag: &'static str, port: &'static str) -> Host {
        Host {
            tag,
            port,
            eth3: PARKED_ADDR,
            d2d: false,
            d2d_warm: None,
            d2d_routes: None,
            usrp: Usrp::None,
            linked_at_ms: None,
            collector: false,
            tun_ip: None,
            collected: None,
            collected_routes: None,
            modem: None,
        }
    }

    /// Nothing of the task runs and eth3 is parked.
    pub fn is_clean(&self) -> bool {
        !self.d2d && self.usrp == Usrp::None && !self.collector && self.eth3 == PARKED_ADDR
    }

    /// Serving in legacy mode: D2D and USRP running, eth3 active.
    pub fn is_serving(&self) -> bool {
        self.d2d && self.usrp == Usrp::Running && self.eth3 == ACTIVE_ADDR
    }
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// The step returns this error.
    Fail(String),
    /// The step never completes.
    Hang,
}

/// A fault rule: on host `host`, the step named `op`, after `skip` matching occurrences,
/// misbehaves `times` times.
#[derive(Debug, Clone)]
pub struct Fault {
    pub host: usize,
    pub op: String,
    pub skip: u32,
    pub times: u32,
    pub kind: FaultKind,
}

/// Simulated radio (make-before-break link control).
#[derive(Debug, Clone, Default)]
pub struct Radio {
    pub primary: Option<String>,
    pub shadows: Vec<String>,
    pub armed: Option<(u64, String)>,
    /// The protecting standby.
    pub standby: Option<String>,
    /// Fallback grace of the armed switch (ms; 0: a plain switch_at).
    pub armed_grace_ms: u64,
    /// After a switch with a grace: (old primary, last sample it may fall back).
    pub fallback: Option<(String, u64)>,
    /// (sample, new primary) of every switch that happened.
    pub switches: Vec<(u64, String)>,
    pub refuse: Vec<&'static str>,
    pub hang: Vec<&'static str>,
    /// Commands that take effect but whose reply is lost.
    pub lose_reply: Vec<&'static str>,
}

/// The whole world.
pub struct World {
    pub now: u64,
    pub hosts: [Host; 2],
    pub agents: [Agent; 2],
    pub agent_exited: [bool; 2],
    pub radio: Radio,
    pub faults: Vec<Fault>,
    /// Agents that never answer (dead peer / unreachable).
    pub dead: [bool; 2],
    /// Extra one-way latency per agent, ms.
    pub extra_latency: [u64; 2],
    /// How long a shadow modem takes to synchronise; `None` = never.
    pub sync_ms: Option<u64>,
    /// Legacy resynchronisation after linking, ms.
    pub resync_ms: u64,
    pub trace: Vec<String>,
    /// Requests sent to agents: (time ms, host tag, command).
    pub requests: Vec<(u64, &'static str, &'static str)>,
    pub reports: Vec<Report>,
    key: AuthKey,
    guards: [ReplayGuard; 2],
    nonce: u64,
    /// Largest number of hosts that held the active address at once.
    pub max_active_holders: usize,
    /// Extra latency of the reply leg per agent, ms (a slow or lossy return path).
    pub reply_delay: [u64; 2],
    /// A one-off extra delay of the reply to the first request named `.1` (`takeover_at`)
    /// to host `.0`: a hiccup.
    pub delay_once: Option<(usize, &'static str, u64)>,
    /// Modem cutovers that happened: (host tag, "takeover" | "release", sample).
    pub cutovers: Vec<(&'static str, &'static str, u64)>,
    /// A modem whose takeover silently fails at T (crash at the worst moment).
    pub takeover_broken: [bool; 2],
    /// The D2D program (modem) of a host dies on its own at this time (SIGKILL); its agent
    /// reaps it and stops the collector.
    pub modem_dies_at_ms: [Option<u64>; 2],
    /// The USRP object lives in the modem (`ferry agent --usrp-in-modem`): `make_usrp`
    /// needs a running D2D.
    pub usrp_in_modem: bool,
    /// The operator interrupts (SIGINT) the running sequence at this time.
    pub interrupt_at_ms: Option<u64>,
    /// The agent of a host dies (kill -9) at this time: from then on it never answers; its
    /// modem runs on.
    pub agent_dies_at_ms: [Option<u64>; 2],
}

/// A Control with warm-start timing, as the collector on a serving host returns it.
pub fn sample_control() -> Control {
    Control::from_value(&json!({
        "workmode": 1, "phy_cell_ID": 301, "group_ID": 100, "cell_ID": 1,
        "CPtype": 0, "BW": 5, "RBIdx": 25, "duplexMode": 0,
        "numAntennaTX": 1, "numAntennaRX": 1, "DLULAssign": 1,
        "trans_mode": 1, "type_mode": 2, "RNTI": 4660,
        "frame_start_sample": 1234, "SFN": 0, "sample_rate": RATE, "CFO_Hz": 150.0
    }))
    .unwrap_or_else(|e| panic!("sample Control invalid: {e}"))
}

/// A relay route list.
pub fn sample_routes() -> RouteList {
    RouteList::from_value(&json!([[3, 2], [4, 4]])).unwrap_or_else(|e| panic!("{e}"))
}

pub const TUN_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 40, 9);

/// Short names of local steps used in traces and fault rules.
pub fn op_name(op: &LocalOp) -> String {
    match op {
        LocalOp::SetEth3(a) if *a == ACTIVE_ADDR => "eth3=10.1".into(),
        LocalOp::SetEth3(a) if *a == PARKED_ADDR => "eth3=20.2".into(),
        LocalOp::SetEth3(a) => format!("eth3={a}"),
        LocalOp::ProbeRadio { attempt, .. } => format!("probe{attempt}"),
        LocalOp::StartD2d { warm, mode, .. } => match (warm, mode) {
            (false, _) => "start_d2d(cold)".into(),
            (true, StartMode::Normal) => "start_d2d(warm)".into(),
            (true, StartMode::Shadow) => "start_d2d(shadow)".into(),
            (true, StartMode::Standby) => "start_d2d(standby)".into(),
        },
        LocalOp::StartUsrp { init: true } => "start_usrp(init)".into(),
        LocalOp::StartUsrp { init: false } => "start_usrp".into(),
        LocalOp::MakeUsrp => "make_usrp".into(),
        LocalOp::LinkUsrp => "link_usrp".into(),
        LocalOp::KillD2d => "kill_d2d".into(),
        LocalOp::KillUsrp => "kill_usrp".into(),
        LocalOp::StartCollector => "start_collector".into(),
        LocalOp::StopCollector => "stop_collector".into(),
        LocalOp::GetTunIp => "get_tun_ip".into(),
        LocalOp::SetTunIp(_) => "set_tun_ip".into(),
        LocalOp::ReadControl => "read_control".into(),
        LocalOp::ReadRoutes => "read_routes".into(),
        LocalOp::Status => "status".into(),
        LocalOp::ModemTakeoverAt { .. } => "takeover_at".into(),
        LocalOp::ModemReleaseAt { .. } => "release_at".into(),
        LocalOp::ModemCancelCutover => "cancel_cutover".into(),
    }
}

/// Virtual duration of a local step, ms (roughly the thesis' table 3-4 figures).
fn op_ms(op: &LocalOp) -> u64 {
    match op {
        LocalOp::SetEth3(_) => 3,
        LocalOp::ProbeRadio { .. } => 40,
        LocalOp::StartD2d { .. } => 50,
        LocalOp::StartUsrp { .. } => 2_500,
        LocalOp::MakeUsrp => 53,
        LocalOp::LinkUsrp => 1_400,
        LocalOp::KillD2d | LocalOp::KillUsrp => 2,
        LocalOp::GetTunIp | LocalOp::SetTunIp(_) => 2,
        _ => 0,
    }
}

impl World {
    /// Both servers parked and idle, radio powered, no faults.
    pub fn new() -> World {
        let key =
            AuthKey::new(b"ferry test key, 32 bytes long!!!").unwrap_or_else(|e| panic!("{e}"));
        let mut hosts = [Host::new("S", "server1"), Host::new("D", "server2")];
        for h in &mut hosts {
            h.tun_ip = None;
        }
        hosts[0].tun_ip = Some(TUN_IP);
        World {
            now: 1_000,
            hosts,
            agents: [
                Agent::new(AgentConfig::default()),
                Agent::new(AgentConfig::default()),
            ],
            agent_exited: [false, false],
            radio: Radio::default(),
            faults: Vec::new(),
            dead: [false, false],
            extra_latency: [0, 0],
            sync_ms: Some(30),
            resync_ms: 106,
            trace: Vec::new(),
            requests: Vec::new(),
            reports: Vec::new(),
            key,
            guards: [
                ReplayGuard::new(0, 30_000, 10_000),
                ReplayGuard::new(0, 30_000, 10_000),
            ],
            nonce: 0,
            max_active_holders: 0,
            reply_delay: [0, 0],
            delay_once: None,
            cutovers: Vec::new(),
            takeover_broken: [false, false],
            modem_dies_at_ms: [None, None],
            interrupt_at_ms: None,
            agent_dies_at_ms: [None; 2],
            usrp_in_modem: false,
        }
    }

    /// Server1 already serving in legacy mode (as after `DS`), trace cleared.
    pub fn serving_on_source() -> World {
        let mut w = World::new();
        let h = &mut w.hosts[0];
        h.eth3 = ACTIVE_ADDR;
        h.d2d = true;
        h.d2d_warm = Some(false);
        h.usrp = Usrp::Running;
        h.linked_at_ms = Some(0);
        h.collector = true;
        h.collected = Some(sample_control());
        h.modem = Some(ModemSim::active());
        w.radio.primary = Some("server1".into());
        w.agents[0].collected_control(sample_control());
        w
    }

    /// Add a fault rule.
    pub fn fault(&mut self, host: usize, op: &str, skip: u32, times: u32, kind: FaultKind) {
        self.faults.push(Fault {
            host,
            op: op.to_string(),
            skip,
            times,
            kind,
        });
    }

    /// `op` on `host` fails always.
    pub fn fail(&mut self, host: usize, op: &str) {
        self.fault(
            host,
            op,
            0,
            u32::MAX,
            FaultKind::Fail(format!("{op} failed (injected)")),
        );
    }

    /// `op` on `host` hangs always.
    pub fn hang(&mut self, host: usize, op: &str) {
        self.fault(host, op, 0, u32::MAX, FaultKind::Hang);
    }

    fn take_fault(&mut self, host: usize, name: &str) -> Option<FaultKind> {
        for f in &mut self.faults {
            if f.host == host && f.op == name {
                if f.skip > 0 {
                    f.skip -= 1;
                    continue;
                }
                if f.times > 0 {
                    f.times -= 1;
                    return Some(f.kind.clone());
                }
            }
        }
        None
    }

    fn sample(&self) -> u64 {
        self.now * SPMS
    }

    /// Advance the clock to `t`, applying the radio's and modems' timed transitions.
    pub fn advance_to(&mut self, t: u64) {
        if t > self.now {
            self.now = t;
        }
        let s = self.sample();
        if let Some((at, to)) = self.radio.armed.clone() {
            if s >= at {
                let old = self.radio.primary.replace(to.clone());
                if let (Some(old), g) = (old, self.radio.armed_grace_ms) {
                    if g > 0 {
                        self.radio.fallback = Some((old, at + g * SPMS));
                    }
                }
                self.radio.shadows.retain(|p| *p != to);
                self.radio.switches.push((at, to));
                self.radio.armed = None;
            }
        }
        self.radio_liveness(s);
        let now = self.now;
        for (i, h) in self.hosts.iter_mut().enumerate() {
            if self.modem_dies_at_ms[i].is_some_and(|t| now >= t) && h.d2d {
                h.d2d = false;
                h.modem = None;
                h.collector = false;
                self.trace.push(format!("{}:modem died", h.tag));
            }
            if let Some(m) = &mut h.modem {
                if self.takeover_broken[i] && m.mode == ModemMode::TakeoverArmed {
                    continue;
                }
                // Cutover is conditional on the radio: a modem follows what the radio does at
                // T (primary or not), so a cancelled switch leaves the source serving.
                let primary = self.radio.primary.as_deref() == Some(h.port);
                match (m.mode, m.cutover_at) {
                    (ModemMode::TakeoverArmed, Some(at)) if s >= at && primary => {
                        m.mode = ModemMode::Active;
                        m.took_over_at = Some(at);
                        self.cutovers.push((h.tag, "takeover", at));
                    }
                    (ModemMode::TakeoverArmed, Some(at)) if s >= at => {
                        m.mode = ModemMode::Shadow;
                        m.cutover_at = None;
                    }
                    (ModemMode::ReleaseArmed, Some(at)) if s >= at && !primary => {
                        m.mode = ModemMode::Released;
                        m.released_at_ms = Some(now);
                        m.ever_released = true;
                        self.cutovers.push((h.tag, "release", at));
                    }
                    (ModemMode::ReleaseArmed, Some(at)) if s >= at => {
                        m.mode = ModemMode::Active;
                        m.cutover_at = None;
                    }
                    _ => {}
                }
            }
        }
    }

    /// The radio's liveness check during a fallback grace: a new primary that sends no TX
    /// (its modem dead, or stuck before its takeover) for 5 ms hands the task back to a
    /// released, live old primary, which serves again (the in-band fallback notice).
    fn radio_liveness(&mut self, s: u64) {
        let Some((old, until)) = self.radio.fallback.clone() else {
            return;
        };
        let Some(&(at, _)) = self.radio.switches.last() else {
            return;
        };
        if s > until {
            self.radio.fallback = None;
            return;
        }
        if s < at + 5 * SPMS {
            return;
        }
        let by_port = |w: &World, p: &str| w.hosts.iter().position(|h| h.port == p);
        let Some(new) = self.radio.primary.clone() else {
            return;
        };
        let silent = by_port(self, &new).is_none_or(|i| {
            self.hosts[i].modem.is_none()
                || (self.takeover_broken[i]
                    && self.hosts[i].modem.as_ref().map(|m| m.mode)
                        == Some(ModemMode::TakeoverArmed))
        });
        let Some(j) = by_port(self, &old) else {
            return;
        };
        let old_alive = self.hosts[j].modem.is_some();
        if silent && old_alive {
            let b = s.div_ceil(SPMS) * SPMS;
            self.radio.primary = Some(old.clone());
            self.radio.switches.push((b, old));
            self.radio.fallback = None;
            if let Some(m) = &mut self.hosts[j].modem {
                m.mode = ModemMode::Active;
                m.cutover_at = None;
            }
            self.trace.push("radio:fallback".into());
        }
    }

    fn check_invariant(&mut self) {
        let holders = self.hosts.iter().filter(|h| h.eth3 == ACTIVE_ADDR).count();
        self.max_active_holders = self.max_active_holders.max(holders);
    }

    fn modem_status(&self, i: usize) -> Option<ModemStatus> {
        let h = &self.hosts[i];
        let m = h.modem.as_ref()?;
        let synced = match m.mode {
            ModemMode::Shadow | ModemMode::TakeoverArmed => {
                match (m.shadow_since_ms, self.sync_ms) {
                    (Some(since), Some(d)) => {
                        self.radio.shadows.iter().any(|p| p == h.port) && self.now >= since + d
                    }
                    _ => false,
                }
            }
            _ => {
                h.usrp == Usrp::Running
                    && h.linked_at_ms
                        .is_some_and(|t| self.now >= t + self.resync_ms)
            }
        };
        let forward_pending = match (m.mode, m.released_at_ms) {
            (ModemMode::Released, Some(t)) => {
                let drained = ((self.now - t) / 5) as u32;
                m.forward_total.saturating_sub(drained)
            }
            _ => 0,
        };
        Some(ModemStatus {
            mode: m.mode,
            synced,
            cutover_at: m.cutover_at,
            forward_pending,
            air_capacity_bytes: 0,
            air_payload_bytes: 0,
        })
    }

    /// Execute a local step on host `i` (at the current time; the clock then advances by
    /// the step's duration). `None` = the step hangs.
    pub fn exec(&mut self, i: usize, op: &LocalOp) -> Option<Result<LocalValue, String>> {
        let name = op_name(op);
        self.trace.push(format!("{}:{}", self.hosts[i].tag, name));
        let fault = self.take_fault(i, &name);
        let base = name.split('(').next().unwrap_or("").to_string();
        let fault = fault.or_else(|| {
            if base != name {
                self.take_fault(i, &base)
            } else {
                None
            }
        });
        let fault = fault.or_else(|| {
            if name.starts_with("probe") {
                self.take_fault(i, "probe")
            } else {
                None
            }
        });
        match fault {
            Some(FaultKind::Hang) => return None,
            Some(FaultKind::Fail(e)) => {
                self.advance_to(self.now + op_ms(op));
                return Some(Err(e));
            }
            None => {}
        }
        self.advance_to(self.now + op_ms(op));
        let other_active = self.hosts[1 - i].eth3 == ACTIVE_ADDR;
        let now = self.now;
        let h = &mut self.hosts[i];
        let r = match op {
            LocalOp::SetEth3(a) => {
                h.eth3 = *a;
                Ok(LocalValue::Unit)
            }
            LocalOp::ProbeRadio { .. } => {
                if h.eth3 == ACTIVE_ADDR && !other_active {
                    Ok(LocalValue::Unit)
                } else {
                    Err("no UHD device found".into())
                }
            }
            LocalOp::StartD2d {
                warm, routes, mode, ..
            } => {
                if h.d2d {
                    Err("D2D already running".into())
                } else {
                    h.d2d = true;
                    h.d2d_warm = Some(*warm);
                    h.d2d_routes = routes.clone();
                    h.modem = Some(match mode {
                        StartMode::Normal => ModemSim::active(),
                        StartMode::Shadow | StartMode::Standby => ModemSim {
                            mode: ModemMode::Shadow,
                            ..ModemSim::active()
                        },
                    });
                    Ok(LocalValue::Unit)
                }
            }
            LocalOp::StartUsrp { .. } => {
                if h.eth3 == ACTIVE_ADDR && !other_active {
                    h.usrp = Usrp::Running;
                    h.linked_at_ms = Some(now);
                    Ok(LocalValue::Unit)
                } else {
                    Err("USRP init failed: device unreachable".into())
                }
            }
            LocalOp::MakeUsrp if self.usrp_in_modem && !h.d2d => {
                Err("the USRP object lives in the modem: start D2D first".into())
            }
            LocalOp::MakeUsrp => {
                h.usrp = Usrp::Object;
                Ok(LocalValue::Unit)
            }
            LocalOp::LinkUsrp => {
                if h.usrp == Usrp::Object && h.eth3 == ACTIVE_ADDR && !other_active {
                    h.usrp = Usrp::Running;
                    h.linked_at_ms = Some(now);
                    Ok(LocalValue::Unit)
                } else {
                    Err("get_device failed".into())
                }
            }
            LocalOp::KillD2d => {
                if h.d2d {
                    h.d2d = false;
                    h.modem = None;
                    Ok(LocalValue::Unit)
                } else {
                    Err("no D2D process".into())
                }
            }
            LocalOp::KillUsrp => {
                if h.usrp != Usrp::None {
                    h.usrp = Usrp::None;
                    h.linked_at_ms = None;
                    Ok(LocalValue::Unit)
                } else {
                    Err("no USRP process".into())
                }
            }
            LocalOp::StartCollector => {
                h.collector = true;
                h.collected = Some(sample_control());
                if h.d2d_routes.is_some() {
                    h.collected_routes = h.d2d_routes.clone();
                }
                Ok(LocalValue::Unit)
            }
            LocalOp::StopCollector => {
                h.collector = false;
                Ok(LocalValue::Unit)
            }
            LocalOp::GetTunIp => h
                .tun_ip
                .map(LocalValue::TunIp)
                .ok_or("tun has no address".into()),
            LocalOp::SetTunIp(ip) => {
                h.tun_ip = Some(*ip);
                Ok(LocalValue::Unit)
            }
            LocalOp::ReadControl => h
                .collected
                .clone()
                .map(LocalValue::Control)
                .ok_or("no Control collected".into()),
            LocalOp::ReadRoutes => h
                .collected_routes
                .clone()
                .map(LocalValue::Routes)
                .ok_or("no route list collected".into()),
            LocalOp::Status => Ok(LocalValue::Unit),
            LocalOp::ModemTakeoverAt { at, .. } => match &mut h.modem {
                Some(m) if m.mode == ModemMode::Shadow => {
                    m.mode = ModemMode::TakeoverArmed;
                    m.cutover_at = Some(*at);
                    Ok(LocalValue::Unit)
                }
                _ => Err("no shadow modem to arm".into()),
            },
            LocalOp::ModemReleaseAt { at, .. } => match &mut h.modem {
                Some(m) if m.mode == ModemMode::Active => {
                    m.mode = ModemMode::ReleaseArmed;
                    m.cutover_at = Some(*at);
                    Ok(LocalValue::Unit)
                }
                // What the real agent answers when its modem is gone.
                None => Err("no D2D running".into()),
                _ => Err("no active modem to arm".into()),
            },
            LocalOp::ModemCancelCutover => match &mut h.modem {
                Some(m) => {
                    m.mode = match m.mode {
                        ModemMode::TakeoverArmed => ModemMode::Shadow,
                        ModemMode::ReleaseArmed => ModemMode::Active,
                        other => other,
                    };
                    m.cutover_at = None;
                    Ok(LocalValue::Unit)
                }
                None => Ok(LocalValue::Unit),
            },
        };
        let r = match (op, r) {
            (LocalOp::Status, Ok(_)) => {
                let h = &self.hosts[i];
                Ok(LocalValue::Status(HostStatus {
                    d2d: h.d2d,
                    usrp: h.usrp != Usrp::None,
                    collector: h.collector,
                    modem_pid: h.d2d.then_some(1000 + i as u32),
                    eth3: Some(h.eth3),
                    tun_ip: h.tun_ip,
                    modem: self.modem_status(i),
                }))
            }
            (_, r) => r,
        };
        // The agent shell's collector feeds the agent what the modem holds.
        if matches!(op, LocalOp::StartCollector) && r.is_ok() {
            self.agents[i].collected_control(sample_control());
            if let Some(rt) = self.hosts[i].collected_routes.clone() {
                self.agents[i].collected_routes(rt);
            }
        }
        if let LocalOp::StartD2d {
            mode: StartMode::Shadow | StartMode::Standby,
            ..
        } = op
        {
            if let Some(m) = &mut self.hosts[i].modem {
                m.shadow_since_ms = Some(self.now);
            }
        }
        self.check_invariant();
        Some(r)
    }

    /// Deliver a request to agent `i` as authenticated frames; run the handler to its reply.
    /// `None` = no reply (dead agent or a hung step). The clock ends at the reply's arrival.
    pub fn call_agent(&mut self, i: usize, body: &[u8]) -> Option<Reply> {
        let (r, at) = self.call_agent_at(i, body)?;
        self.advance_to(at);
        Some(r)
    }

    /// Like [`World::call_agent`] but leaves the clock when the agent replied and returns
    /// the arrival time of the reply.
    pub fn call_agent_at(&mut self, i: usize, body: &[u8]) -> Option<(Reply, u64)> {
        if self.agent_dies_at_ms[i].is_some_and(|t| self.now >= t) {
            self.dead[i] = true;
        }
        if self.dead[i] || self.agent_exited[i] {
            return None;
        }
        self.nonce += 1;
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&self.nonce.to_be_bytes());
        let wall = 1_700_000_000_000 + self.now;
        let to = if i == 0 { "server1" } else { "server2" };
        let frames = auth::seal_request(&self.key, wall, nonce, "ctl", to, body);
        self.advance_to(self.now + LAN_MS + self.extra_latency[i]);
        // Agent side: verify, check replay, decode, run.
        let opened = match auth::open_request(&self.key, &frames, to) {
            Ok(o) => o,
            Err(e) => {
                let r = Reply::fail("", ferry_migrate::ErrorKind::Unauthorized, e.to_string());
                return Some((r, self.now + LAN_MS));
            }
        };
        if let Err(e) = self.guards[i].admit(wall + LAN_MS, &opened) {
            let r = Reply::fail("", ferry_migrate::ErrorKind::Unauthorized, e.to_string());
            return Some((r, self.now + LAN_MS));
        }
        let now = self.now;
        self.agents[i].receive(now, &opened.body);
        let mut reply = None;
        for _ in 0..1_000 {
            match self.agents[i].poll_action() {
                Some(AgentAction::Local(op)) => match self.exec(i, &op) {
                    Some(r) => {
                        let now = self.now;
                        self.agents[i].handle(now, Event::LocalDone(r));
                    }
                    None => {
                        // Hung step: the agent's own deadline fires.
                        let t = self.agents[i].poll_timeout().unwrap_or(self.now);
                        self.advance_to(t);
                        let now = self.now;
                        self.agents[i].handle(now, Event::Tick);
                    }
                },
                Some(AgentAction::Report(r)) => self.reports.push(r),
                Some(AgentAction::Reply(r)) => {
                    // Reply travels back authenticated and correlated.
                    let rf = auth::seal_reply(
                        &self.key,
                        wall,
                        nonce,
                        to,
                        "ctl",
                        &opened.header.nonce,
                        &r.encode(),
                    );
                    let back = auth::open_reply(&self.key, &rf, "ctl", to, &opened.header.nonce)
                        .ok()
                        .and_then(|o| Reply::decode(&o.body).ok());
                    reply = back;
                }
                Some(AgentAction::Exit) => self.agent_exited[i] = true,
                None => break,
            }
        }
        let mut once = 0;
        if let Some((h, name, ms)) = self.delay_once {
            let cmd = Request::decode(body)
                .map(|r| r.cmd().to_string())
                .unwrap_or_default();
            if h == i && cmd == name {
                once = ms;
                self.delay_once = None;
            }
        }
        let arrival = self.now + LAN_MS + self.extra_latency[i] + self.reply_delay[i] + once;
        reply.map(|r| (r, arrival))
    }

    fn radio_op(&mut self, op: &RadioOp) -> Option<Result<RadioValue, String>> {
        let name = match op {
            RadioOp::Clock => "clock".to_string(),
            RadioOp::Shadow { to } => format!("shadow({to})"),
            RadioOp::Unshadow { to } => format!("unshadow({to})"),
            RadioOp::SwitchAt { to, .. } => format!("switch_at({to})"),
            RadioOp::CancelSwitch { to } => format!("cancel_switch({to})"),
            RadioOp::Protect { to } => format!("protect({})", to.as_deref().unwrap_or("none")),
        };
        self.trace.push(format!("radio:{name}"));
        let kind = name.split('(').next().unwrap_or("").to_string();
        self.advance_to(self.now + LAN_MS);
        if self.radio.hang.iter().any(|k| *k == kind) {
            return None;
        }
        if self.radio.refuse.iter().any(|k| *k == kind) {
            return Some(Err(format!("{kind} refused")));
        }
        let s = self.sample();
        let r = match op {
            RadioOp::Clock => Ok(RadioValue::Clock(RadioClock {
                sample: s,
                rate_hz: RATE,
                primary: self.radio.primary.clone(),
            })),
            RadioOp::Shadow { to } => {
                if !self.radio.shadows.contains(to) {
                    self.radio.shadows.push(to.clone());
                }
                Ok(RadioValue::Unit)
            }
            RadioOp::Unshadow { to } => {
                self.radio.shadows.retain(|p| p != to);
                Ok(RadioValue::Unit)
            }
            RadioOp::SwitchAt { at, to, grace_ms } => {
                if *at <= s {
                    Err("switch time already passed".into())
                } else {
                    self.radio.armed = Some((*at, to.clone()));
                    self.radio.armed_grace_ms = *grace_ms;
                    Ok(RadioValue::Unit)
                }
            }
            RadioOp::CancelSwitch { .. } => {
                self.radio.armed = None;
                Ok(RadioValue::Unit)
            }
            RadioOp::Protect { to } => {
                self.radio.standby = to.clone();
                Ok(RadioValue::Unit)
            }
        };
        self.advance_to(self.now + LAN_MS);
        if self.radio.lose_reply.iter().any(|k| *k == kind) {
            return None;
        }
        Some(r)
    }

    /// Drive `seq` to its end; the console runs on host 0 (server1).
    pub fn run(&mut self, mut seq: Sequence) -> Outcome {
        for _ in 0..100_000 {
            if self.interrupt_at_ms.is_some_and(|t| self.now >= t) && !seq.is_interrupted() {
                self.trace.push("SIGINT".into());
                seq.interrupt(self.now);
            }
            match seq.poll_action() {
                Some(Action::Local(op)) => match self.exec(0, &op) {
                    Some(r) => {
                        let now = self.now;
                        seq.handle(now, Event::LocalDone(r));
                    }
                    None => self.wait_timeout(&mut seq),
                },
                Some(Action::Request { to, request }) => {
                    let i = match to {
                        Peer::Local => 0,
                        Peer::Remote => 1,
                    };
                    self.trace
                        .push(format!("->{}:{}", self.hosts[i].tag, request.cmd()));
                    self.requests
                        .push((self.now, self.hosts[i].tag, request.cmd()));
                    match self.call_agent_at(i, &request.encode()) {
                        // A reply later than the sequence's deadline is lost: the deadline
                        // fires first (the shell would drop the late reply).
                        Some((_, at)) if seq.poll_timeout().is_some_and(|d| at > d) => {
                            self.wait_timeout(&mut seq)
                        }
                        Some((reply, at)) => {
                            self.advance_to(at);
                            let now = self.now;
                            seq.handle(now, Event::Reply(reply));
                        }
                        None => self.wait_timeout(&mut seq),
                    }
                }
                Some(Action::Radio(op)) => match self.radio_op(&op) {
                    Some(r) => {
                        let now = self.now;
                        seq.handle(now, Event::RadioDone(r));
                    }
                    None => self.wait_timeout(&mut seq),
                },
                Some(Action::Report(r)) => self.reports.push(r),
                Some(Action::Done(o)) => return o,
                None => self.wait_timeout(&mut seq),
            }
        }
        panic!("sequence wedged: {seq:?}");
    }

    fn wait_timeout(&mut self, seq: &mut Sequence) {
        match seq.poll_timeout() {
            Some(t) => {
                self.advance_to(t);
                let now = self.now;
                seq.handle(now, Event::Tick);
            }
            None => panic!("sequence waits with no deadline: {seq:?}"),
        }
    }

    /// Trace entries from index `from` on.
    pub fn trace_from(&self, from: usize) -> Vec<&str> {
        self.trace.iter().skip(from).map(String::as_str).collect()
    }

    /// Whether any report contains `needle`.
    pub fn reported(&self, needle: &str) -> bool {
        self.reports.iter().any(|r| r.text.contains(needle))
    }
}

impl Default for World {
    fn default() -> World {
        World::new()
    }
}

impl ModemSim {
    pub fn active() -> ModemSim {
        ModemSim {
            mode: ModemMode::Active,
            cutover_at: None,
            shadow_since_ms: None,
            released_at_ms: None,
            forward_total: 4,
            ever_released: false,
            took_over_at: None,
        }
    }
}

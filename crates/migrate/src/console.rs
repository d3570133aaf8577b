//! The thesis' source-side operator console (3.4, figures 3-9 to 3-16, relay 4-3): `DS`,
//! `KL`, `M`/`Migration`, `MB`, `DSR`, `KR`, `h`/`help`, `end`, `q`/`quit`, each a
//! [`Sequence`] with exactly the thesis' step order, success condition and rollbacks.

use crate::control::{Control, RouteList};
use crate::machine::{
    Cx, Input, Level, LocalOp, LocalValue, Millis, Output, Pause, PausePoint, Script, Sequence,
    Step, Timeouts, Unwind,
};
use crate::protocol::{Request, StartD2d, StartMode};
use crate::timeline::{
    PHASE_ETH3, PHASE_LINK, PHASE_MAKE_USRP, PHASE_RESYNC, PHASE_ROUTES, PHASE_START_D2D,
    PHASE_TUN_IP,
};
use std::net::Ipv4Addr;

/// The address the radio streams to (thesis: 192.168.10.1).
pub const ACTIVE_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);
/// The address a parked host uses (thesis: 192.168.20.2).
pub const PARKED_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 20, 2);
/// Discovery tries before giving up (thesis: 8, found by testing).
pub const PROBE_TRIES: u8 = 8;

/// Settings of the legacy (thesis) sequences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyConfig {
    /// eth3 address that the radio talks to.
    pub active_addr: Ipv4Addr,
    /// eth3 address of a parked host.
    pub parked_addr: Ipv4Addr,
    /// Discovery tries.
    pub probe_tries: u8,
    /// Relay task (chapter 4): send / fetch the route list too.
    pub relay: bool,
    /// After linking, poll `status` until the modem reports sync and time it as the table 3-4
    /// "resynchronisation" row. Not confirming is a warning, not a failure (the thesis counts
    /// the migration done once linked).
    pub confirm_resync: bool,
    /// Poll period while waiting for resync.
    pub resync_poll_ms: u64,
    /// Give up waiting for resync after this long.
    pub resync_timeout_ms: u64,
    /// Effect deadlines (`request_ms`: an ordinary agent request, 4 s by default, so a
    /// dead agent costs seconds, not half a minute).
    pub timeouts: Timeouts,
    /// Deadline of the agent requests that take seconds on real hardware: `start_usrp`
    /// (full USRP init, 2–3 s) and `link_usrp` (up to 8 probes, then the link).
    pub slow_request_ms: u64,
    /// Operator hold in M after `start_d2d` succeeded on the destination, before
    /// `make_usrp` (`--pause-after started`). Other points do not apply to M.
    pub pause: Option<Pause>,
}

impl Default for LegacyConfig {
    fn default() -> LegacyConfig {
        LegacyConfig {
            active_addr: ACTIVE_ADDR,
            parked_addr: PARKED_ADDR,
            probe_tries: PROBE_TRIES,
            relay: false,
            confirm_resync: true,
            resync_poll_ms: 10,
            resync_timeout_ms: 5_000,
            timeouts: Timeouts {
                request_ms: 4_000,
                ..Timeouts::default()
            },
            slow_request_ms: 15_000,
            pause: None,
        }
    }
}

/// An operator command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleCommand {
    /// `DS`: start D2D and USRP locally.
    DoubleStart,
    /// `KL`: kill local processes.
    KillLocal,
    /// `M` / `Migration`.
    Migrate,
    /// `MB`.
    MigrateBack,
    /// `DSR`: start D2D and USRP on the remote.
    DoubleStartRemote,
    /// `KR`: `double_kill` on the remote.
    KillRemote,
    /// `h` / `help`.
    Help,
    /// `end`: make the remote agent exit.
    End,
    /// `q` / `quit`: `end`, then exit locally.
    Quit,
    /// Blank line.
    Empty,
    /// Anything else.
    Unknown(String),
}

/// The help text printed for `h` / `help`.
pub const HELP: &str = "\
commands:
  DS          double start: eth3 = 192.168.10.1, start D2D, probe radio (8 tries), start USRP (full init), start collector
  KL          kill local: kill D2D, kill USRP, eth3 = 192.168.20.2; stop collector
  M           migrate (also: Migration) the task to the remote server (thesis fig. 3-12)
  MB          migrate back from the remote server (fig. 3-13)
  DSR         double start remote: start_d2d (cold), then start_usrp
  KR          kill remote: double_kill
  h           help (also: help)
  end         tell the remote agent to exit
  q           send end, then quit (also: quit)";

impl ConsoleCommand {
    /// Parse one input line (surrounding blanks ignored, command case-insensitive).
    pub fn parse(line: &str) -> ConsoleCommand {
        let t = line.trim();
        match t.to_ascii_lowercase().as_str() {
            "" => ConsoleCommand::Empty,
            "ds" => ConsoleCommand::DoubleStart,
            "kl" => ConsoleCommand::KillLocal,
            "m" | "migration" => ConsoleCommand::Migrate,
            "mb" => ConsoleCommand::MigrateBack,
            "dsr" => ConsoleCommand::DoubleStartRemote,
            "kr" => ConsoleCommand::KillRemote,
            "h" | "help" => ConsoleCommand::Help,
            "end" => ConsoleCommand::End,
            "q" | "quit" => ConsoleCommand::Quit,
            _ => ConsoleCommand::Unknown(t.chars().take(80).collect()),
        }
    }

    /// Start the sequence for this command at `now`; `Err(text)` for commands that only
    /// print (help, unknown, blank).
    pub fn start(&self, cfg: &LegacyConfig, now: Millis) -> Result<Sequence, String> {
        let t = cfg.timeouts;
        let c = cfg.clone();
        Ok(match self {
            ConsoleCommand::DoubleStart => Sequence::start("DS", Box::new(Ds::new(c)), t, now),
            ConsoleCommand::KillLocal => Sequence::start("KL", Box::new(Kl::new(c)), t, now),
            ConsoleCommand::Migrate => Sequence::start("M", Box::new(Migrate::new(c)), t, now),
            ConsoleCommand::MigrateBack => {
                Sequence::start("MB", Box::new(MigrateBack::new(c)), t, now)
            }
            ConsoleCommand::DoubleStartRemote => Sequence::start(
                "DSR",
                Box::new(Dsr {
                    stage: 0,
                    slow_ms: c.slow_request_ms,
                }),
                t,
                now,
            ),
            ConsoleCommand::KillRemote => Sequence::start(
                "KR",
                Box::new(Single {
                    request: Some(Request::DoubleKill),
                }),
                t,
                now,
            ),
            ConsoleCommand::End => Sequence::start(
                "end",
                Box::new(Single {
                    request: Some(Request::End),
                }),
                t,
                now,
            ),
            ConsoleCommand::Quit => Sequence::start(
                "q",
                Box::new(Single {
                    request: Some(Request::End),
                }),
                t,
                now,
            ),
            ConsoleCommand::Help => return Err(HELP.to_string()),
            ConsoleCommand::Empty => return Err(String::new()),
            ConsoleCommand::Unknown(s) => {
                return Err(format!("unknown command {s:?}; type h for help"))
            }
        })
    }
}

/// A local step; `None` for any other input kind.
fn local_value(input: &Input) -> Option<&LocalValue> {
    match input {
        Input::Done(Output::Local(v)) => Some(v),
        _ => None,
    }
}

fn cold_start() -> LocalOp {
    LocalOp::StartD2d {
        warm: false,
        control: None,
        routes: None,
        mode: StartMode::Normal,
    }
}

/// `DS` (fig. 3-10).
struct Ds {
    cfg: LegacyConfig,
    stage: DsStage,
    unwind: Option<Unwind>,
}

#[derive(Clone, Copy)]
enum DsStage {
    Begin,
    Eth3,
    D2d,
    Probe(u8),
    Usrp,
    Collector,
}

impl Ds {
    fn new(cfg: LegacyConfig) -> Ds {
        Ds {
            cfg,
            stage: DsStage::Begin,
            unwind: None,
        }
    }

    fn fail(&mut self, cx: &mut Cx<'_>, reason: String, rollback: Vec<Step>) -> Step {
        let (u, s) = Unwind::begin(cx, reason, rollback);
        self.unwind = Some(u);
        s
    }
}

impl Script for Ds {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        if let Some(u) = &mut self.unwind {
            return u.step(cx, input);
        }
        let parked = Step::Local(LocalOp::SetEth3(self.cfg.parked_addr));
        let ok = !matches!(input, Input::Failed(_));
        let err = match &input {
            Input::Failed(e) => e.clone(),
            _ => String::new(),
        };
        match self.stage {
            DsStage::Begin => {
                cx.phase("set eth3 to the radio subnet");
                self.stage = DsStage::Eth3;
                Step::Local(LocalOp::SetEth3(self.cfg.active_addr))
            }
            DsStage::Eth3 if ok => {
                cx.phase("start D2D");
                self.stage = DsStage::D2d;
                Step::Local(cold_start())
            }
            DsStage::Eth3 => self.fail(cx, format!("DS: setting eth3 failed: {err}"), vec![]),
            DsStage::D2d if ok => {
                cx.phase("probe radio");
                self.stage = DsStage::Probe(1);
                Step::Local(LocalOp::ProbeRadio {
                    attempt: 1,
                    of: self.cfg.probe_tries,
                })
            }
            DsStage::D2d => self.fail(cx, format!("DS: starting D2D failed: {err}"), vec![parked]),
            DsStage::Probe(_) if ok => {
                cx.phase("start USRP process (full init)");
                self.stage = DsStage::Usrp;
                Step::Local(LocalOp::StartUsrp { init: true })
            }
            DsStage::Probe(n) if n < self.cfg.probe_tries => {
                self.stage = DsStage::Probe(n + 1);
                Step::Local(LocalOp::ProbeRadio {
                    attempt: n + 1,
                    of: self.cfg.probe_tries,
                })
            }
            DsStage::Probe(n) => self.fail(
                cx,
                format!("DS: radio not found after {n} tries ({err})"),
                vec![parked, Step::Local(LocalOp::KillD2d)],
            ),
            DsStage::Usrp if ok => {
                cx.info("DS: D2D and USRP processes started");
                cx.phase("start collector");
                self.stage = DsStage::Collector;
                Step::Local(LocalOp::StartCollector)
            }
            DsStage::Usrp => self.fail(
                cx,
                format!("DS: starting USRP failed: {err}"),
                vec![parked, Step::Local(LocalOp::KillD2d)],
            ),
            DsStage::Collector => {
                if !ok {
                    cx.warn(format!("DS: collector did not start: {err}"));
                }
                Step::ok("D2D and USRP running, eth3 = active address")
            }
        }
    }
}

/// `KL` (fig. 3-11): all three steps run; success only if all three succeed; the collector
/// is stopped either way.
struct Kl {
    cfg: LegacyConfig,
    stage: u8,
    failures: Vec<String>,
}

impl Kl {
    fn new(cfg: LegacyConfig) -> Kl {
        Kl {
            cfg,
            stage: 0,
            failures: Vec::new(),
        }
    }
}

impl Script for Kl {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        if let Input::Failed(e) = &input {
            let what = ["kill D2D", "kill USRP", "set eth3", "stop collector"];
            let name = what
                .get(usize::from(self.stage).saturating_sub(1))
                .copied()
                .unwrap_or("?");
            if self.stage == 4 {
                cx.warn(format!("KL: {name} failed: {e}"));
            } else {
                self.failures.push(format!("{name}: {e}"));
            }
        }
        self.stage += 1;
        match self.stage {
            1 => {
                cx.phase("kill D2D, kill USRP, park eth3");
                Step::Local(LocalOp::KillD2d)
            }
            2 => Step::Local(LocalOp::KillUsrp),
            3 => Step::Local(LocalOp::SetEth3(self.cfg.parked_addr)),
            4 => {
                cx.phase("stop collector");
                Step::Local(LocalOp::StopCollector)
            }
            _ if self.failures.is_empty() => Step::ok("D2D and USRP killed, eth3 parked"),
            _ => Step::fail(format!("KL: {}", self.failures.join("; "))),
        }
    }
}

/// `M` / `Migration` (fig. 3-12; relay fig. 4-3).
struct Migrate {
    cfg: LegacyConfig,
    stage: MStage,
    unwind: Option<Unwind>,
    control: Option<Control>,
    kill_failures: Vec<String>,
    resync_deadline: Millis,
    /// The destination's leftover D2D program was stopped once already.
    cleaned_leftover: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MStage {
    Begin,
    ReadRoutes,
    SetRoute,
    GetTunIp,
    SetTunIp,
    ReadControl,
    StartD2d,
    CleanLeftover,
    Paused,
    MakeUsrp,
    CheckDestination,
    KillD2d,
    KillUsrp,
    StopCollector,
    ParkEth3,
    Link,
    Resync,
    ResyncWait,
}

impl Migrate {
    fn new(cfg: LegacyConfig) -> Migrate {
        Migrate {
            cfg,
            stage: MStage::Begin,
            unwind: None,
            control: None,
            kill_failures: Vec::new(),
            resync_deadline: 0,
            cleaned_leftover: false,
        }
    }

    fn start_d2d(&mut self) -> Step {
        self.stage = MStage::StartD2d;
        Step::remote(Request::StartD2d(StartD2d {
            warm: true,
            control: self.control.clone(),
            mode: StartMode::Normal,
        }))
    }

    fn fail(&mut self, cx: &mut Cx<'_>, reason: String, rollback: Vec<Step>) -> Step {
        let (u, s) = Unwind::begin(cx, format!("M: {reason}"), rollback);
        self.unwind = Some(u);
        s
    }

    fn tun_ip_phase(&mut self, cx: &mut Cx<'_>) -> Step {
        cx.phase(PHASE_TUN_IP);
        self.stage = MStage::GetTunIp;
        Step::Local(LocalOp::GetTunIp)
    }
}

impl Script for Migrate {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        if let Some(u) = &mut self.unwind {
            return u.step(cx, input);
        }
        let err = match &input {
            Input::Failed(e) => Some(e.clone()),
            _ => None,
        };
        let double_kill = Step::remote(Request::DoubleKill);
        match (self.stage, err) {
            (MStage::Begin, _) if self.cfg.relay => {
                cx.phase(PHASE_ROUTES);
                self.stage = MStage::ReadRoutes;
                Step::Local(LocalOp::ReadRoutes)
            }
            (MStage::Begin, _) => self.tun_ip_phase(cx),
            (MStage::ReadRoutes, None) => match local_value(&input) {
                Some(LocalValue::Routes(r)) => {
                    self.stage = MStage::SetRoute;
                    Step::remote(Request::SetRoute(r.clone()))
                }
                _ => self.fail(cx, "route collector returned no route list".into(), vec![]),
            },
            (MStage::ReadRoutes, Some(e)) => {
                self.fail(cx, format!("no route list collected: {e}"), vec![])
            }
            (MStage::SetRoute, None) => self.tun_ip_phase(cx),
            (MStage::SetRoute, Some(e)) => self.fail(cx, format!("set_route failed: {e}"), vec![]),
            (MStage::GetTunIp, None) => match local_value(&input) {
                Some(LocalValue::TunIp(ip)) => {
                    self.stage = MStage::SetTunIp;
                    Step::remote(Request::SetTunIp(*ip))
                }
                _ => self.fail(
                    cx,
                    "reading the local tun ip returned no address".into(),
                    vec![],
                ),
            },
            (MStage::GetTunIp, Some(e)) => {
                self.fail(cx, format!("reading the local tun ip failed: {e}"), vec![])
            }
            (MStage::SetTunIp, None) => {
                cx.phase(PHASE_START_D2D);
                self.stage = MStage::ReadControl;
                Step::Local(LocalOp::ReadControl)
            }
            (MStage::SetTunIp, Some(e)) => self.fail(cx, format!("set_tun_ip failed: {e}"), vec![]),
            (MStage::ReadControl, None) => match local_value(&input) {
                Some(LocalValue::Control(c)) => {
                    self.control = Some(c.clone());
                    self.start_d2d()
                }
                _ => self.fail(cx, "collector returned no Control".into(), vec![]),
            },
            (MStage::ReadControl, Some(e)) => self.fail(
                cx,
                format!("no Control collected (run DS first?): {e}"),
                vec![],
            ),
            (MStage::StartD2d, None)
                if self
                    .cfg
                    .pause
                    .is_some_and(|p| p.after == PausePoint::DestinationStarted) =>
            {
                self.stage = MStage::Paused;
                match self.cfg.pause {
                    Some(p) => p.begin(cx, PHASE_START_D2D),
                    None => Step::fail("internal: pause vanished"),
                }
            }
            (MStage::StartD2d, None) | (MStage::Paused, _) => {
                cx.phase(PHASE_MAKE_USRP);
                self.stage = MStage::MakeUsrp;
                Step::remote(Request::MakeUsrp)
            }
            // (Ferry) A D2D program already runs on the destination while this host serves:
            // the leftover of an interrupted M (its console killed). It cannot be serving —
            // the radio talks to the active address, which this host holds — so stop it and
            // start again, once.
            (MStage::StartD2d, Some(e))
                if e.contains("already running") && !self.cleaned_leftover =>
            {
                cx.warn(format!(
                    "M: the destination still runs a D2D program ({e}), left by an interrupted \
                     migration: stopping it (double_kill) and starting again"
                ));
                self.cleaned_leftover = true;
                self.stage = MStage::CleanLeftover;
                Step::remote(Request::DoubleKill)
            }
            // double_kill reports the pieces it did not find (no USRP object) as failures;
            // whether the D2D program is gone shows in the second start_d2d.
            (MStage::CleanLeftover, e) => {
                if let Some(e) = e {
                    cx.warn(format!("M: double_kill of the leftover: {e}"));
                }
                self.start_d2d()
            }
            (MStage::StartD2d, Some(e)) => self.fail(cx, format!("start_d2d failed: {e}"), vec![]),
            (MStage::MakeUsrp, None) => {
                // (Ferry) The source is about to stop for good: first make sure the
                // destination's D2D program still runs, or nobody would serve.
                self.stage = MStage::CheckDestination;
                Step::remote(Request::Status)
            }
            (MStage::CheckDestination, e) => {
                let running = match &input {
                    Input::Done(Output::Reply(r)) => r.status().ok().map(|s| s.d2d),
                    _ => None,
                };
                match (running, e) {
                    (Some(true), _) => {
                        // From here the source stops serving: the interruption starts.
                        cx.phase_interrupting(PHASE_ETH3);
                        self.stage = MStage::KillD2d;
                        Step::Local(LocalOp::KillD2d)
                    }
                    (Some(false), _) => self.fail(
                        cx,
                        "the destination's D2D program is no longer running after make_usrp; \
                         the source keeps serving"
                            .into(),
                        vec![double_kill],
                    ),
                    (None, e) => self.fail(
                        cx,
                        format!(
                            "the destination did not confirm its D2D program after make_usrp \
                             ({}); the source keeps serving",
                            e.unwrap_or_else(|| "no status".into())
                        ),
                        vec![double_kill],
                    ),
                }
            }
            (MStage::MakeUsrp, Some(e)) => self.fail(
                cx,
                format!("make_usrp failed: {e}"),
                vec![Step::remote(Request::KillD2d)],
            ),
            (MStage::KillD2d, e) => {
                if let Some(e) = e {
                    self.kill_failures.push(format!("kill D2D: {e}"));
                }
                self.stage = MStage::KillUsrp;
                Step::Local(LocalOp::KillUsrp)
            }
            (MStage::KillUsrp, e) => {
                if let Some(e) = e {
                    self.kill_failures.push(format!("kill USRP: {e}"));
                }
                // The collector stops whether or not the kills worked.
                self.stage = MStage::StopCollector;
                Step::Local(LocalOp::StopCollector)
            }
            (MStage::StopCollector, e) => {
                if let Some(e) = e {
                    cx.warn(format!("M: stopping the collector failed: {e}"));
                }
                if self.kill_failures.is_empty() {
                    self.stage = MStage::ParkEth3;
                    Step::Local(LocalOp::SetEth3(self.cfg.parked_addr))
                } else {
                    let why = format!(
                        "killing local processes failed: {}",
                        self.kill_failures.join("; ")
                    );
                    self.fail(cx, why, vec![double_kill])
                }
            }
            (MStage::ParkEth3, None) => {
                cx.phase_interrupting(PHASE_LINK);
                self.stage = MStage::Link;
                Step::Request {
                    to: crate::machine::Peer::Remote,
                    request: Request::LinkUsrp,
                    within_ms: Some(self.cfg.slow_request_ms),
                }
            }
            // Linking now would put .10.1 on two hosts: clean the destination instead.
            (MStage::ParkEth3, Some(e)) => self.fail(
                cx,
                format!("parking local eth3 failed ({e}); not linking the destination"),
                vec![double_kill],
            ),
            (MStage::Link, None) if self.cfg.confirm_resync => {
                cx.phase_interrupting(PHASE_RESYNC);
                self.resync_deadline = cx.now + self.cfg.resync_timeout_ms;
                self.stage = MStage::Resync;
                Step::remote(Request::Status)
            }
            (MStage::Link, None) => Step::ok("task runs on the destination"),
            (MStage::Link, Some(e)) => {
                self.fail(cx, format!("link_usrp failed: {e}"), vec![double_kill])
            }
            (MStage::Resync, e) => {
                let status = match &input {
                    Input::Done(Output::Reply(r)) => r.status().ok(),
                    _ => None,
                };
                let synced = status
                    .as_ref()
                    .and_then(|s| s.modem.as_ref())
                    .is_some_and(|m| m.synced);
                if status.as_ref().is_some_and(|s| !s.d2d) {
                    // (Ferry) The source is stopped and the destination's program died:
                    // nobody serves. Say so; never count it done.
                    self.fail(
                        cx,
                        "the destination's D2D program died after the link; nobody serves \
                         (the source was stopped: break-before-make); run DS to restart the task"
                            .into(),
                        vec![double_kill],
                    )
                } else if synced {
                    Step::ok("task runs on the destination, resynchronised")
                } else if let Some(e) = e.filter(|_| cx.now >= self.resync_deadline) {
                    cx.warn(format!("M: resynchronisation not confirmed: {e}"));
                    Step::ok("task runs on the destination (resync not confirmed)")
                } else if cx.now >= self.resync_deadline {
                    cx.warn("M: resynchronisation not confirmed before the deadline");
                    Step::ok("task runs on the destination (resync not confirmed)")
                } else {
                    self.stage = MStage::ResyncWait;
                    Step::WaitUntil(cx.now + self.cfg.resync_poll_ms)
                }
            }
            (MStage::ResyncWait, _) => {
                self.stage = MStage::Resync;
                let left = self.resync_deadline.saturating_sub(cx.now).max(1);
                Step::Request {
                    to: crate::machine::Peer::Remote,
                    request: Request::Status,
                    within_ms: Some(left.min(self.cfg.timeouts.request_ms)),
                }
            }
        }
    }
}

/// `MB` (fig. 3-13).
struct MigrateBack {
    cfg: LegacyConfig,
    stage: MbStage,
    unwind: Option<Unwind>,
    tun_ip: Option<Ipv4Addr>,
    control: Option<Control>,
    routes: Option<RouteList>,
    resync_deadline: Millis,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MbStage {
    Begin,
    GetTunIp,
    GetControl,
    GetRoute,
    SetTunIp,
    StartD2d,
    MakeUsrp,
    KillRemoteUsrp,
    Eth3,
    Probe(u8),
    Link,
    Resync,
    ResyncWait,
    KillRemoteD2d,
    Collector,
}

impl MigrateBack {
    fn new(cfg: LegacyConfig) -> MigrateBack {
        MigrateBack {
            cfg,
            stage: MbStage::Begin,
            unwind: None,
            tun_ip: None,
            control: None,
            routes: None,
            resync_deadline: 0,
        }
    }

    fn fail(&mut self, cx: &mut Cx<'_>, reason: String, rollback: Vec<Step>) -> Step {
        let (u, s) = Unwind::begin(cx, format!("MB: {reason}"), rollback);
        self.unwind = Some(u);
        s
    }

    /// Kill what was started locally and park eth3.
    fn kill_both_park(&self) -> Vec<Step> {
        vec![
            Step::Local(LocalOp::KillD2d),
            Step::Local(LocalOp::KillUsrp),
            Step::Local(LocalOp::SetEth3(self.cfg.parked_addr)),
        ]
    }

    fn set_tun(&mut self, cx: &mut Cx<'_>) -> Step {
        cx.phase("set local tun ip");
        self.stage = MbStage::SetTunIp;
        match self.tun_ip {
            Some(ip) => Step::Local(LocalOp::SetTunIp(ip)),
            None => Step::fail("internal: tun ip missing"),
        }
    }

    fn after_link(&mut self, cx: &mut Cx<'_>) -> Step {
        cx.phase("kill D2D on the destination");
        self.stage = MbStage::KillRemoteD2d;
        Step::remote(Request::KillD2d)
    }
}

impl Script for MigrateBack {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        if let Some(u) = &mut self.unwind {
            return u.step(cx, input);
        }
        let err = match &input {
            Input::Failed(e) => Some(e.clone()),
            _ => None,
        };
        let reply = match &input {
            Input::Done(Output::Reply(r)) => Some(r.clone()),
            _ => None,
        };
        match (self.stage, err) {
            (MbStage::Begin, _) => {
                cx.phase("get destination tun ip and Control");
                self.stage = MbStage::GetTunIp;
                Step::remote(Request::GetTunIp)
            }
            (MbStage::GetTunIp, None) => match reply.map(|r| r.tun_ip()) {
                Some(Ok(ip)) => {
                    self.tun_ip = Some(ip);
                    self.stage = MbStage::GetControl;
                    Step::remote(Request::GetControl)
                }
                Some(Err(e)) => self.fail(cx, format!("get_tun_ip: {e}"), vec![]),
                None => self.fail(cx, "get_tun_ip: no reply".into(), vec![]),
            },
            (MbStage::GetControl, None) => match reply.map(|r| r.control()) {
                Some(Ok(c)) => {
                    self.control = Some(c);
                    if self.cfg.relay {
                        self.stage = MbStage::GetRoute;
                        Step::remote(Request::GetRoute)
                    } else {
                        self.set_tun(cx)
                    }
                }
                Some(Err(e)) => self.fail(cx, format!("get_control: {e}"), vec![]),
                None => self.fail(cx, "get_control: no reply".into(), vec![]),
            },
            (MbStage::GetRoute, None) => match reply.map(|r| r.routes()) {
                Some(Ok(r)) => {
                    self.routes = Some(r);
                    self.set_tun(cx)
                }
                Some(Err(e)) => self.fail(cx, format!("get_route: {e}"), vec![]),
                None => self.fail(cx, "get_route: no reply".into(), vec![]),
            },
            (MbStage::GetTunIp | MbStage::GetControl | MbStage::GetRoute, Some(e)) => self.fail(
                cx,
                format!("fetching destination state failed: {e}"),
                vec![],
            ),
            (MbStage::SetTunIp, None) => {
                cx.phase("start local D2D with Control");
                self.stage = MbStage::StartD2d;
                Step::Local(LocalOp::StartD2d {
                    warm: true,
                    control: self.control.clone(),
                    routes: self.routes.clone(),
                    mode: StartMode::Normal,
                })
            }
            (MbStage::SetTunIp, Some(e)) => {
                self.fail(cx, format!("setting the local tun ip failed: {e}"), vec![])
            }
            (MbStage::StartD2d, None) => {
                cx.phase(PHASE_MAKE_USRP);
                self.stage = MbStage::MakeUsrp;
                Step::Local(LocalOp::MakeUsrp)
            }
            (MbStage::StartD2d, Some(e)) => {
                self.fail(cx, format!("starting local D2D failed: {e}"), vec![])
            }
            (MbStage::MakeUsrp, None) => {
                cx.phase_interrupting("kill USRP on the destination");
                self.stage = MbStage::KillRemoteUsrp;
                Step::remote(Request::KillUsrp)
            }
            (MbStage::MakeUsrp, Some(e)) => self.fail(
                cx,
                format!("creating the local USRP object failed: {e}"),
                vec![Step::Local(LocalOp::KillD2d)],
            ),
            (MbStage::KillRemoteUsrp, None) => {
                cx.phase_interrupting(PHASE_ETH3);
                self.stage = MbStage::Eth3;
                Step::Local(LocalOp::SetEth3(self.cfg.active_addr))
            }
            (MbStage::KillRemoteUsrp, Some(e)) => self.fail(
                cx,
                format!("kill_usrp failed: {e}"),
                vec![
                    Step::Local(LocalOp::KillD2d),
                    Step::Local(LocalOp::KillUsrp),
                ],
            ),
            (MbStage::Eth3, None) => {
                cx.phase_interrupting("probe radio");
                self.stage = MbStage::Probe(1);
                Step::Local(LocalOp::ProbeRadio {
                    attempt: 1,
                    of: self.cfg.probe_tries,
                })
            }
            (MbStage::Eth3, Some(e)) => {
                let rb = self.kill_both_park();
                self.fail(cx, format!("setting eth3 failed: {e}"), rb)
            }
            (MbStage::Probe(_), None) => {
                cx.phase_interrupting(PHASE_LINK);
                self.stage = MbStage::Link;
                Step::Local(LocalOp::LinkUsrp)
            }
            (MbStage::Probe(n), Some(_)) if n < self.cfg.probe_tries => {
                self.stage = MbStage::Probe(n + 1);
                Step::Local(LocalOp::ProbeRadio {
                    attempt: n + 1,
                    of: self.cfg.probe_tries,
                })
            }
            (MbStage::Probe(n), Some(e)) => {
                let rb = self.kill_both_park();
                self.fail(cx, format!("radio not found after {n} tries ({e})"), rb)
            }
            (MbStage::Link, None) if self.cfg.confirm_resync => {
                cx.phase_interrupting(PHASE_RESYNC);
                self.resync_deadline = cx.now + self.cfg.resync_timeout_ms;
                self.stage = MbStage::Resync;
                Step::Local(LocalOp::Status)
            }
            (MbStage::Link, None) => self.after_link(cx),
            (MbStage::Link, Some(e)) => {
                let rb = self.kill_both_park();
                self.fail(cx, format!("linking the USRP object failed: {e}"), rb)
            }
            (MbStage::Resync, e) => {
                let synced = matches!(
                    local_value(&input),
                    Some(LocalValue::Status(s)) if s.modem.as_ref().is_some_and(|m| m.synced)
                );
                if synced {
                    self.after_link(cx)
                } else if cx.now >= self.resync_deadline {
                    let why = e.unwrap_or_else(|| "not synchronised".into());
                    cx.warn(format!("MB: resynchronisation not confirmed: {why}"));
                    self.after_link(cx)
                } else {
                    self.stage = MbStage::ResyncWait;
                    Step::WaitUntil(cx.now + self.cfg.resync_poll_ms)
                }
            }
            (MbStage::ResyncWait, _) => {
                self.stage = MbStage::Resync;
                Step::Local(LocalOp::Status)
            }
            (MbStage::KillRemoteD2d, e) => {
                // Thesis: a failing kill_d2d is reported, the migration still counts as done.
                if let Some(e) = e {
                    cx.warn(format!("MB: kill_d2d on the destination failed: {e}"));
                }
                cx.phase("start collector");
                self.stage = MbStage::Collector;
                Step::Local(LocalOp::StartCollector)
            }
            (MbStage::Collector, e) => {
                if let Some(e) = e {
                    cx.warn(format!("MB: collector did not start: {e}"));
                }
                Step::ok("task runs locally again")
            }
        }
    }
}

/// `DSR` (fig. 3-14).
struct Dsr {
    stage: u8,
    slow_ms: u64,
}

impl Script for Dsr {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        let failed = match &input {
            Input::Failed(e) => Some(e.clone()),
            _ => None,
        };
        self.stage += 1;
        match (self.stage, failed) {
            (1, _) => {
                cx.phase("start_d2d (cold) on the remote");
                Step::remote(Request::StartD2d(StartD2d {
                    warm: false,
                    control: None,
                    mode: StartMode::Normal,
                }))
            }
            (2, None) => {
                cx.phase("start_usrp on the remote");
                Step::Request {
                    to: crate::machine::Peer::Remote,
                    request: Request::StartUsrp,
                    within_ms: Some(self.slow_ms),
                }
            }
            (2, Some(e)) => {
                cx.timeline.close(cx.now, false);
                Step::fail(format!("DSR: start_d2d failed: {e}"))
            }
            (3, None) => Step::ok("D2D and USRP running on the remote"),
            (3, Some(e)) => {
                cx.timeline.close(cx.now, false);
                cx.report(Level::Error, format!("DSR: start_usrp failed: {e}"));
                cx.phase("rollback");
                self.stage = 10;
                Step::remote(Request::KillD2d)
            }
            (_, e) => {
                if let Some(e) = e {
                    cx.warn(format!("rollback step kill_d2d failed: {e}"));
                }
                Step::fail("DSR: start_usrp failed; kill_d2d sent")
            }
        }
    }
}

/// `KR`, `end`, `q`: one request, success = its reply.
struct Single {
    request: Option<Request>,
}

impl Script for Single {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        if let Some(r) = self.request.take() {
            cx.phase(r.cmd());
            return Step::remote(r);
        }
        match input {
            Input::Failed(e) => Step::fail(e),
            _ => Step::ok("remote agent answered ok"),
        }
    }
}

//! The destination-side controller (thesis 3.5, figures 3-17 to 3-26, relay 4-4) as a pure
//! state machine: request bytes in, local steps out, one [`Reply`] per request.
//!
//! Shell loop: `agent.receive(now, body)`, then repeatedly `poll_action()`: perform each
//! `Local` step and feed its result with `handle(now, Event::LocalDone(..))`; send the
//! `Reply`; stop on `Exit`. The agent answers one request at a time (like a ZeroMQ REP).

use crate::console::{ACTIVE_ADDR, PARKED_ADDR, PROBE_TRIES};
use crate::control::{Control, RouteList};
use crate::machine::{
    Action, Cx, Event, Input, LocalOp, LocalValue, Millis, Output, Report, Script, Sequence, Step,
    Timeouts, Unwind,
};
use crate::protocol::{
    check_tun_ip, ErrorKind, Ipv4Subnet, Reply, Request, StartMode, DEFAULT_TASK_SUBNET,
};
use crate::timeline::Timeline;
use serde_json::Value;
use std::collections::VecDeque;
use std::net::Ipv4Addr;

/// Agent settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// eth3 address the radio talks to.
    pub active_addr: Ipv4Addr,
    /// eth3 address while parked.
    pub parked_addr: Ipv4Addr,
    /// Discovery tries.
    pub probe_tries: u8,
    /// Local step deadlines (`request_ms` and `radio_ms` are unused by the agent).
    pub timeouts: Timeouts,
    /// `set_tun_ip` accepts only addresses inside this subnet.
    pub task_subnet: Ipv4Subnet,
    /// ... and outside these (the host's management and fronthaul subnets).
    pub host_subnets: Vec<Ipv4Subnet>,
}

/// The testbed's management, fronthaul and parking subnets (`ferry_testbed::Topology`).
pub const DEFAULT_HOST_SUBNETS: [Ipv4Subnet; 5] = [
    Ipv4Subnet::new(Ipv4Addr::new(10, 99, 0, 0), 24),
    Ipv4Subnet::new(Ipv4Addr::new(192, 168, 10, 0), 24),
    Ipv4Subnet::new(Ipv4Addr::new(192, 168, 20, 0), 24),
    Ipv4Subnet::new(Ipv4Addr::new(192, 168, 13, 0), 24),
    Ipv4Subnet::new(Ipv4Addr::new(192, 168, 14, 0), 24),
];

impl Default for AgentConfig {
    fn default() -> AgentConfig {
        AgentConfig {
            active_addr: ACTIVE_ADDR,
            parked_addr: PARKED_ADDR,
            probe_tries: PROBE_TRIES,
            timeouts: Timeouts::default(),
            task_subnet: DEFAULT_TASK_SUBNET,
            host_subnets: DEFAULT_HOST_SUBNETS.to_vec(),
        }
    }
}

/// Something for the agent's shell to do.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentAction {
    /// Perform a local step; answer with `handle(now, Event::LocalDone(..))`.
    Local(LocalOp),
    /// Log line.
    Report(Report),
    /// Send this reply to the requester.
    Reply(Reply),
    /// `end` was answered: exit.
    Exit,
}

/// The agent's state: the variables the thesis keeps (`Control`, `route_list`, `tun_ip`) and
/// the handler in progress.
#[derive(Debug)]
pub struct Agent {
    cfg: AgentConfig,
    control: Option<Control>,
    routes: Option<RouteList>,
    tun_ip: Option<Ipv4Addr>,
    current: Option<(Request, Sequence)>,
    out: VecDeque<AgentAction>,
    last_timeline: Option<Timeline>,
}

impl Agent {
    /// A fresh agent.
    pub fn new(cfg: AgentConfig) -> Agent {
        Agent {
            cfg,
            control: None,
            routes: None,
            tun_ip: None,
            current: None,
            out: VecDeque::new(),
            last_timeline: None,
        }
    }

    /// Timeline of the last finished handler (e.g. `link_usrp`: eth3, probes, link), for
    /// the agent's log.
    pub fn last_timeline(&self) -> Option<&Timeline> {
        self.last_timeline.as_ref()
    }

    /// The shell hit an unexpected error while performing a step of the current handler
    /// (thesis: "command raised"): drop the handler and answer `command raised: {what}`.
    /// The agent then serves the next request. No rollback is attempted: the state of the
    /// step is unknown, which the reply says.
    pub fn raised(&mut self, what: &str) {
        if let Some((request, _)) = self.current.take() {
            self.out
                .push_back(AgentAction::Reply(Reply::raised(request.cmd(), what)));
        }
    }

    /// Latest Control (from `start_d2d` or the collector).
    pub fn control(&self) -> Option<&Control> {
        self.control.as_ref()
    }

    /// Latest route list (from `set_route` or the collector).
    pub fn routes(&self) -> Option<&RouteList> {
        self.routes.as_ref()
    }

    /// Last tun address set or read.
    pub fn tun_ip(&self) -> Option<Ipv4Addr> {
        self.tun_ip
    }

    /// Whether a handler is running.
    pub fn is_busy(&self) -> bool {
        self.current.is_some()
    }

    /// The collector read a Control from the modem.
    pub fn collected_control(&mut self, control: Control) {
        self.control = Some(control);
    }

    /// The route collector read the modem's `route_t`.
    pub fn collected_routes(&mut self, routes: RouteList) {
        self.routes = Some(routes);
    }

    /// A request body arrived (already authenticated). Never panics: malformed or unknown
    /// requests produce an error reply.
    pub fn receive(&mut self, now: Millis, body: &[u8]) {
        match Request::decode(body) {
            Ok(r) => self.receive_request(now, r),
            Err(e) => {
                self.out.push_back(AgentAction::Reply(e.to_reply()));
            }
        }
    }

    /// A decoded request arrived.
    pub fn receive_request(&mut self, now: Millis, request: Request) {
        if let Some((cur, _)) = &self.current {
            let msg = format!("busy with {}", cur.cmd());
            self.out.push_back(AgentAction::Reply(Reply::fail(
                request.cmd(),
                ErrorKind::Busy,
                msg,
            )));
            return;
        }
        // Requests answered from the agent's own variables need no local step.
        let immediate = match &request {
            Request::SetRoute(r) => {
                self.routes = Some(r.clone());
                Some(Reply::ok("set_route", None))
            }
            Request::GetRoute => Some(match &self.routes {
                Some(r) => Reply::ok("get_route", Some(r.to_value())),
                None => Reply::fail("get_route", ErrorKind::Failed, "no route list yet"),
            }),
            Request::GetControl => Some(match &self.control {
                Some(c) => Reply::ok("get_control", Some(c.to_value())),
                None => Reply::fail("get_control", ErrorKind::Failed, "no Control yet"),
            }),
            Request::End => Some(Reply::ok("end", None)),
            Request::SetTunIp(ip) => {
                check_tun_ip(*ip, self.cfg.task_subnet, &self.cfg.host_subnets)
                    .err()
                    .map(|e| Reply::fail("set_tun_ip", ErrorKind::BadRequest, e))
            }
            _ => None,
        };
        if let Some(reply) = immediate {
            let end = request == Request::End;
            self.out.push_back(AgentAction::Reply(reply));
            if end {
                self.out.push_back(AgentAction::Exit);
            }
            return;
        }
        if let Request::StartD2d(s) = &request {
            // Thesis: the received Control is stored before the D2D program starts.
            if let Some(c) = &s.control {
                self.control = Some(c.clone());
            }
        }
        let script: Box<dyn Script> = match &request {
            Request::StartUsrp => Box::new(StartUsrp {
                cfg: self.cfg.clone(),
                stage: UsrpStage::Begin,
                unwind: None,
                link: false,
            }),
            Request::LinkUsrp => Box::new(StartUsrp {
                cfg: self.cfg.clone(),
                stage: UsrpStage::Begin,
                unwind: None,
                link: true,
            }),
            Request::StartD2d(s) => Box::new(StartD2dHandler {
                op: Some(LocalOp::StartD2d {
                    warm: s.warm,
                    control: s.control.clone(),
                    routes: self.routes.clone(),
                    mode: s.mode,
                }),
                started: false,
                shadow: s.mode != StartMode::Normal,
            }),
            Request::KillUsrp => Box::new(Chain::stop_on_failure(vec![
                LocalOp::SetEth3(self.cfg.parked_addr),
                LocalOp::KillUsrp,
            ])),
            Request::KillD2d => Box::new(KillD2dHandler {
                stage: 0,
                result: None,
            }),
            Request::DoubleKill => Box::new(Chain::all_must_succeed(
                vec![
                    LocalOp::KillD2d,
                    LocalOp::KillUsrp,
                    LocalOp::SetEth3(self.cfg.parked_addr),
                ],
                LocalOp::StopCollector,
            )),
            Request::MakeUsrp => Box::new(Chain::stop_on_failure(vec![LocalOp::MakeUsrp])),
            Request::GetTunIp => Box::new(Chain::stop_on_failure(vec![LocalOp::GetTunIp])),
            Request::SetTunIp(ip) => Box::new(Chain::stop_on_failure(vec![LocalOp::SetTunIp(*ip)])),
            Request::Status | Request::Observe => {
                Box::new(Chain::stop_on_failure(vec![LocalOp::Status]))
            }
            Request::TakeoverAt { at, forward_token } => {
                Box::new(Chain::stop_on_failure(vec![LocalOp::ModemTakeoverAt {
                    at: *at,
                    forward_token: forward_token.clone(),
                }]))
            }
            Request::ReleaseAt {
                at,
                forward_to,
                forward_token,
            } => Box::new(Chain::stop_on_failure(vec![LocalOp::ModemReleaseAt {
                at: *at,
                forward_to: *forward_to,
                forward_token: forward_token.clone(),
            }])),
            Request::CancelCutover => {
                Box::new(Chain::stop_on_failure(vec![LocalOp::ModemCancelCutover]))
            }
            // Answered above; kept total so a new variant cannot slip through silently.
            Request::SetRoute(_) | Request::GetRoute | Request::GetControl | Request::End => {
                self.out.push_back(AgentAction::Reply(Reply::raised(
                    request.cmd(),
                    "internal dispatch error",
                )));
                return;
            }
        };
        let seq = Sequence::start(request.cmd(), script, self.cfg.timeouts, now);
        self.current = Some((request, seq));
        self.drain();
    }

    /// Feed the result of the last local step (or `Tick` for deadlines).
    pub fn handle(&mut self, now: Millis, event: Event) {
        if let Some((_, seq)) = &mut self.current {
            seq.handle(now, event);
        }
        self.drain();
    }

    /// When to call `handle(now, Event::Tick)` at the latest.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.current.as_ref().and_then(|(_, s)| s.poll_timeout())
    }

    /// Next action for the shell.
    pub fn poll_action(&mut self) -> Option<AgentAction> {
        self.out.pop_front()
    }

    fn drain(&mut self) {
        let Some((request, seq)) = &mut self.current else {
            return;
        };
        let mut done = None;
        while let Some(a) = seq.poll_action() {
            match a {
                Action::Local(op) => self.out.push_back(AgentAction::Local(op)),
                Action::Report(r) => self.out.push_back(AgentAction::Report(r)),
                Action::Done(o) => done = Some(o),
                // Handlers only take local steps.
                Action::Request { .. } | Action::Radio(_) => {}
            }
        }
        if let Some(o) = done {
            let cmd = request.cmd();
            self.last_timeline = Some(o.timeline.clone());
            let reply = if o.ok {
                match (request, &o.result) {
                    (Request::SetTunIp(ip), _) => self.tun_ip = Some(*ip),
                    (Request::GetTunIp, Some(Value::String(s))) => self.tun_ip = s.parse().ok(),
                    _ => {}
                }
                Reply::ok(cmd, o.result)
            } else {
                Reply::fail(cmd, ErrorKind::Failed, o.summary)
            };
            self.out.push_back(AgentAction::Reply(reply));
            self.current = None;
        }
    }
}

/// `start_usrp` (fig. 3-18) and `link_usrp` (fig. 3-20): eth3 up, probe, then start with
/// full init or link; failures after eth3 was changed put it back.
struct StartUsrp {
    cfg: AgentConfig,
    stage: UsrpStage,
    unwind: Option<Unwind>,
    link: bool,
}

#[derive(Clone, Copy)]
enum UsrpStage {
    Begin,
    Eth3,
    Probe(u8),
    Final,
}

impl Script for StartUsrp {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        if let Some(u) = &mut self.unwind {
            return u.step(cx, input);
        }
        let err = match &input {
            Input::Failed(e) => Some(e.clone()),
            _ => None,
        };
        let parked = Step::Local(LocalOp::SetEth3(self.cfg.parked_addr));
        let what = if self.link { "link" } else { "USRP start" };
        let mut fail = |cx: &mut Cx<'_>, reason: String, rb: Vec<Step>| {
            let (u, s) = Unwind::begin(cx, reason, rb);
            self.unwind = Some(u);
            s
        };
        match (self.stage, err) {
            (UsrpStage::Begin, _) => {
                cx.phase("set eth3 to the radio subnet");
                self.stage = UsrpStage::Eth3;
                Step::Local(LocalOp::SetEth3(self.cfg.active_addr))
            }
            (UsrpStage::Eth3, None) => {
                cx.phase("probe radio");
                self.stage = UsrpStage::Probe(1);
                Step::Local(LocalOp::ProbeRadio {
                    attempt: 1,
                    of: self.cfg.probe_tries,
                })
            }
            (UsrpStage::Eth3, Some(e)) => fail(cx, format!("setting eth3 failed: {e}"), vec![]),
            (UsrpStage::Probe(_), None) => {
                self.stage = UsrpStage::Final;
                if self.link {
                    cx.phase("link USRP object to the device");
                    Step::Local(LocalOp::LinkUsrp)
                } else {
                    cx.phase("start USRP process (full init)");
                    Step::Local(LocalOp::StartUsrp { init: true })
                }
            }
            (UsrpStage::Probe(n), Some(_)) if n < self.cfg.probe_tries => {
                self.stage = UsrpStage::Probe(n + 1);
                Step::Local(LocalOp::ProbeRadio {
                    attempt: n + 1,
                    of: self.cfg.probe_tries,
                })
            }
            (UsrpStage::Probe(n), Some(e)) => fail(
                cx,
                format!("{what} failed: radio not found after {n} tries ({e})"),
                vec![parked],
            ),
            (UsrpStage::Final, None) => Step::ok(if self.link {
                "USRP object linked"
            } else {
                "USRP process started"
            }),
            (UsrpStage::Final, Some(e)) => fail(cx, format!("{what} failed: {e}"), vec![parked]),
        }
    }
}

/// `start_d2d` (fig. 3-21, relay 4-4): start the program (routes filled from `route_list`
/// when one was received), then the collector (shadow mode too: the collector follows the
/// modem). A collector that fails to start is reported, not fatal.
struct StartD2dHandler {
    op: Option<LocalOp>,
    started: bool,
    shadow: bool,
}

impl Script for StartD2dHandler {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        if let Some(op) = self.op.take() {
            cx.phase(if self.shadow {
                "start D2D (shadow)"
            } else {
                "start D2D"
            });
            return Step::Local(op);
        }
        match (self.started, input) {
            (false, Input::Failed(e)) => Step::fail(format!("D2D start failed: {e}")),
            (false, _) => {
                self.started = true;
                cx.phase("start collector");
                Step::Local(LocalOp::StartCollector)
            }
            (true, Input::Failed(e)) => {
                cx.warn(format!("collector did not start: {e}"));
                Step::ok("D2D started (collector failed)")
            }
            (true, _) => Step::ok("D2D started"),
        }
    }
}

/// `kill_d2d` (fig. 3-23): kill, then stop the collector whatever the kill returned; the
/// reply is the kill's result.
struct KillD2dHandler {
    stage: u8,
    result: Option<String>,
}

impl Script for KillD2dHandler {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        self.stage += 1;
        match self.stage {
            1 => {
                cx.phase("kill D2D");
                Step::Local(LocalOp::KillD2d)
            }
            2 => {
                if let Input::Failed(e) = input {
                    self.result = Some(e);
                }
                cx.phase("stop collector");
                Step::Local(LocalOp::StopCollector)
            }
            _ => {
                if let Input::Failed(e) = input {
                    cx.warn(format!("stopping the collector failed: {e}"));
                }
                match self.result.take() {
                    Some(e) => Step::fail(format!("kill D2D failed: {e}")),
                    None => Step::ok("D2D killed"),
                }
            }
        }
    }
}

/// A list of local steps: either stop at the first failure, or run all and succeed only if
/// all succeed (then run `always` whatever happened, like `double_kill`'s collector stop).
struct Chain {
    ops: VecDeque<LocalOp>,
    run_all: bool,
    always: Option<LocalOp>,
    always_sent: bool,
    failures: Vec<String>,
    last: Option<Output>,
    started: bool,
}

impl Chain {
    fn stop_on_failure(ops: Vec<LocalOp>) -> Chain {
        Chain {
            ops: ops.into(),
            run_all: false,
            always: None,
            always_sent: false,
            failures: Vec::new(),
            last: None,
            started: false,
        }
    }

    fn all_must_succeed(ops: Vec<LocalOp>, always: LocalOp) -> Chain {
        Chain {
            run_all: true,
            always: Some(always),
            ..Chain::stop_on_failure(ops)
        }
    }

    fn result(&self) -> Option<Value> {
        match &self.last {
            Some(Output::Local(LocalValue::TunIp(ip))) => Some(Value::String(ip.to_string())),
            Some(Output::Local(LocalValue::Status(s))) => serde_json::to_value(s).ok(),
            Some(Output::Local(LocalValue::Control(c))) => Some(c.to_value()),
            Some(Output::Local(LocalValue::Routes(r))) => Some(r.to_value()),
            _ => None,
        }
    }
}

impl Script for Chain {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        match input {
            Input::Failed(e) if self.always_sent => {
                cx.warn(format!("stopping the collector failed: {e}"));
            }
            Input::Failed(e) => {
                self.failures.push(e);
                if !self.run_all {
                    return Step::fail(self.failures.join("; "));
                }
            }
            Input::Done(o) if !self.always_sent => self.last = Some(o),
            _ => {}
        }
        if !self.started {
            self.started = true;
            let name = cx.timeline.label.clone();
            cx.phase(&name);
        }
        if let Some(op) = self.ops.pop_front() {
            return Step::Local(op);
        }
        if let Some(op) = self.always.take() {
            self.always_sent = true;
            return Step::Local(op);
        }
        if self.failures.is_empty() {
            Step::Finish {
                ok: true,
                summary: "done".into(),
                result: self.result(),
            }
        } else {
            Step::fail(self.failures.join("; "))
        }
    }
}

//! The event-driven engine every sequence runs on (quinn-proto style): the IO shell takes
//! [`Action`]s out with [`Sequence::poll_action`], performs them, and feeds the results back
//! with [`Sequence::handle`], passing the current time; [`Sequence::poll_timeout`] says when
//! to call `handle(now, Event::Tick)` if nothing else happens.
//!
//! A sequence has at most one effect (local step, request or radio command) outstanding.
//! Each effect has a deadline; when it passes, the step counts as failed ("timed out") and
//! the sequence rolls back as the thesis prescribes for that step's failure.

use crate::control::{Control, RouteList};
use crate::protocol::{HostStatus, Reply, Request, StartMode};
use crate::timeline::Timeline;
use serde_json::Value;
use std::collections::VecDeque;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

/// Milliseconds on the caller's monotonic clock (any epoch, never going backwards).
pub type Millis = u64;

/// A step on the host running the sequence (the console's own host, or the agent's).
#[derive(Debug, Clone, PartialEq)]
pub enum LocalOp {
    /// Set the fronthaul port (`eth3`) address.
    SetEth3(Ipv4Addr),
    /// One discovery probe of the radio (`uhd_find_devices`): succeed if found.
    ProbeRadio {
        /// 1-based try number.
        attempt: u8,
        /// Tries allowed in total (8 in the thesis).
        of: u8,
    },
    /// Start the D2D program (modem).
    StartD2d {
        /// `control_flag` = 1: start warm from `control`.
        warm: bool,
        /// The Control to start with (when warm).
        control: Option<Control>,
        /// Relay routes to fill `route_t` with, if any were received.
        routes: Option<RouteList>,
        /// Normal, or make-before-break shadow.
        mode: StartMode,
    },
    /// Start the USRP process; `init` = full radio initialisation (DS / `start_usrp`).
    StartUsrp {
        /// Whether to (re)initialise the radio (2–3 s on real hardware).
        init: bool,
    },
    /// Create the USRP device object, buffers and metadata (no init).
    MakeUsrp,
    /// Link the device object to the radio (`get_device`).
    LinkUsrp,
    /// Kill the D2D program.
    KillD2d,
    /// Kill the USRP process / drop the device object.
    KillUsrp,
    /// Start the collector (Control, and routes for a relay) refreshing every period.
    StartCollector,
    /// Stop the collector.
    StopCollector,
    /// Read the tun address.
    GetTunIp,
    /// Set the tun address.
    SetTunIp(Ipv4Addr),
    /// The latest collected Control.
    ReadControl,
    /// The latest collected route list.
    ReadRoutes,
    /// Processes, addresses and modem cutover state.
    Status,
    /// Arm the shadow modem to deliver and transmit from radio sample `at`.
    ModemTakeoverAt {
        /// Cutover sample.
        at: u64,
        /// The migration's forward-port key.
        forward_token: crate::protocol::ForwardToken,
    },
    /// Arm the serving modem to stop at `at` and forward to `forward_to`.
    ModemReleaseAt {
        /// Cutover sample.
        at: u64,
        /// Destination modem's forwarding endpoint.
        forward_to: SocketAddr,
        /// The migration's forward-port key.
        forward_token: crate::protocol::ForwardToken,
    },
    /// Disarm any armed cutover.
    ModemCancelCutover,
}

/// What a successful [`LocalOp`] returns.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalValue {
    /// Nothing to return.
    Unit,
    /// From `GetTunIp`.
    TunIp(Ipv4Addr),
    /// From `ReadControl`.
    Control(Control),
    /// From `ReadRoutes`.
    Routes(RouteList),
    /// From `Status`.
    Status(HostStatus),
}

/// Which agent a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The agent on the console's own host.
    Local,
    /// The other pool server's agent.
    Remote,
}

/// A link-control command to the radio (make-before-break only; legacy moves the link by
/// eth3 addresses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RadioOp {
    /// Read the radio's sample clock and current primary endpoint.
    Clock,
    /// Copy the RX stream to endpoint `to` too (the destination synchronises on it).
    Shadow {
        /// Fronthaul endpoint name.
        to: String,
    },
    /// Stop the shadow copy to `to`.
    Unshadow {
        /// Fronthaul endpoint name.
        to: String,
    },
    /// From sample `at` (a subframe boundary) on, take TX only from `to` and send RX only to
    /// `to` (which stops being a shadow); the old primary gets nothing.
    SwitchAt {
        /// Cutover sample.
        at: u64,
        /// New primary endpoint.
        to: String,
        /// The old primary stays a fallback this long after `at` (0: none).
        grace_ms: u64,
    },
    /// Protect the primary with the warm standby at `to` (None: unprotect): the radio
    /// copies RX to it and fails over to it when the primary falls silent.
    Protect {
        /// Standby endpoint name, or None.
        to: Option<String>,
    },
    /// Cancel an armed switch to `to` (only possible before its time).
    CancelSwitch {
        /// Endpoint the switch was armed for.
        to: String,
    },
}

/// The radio's clock reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadioClock {
    /// Current sample index.
    pub sample: u64,
    /// Sample rate in Hz.
    pub rate_hz: u64,
    /// Endpoint currently taking TX and receiving RX, if any.
    pub primary: Option<String>,
}

/// What a successful [`RadioOp`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RadioValue {
    /// Nothing to return.
    Unit,
    /// From `Clock`.
    Clock(RadioClock),
}

/// How loud a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Progress.
    Info,
    /// Something failed but the sequence goes on (rollback step, cleanup).
    Warn,
    /// The sequence failed.
    Error,
}

/// A line for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Severity.
    pub level: Level,
    /// Text.
    pub text: String,
}

/// How a sequence ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Command name (`DS`, `M`, `mbb`, `start_usrp`, ...).
    pub command: String,
    /// Success as the thesis defines it for this command.
    pub ok: bool,
    /// One line saying what happened (the failure reason when not ok).
    pub summary: String,
    /// Result value (agent handlers: the reply's `result`; mbb: cutover details).
    pub result: Option<Value>,
    /// The recorded phases.
    pub timeline: Timeline,
}

/// Something for the IO shell to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Perform a local step; answer with [`Event::LocalDone`].
    Local(LocalOp),
    /// Send a request to an agent; answer with [`Event::Reply`] (or [`Event::Timeout`]).
    Request {
        /// Which agent.
        to: Peer,
        /// The request.
        request: Request,
    },
    /// Send a link-control command to the radio; answer with [`Event::RadioDone`].
    Radio(RadioOp),
    /// Print for the operator / log. Needs no answer.
    Report(Report),
    /// The sequence has ended. Needs no answer.
    Done(Outcome),
}

/// Something that happened, fed to [`Sequence::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The pending local step finished.
    LocalDone(Result<LocalValue, String>),
    /// The pending request was answered.
    Reply(Reply),
    /// The pending radio command finished.
    RadioDone(Result<RadioValue, String>),
    /// The shell gave up on the pending effect (e.g. its own request timeout).
    Timeout,
    /// Time passed; checks deadlines and wake-ups.
    Tick,
}

/// Deadlines for each kind of effect, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A local step (full USRP init takes 2–3 s on real hardware).
    pub local_ms: u64,
    /// A request to an agent (`link_usrp` probes up to 8 times, then links: seconds).
    pub request_ms: u64,
    /// A radio link-control command.
    pub radio_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            local_ms: 15_000,
            request_ms: 15_000,
            radio_ms: 1_000,
        }
    }
}

/// Where an operator hold ([`Pause`]) may sit in a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePoint {
    /// Right after the destination's D2D program started (legacy M: before `make_usrp`;
    /// make-before-break: before the radio shadows RX to it).
    DestinationStarted,
    /// Make-before-break only: the destination is synchronised in shadow, before T is
    /// chosen. The legacy M has no such point (it resynchronises only after linking).
    DestinationSynced,
}

impl PausePoint {
    /// The operator's name of the point (`ferry ctl --pause-after`).
    pub fn name(self) -> &'static str {
        match self {
            PausePoint::DestinationStarted => "started",
            PausePoint::DestinationSynced => "synced",
        }
    }
}

/// An operator hold inside a migration, before anything that touches the serving side:
/// the destination runs beside the untouched source for `ms` so that it can be inspected
/// (status, radio capture) or a failure can be injected before the sequence goes on. It
/// shows in the timeline as a phase of its own, [`PAUSE_PHASE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    /// Where.
    pub after: PausePoint,
    /// How long, ms.
    pub ms: u64,
}

/// Timeline name of an operator hold.
pub const PAUSE_PHASE: &str = "operator pause (--pause-after)";

impl Pause {
    /// Begin the hold: a timeline phase of its own and a report naming it, then the wait.
    pub(crate) fn begin(&self, cx: &mut Cx<'_>, after_phase: &str) -> Step {
        cx.timeline.begin(cx.now, PAUSE_PHASE, false);
        cx.info(format!(
            "{}: paused {} ms after \"{after_phase}\" (--pause-after {})",
            cx.timeline.label,
            self.ms,
            self.after.name()
        ));
        Step::WaitUntil(cx.now + self.ms)
    }
}

/// What a script gets back for its last step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Input {
    Start,
    Done(Output),
    Failed(String),
    Woke,
}

/// The success value of the last step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    Local(LocalValue),
    Reply(Reply),
    Radio(RadioValue),
}

/// What a script wants next.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Local(LocalOp),
    Request {
        to: Peer,
        request: Request,
        /// Overrides the default request timeout (make-before-break caps it by T).
        within_ms: Option<u64>,
    },
    Radio {
        op: RadioOp,
        within_ms: Option<u64>,
    },
    WaitUntil(Millis),
    Finish {
        ok: bool,
        summary: String,
        result: Option<Value>,
    },
}

impl Step {
    pub(crate) fn remote(request: Request) -> Step {
        Step::Request {
            to: Peer::Remote,
            request,
            within_ms: None,
        }
    }

    pub(crate) fn to(to: Peer, request: Request) -> Step {
        Step::Request {
            to,
            request,
            within_ms: None,
        }
    }

    pub(crate) fn radio(op: RadioOp) -> Step {
        Step::Radio {
            op,
            within_ms: None,
        }
    }

    pub(crate) fn ok(summary: impl Into<String>) -> Step {
        Step::Finish {
            ok: true,
            summary: summary.into(),
            result: None,
        }
    }

    pub(crate) fn fail(summary: impl Into<String>) -> Step {
        Step::Finish {
            ok: false,
            summary: summary.into(),
            result: None,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Local(op) => write!(f, "local {op:?}"),
            Step::Request { to, request, .. } => write!(f, "{} to {to:?} agent", request.cmd()),
            Step::Radio { op, .. } => write!(f, "radio {op:?}"),
            Step::WaitUntil(t) => write!(f, "wait until {t} ms"),
            Step::Finish { summary, .. } => write!(f, "finish: {summary}"),
        }
    }
}

/// What a script may do besides choosing its next step.
pub(crate) struct Cx<'a> {
    pub(crate) now: Millis,
    /// The operator asked to stop (SIGINT / SIGTERM / EOF): the script finishes or undoes
    /// the command at its next safe point and says which.
    pub(crate) interrupted: bool,
    pub(crate) out: &'a mut VecDeque<Action>,
    pub(crate) timeline: &'a mut Timeline,
}

impl Cx<'_> {
    pub(crate) fn report(&mut self, level: Level, text: impl Into<String>) {
        self.out.push_back(Action::Report(Report {
            level,
            text: text.into(),
        }));
    }

    pub(crate) fn info(&mut self, text: impl Into<String>) {
        self.report(Level::Info, text);
    }

    pub(crate) fn warn(&mut self, text: impl Into<String>) {
        self.report(Level::Warn, text);
    }

    /// Begin a timeline phase (closing the previous one as successful) and say so.
    pub(crate) fn phase(&mut self, name: &str) {
        self.timeline.begin(self.now, name, false);
        self.info(format!("{}: {name}", self.timeline.label));
    }

    /// Begin a phase during which traffic is interrupted.
    pub(crate) fn phase_interrupting(&mut self, name: &str) {
        self.timeline.begin(self.now, name, true);
        self.info(format!("{}: {name}", self.timeline.label));
    }
}

/// A migration or handler sequence as a state machine.
pub(crate) trait Script: Send {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step;
}

/// A rollback in progress: runs its steps in order whatever each returns (a failing
/// rollback step is reported, not fatal), then finishes with the original failure.
pub(crate) struct Unwind {
    steps: VecDeque<Step>,
    reason: String,
    last: Option<String>,
}

impl Unwind {
    /// Close the failed phase, report why, and return the first rollback step.
    pub(crate) fn begin(cx: &mut Cx<'_>, reason: String, steps: Vec<Step>) -> (Unwind, Step) {
        cx.timeline.close(cx.now, false);
        cx.report(Level::Error, reason.clone());
        if !steps.is_empty() {
            cx.timeline.begin(cx.now, "rollback", false);
        }
        let mut u = Unwind {
            steps: steps.into(),
            reason,
            last: None,
        };
        let first = u.next();
        (u, first)
    }

    fn next(&mut self) -> Step {
        match self.steps.pop_front() {
            Some(s) => {
                self.last = Some(s.to_string());
                s
            }
            None => Step::fail(self.reason.clone()),
        }
    }

    pub(crate) fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        if let Input::Failed(e) = input {
            let what = self.last.clone().unwrap_or_default();
            cx.warn(format!("rollback step {what} failed: {e}"));
        }
        self.next()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Local,
    Request(&'static str),
    Radio,
}

/// A running sequence: the public face of every state machine in this crate.
pub struct Sequence {
    name: String,
    script: Box<dyn Script>,
    out: VecDeque<Action>,
    pending: Option<(Pending, Millis)>,
    wake_at: Option<Millis>,
    timeline: Timeline,
    timeouts: Timeouts,
    finished: bool,
    interrupted: bool,
}

impl fmt::Debug for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sequence")
            .field("name", &self.name)
            .field("pending", &self.pending)
            .field("wake_at", &self.wake_at)
            .field("finished", &self.finished)
            .finish()
    }
}

impl Sequence {
    pub(crate) fn start(
        name: &str,
        script: Box<dyn Script>,
        timeouts: Timeouts,
        now: Millis,
    ) -> Sequence {
        let mut s = Sequence {
            name: name.to_string(),
            script,
            out: VecDeque::new(),
            pending: None,
            wake_at: None,
            timeline: Timeline::new(name, now),
            timeouts,
            finished: false,
            interrupted: false,
        };
        s.run(now, Input::Start);
        s
    }

    /// The operator asked to stop (SIGINT, SIGTERM, EOF on the console). The command is
    /// not abandoned half-way: at its next step it is undone if that is still safe (before
    /// a make-before-break's radio switch is armed) or finished otherwise, and its summary
    /// says which. A sequence waiting on a timer is woken at once.
    pub fn interrupt(&mut self, now: Millis) {
        if self.finished || self.interrupted {
            return;
        }
        self.interrupted = true;
        if self.pending.is_none() && self.wake_at.is_some() {
            self.wake_at = Some(now);
        }
    }

    /// Whether [`Sequence::interrupt`] was called.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted
    }

    /// The command this sequence runs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Next action for the shell, in order. `Local`, `Request` and `Radio` each need exactly
    /// one answer before the sequence can continue.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// When the shell must call `handle(now, Event::Tick)` at the latest.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.finished {
            return None;
        }
        match (self.pending.map(|p| p.1), self.wake_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the sequence has ended (its `Done` action is queued or taken).
    pub fn is_done(&self) -> bool {
        self.finished
    }

    /// Whether an effect is outstanding.
    pub fn is_waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// The timeline so far.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Feed an event at time `now`. Answers that do not match the outstanding effect (late
    /// replies after a timeout, a reply for another command) are ignored or, for a reply
    /// naming another command, treated as a failure of the pending request.
    pub fn handle(&mut self, now: Millis, event: Event) {
        if self.finished {
            return;
        }
        let input = match (event, self.pending) {
            (Event::Tick, Some((kind, deadline))) if now >= deadline => {
                Some(Input::Failed(timeout_text(kind, now, deadline)))
            }
            (Event::Tick, None) => match self.wake_at {
                Some(t) if now >= t => {
                    self.wake_at = None;
                    Some(Input::Woke)
                }
                _ => None,
            },
            (Event::Tick, Some(_)) => None,
            (Event::Timeout, Some((kind, deadline))) => {
                Some(Input::Failed(timeout_text(kind, now, deadline)))
            }
            // An answer after the deadline is a timeout: the sequence may already have been
            // due to roll back, and the shell may deliver late.
            (
                Event::LocalDone(_) | Event::Reply(_) | Event::RadioDone(_),
                Some((kind, deadline)),
            ) if now > deadline => Some(Input::Failed(timeout_text(kind, now, deadline))),
            (Event::LocalDone(r), Some((Pending::Local, _))) => Some(match r {
                Ok(v) => Input::Done(Output::Local(v)),
                Err(e) => Input::Failed(e),
            }),
            (Event::Reply(r), Some((Pending::Request(cmd), _))) => Some(if r.cmd != cmd {
                Input::Failed(format!("reply for {:?} while waiting for {cmd}", r.cmd))
            } else if r.ok {
                Input::Done(Output::Reply(r))
            } else {
                Input::Failed(format!("{cmd}: {}", r.describe()))
            }),
            (Event::RadioDone(r), Some((Pending::Radio, _))) => Some(match r {
                Ok(v) => Input::Done(Output::Radio(v)),
                Err(e) => Input::Failed(format!("radio: {e}")),
            }),
            _ => None,
        };
        if let Some(input) = input {
            self.pending = None;
            self.run(now, input);
        }
    }

    fn run(&mut self, now: Millis, mut input: Input) {
        // Bounded: a script never needs more than a handful of immediate steps in a row;
        // the bound turns a script bug into a failure instead of a hang.
        for _ in 0..64 {
            let mut cx = Cx {
                now,
                interrupted: self.interrupted,
                out: &mut self.out,
                timeline: &mut self.timeline,
            };
            match self.script.step(&mut cx, input) {
                Step::Local(op) => {
                    self.out.push_back(Action::Local(op));
                    self.pending = Some((Pending::Local, now + self.timeouts.local_ms));
                    return;
                }
                Step::Request {
                    to,
                    request,
                    within_ms,
                } => {
                    let ms = within_ms.unwrap_or(self.timeouts.request_ms);
                    self.pending = Some((Pending::Request(request.cmd()), now + ms));
                    self.out.push_back(Action::Request { to, request });
                    return;
                }
                Step::Radio { op, within_ms } => {
                    let ms = within_ms.unwrap_or(self.timeouts.radio_ms);
                    self.out.push_back(Action::Radio(op));
                    self.pending = Some((Pending::Radio, now + ms));
                    return;
                }
                Step::WaitUntil(t) if t > now => {
                    self.wake_at = Some(t);
                    return;
                }
                Step::WaitUntil(_) => input = Input::Woke,
                Step::Finish {
                    ok,
                    summary,
                    result,
                } => {
                    self.finish(now, ok, summary, result);
                    return;
                }
            }
        }
        self.finish(
            now,
            false,
            "internal error: sequence did not settle".into(),
            None,
        );
    }

    fn finish(&mut self, now: Millis, ok: bool, summary: String, result: Option<Value>) {
        self.timeline.finish(now, ok);
        self.finished = true;
        self.pending = None;
        self.wake_at = None;
        self.out.push_back(Action::Report(Report {
            level: if ok { Level::Info } else { Level::Error },
            text: format!(
                "{}: {} ({summary})",
                self.name,
                if ok { "succeeded" } else { "FAILED" }
            ),
        }));
        self.out.push_back(Action::Done(Outcome {
            command: self.name.clone(),
            ok,
            summary,
            result,
            timeline: self.timeline.clone(),
        }));
    }
}

fn timeout_text(kind: Pending, now: Millis, deadline: Millis) -> String {
    let what = match kind {
        Pending::Local => "local step".to_string(),
        Pending::Request(cmd) => format!("{cmd} request"),
        Pending::Radio => "radio command".to_string(),
    };
    if now >= deadline {
        format!("{what} timed out (no answer by {deadline} ms, now {now} ms)")
    } else {
        format!("{what} timed out (given up by the shell at {now} ms)")
    }
}

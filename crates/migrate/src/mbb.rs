//! Ferry's make-before-break migration: start the destination warm in shadow mode, let it
//! synchronise on the radio's RX copy, then switch radio, destination and source at one
//! subframe boundary T in radio sample time. Any failure before T leaves the source serving
//! untouched and cleans the destination.
//!
//! Order of arming: destination `takeover_at`, source `release_at`, radio `SwitchAt` last.
//! Cutover is conditional on the radio (a modem armed to release stops only if the radio no
//! longer streams to it; one armed to take over starts only if the radio made it primary),
//! so both modem arms are harmless alone and the radio's switch is the one commit: a
//! failure before it is undone with `cancel_cutover` and `kill_d2d` and never needs the
//! radio to cancel (`ferry air` cannot). The arms must be confirmed before `T − guard` by
//! the local clock, else everything is disarmed.

use crate::control::{Control, RouteList};
use crate::machine::{
    Cx, Input, Level, Millis, Output, Pause, PausePoint, Peer, RadioOp, RadioValue, Script,
    Sequence, Step, Timeouts,
};
use crate::protocol::{ForwardToken, ModemMode, Request, StartD2d, StartMode};
use serde_json::json;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};

/// Phase names of the make-before-break timeline, in order.
pub const MBB_PHASES: [&str; 15] = [
    "read source tun ip, Control and routes",
    "set destination tun ip",
    "set_route on destination",
    "start destination modem warm (shadow)",
    "radio shadows RX to destination",
    "destination synchronised",
    "choose cutover time T",
    "arm destination takeover at T",
    "arm source release at T",
    "arm radio switch at T",
    "cutover at T",
    "destination confirms serving",
    "source forwards held data",
    "source warm for the fallback grace",
    "stop and clean source",
];

/// The last phase of `protect` (after [`MBB_PHASES`] 0–5): the radio takes the warm
/// destination as the task's standby.
pub const PROTECT_PHASE: &str = "radio protects the task with the standby";

/// Settings of a make-before-break migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MbbConfig {
    /// Agent of the host serving now.
    pub source: Peer,
    /// Agent of the host to move to.
    pub destination: Peer,
    /// Radio fronthaul endpoint of the destination modem.
    pub destination_port: String,
    /// Where the source forwards held packets (the destination modem's forwarding endpoint).
    pub forward_to: SocketAddr,
    /// This migration's forward-port key, handed to both modems with `takeover_at` /
    /// `release_at`: only the source holding it can inject into the destination.
    pub forward_token: ForwardToken,
    /// Relay task: carry the route list.
    pub relay: bool,
    /// How far ahead of the radio clock T is placed at most, before rounding up to a
    /// subframe. The margin used is derived from this migration's measured round trips
    /// (`Mbb::margin_for`), between `margin_floor_ms` and this.
    pub margin_ms: u64,
    /// The least margin, however fast the round trips were (`margin_ms` or more: fixed).
    pub margin_floor_ms: u64,
    /// The modems' TX lead in ms: the source has TX built this far ahead when it is armed,
    /// and T must lie beyond it (its modem refuses a `release_at` inside built TX).
    pub tx_lead_ms: u64,
    /// All arming must be confirmed this long before T.
    pub guard_ms: u64,
    /// Poll period for `status` while waiting.
    pub poll_ms: u64,
    /// Longest wait for the destination to synchronise.
    pub sync_timeout_ms: u64,
    /// Longest wait after T for radio and destination to confirm.
    pub confirm_timeout_ms: u64,
    /// Longest wait for the source to finish forwarding.
    pub drain_timeout_ms: u64,
    /// The radio keeps the source as a fallback this long after T (`switch_at_fallback`):
    /// if the destination then sends no TX for the radio's liveness interval, the radio
    /// switches back to the source, which stays warm as long (its `--release-grace-ms`).
    /// The source is cleaned only after it, once the radio still names the destination.
    /// 0: a plain `switch_at` (no way back after T).
    pub fallback_grace_ms: u64,
    /// Protect instead of migrate (`ferry ctl protect`): the destination is started as a
    /// hot standby, and once it is synchronised the radio takes it as the task's standby
    /// (it fails over to it when the primary falls silent). Nothing moves.
    pub protect: bool,
    /// Effect deadlines.
    pub timeouts: Timeouts,
    /// Operator hold after the destination started or synchronised (`--pause-after`).
    /// After a hold at `synced` the destination's sync is confirmed again before T.
    pub pause: Option<Pause>,
    /// During an operator hold, the destination is asked its `status` this often (ms), which
    /// renews its agent's lease on the warm modem (`crate::lease`): a controller killed in
    /// the hold stops renewing, and the agent stops the shadow one lease later.
    pub keepalive_ms: Millis,
}

impl MbbConfig {
    /// Defaults for moving from `source` to `destination`.
    pub fn new(
        source: Peer,
        destination: Peer,
        destination_port: impl Into<String>,
        forward_to: SocketAddr,
    ) -> MbbConfig {
        MbbConfig {
            source,
            destination,
            destination_port: destination_port.into(),
            forward_to,
            forward_token: ForwardToken::random(),
            relay: false,
            margin_ms: 40,
            margin_floor_ms: 20,
            tx_lead_ms: 8,
            guard_ms: 2,
            poll_ms: 5,
            sync_timeout_ms: 5_000,
            confirm_timeout_ms: 1_000,
            drain_timeout_ms: 2_000,
            fallback_grace_ms: 300,
            protect: false,
            timeouts: Timeouts {
                local_ms: 5_000,
                request_ms: 2_000,
                radio_ms: 500,
            },
            pause: None,
            keepalive_ms: crate::lease::KEEPALIVE_MS,
        }
    }
}

/// The first subframe boundary at or after `now + margin`, on the grid of subframes that
/// starts at `origin` (a frame start in radio sample time). Saturates instead of
/// overflowing; `subframe_len` 0 is treated as 1.
pub fn cutover_sample(now: u64, margin: u64, origin: u64, subframe_len: u64) -> u64 {
    let sf = subframe_len.max(1);
    let earliest = now.saturating_add(margin);
    let phase = if earliest >= origin {
        (earliest - origin) % sf
    } else {
        // Boundaries also lie before the origin, every `sf` samples.
        (sf - (origin - earliest) % sf) % sf
    };
    if phase == 0 {
        earliest
    } else {
        earliest.saturating_add(sf - phase)
    }
}

/// Start a make-before-break migration at `now`.
pub fn migrate(cfg: MbbConfig, now: Millis) -> Sequence {
    let t = cfg.timeouts;
    Sequence::start("mbb", Box::new(Mbb::new(cfg)), t, now)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum S {
    Begin,
    ReadTun,
    ReadControl,
    ReadRoutes,
    SetTun,
    SetRoute,
    StartDest,
    PausedStarted,
    Shadow,
    SyncPoll,
    SyncWait,
    PausedSynced,
    Clock,
    ArmDest,
    /// The destination was armed too slowly for T: its takeover is being cancelled to
    /// choose a later T (once).
    Replan,
    ArmRadio,
    ArmSource,
    WaitT,
    ConfirmRadio,
    ConfirmDest,
    ConfirmDestWait,
    Drain,
    DrainWait,
    Grace,
    GraceClock,
    Clean,
    Settle,
    SettleClock,
    KillDest,
    Protect,
    Unshadowed,
}

/// Rollback of an aborted migration.
struct Abort {
    steps: VecDeque<Step>,
    reason: String,
    last: Option<Step>,
}

impl Abort {
    fn next(&mut self) -> Step {
        match self.steps.pop_front() {
            Some(s) => {
                self.last = Some(s.clone());
                s
            }
            None => Step::fail(self.reason.clone()),
        }
    }
}

/// What has been done to the destination and radio, to know what to undo.
#[derive(Default)]
struct Touched {
    dest_started: bool,
    shadowing: bool,
    radio_armed: bool,
    source_armed: bool,
    protecting: bool,
}

pub(crate) struct Mbb {
    cfg: MbbConfig,
    s: S,
    aborting: Option<Abort>,
    touched: Touched,
    tun_ip: Option<Ipv4Addr>,
    control: Option<Control>,
    routes: Option<RouteList>,
    deadline: Millis,
    clock_sent_at: Millis,
    t: u64,
    /// Earliest local time at which T may occur: arming must finish before it − guard.
    t_local_early: Millis,
    /// When the destination's arming request went out (its round trip sizes the rest).
    arm_sent_at: Millis,
    /// Latest local time at which T occurs: confirmation starts after it.
    t_local_late: Millis,
    /// The operator hold has been taken (it happens once).
    paused: bool,
    /// The operator hold ends at (local ms).
    hold_until: Millis,
    /// The next keepalive to the destination during the hold (local ms).
    next_keepalive: Millis,
    /// Why the migration failed after T (settling who serves).
    failure: Option<String>,
    /// The operator's interrupt was acted on.
    interrupt_seen: bool,
    /// The source's modem was found dead while arming: the destination is promoted.
    source_dead: bool,
    /// T was chosen again after a slow arming of the destination (it happens once).
    replanned: bool,
    /// The request in flight (who it went to) and when it went, if it is a quick one (not
    /// a modem start or stop): its round trip feeds the margin.
    in_flight: Option<(Rtt, Millis)>,
    /// The last [`RTTS_KEPT`] round trips to the source, the destination and the radio.
    rtts: [VecDeque<u64>; 3],
    /// The margin T was placed with (ms), and the round trips it came from.
    margin: u64,
    margin_rtts: [Option<u64>; 3],
    /// The destination did not confirm after T (why), but the radio named it primary once
    /// the fallback grace was over: the move is done, verified by the arbiter.
    confirmed_by_radio: Option<String>,
}

impl Mbb {
    pub(crate) fn new(cfg: MbbConfig) -> Mbb {
        Mbb {
            cfg,
            s: S::Begin,
            aborting: None,
            touched: Touched::default(),
            tun_ip: None,
            control: None,
            routes: None,
            deadline: 0,
            clock_sent_at: 0,
            t: 0,
            t_local_early: 0,
            arm_sent_at: 0,
            replanned: false,
            t_local_late: 0,
            paused: false,
            hold_until: 0,
            next_keepalive: 0,
            failure: None,
            interrupt_seen: false,
            source_dead: false,
            confirmed_by_radio: None,
            in_flight: None,
            rtts: Default::default(),
            margin: 0,
            margin_rtts: [None; 3],
        }
    }

    /// The largest of the last [`RTTS_KEPT`] round trips to each peer (`None`: none yet).
    fn rtt_max(&self) -> [Option<u64>; 3] {
        [0, 1, 2].map(|i| self.rtts[i].iter().copied().max())
    }

    /// The margin before T for this migration: arming takes three round trips in a row
    /// (destination, source, radio), each at most the largest of the last few to that
    /// peer (the destination's first polls, while its modem starts, are not its pace once
    /// it runs);
    /// twice that, plus the modems' TX lead (the source must be armed before it builds TX
    /// for T) and the guard, between the floor and `margin_ms`. A peer not measured yet
    /// counts as `margin_ms / 3` (no measurement, no cut).
    fn margin_for(&self) -> u64 {
        self.margin_from(self.rtt_max())
    }

    /// Step 7: ask the radio's clock to choose T from (after a sync, or again after a
    /// one-off slow arming).
    fn choose_t(&mut self, cx: &mut Cx<'_>, now: Millis) -> Step {
        cx.phase(MBB_PHASES[6]);
        self.s = S::Clock;
        self.clock_sent_at = now;
        Step::radio(RadioOp::Clock)
    }

    /// [`Mbb::margin_for`] had the destination's last round trip taken `rtt` ms.
    fn margin_if_destination_took(&self, rtt: u64) -> u64 {
        let mut m = self.rtt_max();
        m[Rtt::Destination as usize] = Some(m[Rtt::Destination as usize].unwrap_or(0).max(rtt));
        self.margin_from(m)
    }

    fn margin_from(&self, rtt_max: [Option<u64>; 3]) -> u64 {
        let unknown = self.cfg.margin_ms / 3;
        let rtts: u64 = rtt_max.iter().map(|r| r.unwrap_or(unknown)).sum();
        let want = 2 * rtts + self.cfg.tx_lead_ms + self.cfg.guard_ms;
        want.clamp(
            self.cfg.margin_floor_ms.min(self.cfg.margin_ms),
            self.cfg.margin_ms,
        )
    }

    /// Notes the round trip of the quick request that just completed (`done`), and the
    /// one about to go out.
    fn track_rtt(&mut self, now: Millis, done: bool, next: &Step) {
        if let (Some((who, sent)), true) = (self.in_flight.take(), done) {
            let kept = &mut self.rtts[who as usize];
            if kept.len() >= RTTS_KEPT {
                kept.pop_front();
            }
            kept.push_back(now.saturating_sub(sent));
        }
        self.in_flight = match next {
            Step::Request { to, request, .. } if quick(request) => {
                let who = if *to == self.cfg.source {
                    Rtt::Source
                } else {
                    Rtt::Destination
                };
                Some((who, now))
            }
            Step::Radio { .. } => Some((Rtt::Radio, now)),
            _ => None,
        };
    }

    fn src(&self, r: Request) -> Step {
        Step::to(self.cfg.source, r)
    }

    fn dst(&self, r: Request) -> Step {
        Step::to(self.cfg.destination, r)
    }

    /// Abort before T: disarm and clean in the order that protects the source most.
    fn abort(&mut self, cx: &mut Cx<'_>, reason: String) -> Step {
        let port = self.cfg.destination_port.clone();
        let mut rb = Vec::new();
        if self.touched.protecting {
            rb.push(Step::radio(RadioOp::Protect { to: None }));
        }
        if self.touched.radio_armed {
            rb.push(Step::radio(RadioOp::CancelSwitch { to: port.clone() }));
        }
        if self.touched.source_armed {
            rb.push(self.src(Request::CancelCutover));
        }
        if self.touched.shadowing {
            rb.push(Step::radio(RadioOp::Unshadow { to: port }));
        }
        if self.touched.dest_started {
            rb.push(self.dst(Request::KillD2d));
        }
        let reason = format!("mbb aborted before T, source untouched: {reason}");
        cx.timeline.close(cx.now, false);
        cx.report(Level::Error, reason.clone());
        if !rb.is_empty() {
            cx.timeline.begin(cx.now, "rollback", false);
        }
        let mut a = Abort {
            steps: rb.into(),
            reason,
            last: None,
        };
        let first = a.next();
        self.aborting = Some(a);
        first
    }

    fn abort_step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        let Some(a) = &mut self.aborting else {
            return Step::fail("internal: not aborting");
        };
        if let Input::Failed(e) = input {
            let last = a.last.take();
            if matches!(
                last,
                Some(Step::Radio {
                    op: RadioOp::CancelSwitch { .. },
                    ..
                })
            ) {
                // The radio may still switch at T. Modems follow the radio at T (a release or
                // takeover only happens if the radio really switched), so leaving both armed
                // is safe while killing the destination could lose the only serving copy.
                cx.warn(format!("mbb: cancelling the radio switch failed: {e}"));
                cx.timeline.close(cx.now, false);
                return Step::Finish {
                    ok: false,
                    summary: format!(
                        "{}; radio switch could not be cancelled ({e}): the radio decides at T = {}, both modems left armed",
                        a.reason, self.t
                    ),
                    result: Some(json!({ "cutover_sample": self.t, "cancel_failed": true })),
                };
            }
            let what = last.map(|s| s.to_string()).unwrap_or_default();
            cx.warn(format!("rollback step {what} failed: {e}"));
        }
        a.next()
    }

    /// Failure after T: the cutover is committed; report, keep both sides running for the
    /// operator (killing either could lose the only serving copy).
    /// Something failed after the radio's switch was armed. The radio decides who serves:
    /// with a fallback grace it hands the task back to the source if the destination is
    /// silent, so wait out the grace, ask the radio, and stop the destination only if the
    /// radio no longer names it — never the only live modem.
    fn after_t_failure(&mut self, cx: &mut Cx<'_>, reason: String) -> Step {
        if self.cfg.fallback_grace_ms == 0 {
            cx.timeline.close(cx.now, false);
            return Step::Finish {
                ok: false,
                summary: format!(
                    "mbb committed at T = {} but {reason}; both modems left running",
                    self.t
                ),
                result: Some(self.result()),
            };
        }
        cx.warn(format!(
            "mbb: {reason}; waiting out the fallback grace to see who serves"
        ));
        self.failure = Some(reason);
        self.s = S::Settle;
        Step::WaitUntil(
            (self.t_local_late + self.cfg.fallback_grace_ms + self.cfg.poll_ms).max(cx.now + 1),
        )
    }

    /// Ends a migration that switched at T but could not be completed, killing nothing.
    fn failed_after_t(&mut self, cx: &mut Cx<'_>, why: String) -> Step {
        cx.timeline.close(cx.now, false);
        Step::Finish {
            ok: false,
            summary: format!("mbb switched at T = {} but {why}", self.t),
            result: Some(self.result()),
        }
    }

    fn result(&self) -> serde_json::Value {
        json!({ "cutover_sample": self.t, "margin_ms": self.margin, "rtt_max_ms": self.margin_rtts })
    }

    /// Milliseconds left before the arming deadline, or `None` if already too late.
    fn arming_budget(&self, now: Millis) -> Option<u64> {
        let limit = self.t_local_early.saturating_sub(self.cfg.guard_ms);
        (now < limit).then(|| limit - now)
    }

    fn arm_step(&self, now: Millis, step: Step) -> Option<Step> {
        let budget = self.arming_budget(now)?;
        Some(match step {
            Step::Request { to, request, .. } => Step::Request {
                to,
                request,
                within_ms: Some(budget.min(self.cfg.timeouts.request_ms)),
            },
            Step::Radio { op, .. } => Step::Radio {
                op,
                within_ms: Some(budget.min(self.cfg.timeouts.radio_ms)),
            },
            other => other,
        })
    }

    fn start_dest(&mut self, cx: &mut Cx<'_>) -> Step {
        cx.phase(MBB_PHASES[3]);
        self.s = S::StartDest;
        self.touched.dest_started = true;
        self.dst(Request::StartD2d(StartD2d {
            warm: true,
            control: self.control.clone(),
            mode: if self.cfg.protect {
                StartMode::Standby
            } else {
                StartMode::Shadow
            },
        }))
    }

    /// The operator hold at `point`, if one is asked for there and not yet taken.
    fn pause_at(&mut self, point: PausePoint) -> Option<Pause> {
        let p = self
            .cfg
            .pause
            .filter(|p| p.after == point && !self.paused)?;
        self.paused = true;
        Some(p)
    }

    /// Take the operator hold `p` (after `after_phase`), renewing the destination's lease.
    fn hold(&mut self, cx: &mut Cx<'_>, p: Pause, after_phase: &str) -> Step {
        let _ = p.begin(cx, after_phase);
        self.hold_until = cx.now.saturating_add(p.ms);
        self.next_keepalive = cx.now.saturating_add(self.cfg.keepalive_ms.max(1));
        self.keep_alive(cx.now)
    }

    /// Within the hold: a `status` to the destination when one is due (its reply, even a
    /// failure, only renews the lease; the sync is confirmed after the hold), else wait.
    fn keep_alive(&mut self, now: Millis) -> Step {
        if now >= self.next_keepalive {
            self.next_keepalive = now.saturating_add(self.cfg.keepalive_ms.max(1));
            return self.dst(Request::Status);
        }
        Step::WaitUntil(self.hold_until.min(self.next_keepalive))
    }

    fn shadow(&mut self, cx: &mut Cx<'_>) -> Step {
        cx.phase(MBB_PHASES[4]);
        self.s = S::Shadow;
        self.touched.shadowing = true;
        Step::radio(RadioOp::Shadow {
            to: self.cfg.destination_port.clone(),
        })
    }

    fn sync_poll(&mut self, cx: &mut Cx<'_>) -> Step {
        cx.phase(MBB_PHASES[5]);
        self.deadline = cx.now + self.cfg.sync_timeout_ms;
        self.s = S::SyncPoll;
        self.dst(Request::Status)
    }

    fn set_tun(&mut self, cx: &mut Cx<'_>) -> Step {
        cx.phase(MBB_PHASES[1]);
        self.s = S::SetTun;
        match self.tun_ip {
            Some(ip) => self.dst(Request::SetTunIp(ip)),
            None => Step::fail("internal: tun ip missing"),
        }
    }
}

/// Round trips kept per peer for the margin.
const RTTS_KEPT: usize = 4;

/// Whose round trip.
#[derive(Clone, Copy, Debug)]
enum Rtt {
    Source = 0,
    Destination = 1,
    Radio = 2,
}

/// A request whose round trip is the network's and the agent's, not a process start or
/// stop.
fn quick(r: &Request) -> bool {
    !matches!(
        r,
        Request::StartD2d(_) | Request::KillD2d | Request::DoubleKill
    )
}

impl Script for Mbb {
    fn step(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        let now = cx.now;
        let done = matches!(input, Input::Done(_));
        let next = self.step_inner(cx, input);
        self.track_rtt(now, done, &next);
        next
    }
}

impl Mbb {
    fn step_inner(&mut self, cx: &mut Cx<'_>, input: Input) -> Step {
        if self.aborting.is_some() {
            return self.abort_step(cx, input);
        }
        if cx.interrupted && !self.interrupt_seen {
            self.interrupt_seen = true;
            // Undo while the radio cannot have switched yet; from the radio's arming on,
            // the radio decides at T and the command is finished (both are consistent).
            let committed = match self.s {
                S::ArmRadio | S::Protect => matches!(input, Input::Done(_)),
                S::WaitT
                | S::ConfirmRadio
                | S::ConfirmDest
                | S::ConfirmDestWait
                | S::Drain
                | S::DrainWait
                | S::Grace
                | S::GraceClock
                | S::Clean
                | S::Settle
                | S::SettleClock
                | S::KillDest
                | S::Unshadowed => true,
                _ => false,
            };
            if !committed {
                let what = if self.cfg.protect { "protect" } else { "mbb" };
                return self.abort(
                    cx,
                    format!(
                        "interrupted by the operator: {what} undone, the source serves as before"
                    ),
                );
            }
            cx.warn(
                "interrupted by the operator after the radio's switch was armed: finishing the migration (the radio decides at T)",
            );
        }
        let err = match &input {
            Input::Failed(e) => Some(e.clone()),
            _ => None,
        };
        let reply = match &input {
            Input::Done(Output::Reply(r)) => Some(r.clone()),
            _ => None,
        };
        let clock = match &input {
            Input::Done(Output::Radio(RadioValue::Clock(c))) => Some(c.clone()),
            _ => None,
        };
        let now = cx.now;
        let port = self.cfg.destination_port.clone();
        match (self.s, err) {
            (S::Begin, _) => {
                cx.phase(MBB_PHASES[0]);
                self.s = S::ReadTun;
                self.src(Request::GetTunIp)
            }
            (S::ReadTun, None) => match reply.map(|r| r.tun_ip()) {
                Some(Ok(ip)) => {
                    self.tun_ip = Some(ip);
                    self.s = S::ReadControl;
                    self.src(Request::GetControl)
                }
                other => self.abort(cx, format!("get_tun_ip on source: {}", bad_result(other))),
            },
            (S::ReadControl, None) => match reply.map(|r| r.control()) {
                Some(Ok(c)) => {
                    self.control = Some(c);
                    // Routes move with every task, not only relays: the MAC's route to the
                    // far end is what lets the destination transmit at T instead of after
                    // the far end's next discovery beacon.
                    self.s = S::ReadRoutes;
                    self.src(Request::GetRoute)
                }
                other => self.abort(cx, format!("get_control on source: {}", bad_result(other))),
            },
            (S::ReadRoutes, e) => match reply.map(|r| r.routes()) {
                Some(Ok(r)) => {
                    self.routes = Some(r);
                    self.set_tun(cx)
                }
                other if self.cfg.relay => {
                    let why = e.unwrap_or_else(|| bad_result(other));
                    self.abort(cx, format!("get_route on source: {why}"))
                }
                other => {
                    // A plain D2D task still moves; its destination rediscovers the far end.
                    let why = e.unwrap_or_else(|| bad_result(other));
                    cx.warn(format!("mbb: no route list from the source ({why})"));
                    self.set_tun(cx)
                }
            },
            (S::SetTun, None) => match self.routes.clone() {
                Some(r) => {
                    cx.phase(MBB_PHASES[2]);
                    self.s = S::SetRoute;
                    self.dst(Request::SetRoute(r))
                }
                None => self.start_dest(cx),
            },
            (S::SetRoute, None) => self.start_dest(cx),
            (S::StartDest, None) => match self.pause_at(PausePoint::DestinationStarted) {
                Some(p) => {
                    self.s = S::PausedStarted;
                    self.hold(cx, p, MBB_PHASES[3])
                }
                None => self.shadow(cx),
            },
            (S::PausedStarted | S::PausedSynced, _) if now < self.hold_until => {
                self.keep_alive(now)
            }
            (S::PausedStarted, _) => self.shadow(cx),
            (S::Shadow, None) => self.sync_poll(cx),
            (S::SyncPoll, e) => {
                let status = reply.and_then(|r| r.status().ok());
                if status.as_ref().is_some_and(|s| !s.d2d) {
                    // Its agent reaped it: no use waiting for sync.
                    return self.abort(
                        cx,
                        "destination modem is not running (it exited during the migration)".into(),
                    );
                }
                let synced = status
                    .and_then(|s| s.modem)
                    .is_some_and(|m| m.synced && m.mode == ModemMode::Shadow);
                let hold = if synced {
                    self.pause_at(PausePoint::DestinationSynced)
                } else {
                    None
                };
                if let Some(p) = hold {
                    self.s = S::PausedSynced;
                    self.hold(cx, p, MBB_PHASES[5])
                } else if synced && self.cfg.protect {
                    cx.phase(PROTECT_PHASE);
                    self.s = S::Protect;
                    self.touched.protecting = true;
                    Step::radio(RadioOp::Protect { to: Some(port) })
                } else if synced {
                    self.choose_t(cx, now)
                } else if now >= self.deadline {
                    let why = e.unwrap_or_else(|| "destination still not synchronised".into());
                    self.abort(
                        cx,
                        format!("no sync within {} ms: {why}", self.cfg.sync_timeout_ms),
                    )
                } else {
                    self.s = S::SyncWait;
                    Step::WaitUntil(now + self.cfg.poll_ms)
                }
            }
            // After the hold, confirm again that the destination is alive and in sync.
            (S::PausedSynced, _) => self.sync_poll(cx),
            (S::SyncWait, _) => {
                self.s = S::SyncPoll;
                let left = self.deadline.saturating_sub(now).max(1);
                Step::Request {
                    to: self.cfg.destination,
                    request: Request::Status,
                    within_ms: Some(left.min(self.cfg.timeouts.request_ms)),
                }
            }
            (S::Clock, None) => {
                let Some(c) = clock else {
                    return self.abort(cx, "radio clock reply carried no clock".into());
                };
                if c.rate_hz < 1000 || c.rate_hz % 1000 != 0 {
                    return self.abort(
                        cx,
                        format!("radio rate {} Hz is not whole samples per ms", c.rate_hz),
                    );
                }
                let sf = c.rate_hz / 1000;
                let origin = self
                    .control
                    .as_ref()
                    .and_then(|k| k.warm)
                    .map_or(0, |w| w.frame_start_sample);
                // The clock's own round trip is complete: count it.
                self.track_rtt(now, true, &Step::WaitUntil(now));
                let margin = self.margin_for();
                self.margin = margin;
                cx.timeline.margin_ms = Some(margin);
                self.t = cutover_sample(c.sample, margin.saturating_mul(sf), origin, sf);
                let ahead_ms = (self.t - c.sample).div_ceil(sf);
                // The radio read its clock somewhere between sending and now.
                self.t_local_early = self.clock_sent_at + ahead_ms;
                self.t_local_late = now + ahead_ms;
                let ms = |r: Option<u64>| r.map_or("-".into(), |v| v.to_string());
                let rtt_max = self.rtt_max();
                self.margin_rtts = rtt_max;
                cx.info(format!(
                    "mbb: cutover at radio sample {} (clock {}, {} ms ahead; margin {margin} ms \
                     from the largest of the last round trips: source {}, destination {}, radio {} ms)",
                    self.t,
                    c.sample,
                    ahead_ms,
                    ms(rtt_max[0]),
                    ms(rtt_max[1]),
                    ms(rtt_max[2]),
                ));
                cx.phase(MBB_PHASES[7]);
                self.s = S::ArmDest;
                self.arm_sent_at = now;
                let step = self.dst(Request::TakeoverAt {
                    at: self.t,
                    forward_token: self.cfg.forward_token.clone(),
                });
                match self.arm_step(now, step) {
                    Some(s) => s,
                    None => self.abort(cx, "margin too small: T passed while choosing it".into()),
                }
            }
            // At the pace the destination answered, the source and the radio must both fit
            // before T. If they do not, but a margin sized by this slower round trip is
            // larger than the one T was chosen with (a one-off hiccup on a shared host),
            // cancel the destination's takeover and choose a later T, once; otherwise give
            // up now, while nothing but the destination needs cancelling.
            (S::ArmDest, None)
                if self.arming_budget(now).unwrap_or(0)
                    < 2 * now.saturating_sub(self.arm_sent_at).max(1) =>
            {
                let rtt = now.saturating_sub(self.arm_sent_at);
                if !self.replanned && self.margin_if_destination_took(rtt) > self.margin {
                    cx.warn(format!(
                        "mbb: the destination took {rtt} ms to arm, too slow for T ({} ms \
                         margin): cancelling its takeover and choosing a later T",
                        self.margin
                    ));
                    self.replanned = true;
                    self.s = S::Replan;
                    return self.dst(Request::CancelCutover);
                }
                let margin = self.margin_for();
                self.abort(
                    cx,
                    format!(
                        "too close to T to arm source and radio (destination took {rtt} ms \
                         of a {margin} ms margin; raise --margin-floor-ms, or --margin-ms if \
                         the margin is at it)"
                    ),
                )
            }
            (S::Replan, None) => self.choose_t(cx, now),
            (S::Replan, Some(e)) => self.abort(
                cx,
                format!("cancelling the destination's takeover to choose a later T failed: {e}"),
            ),
            (S::ArmDest, None) => {
                cx.phase(MBB_PHASES[8]);
                self.s = S::ArmSource;
                self.touched.source_armed = true;
                let step = self.src(Request::ReleaseAt {
                    at: self.t,
                    forward_to: self.cfg.forward_to,
                    forward_token: self.cfg.forward_token.clone(),
                });
                match self.arm_step(now, step) {
                    Some(s) => s,
                    None => {
                        self.touched.source_armed = false;
                        self.abort(cx, "too close to T to arm the source".into())
                    }
                }
            }
            // The source's modem died (e.g. during an operator hold): rolling back would stop
            // the only live copy of the task. Promote the warm, synchronised destination
            // instead: the radio switches to it at T (no fallback to a dead source).
            (S::ArmSource, Some(e)) if e.contains("no D2D running") => {
                cx.warn(format!(
                    "mbb: the source modem is not running ({e}): promoting the warm destination instead of rolling back"
                ));
                self.touched.source_armed = false;
                self.source_dead = true;
                cx.phase(MBB_PHASES[9]);
                self.s = S::ArmRadio;
                self.touched.radio_armed = true;
                let step = Step::radio(RadioOp::SwitchAt {
                    at: self.t,
                    to: port,
                    grace_ms: 0,
                });
                match self.arm_step(now, step) {
                    Some(s) => s,
                    None => {
                        self.touched.radio_armed = false;
                        self.abort(cx, "too close to T to arm the radio".into())
                    }
                }
            }
            (S::ArmSource, None) => {
                cx.phase(MBB_PHASES[9]);
                self.s = S::ArmRadio;
                self.touched.radio_armed = true;
                let step = Step::radio(RadioOp::SwitchAt {
                    at: self.t,
                    to: port,
                    grace_ms: self.cfg.fallback_grace_ms,
                });
                match self.arm_step(now, step) {
                    Some(s) => s,
                    None => {
                        self.touched.radio_armed = false;
                        self.abort(cx, "too close to T to arm the radio".into())
                    }
                }
            }
            // The radio's switch is the commit: once it is armed the radio decides at T and
            // both modems follow it, so a late confirmation is waited out, not undone (the
            // radio may not be able to cancel, and the confirmation phase checks the switch).
            (S::ArmRadio, None) => {
                if self.arming_budget(now).is_none() {
                    cx.warn("mbb: the radio confirmed its switch after the before-T guard");
                }
                cx.phase(MBB_PHASES[10]);
                self.s = S::WaitT;
                self.deadline = self.t_local_late + self.cfg.confirm_timeout_ms;
                Step::WaitUntil(self.t_local_late + 1)
            }
            (S::WaitT, _) => {
                self.s = S::ConfirmRadio;
                Step::radio(RadioOp::Clock)
            }
            (S::ConfirmRadio, e) => match (clock, e) {
                (Some(c), _)
                    if c.sample >= self.t && c.primary.as_deref() == Some(port.as_str()) =>
                {
                    cx.phase(MBB_PHASES[11]);
                    self.s = S::ConfirmDest;
                    self.dst(Request::Status)
                }
                (Some(c), _) if c.sample >= self.t => {
                    let p = c.primary.unwrap_or_else(|| "none".into());
                    self.after_t_failure(cx, format!("radio primary is {p}, not {port}"))
                }
                _ if now >= self.deadline => {
                    self.after_t_failure(cx, "radio did not confirm the switch".into())
                }
                _ => {
                    self.s = S::WaitT;
                    Step::WaitUntil(now + self.cfg.poll_ms)
                }
            },
            (S::ConfirmDest, e) => {
                let status = reply.and_then(|r| r.status().ok());
                if status.as_ref().is_some_and(|s| !s.d2d) {
                    return self.after_t_failure(
                        cx,
                        "the destination modem is not running (it exited at or after T)".into(),
                    );
                }
                let active = status
                    .and_then(|s| s.modem)
                    .is_some_and(|m| m.mode == ModemMode::Active);
                if active && self.source_dead {
                    // Nothing to drain or fall back to: clean what the dead source left.
                    cx.phase(MBB_PHASES[14]);
                    self.s = S::Clean;
                    self.src(Request::DoubleKill)
                } else if active {
                    cx.phase(MBB_PHASES[12]);
                    self.s = S::Drain;
                    self.deadline = now + self.cfg.drain_timeout_ms;
                    self.src(Request::Status)
                } else if now >= self.deadline {
                    let why = e.unwrap_or_else(|| "destination not active".into());
                    self.after_t_failure(cx, format!("destination did not confirm: {why}"))
                } else {
                    self.s = S::ConfirmDestWait;
                    Step::WaitUntil(now + self.cfg.poll_ms)
                }
            }
            (S::ConfirmDestWait, _) => {
                self.s = S::ConfirmDest;
                self.dst(Request::Status)
            }
            (S::Drain, e) => {
                let drained = reply
                    .and_then(|r| r.status().ok())
                    .and_then(|s| s.modem)
                    .is_some_and(|m| m.mode == ModemMode::Released && m.forward_pending == 0);
                if drained || now >= self.deadline {
                    if !drained {
                        let why = e.unwrap_or_else(|| "packets still pending".into());
                        cx.warn(format!(
                            "mbb: source forwarding not confirmed drained: {why}"
                        ));
                    }
                    if self.cfg.fallback_grace_ms == 0 {
                        cx.phase(MBB_PHASES[14]);
                        self.s = S::Clean;
                        return self.src(Request::DoubleKill);
                    }
                    cx.phase(MBB_PHASES[13]);
                    self.s = S::Grace;
                    Step::WaitUntil(
                        (self.t_local_late + self.cfg.fallback_grace_ms + self.cfg.poll_ms)
                            .max(now + 1),
                    )
                } else {
                    self.s = S::DrainWait;
                    Step::WaitUntil(now + self.cfg.poll_ms)
                }
            }
            (S::DrainWait, _) => {
                self.s = S::Drain;
                self.src(Request::Status)
            }
            (S::Protect, None) => {
                // The standby role carries the RX copy: the shadow slot is freed for a
                // later make-before-break.
                self.s = S::Unshadowed;
                Step::radio(RadioOp::Unshadow { to: port })
            }
            (S::Unshadowed, e) => {
                if let Some(e) = e {
                    cx.warn(format!("protect: freeing the shadow copy failed: {e}"));
                }
                Step::Finish {
                    ok: true,
                    summary: format!("task protected: standby {port} is warm and the radio fails over to it when the primary falls silent"),
                    result: Some(json!({ "standby": port })),
                }
            }
            (S::Protect, Some(e)) => self.abort(cx, e),
            (S::Grace, _) => {
                self.s = S::GraceClock;
                Step::radio(RadioOp::Clock)
            }
            (S::GraceClock, e) => match (clock, e) {
                (Some(c), _) if c.primary.as_deref() == Some(port.as_str()) => {
                    cx.phase(MBB_PHASES[14]);
                    self.s = S::Clean;
                    self.src(Request::DoubleKill)
                }
                (Some(c), _) => {
                    let p = c.primary.unwrap_or_else(|| "none".into());
                    self.failure = Some(format!(
                        "the radio fell back from the destination during the grace (primary now {p})"
                    ));
                    self.s = S::KillDest;
                    self.dst(Request::KillD2d)
                }
                // The radio did not answer: both modems stay; the radio decides.
                (None, e) => self.failed_after_t(
                    cx,
                    format!(
                        "the radio did not answer after the grace ({}); both modems left running, the radio decides who serves",
                        e.unwrap_or_default()
                    ),
                ),
            },
            (S::Settle, _) => {
                self.s = S::SettleClock;
                Step::radio(RadioOp::Clock)
            }
            (S::SettleClock, e) => {
                let why = self.failure.clone().unwrap_or_default();
                match (clock, e) {
                    // The radio is the arbiter: past the grace it names the destination, so
                    // the destination transmits (or the radio would have fallen back) and
                    // the radio will never hand the task back to the released source. The
                    // move is done and verified by the radio; clean the source.
                    (Some(c), _) if c.primary.as_deref() == Some(port.as_str()) => {
                        cx.warn(format!(
                            "mbb: {why}; after the grace the radio still names the destination: it serves, the source is cleaned"
                        ));
                        self.confirmed_by_radio = Some(why);
                        cx.phase(MBB_PHASES[14]);
                        self.s = S::Clean;
                        self.src(Request::DoubleKill)
                    }
                    (Some(c), _) => {
                        let p = c.primary.unwrap_or_else(|| "none".into());
                        self.failure = Some(format!("{why}; the radio's primary is {p}"));
                        self.s = S::KillDest;
                        self.dst(Request::KillD2d)
                    }
                    (None, e) => self.failed_after_t(
                        cx,
                        format!(
                            "{why}; the radio did not answer ({}): both modems left running",
                            e.unwrap_or_default()
                        ),
                    ),
                }
            }
            (S::KillDest, e) => {
                let why = self.failure.clone().unwrap_or_default();
                cx.timeline.close(cx.now, false);
                let stopped = match e {
                    None => "destination stopped".to_string(),
                    Some(e) => format!("stopping the destination failed: {e}"),
                };
                Step::Finish {
                    ok: false,
                    summary: format!("mbb rolled back after T = {}: {why}; {stopped}", self.t),
                    result: Some(json!({ "cutover_sample": self.t, "fell_back": true })),
                }
            }
            (S::Clean, e) => {
                // Like MB's final kill_d2d: the move is done even if cleanup failed.
                if let Some(e) = &e {
                    cx.warn(format!("mbb: cleaning the source failed: {e}"));
                }
                // Said in the outcome too: the released source still runs until its agent
                // (restarted, if it died) stops a modem the radio has no role for.
                let unclean = e.map_or_else(String::new, |e| {
                    format!("; the source was not cleaned ({e}): its agent stops it when it answers again")
                });
                let summary = if let Some(why) = &self.confirmed_by_radio {
                    format!(
                        "task serves from the destination since sample {} (confirmed by the radio after the fallback grace, not by the destination: {why})",
                        self.t
                    )
                } else if self.source_dead {
                    format!(
                        "task serves from the destination since sample {} (the source's modem had died: the destination was promoted)",
                        self.t
                    )
                } else {
                    format!("task serves from the destination since sample {}", self.t)
                };
                Step::Finish {
                    ok: true,
                    summary: summary + &unclean,
                    result: Some(self.result()),
                }
            }
            // The radio answered that it refused the switch: nothing to cancel there (a
            // timeout instead may hide a switch that did get armed).
            (S::ArmRadio, Some(e)) if e.starts_with("radio: ") => {
                self.touched.radio_armed = false;
                self.abort(cx, e)
            }
            // Arming failed: the armed flag of the failed step stays set so its cancel is sent
            // (a lost reply may hide a command that did take effect).
            (
                S::ReadTun
                | S::ReadControl
                | S::SetTun
                | S::SetRoute
                | S::StartDest
                | S::Shadow
                | S::Clock
                | S::ArmDest
                | S::ArmRadio
                | S::ArmSource,
                Some(e),
            ) => self.abort(cx, e),
        }
    }
}

/// Text for a successful reply whose result did not parse.
fn bad_result<T>(r: Option<Result<T, String>>) -> String {
    match r {
        Some(Err(e)) => e,
        Some(Ok(_)) => "ok".into(),
        None => "no reply".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutover_sample_is_next_boundary() {
        // 1.92 Msps: 1920 samples per subframe, frame grid starting at 100.
        assert_eq!(cutover_sample(0, 0, 100, 1920), 100);
        assert_eq!(cutover_sample(100, 0, 100, 1920), 100);
        assert_eq!(cutover_sample(101, 0, 100, 1920), 2020);
        // earliest 48_400 lies 300 samples past a boundary (48_400 - 100 = 25 * 1920 + 300).
        assert_eq!(cutover_sample(10_000, 38_400, 100, 1920), 50_020);
        // Origin after the earliest time: boundaries repeat backwards too.
        assert_eq!(cutover_sample(0, 50, 3_000, 1_000), 1_000);
        assert_eq!(cutover_sample(u64::MAX - 5, 10, 0, 1920), u64::MAX);
        assert_eq!(cutover_sample(5, 0, 0, 0), 5);
    }

    proptest::proptest! {
        #[test]
        fn cutover_sample_properties(now in 0u64..1u64 << 50, margin in 0u64..1u64 << 30,
                                     origin in 0u64..1u64 << 50, sf in 1u64..100_000) {
            let t = cutover_sample(now, margin, origin, sf);
            proptest::prop_assert!(t >= now + margin);
            proptest::prop_assert!(t < now + margin + sf);
            proptest::prop_assert_eq!((t as i128 - origin as i128).rem_euclid(sf as i128), 0);
        }
    }
}

//! One emulated N210-class radio unit, sans-IO: power-up initialisation (once per lifetime,
//! counted), link state (primary host, shadow host, timed switch), the timestamped TX queue,
//! RX routing per tick, and the device counters. Time is always a sample time passed in.
//!
//! The unit is also **the arbiter of who serves** (docs/RADIO.md, "Arbiter"): every change of
//! primary carries a new epoch and queues a [`SwitchNotice`] for the hosts; an armed switch
//! can be cancelled until its instant; a planned switch may keep the previous primary as a
//! *fallback* for a grace period, and when the new primary then sends no TX for the liveness
//! interval the radio switches back at the next subframe boundary; a *standby* (protection)
//! gets RX copies and takes over the same way when the primary falls silent. A deposed
//! primary's TX is dropped and counted (fencing): it never reaches the air again.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use ferry_fronthaul::control::{Counters, ErrorCode, Reply};
use ferry_fronthaul::vrt::SampleTime;
use num_complex::Complex32;

use crate::config::RadioConfig;
use crate::rf::RfConfig;

/// Power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    /// Powered, running its one-time initialisation until `ready_at`.
    Initialising {
        /// Sample time at which init completes.
        ready_at: SampleTime,
    },
    /// Initialised: discoverable, linkable, streaming.
    Ready,
}

/// Samples queued from one host, keyed by the sample time of their first sample.
#[derive(Debug, Default)]
struct TxQueue {
    src: Option<SocketAddr>,
    /// The radio's channel (antenna) these samples go out on.
    channel: u8,
    /// Time of the first sample the host ever queued: from then on gaps count as underflow
    /// (as UHD counts underflows only inside a running stream)...
    streaming_from: Option<SampleTime>,
    /// ...except between bursts: from an end-of-burst mark to the next queued sample
    /// (closed intervals, oldest first, at most [`MAX_IDLE`]).
    idle: VecDeque<(SampleTime, SampleTime)>,
    /// An end of burst not followed by samples yet: idle from then on.
    idle_from: Option<SampleTime>,
    blocks: BTreeMap<SampleTime, Vec<Complex32>>,
}

/// Between-burst intervals kept per queue (a TDD host has about one per 5 ms; the radio's
/// horizon holds far fewer).
const MAX_IDLE: usize = 64;

impl TxQueue {
    /// How many samples of `[a, b)` the host was expected to cover: those since it started
    /// streaming, outside the silences it announced (end of burst to its next samples).
    fn expected(&self, a: SampleTime, b: SampleTime) -> u64 {
        let Some(from) = self.streaming_from else {
            return 0;
        };
        let a = a.max(from);
        if a >= b {
            return 0;
        }
        let overlap = |lo: SampleTime, hi: SampleTime| hi.min(b).saturating_sub(lo.max(a));
        let silent: u64 = self
            .idle
            .iter()
            .map(|&(lo, hi)| overlap(lo, hi))
            .sum::<u64>()
            + self.idle_from.map_or(0, |lo| overlap(lo, SampleTime::MAX));
        (b - a).saturating_sub(silent)
    }

    /// The host ended its burst at `at`.
    fn end_burst(&mut self, at: SampleTime) {
        self.idle_from = Some(self.idle_from.map_or(at, |e| e.min(at)));
    }

    /// Samples queued from `start` on: a burst that had ended is over at `start`.
    fn note_start(&mut self, start: SampleTime) {
        self.streaming_from.get_or_insert(start);
        if let Some(e) = self.idle_from {
            if start >= e {
                self.idle_from = None;
                if start > e {
                    if self.idle.len() >= MAX_IDLE {
                        self.idle.pop_front();
                    }
                    self.idle.push_back((e, start));
                }
            }
        }
    }
}

impl TxQueue {
    /// Copies queued samples overlapping `[a, b)` into `out` (indexed from `base`), removes
    /// blocks that end by `b`, and returns how many samples of the range were covered.
    fn fill(
        &mut self,
        a: SampleTime,
        b: SampleTime,
        base: SampleTime,
        out: &mut [Complex32],
    ) -> u64 {
        let mut covered = 0u64;
        for (&start, v) in self.blocks.range(..b) {
            let end = start + v.len() as u64;
            let lo = a.max(start);
            let hi = b.min(end);
            if lo >= hi {
                continue;
            }
            let src = v.get((lo - start) as usize..(hi - start) as usize);
            let dst = out.get_mut((lo - base) as usize..(hi - base) as usize);
            if let (Some(src), Some(dst)) = (src, dst) {
                dst.copy_from_slice(src);
                covered += hi - lo;
            }
        }
        self.blocks.retain(|&s, v| s + v.len() as u64 > b);
        covered.min(b - a)
    }
}

/// Where one part of a tick's RX goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxRoute {
    /// Destination host.
    pub to: SocketAddr,
    /// Offset of the first sample within the tick.
    pub offset: usize,
    /// Number of samples.
    pub len: usize,
    /// Primary delivery (false: shadow copy).
    pub primary: bool,
}

/// Why a TX datagram was not queued (for tests and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOutcome {
    /// Queued (possibly trimmed).
    Queued,
    /// Sender is not linked.
    Stranger,
    /// Entirely in the past.
    Late,
    /// Beyond the horizon.
    Early,
    /// Entirely on the wrong side of a switch instant.
    Trimmed,
    /// From a standby or fallback host: proves it alive; queued, played only if it takes
    /// over (so a takeover has no TX gap).
    Standby,
    /// From a deposed primary (stale epoch): dropped.
    Fenced,
    /// No samples: a host with a role proving itself alive in a subframe it has nothing to
    /// send (a slave without data, a master in an uplink subframe, a warm standby).
    Heartbeat,
}

/// Why the primary changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchKind {
    /// `link` / `unlink` by a host.
    Link,
    /// An armed `switch_at` reached its instant.
    Planned,
    /// The new primary sent nothing; the previous one serves again.
    Fallback,
    /// The primary sent nothing; the protecting standby serves.
    Failover,
}

/// An in-band announcement: from `from_sample` on, `primary` serves under `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchNotice {
    /// Epoch of the new assignment (strictly increasing per radio).
    pub epoch: u64,
    /// The host that serves from `from_sample` (None: nobody, after `unlink`).
    pub primary: Option<SocketAddr>,
    /// The host that served before.
    pub previous: Option<SocketAddr>,
    /// First sample of the new assignment.
    pub from_sample: SampleTime,
    /// Why.
    pub kind: SwitchKind,
    /// Fallback and failover: start sample of the newest TX datagram (data or heartbeat)
    /// taken from the previous primary (what the new primary may deliver from).
    pub previous_heard_tx: Option<SampleTime>,
    /// Fallback and failover: the previous primary's TX already queued is played up to
    /// this sample (a subframe boundary), instead of the new primary's filler.
    pub tail_until: Option<SampleTime>,
}

/// What a deposed primary had queued when the radio replaced it unplanned (fallback or
/// failover): TX it built while it was the primary, played until `until` where the new
/// primary, which learns of the switch only from the notice, has filler queued.
#[derive(Debug)]
struct Tail {
    until: SampleTime,
    queues: Vec<TxQueue>,
}

/// Counters of the arbiter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArbiterCounters {
    /// Switches back to the previous primary.
    pub fallbacks: u64,
    /// Switches to the protecting standby.
    pub failovers: u64,
    /// Armed switches cancelled before their instant.
    pub cancelled_switches: u64,
    /// TX datagrams from deposed primaries (dropped).
    pub fenced_packets: u64,
    /// TX datagrams from standby / fallback hosts (liveness only, dropped).
    pub standby_packets: u64,
    /// Times the primary fell silent with nobody to take over.
    pub silent_unprotected: u64,
    /// Switches made on a `primary_dead` report.
    pub reported_dead: u64,
    /// The latest fallback or failover: samples from the last TX datagram heard from the
    /// silent primary to the switch instant (detection and switch, on the radio's clock).
    pub last_silence_samples: u64,
    /// Samples played from a deposed primary's queued TX after a fallback or failover.
    pub tail_samples: u64,
}

/// The previous primary, kept warm after a planned switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fallback {
    host: SocketAddr,
    until: SampleTime,
}

/// How many deposed primaries are remembered for fencing counts.
const DEPOSED_KEPT: usize = 4;

/// An emulated radio unit.
#[derive(Debug)]
pub struct RadioUnit {
    /// Radio number (in stream IDs).
    pub number: u16,
    /// Channels (antennas), each its own stream.
    pub channels: u8,
    /// Name.
    pub name: String,
    /// Own fronthaul address.
    pub fronthaul: SocketAddr,
    /// RF parameters (validated).
    pub rf: RfConfig,
    /// Legacy mode host, if any.
    pub legacy_host: Option<SocketAddr>,
    /// Counters.
    pub counters: Counters,
    init_samples: u64,
    power: Power,
    primary: Option<SocketAddr>,
    shadow: Option<SocketAddr>,
    pending: Option<(SampleTime, SocketAddr)>,
    queues: Vec<TxQueue>,
    horizon: u64,
    /// A context packet should go out with the next RX (link or RX tuning changed).
    pub context_due: bool,
    /// A TX-stream context packet should go to the linked host (it asked to tune TX).
    pub tx_context_due: bool,
    /// RF parameters of the configuration (a power cycle restores them).
    configured_rf: RfConfig,
    /// Samples per subframe (switches the radio decides fall on subframe boundaries).
    subframe: u64,
    epoch: u64,
    pending_kind: SwitchKind,
    /// Grace period the pending planned switch keeps its old primary as fallback.
    pending_grace: u64,
    primary_since: SampleTime,
    previous: Option<Fallback>,
    standby: Option<SocketAddr>,
    /// When the task became protected (the standby was named), or unprotected.
    protection_since: SampleTime,
    deposed: Vec<SocketAddr>,
    /// Each known host: radio time at which its last TX datagram arrived, and the newest
    /// start sample of its TX datagrams (data or heartbeat).
    heard: Vec<(SocketAddr, SampleTime, SampleTime)>,
    /// A deposed primary's TX still played after a fallback or failover.
    tail: Option<Tail>,
    /// A primary silent for more than this many samples is dead (0: never declared).
    liveness: u64,
    /// Liveness while a fallback is in its grace (a make-before-break destination just
    /// took over): longer, as a false fallback undoes a whole migration.
    fallback_liveness: u64,
    /// The primary's current silence was already counted as `silent_unprotected`.
    silence_counted: bool,
    notices: Vec<SwitchNotice>,
    /// Arbiter counters.
    pub arbiter: ArbiterCounters,
}

/// Which local oscillator a tuning request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lo {
    /// The transmitter's (TX/RX port).
    Tx,
    /// The receiver's.
    Rx,
}

enum Role {
    Primary,
    Incoming(SampleTime),
    Standby,
}

impl RadioUnit {
    /// Powers the radio up at sample time `now`: initialisation starts (count 1).
    pub fn power_up(
        cfg: &RadioConfig,
        number: u16,
        rate: u32,
        horizon: u64,
        now: SampleTime,
    ) -> Self {
        let init_samples = cfg.init_ms.saturating_mul(u64::from(rate)) / 1000;
        let mut u = Self {
            number,
            channels: cfg.channels.max(1),
            name: cfg.name.clone(),
            fronthaul: cfg.fronthaul,
            rf: cfg.rf.clone(),
            configured_rf: cfg.rf.clone(),
            legacy_host: cfg.legacy_host,
            counters: Counters::default(),
            init_samples,
            power: Power::Ready,
            primary: None,
            shadow: None,
            pending: None,
            queues: Vec::new(),
            horizon,
            context_due: true,
            tx_context_due: false,
            subframe: (u64::from(rate) / 1000).max(1),
            epoch: 0,
            pending_kind: SwitchKind::Planned,
            pending_grace: 0,
            primary_since: now,
            previous: None,
            standby: None,
            protection_since: now,
            deposed: Vec::new(),
            heard: Vec::new(),
            tail: None,
            liveness: 0,
            fallback_liveness: 0,
            silence_counted: false,
            notices: Vec::new(),
            arbiter: ArbiterCounters::default(),
        };
        u.start_init(now);
        u
    }

    fn start_init(&mut self, now: SampleTime) {
        self.counters.init_count += 1;
        self.power = if self.init_samples == 0 {
            Power::Ready
        } else {
            Power::Initialising {
                ready_at: now + self.init_samples,
            }
        };
        self.primary = None;
        self.shadow = None;
        self.pending = None;
        self.queues.clear();
        self.rf = self.configured_rf.clone();
        self.context_due = true;
        self.previous = None;
        self.standby = None;
        self.heard.clear();
        self.tail = None;
    }

    /// Retunes one LO (`set_tx_freq` / `set_rx_freq`) to `hz`, validated against the
    /// device's range; an invalid value leaves the LO where it was. Either way the host is
    /// answered with a context packet carrying the LO's actual frequency. Returns whether
    /// the frequency changed.
    pub fn tune(&mut self, lo: Lo, hz: f64) -> bool {
        let mut next = self.rf.clone();
        match lo {
            Lo::Tx => next.tx_freq_hz = hz,
            Lo::Rx => next.rx_freq_hz = hz,
        }
        match lo {
            Lo::Tx => self.tx_context_due = true,
            Lo::Rx => self.context_due = true,
        }
        if next.validate().is_err() || next == self.rf {
            return false;
        }
        self.rf = next;
        true
    }

    /// Advances initialisation to sample time `now`.
    pub fn poll_power(&mut self, now: SampleTime) {
        if let Power::Initialising { ready_at } = self.power {
            if now >= ready_at {
                self.power = Power::Ready;
            }
        }
    }

    /// Current power state.
    pub fn power(&self) -> Power {
        self.power
    }
    /// Initialised and serving.
    pub fn is_ready(&self) -> bool {
        self.power == Power::Ready
    }
    /// Primary host.
    pub fn linked(&self) -> Option<SocketAddr> {
        self.legacy_host.or(self.primary)
    }
    /// Shadow host.
    pub fn shadow(&self) -> Option<SocketAddr> {
        self.shadow
    }
    /// Pending switch.
    pub fn pending_switch(&self) -> Option<(SampleTime, SocketAddr)> {
        self.pending
    }

    fn not_ready(&self) -> Option<Reply> {
        match self.power {
            Power::Ready => None,
            Power::Initialising { ready_at } => Some(Reply::error(
                ErrorCode::NotReady,
                format!(
                    "radio {} is initialising until sample {ready_at}",
                    self.name
                ),
            )),
        }
    }

    fn legacy_refusal(&self) -> Option<Reply> {
        self.legacy_host.map(|h| {
            Reply::error(
                ErrorCode::Refused,
                format!(
                    "radio {} is in legacy mode: it streams to whichever host holds {}",
                    self.name,
                    h.ip()
                ),
            )
        })
    }

    fn done(&self, now: SampleTime) -> Reply {
        Reply::Done {
            radio: self.name.clone(),
            sample_time: now,
        }
    }

    /// `link(endpoint)`: effective from sample `now` (the next tick).
    pub fn link(&mut self, endpoint: SocketAddr, now: SampleTime) -> Reply {
        if let Some(r) = self.not_ready().or_else(|| self.legacy_refusal()) {
            return r;
        }
        if self.primary != Some(endpoint) {
            self.queues.retain(|q| q.src == Some(endpoint));
            self.tail = None;
        }
        let previous = self.primary.replace(endpoint);
        self.pending = None;
        self.previous = None;
        if self.shadow == Some(endpoint) {
            self.shadow = None;
        }
        if self.standby == Some(endpoint) {
            self.standby = None;
        }
        self.deposed.retain(|d| *d != endpoint);
        self.primary_since = now;
        self.silence_counted = false;
        self.announce(SwitchKind::Link, previous, now);
        self.context_due = true;
        self.done(now)
    }

    /// `unlink`: stop streaming and accepting TX.
    pub fn unlink(&mut self, only_if: Option<SocketAddr>, now: SampleTime) -> Reply {
        if let Some(r) = self.not_ready().or_else(|| self.legacy_refusal()) {
            return r;
        }
        if only_if.is_some() && only_if != self.primary {
            return Reply::error(
                ErrorCode::Refused,
                format!("radio {} is not linked to {:?}", self.name, only_if),
            );
        }
        let previous = self.primary.take();
        self.pending = None;
        self.previous = None;
        self.queues.clear();
        self.tail = None;
        self.announce(SwitchKind::Link, previous, now);
        self.done(now)
    }

    /// `shadow(endpoint)`: copy RX to a second host (None stops it).
    pub fn set_shadow(&mut self, endpoint: Option<SocketAddr>, now: SampleTime) -> Reply {
        if let Some(r) = self.not_ready() {
            return r;
        }
        self.shadow = endpoint;
        self.context_due = true;
        self.done(now)
    }

    /// `unshadow(endpoint)`: stop the RX copy to `endpoint`, refused when the radio does
    /// not copy to it (another host's shadow stays).
    pub fn unshadow(&mut self, endpoint: SocketAddr, now: SampleTime) -> Reply {
        if let Some(r) = self.not_ready() {
            return r;
        }
        if self.shadow != Some(endpoint) {
            return Reply::error(
                ErrorCode::Refused,
                format!(
                    "radio {} does not shadow to {endpoint} (shadow: {:?})",
                    self.name, self.shadow
                ),
            );
        }
        self.set_shadow(None, now)
    }

    /// `switch_at(at, endpoint)`; `now` is the first sample not yet on the air.
    pub fn switch_at(&mut self, at: SampleTime, endpoint: SocketAddr, now: SampleTime) -> Reply {
        self.switch_at_with_fallback(at, endpoint, now, 0)
    }

    /// `switch_at` that keeps the old primary as a fallback for `grace` samples after `at`:
    /// it goes on receiving RX copies, and if the new primary sends no TX for the liveness
    /// interval within the grace period, the radio switches back to it.
    pub fn switch_at_with_fallback(
        &mut self,
        at: SampleTime,
        endpoint: SocketAddr,
        now: SampleTime,
        grace: u64,
    ) -> Reply {
        if let Some(r) = self.not_ready().or_else(|| self.legacy_refusal()) {
            return r;
        }
        if self.primary.is_none() {
            return Reply::error(
                ErrorCode::Refused,
                format!("radio {} is not linked; use link", self.name),
            );
        }
        if at < now {
            return Reply::error(
                ErrorCode::Refused,
                format!("switch time {at} already past (air is at sample {now})"),
            );
        }
        self.pending = Some((at, endpoint));
        self.pending_kind = SwitchKind::Planned;
        self.pending_grace = grace;
        // What the incoming host queued before `at` is not its to send. The old primary's
        // samples from `at` on stay queued until the switch happens (a cancel then loses
        // nothing); only its own side of `at` is ever played.
        let old = self.primary;
        let mut dropped = 0;
        if old != Some(endpoint) {
            for q in self.queues.iter_mut().filter(|q| q.src == Some(endpoint)) {
                for (s, mut v) in std::mem::take(&mut q.blocks) {
                    let end = s + v.len() as u64;
                    let cut = (at.clamp(s, end) - s) as usize;
                    dropped += cut as u64;
                    v.drain(..cut);
                    if !v.is_empty() {
                        q.blocks.insert(s.max(at), v);
                    }
                }
            }
        }
        self.counters.switch_trimmed_samples += dropped;
        Reply::Scheduled {
            radio: self.name.clone(),
            at,
            now,
        }
    }

    /// Power-cycles the radio: it re-initialises (counted) and forgets its links.
    pub fn reset(&mut self, now: SampleTime) -> Reply {
        let previous = self.primary;
        self.start_init(now);
        self.announce(SwitchKind::Link, previous, now);
        self.done(now)
    }

    /// `cancel_switch`: disarms a pending planned switch whose instant has not come yet.
    /// The old primary keeps serving without a gap (its TX from the instant on was kept).
    pub fn cancel_switch(&mut self, now: SampleTime) -> Reply {
        if let Some(r) = self.not_ready().or_else(|| self.legacy_refusal()) {
            return r;
        }
        match self.pending {
            None => Reply::error(
                ErrorCode::Refused,
                format!("radio {} has no switch armed", self.name),
            ),
            Some(_) if self.pending_kind != SwitchKind::Planned => Reply::error(
                ErrorCode::Refused,
                format!(
                    "radio {}: the pending switch is the radio's own {:?}, not a host's",
                    self.name, self.pending_kind
                ),
            ),
            Some((at, _)) if at <= now => Reply::error(
                ErrorCode::Refused,
                format!("switch at {at} already on the air (air is at sample {now})"),
            ),
            Some((_, new)) => {
                self.pending = None;
                if Some(new) != self.primary {
                    let mut dropped = 0u64;
                    self.queues.retain(|q| {
                        let mine = q.src == Some(new);
                        if mine {
                            dropped += q.blocks.values().map(|v| v.len() as u64).sum::<u64>();
                        }
                        !mine
                    });
                    self.counters.switch_trimmed_samples += dropped;
                }
                self.arbiter.cancelled_switches += 1;
                self.done(now)
            }
        }
    }

    /// `protect(standby)`: the standby gets RX copies and takes over at the next subframe
    /// boundary when the primary sends no TX for the liveness interval (None: unprotect).
    pub fn protect(&mut self, standby: Option<SocketAddr>, now: SampleTime) -> Reply {
        if let Some(r) = self.not_ready().or_else(|| self.legacy_refusal()) {
            return r;
        }
        if standby.is_some() && standby == self.primary {
            return Reply::error(
                ErrorCode::Refused,
                format!("radio {}: the primary cannot be its own standby", self.name),
            );
        }
        if self.standby != standby {
            self.protection_since = now;
        }
        self.standby = standby;
        if let Some(s) = standby {
            self.deposed.retain(|d| *d != s);
        }
        self.context_due = true;
        self.done(now)
    }

    /// `primary_dead(endpoint)`: a host reports its task at `endpoint` dead. When it is still
    /// the primary and a standby (or a fallback heard within the liveness interval) can take
    /// over, the switch happens at the next subframe boundary, with a new epoch and an
    /// in-band notice, exactly as the liveness check would make it later.
    pub fn primary_dead(&mut self, endpoint: SocketAddr, now: SampleTime) -> Reply {
        if let Some(r) = self.not_ready().or_else(|| self.legacy_refusal()) {
            return r;
        }
        if self.primary != Some(endpoint) {
            return Reply::error(
                ErrorCode::Refused,
                format!(
                    "radio {}: {endpoint} is not the primary ({}; a stale report deposes nobody)",
                    self.name,
                    self.primary
                        .map_or_else(|| "none".to_string(), |p| format!("{p} is")),
                ),
            );
        }
        if self.pending.is_some() {
            return Reply::error(
                ErrorCode::Refused,
                format!("radio {}: a switch is already pending", self.name),
            );
        }
        let last = self.heard_at(endpoint).unwrap_or(0).max(self.primary_since);
        if !self.fail_over_from(now, last) {
            return Reply::error(
                ErrorCode::Refused,
                format!(
                    "radio {}: nobody to take over from {endpoint} (no standby, no live fallback)",
                    self.name
                ),
            );
        }
        self.arbiter.reported_dead += 1;
        self.done(now)
    }

    /// Sets the liveness interval in subframes (0: a silent primary is never declared dead).
    pub fn set_liveness_subframes(&mut self, subframes: u64) {
        self.liveness = subframes.saturating_mul(self.subframe);
    }

    /// Sets the liveness interval used while a fallback is in its grace, in subframes
    /// (0: the same as [`RadioUnit::set_liveness_subframes`]).
    pub fn set_fallback_liveness_subframes(&mut self, subframes: u64) {
        self.fallback_liveness = subframes.saturating_mul(self.subframe);
    }

    /// The interval after which a silent primary is dead now: the fallback's while a
    /// fallback is in its grace, else the liveness interval.
    fn liveness_now(&self) -> u64 {
        if self.previous.is_some() && self.fallback_liveness > 0 {
            self.fallback_liveness.max(self.liveness)
        } else {
            self.liveness
        }
    }

    /// The liveness interval in samples (0: off).
    pub fn liveness_samples(&self) -> u64 {
        self.liveness
    }

    /// Since when the task has been protected (a standby named) or unprotected (none, or
    /// the standby took over).
    pub fn protection_since(&self) -> SampleTime {
        self.protection_since
    }

    /// First sample of the current assignment.
    pub fn primary_since(&self) -> SampleTime {
        self.primary_since
    }

    /// Current epoch (increases at every change of primary).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The protecting standby.
    pub fn standby(&self) -> Option<SocketAddr> {
        self.standby
    }

    /// The previous primary still kept as a fallback, and until which sample.
    pub fn fallback(&self) -> Option<(SocketAddr, SampleTime)> {
        self.previous.map(|f| (f.host, f.until))
    }

    /// Notices queued since the last call, oldest first.
    pub fn take_notices(&mut self) -> Vec<SwitchNotice> {
        std::mem::take(&mut self.notices)
    }

    fn announce(&mut self, kind: SwitchKind, previous: Option<SocketAddr>, from: SampleTime) {
        self.announce_with(kind, previous, from, None, None);
    }

    fn announce_with(
        &mut self,
        kind: SwitchKind,
        previous: Option<SocketAddr>,
        from: SampleTime,
        previous_heard_tx: Option<SampleTime>,
        tail_until: Option<SampleTime>,
    ) {
        self.epoch += 1;
        if self.notices.len() < 64 {
            self.notices.push(SwitchNotice {
                epoch: self.epoch,
                primary: self.primary,
                previous,
                from_sample: from,
                kind,
                previous_heard_tx,
                tail_until,
            });
        }
        self.context_due = true;
    }

    fn heard_at(&self, host: SocketAddr) -> Option<SampleTime> {
        self.heard
            .iter()
            .find(|(h, _, _)| *h == host)
            .map(|(_, t, _)| *t)
    }

    /// The newest start sample of `host`'s TX datagrams.
    fn heard_tx(&self, host: SocketAddr) -> Option<SampleTime> {
        self.heard
            .iter()
            .find(|(h, _, _)| *h == host)
            .map(|(_, _, s)| *s)
    }

    fn note_heard(&mut self, host: SocketAddr, now: SampleTime, tx_start: SampleTime) {
        match self.heard.iter_mut().find(|(h, _, _)| *h == host) {
            Some(e) => {
                e.1 = e.1.max(now);
                e.2 = e.2.max(tx_start);
            }
            None => {
                if self.heard.len() >= 8 {
                    self.heard.remove(0);
                }
                self.heard.push((host, now, tx_start));
            }
        }
    }

    fn depose(&mut self, host: Option<SocketAddr>) {
        if let Some(h) = host {
            self.deposed.retain(|d| *d != h);
            if self.deposed.len() >= DEPOSED_KEPT {
                self.deposed.remove(0);
            }
            self.deposed.push(h);
        }
    }

    fn role(&self, src: SocketAddr) -> Option<(Role, SocketAddr)> {
        if let Some(h) = self.legacy_host {
            // An N210 takes TX from its host's IP whatever the source port.
            return (src.ip() == h.ip()).then_some((Role::Primary, SocketAddr::new(h.ip(), 0)));
        }
        if self.primary == Some(src) {
            return Some((Role::Primary, src));
        }
        match self.pending {
            Some((at, new)) if new == src => return Some((Role::Incoming(at), src)),
            _ => {}
        }
        let standing_by = self.standby == Some(src) || self.previous.is_some_and(|f| f.host == src);
        standing_by.then_some((Role::Standby, src))
    }

    /// Whether TX from `src` would be looked at (used to count strangers before parsing): a
    /// host with a role, or a deposed primary (its packets are counted as fenced).
    pub fn accepts_from(&self, src: SocketAddr) -> bool {
        self.is_ready() && (self.role(src).is_some() || self.deposed.contains(&src))
    }

    /// Queues a TX block from `src` whose first sample is at `start`; `now` is the first
    /// sample time not yet mixed into the air.
    pub fn accept_tx(
        &mut self,
        src: SocketAddr,
        start: SampleTime,
        samples: Vec<Complex32>,
        now: SampleTime,
    ) -> TxOutcome {
        self.accept_tx_heard(src, start, samples, now, now)
    }

    /// [`RadioUnit::accept_tx`] with the datagram's arrival on the radio's clock as the
    /// host's proof of life (`heard`): when the radio's own loop ran late and catches up,
    /// its tick time lags the wall clock, and a datagram that arrived during the stall must
    /// not look older than it is (the liveness check would declare a live primary dead).
    pub fn accept_tx_heard(
        &mut self,
        src: SocketAddr,
        start: SampleTime,
        samples: Vec<Complex32>,
        now: SampleTime,
        heard: SampleTime,
    ) -> TxOutcome {
        self.accept_tx_channel(src, 0, start, samples, now, heard)
    }

    /// [`RadioUnit::accept_tx_heard`] for channel (antenna) `channel` of a multi-channel
    /// radio (the caller checked that the radio has it). Each channel has its own queue per
    /// host; ownership, switches and liveness are the host's, for all channels at once.
    pub fn accept_tx_channel(
        &mut self,
        src: SocketAddr,
        channel: u8,
        start: SampleTime,
        mut samples: Vec<Complex32>,
        now: SampleTime,
        heard: SampleTime,
    ) -> TxOutcome {
        let Some((role, key)) = self.role(src).filter(|_| self.is_ready()) else {
            if self.deposed.contains(&src) {
                self.arbiter.fenced_packets += 1;
                return TxOutcome::Fenced;
            }
            self.counters.stranger_packets += 1;
            return TxOutcome::Stranger;
        };
        self.note_heard(key, heard.max(now), start);
        if samples.is_empty() {
            return TxOutcome::Heartbeat;
        }
        let standby = matches!(role, Role::Standby);
        let mut start = start;
        let len = samples.len() as u64;
        let end = start.saturating_add(len);
        if end <= now {
            self.counters.late_packets += 1;
            self.counters.late_samples += len;
            return TxOutcome::Late;
        }
        if start < now {
            self.counters.late_packets += 1;
            self.counters.late_samples += now - start;
            samples.drain(..(now - start) as usize);
            start = now;
        }
        if start > now.saturating_add(self.horizon) {
            self.counters.early_packets += 1;
            return TxOutcome::Early;
        }
        // Packets straddling a switch instant: the incoming host owns its side only; the
        // outgoing primary's samples past the instant stay queued (played only if the
        // switch is cancelled, counted as trimmed when it happens).
        match (role, self.pending) {
            (Role::Incoming(at), _) if start < at => {
                let cut = ((at - start) as usize).min(samples.len());
                self.counters.switch_trimmed_samples += cut as u64;
                samples.drain(..cut);
                start = at;
            }
            _ => {}
        }
        if samples.is_empty() {
            return TxOutcome::Trimmed;
        }
        if standby {
            // Queued but played only if it takes over: a takeover then has no TX gap.
            self.arbiter.standby_packets += 1;
        } else {
            self.counters.tx_packets += 1;
        }
        let q = match self
            .queues
            .iter()
            .position(|q| q.src == Some(key) && q.channel == channel)
        {
            Some(i) => &mut self.queues[i],
            None => {
                self.queues.push(TxQueue {
                    src: Some(key),
                    channel,
                    ..Default::default()
                });
                let last = self.queues.len() - 1;
                &mut self.queues[last]
            }
        };
        q.note_start(start);
        q.blocks.insert(start, samples);
        if standby {
            TxOutcome::Standby
        } else {
            TxOutcome::Queued
        }
    }

    /// `src` ended its TX burst on `channel` at sample `at` (an end-of-burst packet, VITA-49
    /// header bit 24 as UHD sends it): the silence from `at` to its next samples is not an
    /// underflow. From a host without a queue on that channel: nothing to end.
    pub fn end_burst(&mut self, src: SocketAddr, channel: u8, at: SampleTime) {
        let Some((_, key)) = self.role(src).filter(|_| self.is_ready()) else {
            return;
        };
        if let Some(q) = self
            .queues
            .iter_mut()
            .find(|q| q.src == Some(key) && q.channel == channel)
        {
            q.end_burst(at);
        }
    }

    fn owners(
        &self,
        t0: SampleTime,
        n: usize,
    ) -> [(Option<SocketAddr>, SampleTime, SampleTime); 2] {
        let t1 = t0 + n as u64;
        if let Some(h) = self.legacy_host {
            return [(Some(h), t0, t1), (None, t1, t1)];
        }
        match self.pending {
            Some((at, new)) if at < t1 => {
                let s = at.max(t0);
                [(self.primary, t0, s), (Some(new), s, t1)]
            }
            _ => [(self.primary, t0, t1), (None, t1, t1)],
        }
    }

    /// Fills `out` (the tick's `n = out.len()` samples from `t0`) with what this radio
    /// transmits: each sample from the host that owns it, zeros where TX is missing.
    pub fn take_tx(&mut self, t0: SampleTime, out: &mut [Complex32]) {
        self.take_tx_channel(t0, 0, out);
    }

    /// [`RadioUnit::take_tx`] for channel `channel`. Underflows and `tx_samples` are counted
    /// on channel 0 only (they count sample times, not antennas).
    pub fn take_tx_channel(&mut self, t0: SampleTime, channel: u8, out: &mut [Complex32]) {
        out.fill(Complex32::new(0.0, 0.0));
        if !self.is_ready() {
            return;
        }
        let n = out.len();
        for (owner, a, b) in self.owners(t0, n) {
            let Some(owner) = owner else { continue };
            if a >= b {
                continue;
            }
            let key = if self.legacy_host.is_some() {
                SocketAddr::new(owner.ip(), 0)
            } else {
                owner
            };
            let Some(q) = self
                .queues
                .iter_mut()
                .find(|q| q.src == Some(key) && q.channel == channel)
            else {
                continue;
            };
            let covered = q.fill(a, b, t0, out);
            if channel > 0 {
                continue;
            }
            self.counters.tx_samples += covered;
            let expected = q.expected(a, b);
            if covered < expected {
                self.counters.underflow_events += 1;
                self.counters.underflow_samples += expected - covered;
            }
        }
        let t1 = t0 + n as u64;
        for q in self.queues.iter_mut().filter(|q| q.channel == channel) {
            q.blocks.retain(|&s, v| s + v.len() as u64 > t1);
            while q.idle.front().is_some_and(|&(_, hi)| hi <= t1) {
                q.idle.pop_front();
            }
        }
        // A deposed primary's queued TX, over the new primary's filler, until its end.
        if let Some(tail) = self.tail.as_mut() {
            let b = t1.min(tail.until);
            if let Some(q) = tail.queues.iter_mut().find(|q| q.channel == channel) {
                if t0 < b {
                    let covered = q.fill(t0, b, t0, out);
                    if channel == 0 {
                        self.arbiter.tail_samples += covered;
                    }
                }
            }
        }
    }

    /// Where the RX of the tick `[t0, t0 + n)` goes. Split at a switch instant; the shadow
    /// gets every part it does not already get as primary.
    pub fn rx_routes(&self, t0: SampleTime, n: usize) -> Vec<RxRoute> {
        let mut routes = Vec::new();
        if !self.is_ready() {
            return routes;
        }
        // Copies go to the shadow (a make-before-break destination), the protecting
        // standby and the fallback host, each once, for every part it does not own.
        let mut copies: [Option<SocketAddr>; 3] =
            [self.shadow, self.standby, self.previous.map(|f| f.host)];
        for i in 1..copies.len() {
            if copies[..i].contains(&copies[i]) {
                copies[i] = None;
            }
        }
        let owners = self.owners(t0, n);
        for (owner, a, b) in owners {
            if a >= b {
                continue;
            }
            if let Some(to) = owner {
                routes.push(RxRoute {
                    to,
                    offset: (a - t0) as usize,
                    len: (b - a) as usize,
                    primary: true,
                });
            }
        }
        for to in copies.into_iter().flatten() {
            for (owner, a, b) in owners {
                if a < b && owner != Some(to) {
                    routes.push(RxRoute {
                        to,
                        offset: (a - t0) as usize,
                        len: (b - a) as usize,
                        primary: false,
                    });
                }
            }
        }
        routes
    }

    /// Ends the tick that finishes at `t1`: a switch due by then takes effect; a silent
    /// primary is replaced by its fallback or standby at the next subframe boundary.
    pub fn end_tick(&mut self, t1: SampleTime) {
        if self.tail.as_ref().is_some_and(|t| t.until <= t1) {
            self.tail = None;
        }
        if let Some((at, new)) = self.pending {
            if at <= t1 {
                self.apply_switch(at, new);
            }
        }
        if self.previous.is_some_and(|f| t1 >= f.until) {
            self.previous = None;
        }
        self.check_liveness(t1);
    }

    fn apply_switch(&mut self, at: SampleTime, new: SocketAddr) {
        let kind = self.pending_kind;
        let old = self.primary.replace(new);
        self.pending = None;
        if self.shadow == Some(new) {
            self.shadow = None;
        }
        if self.standby == Some(new) {
            self.standby = None;
            // The standby took over: unprotected from now until a new one is named.
            self.protection_since = at;
        }
        let unplanned = matches!(kind, SwitchKind::Fallback | SwitchKind::Failover);
        let mut tail_until = None;
        let previous_heard_tx = old
            .filter(|o| unplanned && *o != new)
            .and_then(|o| self.heard_tx(o));
        if old != Some(new) {
            let (mut theirs, ours): (Vec<TxQueue>, Vec<TxQueue>) = std::mem::take(&mut self.queues)
                .into_iter()
                .partition(|q| q.src == old);
            self.queues = ours;
            // An unplanned switch keeps what the silent primary had queued from the instant
            // on, in whole subframes without a gap: it built that TX while it was the
            // primary, and the new one learns of the switch only from the notice (its TX
            // queued for those subframes is filler). A planned switch's source transmits
            // nothing past T, so nothing of it is kept.
            if unplanned {
                let mut end = at;
                if let Some(q) = theirs.iter().find(|q| q.channel == 0) {
                    for (&s, v) in q.blocks.range(..) {
                        let e = s + v.len() as u64;
                        if e <= end {
                            continue;
                        }
                        if s > end {
                            break;
                        }
                        end = e;
                    }
                }
                let until = end / self.subframe.max(1) * self.subframe.max(1);
                if until > at {
                    tail_until = Some(until);
                }
            }
            let keep = tail_until.unwrap_or(at);
            let mut dropped = 0u64;
            for q in theirs.iter_mut() {
                for (&s, v) in q.blocks.iter_mut() {
                    let e = s + v.len() as u64;
                    dropped += e.saturating_sub(keep.max(s));
                    if e > keep {
                        v.truncate(keep.saturating_sub(s) as usize);
                    }
                }
                q.blocks.retain(|_, v| !v.is_empty());
            }
            self.counters.switch_trimmed_samples += dropped;
            self.tail = tail_until.map(|until| Tail {
                until,
                queues: theirs,
            });
        }
        self.primary_since = at;
        self.previous = None;
        self.silence_counted = false;
        match kind {
            SwitchKind::Planned | SwitchKind::Link => {
                if let Some(o) = old.filter(|o| *o != new && self.pending_grace > 0) {
                    self.previous = Some(Fallback {
                        host: o,
                        until: at.saturating_add(self.pending_grace),
                    });
                }
            }
            SwitchKind::Fallback => {
                self.arbiter.fallbacks += 1;
                self.depose(old);
            }
            SwitchKind::Failover => {
                self.arbiter.failovers += 1;
                self.standby = None;
                self.depose(old);
            }
        }
        self.deposed.retain(|d| *d != new);
        self.announce_with(kind, old, at, previous_heard_tx, tail_until);
    }

    fn check_liveness(&mut self, t1: SampleTime) {
        let Some(primary) = self.primary else { return };
        if self.liveness == 0 || self.pending.is_some() || self.legacy_host.is_some() {
            return;
        }
        let last = self.heard_at(primary).unwrap_or(0).max(self.primary_since);
        if t1.saturating_sub(last) <= self.liveness_now() {
            self.silence_counted = false;
            return;
        }
        if !self.fail_over_from(t1, last) && !self.silence_counted {
            // Nobody to take over: count it once per silence (a standby protecting it
            // later still takes over).
            self.arbiter.silent_unprotected += 1;
            self.silence_counted = true;
        }
    }

    /// The primary (last heard at `last`) is dead at `t1`: arm the switch to a live fallback,
    /// else the standby, at the next subframe boundary (applied now if `t1` is one). False
    /// when nobody can take over.
    fn fail_over_from(&mut self, t1: SampleTime, last: SampleTime) -> bool {
        let boundary = t1.div_ceil(self.subframe) * self.subframe;
        let live = self.liveness_now().max(self.subframe);
        let alive = |h: SocketAddr| {
            self.heard_at(h)
                .is_some_and(|t| t1.saturating_sub(t) <= live)
        };
        let (to, kind) = match (self.previous, self.standby) {
            (Some(f), _) if alive(f.host) => (f.host, SwitchKind::Fallback),
            (_, Some(s)) => (s, SwitchKind::Failover),
            _ => return false,
        };
        self.pending = Some((boundary, to));
        self.pending_kind = kind;
        self.pending_grace = 0;
        self.arbiter.last_silence_samples = boundary.saturating_sub(last);
        if boundary <= t1 {
            self.apply_switch(boundary, to);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(init_ms: u64) -> RadioConfig {
        crate::config::AirConfig::default().radios[0]
            .clone()
            .with_init(init_ms)
    }

    impl RadioConfig {
        fn with_init(mut self, ms: u64) -> Self {
            self.init_ms = ms;
            self
        }
    }

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    fn c(v: f32) -> Complex32 {
        Complex32::new(v, 0.0)
    }

    fn ramp(start: u64, n: usize, tag: f32) -> Vec<Complex32> {
        (0..n)
            .map(|i| Complex32::new(tag, (start + i as u64) as f32))
            .collect()
    }

    #[test]
    fn init_once_and_relink_does_not_reinit() {
        let mut u = RadioUnit::power_up(&cfg(1000), 0, 1920, 1920, 0);
        assert_eq!(u.counters.init_count, 1);
        assert!(matches!(
            u.link(addr(1), 0),
            Reply::Error {
                code: ErrorCode::NotReady,
                ..
            }
        ));
        u.poll_power(1919);
        assert!(!u.is_ready());
        u.poll_power(1920);
        assert!(u.is_ready());
        for i in 0..5 {
            assert!(matches!(u.link(addr(i), 2000), Reply::Done { .. }));
            assert!(matches!(u.unlink(None, 2000), Reply::Done { .. }));
        }
        assert_eq!(u.counters.init_count, 1);
        u.reset(3000);
        assert_eq!(u.counters.init_count, 2);
        assert!(!u.is_ready());
    }

    #[test]
    fn late_early_stranger_and_underflow_are_counted() {
        let mut u = RadioUnit::power_up(&cfg(0), 0, 1000, 100, 0);
        u.link(addr(1), 0);
        assert_eq!(
            u.accept_tx(addr(9), 0, vec![c(1.0); 4], 0),
            TxOutcome::Stranger
        );
        assert_eq!(u.counters.stranger_packets, 1);
        assert_eq!(
            u.accept_tx(addr(1), 10, vec![c(1.0); 4], 20),
            TxOutcome::Late
        );
        assert_eq!(
            u.accept_tx(addr(1), 18, vec![c(2.0); 4], 20),
            TxOutcome::Queued
        );
        assert_eq!((u.counters.late_packets, u.counters.late_samples), (2, 6));
        assert_eq!(
            u.accept_tx(addr(1), 500, vec![c(1.0); 4], 20),
            TxOutcome::Early
        );
        let mut out = vec![c(9.0); 10];
        u.take_tx(20, &mut out);
        assert_eq!(&out[..2], &[c(2.0), c(2.0)]);
        assert_eq!(out[2], c(0.0));
        assert_eq!(
            (u.counters.underflow_events, u.counters.underflow_samples),
            (1, 8)
        );
        assert_eq!(u.counters.tx_samples, 2);
    }

    #[test]
    fn silence_after_an_end_of_burst_is_not_an_underflow_but_a_hole_inside_a_burst_is() {
        // A TDD host: bursts [100, 120) and [140, 160), ended by end-of-burst marks.
        let mut u = RadioUnit::power_up(&cfg(0), 0, 1000, 1000, 0);
        u.link(addr(1), 0);
        assert_eq!(
            u.accept_tx(addr(1), 100, vec![c(1.0); 20], 0),
            TxOutcome::Queued
        );
        u.end_burst(addr(1), 0, 120);
        assert_eq!(
            u.accept_tx(addr(1), 140, vec![c(2.0); 20], 0),
            TxOutcome::Queued
        );
        u.end_burst(addr(1), 0, 160);
        let mut out = vec![c(9.0); 100];
        u.take_tx(100, &mut out);
        assert_eq!(
            (out[19], out[20], out[40], out[60]),
            (c(1.0), c(0.0), c(2.0), c(0.0))
        );
        assert_eq!(u.counters.underflow_events, 0, "silences were announced");
        assert_eq!(u.counters.tx_samples, 40);
        // The next burst, [300, 320), loses its middle packet [305, 310): an underflow.
        u.accept_tx(addr(1), 300, vec![c(3.0); 5], 200);
        u.accept_tx(addr(1), 310, vec![c(3.0); 10], 200);
        u.end_burst(addr(1), 0, 320);
        let mut out = vec![c(9.0); 200];
        u.take_tx(200, &mut out);
        assert_eq!(
            (u.counters.underflow_events, u.counters.underflow_samples),
            (1, 5)
        );
        // Without end-of-burst marks every gap counts, as on a USRP.
        let mut v = RadioUnit::power_up(&cfg(0), 0, 1000, 1000, 0);
        v.link(addr(1), 0);
        v.accept_tx(addr(1), 100, vec![c(1.0); 20], 0);
        v.accept_tx(addr(1), 140, vec![c(2.0); 20], 0);
        let mut out = vec![c(9.0); 100];
        v.take_tx(100, &mut out);
        assert_eq!(
            (v.counters.underflow_events, v.counters.underflow_samples),
            (1, 60)
        );
        // A stranger's end of burst changes nothing.
        v.end_burst(addr(9), 0, 0);
    }

    #[test]
    fn switch_is_sample_exact_for_tx_and_rx() {
        let (old, new) = (addr(1), addr(2));
        let mut u = RadioUnit::power_up(&cfg(0), 0, 1000, 10_000, 0);
        u.link(old, 0);
        let at = 37;
        // Both hosts queue TX covering 0..100 in packets of 7 that straddle `at`.
        let mut t = 0;
        while t < 100 {
            u.accept_tx(old, t, ramp(t, 7, 1.0), 0);
            t += 7;
        }
        assert!(matches!(u.switch_at(at, new, 0), Reply::Scheduled { .. }));
        let mut t = 0;
        while t < 100 {
            u.accept_tx(new, t, ramp(t, 7, 2.0), 0);
            t += 7;
        }
        let mut got_tx = Vec::new();
        let mut rx_owner = Vec::new();
        for tick in 0..10u64 {
            let t0 = tick * 10;
            let mut out = vec![c(0.0); 10];
            u.take_tx(t0, &mut out);
            got_tx.extend(out);
            for r in u.rx_routes(t0, 10) {
                for k in 0..r.len {
                    rx_owner.push((t0 + (r.offset + k) as u64, r.to));
                }
            }
            u.end_tick(t0 + 10);
        }
        for (s, v) in got_tx.iter().enumerate() {
            let tag = if (s as u64) < at { 1.0 } else { 2.0 };
            assert_eq!(*v, Complex32::new(tag, s as f32), "sample {s}");
        }
        rx_owner.sort();
        assert_eq!(rx_owner.len(), 100);
        for (s, (t, to)) in rx_owner.iter().enumerate() {
            assert_eq!(*t, s as u64);
            assert_eq!(*to, if *t < at { old } else { new });
        }
        assert_eq!(u.linked(), Some(new));
        assert_eq!(u.counters.underflow_events, 0);
        // Both queued 0..105: old's samples >= at and new's < at were trimmed: 68 + 37.
        assert_eq!(u.counters.switch_trimmed_samples, 105);
    }

    #[test]
    fn unshadow_stops_only_the_named_hosts_copy() {
        let (primary, gone, newer) = (addr(1), addr(2), addr(3));
        let mut u = RadioUnit::power_up(&cfg(0), 0, 1000, 1000, 0);
        u.link(primary, 0);
        // A migration since shadows to another host: an agent ending its own leftover
        // cannot cut that copy off.
        u.set_shadow(Some(newer), 0);
        assert!(matches!(
            u.unshadow(gone, 0),
            Reply::Error {
                code: ErrorCode::Refused,
                ..
            }
        ));
        assert_eq!(u.shadow(), Some(newer));
        assert!(u.rx_routes(0, 10).iter().any(|r| r.to == newer));
        // Its own: stopped; the primary's stream goes on.
        assert!(matches!(u.unshadow(newer, 10), Reply::Done { .. }));
        assert_eq!(u.shadow(), None);
        let r = u.rx_routes(10, 10);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].to, primary);
        // Nothing to stop: refused, nothing changes.
        assert!(matches!(u.unshadow(newer, 20), Reply::Error { .. }));
        assert_eq!(u.linked(), Some(primary));
    }

    #[test]
    fn shadow_gets_copy_and_becomes_seamless_primary() {
        let (old, new) = (addr(1), addr(2));
        let mut u = RadioUnit::power_up(&cfg(0), 0, 1000, 1000, 0);
        u.link(old, 0);
        u.set_shadow(Some(new), 0);
        let r = u.rx_routes(0, 10);
        assert_eq!(r.len(), 2);
        assert!(r.iter().any(|r| r.to == new && !r.primary && r.len == 10));
        u.switch_at(15, new, 10);
        let r = u.rx_routes(10, 10);
        // new gets 10..15 as shadow and 15..20 as primary: no duplicate, no gap.
        let mut mine: Vec<_> = r
            .iter()
            .filter(|r| r.to == new)
            .map(|r| (r.offset, r.len))
            .collect();
        mine.sort();
        assert_eq!(mine, vec![(0, 5), (5, 5)]);
        u.end_tick(20);
        assert_eq!(u.shadow(), None);
        assert_eq!(
            u.rx_routes(20, 10),
            vec![RxRoute {
                to: new,
                offset: 0,
                len: 10,
                primary: true
            }]
        );
    }

    /// Runs ticks of `tick` samples from `t0` to `t1`, each host in `senders` sending its TX
    /// for the tick `lead` samples ahead (tag = host port) while `alive(host, now)`.
    /// Returns the TX on air per sample.
    fn run_ticks(
        u: &mut RadioUnit,
        (t0, t1, tick): (u64, u64, u64),
        lead: u64,
        senders: &[SocketAddr],
        alive: impl Fn(SocketAddr, u64) -> bool,
    ) -> Vec<Complex32> {
        let mut air = Vec::new();
        let mut now = t0;
        while now < t1 {
            for &h in senders {
                if alive(h, now) {
                    let s = now + lead;
                    let v = (0..tick).map(|k| Complex32::new(f32::from(h.port()), (s + k) as f32));
                    u.accept_tx(h, s, v.collect(), now);
                }
            }
            let mut out = vec![c(0.0); tick as usize];
            u.take_tx(now, &mut out);
            air.extend(out);
            u.end_tick(now + tick);
            now += tick;
        }
        air
    }

    #[test]
    fn a_cancelled_switch_loses_nothing() {
        let (old, new) = (addr(1), addr(2));
        // 10 kHz: a subframe is 10 samples.
        let mut u = RadioUnit::power_up(&cfg(0), 0, 10_000, 10_000, 0);
        u.link(old, 0);
        let epoch = u.epoch();
        let air = run_ticks(&mut u, (0, 40, 10), 30, &[old], |_, _| true);
        assert!(matches!(u.switch_at(80, new, 40), Reply::Scheduled { .. }));
        // Both send across the instant; old's samples past 80 are already queued.
        let mut air2 = run_ticks(&mut u, (40, 60, 10), 30, &[old, new], |_, _| true);
        assert!(matches!(u.cancel_switch(60), Reply::Done { .. }));
        assert_eq!(u.arbiter.cancelled_switches, 1);
        air2.extend(run_ticks(&mut u, (60, 200, 10), 30, &[old, new], |_, _| {
            true
        }));
        let all: Vec<_> = air.into_iter().chain(air2).collect();
        for (t, v) in all.iter().enumerate().skip(30) {
            assert_eq!(*v, Complex32::new(1.0, t as f32), "sample {t}");
        }
        assert_eq!(u.linked(), Some(old));
        assert_eq!(u.epoch(), epoch, "no primary change, no new epoch");
        assert_eq!(u.counters.underflow_samples, 0);
        // Too late to cancel once the instant is on the air; nothing armed → refused.
        assert!(matches!(u.cancel_switch(200), Reply::Error { .. }));
        u.switch_at(210, new, 200);
        run_ticks(&mut u, (200, 230, 10), 30, &[old, new], |_, _| true);
        assert!(matches!(u.cancel_switch(230), Reply::Error { .. }));
        assert_eq!(u.linked(), Some(new));
    }

    #[test]
    fn a_silent_new_primary_falls_back_to_the_previous_one() {
        let (old, new) = (addr(1), addr(2));
        let mut u = RadioUnit::power_up(&cfg(0), 0, 10_000, 10_000, 0);
        u.set_liveness_subframes(3);
        u.link(old, 0);
        let _ = u.take_notices();
        run_ticks(&mut u, (0, 50, 10), 20, &[old], |_, _| true);
        u.switch_at_with_fallback(100, new, 50, 1_000);
        // The new primary dies at 90 (its TX is queued up to 110); the old one stands by.
        let air = run_ticks(&mut u, (50, 300, 10), 20, &[old, new], |h, now| {
            h == old || now < 90
        });
        assert_eq!(u.linked(), Some(old));
        assert_eq!(u.arbiter.fallbacks, 1);
        let n = u.take_notices();
        assert_eq!(n.len(), 2, "{n:?}");
        assert_eq!(
            (n[0].kind, n[0].primary, n[0].from_sample),
            (SwitchKind::Planned, Some(new), 100)
        );
        assert_eq!(
            (n[1].kind, n[1].primary, n[1].previous),
            (SwitchKind::Fallback, Some(old), Some(new))
        );
        assert!(n[1].epoch > n[0].epoch);
        let back = n[1].from_sample;
        assert_eq!(back % 10, 0, "at a subframe boundary");
        // Last heard from new at 80, before its instant 100: it is given 3 subframes from
        // the instant (the later of the two), so the old one serves again from 140.
        assert_eq!(back, 140, "fallback at {back}");
        for (k, v) in air.iter().enumerate() {
            let t = 50 + k as u64;
            if t < 100 || t >= back {
                assert_eq!(v.re, 1.0, "sample {t} from the old primary");
            } else if t < 110 {
                assert_eq!(v.re, 2.0, "sample {t} from the new primary");
            }
        }
        // The failed primary is fenced: its TX never reaches the air again.
        assert_eq!(
            u.accept_tx(new, 320, vec![c(2.0); 10], 300),
            TxOutcome::Fenced
        );
        assert_eq!(u.arbiter.fenced_packets, 1);
    }

    /// During a fallback's grace the longer fallback liveness applies: a destination silent
    /// for longer than the failover interval but not the fallback one keeps serving; one
    /// silent for longer falls back, placed by the fallback interval.
    #[test]
    fn the_fallback_grace_has_its_own_longer_liveness() {
        let (old, new) = (addr(1), addr(2));
        for (silent_until, falls_back) in [(150u64, false), (200, true)] {
            let mut u = RadioUnit::power_up(&cfg(0), 0, 10_000, 10_000, 0);
            u.set_liveness_subframes(3);
            u.set_fallback_liveness_subframes(8);
            u.link(old, 0);
            let _ = u.take_notices();
            run_ticks(&mut u, (0, 50, 10), 20, &[old], |_, _| true);
            u.switch_at_with_fallback(100, new, 50, 1_000);
            // The new primary is silent from 90 until `silent_until`, then sends again.
            run_ticks(&mut u, (50, 300, 10), 20, &[old, new], |h, now| {
                h == old || now < 90 || now >= silent_until
            });
            let want = if falls_back { old } else { new };
            assert_eq!(u.linked(), Some(want), "silent until {silent_until}");
            assert_eq!(u.arbiter.fallbacks, u64::from(falls_back));
            if falls_back {
                // Heard last before its instant 100: given 8 subframes from it.
                assert_eq!(u.take_notices()[1].from_sample, 190);
            }
        }
    }

    #[test]
    fn no_fallback_once_the_grace_period_is_over_or_when_the_old_one_is_dead_too() {
        let (old, new) = (addr(1), addr(2));
        let mut u = RadioUnit::power_up(&cfg(0), 0, 10_000, 10_000, 0);
        u.set_liveness_subframes(3);
        u.link(old, 0);
        u.switch_at_with_fallback(100, new, 0, 50);
        // new serves until 300, long after the 50-sample grace; then dies.
        run_ticks(&mut u, (0, 500, 10), 20, &[old, new], |h, now| {
            h == old || now < 300
        });
        assert_eq!(u.linked(), Some(new));
        assert_eq!(u.arbiter.fallbacks, 0);
        assert_eq!(u.arbiter.silent_unprotected, 1, "counted once");
        let mut u = RadioUnit::power_up(&cfg(0), 0, 10_000, 10_000, 0);
        u.set_liveness_subframes(3);
        u.link(old, 0);
        u.switch_at_with_fallback(100, new, 0, 1_000);
        run_ticks(&mut u, (0, 300, 10), 20, &[old, new], |h, now| {
            now < if h == old { 90 } else { 110 }
        });
        assert_eq!(u.linked(), Some(new), "a dead fallback is not switched to");
        assert_eq!(u.arbiter.fallbacks, 0);
    }

    /// The radio's own loop stalls for 6 subframes and catches up in a burst: the primary's
    /// datagrams that arrived during the stall are dated by their arrival (the wall clock),
    /// so the catch-up ticks do not see a silent primary; a primary really gone is still
    /// declared dead.
    #[test]
    fn a_stalled_radio_does_not_fail_over_a_live_primary() {
        let (primary, standby) = (addr(1), addr(2));
        let mut u = RadioUnit::power_up(&cfg(0), 0, 10_000, 10_000, 0);
        u.set_liveness_subframes(3);
        u.link(primary, 0);
        assert!(matches!(u.protect(Some(standby), 0), Reply::Done { .. }));
        let mut out = vec![c(0.0); 10];
        let mut now = 0;
        // Normal ticks up to 100, both hosts sending every subframe.
        while now < 100 {
            for h in [primary, standby] {
                u.accept_tx(h, now + 20, vec![c(1.0); 10], now);
            }
            u.take_tx(now, &mut out);
            u.end_tick(now + 10);
            now += 10;
        }
        // The radio stalls from 100 to 160: the hosts' datagrams sent meanwhile are read at
        // once when it wakes (wall clock at 160), then six ticks run back to back.
        for k in 0..6u64 {
            for h in [primary, standby] {
                u.accept_tx_heard(h, 120 + k * 10, vec![c(1.0); 10], now, 160);
            }
        }
        while now < 160 {
            u.take_tx(now, &mut out);
            u.end_tick(now + 10);
            now += 10;
        }
        assert_eq!(u.linked(), Some(primary), "a live primary was failed over");
        assert_eq!(u.arbiter.failovers, 0);
        // Now the primary really dies: declared dead 3 subframes after it was last heard.
        while now < 260 {
            u.accept_tx(standby, now + 20, vec![c(1.0); 10], now);
            u.take_tx(now, &mut out);
            u.end_tick(now + 10);
            now += 10;
        }
        assert_eq!(u.linked(), Some(standby));
        assert_eq!(u.arbiter.failovers, 1);
    }

    #[test]
    fn a_silent_primary_fails_over_to_its_standby_which_gets_rx_copies() {
        let (primary, standby) = (addr(1), addr(2));
        let mut u = RadioUnit::power_up(&cfg(0), 0, 10_000, 10_000, 0);
        u.set_liveness_subframes(2);
        u.link(primary, 0);
        assert!(matches!(u.protect(Some(primary), 0), Reply::Error { .. }));
        assert!(matches!(u.protect(Some(standby), 0), Reply::Done { .. }));
        let r = u.rx_routes(0, 10);
        assert!(r
            .iter()
            .any(|r| r.to == standby && !r.primary && r.len == 10));
        let _ = u.take_notices();
        // The primary dies at 200; the standby keeps proving it is alive.
        let air = run_ticks(&mut u, (0, 400, 10), 20, &[primary, standby], |h, now| {
            h == standby || now < 200
        });
        assert_eq!(u.linked(), Some(standby));
        assert_eq!(u.standby(), None, "unprotected until a new standby is warm");
        assert_eq!(u.arbiter.failovers, 1);
        let n = u.take_notices();
        assert_eq!(n.len(), 1);
        assert_eq!(
            (n[0].kind, n[0].primary, n[0].previous),
            (SwitchKind::Failover, Some(standby), Some(primary))
        );
        let at = n[0].from_sample;
        assert_eq!(u.protection_since(), at, "unprotected since the failover");
        // Last heard at 190 (TX to 220): declared dead after 2 subframes past 190.
        assert!(
            at % 10 == 0 && (210..=230).contains(&at),
            "failover at {at}"
        );
        // Its last datagram (sent at 190) started at 210 and ran to 220: what the standby
        // may deliver from, and the tail the radio still plays of it.
        assert_eq!(n[0].previous_heard_tx, Some(210));
        let tail = n[0].tail_until;
        assert_eq!(tail, (at < 220).then_some(220));
        let standby_from = tail.unwrap_or(at);
        for (t, v) in air.iter().enumerate() {
            let t = t as u64;
            if (20..220).contains(&t) {
                assert_eq!(v.re, 1.0, "sample {t}: the primary's, its tail included");
            }
            if t >= standby_from {
                assert_eq!(v.re, 2.0, "sample {t}: the standby serves, no gap");
            }
            // Never both: each sample has one owner, and is the one it sent for that time.
            assert!(v.re == 0.0 || v.re == 1.0 || v.re == 2.0);
            assert!(v.re == 0.0 || v.im == t as f32, "sample {t} out of place");
        }
        if tail.is_some() {
            assert_eq!(u.arbiter.tail_samples, 220 - at);
        }
        // A primary that was only paused comes back: fenced, never on the air.
        assert_eq!(
            u.accept_tx(primary, 420, vec![c(1.0); 10], 400),
            TxOutcome::Fenced
        );
        let mut out = vec![c(0.0); 10];
        u.take_tx(420, &mut out);
        assert!(out.iter().all(|v| v.re != 1.0));
        // Before the boundary the standby's TX was liveness only.
        assert!(u.arbiter.standby_packets > 0);
    }

    /// A primary with a TX lead of 5 subframes dies: what it had queued before it died is
    /// played to its end (whole subframes, up to a gap), the standby's filler only after it,
    /// every sample in its place; the notice says where the tail ends and the newest TX
    /// heard from the dead one. A relink ends a tail at once.
    #[test]
    fn a_failover_plays_the_dead_primarys_queued_tx_then_the_standby() {
        let (primary, standby) = (addr(1), addr(2));
        let mut u = RadioUnit::power_up(&cfg(0), 0, 10_000, 10_000, 0);
        u.set_liveness_subframes(2);
        u.link(primary, 0);
        u.protect(Some(standby), 0);
        let _ = u.take_notices();
        let air = run_ticks(&mut u, (0, 400, 10), 50, &[primary, standby], |h, now| {
            h == standby || now < 200
        });
        let n = u.take_notices();
        assert_eq!(n.len(), 1);
        let at = n[0].from_sample;
        // Last heard at 190 (TX [240, 250)), dead after 2 silent subframes: switched at 220.
        assert_eq!(at, 220);
        assert_eq!(n[0].previous_heard_tx, Some(240));
        assert_eq!(n[0].tail_until, Some(250));
        for (t, v) in air.iter().enumerate() {
            let t = t as u64;
            let want = if (50..250).contains(&t) {
                1.0
            } else if t >= 250 {
                2.0
            } else {
                0.0
            };
            assert_eq!(
                (v.re, v.im),
                (want, if want == 0.0 { 0.0 } else { t as f32 }),
                "sample {t}"
            );
        }
        assert_eq!(u.arbiter.tail_samples, 30);

        // A gap in the dead primary's queue ends its tail; a partial subframe is not played.
        let mut u = RadioUnit::power_up(&cfg(0), 0, 10_000, 10_000, 0);
        u.set_liveness_subframes(2);
        u.link(primary, 0);
        u.protect(Some(standby), 0);
        let _ = u.take_notices();
        run_ticks(&mut u, (0, 200, 10), 50, &[primary, standby], |_, _| true);
        // Its last datagrams at 200: [250, 255) of a subframe, and [270, 280) after a gap.
        u.accept_tx(primary, 250, vec![c(1.0); 5], 200);
        u.accept_tx(primary, 270, vec![c(1.0); 10], 200);
        let air = run_ticks(&mut u, (200, 400, 10), 50, &[standby], |_, _| true);
        let n = u.take_notices();
        assert_eq!((n[0].from_sample, n[0].tail_until), (230, Some(250)));
        assert_eq!(n[0].previous_heard_tx, Some(270));
        for (k, v) in air.iter().enumerate() {
            let t = 200 + k as u64;
            assert_eq!(v.re, if t < 250 { 1.0 } else { 2.0 }, "sample {t}");
        }

        // A relink by another host ends the tail at once.
        let mut u = RadioUnit::power_up(&cfg(0), 0, 10_000, 10_000, 0);
        u.set_liveness_subframes(2);
        u.link(primary, 0);
        u.protect(Some(standby), 0);
        run_ticks(&mut u, (0, 230, 10), 50, &[primary, standby], |h, now| {
            h == standby || now < 200
        });
        assert_eq!(u.linked(), Some(standby));
        u.link(addr(3), 230);
        let air = run_ticks(&mut u, (230, 260, 10), 50, &[], |_, _| true);
        assert!(
            air.iter().all(|v| v.re == 0.0),
            "the tail outlived a relink"
        );
    }

    #[test]
    fn a_reported_death_fails_over_at_the_next_boundary_without_waiting_for_silence() {
        let (primary, standby, stranger) = (addr(1), addr(2), addr(3));
        let mut u = RadioUnit::power_up(&cfg(0), 0, 10_000, 10_000, 0);
        u.set_liveness_subframes(5);
        u.link(primary, 0);
        // Unprotected: refused, nothing changes.
        assert!(matches!(u.primary_dead(primary, 100), Reply::Error { .. }));
        assert_eq!(u.linked(), Some(primary));
        u.protect(Some(standby), 0);
        let _ = u.take_notices();
        // Both alive up to 200, then the primary's agent reports it dead at 203.
        run_ticks(&mut u, (0, 200, 10), 20, &[primary, standby], |_, _| true);
        // A report naming someone else is stale: refused.
        assert!(matches!(u.primary_dead(stranger, 203), Reply::Error { .. }));
        assert!(matches!(u.primary_dead(standby, 203), Reply::Error { .. }));
        assert!(matches!(u.primary_dead(primary, 203), Reply::Done { .. }));
        // A second report while the switch is pending is refused.
        assert!(matches!(u.primary_dead(primary, 204), Reply::Error { .. }));
        run_ticks(&mut u, (200, 220, 10), 20, &[standby], |_, _| true);
        assert_eq!(u.linked(), Some(standby));
        assert_eq!((u.arbiter.failovers, u.arbiter.reported_dead), (1, 1));
        let n = u.take_notices();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].kind, SwitchKind::Failover);
        // At the next boundary after the report (210), not after 5 subframes of silence.
        assert_eq!(n[0].from_sample, 210);
        // The old primary's report about itself now deposes nobody.
        assert!(matches!(u.primary_dead(primary, 230), Reply::Error { .. }));
        assert_eq!(u.linked(), Some(standby));
    }

    #[test]
    fn epochs_only_grow_and_every_change_is_announced() {
        let (a1, a2) = (addr(1), addr(2));
        let mut u = RadioUnit::power_up(&cfg(0), 0, 10_000, 10_000, 0);
        u.link(a1, 0);
        u.switch_at(20, a2, 0);
        run_ticks(&mut u, (0, 30, 10), 10, &[a1, a2], |_, _| true);
        u.unlink(None, 30);
        u.reset(40);
        let n = u.take_notices();
        let kinds: Vec<_> = n.iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            [
                SwitchKind::Link,
                SwitchKind::Planned,
                SwitchKind::Link,
                SwitchKind::Link
            ]
        );
        assert!(n.windows(2).all(|w| w[1].epoch > w[0].epoch));
        assert_eq!(u.epoch(), n.last().map(|n| n.epoch).unwrap_or(0));
    }

    #[test]
    fn switch_refusals() {
        let mut u = RadioUnit::power_up(&cfg(0), 0, 1000, 1000, 0);
        assert!(matches!(
            u.switch_at(10, addr(2), 0),
            Reply::Error {
                code: ErrorCode::Refused,
                ..
            }
        ));
        u.link(addr(1), 0);
        assert!(matches!(
            u.switch_at(10, addr(2), 20),
            Reply::Error {
                code: ErrorCode::Refused,
                ..
            }
        ));
    }

    #[test]
    fn legacy_follows_host_ip_and_refuses_link_control() {
        let mut rc = cfg(0);
        rc.legacy_host = Some("192.168.10.1:49200".parse().unwrap());
        let mut u = RadioUnit::power_up(&rc, 0, 1000, 1000, 0);
        assert!(matches!(
            u.link(addr(1), 0),
            Reply::Error {
                code: ErrorCode::Refused,
                ..
            }
        ));
        let from_host: SocketAddr = "192.168.10.1:5555".parse().unwrap();
        let other: SocketAddr = "192.168.20.2:49200".parse().unwrap();
        assert_eq!(
            u.accept_tx(from_host, 0, vec![c(1.0); 3], 0),
            TxOutcome::Queued
        );
        assert_eq!(
            u.accept_tx(other, 0, vec![c(1.0); 3], 0),
            TxOutcome::Stranger
        );
        let r = u.rx_routes(0, 5);
        assert_eq!(r[0].to, rc.legacy_host.unwrap());
        let mut out = vec![c(0.0); 5];
        u.take_tx(0, &mut out);
        assert_eq!(&out[..3], &[c(1.0); 3]);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Link(u16),
        Unlink(Option<u16>),
        Shadow(Option<u16>),
        Switch(u64, u16),
        Tx(u16, u64, usize),
        Reset,
        Tick,
        Cancel,
        Protect(Option<u16>),
        Fallback(u64, u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u16..3).prop_map(Op::Link),
            proptest::option::of(0u16..3).prop_map(Op::Unlink),
            proptest::option::of(0u16..3).prop_map(Op::Shadow),
            (0u64..400, 0u16..3).prop_map(|(d, h)| Op::Switch(d, h)),
            (0u16..4, 0u64..600, 0usize..300).prop_map(|(h, d, n)| Op::Tx(h, d, n)),
            Just(Op::Reset),
            Just(Op::Cancel),
            proptest::option::of(0u16..3).prop_map(Op::Protect),
            (0u64..400, 0u16..3).prop_map(|(d, h)| Op::Fallback(d, h)),
            Just(Op::Tick),
            Just(Op::Tick),
            Just(Op::Tick),
        ]
    }

    fn a(h: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1000 + h))
    }

    proptest! {
        /// Any sequence of control operations, TX packets and ticks: no panic; every tick's
        /// primary RX covers the tick exactly once when linked; no host gets a sample twice;
        /// counters never exceed what was offered.
        #[test]
        fn random_operations_keep_invariants(ops in proptest::collection::vec(op(), 1..60)) {
            let tick = 100usize;
            let cfg = crate::config::AirConfig::default().with_init_ms(0);
            let mut u = RadioUnit::power_up(&cfg.radios[0], 0, 1000, 500, 0);
            u.set_liveness_subframes(150);
            let mut now = 0u64;
            let mut offered = 0u64;
            let mut epoch = u.epoch();
            for o in ops {
                match o {
                    Op::Link(h) => { u.link(a(h), now); }
                    Op::Unlink(h) => { u.unlink(h.map(a), now); }
                    Op::Shadow(h) => { u.set_shadow(h.map(a), now); }
                    Op::Switch(d, h) => { u.switch_at(now + d, a(h), now); }
                    Op::Tx(h, d, n) => {
                        offered += n as u64;
                        u.accept_tx(a(h), (now + d).saturating_sub(50), vec![Complex32::new(0.5, 0.5); n], now);
                    }
                    Op::Reset => { u.reset(now); }
                    Op::Cancel => { u.cancel_switch(now); }
                    Op::Protect(h) => { u.protect(h.map(a), now); }
                    Op::Fallback(d, h) => { u.switch_at_with_fallback(now + d, a(h), now, 300); }
                    Op::Tick => {
                        let mut out = vec![Complex32::new(0.0, 0.0); tick];
                        u.take_tx(now, &mut out);
                        let routes = u.rx_routes(now, tick);
                        let mut per_host: std::collections::HashMap<SocketAddr, Vec<bool>> = Default::default();
                        let mut primary = vec![0u8; tick];
                        for r in &routes {
                            prop_assert!(r.offset + r.len <= tick);
                            let seen = per_host.entry(r.to).or_insert_with(|| vec![false; tick]);
                            for k in r.offset..r.offset + r.len {
                                prop_assert!(!seen[k], "host {} got sample {} twice", r.to, k);
                                seen[k] = true;
                                if r.primary { primary[k] += 1; }
                            }
                        }
                        if u.linked().is_some() {
                            prop_assert!(primary.iter().all(|&c| c == 1));
                        } else {
                            prop_assert!(primary.iter().all(|&c| c == 0));
                        }
                        u.end_tick(now + tick as u64);
                        now += tick as u64;
                    }
                }
                prop_assert!(u.epoch() >= epoch, "epoch went back");
                epoch = u.epoch();
                let notices = u.take_notices();
                prop_assert!(notices.windows(2).all(|w| w[1].epoch > w[0].epoch));
                prop_assert!(u.standby().is_none() || u.standby() != u.linked());
                let c = &u.counters;
                prop_assert!(c.tx_samples + c.late_samples + c.switch_trimmed_samples <= offered);
            }
        }
    }
}

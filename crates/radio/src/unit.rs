//! One emulated N210-class radio unit, sans-IO: power-up initialisation (once per lifetime,
//! counted), link state (primary host, shadow host, timed switch), the timestamped TX queue,
//! RX routing per tick, and the device counters. Time is always a sample time passed in.

use std::collections::BTreeMap;
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
    /// Time of the first sample the host ever queued: from then on gaps count as underflow
    /// (as UHD counts underflows only inside a running stream).
    streaming_from: Option<SampleTime>,
    blocks: BTreeMap<SampleTime, Vec<Complex32>>,
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
}

/// An emulated radio unit.
#[derive(Debug)]
pub struct RadioUnit {
    /// Radio number (in stream IDs).
    pub number: u16,
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
        }
        self.primary = Some(endpoint);
        self.pending = None;
        if self.shadow == Some(endpoint) {
            self.shadow = None;
        }
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
        self.primary = None;
        self.pending = None;
        self.queues.clear();
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

    /// `switch_at(at, endpoint)`; `now` is the first sample not yet on the air.
    pub fn switch_at(&mut self, at: SampleTime, endpoint: SocketAddr, now: SampleTime) -> Reply {
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
        // What either host already queued on the wrong side of `at` is not its to send.
        let old = self.primary;
        let mut dropped = 0;
        for q in &mut self.queues {
            let keep_before = if q.src == Some(endpoint) && old != Some(endpoint) {
                false
            } else if q.src == old && old != Some(endpoint) {
                true
            } else {
                continue;
            };
            for (s, mut v) in std::mem::take(&mut q.blocks) {
                let end = s + v.len() as u64;
                let cut = (at.clamp(s, end) - s) as usize;
                if keep_before {
                    dropped += (v.len() - cut) as u64;
                    v.truncate(cut);
                    if !v.is_empty() {
                        q.blocks.insert(s, v);
                    }
                } else {
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
        self.start_init(now);
        self.done(now)
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
            Some((at, new)) if new == src => Some((Role::Incoming(at), src)),
            _ => None,
        }
    }

    /// Whether TX from `src` would be accepted (used to count strangers before parsing).
    pub fn accepts_from(&self, src: SocketAddr) -> bool {
        self.is_ready() && self.role(src).is_some()
    }

    /// Queues a TX block from `src` whose first sample is at `start`; `now` is the first
    /// sample time not yet mixed into the air.
    pub fn accept_tx(
        &mut self,
        src: SocketAddr,
        start: SampleTime,
        mut samples: Vec<Complex32>,
        now: SampleTime,
    ) -> TxOutcome {
        let Some((role, key)) = self.role(src).filter(|_| self.is_ready()) else {
            self.counters.stranger_packets += 1;
            return TxOutcome::Stranger;
        };
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
        // Packets straddling a switch instant are split: each host owns its side only.
        match (role, self.pending) {
            (Role::Primary, Some((at, new))) if Some(new) != self.primary && end > at => {
                let keep = at.saturating_sub(start) as usize;
                self.counters.switch_trimmed_samples +=
                    (samples.len() - keep.min(samples.len())) as u64;
                samples.truncate(keep);
            }
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
        self.counters.tx_packets += 1;
        let q = match self.queues.iter().position(|q| q.src == Some(key)) {
            Some(i) => &mut self.queues[i],
            None => {
                self.queues.push(TxQueue {
                    src: Some(key),
                    ..Default::default()
                });
                let last = self.queues.len() - 1;
                &mut self.queues[last]
            }
        };
        q.streaming_from.get_or_insert(start);
        q.blocks.insert(start, samples);
        TxOutcome::Queued
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
            let Some(q) = self.queues.iter_mut().find(|q| q.src == Some(key)) else {
                continue;
            };
            let covered = q.fill(a, b, t0, out);
            self.counters.tx_samples += covered;
            let expected = match q.streaming_from {
                Some(from) => b.saturating_sub(a.max(from)),
                None => 0,
            };
            if covered < expected {
                self.counters.underflow_events += 1;
                self.counters.underflow_samples += expected - covered;
            }
        }
        let t1 = t0 + n as u64;
        for q in &mut self.queues {
            q.blocks.retain(|&s, v| s + v.len() as u64 > t1);
        }
    }

    /// Where the RX of the tick `[t0, t0 + n)` goes. Split at a switch instant; the shadow
    /// gets every part it does not already get as primary.
    pub fn rx_routes(&self, t0: SampleTime, n: usize) -> Vec<RxRoute> {
        let mut routes = Vec::new();
        if !self.is_ready() {
            return routes;
        }
        let mut shadow_parts: Vec<(usize, usize)> = Vec::new();
        for (owner, a, b) in self.owners(t0, n) {
            if a >= b {
                continue;
            }
            let (offset, len) = ((a - t0) as usize, (b - a) as usize);
            if let Some(to) = owner {
                routes.push(RxRoute {
                    to,
                    offset,
                    len,
                    primary: true,
                });
            }
            if self.shadow.is_some() && self.shadow != owner {
                shadow_parts.push((offset, len));
            }
        }
        if let Some(to) = self.shadow {
            for (offset, len) in shadow_parts {
                routes.push(RxRoute {
                    to,
                    offset,
                    len,
                    primary: false,
                });
            }
        }
        routes
    }

    /// Ends the tick that finishes at `t1`: a switch due by then takes effect.
    pub fn end_tick(&mut self, t1: SampleTime) {
        if let Some((at, new)) = self.pending {
            if at <= t1 {
                let old = self.primary.replace(new);
                self.pending = None;
                if self.shadow == Some(new) {
                    self.shadow = None;
                }
                if old != Some(new) {
                    self.queues.retain(|q| q.src != old);
                }
                self.context_due = true;
            }
        }
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
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u16..3).prop_map(Op::Link),
            proptest::option::of(0u16..3).prop_map(Op::Unlink),
            proptest::option::of(0u16..3).prop_map(Op::Shadow),
            (0u64..400, 0u16..3).prop_map(|(d, h)| Op::Switch(d, h)),
            (0u16..4, 0u64..600, 0usize..300).prop_map(|(h, d, n)| Op::Tx(h, d, n)),
            Just(Op::Reset),
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
            let mut now = 0u64;
            let mut offered = 0u64;
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
                let c = &u.counters;
                prop_assert!(c.tx_samples + c.late_samples + c.switch_trimmed_samples <= offered);
            }
        }
    }
}

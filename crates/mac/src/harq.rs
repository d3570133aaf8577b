//! HARQ: stop-and-wait processes with ACK/NACK feedback and soft combining (TS 36.321 §5.3.2 /
//! §5.4.2 in spirit), sans IO. The clock is the absolute subframe number.
//!
//! What rides where. Every subframe a node transmits carries a 10-byte control message
//! ([`Dci`], in the PHY's control region, turbo-coded more strongly than the data) with:
//! the sender's node and *generation* (a random non-zero byte chosen when the sender starts:
//! a restarted or migrated sender is a new generation), the HARQ process, new-data indicator
//! and redundancy-version index of the TB in this subframe (if any), the subframe index whose
//! TB size the TB has (retransmissions may land in a subframe of another size), and the
//! ACK/NACK feedback for eight of one peer's processes.
//!
//! Feedback entry per process (4 bits): `ndi`, `ok`, and the transmission count (mod 4) of the
//! last transmission received. The sender takes it as the answer to its latest transmission
//! only when `ndi` and count both match, so stale or repeated reports never ACK a
//! transmission the receiver has not seen; a transmission whose answer does not come within
//! the feedback timeout is retransmitted (a lost control message looks like a NACK).
//! Reports name the generation they are about: a new sender ignores its predecessor's.
//!
//! The receiver keeps no decoding state here (the soft buffers live beside the decoder, keyed
//! by `(src, process)`): [`HarqRx::on_dci`] says whether to start a new buffer or combine.
//! A retransmission of a TB already decoded is decoded again from a fresh buffer and its
//! duplicate delivery is left to the [`Reorder`] buffer, which hands TBs to the MAC in their
//! per-sender sequence order (the MAC's reassembly needs in-order segments): a TB behind a
//! gap waits while that sender has a process awaiting retransmission, at most `hold`
//! subframes, and a TB that arrives after its gap was given up is dropped as late.
//!
//! Make-before-break flushes HARQ at T instead of handing it over (docs/MODEM.md "HARQ"):
//! the destination is a new generation; what the source still had to retransmit is lost like
//! a TB that used up its transmissions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::addr::Rnti;
use crate::wire::MacHeader;

/// Control message length (bytes); the PHY's control channel carries exactly this.
pub const DCI_BYTES: usize = 10;
/// Most HARQ processes per sender (4-bit process number).
pub const MAX_PROCESSES: usize = 16;
/// Redundancy versions in transmission order (36.321: 0, 2, 3, 1).
pub const RV_SEQUENCE: [u8; 4] = [0, 2, 3, 1];
/// Feedback entries per control message.
pub const FEEDBACK_ENTRIES: usize = 8;
/// Peers a receiver keeps HARQ state for; the least recently heard is forgotten.
pub const MAX_PEERS: usize = 32;
/// TBs a reorder buffer holds per sender.
pub const MAX_REORDER: usize = 256;

/// The control message of one subframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dci {
    /// Sender's node.
    pub src: u8,
    /// Sender's generation (non-zero).
    pub gen: u8,
    /// A TB follows in this subframe's data region.
    pub has_tb: bool,
    /// The TB is under HARQ (unicast data); plain TBs (fillers, broadcasts) are not.
    pub harq: bool,
    /// HARQ process (0..16).
    pub process: u8,
    /// New-data indicator.
    pub ndi: bool,
    /// Index into [`RV_SEQUENCE`]: 0 for a first transmission.
    pub rv_index: u8,
    /// Subframe (0..=9) whose TB size this TB has.
    pub size_sf: u8,
    /// Feedback follows.
    pub fb_valid: bool,
    /// Which eight processes the feedback covers (0: 0..8, 1: 8..16).
    pub fb_half: u8,
    /// The peer the feedback is for.
    pub fb_peer: u8,
    /// That peer's generation the feedback is about.
    pub fb_gen: u8,
    /// Four bits per process: `ndi << 3 | ok << 2 | count mod 4`.
    pub fb: [u8; FEEDBACK_ENTRIES / 2],
}

/// Why bytes are not a control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DciError {
    /// Generation 0 is never used (it marks a blank message).
    #[error("control message with generation 0")]
    NoGeneration,
    /// Size subframe out of range.
    #[error("control message names subframe {0} (0..=9)")]
    BadSubframe(u8),
}

impl Dci {
    /// The wire form.
    pub fn to_bytes(&self) -> [u8; DCI_BYTES] {
        let mut b = [0u8; DCI_BYTES];
        b[0] = self.src;
        b[1] = self.gen;
        b[2] = u8::from(self.has_tb) << 7
            | u8::from(self.ndi) << 6
            | (self.rv_index & 3) << 4
            | (self.process & 0x0F);
        b[3] = (self.size_sf & 0x0F) << 4
            | u8::from(self.harq) << 3
            | u8::from(self.fb_valid) << 2
            | (self.fb_half & 1) << 1;
        b[4] = self.fb_peer;
        b[5] = self.fb_gen;
        b[6..10].copy_from_slice(&self.fb);
        b
    }

    /// Parse (the PHY's CRC already vouched for the bits; this checks the values).
    pub fn parse(b: &[u8; DCI_BYTES]) -> Result<Dci, DciError> {
        if b[1] == 0 {
            return Err(DciError::NoGeneration);
        }
        let size_sf = b[3] >> 4;
        if size_sf > 9 {
            return Err(DciError::BadSubframe(size_sf));
        }
        Ok(Dci {
            src: b[0],
            gen: b[1],
            has_tb: b[2] & 0x80 != 0,
            ndi: b[2] & 0x40 != 0,
            rv_index: (b[2] >> 4) & 3,
            process: b[2] & 0x0F,
            size_sf,
            harq: b[3] & 0x08 != 0,
            fb_valid: b[3] & 0x04 != 0,
            fb_half: (b[3] >> 1) & 1,
            fb_peer: b[4],
            fb_gen: b[5],
            fb: [b[6], b[7], b[8], b[9]],
        })
    }

    /// The redundancy version of this transmission.
    pub fn rv(&self) -> u8 {
        RV_SEQUENCE[usize::from(self.rv_index & 3)]
    }

    /// Feedback entry `i` (0..8) as `(ndi, ok, count mod 4)`.
    pub fn feedback(&self, i: usize) -> (bool, bool, u8) {
        let nib = (self.fb[i / 2] >> (4 * (i % 2))) & 0x0F;
        (nib & 8 != 0, nib & 4 != 0, nib & 3)
    }
}

/// HARQ parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HarqConfig {
    /// Processes per sender (1..=16).
    pub processes: u8,
    /// Transmissions of one TB at most (1..=4), the first included.
    pub max_transmissions: u8,
    /// Subframes after a transmission without a matching answer before it is resent.
    pub feedback_timeout: u64,
    /// Subframes a TB behind a gap waits for the gap's retransmission while the receiver
    /// knows the gap's TB failed.
    pub reorder_hold: u64,
    /// Subframes it waits when the receiver knows of no failed TB (the gap's control
    /// message may have been lost; the sender resends after its feedback timeout).
    pub gap_hold: u64,
}

impl HarqConfig {
    /// Parameters for a link whose nodes build TX `tx_lead` subframes ahead: an answer
    /// takes two leads plus the wait for a subframe of the right direction (≤ 8 in any TDD
    /// configuration) plus decoding (1 each way).
    pub fn for_tx_lead(tx_lead: u64) -> HarqConfig {
        let rtt = 2 * (tx_lead + 1) + 8;
        HarqConfig {
            processes: MAX_PROCESSES as u8,
            max_transmissions: 4,
            feedback_timeout: rtt + 4,
            reorder_hold: 4 * (rtt + 4),
            gap_hold: 2 * rtt + 4,
        }
    }

    /// Check the ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_PROCESSES as u8).contains(&self.processes) {
            return Err(format!("HARQ processes {} (1..=16)", self.processes));
        }
        if !(1..=4).contains(&self.max_transmissions) {
            return Err(format!(
                "HARQ max transmissions {} (1..=4)",
                self.max_transmissions
            ));
        }
        if self.feedback_timeout == 0 {
            return Err("HARQ feedback timeout 0".into());
        }
        Ok(())
    }
}

/// Sender counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarqTxCounters {
    /// TBs started under HARQ.
    pub new_tbs: u64,
    /// Retransmissions sent.
    pub retransmissions: u64,
    /// TBs acknowledged.
    pub acked: u64,
    /// NACKs received.
    pub nacks: u64,
    /// Transmissions whose answer did not come in time.
    pub timeouts: u64,
    /// TBs given up after `max_transmissions` (lost).
    pub gave_up: u64,
    /// Subframes with data waiting while every process was busy.
    pub stalls: u64,
}

#[derive(Debug, Clone, Default)]
enum TxState {
    #[default]
    Idle,
    /// Sent at `at`, awaiting an answer.
    Waiting { at: u64 },
    /// NACKed or timed out: resend at the next chance.
    Resend,
}

#[derive(Debug, Clone, Default)]
struct TxProcess {
    state: TxState,
    ndi: bool,
    /// Transmissions of the current TB so far.
    sent: u8,
    dst: u8,
    size_sf: u8,
    tb: Vec<u8>,
}

/// A transmission the sender asks the PHY to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxPlan {
    /// Process.
    pub process: u8,
    /// New-data indicator.
    pub ndi: bool,
    /// Index into [`RV_SEQUENCE`].
    pub rv_index: u8,
    /// Subframe whose TB size the TB has.
    pub size_sf: u8,
}

/// The sending side of one node (all its destinations share the processes).
#[derive(Debug, Clone)]
pub struct HarqTx {
    cfg: HarqConfig,
    procs: Vec<TxProcess>,
    /// Counters.
    pub counters: HarqTxCounters,
}

impl HarqTx {
    /// A sender with every process idle.
    pub fn new(cfg: HarqConfig) -> HarqTx {
        HarqTx {
            procs: vec![TxProcess::default(); usize::from(cfg.processes)],
            cfg,
            counters: HarqTxCounters::default(),
        }
    }

    /// Time passes: transmissions without an answer in time become retransmissions (or are
    /// given up).
    pub fn poll(&mut self, now: u64) {
        for p in &mut self.procs {
            if let TxState::Waiting { at } = p.state {
                if now.saturating_sub(at) > self.cfg.feedback_timeout {
                    self.counters.timeouts += 1;
                    Self::answer(&self.cfg, &mut self.counters, p, false);
                }
            }
        }
    }

    fn answer(cfg: &HarqConfig, c: &mut HarqTxCounters, p: &mut TxProcess, ok: bool) {
        if ok {
            c.acked += 1;
            p.state = TxState::Idle;
            p.tb.clear();
        } else if p.sent >= cfg.max_transmissions {
            c.gave_up += 1;
            p.state = TxState::Idle;
            p.tb.clear();
        } else {
            p.state = TxState::Resend;
        }
    }

    /// The oldest TB awaiting retransmission, with the bytes to resend.
    pub fn retransmission(&self) -> Option<(TxPlan, &[u8])> {
        let (i, p) = self
            .procs
            .iter()
            .enumerate()
            .find(|(_, p)| matches!(p.state, TxState::Resend))?;
        Some((
            TxPlan {
                process: i as u8,
                ndi: p.ndi,
                rv_index: p.sent & 3,
                size_sf: p.size_sf,
            },
            &p.tb,
        ))
    }

    /// Record that the retransmission of `process` went out in subframe `now`.
    pub fn resent(&mut self, process: u8, now: u64) {
        if let Some(p) = self.procs.get_mut(usize::from(process)) {
            if matches!(p.state, TxState::Resend) {
                p.sent += 1;
                p.state = TxState::Waiting { at: now };
                self.counters.retransmissions += 1;
            }
        }
    }

    /// Whether a new TB can start (a process is idle).
    pub fn has_free(&self) -> bool {
        self.procs.iter().any(|p| matches!(p.state, TxState::Idle))
    }

    /// Count a subframe in which data waited for a free process.
    pub fn stalled(&mut self) {
        self.counters.stalls += 1;
    }

    /// Start a new TB `tb` for node `dst` (size of subframe `size_sf`) in subframe `now`;
    /// `None` when every process is busy.
    pub fn start(&mut self, dst: u8, size_sf: u8, tb: &[u8], now: u64) -> Option<TxPlan> {
        let i = self
            .procs
            .iter()
            .position(|p| matches!(p.state, TxState::Idle))?;
        let p = &mut self.procs[i];
        p.ndi = !p.ndi;
        p.sent = 1;
        p.dst = dst;
        p.size_sf = size_sf;
        p.tb.clear();
        p.tb.extend_from_slice(tb);
        p.state = TxState::Waiting { at: now };
        self.counters.new_tbs += 1;
        Some(TxPlan {
            process: i as u8,
            ndi: p.ndi,
            rv_index: 0,
            size_sf,
        })
    }

    /// Feedback from node `from` about generation `gen` (ours is `my_gen`).
    pub fn on_feedback(&mut self, from: u8, d: &Dci, my_gen: u8) {
        if !d.fb_valid || d.fb_gen != my_gen {
            return;
        }
        let base = usize::from(d.fb_half) * FEEDBACK_ENTRIES;
        for i in 0..FEEDBACK_ENTRIES {
            let Some(p) = self.procs.get_mut(base + i) else {
                break;
            };
            if p.dst != from || !matches!(p.state, TxState::Waiting { .. }) {
                continue;
            }
            let (ndi, ok, count) = d.feedback(i);
            if ndi != p.ndi || count != p.sent & 3 {
                continue; // about an older transmission, or not yet seen
            }
            if !ok {
                self.counters.nacks += 1;
            }
            Self::answer(&self.cfg, &mut self.counters, p, ok);
        }
    }

    /// Processes not idle (for status).
    pub fn busy(&self) -> usize {
        self.procs
            .iter()
            .filter(|p| !matches!(p.state, TxState::Idle))
            .count()
    }
}

/// What the receiver should do with a HARQ TB's soft bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxAction {
    /// A new TB: clear the soft buffer of `(src, process)` first.
    Fresh,
    /// A retransmission of a TB not yet decoded: combine.
    Combine,
}

/// Receiver counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarqRxCounters {
    /// First transmissions received.
    pub first: u64,
    /// Retransmissions received and combined.
    pub combined: u64,
    /// TBs decoded only thanks to a retransmission.
    pub recovered: u64,
    /// Retransmissions of TBs already decoded (our ACK was lost).
    pub repeats: u64,
    /// Senders seen with a new generation (restart, migration).
    pub new_generations: u64,
}

#[derive(Debug, Clone, Copy)]
struct RxProcess {
    ndi: bool,
    ok: bool,
    count: u8,
    at: u64,
}

impl Default for RxProcess {
    fn default() -> Self {
        // "TB with ndi 0 already received": a sender's first TB (ndi 1) is new.
        RxProcess {
            ndi: false,
            ok: true,
            count: 0,
            at: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct RxPeer {
    gen: u8,
    procs: [RxProcess; MAX_PROCESSES],
    /// Halves changed since they were last reported.
    dirty: [bool; 2],
    last_heard: u64,
}

/// The receiving side of one node: per-sender process states and the feedback to send.
#[derive(Debug, Clone)]
pub struct HarqRx {
    cfg: HarqConfig,
    peers: BTreeMap<u8, RxPeer>,
    next_report: u8,
    /// Counters.
    pub counters: HarqRxCounters,
}

impl HarqRx {
    /// A receiver that knows no sender yet.
    pub fn new(cfg: HarqConfig) -> HarqRx {
        HarqRx {
            cfg,
            peers: BTreeMap::new(),
            next_report: 0,
            counters: HarqRxCounters::default(),
        }
    }

    /// A control message from `d.src` heard in subframe `now`: returns true when the sender
    /// is a new generation (its state here was reset; the caller resets its soft buffers and
    /// reorder state for that sender).
    pub fn on_heard(&mut self, d: &Dci, now: u64) -> bool {
        if !self.peers.contains_key(&d.src) && self.peers.len() >= MAX_PEERS {
            if let Some((&old, _)) = self.peers.iter().min_by_key(|(_, p)| p.last_heard) {
                self.peers.remove(&old);
            }
        }
        let peer = self.peers.entry(d.src).or_insert(RxPeer {
            gen: 0,
            procs: [RxProcess::default(); MAX_PROCESSES],
            dirty: [false; 2],
            last_heard: now,
        });
        peer.last_heard = now;
        if peer.gen == d.gen {
            return false;
        }
        let known = peer.gen != 0;
        peer.gen = d.gen;
        peer.procs = [RxProcess::default(); MAX_PROCESSES];
        peer.dirty = [false; 2];
        if known {
            self.counters.new_generations += 1;
        }
        known
    }

    /// A HARQ TB of `d` arrives (after [`HarqRx::on_heard`]).
    pub fn on_dci(&mut self, d: &Dci, now: u64) -> RxAction {
        let Some(peer) = self.peers.get_mut(&d.src) else {
            return RxAction::Fresh;
        };
        let p = &mut peer.procs[usize::from(d.process & 0x0F)];
        let action = if d.ndi != p.ndi {
            self.counters.first += 1;
            RxAction::Fresh
        } else if p.ok {
            // Already decoded (our ACK was lost) or a new sender reusing the indicator:
            // decode afresh; the reorder buffer drops a true duplicate.
            self.counters.repeats += 1;
            RxAction::Fresh
        } else {
            self.counters.combined += 1;
            RxAction::Combine
        };
        p.ndi = d.ndi;
        p.count = (d.rv_index + 1) & 3;
        p.at = now;
        p.ok = false;
        action
    }

    /// The outcome of decoding that TB.
    pub fn on_result(&mut self, d: &Dci, action: RxAction, ok: bool) {
        let Some(peer) = self.peers.get_mut(&d.src) else {
            return;
        };
        let p = &mut peer.procs[usize::from(d.process & 0x0F)];
        p.ok = ok;
        if ok && action == RxAction::Combine {
            self.counters.recovered += 1;
        }
        peer.dirty[usize::from(d.process >= 8)] = true;
    }

    /// Whether sender `src` has a TB here that failed and may still be retransmitted.
    pub fn pending(&self, src: u8, now: u64) -> bool {
        self.peers.get(&src).is_some_and(|peer| {
            peer.procs
                .iter()
                .any(|p| !p.ok && now.saturating_sub(p.at) <= self.cfg.reorder_hold)
        })
    }

    /// Whether there is feedback not yet sent (a node with nothing else to send transmits
    /// for it).
    pub fn has_news(&self) -> bool {
        self.peers.values().any(|p| p.dirty[0] || p.dirty[1])
    }

    /// Fill `d`'s feedback fields: a peer with news first (round robin), else a repeat of
    /// the most recently heard peer's state (repeats make feedback robust to a lost
    /// control message and cost nothing).
    pub fn fill_feedback(&mut self, d: &mut Dci) {
        let start = self.next_report;
        let pick = self
            .peers
            .range(start..)
            .chain(self.peers.range(..start))
            .find(|(_, p)| p.dirty[0] || p.dirty[1])
            .map(|(&k, _)| k)
            .or_else(|| {
                self.peers
                    .iter()
                    .max_by_key(|(_, p)| p.last_heard)
                    .map(|(&k, _)| k)
            });
        let Some(node) = pick else {
            d.fb_valid = false;
            return;
        };
        self.next_report = node.wrapping_add(1);
        let peer = self.peers.get_mut(&node).expect("picked from the map");
        let half = if peer.dirty[0] {
            0
        } else if peer.dirty[1] {
            1
        } else {
            // Repeat the half with the most recent activity.
            let recent = |h: usize| {
                peer.procs[h * 8..h * 8 + 8]
                    .iter()
                    .map(|p| p.at)
                    .max()
                    .unwrap_or(0)
            };
            usize::from(recent(1) > recent(0))
        };
        peer.dirty[half] = false;
        d.fb_valid = true;
        d.fb_half = half as u8;
        d.fb_peer = node;
        d.fb_gen = peer.gen;
        d.fb = [0; 4];
        for i in 0..FEEDBACK_ENTRIES {
            let p = &peer.procs[half * 8 + i];
            let nib = u8::from(p.ndi) << 3 | u8::from(p.ok) << 2 | (p.count & 3);
            d.fb[i / 2] |= nib << (4 * (i % 2));
        }
    }
}

/// Reorder counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReorderCounters {
    /// TBs that waited behind a gap.
    pub held: u64,
    /// Gaps given up (the TBs were lost for good).
    pub gaps_given_up: u64,
    /// TBs dropped because their place had passed (late, or duplicates).
    pub late: u64,
}

#[derive(Debug, Clone, Default)]
struct Stream {
    next: Option<u16>,
    held: BTreeMap<u16, Vec<u8>>,
    since: Option<u64>,
}

/// Hands decoded TBs to the MAC in per-sender sequence order.
#[derive(Debug, Clone, Default)]
pub struct Reorder {
    streams: BTreeMap<Rnti, Stream>,
    /// Counters.
    pub counters: ReorderCounters,
}

/// Sequence distance `a - b` as a signed number (wrapping u16).
fn seq_diff(a: u16, b: u16) -> i32 {
    i32::from(a.wrapping_sub(b) as i16)
}

impl Reorder {
    /// An empty buffer.
    pub fn new() -> Reorder {
        Reorder::default()
    }

    /// Forget sender `src` (a new generation: its sequence may restart).
    pub fn reset(&mut self, src: Rnti, out: &mut Vec<Vec<u8>>) {
        if let Some(s) = self.streams.remove(&src) {
            out.extend(s.held.into_values());
        }
    }

    /// A decoded MAC TB in subframe `now`. TBs ready for the MAC are appended to `out` in
    /// order; a TB behind a gap is held (see [`Reorder::poll`]). TBs without a parsable
    /// header go straight through (the MAC counts them).
    pub fn push(&mut self, tb: Vec<u8>, now: u64, out: &mut Vec<Vec<u8>>) {
        let Ok(h) = MacHeader::parse(&tb) else {
            out.push(tb);
            return;
        };
        if self.streams.len() >= MAX_PEERS && !self.streams.contains_key(&h.src) {
            if let Some(&k) = self.streams.keys().next() {
                self.reset(k, out);
            }
        }
        let s = self.streams.entry(h.src).or_default();
        let next = *s.next.get_or_insert(h.seq);
        let d = seq_diff(h.seq, next);
        if d < 0 || s.held.contains_key(&h.seq) {
            self.counters.late += 1;
            return;
        }
        if d == 0 {
            out.push(tb);
            s.next = Some(h.seq.wrapping_add(1));
            Self::release_in_order(s, out);
            // What is still held waits behind a newer gap: its wait starts now.
            s.since = (!s.held.is_empty()).then_some(now);
            return;
        }
        // A gap before this TB: its TB may still come (a retransmission).
        s.held.insert(h.seq, tb);
        if s.held.len() < MAX_REORDER && d < MAX_REORDER as i32 {
            s.since.get_or_insert(now);
            self.counters.held += 1;
        } else {
            self.counters.gaps_given_up += 1;
            Self::release_all(s, out);
        }
    }

    fn release_in_order(s: &mut Stream, out: &mut Vec<Vec<u8>>) {
        while let Some(n) = s.next {
            match s.held.remove(&n) {
                Some(tb) => {
                    out.push(tb);
                    s.next = Some(n.wrapping_add(1));
                }
                None => break,
            }
        }
    }

    fn release_all(s: &mut Stream, out: &mut Vec<Vec<u8>>) {
        let Some(next) = s.next else { return };
        let mut keys: Vec<u16> = s.held.keys().copied().collect();
        keys.sort_by_key(|&k| k.wrapping_sub(next));
        for k in keys {
            if let Some(tb) = s.held.remove(&k) {
                s.next = Some(k.wrapping_add(1));
                out.push(tb);
            }
        }
        s.since = None;
    }

    /// Time passes. A gap is given up (what waited behind it released) after `hold_gap`
    /// subframes, or `hold_pending` while `pending(src)` says the sender has a failed TB here
    /// that may still be retransmitted. (A gap with nothing known pending still waits
    /// `hold_gap`: a TB whose control message was lost is retransmitted after the sender's
    /// feedback timeout without the receiver knowing it failed.)
    pub fn poll(
        &mut self,
        now: u64,
        hold_gap: u64,
        hold_pending: u64,
        pending: impl Fn(Rnti) -> bool,
        out: &mut Vec<Vec<u8>>,
    ) {
        for (&src, s) in self.streams.iter_mut() {
            let Some(since) = s.since else { continue };
            if s.held.is_empty() {
                s.since = None;
                continue;
            }
            let waited = now.saturating_sub(since);
            if waited >= hold_pending || (waited >= hold_gap && !pending(src)) {
                self.counters.gaps_given_up += 1;
                Self::release_all(s, out);
            }
        }
    }

    /// TBs held now.
    pub fn held(&self) -> usize {
        self.streams.values().map(|s| s.held.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::NodeId;
    use std::collections::VecDeque;

    fn tb(src: u8, seq: u16) -> Vec<u8> {
        let mut b = vec![0u8; 40];
        MacHeader {
            src: Rnti::of_node(NodeId(src)),
            dst: Rnti::of_node(NodeId(2)),
            seq,
            segments: 0,
            backlog: 0,
            grant: Rnti::NONE,
        }
        .emit(&mut b)
        .unwrap();
        b
    }

    fn seq_of(b: &[u8]) -> u16 {
        MacHeader::parse(b).unwrap().seq
    }

    #[test]
    fn dci_round_trips_and_rejects_blank_messages() {
        let mut d = Dci {
            src: 9,
            gen: 0xA7,
            has_tb: true,
            harq: true,
            process: 13,
            ndi: true,
            rv_index: 2,
            size_sf: 9,
            fb_valid: true,
            fb_half: 1,
            fb_peer: 8,
            fb_gen: 0x11,
            fb: [0; 4],
        };
        for i in 0..8 {
            let nib = (i as u8 * 5) & 0x0F;
            d.fb[i / 2] |= nib << (4 * (i % 2));
        }
        let b = d.to_bytes();
        assert_eq!(Dci::parse(&b), Ok(d));
        assert_eq!(d.rv(), 3);
        let (ndi, ok, count) = d.feedback(3);
        assert_eq!((ndi, ok, count), (true, true, 3)); // 15
        assert_eq!(Dci::parse(&[0u8; DCI_BYTES]), Err(DciError::NoGeneration));
        let mut bad = b;
        bad[3] = 0xA0;
        assert_eq!(Dci::parse(&bad), Err(DciError::BadSubframe(10)));
    }

    /// A sender and a receiver over a virtual air: every transmission (data and control)
    /// takes `lead + 1` subframes; a TB's first transmission fails with `p_first`, a
    /// combined retransmission with `p_retx`; each control message is lost with `p_ctrl`.
    /// Returns (delivered seqs in order, sender counters, receiver counters).
    fn run(
        p_first: f64,
        p_retx: f64,
        p_ctrl: f64,
        tbs: u16,
        seed: u64,
    ) -> (Vec<u16>, HarqTxCounters, Reorder) {
        let lead = 8u64;
        let cfg = HarqConfig::for_tx_lead(lead);
        let mut tx = HarqTx::new(cfg);
        let mut rx = HarqRx::new(cfg);
        let mut reorder = Reorder::new();
        let mut rng = seed;
        let mut coin = |p: f64| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((rng >> 11) as f64 / (1u64 << 53) as f64) < p
        };
        // In flight: (arrival subframe, dci, tb bytes, combined decode?).
        let mut to_rx: VecDeque<(u64, Dci, Vec<u8>)> = VecDeque::new();
        let mut to_tx: VecDeque<(u64, Dci)> = VecDeque::new();
        let (a_gen, b_gen) = (0x31, 0x77);
        let mut next_seq = 0u16;
        let mut delivered = Vec::new();
        let mut out = Vec::new();
        for n in 0..20_000u64 {
            // Sender: feedback that arrived, timeouts, then this subframe's transmission.
            while to_tx.front().is_some_and(|m| m.0 <= n) {
                let (_, d) = to_tx.pop_front().unwrap();
                tx.on_feedback(2, &d, a_gen);
            }
            tx.poll(n);
            let mut d = Dci {
                src: 1,
                gen: a_gen,
                ..Dci::default()
            };
            let mut payload = None;
            if let Some((plan, bytes)) = tx.retransmission() {
                let bytes = bytes.to_vec();
                tx.resent(plan.process, n);
                payload = Some((plan, bytes));
            } else if next_seq < tbs && tx.has_free() {
                let b = tb(1, next_seq);
                next_seq += 1;
                let plan = tx.start(2, 0, &b, n).unwrap();
                payload = Some((plan, b));
            }
            if let Some((plan, bytes)) = payload {
                d.has_tb = true;
                d.harq = true;
                d.process = plan.process;
                d.ndi = plan.ndi;
                d.rv_index = plan.rv_index;
                if !coin(p_ctrl) {
                    to_rx.push_back((n + lead + 1, d, bytes));
                }
            }
            // Receiver.
            while to_rx.front().is_some_and(|m| m.0 <= n) {
                let (_, d, bytes) = to_rx.pop_front().unwrap();
                if rx.on_heard(&d, n) {
                    reorder.reset(Rnti::of_node(NodeId(d.src)), &mut out);
                }
                let action = rx.on_dci(&d, n);
                let p = if action == RxAction::Combine {
                    p_retx
                } else {
                    p_first
                };
                let ok = !coin(p);
                rx.on_result(&d, action, ok);
                if ok {
                    reorder.push(bytes, n, &mut out);
                }
            }
            let pending = rx.pending(1, n);
            reorder.poll(n, cfg.gap_hold, cfg.reorder_hold, |_| pending, &mut out);
            delivered.extend(out.drain(..).map(|b| seq_of(&b)));
            // The receiver answers in every subframe (a master's carrier is always on).
            let mut fb = Dci {
                src: 2,
                gen: b_gen,
                ..Dci::default()
            };
            rx.fill_feedback(&mut fb);
            if fb.fb_valid && !coin(p_ctrl) {
                to_tx.push_back((n + lead + 1, fb));
            }
        }
        assert_eq!(next_seq, tbs, "the sender got every TB out");
        assert_eq!(tx.busy(), 0, "every process settled");
        (delivered, tx.counters, reorder)
    }

    #[test]
    fn a_clean_link_acks_everything_first_time() {
        let (got, c, r) = run(0.0, 0.0, 0.0, 2000, 1);
        assert_eq!(got, (0..2000).collect::<Vec<u16>>());
        assert_eq!((c.new_tbs, c.acked, c.retransmissions), (2000, 2000, 0));
        assert_eq!((c.timeouts, c.gave_up, r.counters.held), (0, 0, 0));
    }

    #[test]
    fn ten_percent_bler_loses_nothing_and_delivers_in_order_once() {
        let (got, c, r) = run(0.10, 0.01, 0.0, 2000, 2);
        assert_eq!(
            got,
            (0..2000).collect::<Vec<u16>>(),
            "in order, once, none lost"
        );
        assert!(c.retransmissions >= 150, "{c:?}");
        assert_eq!(c.gave_up, 0);
        assert!(r.counters.held > 0);
        assert_eq!(r.counters.late, 0);
    }

    #[test]
    fn lost_control_messages_cost_retransmissions_never_duplicates() {
        // 5 % of control messages lost both ways, 20 % BLER: the sender resends on
        // timeouts, the receiver sees repeats of TBs it already decoded; the MAC still gets
        // each TB at most once and in order.
        let (got, c, r) = run(0.20, 0.05, 0.05, 2000, 3);
        assert!(c.timeouts > 0 && c.acked > 0, "{c:?}");
        let mut sorted = got.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), got.len(), "no duplicate delivery");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
        // What was lost for good is what the sender gave up (a lost control message on
        // the first transmission can make the receiver decode a TB the sender then gives
        // up on, so delivered may exceed acked, never the other way round).
        let lost = 2000 - got.len() as u64;
        assert!(
            lost <= c.gave_up + r.counters.late,
            "{lost} lost; {c:?} {r:?}"
        );
        assert!(lost < 10, "{lost} of 2000 lost");
    }

    #[test]
    fn a_new_sender_generation_is_not_acked_by_its_predecessors_reports() {
        let cfg = HarqConfig::for_tx_lead(8);
        let mut rx = HarqRx::new(cfg);
        // The old sender (gen 5) got process 0 with ndi 1 through.
        let old = Dci {
            src: 1,
            gen: 5,
            has_tb: true,
            harq: true,
            ndi: true,
            ..Dci::default()
        };
        assert!(!rx.on_heard(&old, 10));
        let a = rx.on_dci(&old, 10);
        rx.on_result(&old, a, true);
        let mut stale = Dci {
            src: 2,
            gen: 9,
            ..Dci::default()
        };
        rx.fill_feedback(&mut stale);
        assert!(stale.fb_valid && stale.fb_gen == 5 && stale.feedback(0) == (true, true, 1));
        // A new sender (gen 6) starts process 0 with ndi 1 too: the stale report (gen 5)
        // does not ACK it.
        let mut tx = HarqTx::new(cfg);
        let plan = tx.start(2, 0, &tb(1, 0), 100).unwrap();
        assert_eq!((plan.process, plan.ndi), (0, true));
        tx.on_feedback(2, &stale, 6);
        assert_eq!(tx.busy(), 1);
        // The receiver hears gen 6: state reset, the TB is fresh, and its report ACKs.
        let new = Dci { gen: 6, ..old };
        assert!(rx.on_heard(&new, 110));
        assert_eq!(rx.on_dci(&new, 110), RxAction::Fresh);
        rx.on_result(&new, RxAction::Fresh, true);
        let mut fb = Dci {
            src: 2,
            gen: 9,
            ..Dci::default()
        };
        rx.fill_feedback(&mut fb);
        tx.on_feedback(2, &fb, 6);
        assert_eq!((tx.busy(), tx.counters.acked), (0, 1));
        assert_eq!(rx.counters.new_generations, 1);
    }

    #[test]
    fn reorder_holds_a_gap_longer_while_a_retransmission_is_known_to_come() {
        let mut r = Reorder::new();
        let mut out = Vec::new();
        let seqs = |out: &mut Vec<Vec<u8>>| out.drain(..).map(|b| seq_of(&b)).collect::<Vec<_>>();
        r.push(tb(1, 0), 0, &mut out);
        // 1 is missing: 2 and 3 wait; 1 arrives and all three go in order.
        r.push(tb(1, 2), 1, &mut out);
        r.push(tb(1, 3), 2, &mut out);
        assert_eq!(seqs(&mut out), vec![0]);
        r.poll(5, 10, 100, |_| true, &mut out);
        r.push(tb(1, 1), 5, &mut out);
        assert_eq!(seqs(&mut out), vec![1, 2, 3]);
        // 4 missing, nothing known pending: 5 waits hold_gap, then goes (4 is lost).
        r.push(tb(1, 5), 6, &mut out);
        r.poll(10, 10, 100, |_| false, &mut out);
        assert!(out.is_empty());
        r.poll(16, 10, 100, |_| false, &mut out);
        assert_eq!(seqs(&mut out), vec![5]);
        // 4 arrives late: dropped, as is a duplicate of 5.
        r.push(tb(1, 4), 17, &mut out);
        r.push(tb(1, 5), 17, &mut out);
        assert!(out.is_empty());
        assert_eq!(r.counters.late, 2);
        // While a retransmission is known to be pending it waits up to hold_pending.
        r.push(tb(1, 7), 20, &mut out);
        r.poll(60, 10, 100, |_| true, &mut out);
        assert!(out.is_empty());
        r.poll(120, 10, 100, |_| true, &mut out);
        assert_eq!(seqs(&mut out), vec![7]);
        assert_eq!(r.counters.gaps_given_up, 2);
        // Another sender's stream is independent; sequence wraps.
        r.push(tb(3, u16::MAX), 130, &mut out);
        r.push(tb(3, 0), 131, &mut out);
        assert_eq!(seqs(&mut out), vec![u16::MAX, 0]);
        assert_eq!(r.held(), 0);
    }
}

//! The modem's per-subframe core, sans-IO: RX subframes in (absolute index + samples),
//! deliveries and TX subframes out. The shell (`run`) feeds it from the radio and the TUN.
//!
//! Subframe `n` covers radio samples `[frame_offset + n·sps, frame_offset + (n+1)·sps)`;
//! `n % 10` is the subframe within the frame. Master / base station: `frame_offset = 0`
//! (frame 0 at radio sample 0). Slave: from cell search (cold) or Control (warm).

use crate::phylink::{derotate, mean_power, rotate, Decoded, LinkError, PhyLink, TxData};
use crate::proto::Role;
use ferry_mac::harq::{
    Dci, HarqConfig, HarqRx, HarqRxCounters, HarqTx, HarqTxCounters, Reorder, ReorderCounters,
    RxAction, MAX_PEERS, MAX_PROCESSES,
};
use ferry_mac::{AddressPlan, Delivery, Mac, MacConfig, NodeId, Rnti, Schedule};
use ferry_migrate::Control;
use ferry_phy::SoftBuffer;
use ferry_phy::SubframeKind;
use num_complex::Complex32;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Power above the tracked noise floor that counts as "someone transmitted" (≈ 9 dB).
const PRESENCE_RATIO: f32 = 8.0;
/// Power above the floor below which a HARQ receiver does not look for a control message in
/// a subframe that may be silent (≈ 1 dB).
const WEAK_PRESENCE_RATIO: f32 = 1.25;
/// Per-subframe upward leak of the noise-floor tracker (it follows minima at once).
const FLOOR_LEAK: f32 = 1.01;
/// CRS SNR above which an undecodable subframe on an always-on carrier (a master's downlink)
/// counts as a decode failure rather than as nobody transmitting. Noise alone estimates
/// about −10 dB (the CRS average over its smoothing window); the link's decoding threshold
/// is near −1.5 dB, so failures there must count (3 dB hid most of them).
const SIGNAL_SNR_DB: f32 = -5.0;
/// Gain of the CFO tracking loop (fraction of the residual applied per decoded subframe).
const CFO_LOOP_GAIN: f64 = 0.05;

/// Counters of the core (the shell adds its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreCounters {
    /// RX subframes processed.
    pub subframes: u64,
    /// Data TBs decoded.
    pub decode_ok: u64,
    /// Filler TBs decoded (idle master subframes).
    pub filler_ok: u64,
    /// Subframes with signal whose CRC failed.
    pub decode_fail: u64,
    /// TBs built for transmission.
    pub tx_blocks: u64,
    /// Packets relayed for other nodes.
    pub relayed: u64,
    /// Packets the MAC dropped on receive (no route, TTL, queue full).
    pub rx_dropped: u64,
    /// MAC bytes the link's subframes offered, both directions (each subframe's TB capacity,
    /// counted once on the MAC's clock whoever transmits in it).
    pub air_capacity_bytes: u64,
}

/// What the core did with one RX subframe.
#[derive(Debug, Default)]
pub struct RxOutcome {
    /// IP packets for this host's TUN.
    pub local: Vec<Vec<u8>>,
    /// IP packets for this host decoded outside the MAC's RX window (a warm replica's
    /// copies of what the primary delivers).
    pub copies: Vec<Vec<u8>>,
    /// Whether a TB was decoded (data or filler).
    pub decoded: bool,
}

/// HARQ counters of a core (status `harq`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarqCounters {
    /// This sender's generation.
    pub generation: u8,
    /// Control messages decoded.
    pub control_ok: u64,
    /// Subframes with energy whose control message did not decode.
    pub control_fail: u64,
    /// Sender side.
    pub tx: HarqTxCounters,
    /// Receiver side.
    pub rx: HarqRxCounters,
    /// Reordering towards the MAC.
    pub reorder: ReorderCounters,
    /// Subframes sent only to carry feedback.
    pub feedback_only: u64,
}

/// What [`ModemCore::presence`] found about an RX subframe.
struct Presence {
    /// The peer's direction is the downlink (a slave hearing its master).
    downlink: bool,
    /// The carrier is always on (a master's downlink): no energy gate.
    always_on: bool,
    /// Someone transmitted (always, on an always-on carrier).
    present: bool,
    /// Mean power of the subframe.
    power: f32,
}

/// HARQ state of a core.
struct Harq {
    cfg: HarqConfig,
    gen: u8,
    me: u8,
    tx: HarqTx,
    rx: HarqRx,
    reorder: Reorder,
    soft: HashMap<(u8, u8), SoftBuffer>,
    control_ok: u64,
    control_fail: u64,
    feedback_only: u64,
    /// TBs the reorder buffer released, for the MAC.
    ready: Vec<Vec<u8>>,
}

/// The per-subframe core.
pub struct ModemCore {
    role: Role,
    phy: PhyLink,
    mac: Mac,
    plan: AddressPlan,
    frame_offset: u64,
    cfo_hz: f64,
    snr_db: Option<f32>,
    noise_floor: Option<f32>,
    /// Subframes this node transmitted in (so it does not try to decode its own slot).
    tx_sent: [u64; 10],
    tx_buf: Vec<u8>,
    harq: Option<Harq>,
    /// Counters.
    pub counters: CoreCounters,
}

/// Map Control `workmode` to the status role and the MAC role.
pub fn roles(c: &Control) -> (Role, ferry_mac::Role) {
    match c.workmode {
        ferry_migrate::control::WorkMode::Master => (Role::Master, ferry_mac::Role::Master),
        ferry_migrate::control::WorkMode::Slave => (Role::Slave, ferry_mac::Role::Slave),
        ferry_migrate::control::WorkMode::BaseStation => {
            (Role::BaseStation, ferry_mac::Role::BaseStation)
        }
        // Auto mode: a terminal listens (as a slave would) until elected; the shell builds
        // its cores with the elected workmode (run.rs, crate::elect).
        ferry_migrate::control::WorkMode::Auto => (Role::Slave, ferry_mac::Role::Slave),
    }
}

/// Why a core could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// PHY / Control mismatch.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// MAC configuration refused.
    #[error("MAC: {0}")]
    Mac(#[from] ferry_mac::ConfigError),
}

impl ModemCore {
    /// A core for `control` as node `node`, frame grid at `frame_offset`, RX CFO `cfo_hz`.
    pub fn new(
        control: &Control,
        node: NodeId,
        plan: AddressPlan,
        frame_offset: u64,
        cfo_hz: f64,
        discovery_period: Option<u64>,
    ) -> Result<ModemCore, CoreError> {
        Self::with_grant_delay(
            control,
            node,
            plan,
            frame_offset,
            cfo_hz,
            discovery_period,
            None,
        )
    }

    /// Like [`ModemCore::new`] with the base-station grant delay `k` (subframes from a grant
    /// to the uplink subframe it grants; cell-wide, must exceed the slaves' TX lead).
    pub fn with_grant_delay(
        control: &Control,
        node: NodeId,
        plan: AddressPlan,
        frame_offset: u64,
        cfo_hz: f64,
        discovery_period: Option<u64>,
        grant_delay: Option<u64>,
    ) -> Result<ModemCore, CoreError> {
        let phy = PhyLink::new(control)?;
        let (role, mac_role) = roles(control);
        let mut schedule = if phy.is_fdd() {
            Schedule::fdd()
        } else {
            Schedule::tdd(control.dl_ul_assign)?
        };
        if let Some(k) = grant_delay {
            schedule = schedule.with_grant_delay(k)?;
        }
        let mut cfg = MacConfig::new(node, mac_role, schedule);
        if let Some(p) = discovery_period {
            cfg.discovery = ferry_mac::DiscoveryConfig::with_period(p);
        }
        let mac = Mac::new(cfg)?;
        Ok(ModemCore {
            role,
            phy,
            mac,
            plan,
            frame_offset,
            cfo_hz,
            snr_db: None,
            noise_floor: None,
            tx_sent: [u64::MAX; 10],
            tx_buf: Vec::new(),
            harq: None,
            counters: CoreCounters::default(),
        })
    }

    /// Run HARQ on this link (every node of it must): `gen` is this sender's generation, a
    /// non-zero byte that differs from any earlier sender with this node ID (a restart or a
    /// migration destination picks a fresh random one). Refused under a base station: a
    /// retransmitted TB's uplink grant would name the wrong subframe.
    pub fn enable_harq(&mut self, cfg: HarqConfig, gen: u8) -> Result<(), LinkError> {
        if self.role == Role::BaseStation || self.mac.config().role == ferry_mac::Role::BaseStation
        {
            return Err(LinkError::Unsupported(
                "HARQ under a base station (workmode 2) is not built: a retransmitted TB's \
                 uplink grant would name the wrong subframe; use workmode 0/1"
                    .into(),
            ));
        }
        cfg.validate().map_err(LinkError::Unsupported)?;
        if gen == 0 {
            return Err(LinkError::Unsupported("HARQ generation 0".into()));
        }
        self.harq = Some(Harq {
            cfg,
            gen,
            me: self.mac.config().node.0,
            tx: HarqTx::new(cfg),
            rx: HarqRx::new(cfg),
            reorder: Reorder::new(),
            soft: HashMap::new(),
            control_ok: 0,
            control_fail: 0,
            feedback_only: 0,
            ready: Vec::new(),
        });
        Ok(())
    }

    /// HARQ counters (`None` when HARQ is off).
    pub fn harq_counters(&self) -> Option<HarqCounters> {
        self.harq.as_ref().map(|h| HarqCounters {
            generation: h.gen,
            control_ok: h.control_ok,
            control_fail: h.control_fail,
            tx: h.tx.counters,
            rx: h.rx.counters,
            reorder: h.reorder.counters,
            feedback_only: h.feedback_only,
        })
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The MAC (routes, counters, queue).
    pub fn mac(&self) -> &Mac {
        &self.mac
    }
    /// The MAC, mutably (routes, handover).
    pub fn mac_mut(&mut self) -> &mut Mac {
        &mut self.mac
    }
    /// The waveform.
    pub fn phy(&self) -> &PhyLink {
        &self.phy
    }
    /// Samples per subframe.
    pub fn sps(&self) -> u64 {
        self.phy.sps() as u64
    }
    /// Sample where subframe 0 of the grid starts.
    pub fn frame_offset(&self) -> u64 {
        self.frame_offset
    }
    /// Current CFO estimate (Hz).
    pub fn cfo_hz(&self) -> f64 {
        self.cfo_hz
    }
    /// Smoothed SNR (dB).
    pub fn snr_db(&self) -> Option<f32> {
        self.snr_db
    }
    /// Radio sample time where subframe `n` starts.
    pub fn subframe_start(&self, n: u64) -> u64 {
        self.frame_offset + n * self.sps()
    }
    /// The subframe containing radio sample `t` (None before the grid starts).
    pub fn subframe_of(&self, t: u64) -> Option<u64> {
        t.checked_sub(self.frame_offset).map(|d| d / self.sps())
    }

    /// Queue an IPv4 packet from the TUN (or the forward port).
    pub fn enqueue_ip(&mut self, pkt: &[u8]) -> Result<NodeId, ferry_mac::EnqueueError> {
        let plan = self.plan.clone();
        self.mac.enqueue_ip(&plan, pkt)
    }

    /// Whether the peer side may transmit in subframe `sf` as seen by this role.
    fn listens(&self, n: u64) -> bool {
        let sf = (n % 10) as usize;
        if self.phy.is_fdd() {
            // The receiver sits on the other direction's carrier: every subframe may carry
            // a TB, and a node never hears its own transmission there.
            return true;
        }
        match (self.role, self.phy.kind(sf)) {
            (_, SubframeKind::Special) => false,
            (Role::Master | Role::BaseStation, SubframeKind::Uplink) => true,
            (Role::Slave, SubframeKind::Downlink) => true,
            // Slaves hear each other's uplink (direct D2D) unless they sent in it.
            (Role::Slave, SubframeKind::Uplink) => self.tx_sent[sf] != n,
            _ => false,
        }
    }

    /// Process RX subframe `n` (`samples` are exactly one subframe, modified in place).
    pub fn on_rx(&mut self, n: u64, samples: &mut [Complex32]) -> RxOutcome {
        self.on_rx_antennas(n, &mut [samples])
    }

    /// Process RX subframe `n` received on this node's antennas (one buffer each, exactly
    /// one subframe, modified in place). Presence, the noise floor and HARQ look at antenna
    /// 0; the TB is decoded from all of them.
    pub fn on_rx_antennas(&mut self, n: u64, rx: &mut [&mut [Complex32]]) -> RxOutcome {
        self.counters.subframes += 1;
        let mut out = RxOutcome::default();
        let Some(first) = rx.first_mut() else {
            return out;
        };
        if !self.listens(n) {
            self.track_floor(mean_power(first));
            self.harq_poll(n, &mut out);
            return out;
        }
        if self.harq.is_some() {
            // HARQ runs on one antenna only (PhyLink refuses it with two).
            self.on_rx_harq(n, first, &mut out);
            self.harq_poll(n, &mut out);
            return out;
        }
        let sf = (n % 10) as usize;
        let Presence {
            downlink, present, ..
        } = self.presence(n, first);
        if !present {
            return out;
        }
        let t0 = self.subframe_start(n);
        let r = if self.phy.tx_antennas() == 1 && self.phy.rx_antennas() == 1 {
            derotate(first, t0, self.cfo_hz, self.phy.sample_rate());
            self.phy.decode(sf, first)
        } else {
            // The antennas of one radio share its LO: one CFO for all.
            let k = self.phy.rx_antennas().min(rx.len());
            let rx = &mut rx[..k];
            for s in rx.iter_mut() {
                derotate(s, t0, self.cfo_hz, self.phy.sample_rate());
            }
            self.phy.decode_antennas(sf, rx)
        };
        self.on_decoded(n, r, downlink, &mut out);
        out
    }

    fn deliver(&mut self, n: u64, mac: &[u8], out: &mut RxOutcome) {
        for d in self.mac.on_received(n, mac) {
            match d {
                Delivery::Local { packet, .. } => out.local.push(packet),
                Delivery::Forwarded { .. } => self.counters.relayed += 1,
                Delivery::Dropped { .. } => self.counters.rx_dropped += 1,
            }
        }
        out.copies.extend(self.mac.take_suppressed());
    }

    /// Subframe `n`'s direction and whether someone transmitted in it; learns the noise floor
    /// from the subframes that may be silent.
    fn presence(&mut self, n: u64, samples: &[Complex32]) -> Presence {
        // FDD: what a slave hears is the downlink carrier, what a master hears the uplink.
        let downlink = if self.phy.is_fdd() {
            self.role == Role::Slave
        } else {
            self.phy.kind((n % 10) as usize) == SubframeKind::Downlink
        };
        let power = mean_power(samples);
        // A master's D subframes always carry a TB (data or filler) unless it missed the
        // deadline; U slots only when someone transmits. Only a slot with energy counts as a
        // decode attempt, so `decode_fail` means real channel errors.
        // A master is on air in every downlink subframe (every subframe of its FDD carrier),
        // so a slave decodes each of them whatever its power (an energy gate would stop it
        // below ~9 dB SNR) and counts a CRC failure only when the reference signals show a
        // signal was there.
        let always_on = self.role == Role::Slave && downlink;
        let present = always_on || self.noise_floor.is_none_or(|f| power > f * PRESENCE_RATIO);
        if !always_on {
            self.track_floor(power);
        }
        Presence {
            downlink,
            always_on,
            present,
            power,
        }
    }

    /// Run `f` on the HARQ state with the reorder buffer's output list, then hand the TBs it
    /// released to the MAC (the list's allocation is kept for the next subframe).
    fn release(
        &mut self,
        n: u64,
        out: &mut RxOutcome,
        f: impl FnOnce(&mut Harq, &mut Vec<Vec<u8>>),
    ) {
        let Some(h) = self.harq.as_mut() else { return };
        let mut ready = std::mem::take(&mut h.ready);
        f(h, &mut ready);
        for tb in ready.drain(..) {
            self.deliver(n, &tb, out);
        }
        if let Some(h) = self.harq.as_mut() {
            h.ready = ready;
        }
    }

    /// HARQ receive: the control message says who sent what (process, NDI, RV, size) and
    /// carries feedback for our own transmissions; the TB is combined with earlier
    /// transmissions of the same process; decoded MAC TBs go through the reorder buffer.
    fn on_rx_harq(&mut self, n: u64, samples: &mut [Complex32], out: &mut RxOutcome) {
        let sf = (n % 10) as usize;
        let Presence {
            downlink,
            always_on,
            present,
            power: p,
        } = self.presence(n, samples);
        // A subframe nobody may be transmitting in (a master's uplink) is demodulated only
        // when its power stands out of the floor at all: over a whole subframe the noise's
        // mean power varies by a few percent, so 1 dB catches signals from about −6 dB SNR
        // and skips the FFTs and control decoding of idle subframes.
        if !always_on
            && self
                .noise_floor
                .is_some_and(|f| p <= f * WEAK_PRESENCE_RATIO)
        {
            return;
        }
        let t0 = self.subframe_start(n);
        derotate(samples, t0, self.cfo_hz, self.phy.sample_rate());
        let Some(q) = self.phy.receive(sf, samples) else {
            return;
        };
        let dci = self
            .phy
            .decode_control(sf)
            .and_then(|b| Dci::parse(&b).ok());
        let Some(h) = self.harq.as_mut() else { return };
        let Some(d) = dci.filter(|d| d.src != h.me) else {
            if present {
                h.control_fail += 1;
                // A sender without HARQ, or a control message lost to noise: try the TB as
                // a first transmission of this subframe's size.
                let r = self.phy.decode_received(sf, q, sf, 0, None);
                self.on_decoded(n, r, downlink, out);
            }
            return;
        };
        h.control_ok += 1;
        if h.rx.on_heard(&d, n) {
            // A new generation of that sender: its old soft bits and sequence are void.
            h.soft.retain(|&(src, _), _| src != d.src);
            self.release(n, out, |h, r| {
                h.reorder.reset(Rnti::of_node(NodeId(d.src)), r);
            });
        }
        let Some(h) = self.harq.as_mut() else { return };
        if d.fb_valid && d.fb_peer == h.me {
            h.tx.on_feedback(d.src, &d, h.gen);
        }
        if !d.has_tb {
            return;
        }
        let size_sf = usize::from(d.size_sf);
        if !d.harq {
            let r = self.phy.decode_received(sf, q, size_sf, d.rv(), None);
            self.on_decoded(n, r, downlink, out);
            return;
        }
        let action = h.rx.on_dci(&d, n);
        if h.soft.len() >= MAX_PEERS * MAX_PROCESSES && !h.soft.contains_key(&(d.src, d.process)) {
            h.soft.clear();
        }
        let soft = h.soft.entry((d.src, d.process)).or_default();
        if action == RxAction::Fresh {
            soft.clear();
        }
        let r = self.phy.decode_received(sf, q, size_sf, d.rv(), Some(soft));
        let ok = matches!(r, Decoded::Data { .. } | Decoded::Filler { .. });
        if let Some(h) = self.harq.as_mut() {
            h.rx.on_result(&d, action, ok);
        }
        self.on_decoded(n, r, downlink, out);
    }

    /// Count, track and deliver one decode result; with HARQ, MAC TBs go through the
    /// reorder buffer.
    fn on_decoded(&mut self, n: u64, r: Decoded, downlink: bool, out: &mut RxOutcome) {
        let always_on = self.role == Role::Slave && downlink;
        match r {
            Decoded::Data {
                mac,
                snr_db,
                residual_cfo_hz,
            } => {
                self.counters.decode_ok += 1;
                out.decoded = true;
                self.track(snr_db, residual_cfo_hz, downlink);
                if self.harq.is_some() {
                    self.release(n, out, |h, r| h.reorder.push(mac, n, r));
                } else {
                    self.deliver(n, &mac, out);
                }
            }
            Decoded::Filler {
                snr_db,
                residual_cfo_hz,
            } => {
                self.counters.filler_ok += 1;
                out.decoded = true;
                self.track(snr_db, residual_cfo_hz, downlink);
            }
            Decoded::CrcFail { snr_db } => {
                if !always_on || snr_db >= SIGNAL_SNR_DB {
                    self.counters.decode_fail += 1;
                }
            }
            Decoded::NoTb => {}
        }
    }

    /// HARQ time passes: the reorder buffer gives up gaps that will not be filled.
    fn harq_poll(&mut self, n: u64, out: &mut RxOutcome) {
        self.release(n, out, |h, r| {
            let rx = &h.rx;
            h.reorder.poll(
                n,
                h.cfg.gap_hold,
                h.cfg.reorder_hold,
                |src| src.node().is_some_and(|s| rx.pending(s.0, n)),
                r,
            );
        });
    }

    fn track_floor(&mut self, p: f32) {
        self.noise_floor = Some(match self.noise_floor {
            Some(f) if p >= f => f * FLOOR_LEAK,
            _ => p.max(1e-12),
        });
    }

    fn track(&mut self, snr: f32, residual: f32, from_master: bool) {
        if snr.is_finite() {
            self.snr_db = Some(match self.snr_db {
                Some(s) => 0.9 * s + 0.1 * snr,
                None => snr,
            });
        }
        // A slave tracks its master's frequency (and pre-compensates its TX with it).
        if from_master && self.role == Role::Slave && residual.is_finite() {
            let r = f64::from(residual).clamp(-500.0, 500.0);
            self.cfo_hz = (self.cfo_hz + CFO_LOOP_GAIN * r).clamp(-15_000.0, 15_000.0);
        }
    }

    /// Advance the MAC's clock for subframe `n` without transmitting (its tx window must
    /// exclude `n`, so nothing leaves the queue).
    pub fn tick_silent(&mut self, n: u64) {
        let cap = self.phy.mac_capacity((n % 10) as usize);
        self.counters.air_capacity_bytes += cap as u64;
        let _ = self.mac.on_subframe(n, cap);
    }

    /// The link's use so far: (MAC bytes its subframes offered in both directions, segment
    /// bytes that carried something — sent by this node or decoded from another). Their
    /// ratio over an interval is the share of the air the cell used, what an LTE scheduler
    /// would have allocated in PRBs.
    pub fn air_use(&self) -> (u64, u64) {
        let m = self.mac.counters();
        (
            self.counters.air_capacity_bytes,
            m.tx_payload_bytes + m.rx_payload_bytes,
        )
    }

    /// Build TX subframe `n` into `out`; `false` when this node is silent in `n`.
    /// Must be called once for every `n` in increasing order (the MAC's clock).
    pub fn on_tx(&mut self, n: u64, out: &mut Vec<Complex32>) -> Result<bool, LinkError> {
        self.on_tx_antennas(n, std::slice::from_mut(out))
    }

    /// [`ModemCore::on_tx`] into one buffer per TX antenna of the link.
    pub fn on_tx_antennas(
        &mut self,
        n: u64,
        out: &mut [Vec<Complex32>],
    ) -> Result<bool, LinkError> {
        if out.len() != self.phy.tx_antennas() {
            return Err(LinkError::Unsupported(format!(
                "{} TX buffers for a link of {} TX antennas",
                out.len(),
                self.phy.tx_antennas()
            )));
        }
        self.counters.air_capacity_bytes += self.phy.mac_capacity((n % 10) as usize) as u64;
        if self.harq.is_some() {
            return self.on_tx_harq(n, &mut out[0]);
        }
        let sf = (n % 10) as usize;
        let kind = self.phy.kind(sf);
        let cap = self.phy.mac_capacity(sf);
        let tb = self.mac.on_subframe(n, cap);
        let send = match (self.role, kind) {
            // FDD: kind is always Downlink, so the master keeps its carrier on air in every
            // subframe and a slave sends only TBs on the uplink carrier.
            // The master keeps PSS/SSS/CRS on air in every D and S subframe.
            (Role::Master | Role::BaseStation, SubframeKind::Downlink | SubframeKind::Special) => {
                true
            }
            _ => tb.is_some(),
        };
        if !send {
            return Ok(false);
        }
        self.phy.encode(
            sf,
            tb.as_ref().map(|b| b.bytes.as_slice()),
            out,
            &mut self.tx_buf,
        )?;
        self.sent(n, tb.is_some(), out);
        Ok(true)
    }

    /// Book-keeping of a subframe built for TX: counts, own-slot memory, and a slave's CFO
    /// pre-compensation (the master then hears it on its own frequency).
    fn sent(&mut self, n: u64, with_tb: bool, out: &mut [Vec<Complex32>]) {
        if with_tb {
            self.counters.tx_blocks += 1;
        }
        self.tx_sent[(n % 10) as usize] = n;
        if self.role == Role::Slave {
            for o in out {
                rotate(
                    o,
                    self.subframe_start(n),
                    self.cfo_hz,
                    self.phy.sample_rate(),
                );
            }
        }
    }
}

impl ModemCore {
    /// HARQ transmit: a pending retransmission goes first (the MAC's queue waits), else a
    /// new TB starts a free process; every subframe sent carries the control message with
    /// the feedback for our peers, and a node with nothing else to send transmits for the
    /// feedback alone where it may transmit.
    fn on_tx_harq(&mut self, n: u64, out: &mut Vec<Complex32>) -> Result<bool, LinkError> {
        let sf = (n % 10) as usize;
        let kind = self.phy.kind(sf);
        let cap = self.phy.mac_capacity(sf);
        let Some(h) = self.harq.as_mut() else {
            return Ok(false);
        };
        h.tx.poll(n);
        let my_turn = cap > 0 && self.mac.tx_allowed(n);
        let mut d = Dci {
            src: h.me,
            gen: h.gen,
            ..Dci::default()
        };
        let mut retx: Option<Vec<u8>> = None;
        let mut fresh: Option<ferry_mac::TxBlock> = None;
        if let Some((plan, bytes)) = h.tx.retransmission().filter(|_| my_turn) {
            d.has_tb = true;
            d.harq = true;
            d.process = plan.process;
            d.ndi = plan.ndi;
            d.rv_index = plan.rv_index;
            d.size_sf = plan.size_sf;
            retx = Some(bytes.to_vec());
            h.tx.resent(plan.process, n);
            self.mac.skip_subframe(n);
        } else if my_turn && !h.tx.has_free() {
            if self.mac.has_queued() {
                h.tx.stalled();
            }
            self.mac.skip_subframe(n);
        } else {
            fresh = self.mac.on_subframe(n, cap);
        }
        let Some(h) = self.harq.as_mut() else {
            return Ok(false);
        };
        if let Some(tb) = &fresh {
            d.has_tb = true;
            d.size_sf = sf as u8;
            if let Some(node) = tb.dst.node() {
                if let Some(plan) = h.tx.start(node.0, sf as u8, &tb.bytes, n) {
                    d.harq = true;
                    d.process = plan.process;
                    d.ndi = plan.ndi;
                    d.rv_index = 0;
                }
            }
        }
        let master_on_air = matches!(
            (self.role, kind),
            (
                Role::Master | Role::BaseStation,
                SubframeKind::Downlink | SubframeKind::Special
            )
        );
        let has_data = retx.is_some() || fresh.is_some();
        let feedback_only =
            !has_data && !master_on_air && h.rx.has_news() && self.mac.tx_allowed(n);
        if !(has_data || master_on_air || feedback_only) {
            return Ok(false);
        }
        h.rx.fill_feedback(&mut d);
        if feedback_only {
            h.feedback_only += 1;
        }
        let data = match (&retx, &fresh) {
            (Some(b), _) => TxData::Mac {
                bytes: b,
                rv: d.rv(),
                size_sf: usize::from(d.size_sf),
            },
            (None, Some(tb)) => TxData::Mac {
                bytes: &tb.bytes,
                rv: 0,
                size_sf: sf,
            },
            (None, None) if master_on_air && self.phy.tb_bytes(sf) > 0 => {
                d.has_tb = true;
                d.size_sf = sf as u8;
                TxData::Filler
            }
            _ => TxData::None,
        };
        let msg = d.to_bytes();
        self.phy
            .encode_harq(sf, data, &msg, out, &mut self.tx_buf)?;
        self.sent(n, has_data, std::slice::from_mut(out));
        Ok(true)
    }
}

/// Cuts the radio's RX blocks into whole subframes on the grid.
pub struct SubframeAssembler {
    sps: u64,
    offset: u64,
    cur: Option<u64>,
    buf: Vec<Complex32>,
    filled: usize,
    /// Samples that never arrived (zero-filled inside a subframe or whole subframes skipped).
    pub gap_samples: u64,
    /// Whole subframes skipped because their samples never arrived.
    pub skipped_subframes: u64,
}

impl SubframeAssembler {
    /// Grid of `sps` samples starting at `offset`.
    pub fn new(sps: u64, offset: u64) -> Self {
        SubframeAssembler {
            sps: sps.max(1),
            offset,
            cur: None,
            buf: vec![Complex32::new(0.0, 0.0); sps.max(1) as usize],
            filled: 0,
            gap_samples: 0,
            skipped_subframes: 0,
        }
    }

    /// Feed a block starting at radio sample `t`; `emit(n, subframe)` for each completed
    /// subframe (in order). Samples before the grid, and old or duplicate samples, are ignored.
    pub fn push(
        &mut self,
        t: u64,
        samples: &[Complex32],
        mut emit: impl FnMut(u64, &mut [Complex32]),
    ) {
        let mut t = t;
        let mut s = samples;
        if t < self.offset {
            let skip = (self.offset - t).min(s.len() as u64) as usize;
            s = s.get(skip..).unwrap_or(&[]);
            t += skip as u64;
        }
        while !s.is_empty() {
            let n = (t - self.offset) / self.sps;
            let pos = ((t - self.offset) % self.sps) as usize;
            match self.cur {
                Some(c) if n < c || (n == c && pos < self.filled) => {
                    // Old or duplicate samples: skip up to the next expected one.
                    let have = self.offset + c * self.sps + self.filled as u64;
                    let skip = (have - t).min(s.len() as u64) as usize;
                    s = s.get(skip..).unwrap_or(&[]);
                    t += skip as u64;
                    continue;
                }
                Some(c) if n > c => {
                    if self.filled > 0 {
                        // The rest of subframe c never came: zero-fill and emit it.
                        self.gap_samples += (self.sps as usize - self.filled) as u64;
                        self.buf[self.filled..].fill(Complex32::new(0.0, 0.0));
                        emit(c, &mut self.buf);
                        self.skipped_subframes += n - c - 1;
                        self.gap_samples += (n - c - 1) * self.sps;
                    } else {
                        self.skipped_subframes += n - c;
                        self.gap_samples += (n - c) * self.sps;
                    }
                    self.cur = Some(n);
                    self.filled = 0;
                }
                None => {
                    self.cur = Some(n);
                    self.filled = pos;
                    self.buf[..pos].fill(Complex32::new(0.0, 0.0));
                }
                _ => {}
            }
            if pos > self.filled {
                self.gap_samples += (pos - self.filled) as u64;
                self.buf[self.filled..pos].fill(Complex32::new(0.0, 0.0));
                self.filled = pos;
            }
            let take = (self.sps as usize - self.filled).min(s.len());
            self.buf[self.filled..self.filled + take].copy_from_slice(&s[..take]);
            self.filled += take;
            s = &s[take..];
            t += take as u64;
            if self.filled == self.sps as usize {
                emit(n, &mut self.buf);
                self.cur = Some(n + 1);
                self.filled = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembler_cuts_on_the_grid_and_zero_fills_gaps() {
        let mut a = SubframeAssembler::new(10, 3);
        let mut got: Vec<(u64, Vec<f32>)> = Vec::new();
        let block = |t0: u64, n: usize| -> Vec<Complex32> {
            (0..n)
                .map(|i| Complex32::new((t0 + i as u64) as f32, 0.0))
                .collect()
        };
        // Samples 0..27: 0..3 before the grid, subframes 0 (3..13) and 1 (13..23) complete.
        a.push(0, &block(0, 27), |n, s| {
            got.push((n, s.iter().map(|c| c.re).collect()))
        });
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 0);
        assert_eq!(got[0].1[0], 3.0);
        assert_eq!(got[1].1[9], 22.0);
        // Gap: 27..35 missing, then 35..60 arrive: subframe 2 (23..33) zero-filled from 27.
        a.push(35, &block(35, 25), |n, s| {
            got.push((n, s.iter().map(|c| c.re).collect()))
        });
        let ns: Vec<u64> = got.iter().map(|g| g.0).collect();
        assert_eq!(ns, vec![0, 1, 2, 3, 4]);
        assert_eq!(got[2].1[3], 26.0);
        assert_eq!(got[2].1[4], 0.0);
        assert_eq!(got[3].1[0], 0.0); // 33, 34 missing
        assert_eq!(got[3].1[2], 35.0);
        assert_eq!(a.gap_samples, 8);
        // A duplicate block is ignored.
        a.push(50, &block(50, 10), |n, s| {
            got.push((n, s.iter().map(|c| c.re).collect()))
        });
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn assembler_skips_whole_missing_subframes() {
        let mut a = SubframeAssembler::new(10, 0);
        let mut ns = Vec::new();
        a.push(0, &[Complex32::new(1.0, 0.0); 10], |n, _| ns.push(n));
        a.push(40, &[Complex32::new(1.0, 0.0); 10], |n, _| ns.push(n));
        assert_eq!(ns, vec![0, 4]);
        assert_eq!(a.skipped_subframes, 3);
    }
}

#[cfg(test)]
mod loopback {
    use super::*;
    use serde_json::json;

    fn control(workmode: u8, bw: f64, rb: u8, tdd: u8, tm: u8) -> Control {
        control_dx(workmode, bw, rb, tdd, tm, 0)
    }

    fn control_dx(workmode: u8, bw: f64, rb: u8, tdd: u8, tm: u8, duplex: u8) -> Control {
        let bwv: serde_json::Value = if rb == 6 {
            1.4.into()
        } else {
            (bw as u64).into()
        };
        Control::from_value(&json!({
            "workmode": workmode, "phy_cell_ID": 7, "group_ID": 2, "cell_ID": 1, "CPtype": 0,
            "BW": bwv, "RBIdx": rb, "duplexMode": duplex, "numAntennaTX": 1, "numAntennaRX": 1,
            "DLULAssign": tdd, "trans_mode": 1, "type_mode": tm, "RNTI": 265
        }))
        .unwrap()
    }

    fn ping_packet(dst: u8, id: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[8] = 64;
        p[9] = 1;
        p[12..16].copy_from_slice(&[192, 168, 40, 9]);
        p[16..20].copy_from_slice(&[192, 168, 40, dst]);
        p
    }

    /// A 1.4 MHz master (node 9) and slave (node 8) with `DLULAssign` `tdd` and `duplexMode`
    /// `duplex`, discovery beacons every 50 ms.
    fn master_and_slave(tdd: u8, duplex: u8) -> (ModemCore, ModemCore) {
        let core = |workmode, node| {
            ModemCore::new(
                &control_dx(workmode, 1.4, 6, tdd, 1, duplex),
                NodeId(node),
                AddressPlan::default(),
                0,
                0.0,
                Some(50),
            )
            .unwrap()
        };
        (core(0, 9), core(1, 8))
    }

    /// Adds complex Gaussian noise of power `p_noise` (seeded, deterministic).
    fn add_noise(x: &mut [Complex32], p_noise: f32, seed: &mut u64) {
        let sigma = (p_noise / 2.0).sqrt();
        let mut uni = || {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        for s in x.iter_mut() {
            let r = (-2.0 * uni().ln()).sqrt();
            let th = 2.0 * std::f64::consts::PI * uni();
            *s += Complex32::new((r * th.cos()) as f32 * sigma, (r * th.sin()) as f32 * sigma);
        }
    }

    /// Master → slave pings over a noisy downlink (the uplink clean), with and without
    /// HARQ: (packets delivered in order, slave's first-transmission decode failures, core
    /// HARQ counters of the master).
    fn noisy_downlink(snr_db: f32, harq: bool, seed: u64) -> (Vec<u16>, u64, Option<HarqCounters>) {
        let (mut m, mut s) = master_and_slave(1, 0);
        if harq {
            let cfg = HarqConfig::for_tx_lead(0);
            m.enable_harq(cfg, 0x41).unwrap();
            s.enable_harq(cfg, 0x52).unwrap();
        }
        let sps = m.sps() as usize;
        let p_noise = crate::phylink::TX_POWER / 10f32.powf(snr_db / 10.0);
        let mut rng = seed;
        let mut got = Vec::new();
        let mut sent = 0u16;
        let mut buf = Vec::new();
        let mut up_noise = 1234u64;
        for n in 0..6000u64 {
            if n > 500
                && n % 20 == 0
                && sent < 200
                && m.enqueue_ip(&ping_packet(8, sent, 60)).is_ok()
            {
                sent += 1;
            }
            let mut air = if m.on_tx(n, &mut buf).unwrap() {
                buf.clone()
            } else {
                vec![Complex32::new(0.0, 0.0); sps]
            };
            add_noise(&mut air, p_noise, &mut rng);
            let mut up = if s.on_tx(n, &mut buf).unwrap() {
                buf.clone()
            } else {
                vec![Complex32::new(0.0, 0.0); sps]
            };
            // The uplink at 30 dB: the master's energy gate and the feedback work.
            add_noise(&mut up, crate::phylink::TX_POWER / 1000.0, &mut up_noise);
            let _ = m.on_rx(n, &mut up);
            for p in s.on_rx(n, &mut air).local {
                got.push(u16::from_be_bytes([p[4], p[5]]));
            }
        }
        assert_eq!(sent, 200, "routes never came up");
        eprintln!(
            "slave: TBs lost {} CRC failures {} of {} control failures {:?}",
            s.mac().counters().rx_tb_lost,
            s.counters.decode_fail,
            s.counters.decode_fail + s.counters.decode_ok + s.counters.filler_ok,
            s.harq_counters().map(|h| h.control_fail)
        );
        (got, s.counters.decode_fail, m.harq_counters())
    }

    #[test]
    fn harq_is_refused_under_a_base_station() {
        let mut c = control(2, 1.4, 6, 1, 1);
        c.harq = true;
        let e = crate::phylink::PhyLink::new(&c).err().expect("refused");
        assert!(e.to_string().contains("workmode 2"), "{e}");
        c.workmode = ferry_migrate::control::WorkMode::Master;
        assert!(crate::phylink::PhyLink::new(&c).is_ok());
    }

    #[test]
    fn harq_recovers_what_a_noisy_downlink_loses() {
        let snr = -1.5;
        let (plain, plain_fail, _) = noisy_downlink(snr, false, 5);
        let (harq, harq_fail, hc) = noisy_downlink(snr, true, 5);
        let hc = hc.unwrap();
        eprintln!("snr {snr}: plain {} delivered, {plain_fail} CRC failures; HARQ {} delivered, {harq_fail} CRC failures, {hc:?}", plain.len(), harq.len());
        assert!(
            plain_fail > 0 && plain.len() < 200,
            "the test's SNR is not noisy enough"
        );
        assert_eq!(
            harq,
            (0..200).collect::<Vec<u16>>(),
            "HARQ: every ping, in order, once {harq:?}"
        );
        assert!(hc.tx.retransmissions > 0 && hc.tx.gave_up == 0, "{hc:?}");
    }

    /// Master and slave cores joined sample for sample (no noise): every packet arrives,
    /// in order, through route discovery, for every TDD configuration and for FDD (where
    /// master→slave and slave→master are the two carriers).
    #[test]
    fn master_to_slave_through_the_waveform_every_tdd_config_and_fdd() {
        for (tdd, duplex) in (0..=6u8).map(|t| (t, 0)).chain([(1, 1)]) {
            let (mut m, mut s) = master_and_slave(tdd, duplex);
            let sps = m.sps() as usize;
            let silence = vec![Complex32::new(0.0, 0.0); sps];
            let mut got = Vec::new();
            let mut sent = 0u16;
            let mut buf = Vec::new();
            for n in 0..3000u64 {
                if n > 500
                    && n % 10 == 0
                    && sent < 100
                    && m.enqueue_ip(&ping_packet(8, sent, 84)).is_ok()
                {
                    sent += 1;
                }
                let mut air = if m.on_tx(n, &mut buf).unwrap() {
                    buf.clone()
                } else {
                    silence.clone()
                };
                if s.on_tx(n, &mut buf).unwrap() {
                    let mut up = buf.clone();
                    let _ = m.on_rx(n, &mut up);
                } else {
                    let _ = m.on_rx(n, &mut silence.clone());
                }
                for p in s.on_rx(n, &mut air).local {
                    got.push(u16::from_be_bytes([p[4], p[5]]));
                }
            }
            let tdd = if duplex == 1 {
                "FDD".to_string()
            } else {
                format!("TDD {tdd}")
            };
            assert_eq!(sent, 100, "{tdd}: routes never came up");
            assert_eq!(got, (0..100).collect::<Vec<u16>>(), "{tdd}");
            assert_eq!(s.counters.decode_fail, 0, "{tdd}");
            if duplex == 1 {
                // FDD: the master fills every subframe of its carrier (data or filler).
                assert_eq!(
                    s.counters.decode_ok + s.counters.filler_ok,
                    s.counters.subframes,
                    "{tdd}"
                );
            }
            assert_eq!(s.mac().routes(), vec![(NodeId(9), NodeId(9))]);
        }
    }

    /// The air-use counters follow the traffic: the share of the link's MAC bytes that carry
    /// something is small when idle (discovery beacons), grows with the packets both ways,
    /// never exceeds the capacity, and master and slave see the same link.
    #[test]
    fn air_use_follows_the_traffic_both_ways() {
        let (mut m, mut s) = master_and_slave(1, 0);
        let sps = m.sps() as usize;
        let silence = vec![Complex32::new(0.0, 0.0); sps];
        let mut buf = Vec::new();
        let mut marks = Vec::new();
        let mut carried = 0u64;
        for n in 0..4000u64 {
            if n == 1000 || n == 2000 || n == 3999 {
                marks.push((m.air_use(), s.air_use()));
            }
            // From 2000: a 200-byte packet each way every 10 ms (about half the link).
            if n >= 2000 && n % 10 == 0 {
                carried += 2 * 200;
                m.enqueue_ip(&ping_packet(8, n as u16, 200)).unwrap();
                let mut up = ping_packet(9, n as u16, 200);
                up[12..16].copy_from_slice(&[192, 168, 40, 8]);
                s.enqueue_ip(&up).unwrap();
            }
            let mut air = if m.on_tx(n, &mut buf).unwrap() {
                buf.clone()
            } else {
                silence.clone()
            };
            let mut up = if s.on_tx(n, &mut buf).unwrap() {
                buf.clone()
            } else {
                silence.clone()
            };
            let _ = m.on_rx(n, &mut up);
            let _ = s.on_rx(n, &mut air);
        }
        let use_of = |a: (u64, u64), b: (u64, u64)| {
            assert!(b.0 > a.0 && b.1 >= a.1);
            (b.1 - a.1) as f64 / (b.0 - a.0) as f64
        };
        let idle = use_of(marks[0].0, marks[1].0);
        let busy = use_of(marks[1].0, marks[2].0);
        let busy_slave = use_of(marks[1].1, marks[2].1);
        // The packets' bytes over the busy interval's capacity (segment headers add a little).
        let offered = carried as f64 / (marks[2].0 .0 - marks[1].0 .0) as f64;
        eprintln!(
            "air use idle {idle:.3} busy {busy:.3} (slave {busy_slave:.3}), IP bytes {offered:.3}"
        );
        assert!(idle < 0.05, "idle {idle}");
        assert!(busy > 10.0 * idle.max(0.005), "busy {busy} idle {idle}");
        assert!(
            busy >= offered * 0.9 && busy <= (offered * 1.3).min(1.0),
            "busy {busy} offered {offered}"
        );
        assert!(
            (busy - busy_slave).abs() < 0.05,
            "master {busy} slave {busy_slave}"
        );
    }

    /// FDD uplink packets from the slave reach the master in every subframe: 10 per frame
    /// where TDD configuration 5 offers one.
    #[test]
    fn fdd_uplink_uses_every_subframe() {
        let mut per_dx = Vec::new();
        for (tdd, duplex) in [(5u8, 0u8), (5, 1)] {
            let (mut m, mut s) = master_and_slave(tdd, duplex);
            let sps = m.sps() as usize;
            let silence = vec![Complex32::new(0.0, 0.0); sps];
            let mut buf = Vec::new();
            let mut up_blocks = 0u64;
            for n in 0..1000u64 {
                let mut air = if m.on_tx(n, &mut buf).unwrap() {
                    buf.clone()
                } else {
                    silence.clone()
                };
                let _ = s.on_rx(n, &mut air);
                // From subframe 500 the slave always has a packet for the master.
                if n >= 500 {
                    let mut p = ping_packet(9, n as u16, 84);
                    p[12..16].copy_from_slice(&[192, 168, 40, 8]);
                    p[16..20].copy_from_slice(&[192, 168, 40, 9]);
                    let _ = s.enqueue_ip(&p);
                }
                let sent = s.on_tx(n, &mut buf).unwrap();
                if sent && n >= 600 {
                    up_blocks += 1;
                }
                let mut up = if sent { buf.clone() } else { silence.clone() };
                let _ = m.on_rx(n, &mut up);
            }
            // The master decoded every uplink block (beacons included), none failed.
            assert_eq!(m.counters.decode_fail, 0);
            assert!(m.counters.decode_ok >= up_blocks, "{:?}", m.counters);
            per_dx.push(up_blocks);
        }
        // 400 subframes: TDD config 5 has 1 uplink subframe per frame, FDD all 10.
        assert_eq!(per_dx, vec![40, 400]);
    }

    #[test]
    fn two_antenna_controls_accept_sfbc_and_mrc_and_refuse_the_rest() {
        let with = |tx: u8, rx: u8, tm: u8, harq: bool| {
            let mut c = control(0, 1.4, 6, 1, 1);
            c.antennas_tx = tx;
            c.antennas_rx = rx;
            c.trans_mode = tm;
            c.harq = harq;
            PhyLink::new(&c).map(|p| (p.tx_antennas(), p.rx_antennas()))
        };
        assert_eq!(with(2, 2, 2, false).unwrap(), (2, 2));
        assert_eq!(with(2, 1, 2, false).unwrap(), (2, 1));
        assert_eq!(with(1, 2, 1, false).unwrap(), (1, 2));
        let e = |r: Result<(usize, usize), LinkError>| r.err().unwrap().to_string();
        assert!(e(with(2, 2, 3, false)).contains("spatial multiplexing"));
        assert!(e(with(4, 2, 2, false)).contains("four"));
        assert!(e(with(2, 4, 2, false)).contains("at most 2 antennas"));
        assert!(e(with(2, 2, 1, false)).contains("numAntennaTX"));
        assert!(e(with(2, 2, 2, true)).contains("HARQ = 1 with numAntennaTX/RX = 2/2"));
    }

    /// Master → slave over a downlink at `snr_db` per receive antenna through a fixed
    /// `tx`×`rx` channel of unit-modulus coefficients (the uplink at 30 dB): (pings
    /// delivered, the slave's CRC failures, its TBs decoded).
    fn downlink_with_antennas(tx: u8, rx: u8, snr_db: f32, seed: u64) -> (usize, u64, u64) {
        let core = |workmode, node| {
            let mut c = control_dx(workmode, 1.4, 6, 1, 1, 0);
            c.antennas_tx = tx;
            c.antennas_rx = rx;
            c.trans_mode = if tx == 2 { 2 } else { 1 };
            ModemCore::new(&c, NodeId(node), AddressPlan::default(), 0, 0.0, Some(50)).unwrap()
        };
        let (mut m, mut s) = (core(0, 9), core(1, 8));
        let (tx, rx) = (usize::from(tx), usize::from(rx));
        // h[r][t]: each antenna pair its own phase.
        let h = |r: usize, t: usize| Complex32::from_polar(1.0, 1.3 * (2 * r + t) as f32 + 0.4);
        let sps = m.sps() as usize;
        let p_noise = crate::phylink::TX_POWER / 10f32.powf(snr_db / 10.0);
        let (mut rng, mut up_rng) = (seed, seed ^ 77);
        let mut bufs = vec![Vec::new(); tx];
        let mut sent = 0u16;
        let mut got = 0;
        let mix = |bufs: &[Vec<Complex32>], on: bool, p: f32, rng: &mut u64| {
            let mut out = vec![vec![Complex32::new(0.0, 0.0); sps]; rx];
            for (r, o) in out.iter_mut().enumerate() {
                if on {
                    for (t, b) in bufs.iter().enumerate() {
                        o.iter_mut().zip(b).for_each(|(o, x)| *o += h(r, t) * x);
                    }
                }
                add_noise(o, p, rng);
            }
            out
        };
        for n in 0..4000u64 {
            if n > 500
                && n % 20 == 0
                && sent < 150
                && m.enqueue_ip(&ping_packet(8, sent, 60)).is_ok()
            {
                sent += 1;
            }
            let on = m.on_tx_antennas(n, &mut bufs).unwrap();
            let mut down = mix(&bufs, on, p_noise, &mut rng);
            let on = s.on_tx_antennas(n, &mut bufs).unwrap();
            let mut up = mix(&bufs, on, crate::phylink::TX_POWER / 1000.0, &mut up_rng);
            let mut up_refs: Vec<&mut [Complex32]> =
                up.iter_mut().map(|v| v.as_mut_slice()).collect();
            let _ = m.on_rx_antennas(n, &mut up_refs);
            let mut refs: Vec<&mut [Complex32]> =
                down.iter_mut().map(|v| v.as_mut_slice()).collect();
            got += s.on_rx_antennas(n, &mut refs).local.len();
        }
        assert_eq!(sent, 150, "routes never came up");
        (
            got,
            s.counters.decode_fail,
            s.counters.decode_ok + s.counters.filler_ok,
        )
    }

    #[test]
    fn two_antennas_decode_where_one_fails() {
        // Near the single antenna's threshold most TBs fail; 2×2 (SFBC + MRC: 3 dB of array
        // gain from the second receive antenna on a static channel) decodes nearly all.
        let snr = -2.5;
        let (one_got, one_fail, one_ok) = downlink_with_antennas(1, 1, snr, 11);
        let (two_got, two_fail, two_ok) = downlink_with_antennas(2, 2, snr, 11);
        eprintln!("1x1: pings {one_got} fail {one_fail} ok {one_ok}; 2x2: pings {two_got} fail {two_fail} ok {two_ok}");
        assert!(
            one_fail > 10 * two_fail.max(1),
            "1x1 {one_fail} vs 2x2 {two_fail}"
        );
        assert!(
            two_got >= 145 && two_got > one_got,
            "{two_got} vs {one_got}"
        );
        // And at a comfortable SNR both carry every ping.
        let (g1, f1, _) = downlink_with_antennas(1, 2, 10.0, 3);
        let (g2, f2, _) = downlink_with_antennas(2, 1, 10.0, 3);
        assert_eq!((g1, f1, g2, f2), (150, 0, 150, 0));
    }
}

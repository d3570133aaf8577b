//! The `ferry air` engine, sans-IO: all radio units and the air channel on one sample clock.
//! The IO shell hands it datagrams and control requests and calls [`AirEngine::tick`] once
//! per tick; the engine returns the datagrams to send and the samples to capture.

use std::net::SocketAddr;

use ferry_fronthaul::control::{
    ArbiterStatus, CaptureStream, ErrorCode, RadioInfo, Reply, Request, StatusReport,
};
use ferry_fronthaul::notice::{NoticeKind, NoticeRepr};
use ferry_fronthaul::probe::{self, ProbeAnswer};
use ferry_fronthaul::vrt::{
    emit_data_cf32, ContextRepr, DataRepr, Direction, SampleTime, StreamId, Timestamp,
};
use num_complex::Complex32;

use crate::air::AirChannel;
use crate::config::{AirConfig, ConfigError};
use crate::medium::{Medium, MediumEvents};
use crate::unit::{Lo, RadioUnit};

/// A datagram to send from a radio's fronthaul socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// Index of the sending radio.
    pub radio: usize,
    /// Destination.
    pub to: SocketAddr,
    /// The datagram.
    pub bytes: Vec<u8>,
}

/// Samples recorded for a capture during one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureChunk {
    /// Capture id from [`AirEngine::start_capture`].
    pub id: u64,
    /// Samples.
    pub samples: Vec<Complex32>,
    /// The capture has all its samples.
    pub finished: bool,
}

/// What one tick produced.
#[derive(Debug, Default)]
pub struct TickOutput {
    /// Datagrams to send.
    pub packets: Vec<Outbound>,
    /// Captured samples.
    pub captures: Vec<CaptureChunk>,
}

#[derive(Debug)]
struct ActiveCapture {
    id: u64,
    radio: usize,
    stream: CaptureStream,
    remaining: u64,
}

/// All radios and the air.
#[derive(Debug)]
pub struct AirEngine {
    cfg: AirConfig,
    radios: Vec<RadioUnit>,
    channel: AirChannel,
    now: SampleTime,
    /// Index of each radio's first antenna in `tx` / `rx` (antennas radio by radio).
    first_antenna: Vec<usize>,
    /// One tick of TX per antenna.
    tx: Vec<Vec<Complex32>>,
    /// One tick of RX per antenna.
    rx: Vec<Vec<Complex32>>,
    captures: Vec<ActiveCapture>,
    next_capture: u64,
    /// Per (radio, destination): 4-bit packet counts of data and context streams.
    counts: Vec<Vec<(SocketAddr, u8, u8)>>,
    last_context: Vec<Option<SampleTime>>,
    /// 4-bit packet count of each radio's TX-stream context (tuning answers).
    tx_ctx_counts: Vec<u8>,
    /// Hosts may not retune (hardware behind a medium keeps its initialised LOs).
    fixed_tuning: bool,
    scratch: Vec<Complex32>,
    /// TX is taken this far ahead of RX (a hardware medium's advance; 0 in the air).
    tx_advance: u64,
    /// What a hardware medium lost in the tick, per radio (reused every tick).
    events: Vec<MediumEvents>,
    /// Key that authenticates the switch notices (none: no notices are sent).
    notice_key: Option<Vec<u8>>,
    /// Each radio's latest notice, repeated with its periodic context packets (a lost
    /// datagram must not leave a host with a stale view for long).
    last_notice: Vec<Option<NoticeRepr>>,
    /// The sample the radio room's clock has reached by wall time (set by a real-time shell
    /// before it reads the fronthaul): a datagram's arrival for the liveness check, even
    /// while the engine's ticks catch up after a stall (0: use the tick time).
    wall_now: SampleTime,
}

impl AirEngine {
    /// Powers up every radio at sample time 0. The configuration's fronthaul addresses are
    /// replaced by `fronthaul` when given (the shell knows the real bound ports).
    pub fn new(cfg: AirConfig, fronthaul: Option<&[SocketAddr]>) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let rate = cfg.sample_rate_hz;
        let horizon = cfg.tx_horizon_ms.saturating_mul(u64::from(rate)) / 1000;
        let radios = cfg
            .radios
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut u = RadioUnit::power_up(r, i as u16, rate, horizon, 0);
                u.set_liveness_subframes(cfg.liveness_subframes);
                u.set_fallback_liveness_subframes(cfg.fallback_liveness_subframes);
                if let Some(a) = fronthaul.and_then(|f| f.get(i)) {
                    u.fronthaul = *a;
                }
                u
            })
            .collect::<Vec<_>>();
        let n = radios.len();
        let first_antenna: Vec<usize> = cfg
            .antennas()
            .iter()
            .scan(0, |next, &k| {
                let first = *next;
                *next += k;
                Some(first)
            })
            .collect();
        let antennas = cfg.antennas().iter().sum();
        Ok(Self {
            channel: AirChannel::from_config(&cfg),
            radios,
            now: 0,
            first_antenna,
            tx: vec![vec![Complex32::new(0.0, 0.0); cfg.tick_samples]; antennas],
            rx: vec![Vec::new(); antennas],
            captures: Vec::new(),
            next_capture: 1,
            counts: vec![Vec::new(); n],
            last_context: vec![None; n],
            tx_ctx_counts: vec![0; n],
            fixed_tuning: false,
            scratch: Vec::new(),
            tx_advance: 0,
            events: vec![MediumEvents::default(); n],
            notice_key: None,
            last_notice: vec![None; n],
            wall_now: 0,
            cfg,
        })
    }

    /// Tells the engine the sample its clock has reached by wall time (see `wall_now`).
    pub fn set_wall_now(&mut self, sample: SampleTime) {
        self.wall_now = sample;
    }

    /// Sets the key that authenticates in-band switch notices (the radio room's
    /// link-control key); without one no notices are sent.
    pub fn set_notice_key(&mut self, key: Option<Vec<u8>>) {
        self.notice_key = key;
    }

    /// Queues switch notices: the changes radio `i` made, to the new and previous primary
    /// and every host it copies RX to, and (when `repeat`) its latest notice again.
    fn notices(&mut self, i: usize, repeat: bool, out: &mut TickOutput) {
        // The key is taken out for the call and put back (no copy per tick).
        let Some(key) = self.notice_key.take() else {
            let _ = self.radios[i].take_notices();
            return;
        };
        let rate = self.cfg.sample_rate_hz;
        let u = &mut self.radios[i];
        let sid = StreamId::new(u.number, Direction::Rx);
        let copies = [u.shadow(), u.standby(), u.fallback().map(|f| f.0)];
        let mut fresh: Vec<NoticeRepr> = u
            .take_notices()
            .into_iter()
            .map(|n| NoticeRepr {
                stream_id: sid,
                epoch: n.epoch,
                from_sample: n.from_sample,
                kind: match n.kind {
                    crate::unit::SwitchKind::Link => NoticeKind::Link,
                    crate::unit::SwitchKind::Planned => NoticeKind::Planned,
                    crate::unit::SwitchKind::Fallback => NoticeKind::Fallback,
                    crate::unit::SwitchKind::Failover => NoticeKind::Failover,
                },
                primary: n.primary,
                previous: n.previous,
                previous_heard_tx: n.previous_heard_tx,
                tail_until: n.tail_until,
            })
            .collect();
        if let Some(last) = fresh.last() {
            self.last_notice[i] = Some(*last);
        } else if repeat {
            fresh.extend(self.last_notice[i]);
        }
        for n in fresh {
            let mut dests: Vec<SocketAddr> = [n.primary, n.previous]
                .into_iter()
                .chain(copies)
                .flatten()
                .collect();
            dests.sort();
            dests.dedup();
            for to in dests {
                let c = self.counts_for(i, to);
                let count = c.2;
                c.2 = (c.2 + 1) & 0xf;
                let mut bytes = Vec::with_capacity(ferry_fronthaul::notice::NOTICE_LEN);
                if n.emit(rate, count, &key, &mut bytes).is_ok() {
                    out.packets.push(Outbound {
                        radio: i,
                        to,
                        bytes,
                    });
                }
            }
        }
        self.notice_key = Some(key);
    }

    /// Makes host tuning requests refused (answered with the frequency in force): a radio
    /// head in front of real hardware applies its RF configuration once at init and does
    /// not retune it at run time.
    pub fn set_fixed_tuning(&mut self, fixed: bool) {
        self.fixed_tuning = fixed;
    }

    /// The first sample time not yet mixed (the start of the next tick).
    pub fn now(&self) -> SampleTime {
        self.now
    }
    /// Configuration.
    pub fn config(&self) -> &AirConfig {
        &self.cfg
    }
    /// Radio units.
    pub fn radios(&self) -> &[RadioUnit] {
        &self.radios
    }
    /// Mutable access to a radio (tests, the shell's overflow counting).
    pub fn radio_mut(&mut self, i: usize) -> Option<&mut RadioUnit> {
        self.radios.get_mut(i)
    }
    /// Mutable access to the channel (tests).
    pub fn channel_mut(&mut self) -> &mut AirChannel {
        &mut self.channel
    }
    /// Index of a radio by name.
    pub fn radio_index(&self, name: &str) -> Option<usize> {
        self.radios.iter().position(|r| r.name == name)
    }

    /// Handles a datagram that arrived at radio `radio`'s fronthaul socket from `from`.
    /// Returns a datagram to send back (probe answers).
    pub fn on_datagram(
        &mut self,
        radio: usize,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Option<Outbound> {
        // TX is due at the air time the medium takes next, `tx_advance` after RX's now.
        let now = self.now + self.tx_advance;
        let rate = self.cfg.sample_rate_hz;
        let u = self.radios.get_mut(radio)?;
        if probe::is_probe(bytes) {
            let nonce = probe::decode_probe(bytes).ok()?;
            if !u.is_ready() {
                return None;
            }
            u.counters.probes_answered += 1;
            let a = ProbeAnswer {
                radio: u.name.clone(),
                serial: format!("EMU{:04}", u.number),
                kind: "n210-emulated".into(),
            };
            return Some(Outbound {
                radio,
                to: from,
                bytes: probe::encode_answer(nonce, &a),
            });
        }
        if !u.accepts_from(from) {
            u.counters.stranger_packets += 1;
            return None;
        }
        let parsed = DataRepr::parse_bytes(bytes).and_then(|d| {
            let t = d.timestamp.to_sample_time(rate)?;
            Ok((d, t))
        });
        match parsed {
            Ok((d, t))
                if d.stream_id.radio() == u.number
                    && d.stream_id.direction() == Some(Direction::Tx)
                    && d.stream_id.channel() < u.channels =>
            {
                let mut v = Vec::with_capacity(d.num_samples());
                d.samples_cf32_into(&mut v);
                let heard = self.wall_now.max(now);
                let end = t.saturating_add(v.len() as u64);
                u.accept_tx_channel(from, d.stream_id.channel(), t, v, now, heard);
                if d.end_of_burst {
                    u.end_burst(from, d.stream_id.channel(), end);
                }
            }
            Ok((d, _))
                if d.stream_id.radio() == u.number
                    && d.stream_id.direction() == Some(Direction::Tx) =>
            {
                // A channel this radio does not have (a two-antenna host on a
                // one-channel radio): dropped, counted.
                u.counters.wrong_channel_packets += 1;
            }
            _ => match ContextRepr::parse_bytes(bytes) {
                // A host's context for this radio's TX or RX stream carrying an RF
                // frequency tunes that LO (docs/FRONTHAUL.md §2, "Tuning"); other fields are
                // informational.
                Ok(c) => {
                    let lo = if c.stream_id == StreamId::new(u.number, Direction::Tx) {
                        Some(Lo::Tx)
                    } else if c.stream_id == StreamId::new(u.number, Direction::Rx) {
                        Some(Lo::Rx)
                    } else {
                        None
                    };
                    if let (Some(lo), Some(hz)) = (lo, c.rf_freq_hz) {
                        if self.fixed_tuning {
                            // Refused: the answer carries the frequency in force.
                            match lo {
                                Lo::Tx => u.tx_context_due = true,
                                Lo::Rx => u.context_due = true,
                            }
                        } else if u.tune(lo, hz) {
                            let (tx, rx) = (u.rf.tx_freq_hz, u.rf.rx_freq_hz);
                            self.channel.set_tuning(radio, tx, rx);
                        }
                    }
                }
                Err(_) => u.counters.malformed_packets += 1,
            },
        }
        None
    }

    /// Counts an RX datagram the shell could not hand to the host's socket.
    pub fn count_overflow(&mut self, radio: usize) {
        if let Some(u) = self.radios.get_mut(radio) {
            u.counters.overflow_packets += 1;
        }
    }

    /// Counts ticks skipped because the real-time shell fell behind.
    pub fn count_clock_slip(&mut self, ticks: u64) {
        for u in &mut self.radios {
            u.counters.clock_slips += ticks;
        }
    }

    /// Skips `ticks` ticks of air time without producing anything (after a clock slip).
    pub fn skip(&mut self, ticks: u64) {
        let n = self.cfg.tick_samples as u64 * ticks;
        for u in &mut self.radios {
            u.end_tick(self.now + n);
        }
        self.now += n;
    }

    fn info(&self, u: &RadioUnit) -> RadioInfo {
        RadioInfo {
            radio: u.name.clone(),
            number: u.number,
            serial: format!("EMU{:04}", u.number),
            fronthaul: u.fronthaul,
            sample_rate_hz: self.cfg.sample_rate_hz,
            freq_hz: u.rf.rx_freq_hz,
            legacy: u.legacy_host.is_some(),
            channels: u.channels,
        }
    }

    fn status(&self, u: &RadioUnit) -> StatusReport {
        StatusReport {
            info: self.info(u),
            ready: u.is_ready(),
            linked: u.linked(),
            shadow: u.shadow(),
            pending_switch: u.pending_switch(),
            counters: u.counters.clone(),
            arbiter: ArbiterStatus {
                epoch: u.epoch(),
                standby: u.standby(),
                fallback: u.fallback(),
                liveness_samples: u.liveness_samples(),
                fallbacks: u.arbiter.fallbacks,
                failovers: u.arbiter.failovers,
                cancelled_switches: u.arbiter.cancelled_switches,
                fenced_packets: u.arbiter.fenced_packets,
                standby_packets: u.arbiter.standby_packets,
                silent_unprotected: u.arbiter.silent_unprotected,
                reported_dead: u.arbiter.reported_dead,
                primary_since: u.primary_since(),
                last_silence_samples: u.arbiter.last_silence_samples,
                tail_samples: u.arbiter.tail_samples,
                protection_since: u.protection_since(),
            },
        }
    }

    fn find(&self, name: &str) -> Result<usize, Reply> {
        self.radio_index(name).ok_or_else(|| {
            Reply::error(ErrorCode::UnknownRadio, format!("no radio named {name:?}"))
        })
    }

    /// Starts recording `samples` samples of a radio's stream from the next tick.
    pub fn start_capture(
        &mut self,
        radio: &str,
        stream: CaptureStream,
        samples: u64,
    ) -> Result<u64, Reply> {
        let i = self.find(radio)?;
        if samples == 0 {
            return Err(Reply::error(
                ErrorCode::BadRequest,
                "capture of zero samples",
            ));
        }
        let id = self.next_capture;
        self.next_capture += 1;
        self.captures.push(ActiveCapture {
            id,
            radio: i,
            stream,
            remaining: samples,
        });
        Ok(id)
    }

    /// Handles a link-control request (except `capture`, which needs files: see
    /// [`AirEngine::start_capture`]). Changes take effect at [`AirEngine::now`].
    pub fn control(&mut self, req: &Request) -> Reply {
        let now = self.now;
        let pick = |s: &Self, name: &Option<String>| -> Result<Vec<usize>, Reply> {
            match name {
                Some(n) => s.find(n).map(|i| vec![i]),
                None => Ok((0..s.radios.len()).collect()),
            }
        };
        let r = match req {
            Request::Discover { radio } => pick(self, radio).and_then(|ids| {
                let ready: Vec<_> = ids
                    .iter()
                    .filter(|&&i| self.radios[i].is_ready())
                    .map(|&i| self.info(&self.radios[i]))
                    .collect();
                if radio.is_some() && ready.is_empty() {
                    Err(Reply::error(
                        ErrorCode::NotReady,
                        "radio is not powered up and initialised",
                    ))
                } else {
                    Ok(Reply::Found { radios: ready })
                }
            }),
            Request::Status { radio } => pick(self, radio).map(|ids| Reply::Status {
                sample_time: now,
                radios: ids.iter().map(|&i| self.status(&self.radios[i])).collect(),
                control: Default::default(),
            }),
            Request::Link { radio, endpoint } => self
                .find(radio)
                .map(|i| self.radios[i].link(*endpoint, now)),
            Request::Unlink { radio, endpoint } => self
                .find(radio)
                .map(|i| self.radios[i].unlink(*endpoint, now)),
            Request::Shadow { radio, endpoint } => self
                .find(radio)
                .map(|i| self.radios[i].set_shadow(*endpoint, now)),
            Request::Unshadow { radio, endpoint } => self
                .find(radio)
                .map(|i| self.radios[i].unshadow(*endpoint, now)),
            Request::SwitchAt {
                radio,
                at,
                endpoint,
            } => self
                .find(radio)
                .map(|i| self.radios[i].switch_at(*at, *endpoint, now)),
            Request::SwitchAtFallback {
                radio,
                at,
                endpoint,
                grace_ms,
            } => self.find(radio).and_then(|i| {
                if *grace_ms > 60_000 {
                    return Err(Reply::error(
                        ErrorCode::BadRequest,
                        format!("grace_ms {grace_ms} is above 60000"),
                    ));
                }
                let grace = grace_ms * u64::from(self.cfg.sample_rate_hz) / 1000;
                Ok(self.radios[i].switch_at_with_fallback(*at, *endpoint, now, grace))
            }),
            Request::CancelSwitch { radio } => {
                self.find(radio).map(|i| self.radios[i].cancel_switch(now))
            }
            Request::Protect { radio, endpoint } => self
                .find(radio)
                .map(|i| self.radios[i].protect(*endpoint, now)),
            Request::PrimaryDead { radio, endpoint } => self
                .find(radio)
                .map(|i| self.radios[i].primary_dead(*endpoint, now)),
            Request::Reset { radio } => self.find(radio).map(|i| {
                let r = self.radios[i].reset(now);
                // A power cycle re-runs init, which restores the configured tuning.
                let rf = &self.radios[i].rf;
                self.channel.set_tuning(i, rf.tx_freq_hz, rf.rx_freq_hz);
                r
            }),
            Request::StopCapture { radio } => self.find(radio).map(|i| {
                self.captures.retain(|c| c.radio != i);
                Reply::Done {
                    radio: radio.clone(),
                    sample_time: now,
                }
            }),
            Request::Capture { .. } => Err(Reply::error(
                ErrorCode::Internal,
                "capture must be started by the server shell",
            )),
        };
        r.unwrap_or_else(|e| e)
    }

    fn counts_for(&mut self, radio: usize, to: SocketAddr) -> &mut (SocketAddr, u8, u8) {
        let c = &mut self.counts[radio];
        let i = match c.iter().position(|e| e.0 == to) {
            Some(i) => i,
            None => {
                c.push((to, 0, 0));
                c.len() - 1
            }
        };
        &mut c[i]
    }

    /// Runs the tick `[now, now + tick_samples)`: takes each radio's TX, mixes the air,
    /// packetises each radio's RX to its hosts, records captures, applies due switches.
    pub fn tick(&mut self, out: &mut TickOutput) {
        self.tick_via(out, None);
    }

    /// [`AirEngine::tick`] through `medium` instead of the emulated air (real hardware or
    /// a cabled loopback): TX is taken `medium.tx_advance()` samples ahead of RX, and a
    /// paced medium blocks until the hardware delivered the tick.
    pub fn tick_via(&mut self, out: &mut TickOutput, medium: Option<&mut dyn Medium>) {
        let t0 = self.now;
        let n = self.cfg.tick_samples;
        let rate = self.cfg.sample_rate_hz;
        self.tx_advance = medium.as_ref().map_or(0, |m| m.tx_advance());
        for (u, &first) in self.radios.iter_mut().zip(&self.first_antenna) {
            u.poll_power(t0);
            for c in 0..u.channels {
                let buf = &mut self.tx[first + usize::from(c)];
                buf.resize(n, Complex32::new(0.0, 0.0));
                u.take_tx_channel(t0 + self.tx_advance, c, buf);
            }
        }
        match medium {
            Some(m) => {
                self.events.fill(MediumEvents::default());
                m.exchange(t0, &self.tx, &mut self.rx, &mut self.events);
                for (u, e) in self.radios.iter_mut().zip(&self.events) {
                    u.counters.hw_rx_lost_samples += e.rx_lost_samples;
                    u.counters.hw_tx_lost_samples += e.tx_lost_samples;
                }
                for r in &mut self.rx {
                    r.resize(n, Complex32::new(0.0, 0.0));
                }
            }
            None => self.channel.mix(t0, &self.tx, &mut self.rx),
        }
        let ctx_every = self.cfg.context_interval_ms.saturating_mul(u64::from(rate)) / 1000;
        let spp = self.cfg.samples_per_packet;
        for i in 0..self.radios.len() {
            self.tx_context(i, t0, out);
            let routes = self.radios[i].rx_routes(t0, n);
            if routes.is_empty() {
                continue;
            }
            let number = self.radios[i].number;
            let sid = StreamId::new(number, Direction::Rx);
            let ctx_due = self.radios[i].context_due
                || self.last_context[i].is_none_or(|l| t0 >= l + ctx_every.max(1));
            if ctx_due {
                self.radios[i].context_due = false;
                self.last_context[i] = Some(t0);
                let rf = self.radios[i].rf.clone();
                let mut dests: Vec<SocketAddr> = routes.iter().map(|r| r.to).collect();
                dests.dedup();
                for to in dests {
                    let c = self.counts_for(i, to);
                    let count = c.2;
                    c.2 = (c.2 + 1) & 0xf;
                    let ctx = ContextRepr {
                        stream_id: sid,
                        count,
                        timestamp: ts(t0, rate),
                        changed: true,
                        bandwidth_hz: Some(rf.rx_bandwidth_hz),
                        rf_freq_hz: Some(rf.rx_freq_hz),
                        gain_db: Some(rf.rx_gain_db),
                        sample_rate_hz: Some(f64::from(rate)),
                    };
                    let mut bytes = Vec::new();
                    if ctx.emit(&mut bytes).is_ok() {
                        out.packets.push(Outbound {
                            radio: i,
                            to,
                            bytes,
                        });
                    }
                }
            }
            let channels = self.radios[i].channels;
            let first = self.first_antenna[i];
            for r in routes {
                let mut off = r.offset;
                while off < r.offset + r.len {
                    let k = spp.min(r.offset + r.len - off);
                    // One packet per channel with the same timestamp and length, channel 0
                    // first: a host pairs them sample-exactly.
                    for ch in 0..channels {
                        let c = self.counts_for(i, r.to);
                        let count = c.1;
                        c.1 = (c.1 + 1) & 0xf;
                        let mut bytes = Vec::with_capacity(20 + 4 * k);
                        let samples = &self.rx[first + usize::from(ch)][off..off + k];
                        let sid = StreamId::for_channel(number, ch, Direction::Rx);
                        let stamp = ts(t0 + off as u64, rate);
                        if let Ok(clipped) = emit_data_cf32(sid, count, stamp, samples, &mut bytes)
                        {
                            let u = &mut self.radios[i].counters;
                            u.rx_packets += 1;
                            // Samples count sample times (channel 0), clips every channel.
                            if r.primary {
                                u.rx_samples += if ch == 0 { k as u64 } else { 0 };
                                u.clipped_samples += clipped as u64;
                            } else if ch == 0 {
                                u.shadow_samples += k as u64;
                            }
                            out.packets.push(Outbound {
                                radio: i,
                                to: r.to,
                                bytes,
                            });
                        }
                    }
                    off += k;
                }
            }
        }
        for c in &mut self.captures {
            // Channel 0 of the radio.
            let a = self.first_antenna[c.radio];
            let src = match c.stream {
                CaptureStream::Rx => &self.rx[a],
                CaptureStream::Tx => &self.tx[a],
            };
            let k = (c.remaining.min(n as u64)) as usize;
            self.scratch.clear();
            self.scratch.extend_from_slice(&src[..k]);
            c.remaining -= k as u64;
            out.captures.push(CaptureChunk {
                id: c.id,
                samples: self.scratch.clone(),
                finished: c.remaining == 0,
            });
        }
        self.captures.retain(|c| c.remaining > 0);
        let ctx_every = self.cfg.context_interval_ms.saturating_mul(u64::from(rate)) / 1000;
        for i in 0..self.radios.len() {
            self.radios[i].end_tick(t0 + n as u64);
            // Repeat the latest notice with the periodic context (every context interval).
            let repeat = ctx_every > 0 && t0 % ctx_every < n as u64;
            self.notices(i, repeat, out);
        }
        self.now = t0 + n as u64;
    }

    /// Answers a host that tuned the TX LO: a context packet on the radio's TX stream with
    /// the TX frequency, gain and bandwidth now in force (sent to the linked host).
    fn tx_context(&mut self, i: usize, t0: SampleTime, out: &mut TickOutput) {
        let rate = self.cfg.sample_rate_hz;
        let Some(u) = self.radios.get_mut(i) else {
            return;
        };
        if !u.tx_context_due {
            return;
        }
        u.tx_context_due = false;
        let Some(to) = u.linked() else {
            return;
        };
        let count = self.tx_ctx_counts[i];
        self.tx_ctx_counts[i] = (count + 1) & 0xf;
        let ctx = ContextRepr {
            stream_id: StreamId::new(u.number, Direction::Tx),
            count,
            timestamp: ts(t0, rate),
            changed: true,
            bandwidth_hz: Some(u.rf.tx_bandwidth_hz),
            rf_freq_hz: Some(u.rf.tx_freq_hz),
            gain_db: Some(u.rf.tx_gain_db),
            sample_rate_hz: Some(f64::from(rate)),
        };
        let mut bytes = Vec::new();
        if ctx.emit(&mut bytes).is_ok() {
            out.packets.push(Outbound {
                radio: i,
                to,
                bytes,
            });
        }
    }

    /// What radio `i` received in the last tick (its channel 0; tests, benches).
    pub fn last_rx(&self, i: usize) -> &[Complex32] {
        self.last_rx_channel(i, 0)
    }
    /// What radio `i` transmitted in the last tick (its channel 0).
    pub fn last_tx(&self, i: usize) -> &[Complex32] {
        self.last_tx_channel(i, 0)
    }
    /// What channel `ch` of radio `i` received in the last tick.
    pub fn last_rx_channel(&self, i: usize, ch: u8) -> &[Complex32] {
        self.antenna(i, ch)
            .and_then(|a| self.rx.get(a))
            .map_or(&[], |v| v.as_slice())
    }
    /// What channel `ch` of radio `i` transmitted in the last tick.
    pub fn last_tx_channel(&self, i: usize, ch: u8) -> &[Complex32] {
        self.antenna(i, ch)
            .and_then(|a| self.tx.get(a))
            .map_or(&[], |v| v.as_slice())
    }
    fn antenna(&self, i: usize, ch: u8) -> Option<usize> {
        let u = self.radios.get(i)?;
        (ch < u.channels).then(|| self.first_antenna[i] + usize::from(ch))
    }
    /// Whether every radio has one channel (a hardware medium exchanges one per radio).
    pub fn single_channel(&self) -> bool {
        self.radios.iter().all(|u| u.channels == 1)
    }
}

fn ts(t: SampleTime, rate: u32) -> Timestamp {
    // Sample times below 2^32 seconds always fit.
    Timestamp::from_sample_time(t, rate).unwrap_or(Timestamp { secs: 0, frac: 0 })
}

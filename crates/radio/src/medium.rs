//! What sits between the radios' TX and RX: the emulated air ([`crate::air::AirChannel`],
//! the default) or real hardware behind a [`Medium`] — a cabled loopback model
//! ([`Loopback`]) or a USRP through UHD (`uhd` feature, [`crate::uhd`]).
//!
//! The engine hands a medium one tick of every radio's TX and takes back the same tick of
//! RX. Two things differ from the emulated air and are part of the trait:
//! - **TX advance.** Hardware must have TX samples before their air time, so the engine
//!   takes TX for `[t0 + tx_advance, …)` while it hands out RX for `[t0, …)`; a TX packet
//!   arriving after `t0 + tx_advance` is late, as on an N210 (its `L` in UHD's terms).
//! - **Pacing.** A paced medium blocks in [`Medium::exchange`] until the hardware has
//!   delivered the tick's RX: the hardware's sample clock, not the host's wall clock,
//!   drives the radio head (the shell then never sleeps on its own).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ferry_fronthaul::vrt::SampleTime;
use num_complex::Complex32;

/// What happened in the hardware during one exchange, for the radio's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MediumEvents {
    /// RX samples the hardware lost (overflow, 'O' in UHD), delivered as zeros.
    pub rx_lost_samples: u64,
    /// TX samples the hardware could not send in time (late or underflow, 'L'/'U').
    pub tx_lost_samples: u64,
}

/// The channel between the radios' TX and RX, one tick at a time.
pub trait Medium: Send {
    /// Samples by which TX is taken ahead of RX (0 for the emulated air).
    fn tx_advance(&self) -> u64 {
        0
    }

    /// True when [`Medium::exchange`] blocks until the hardware has the tick's samples.
    fn paced(&self) -> bool;

    /// `tx[i]`: radio `i`'s TX for the samples `[t0 + tx_advance, + n)`; fills `rx[i]`
    /// (resized to `n`) with radio `i`'s RX for `[t0, t0 + n)` and adds what the hardware
    /// lost to `events[i]` (one per radio, zeroed by the caller).
    fn exchange(
        &mut self,
        t0: SampleTime,
        tx: &[Vec<Complex32>],
        rx: &mut [Vec<Complex32>],
        events: &mut [MediumEvents],
    );
}

/// Parameters of [`Loopback`]: a radio whose TX port is cabled to its own RX port through
/// an attenuator — the standard bench set-up for an N210 (TX/RX → 30 dB → RX2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopbackConfig {
    /// Sample rate (Hz), for pacing.
    pub rate_hz: u32,
    /// Cable + attenuator gain in dB (the TX→RX path; -30 dB is a typical pad).
    pub gain_db: f64,
    /// Samples from TX air time to RX (the N210's DSP pipeline, tens of samples).
    pub delay_samples: u64,
    /// TX advance the radio head keeps (samples).
    pub tx_advance: u64,
}

/// A single radio looped back onto itself by cable, paced by the wall clock like hardware
/// that delivers samples only once they have been received.
#[derive(Debug)]
pub struct Loopback {
    cfg: LoopbackConfig,
    gain: f32,
    /// TX by air time: `line[k]` is the sample transmitted at `line_start + k`.
    line: VecDeque<Complex32>,
    line_start: SampleTime,
    start: Option<(Instant, SampleTime)>,
}

impl Loopback {
    /// A loopback with the given parameters.
    pub fn new(cfg: LoopbackConfig) -> Self {
        Self {
            gain: 10f64.powf(cfg.gain_db / 20.0) as f32,
            cfg,
            line: VecDeque::new(),
            line_start: 0,
            start: None,
        }
    }

    fn wait_until(&mut self, t_end: SampleTime) {
        let (t_wall, t_samples) = *self.start.get_or_insert((Instant::now(), t_end));
        let due = t_end.saturating_sub(t_samples) as f64 / f64::from(self.cfg.rate_hz.max(1));
        let el = t_wall.elapsed().as_secs_f64();
        if due > el {
            std::thread::sleep(Duration::from_secs_f64(due - el));
        }
    }

    /// The sample on the cable at air time `t` (zero before anything was sent).
    fn on_air(&self, t: SampleTime) -> Complex32 {
        t.checked_sub(self.line_start)
            .and_then(|k| self.line.get(k as usize))
            .copied()
            .unwrap_or_default()
    }
}

impl Medium for Loopback {
    fn tx_advance(&self) -> u64 {
        self.cfg.tx_advance
    }

    fn paced(&self) -> bool {
        true
    }

    fn exchange(
        &mut self,
        t0: SampleTime,
        tx: &[Vec<Complex32>],
        rx: &mut [Vec<Complex32>],
        _events: &mut [MediumEvents],
    ) {
        let n = tx.first().map_or(0, Vec::len);
        let tx_at = t0 + self.cfg.tx_advance;
        if self.line.is_empty() {
            self.line_start = tx_at;
        }
        // Keep the cable contiguous in air time (a gap would mean a skipped tick).
        let end = self.line_start + self.line.len() as u64;
        if tx_at > end {
            self.line.extend(std::iter::repeat_n(
                Complex32::default(),
                (tx_at - end) as usize,
            ));
        }
        let from = (tx_at.max(end) - tx_at) as usize;
        if let Some(t) = tx.first() {
            self.line.extend(t.iter().skip(from).copied());
        }
        self.wait_until(t0 + n as u64);
        for (i, r) in rx.iter_mut().enumerate() {
            r.clear();
            if i == 0 {
                let d = self.cfg.delay_samples;
                r.extend((0..n as u64).map(|k| {
                    (t0 + k)
                        .checked_sub(d)
                        .map_or_else(Complex32::default, |t| self.on_air(t) * self.gain)
                }));
            } else {
                r.resize(n, Complex32::default());
            }
        }
        // Forget what can no longer reach RX.
        let keep_from = (t0 + n as u64).saturating_sub(self.cfg.delay_samples);
        let old = (keep_from.saturating_sub(self.line_start) as usize).min(self.line.len());
        self.line.drain(..old);
        self.line_start += old as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting(t: u64, n: usize) -> Vec<Complex32> {
        (0..n as u64)
            .map(|k| Complex32::new((t + k) as f32, 0.0))
            .collect()
    }

    #[test]
    fn loopback_returns_tx_after_advance_plus_delay() {
        let cfg = LoopbackConfig {
            rate_hz: 1_920_000,
            gain_db: 0.0,
            delay_samples: 37,
            tx_advance: 96,
        };
        let mut m = Loopback::new(cfg);
        let n = 192;
        let mut rx = vec![Vec::new()];
        let mut got = Vec::new();
        for tick in 0..20u64 {
            let t0 = tick * n as u64;
            // The engine hands TX for air time t0 + advance; a counting waveform whose
            // value is its own air time.
            let tx = vec![counting(t0 + cfg.tx_advance, n)];
            m.exchange(t0, &tx, &mut rx, &mut [MediumEvents::default()]);
            got.extend(rx[0].iter().enumerate().map(|(k, s)| (t0 + k as u64, s.re)));
        }
        // RX at time t holds what was on air at t - delay; nothing before the first TX.
        let first = cfg.tx_advance + cfg.delay_samples;
        for (t, v) in got {
            if t < first {
                assert_eq!(v, 0.0, "t={t}");
            } else {
                assert_eq!(v, (t - cfg.delay_samples) as f32, "t={t}");
            }
        }
    }

    #[test]
    fn loopback_gain_and_pacing() {
        let mut m = Loopback::new(LoopbackConfig {
            rate_hz: 100_000,
            gain_db: -20.0,
            delay_samples: 0,
            tx_advance: 0,
        });
        let tx = vec![vec![Complex32::new(1.0, 0.0); 1000]];
        let mut rx = vec![Vec::new()];
        let t = Instant::now();
        for k in 0..6 {
            m.exchange(k * 1000, &tx, &mut rx, &mut [MediumEvents::default()]);
        }
        // Six 10 ms ticks: the first defines the epoch, five more must wait for the clock.
        assert!(
            t.elapsed() >= Duration::from_millis(49),
            "{:?}",
            t.elapsed()
        );
        assert!((rx[0][500].re - 0.1).abs() < 1e-6);
    }
}

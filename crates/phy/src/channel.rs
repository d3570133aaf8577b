//! A seeded simulated radio channel for tests, benches and the `ferry phy` tools: delay
//! (integer + fractional samples), carrier frequency offset, complex gain and AWGN.
//!
//! SNR definition (used everywhere in Ferry): **Es/N0 per resource element**. The OFDM
//! modulator gives a unit-power RE a unit-variance frequency bin (1/√N scaling), and white
//! time-domain noise of variance σ² lands as σ² in every bin; so `snr_db` sets
//! σ² = 10^(−snr_db/10) per complex sample, independent of bandwidth and load. (The
//! per-sample SNR of a fully loaded carrier is lower by 10·log10(N / (N_RB·12)) dB.)
//! Gain is applied after the noise (like receiver gain), so it does not change the SNR.
//!
//! The channel is pure: the RNG is a `ChaCha8Rng` seeded by the caller, and state (delay
//! line, CFO phase) carries across calls so a stream can be fed subframe by subframe.
//!
//! [`FadingChannel`] is the multi-antenna one: N_tx × N_rx links, each a flat (one-tap)
//! complex gain, independent Rayleigh CN(0, 1) per link and redrawn for every block (the
//! simulations pass one subframe per block: block fading, constant within 1 ms), plus AWGN
//! per the same SNR definition on every receive antenna. With unit-power links and a
//! transmitter that splits its power over its antennas, the mean signal power per RE at
//! each receive antenna is 1, so `snr_db` is the mean Es/N0 per receive antenna. No delay,
//! no CFO: it isolates what the antennas change.

use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Half-length of the windowed-sinc fractional-delay filter.
const FRAC_TAPS_HALF: usize = 8;

/// Impairments of a simulated channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelParams {
    /// Sample rate (Hz) of the signal.
    pub sample_rate_hz: f64,
    /// Es/N0 per resource element in dB; `None` = no noise.
    pub snr_db: Option<f64>,
    /// Carrier frequency offset in Hz.
    pub cfo_hz: f64,
    /// Delay in samples (≥ 0), integer and fractional part.
    pub delay_samples: f64,
    /// Complex gain applied to signal and noise.
    pub gain: Complex32,
}

impl ChannelParams {
    /// An ideal channel at a sample rate.
    pub fn ideal(sample_rate_hz: f64) -> Self {
        ChannelParams {
            sample_rate_hz,
            snr_db: None,
            cfo_hz: 0.0,
            delay_samples: 0.0,
            gain: Complex32::new(1.0, 0.0),
        }
    }
}

/// A stateful, seeded channel.
pub struct Channel {
    params: ChannelParams,
    rng: ChaCha8Rng,
    int_delay: usize,
    taps: Vec<f32>,
    /// Past input samples: the delay line (len = int_delay + taps).
    history: Vec<Complex32>,
    phase: f64,
    sigma: f32,
}

impl Channel {
    /// A channel with `params` and a seed.
    pub fn new(params: ChannelParams, seed: u64) -> Self {
        let delay = params.delay_samples.max(0.0);
        let int_delay = delay.floor() as usize;
        let frac = delay - delay.floor();
        // Windowed sinc giving a delay of FRAC_TAPS_HALF - 1 + frac samples (the filter adds that
        // much, compensated by shortening the integer delay line).
        let taps: Vec<f32> = if frac.abs() < 1e-9 {
            vec![1.0]
        } else {
            let n = 2 * FRAC_TAPS_HALF;
            let centre = FRAC_TAPS_HALF as f64 - frac;
            let mut t: Vec<f64> = (0..n)
                .map(|i| {
                    let x = i as f64 - centre;
                    let sinc = if x.abs() < 1e-12 {
                        1.0
                    } else {
                        (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
                    };
                    let win = 0.54
                        + 0.46 * (std::f64::consts::PI * x / (FRAC_TAPS_HALF as f64 + 1.0)).cos();
                    sinc * win
                })
                .collect();
            let s: f64 = t.iter().sum();
            t.iter_mut().for_each(|v| *v /= s);
            t.into_iter().map(|v| v as f32).collect()
        };
        // The filter's own delay (FRAC_TAPS_HALF − 1) is added on top of int_delay: keep the
        // total equal to `delay` by prepending fewer zeros when possible.
        let filt_delay = if taps.len() == 1 {
            0
        } else {
            FRAC_TAPS_HALF - 1
        };
        let line = int_delay.saturating_sub(filt_delay);
        let sigma = match params.snr_db {
            Some(snr) => (10f64.powf(-snr / 10.0) / 2.0).sqrt() as f32,
            None => 0.0,
        };
        Channel {
            params,
            rng: ChaCha8Rng::seed_from_u64(seed),
            int_delay: line,
            history: vec![Complex32::new(0.0, 0.0); line + taps.len() - 1],
            taps,
            phase: 0.0,
            sigma,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &ChannelParams {
        &self.params
    }

    /// Total delay actually applied (samples); differs from the requested delay only when a
    /// fractional delay below the filter's own delay was asked for.
    pub fn applied_delay(&self) -> f64 {
        let frac = self.params.delay_samples.max(0.0).fract();
        if self.taps.len() == 1 {
            self.int_delay as f64
        } else {
            self.int_delay as f64 + (FRAC_TAPS_HALF - 1) as f64 + frac
        }
    }

    /// One standard normal pair (Box–Muller).
    fn gaussian_pair(&mut self) -> (f32, f32) {
        let u1: f64 = self.rng.random::<f64>().max(1e-300);
        let u2: f64 = self.rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        ((r * t.cos()) as f32, (r * t.sin()) as f32)
    }

    /// Passes `input` through the channel into `out` (same length; `out` is overwritten).
    pub fn process(&mut self, input: &[Complex32], out: &mut Vec<Complex32>) {
        out.clear();
        out.reserve(input.len());
        let h = self.history.len();
        let nt = self.taps.len();
        // Work on history ++ input; output n uses samples n .. n+nt of that (delayed by line).
        self.history.extend_from_slice(input);
        for n in 0..input.len() {
            let mut acc = Complex32::new(0.0, 0.0);
            let base = n + h + 1 - nt - self.int_delay;
            for (j, &t) in self.taps.iter().enumerate() {
                acc += self.history[base + j] * t;
            }
            out.push(acc);
        }
        let keep = h;
        let total = self.history.len();
        self.history.drain(..total - keep);
        self.phase = crate::ofdm::frequency_shift(
            out,
            self.params.cfo_hz,
            self.params.sample_rate_hz,
            self.phase,
        );
        if self.sigma > 0.0 {
            for o in out.iter_mut() {
                let (a, b) = self.gaussian_pair();
                *o += Complex32::new(a * self.sigma, b * self.sigma);
            }
        }
        let g = self.params.gain;
        if g != Complex32::new(1.0, 0.0) {
            out.iter_mut().for_each(|o| *o *= g);
        }
    }

    /// Noise samples only (for padding a capture before a signal starts).
    pub fn noise(&mut self, len: usize, out: &mut Vec<Complex32>) {
        out.clear();
        for _ in 0..len {
            let (a, b) = self.gaussian_pair();
            out.push(Complex32::new(a * self.sigma, b * self.sigma) * self.params.gain);
        }
    }
}

/// How the links of a [`FadingChannel`] are drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Fading {
    /// Fixed gains, `h[rx · n_tx + tx]` (e.g. the identity, for tests).
    Fixed(Vec<Complex32>),
    /// Independent flat Rayleigh CN(0, 1) per link, redrawn every block.
    Rayleigh,
}

/// A seeded N_tx × N_rx flat block-fading channel with AWGN (see the module doc).
pub struct FadingChannel {
    n_tx: usize,
    n_rx: usize,
    fading: Fading,
    /// Gains of the current block, `h[rx · n_tx + tx]`.
    h: Vec<Complex32>,
    rng: ChaCha8Rng,
    sigma: f32,
}

impl FadingChannel {
    /// A channel between `n_tx` and `n_rx` antennas (1..=8 each) at `snr_db` (`None`: no
    /// noise). Fixed gains must number n_tx · n_rx.
    pub fn new(
        n_tx: usize,
        n_rx: usize,
        fading: Fading,
        snr_db: Option<f64>,
        seed: u64,
    ) -> crate::Result<Self> {
        for (name, n) in [("TX antennas", n_tx), ("RX antennas", n_rx)] {
            if !(1..=8).contains(&n) {
                return Err(crate::PhyError::invalid(name, n, "1..=8"));
            }
        }
        let h = match &fading {
            Fading::Fixed(h) if h.len() != n_tx * n_rx => {
                return Err(crate::PhyError::InvalidLength {
                    what: "fixed channel gains (n_tx · n_rx)",
                    expected: n_tx * n_rx,
                    got: h.len(),
                })
            }
            Fading::Fixed(h) => h.clone(),
            Fading::Rayleigh => vec![Complex32::new(0.0, 0.0); n_tx * n_rx],
        };
        let sigma = match snr_db {
            Some(snr) => (10f64.powf(-snr / 10.0) / 2.0).sqrt() as f32,
            None => 0.0,
        };
        Ok(FadingChannel {
            n_tx,
            n_rx,
            fading,
            h,
            rng: ChaCha8Rng::seed_from_u64(seed),
            sigma,
        })
    }

    /// Gains of the last block, `h[rx · n_tx + tx]`.
    pub fn gains(&self) -> &[Complex32] {
        &self.h
    }

    fn gaussian_pair(&mut self) -> (f32, f32) {
        let u1: f64 = self.rng.random::<f64>().max(1e-300);
        let u2: f64 = self.rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        ((r * t.cos()) as f32, (r * t.sin()) as f32)
    }

    /// One block: draws new gains (Rayleigh), then rx[r] = Σ_t h[r,t]·tx[t] + noise. `tx`
    /// holds one equally long buffer per TX antenna; `rx` is resized to one per RX antenna.
    pub fn process<S: AsRef<[Complex32]>>(
        &mut self,
        tx: &[S],
        rx: &mut Vec<Vec<Complex32>>,
    ) -> crate::Result<()> {
        if tx.len() != self.n_tx {
            return Err(crate::PhyError::InvalidLength {
                what: "TX antenna buffers",
                expected: self.n_tx,
                got: tx.len(),
            });
        }
        let len = tx[0].as_ref().len();
        if let Some(bad) = tx.iter().find(|t| t.as_ref().len() != len) {
            return Err(crate::PhyError::InvalidLength {
                what: "TX antenna buffer (all equally long)",
                expected: len,
                got: bad.as_ref().len(),
            });
        }
        if self.fading == Fading::Rayleigh {
            for i in 0..self.h.len() {
                let (a, b) = self.gaussian_pair();
                self.h[i] = Complex32::new(a, b) * std::f32::consts::FRAC_1_SQRT_2;
            }
        }
        rx.resize_with(self.n_rx, Vec::new);
        for (r, out) in rx.iter_mut().enumerate() {
            out.clear();
            out.resize(len, Complex32::new(0.0, 0.0));
            for (t, input) in tx.iter().enumerate() {
                let g = self.h[r * self.n_tx + t];
                for (o, &x) in out.iter_mut().zip(input.as_ref()) {
                    *o += g * x;
                }
            }
        }
        if self.sigma > 0.0 {
            for o in rx.iter_mut().flat_map(|out| out.iter_mut()) {
                let (a, b) = self.gaussian_pair();
                *o += Complex32::new(a * self.sigma, b * self.sigma);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // tests compare index-parallel tables
mod tests {
    use super::*;

    #[test]
    fn rayleigh_links_have_unit_power_and_differ() {
        let mut ch = FadingChannel::new(2, 2, Fading::Rayleigh, None, 3).unwrap();
        let x = [
            vec![Complex32::new(1.0, 0.0); 4],
            vec![Complex32::new(0.0, 0.0); 4],
        ];
        let mut rx = Vec::new();
        let mut pow = [0.0f32; 4];
        let n = 4000;
        for _ in 0..n {
            ch.process(&x, &mut rx).unwrap();
            for (p, g) in pow.iter_mut().zip(ch.gains()) {
                *p += g.norm_sqr() / n as f32;
            }
            // Noiseless, TX 1 silent: each RX antenna sees h[r, 0].
            assert_eq!(rx[1][3], ch.gains()[2]);
        }
        for p in pow {
            assert!((p - 1.0).abs() < 0.08, "{pow:?}");
        }
        let g = ch.gains();
        assert!(g[0] != g[1] && g[0] != g[2]);
    }

    #[test]
    fn fixed_gains_sum_the_antennas_and_add_noise() {
        let h = vec![Complex32::new(1.0, 0.0), Complex32::new(0.0, 2.0)];
        let mut ch = FadingChannel::new(2, 1, Fading::Fixed(h), Some(10.0), 9).unwrap();
        let n = 20000;
        let a = vec![Complex32::new(1.0, 0.0); n];
        let b = vec![Complex32::new(0.5, 0.0); n];
        let mut rx = Vec::new();
        ch.process(&[a, b], &mut rx).unwrap();
        let want = Complex32::new(1.0, 1.0);
        let noise: f32 = rx[0].iter().map(|y| (y - want).norm_sqr()).sum::<f32>() / n as f32;
        assert!((noise - 0.1).abs() < 0.005, "{noise}");
        assert!(FadingChannel::new(2, 2, Fading::Fixed(vec![]), None, 1).is_err());
        assert!(FadingChannel::new(0, 1, Fading::Rayleigh, None, 1).is_err());
    }

    #[test]
    fn integer_delay_across_calls() {
        let mut p = ChannelParams::ideal(1e6);
        p.delay_samples = 5.0;
        let mut ch = Channel::new(p, 1);
        let x: Vec<Complex32> = (0..20).map(|i| Complex32::new(i as f32, 0.0)).collect();
        let mut a = Vec::new();
        let mut b = Vec::new();
        ch.process(&x[..8], &mut a);
        ch.process(&x[8..], &mut b);
        a.extend(b);
        for n in 0..20 {
            let want = if n < 5 { 0.0 } else { (n - 5) as f32 };
            assert!((a[n].re - want).abs() < 1e-5, "{n}: {}", a[n]);
        }
        assert_eq!(ch.applied_delay(), 5.0);
    }

    #[test]
    fn fractional_delay_of_a_slow_tone() {
        let mut p = ChannelParams::ideal(1e6);
        p.delay_samples = 10.25;
        let mut ch = Channel::new(p, 1);
        let f = 0.01;
        let x: Vec<Complex32> = (0..400)
            .map(|i| Complex32::from_polar(1.0, 2.0 * std::f32::consts::PI * f * i as f32))
            .collect();
        let mut y = Vec::new();
        ch.process(&x, &mut y);
        let d = ch.applied_delay();
        assert!((d - 10.25).abs() < 1e-9);
        for n in 100..400 {
            let want =
                Complex32::from_polar(1.0, 2.0 * std::f32::consts::PI * f * (n as f32 - 10.25));
            assert!((y[n] - want).norm() < 1e-2, "{n}");
        }
    }

    #[test]
    fn noise_power_and_determinism() {
        let mut p = ChannelParams::ideal(1e6);
        p.snr_db = Some(10.0);
        let zeros = vec![Complex32::new(0.0, 0.0); 20000];
        let mut y1 = Vec::new();
        let mut y2 = Vec::new();
        Channel::new(p, 7).process(&zeros, &mut y1);
        Channel::new(p, 7).process(&zeros, &mut y2);
        assert_eq!(y1, y2);
        let pow: f32 = y1.iter().map(|v| v.norm_sqr()).sum::<f32>() / 20000.0;
        assert!((pow - 0.1).abs() < 0.005, "{pow}");
    }
}

//! The air channel, sans-IO: each radio receives the sum over the other radios of their TX,
//! scaled by the pair's gain, rotated by the pair's carrier frequency offset and delayed by
//! a whole number of samples, plus a seeded Gaussian noise floor. Blocked pairs carry
//! nothing. Every radio has its own TX and RX centre frequency (an N210 + WBX has separate
//! LOs): a transmitter reaches a receiver only where its band overlaps the receiver's, shifted
//! by the difference of the two centres. Time (the sample index of the tick) is passed in.
//!
//! A radio may have two antennas (channels). The air then mixes antenna by antenna: every
//! (TX radio, TX antenna) → (RX radio, RX antenna) pair has the radio pair's gain, CFO and
//! delay times its own complex coefficient — a fixed seeded phase, or with `fading` a
//! seeded Rayleigh process (sum of sinusoids with Clarke's spectrum) — and every RX antenna
//! its own noise. Pairs of single-antenna radios without fading are exactly as before.

use ferry_fronthaul::vrt::SampleTime;
use num_complex::{Complex32, Complex64};
use rand::RngCore;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::config::AirConfig;

/// One direction of a radio pair, as configured (independent of tuning).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Path {
    /// Linear amplitude gain (10^(dB/20)).
    pub amplitude: f32,
    /// Frequency offset in Hz added at the receiver.
    pub cfo_hz: f64,
    /// Delay in samples.
    pub delay: usize,
}

/// Taps of the channel filter applied to a partially overlapping pair (odd: linear phase,
/// group delay `(FILTER_TAPS - 1) / 2` samples).
pub const FILTER_TAPS: usize = 63;

/// What actually couples a transmitter into a receiver under the current tuning.
#[derive(Debug, Clone, PartialEq)]
struct Coupling {
    amplitude: f32,
    /// Link CFO plus the carrier offset (TX centre − RX centre).
    shift_hz: f64,
    delay: usize,
    /// Complex band-pass keeping only the part of the TX band that lands inside the
    /// receiver's band (None when the centres coincide: everything lands).
    filter: Option<Vec<Complex32>>,
}

/// Size of the precomputed unit-variance Gaussian table (power of two).
const NOISE_TABLE: usize = 1 << 16;
/// Rotators a frequency-shifted path runs side by side (independent chains the compiler
/// vectorises; one rotator stepped sample by sample is bound by its multiply latency).
const LANES: usize = crate::mixsimd::LANES;

/// Sinusoids of each antenna pair's fading process.
const FADING_PATHS: usize = 16;
/// Samples per block over which an antenna pair's complex gain is held constant.
const GAIN_BLOCK: usize = 64;

/// One antenna pair's Rayleigh fading process: `h(t) = Σ_m e^{i(2π f_m t + φ_m)} / √M` with
/// `f_m = f_D cos α_m` (Clarke's model by a sum of sinusoids; E|h|² = 1).
#[derive(Debug, Clone)]
struct FadingProcess {
    /// (f_m in cycles per sample, φ_m in radians).
    paths: [(f64, f64); FADING_PATHS],
}

impl FadingProcess {
    fn new(doppler_hz: f64, rate: f64, rng: &mut ChaCha8Rng) -> Self {
        let mut paths = [(0.0, 0.0); FADING_PATHS];
        for p in &mut paths {
            let alpha = std::f64::consts::TAU * rng.random::<f64>();
            let phi = std::f64::consts::TAU * rng.random::<f64>();
            *p = (doppler_hz * alpha.cos() / rate, phi);
        }
        Self { paths }
    }

    /// The complex gain at absolute sample time `t`.
    fn at(&self, t: u64) -> Complex64 {
        let mut h = Complex64::new(0.0, 0.0);
        for &(f, phi) in &self.paths {
            let cycles = (f * t as f64).fract();
            h += Complex64::from_polar(1.0, std::f64::consts::TAU * cycles + phi);
        }
        h / (FADING_PATHS as f64).sqrt()
    }
}

/// The channel between N radios (each with one or two antennas).
#[derive(Debug)]
pub struct AirChannel {
    n: usize,
    /// Antennas of the whole air, radio by radio: the radio of each.
    antenna_radio: Vec<usize>,
    /// Complex gain of each antenna pair `[rx_antenna * antennas + tx_antenna]` on top of the
    /// radio pair's path: `None` = exactly 1 (single-antenna pairs without fading).
    antenna_gain: Vec<Option<Complex32>>,
    /// Fading process of each antenna pair (same indexing), when fading is on.
    fading: Vec<Option<FadingProcess>>,
    rate: f64,
    rate_int: u32,
    /// `paths[rx * n + tx]` as configured.
    paths: Vec<Option<Path>>,
    /// `couplings[rx * n + tx]` under the current tuning.
    couplings: Vec<Option<Coupling>>,
    /// TX centre frequency of each radio (Hz).
    tx_freq: Vec<f64>,
    /// RX centre frequency of each radio (Hz).
    rx_freq: Vec<f64>,
    /// Noise standard deviation per I/Q component, per receiving radio.
    noise_sigma: Vec<Option<f32>>,
    noise_table: Vec<f32>,
    /// The noise floor's generator (xoshiro256++, seeded from the air's seed: a seed's
    /// noise is reproducible; 5× the speed of ChaCha8, which was a quarter of the mix).
    noise_rng: Xoshiro256PlusPlus,
    /// The noise generator's words of one tick (scratch).
    words: Vec<u64>,
    /// TX history kept per radio: the longest delay plus a filter's memory.
    max_history: usize,
    /// Last `max_history` TX samples of each radio (for delayed paths across ticks).
    history: Vec<Vec<Complex32>>,
    ext: Vec<Vec<Complex32>>,
}

/// Where the carrier offset `offset_hz` between a transmitter and a receiver, both sampling
/// at `rate`, leaves the transmitted band: `None` if it misses the receiver's band entirely.
pub fn overlap_hz(offset_hz: f64, rate: f64) -> Option<f64> {
    let o = rate - offset_hz.abs();
    (offset_hz.is_finite() && o > 0.0).then_some(o)
}

/// Phase (in cycles, 0..1) of a tone at `f_hz` after `t` samples at `rate`. Exact for the
/// integer part of `f_hz` at any `t` (MHz offsets times hours of samples overflow f64).
fn cycles(f_hz: f64, t: u64, rate: u32) -> f64 {
    let fi = f_hz.trunc();
    let ff = f_hz - fi;
    let r = i128::from(rate.max(1));
    let whole = ((fi as i128).wrapping_mul(i128::from(t))).rem_euclid(r) as f64 / f64::from(rate);
    let frac = (ff * t as f64 / f64::from(rate)).fract();
    (whole + frac).rem_euclid(1.0)
}

/// Blackman-windowed sinc band-pass passing `[centre - half, centre + half]` Hz.
fn band_pass(centre_hz: f64, half_hz: f64, rate: f64) -> Vec<Complex32> {
    let m = (FILTER_TAPS - 1) as f64 / 2.0;
    let fc = half_hz / rate;
    let w0 = std::f64::consts::TAU * centre_hz / rate;
    let mut h: Vec<Complex64> = (0..FILTER_TAPS)
        .map(|k| {
            let x = k as f64 - m;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (std::f64::consts::TAU * fc * x).sin() / (std::f64::consts::PI * x)
            };
            let a = std::f64::consts::TAU * k as f64 / (FILTER_TAPS - 1) as f64;
            let win = 0.42 - 0.5 * a.cos() + 0.08 * (2.0 * a).cos();
            Complex64::from_polar(sinc * win, w0 * x)
        })
        .collect();
    // Unit gain at the pass-band centre.
    let g: Complex64 = h
        .iter()
        .enumerate()
        .map(|(k, c)| c * Complex64::from_polar(1.0, -w0 * (k as f64 - m)))
        .sum();
    if g.norm() > 0.0 {
        h.iter_mut().for_each(|c| *c /= g.norm());
    }
    h.into_iter()
        .map(|c| Complex32::new(c.re as f32, c.im as f32))
        .collect()
}

/// Mean power of a block of samples (0 for none).
pub fn mean_power_of(s: &[Complex32]) -> f32 {
    if s.is_empty() {
        return 0.0;
    }
    s.iter().map(|x| x.norm_sqr()).sum::<f32>() / s.len() as f32
}

/// Noise standard deviation per I/Q component for a total complex power of `db` dBFS.
fn sigma_of(db: f64) -> f32 {
    (10f64.powf(db / 10.0) / 2.0).sqrt() as f32
}

impl AirChannel {
    /// A channel of `n` single-antenna radios with every pair blocked and every radio tuned
    /// to one frequency.
    pub fn new(n: usize, rate: u32, noise_floor_dbfs: Option<f64>, seed: u64) -> Self {
        Self::with_antennas(&vec![1; n], rate, noise_floor_dbfs, seed, None)
    }

    /// A channel of radios with `antennas[i]` antennas each (1 or 2), every pair blocked;
    /// with `fading_doppler_hz` every antenna pair fades (Rayleigh, that maximum Doppler).
    /// Tick buffers given to [`AirChannel::mix`] are then per antenna, radio by radio.
    pub fn with_antennas(
        antennas: &[usize],
        rate: u32,
        noise_floor_dbfs: Option<f64>,
        seed: u64,
        fading_doppler_hz: Option<f64>,
    ) -> Self {
        let n = antennas.len();
        let antenna_radio: Vec<usize> = antennas
            .iter()
            .enumerate()
            .flat_map(|(r, &k)| std::iter::repeat_n(r, k.max(1)))
            .collect();
        let na = antenna_radio.len();
        // A separate generator for the antenna pairs: the noise sequence of a given seed is
        // the same with and without two-antenna radios.
        let mut pair_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_A17E_77A5_0001);
        let mut antenna_gain = vec![None; na * na];
        let mut fading = vec![None; na * na];
        for rx in 0..na {
            for tx in 0..na {
                let (ri, rj) = (antenna_radio[rx], antenna_radio[tx]);
                if ri == rj {
                    continue;
                }
                let i = rx * na + tx;
                if let Some(fd) = fading_doppler_hz {
                    fading[i] = Some(FadingProcess::new(
                        fd,
                        f64::from(rate.max(1)),
                        &mut pair_rng,
                    ));
                } else if antennas[ri] > 1 || antennas[rj] > 1 {
                    // Antennas some wavelengths apart: each pair its own carrier phase.
                    let th = std::f64::consts::TAU * pair_rng.random::<f64>();
                    antenna_gain[i] = Some(Complex32::from_polar(1.0, th as f32));
                }
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Box-Muller once at start-up; per-sample noise then costs one table lookup.
        let mut noise_table = Vec::with_capacity(NOISE_TABLE);
        while noise_table.len() < NOISE_TABLE {
            let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = rng.random::<f64>();
            let r = (-2.0 * u1.ln()).sqrt();
            let th = std::f64::consts::TAU * u2;
            noise_table.push((r * th.cos()) as f32);
            noise_table.push((r * th.sin()) as f32);
        }
        Self {
            n,
            antenna_radio,
            antenna_gain,
            fading,
            rate: f64::from(rate.max(1)),
            rate_int: rate.max(1),
            paths: vec![None; n * n],
            couplings: vec![None; n * n],
            tx_freq: vec![0.0; n],
            rx_freq: vec![0.0; n],
            // Total complex power P split over I and Q.
            noise_sigma: vec![noise_floor_dbfs.map(sigma_of); n],
            noise_table,
            noise_rng: Xoshiro256PlusPlus::seed_from_u64(rng.random()),
            words: Vec::new(),
            max_history: 0,
            history: vec![Vec::new(); na],
            ext: vec![Vec::new(); na],
        }
    }

    /// Antennas of the whole air (the number of tick buffers [`AirChannel::mix`] takes).
    pub fn antennas(&self) -> usize {
        self.antenna_radio.len()
    }

    /// Builds the channel of a validated configuration (with each radio's RF tuning).
    pub fn from_config(cfg: &AirConfig) -> Self {
        let mut ch = Self::with_antennas(
            &cfg.antennas(),
            cfg.sample_rate_hz,
            cfg.noise_floor_dbfs,
            cfg.seed,
            cfg.fading.map(|f| f.doppler_hz),
        );
        for (i, r) in cfg.radios.iter().enumerate() {
            ch.set_tuning(i, r.rf.tx_freq_hz, r.rf.rx_freq_hz);
            if let Some(db) = r.noise_floor_dbfs {
                ch.noise_sigma[i] = Some(sigma_of(db));
            }
        }
        for l in &cfg.links {
            let (Some(a), Some(b)) = (cfg.radio_index(&l.a), cfg.radio_index(&l.b)) else {
                continue;
            };
            let path = |cfo: f64| {
                l.gain_db.map(|g| Path {
                    amplitude: 10f64.powf(g / 20.0) as f32,
                    cfo_hz: cfo,
                    delay: l.delay_samples,
                })
            };
            ch.set_path(a, b, path(l.cfo_hz));
            ch.set_path(b, a, path(-l.cfo_hz));
        }
        ch
    }

    /// Sets (or blocks with `None`) the path from radio `tx` to radio `rx`.
    pub fn set_path(&mut self, tx: usize, rx: usize, path: Option<Path>) {
        if tx >= self.n || rx >= self.n || tx == rx {
            return;
        }
        self.paths[rx * self.n + tx] = path;
        self.recompute(tx, rx);
        self.resize_history();
    }

    /// Tunes radio `radio`'s transmitter and receiver (centre frequencies in Hz). Takes
    /// effect from the next [`AirChannel::mix`].
    pub fn set_tuning(&mut self, radio: usize, tx_hz: f64, rx_hz: f64) {
        if radio >= self.n {
            return;
        }
        self.tx_freq[radio] = tx_hz;
        self.rx_freq[radio] = rx_hz;
        for other in 0..self.n {
            self.recompute(radio, other);
            self.recompute(other, radio);
        }
        self.resize_history();
    }

    /// TX and RX centre frequency of a radio.
    pub fn tuning(&self, radio: usize) -> Option<(f64, f64)> {
        Some((*self.tx_freq.get(radio)?, *self.rx_freq.get(radio)?))
    }

    fn recompute(&mut self, tx: usize, rx: usize) {
        if tx >= self.n || rx >= self.n || tx == rx {
            return;
        }
        let i = rx * self.n + tx;
        let offset = self.tx_freq[tx] - self.rx_freq[rx];
        self.couplings[i] = self.paths[i].and_then(|p| {
            let kept = overlap_hz(offset, self.rate)?;
            // The TX band [-fs/2, fs/2] lands at [-fs/2 + offset, fs/2 + offset]; the
            // receiver keeps [-fs/2, fs/2]: filter the TX to the part that lands inside
            // (centred at -offset/2, `kept` wide) before shifting it.
            let filter = (offset != 0.0).then(|| band_pass(-offset / 2.0, kept / 2.0, self.rate));
            Some(Coupling {
                amplitude: p.amplitude,
                shift_hz: p.cfo_hz + offset,
                delay: p.delay,
                filter,
            })
        });
    }

    fn resize_history(&mut self) {
        self.max_history = self
            .couplings
            .iter()
            .flatten()
            .map(|c| c.delay + c.filter.as_ref().map_or(0, |f| f.len() - 1))
            .max()
            .unwrap_or(0);
        for h in &mut self.history {
            // Keep the most recent samples when the history grows or shrinks.
            let len = h.len();
            if len > self.max_history {
                h.drain(..len - self.max_history);
            } else {
                let mut v = vec![Complex32::new(0.0, 0.0); self.max_history - len];
                v.append(h);
                *h = v;
            }
        }
    }

    /// The configured path from `tx` to `rx`.
    pub fn path(&self, tx: usize, rx: usize) -> Option<Path> {
        self.paths.get(rx * self.n + tx).copied().flatten()
    }

    /// Whether `rx` hears `tx` under the current tuning, and at what total frequency shift
    /// (link CFO + carrier offset) in Hz.
    pub fn coupling_shift_hz(&self, tx: usize, rx: usize) -> Option<f64> {
        self.couplings
            .get(rx * self.n + tx)?
            .as_ref()
            .map(|c| c.shift_hz)
    }

    /// Mixes one tick: `tx[a]` is what antenna a transmits for samples `t0..t0+len`; on
    /// return `rx[a]` is what antenna a receives (antennas radio by radio; with
    /// single-antenna radios, one buffer per radio). All buffers must have the same length
    /// (shorter `rx` buffers are resized).
    pub fn mix(&mut self, t0: SampleTime, tx: &[Vec<Complex32>], rx: &mut [Vec<Complex32>]) {
        let len = tx.first().map_or(0, Vec::len);
        let md = self.max_history;
        let na = self.antenna_radio.len();
        for (j, ext) in self.ext.iter_mut().enumerate() {
            ext.clear();
            ext.extend_from_slice(&self.history[j]);
            match tx.get(j) {
                Some(t) if t.len() == len => ext.extend_from_slice(t),
                _ => ext.resize(md + len, Complex32::new(0.0, 0.0)),
            }
        }
        let mut filtered: Vec<Complex32> = Vec::new();
        let mut block_gain: Vec<Complex64> = Vec::new();
        for (ai, out) in rx.iter_mut().enumerate().take(na) {
            let i = self.antenna_radio[ai];
            out.clear();
            out.resize(len, Complex32::new(0.0, 0.0));
            for aj in 0..na {
                let j = self.antenna_radio[aj];
                let Some(p) = &self.couplings[i * self.n + j] else {
                    continue;
                };
                let src: &[Complex32] = match &p.filter {
                    None => &self.ext[aj][md - p.delay..md - p.delay + len],
                    Some(h) => {
                        // y[s] = sum_k h[k] x[s - k]: causal, (taps - 1) / 2 samples late.
                        let x = &self.ext[aj];
                        let base = md - p.delay;
                        filtered.clear();
                        filtered.extend((0..len).map(|s| {
                            h.iter()
                                .enumerate()
                                .map(|(k, c)| c * x[base + s - k])
                                .sum::<Complex32>()
                        }));
                        &filtered
                    }
                };
                let pair = ai * na + aj;
                // The antenna pair's complex gain per block of GAIN_BLOCK samples (None:
                // exactly 1, the single-antenna air as it always was).
                let gain = match (&self.fading[pair], self.antenna_gain[pair]) {
                    (Some(f), _) => {
                        block_gain.clear();
                        block_gain.extend(
                            (0..len.div_ceil(GAIN_BLOCK))
                                .map(|k| f.at(t0 + (k * GAIN_BLOCK + GAIN_BLOCK / 2) as u64)),
                        );
                        Some(block_gain.as_slice())
                    }
                    (None, Some(g)) => {
                        block_gain.clear();
                        block_gain.resize(
                            len.div_ceil(GAIN_BLOCK),
                            Complex64::new(f64::from(g.re), f64::from(g.im)),
                        );
                        Some(block_gain.as_slice())
                    }
                    (None, None) => None,
                };
                if p.shift_hz == 0.0 && gain.is_none() {
                    for (o, s) in out.iter_mut().zip(src) {
                        *o += s * p.amplitude;
                    }
                } else {
                    // Phase from absolute sample time so it is continuous across ticks:
                    // exact (one f64 sincos) at the tick's start, then an f64 phasor stepped
                    // block by block (its error after a tick's hundreds of blocks is ~1e-13),
                    // and cheap f32 steps inside each 64-sample block: the error stays ~1e-6
                    // instead of growing over the tick. (A sincos per block was a seventh of
                    // the mix.)
                    let ph0 = std::f64::consts::TAU * cycles(p.shift_hz, t0, self.rate_int);
                    let step = std::f64::consts::TAU * p.shift_hz / self.rate;
                    let dr = Complex32::from_polar(1.0, step as f32);
                    let amp = f64::from(p.amplitude);
                    // LANES rotators a sample apart, each stepped by dr^LANES: independent
                    // chains the compiler vectorises (one chain is latency-bound).
                    let mut lane_step = [Complex32::new(1.0, 0.0); LANES];
                    for l in 1..LANES {
                        lane_step[l] = lane_step[l - 1] * dr;
                    }
                    let dr_lanes = Complex64::from_polar(1.0, step * LANES as f64);
                    let dr_lanes = Complex32::new(dr_lanes.re as f32, dr_lanes.im as f32);
                    let dr_block = Complex64::from_polar(1.0, step * GAIN_BLOCK as f64);
                    let mut r_block = Complex64::from_polar(amp, ph0);
                    for (k, (ob, sb)) in out
                        .chunks_mut(GAIN_BLOCK)
                        .zip(src.chunks(GAIN_BLOCK))
                        .enumerate()
                    {
                        let mut r0 = r_block;
                        r_block *= dr_block;
                        if let Some(g) = gain.and_then(|g| g.get(k)) {
                            r0 *= g;
                        }
                        let r0 = Complex32::new(r0.re as f32, r0.im as f32);
                        let mut rot = lane_step.map(|s| r0 * s);
                        let done = crate::mixsimd::rotate_mac(ob, sb, &mut rot, dr_lanes);
                        for (l, (o, s)) in ob[done..].iter_mut().zip(&sb[done..]).enumerate() {
                            *o += s * rot[l];
                        }
                    }
                }
            }
            if let Some(sigma) = self.noise_sigma[i] {
                let mask = (NOISE_TABLE - 1) as u32;
                // One 64-bit word of the generator per two samples: four 16-bit table
                // indices (I and Q of each), drawn for the whole tick first.
                self.words.clear();
                self.words
                    .extend((0..len.div_ceil(2)).map(|_| self.noise_rng.next_u64()));
                let t = &self.noise_table;
                let at = |w: u64, shift: u32| t[((w >> shift) as u32 & mask) as usize] * sigma;
                for (o, &w) in out.chunks_mut(2).zip(&self.words) {
                    o[0] += Complex32::new(at(w, 0), at(w, 16));
                    if let Some(o1) = o.get_mut(1) {
                        *o1 += Complex32::new(at(w, 32), at(w, 48));
                    }
                }
            }
        }
        for (j, h) in self.history.iter_mut().enumerate() {
            let e = &self.ext[j];
            h.clear();
            h.extend_from_slice(&e[e.len() - md..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imp(len: usize, at: usize) -> Vec<Complex32> {
        let mut v = vec![Complex32::new(0.0, 0.0); len];
        v[at] = Complex32::new(1.0, 0.0);
        v
    }

    #[test]
    fn gain_delay_and_blocking() {
        let mut ch = AirChannel::new(3, 1000, None, 1);
        ch.set_path(
            0,
            1,
            Some(Path {
                amplitude: 0.5,
                cfo_hz: 0.0,
                delay: 3,
            }),
        );
        // 0 -> 2 blocked; 1 -> 0 blocked.
        let tx = vec![
            imp(8, 6),
            vec![Complex32::new(1.0, 1.0); 8],
            vec![Complex32::new(0.0, 0.0); 8],
        ];
        let mut rx = vec![Vec::new(); 3];
        ch.mix(0, &tx, &mut rx);
        assert!(
            rx[1].iter().all(|s| s.norm() == 0.0),
            "delayed past the tick"
        );
        assert!(
            rx[0].iter().chain(&rx[2]).all(|s| s.norm() == 0.0),
            "blocked"
        );
        let tx2 = vec![vec![Complex32::new(0.0, 0.0); 8]; 3];
        ch.mix(8, &tx2, &mut rx);
        assert_eq!(
            rx[1][1],
            Complex32::new(0.5, 0.0),
            "delay carried across ticks"
        );
        assert_eq!(rx[1].iter().filter(|s| s.norm() > 0.0).count(), 1);
    }

    #[test]
    fn cfo_rotates_continuously_across_ticks() {
        let rate = 1000;
        let mut ch = AirChannel::new(2, rate, None, 1);
        ch.set_path(
            0,
            1,
            Some(Path {
                amplitude: 1.0,
                cfo_hz: 10.0,
                delay: 0,
            }),
        );
        let one = vec![Complex32::new(1.0, 0.0); 50];
        let mut rx = vec![Vec::new(); 2];
        let mut all = Vec::new();
        for k in 0..4 {
            ch.mix(k * 50, &[one.clone(), one.clone()], &mut rx);
            all.extend(rx[1].clone());
        }
        for (s, v) in all.iter().enumerate() {
            let want = std::f64::consts::TAU * 10.0 * s as f64 / f64::from(rate);
            let want = Complex32::new(want.cos() as f32, want.sin() as f32);
            assert!((v - want).norm() < 1e-4, "sample {s}: {v} vs {want}");
        }
    }

    #[test]
    fn the_noise_floor_is_white_gaussian_and_independent_per_receiver() {
        let n = 200_000;
        let mut ch = AirChannel::new(2, 1000, Some(0.0), 3);
        let tx = vec![vec![Complex32::new(0.0, 0.0); n]; 2];
        let mut rx = vec![Vec::new(); 2];
        ch.mix(0, &tx, &mut rx);
        let v: Vec<f64> = rx[0]
            .iter()
            .flat_map(|s| [f64::from(s.re), f64::from(s.im)])
            .collect();
        let m = v.len() as f64;
        let var = v.iter().map(|x| x * x).sum::<f64>() / m;
        assert!((var - 0.5).abs() < 0.01, "I/Q variance {var}");
        let kurt = v.iter().map(|x| x.powi(4)).sum::<f64>() / m / (var * var);
        assert!((kurt - 3.0).abs() < 0.1, "kurtosis {kurt} (Gaussian: 3)");
        let corr = |a: &[Complex32], b: &[Complex32], f: fn(&Complex32, &Complex32) -> f32| {
            a.iter()
                .zip(b)
                .map(|(x, y)| f64::from(f(x, y)))
                .sum::<f64>()
                / (a.len() as f64 * var)
        };
        let r = &rx[0];
        // No correlation between I and Q, from a sample to the next (the two samples of one
        // generator word, and across words), nor between receivers.
        for (what, c) in [
            ("I·Q", corr(r, r, |x, _| x.re * x.im)),
            (
                "lag 1",
                corr(&r[1..], &r[..n - 1], |x, y| x.re * y.re + x.im * y.im) / 2.0,
            ),
            (
                "lag 2",
                corr(&r[2..], &r[..n - 2], |x, y| x.re * y.re + x.im * y.im) / 2.0,
            ),
            (
                "receivers",
                corr(&rx[0], &rx[1], |x, y| x.re * y.re + x.im * y.im) / 2.0,
            ),
        ] {
            assert!(c.abs() < 0.01, "{what}: correlation {c}");
        }
    }

    #[test]
    fn noise_floor_has_configured_power_and_is_seeded() {
        let mut a = AirChannel::new(2, 1000, Some(-20.0), 7);
        let mut b = AirChannel::new(2, 1000, Some(-20.0), 7);
        let tx = vec![vec![Complex32::new(0.0, 0.0); 20000]; 2];
        let (mut ra, mut rb) = (vec![Vec::new(); 2], vec![Vec::new(); 2]);
        a.mix(0, &tx, &mut ra);
        b.mix(0, &tx, &mut rb);
        assert_eq!(ra, rb);
        let p: f32 = ra[0].iter().map(|s| s.norm_sqr()).sum::<f32>() / 20000.0;
        assert!((p - 0.01).abs() < 0.0005, "power {p}");
    }

    #[test]
    fn a_radio_may_have_its_own_noise_floor() {
        let mut cfg = crate::config::AirConfig {
            noise_floor_dbfs: Some(-20.0),
            ..Default::default()
        };
        cfg.radios[1].noise_floor_dbfs = Some(-10.0);
        cfg.validate().unwrap();
        let n = cfg.radios.len();
        let mut a = AirChannel::from_config(&cfg);
        let tx = vec![vec![Complex32::new(0.0, 0.0); 20000]; n];
        let mut rx = vec![Vec::new(); n];
        a.mix(0, &tx, &mut rx);
        let p = |v: &[Complex32]| v.iter().map(|s| s.norm_sqr()).sum::<f32>() / v.len() as f32;
        assert!((p(&rx[0]) - 0.01).abs() < 0.0005, "{}", p(&rx[0]));
        assert!((p(&rx[1]) - 0.1).abs() < 0.005, "{}", p(&rx[1]));
        cfg.radios[1].noise_floor_dbfs = Some(3.0);
        assert!(cfg.validate().is_err());
    }

    fn open(amplitude: f32) -> Option<Path> {
        Some(Path {
            amplitude,
            cfo_hz: 0.0,
            delay: 0,
        })
    }

    /// Radio 0 transmits at 2140 MHz; radio 1 listens there, radio 2 at 2140 MHz + one
    /// sample rate (2 MHz away, no overlap), radio 3 at the 190 MHz-away uplink carrier.
    #[test]
    fn coupling_only_between_overlapping_carriers_and_sample_exact() {
        let rate = 1_920_000;
        let mut ch = AirChannel::new(4, rate, None, 1);
        for a in 0..4 {
            for b in 0..4 {
                ch.set_path(a, b, open(0.5));
            }
        }
        ch.set_tuning(0, 2140e6, 1950e6);
        ch.set_tuning(1, 1950e6, 2140e6);
        ch.set_tuning(2, 1950e6, 2140e6 + f64::from(rate));
        ch.set_tuning(3, 2140e6, 1950e6);
        let ramp: Vec<Complex32> = (0..500).map(|k| Complex32::new(k as f32, 1.0)).collect();
        let zero = vec![Complex32::new(0.0, 0.0); 500];
        let tx = vec![ramp.clone(), zero.clone(), zero.clone(), zero.clone()];
        let mut rx = vec![Vec::new(); 4];
        ch.mix(0, &tx, &mut rx);
        // Same centre: exactly as a one-carrier air (gain, no shift, no filter).
        for (k, v) in rx[1].iter().enumerate() {
            assert_eq!(*v, ramp[k] * 0.5, "sample {k}");
        }
        assert!(
            rx[2].iter().all(|s| s.norm() == 0.0),
            "one rate away: nothing"
        );
        assert!(
            rx[3].iter().all(|s| s.norm() == 0.0),
            "uplink carrier: nothing"
        );
        assert!(rx[0].iter().all(|s| s.norm() == 0.0), "own TX not heard");
        assert_eq!(ch.coupling_shift_hz(0, 1), Some(0.0));
        assert_eq!(ch.coupling_shift_hz(0, 2), None);
        assert_eq!(ch.coupling_shift_hz(0, 3), None);
        // The uplink: radio 1 and 2 transmit on 1950 MHz, radio 0 and 3 hear both.
        assert_eq!(ch.coupling_shift_hz(1, 0), Some(0.0));
        assert_eq!(ch.coupling_shift_hz(2, 3), Some(0.0));
        // Terminals on the same uplink do not hear each other (they listen on the downlink).
        assert_eq!(ch.coupling_shift_hz(1, 2), None);
    }

    fn tone(f: f64, rate: f64, n: usize) -> Vec<Complex32> {
        (0..n)
            .map(|k| {
                let ph = std::f64::consts::TAU * f * k as f64 / rate;
                Complex32::new(ph.cos() as f32, ph.sin() as f32)
            })
            .collect()
    }

    /// Power of `x` at frequency `f` (normalised correlation).
    fn power_at(x: &[Complex32], f: f64, rate: f64) -> f32 {
        let t = tone(f, rate, x.len());
        let c: Complex32 = x.iter().zip(&t).map(|(a, b)| a * b.conj()).sum();
        (c / x.len() as f32).norm_sqr()
    }

    /// A 300 kHz offset shifts what lands by 300 kHz, keeps what overlaps and removes what
    /// falls outside the receiver's band (instead of wrapping it around).
    #[test]
    fn partial_overlap_shifts_and_filters() {
        let rate = 1_920_000u32;
        let fs = f64::from(rate);
        let mut ch = AirChannel::new(2, rate, None, 1);
        ch.set_path(0, 1, open(1.0));
        ch.set_tuning(0, 2140.3e6, 0.0);
        ch.set_tuning(1, 0.0, 2140e6);
        assert_eq!(ch.coupling_shift_hz(0, 1), Some(300e3));
        let n = 1920;
        // Inside: -200 kHz lands at +100 kHz. Outside: +800 kHz would land at 1.1 MHz.
        let inside = tone(-200e3, fs, 3 * n);
        let outside = tone(800e3, fs, 3 * n);
        let (mut got_in, mut got_out) = (Vec::new(), Vec::new());
        for (src, got) in [(&inside, &mut got_in), (&outside, &mut got_out)] {
            let mut ch = AirChannel::new(2, rate, None, 1);
            ch.set_path(0, 1, open(1.0));
            ch.set_tuning(0, 2140.3e6, 0.0);
            ch.set_tuning(1, 0.0, 2140e6);
            let mut rx = vec![Vec::new(); 2];
            for k in 0..3 {
                let t0 = (k * n) as u64;
                let tx = vec![
                    src[k * n..(k + 1) * n].to_vec(),
                    vec![Complex32::new(0.0, 0.0); n],
                ];
                ch.mix(t0, &tx, &mut rx);
                got.extend_from_slice(&rx[1]);
            }
        }
        // Skip the filter's start-up transient.
        let tail = &got_in[FILTER_TAPS..];
        let p = power_at(tail, 100e3, fs);
        assert!((p - 1.0).abs() < 0.02, "in-band tone power {p}");
        let q: f32 = got_out[FILTER_TAPS..]
            .iter()
            .map(|s| s.norm_sqr())
            .sum::<f32>()
            / (got_out.len() - FILTER_TAPS) as f32;
        assert!(q < 1e-3, "out-of-band tone leaks {q} (>-30 dB)");
    }

    #[test]
    fn retuning_applies_from_the_next_tick() {
        let mut ch = AirChannel::new(2, 1000, None, 1);
        ch.set_path(0, 1, open(1.0));
        let one = vec![Complex32::new(1.0, 0.0); 10];
        let mut rx = vec![Vec::new(); 2];
        ch.mix(0, &[one.clone(), one.clone()], &mut rx);
        assert!(rx[1].iter().all(|s| *s == one[0]));
        ch.set_tuning(1, 0.0, 5000.0);
        ch.mix(10, &[one.clone(), one.clone()], &mut rx);
        assert!(rx[1].iter().all(|s| s.norm() == 0.0));
        ch.set_tuning(1, 0.0, 0.0);
        ch.mix(20, &[one.clone(), one.clone()], &mut rx);
        assert!(rx[1].iter().all(|s| *s == one[0]));
    }

    #[test]
    fn tone_phase_is_exact_after_hours_of_samples() {
        // 1.3 MHz for 1e13 samples at 1.92 Msps: f*t = 1.3e19 overflows f64's integers.
        let t = 10_000_000_000_000u64;
        let c = cycles(1.3e6, t, 1_920_000);
        let want = ((13u128 * 100_000 * u128::from(t)) % 1_920_000) as f64 / 1_920_000.0;
        assert!((c - want).abs() < 1e-9, "{c} vs {want}");
        assert!((cycles(-0.5, 3, 1000) - (1.0 - 0.0015)).abs() < 1e-12);
        assert_eq!(overlap_hz(190e6, 1.92e6), None);
        assert_eq!(overlap_hz(1.92e6, 1.92e6), None);
        assert_eq!(overlap_hz(-0.42e6, 1.92e6), Some(1.5e6));
    }

    #[test]
    fn default_topology_blocks_far_and_relayrx() {
        let cfg = AirConfig::default();
        let ch = AirChannel::from_config(&cfg);
        let (far, rr, pool) = (
            cfg.radio_index("far").unwrap(),
            cfg.radio_index("relayrx").unwrap(),
            cfg.radio_index("pool").unwrap(),
        );
        assert!(ch.path(far, rr).is_none() && ch.path(rr, far).is_none());
        let p = ch.path(pool, far).unwrap();
        let q = ch.path(far, pool).unwrap();
        assert_eq!(p.cfo_hz, -q.cfo_hz);
        assert!((p.amplitude - 0.1).abs() < 1e-6);
    }

    fn unit_path() -> Option<Path> {
        Some(Path {
            amplitude: 1.0,
            cfo_hz: 0.0,
            delay: 0,
        })
    }

    #[test]
    fn two_antennas_each_pair_its_own_coefficient_and_each_receiver_its_own_noise() {
        // Radio 0 and 1 with two antennas each (antennas 0,1 | 2,3), no noise.
        let mut ch = AirChannel::with_antennas(&[2, 2], 1000, None, 3, None);
        ch.set_path(0, 1, unit_path());
        let one = vec![Complex32::new(1.0, 0.0); 64];
        let zero = vec![Complex32::new(0.0, 0.0); 64];
        let mut rx = vec![Vec::new(); 4];
        let mut heard = Vec::new();
        for tx_ant in 0..2 {
            let mut tx = vec![zero.clone(); 4];
            tx[tx_ant] = one.clone();
            ch.mix(0, &tx, &mut rx);
            assert!(
                rx[0].iter().chain(&rx[1]).all(|s| s.norm() == 0.0),
                "own TX"
            );
            for got in &rx[2..4] {
                let h = got[0];
                assert!((h.norm() - 1.0).abs() < 1e-5, "unit modulus {h}");
                assert!(got.iter().all(|s| (s - h).norm() < 1e-5), "static");
                heard.push(h);
            }
        }
        for a in 0..heard.len() {
            for b in 0..a {
                assert!((heard[a] - heard[b]).norm() > 1e-3, "pairs {a} {b} differ");
            }
        }
        // Independent noise per receive antenna: uncorrelated, each at the floor.
        let mut ch = AirChannel::with_antennas(&[2, 2], 1000, Some(-20.0), 3, None);
        let tx = vec![vec![Complex32::new(0.0, 0.0); 20000]; 4];
        ch.mix(0, &tx, &mut rx);
        let p2 = mean_power_of(&rx[2]);
        let p3 = mean_power_of(&rx[3]);
        let corr: Complex32 = rx[2].iter().zip(&rx[3]).map(|(a, b)| a * b.conj()).sum();
        let rho = corr.norm() / 20000.0 / (p2 * p3).sqrt();
        assert!((p2 - 0.01).abs() < 0.0005 && (p3 - 0.01).abs() < 0.0005);
        assert!(rho < 0.05, "correlation {rho}");
    }

    #[test]
    fn fading_is_rayleigh_seeded_and_continuous() {
        let run = |seed: u64| {
            // 100 ksps, 50 Hz Doppler (coherence ≈ 8.5 ms), ticks of 10 ms.
            let mut ch = AirChannel::with_antennas(&[1, 2], 100_000, None, seed, Some(50.0));
            ch.set_path(0, 1, unit_path());
            let mut gains = Vec::new();
            let mut rx = vec![Vec::new(); 3];
            let one = vec![Complex32::new(1.0, 0.0); 1000];
            // 4 s: about 470 coherence times.
            for k in 0..400u64 {
                let tx = vec![one.clone(), one.clone(), one.clone()];
                ch.mix(k * 1000, &tx, &mut rx);
                gains.push((rx[1][500], rx[2][500], rx[1][0], rx[1][64]));
            }
            gains
        };
        let a = run(9);
        assert_eq!(a, run(9), "seeded");
        assert_ne!(a, run(10));
        let p: Vec<f32> = a.iter().map(|g| g.0.norm_sqr()).collect();
        let mean = p.iter().sum::<f32>() / p.len() as f32;
        assert!((mean - 1.0).abs() < 0.25, "mean power {mean}");
        // Rayleigh: P(|h|² < 0.1) = 1 − e^{−0.1} ≈ 9.5 %.
        let deep = p.iter().filter(|&&x| x < 0.1).count() as f32 / p.len() as f32;
        assert!((0.03..0.2).contains(&deep), "deep fades {deep}");
        // The two receive antennas fade independently.
        let c: Complex32 = a.iter().map(|g| g.0 * g.1.conj()).sum();
        assert!(
            c.norm() / (a.len() as f32) < 0.25,
            "correlation {}",
            c.norm()
        );
        // From one 64-sample gain block to the next (0.64 ms) the gain barely moves.
        assert!(a.iter().all(|g| (g.2 - g.3).norm() < 0.3));
    }
}

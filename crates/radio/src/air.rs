//! The air channel, sans-IO: each radio receives the sum over the other radios of their TX,
//! scaled by the pair's gain, rotated by the pair's carrier frequency offset and delayed by
//! a whole number of samples, plus a seeded Gaussian noise floor. Blocked pairs carry
//! nothing. Time (the sample index of the tick) is passed in.

use ferry_fronthaul::vrt::SampleTime;
use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::AirConfig;

/// One direction of a radio pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Path {
    /// Linear amplitude gain (10^(dB/20)).
    pub amplitude: f32,
    /// Frequency offset in Hz added at the receiver.
    pub cfo_hz: f64,
    /// Delay in samples.
    pub delay: usize,
}

/// Size of the precomputed unit-variance Gaussian table (power of two).
const NOISE_TABLE: usize = 1 << 16;

/// The channel between N radios.
#[derive(Debug)]
pub struct AirChannel {
    n: usize,
    rate: f64,
    /// `paths[rx * n + tx]`.
    paths: Vec<Option<Path>>,
    noise_sigma: Option<f32>,
    noise_table: Vec<f32>,
    rng: ChaCha8Rng,
    max_delay: usize,
    /// Last `max_delay` TX samples of each radio (for delayed paths across ticks).
    history: Vec<Vec<Complex32>>,
    ext: Vec<Vec<Complex32>>,
}

impl AirChannel {
    /// A channel of `n` radios with every pair blocked.
    pub fn new(n: usize, rate: u32, noise_floor_dbfs: Option<f64>, seed: u64) -> Self {
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
            rate: f64::from(rate.max(1)),
            paths: vec![None; n * n],
            // Total complex power P split over I and Q.
            noise_sigma: noise_floor_dbfs.map(|db| (10f64.powf(db / 10.0) / 2.0).sqrt() as f32),
            noise_table,
            rng,
            max_delay: 0,
            history: vec![Vec::new(); n],
            ext: vec![Vec::new(); n],
        }
    }

    /// Builds the channel of a validated configuration.
    pub fn from_config(cfg: &AirConfig) -> Self {
        let mut ch = Self::new(
            cfg.radios.len(),
            cfg.sample_rate_hz,
            cfg.noise_floor_dbfs,
            cfg.seed,
        );
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
        self.max_delay = self
            .paths
            .iter()
            .flatten()
            .map(|p| p.delay)
            .max()
            .unwrap_or(0);
        for h in &mut self.history {
            h.resize(self.max_delay, Complex32::new(0.0, 0.0));
        }
    }

    /// The path from `tx` to `rx`.
    pub fn path(&self, tx: usize, rx: usize) -> Option<Path> {
        self.paths.get(rx * self.n + tx).copied().flatten()
    }

    /// Mixes one tick: `tx[j]` is what radio j transmits for samples `t0..t0+len`; on return
    /// `rx[i]` is what radio i receives. All buffers must have the same length (shorter `rx`
    /// buffers are resized).
    pub fn mix(&mut self, t0: SampleTime, tx: &[Vec<Complex32>], rx: &mut [Vec<Complex32>]) {
        let len = tx.first().map_or(0, Vec::len);
        let md = self.max_delay;
        for (j, ext) in self.ext.iter_mut().enumerate() {
            ext.clear();
            ext.extend_from_slice(&self.history[j]);
            match tx.get(j) {
                Some(t) if t.len() == len => ext.extend_from_slice(t),
                _ => ext.resize(md + len, Complex32::new(0.0, 0.0)),
            }
        }
        for (i, out) in rx.iter_mut().enumerate().take(self.n) {
            out.clear();
            out.resize(len, Complex32::new(0.0, 0.0));
            for j in 0..self.n {
                let Some(p) = self.paths[i * self.n + j] else {
                    continue;
                };
                let src = &self.ext[j][md - p.delay..md - p.delay + len];
                if p.cfo_hz == 0.0 {
                    for (o, s) in out.iter_mut().zip(src) {
                        *o += s * p.amplitude;
                    }
                } else {
                    // Phase from absolute sample time so it is continuous across ticks.
                    let cycles = (p.cfo_hz * (t0 as f64) / self.rate).fract();
                    let ph0 = std::f64::consts::TAU * cycles;
                    let step = std::f64::consts::TAU * p.cfo_hz / self.rate;
                    let mut rot = num_complex::Complex64::from_polar(f64::from(p.amplitude), ph0);
                    let dr = num_complex::Complex64::from_polar(1.0, step);
                    for (o, s) in out.iter_mut().zip(src) {
                        let r = Complex32::new(rot.re as f32, rot.im as f32);
                        *o += s * r;
                        rot *= dr;
                    }
                }
            }
            if let Some(sigma) = self.noise_sigma {
                let mask = (NOISE_TABLE - 1) as u32;
                for o in out.iter_mut() {
                    let r: u32 = self.rng.random();
                    let a = self.noise_table[(r & mask) as usize];
                    let b = self.noise_table[((r >> 16) & mask) as usize];
                    *o += Complex32::new(a * sigma, b * sigma);
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
}

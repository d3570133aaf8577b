//! Channel estimation from the port-0 CRS, zero-forcing equalisation with per-RE noise
//! variance for the soft demapper, and per-subframe SNR / EVM estimates.
//!
//! Model (documented in docs/PHY.md): per subframe the channel is H(l,k) = H̄(k)·e^{jωt_l}.
//! - LS estimates at the CRS; a common delay (timing offset inside the CP) is removed as a
//!   linear phase over frequency before smoothing (moving average over ±`FREQ_HALF_WINDOW`
//!   pilots) and linear interpolation across frequency;
//! - across time, a common phase drift ω (residual CFO) is measured between CRS symbols one
//!   slot apart and removed; the drift-compensated estimates of all CRS symbols are averaged.
//!   This tracks residual CFO up to about ±1 kHz but assumes no fading inside 1 ms.

use crate::crs::{crs_symbols, CellReference};
use crate::numerology::{Bandwidth, CyclicPrefix, SubframeLayout};
use crate::ofdm::subcarrier_freq;
use num_complex::Complex32;

/// Pilots on each side averaged by the frequency smoother.
pub const FREQ_HALF_WINDOW: usize = 3;

/// Per-subframe channel quality.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChannelQuality {
    /// Estimated SNR per resource element (dB).
    pub snr_db: f32,
    /// RMS error vector magnitude of the equalised CRS (fraction, not %).
    pub evm_rms: f32,
    /// Noise variance per resource element before equalisation.
    pub noise_var: f32,
    /// Estimated residual CFO (Hz) from the CRS phase drift.
    pub residual_cfo_hz: f32,
    /// Estimated timing offset (samples, positive = late) from the CRS phase slope.
    pub timing_offset_samples: f32,
}

/// Reusable channel estimator for one bandwidth and CP (no allocation per subframe).
pub struct ChannelEstimator {
    n_sc: usize,
    fft: usize,
    fs: f64,
    cp: CyclicPrefix,
    /// Time (samples) of each symbol's centre within the subframe.
    t_sym: Vec<f64>,
    ls: Vec<Vec<Complex32>>,
    smooth: Vec<Complex32>,
    d: Vec<Vec<Complex32>>,
    hbar: Vec<Complex32>,
    hbar_inv_pow: Vec<f32>,
    trot: Vec<Complex32>,
    noise_var: f32,
    est_var_factor: f32,
}

impl ChannelEstimator {
    /// Buffers for a bandwidth and CP.
    pub fn new(bw: Bandwidth, cp: CyclicPrefix) -> Self {
        let layout = SubframeLayout::new(bw, cp);
        let fft = bw.fft_size();
        let n_sc = bw.subcarriers();
        let t_sym = (0..cp.symbols_per_subframe())
            .map(|l| layout.useful_start(l) as f64 + fft as f64 / 2.0)
            .collect();
        ChannelEstimator {
            n_sc,
            fft,
            fs: bw.sample_rate_hz(),
            cp,
            t_sym,
            ls: vec![vec![Complex32::new(0.0, 0.0); n_sc / 6]; 4],
            smooth: vec![Complex32::new(0.0, 0.0); n_sc / 6],
            d: vec![vec![Complex32::new(0.0, 0.0); n_sc]; 4],
            hbar: vec![Complex32::new(0.0, 0.0); n_sc],
            hbar_inv_pow: vec![0.0; n_sc],
            trot: vec![Complex32::new(1.0, 0.0); cp.symbols_per_subframe()],
            noise_var: 1.0,
            est_var_factor: 0.0,
        }
    }

    /// Estimates the channel of subframe `sf` from a demodulated grid whose first
    /// `n_symbols` symbols are valid.
    // Index loops: pilot m addresses the CRS values, the LS buffer and the grid together.
    #[allow(clippy::needless_range_loop)]
    pub fn estimate(
        &mut self,
        grid: &[Complex32],
        n_symbols: usize,
        crs: &CellReference,
        sf: usize,
    ) -> ChannelQuality {
        let n_sc = self.n_sc;
        let n_pil = n_sc / 6;
        let syms = crs_symbols(self.cp);
        let avail: [bool; 4] = syms.map(|l| l < n_symbols && (l + 1) * n_sc <= grid.len());
        // LS estimates and the common phase slope over frequency.
        let mut slope = Complex32::new(0.0, 0.0);
        for (i, &l) in syms.iter().enumerate() {
            if !avail[i] {
                continue;
            }
            let x = crs.values(sf, i);
            for m in 0..n_pil {
                let k = crs.subcarrier(i, m);
                self.ls[i][m] = grid[l * n_sc + k] * x[m].conj();
            }
            for m in 0..n_pil.saturating_sub(1) {
                // Skip the pair straddling DC: its spacing is 7, not 6.
                if crs.subcarrier(i, m) < n_sc / 2 && crs.subcarrier(i, m + 1) >= n_sc / 2 {
                    continue;
                }
                slope += self.ls[i][m + 1] * self.ls[i][m].conj();
            }
        }
        let phi = slope.arg() / 6.0; // radians per subcarrier
        let w = FREQ_HALF_WINDOW;
        for (i, &ok) in avail.iter().enumerate() {
            if !ok {
                continue;
            }
            // Remove the delay ramp, smooth, interpolate to every subcarrier.
            for m in 0..n_pil {
                let f = subcarrier_freq(crs.subcarrier(i, m), n_sc) as f32;
                self.ls[i][m] *= Complex32::from_polar(1.0, -phi * f);
            }
            for m in 0..n_pil {
                let lo = m.saturating_sub(w);
                let hi = (m + w + 1).min(n_pil);
                let s: Complex32 = self.ls[i][lo..hi].iter().sum();
                self.smooth[m] = s / (hi - lo) as f32;
            }
            let first = crs.subcarrier(i, 0);
            let d = &mut self.d[i];
            for (k, out) in d.iter_mut().enumerate() {
                *out = if k <= first {
                    self.smooth[0]
                } else {
                    let m = (k - first) / 6;
                    if m + 1 >= n_pil {
                        self.smooth[n_pil - 1]
                    } else {
                        let frac = ((k - first) % 6) as f32 / 6.0;
                        self.smooth[m] * (1.0 - frac) + self.smooth[m + 1] * frac
                    }
                };
            }
        }
        // Common phase drift between CRS symbols one slot apart (pairs 0→2 and 1→3).
        let mut drift = Complex32::new(0.0, 0.0);
        let mut dt = 0.0;
        for (a, b) in [(0, 2), (1, 3)] {
            if avail[a] && avail[b] {
                for k in 0..n_sc {
                    drift += self.d[b][k] * self.d[a][k].conj();
                }
                dt = self.t_sym[syms[b]] - self.t_sym[syms[a]];
            }
        }
        let omega = if dt > 0.0 {
            drift.arg() as f64 / dt
        } else {
            0.0
        };
        // Average the drift-compensated estimates of all CRS symbols.
        let n_avail = avail.iter().filter(|a| **a).count().max(1);
        self.hbar.fill(Complex32::new(0.0, 0.0));
        for (i, &ok) in avail.iter().enumerate() {
            if !ok {
                continue;
            }
            let r = Complex32::from_polar(1.0, (-omega * self.t_sym[syms[i]]) as f32);
            for k in 0..n_sc {
                self.hbar[k] += self.d[i][k] * r;
            }
        }
        let mut sig_pow = 0.0f32;
        for k in 0..n_sc {
            let f = subcarrier_freq(k, n_sc) as f32;
            self.hbar[k] *= Complex32::from_polar(1.0 / n_avail as f32, phi * f);
            let p = self.hbar[k].norm_sqr();
            sig_pow += p;
            self.hbar_inv_pow[k] = 1.0 / p.max(1e-20);
        }
        sig_pow /= n_sc as f32;
        for (l, r) in self.trot.iter_mut().enumerate() {
            *r = Complex32::from_polar(1.0, (omega * self.t_sym[l]) as f32);
        }
        // Noise from the residuals of the raw LS estimates against the model; the model
        // includes each sample with weight ~1/(n_avail·W), hence the correction.
        let mut resid = 0.0f32;
        let mut evm_num = 0.0f32;
        let mut count = 0usize;
        for (i, &l) in syms.iter().enumerate() {
            if !avail[i] {
                continue;
            }
            let x = crs.values(sf, i);
            for m in 0..n_pil {
                let k = crs.subcarrier(i, m);
                let h = self.hbar[k] * self.trot[l];
                let y = grid[l * n_sc + k];
                let e = (y * x[m].conj() - h).norm_sqr();
                resid += e;
                evm_num += e * self.hbar_inv_pow[k];
                count += 1;
            }
        }
        let w_eff = (n_avail * (2 * w + 1)) as f32;
        let count = count.max(1) as f32;
        self.noise_var = (resid / count / (1.0 - 1.0 / w_eff)).max(1e-12);
        self.est_var_factor = 1.0 / w_eff;
        let snr = sig_pow / self.noise_var;
        ChannelQuality {
            snr_db: 10.0 * snr.max(1e-12).log10(),
            evm_rms: (evm_num / count / (1.0 - 1.0 / w_eff)).sqrt(),
            noise_var: self.noise_var,
            residual_cfo_hz: (omega * self.fs / (2.0 * std::f64::consts::PI)) as f32,
            timing_offset_samples: -phi * self.fft as f32 / (2.0 * std::f32::consts::PI),
        }
    }

    /// Zero-forcing equalisation of RE (l, k) with received value `y`: returns the symbol
    /// estimate and its noise variance (including channel-estimation error). `l` and `k`
    /// come from the decoder's own RE map (in range by construction).
    #[inline]
    pub(crate) fn equalize(&self, l: usize, k: usize, y: Complex32) -> (Complex32, f32) {
        let h = self.hbar[k] * self.trot[l];
        let inv = self.hbar_inv_pow[k];
        (
            y * h.conj() * inv,
            self.noise_var * inv * (1.0 + self.est_var_factor),
        )
    }

    /// Variance of the channel estimate's error relative to the noise variance (the
    /// smoother's 1/(CRS symbols · window)), for combiners that equalise themselves.
    pub(crate) fn estimation_error_factor(&self) -> f32 {
        self.est_var_factor
    }

    /// The channel estimate at RE (l, k); `None` outside the grid.
    pub fn channel(&self, l: usize, k: usize) -> Option<Complex32> {
        Some(*self.hbar.get(k)? * *self.trot.get(l)?)
    }
}

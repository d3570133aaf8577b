//! Blind cell search from raw IQ at unknown timing and carrier frequency offset: finds the
//! PCI, CP type, frame timing and CFO of an LTE-numerology cell. This is the cost a warm
//! start (Control information migration) avoids.
//!
//! Steps: (1) low-pass and decimate to 1.92 Msps; (2) time-domain correlation with the three
//! PSS replicas (FFT overlap-save), each split into two halves combined as (|c₁|+|c₂|)² so
//! a CFO up to ±7.5 kHz (half a subcarrier, π of phase over the PSS) costs little, with
//! non-coherent accumulation over several half-frames; (3) coarse CFO from the phase between
//! the two PSS halves (unambiguous to ±15 kHz, so the integer-subcarrier ambiguity of CP
//! correlation never arises); (4) SSS detection, coherent with the PSS as channel reference,
//! over 168 groups × which-half-frame × both CP types (the SSS sits at a CP-dependent
//! distance from the PSS), accumulated over half-frames: gives N_ID^(1), frame timing
//! (subframe 0 vs 5) and the CP type; (5) fine CFO from CP correlation at the full rate,
//! applied on top of the coarse estimate.

use crate::numerology::{Bandwidth, CellId, CyclicPrefix, SubframeLayout};
use crate::ofdm::subcarrier_bin;
use crate::sync::{pss, sss, sync_subcarrier, SssSubframe, SYNC_LEN};
use crate::{PhyError, Result};
use num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// Search sample rate (1.4 MHz numerology).
const LOW_FS: f64 = 1.92e6;
/// FFT size at the search rate.
const LOW_N: usize = 128;
/// Samples of a half-frame at the search rate.
const HALF_FRAME: usize = 9600;
/// Overlap-save block size of the PSS correlator.
const BLOCK: usize = 1024;
/// Minimum ratio of the accumulated PSS peak to the mean metric to claim a cell.
pub const PSS_DETECTION_RATIO: f32 = 8.0;

/// Frame structure the searcher assumes (sync positions differ between FDD and TDD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplexKind {
    /// PSS in the last symbol of slots 0/10, SSS just before it.
    Fdd,
    /// PSS in symbol 2 of subframes 1/6, SSS in the last symbol of subframes 0/5.
    Tdd,
}

/// A found cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellSearchResult {
    /// Physical cell identity.
    pub cell: CellId,
    /// Cyclic prefix type.
    pub cp: CyclicPrefix,
    /// Sample index (input rate) of the first frame start at or after sample 0.
    pub frame_start: usize,
    /// Estimated carrier frequency offset (Hz); correct by rotating with −cfo.
    pub cfo_hz: f64,
    /// Accumulated PSS peak over the mean PSS metric.
    pub pss_ratio: f32,
    /// SSS score of the winner over the best other hypothesis.
    pub sss_ratio: f32,
}

/// A reusable cell searcher for one input bandwidth (sample rate).
pub struct CellSearcher {
    bw: Bandwidth,
    duplex: DuplexKind,
    half_frames: usize,
    decim: usize,
    fir: Vec<f32>,
    fwd: Arc<dyn Fft<f32>>,
    inv: Arc<dyn Fft<f32>>,
    fft128: Arc<dyn Fft<f32>>,
    /// Time-domain PSS replicas at 1.92 Msps, per N_ID^(2).
    replica: [Vec<Complex32>; 3],
    /// conj(FFT) of the zero-padded replica halves: [root][half].
    replica_f: [[Vec<Complex32>; 2]; 3],
    pss_f: [[Complex32; SYNC_LEN]; 3],
}

impl CellSearcher {
    /// A searcher for input sampled at `bw`'s rate, accumulating `half_frames` (1..=40)
    /// half-frames of 5 ms.
    pub fn new(bw: Bandwidth, duplex: DuplexKind, half_frames: usize) -> Result<Self> {
        if !(1..=40).contains(&half_frames) {
            return Err(PhyError::invalid("half_frames", half_frames, "1..=40"));
        }
        let decim = bw.fft_size() / LOW_N;
        let fir = if decim == 1 {
            vec![1.0]
        } else {
            lowpass(12 * decim + 1, 0.965e6 / bw.sample_rate_hz())
        };
        let mut planner = FftPlanner::new();
        let fwd = planner.plan_fft_forward(BLOCK);
        let inv = planner.plan_fft_inverse(BLOCK);
        let fft128 = planner.plan_fft_forward(LOW_N);
        let ifft128 = planner.plan_fft_inverse(LOW_N);
        let mut pss_f = [[Complex32::new(0.0, 0.0); SYNC_LEN]; 3];
        let mut replica: [Vec<Complex32>; 3] = Default::default();
        let mut replica_f: [[Vec<Complex32>; 2]; 3] = Default::default();
        for n2 in 0..3u8 {
            let d = pss(n2)?;
            pss_f[usize::from(n2)] = d;
            let mut buf = vec![Complex32::new(0.0, 0.0); LOW_N];
            for (n, &v) in d.iter().enumerate() {
                buf[subcarrier_bin(sync_subcarrier(n, 72), 72, LOW_N)] = v;
            }
            ifft128.process(&mut buf);
            let s = 1.0 / (LOW_N as f32).sqrt();
            buf.iter_mut().for_each(|v| *v *= s);
            for half in 0..2 {
                let mut pad = vec![Complex32::new(0.0, 0.0); BLOCK];
                let r = half * 64..half * 64 + 64;
                pad[r.clone()].copy_from_slice(&buf[r]);
                fwd.process(&mut pad);
                pad.iter_mut().for_each(|v| *v = v.conj());
                replica_f[usize::from(n2)][half] = pad;
            }
            replica[usize::from(n2)] = buf;
        }
        Ok(CellSearcher {
            bw,
            duplex,
            half_frames,
            decim,
            fir,
            fwd,
            inv,
            fft128,
            replica,
            replica_f,
            pss_f,
        })
    }

    /// The input bandwidth (sample rate).
    pub fn bandwidth(&self) -> Bandwidth {
        self.bw
    }

    /// Input samples needed for a search: the accumulated half-frames plus one symbol.
    pub fn required_samples(&self) -> usize {
        (self.half_frames * HALF_FRAME + 2 * LOW_N) * self.decim
    }

    /// Searches `samples` (at the bandwidth's rate, at least [`Self::required_samples`]).
    /// `Ok(None)` when no PSS stands out of the noise.
    pub fn search(&self, samples: &[Complex32]) -> Result<Option<CellSearchResult>> {
        let need = self.required_samples();
        if samples.len() < need {
            return Err(PhyError::InvalidLength {
                what: "cell-search samples",
                expected: need,
                got: samples.len(),
            });
        }
        let y = self.decimate(&samples[..need]);
        // (2) PSS correlation, accumulated over half-frames.
        let (n2, t, pss_ratio) = match self.detect_pss(&y) {
            Some(v) => v,
            None => return Ok(None),
        };
        if !(pss_ratio >= PSS_DETECTION_RATIO) {
            return Ok(None);
        }
        // (3) Coarse CFO from the PSS halves.
        let mut z = Complex32::new(0.0, 0.0);
        let rep = &self.replica[usize::from(n2)];
        for h in 0..self.half_frames {
            let p = t + h * HALF_FRAME;
            if p + LOW_N > y.len() {
                break;
            }
            let c1: Complex32 = (0..64).map(|k| y[p + k] * rep[k].conj()).sum();
            let c2: Complex32 = (64..128).map(|k| y[p + k] * rep[k].conj()).sum();
            z += c2 * c1.conj();
        }
        let coarse = z.arg() as f64 * LOW_FS / (2.0 * std::f64::consts::PI * 64.0);
        let mut yc = y;
        crate::ofdm::frequency_shift(&mut yc, -coarse, LOW_FS, 0.0);
        // (4) SSS: group, half-frame parity and CP type.
        let (n1, parity, cp, sss_ratio) = self.detect_sss(&yc, n2, t);
        let cell = CellId::from_parts(n1, n2)?;
        // Frame start at the search rate, then at the input rate.
        let layout = SubframeLayout::new(Bandwidth::Mhz1_4, cp);
        let pss_off = match self.duplex {
            DuplexKind::Fdd => layout.useful_start(cp.symbols_per_slot() - 1),
            DuplexKind::Tdd => 1920 + layout.useful_start(2),
        };
        let frame_low = 2 * HALF_FRAME;
        let first = t + parity * HALF_FRAME;
        let start_low = (first + 2 * frame_low - pss_off) % frame_low;
        let frame_len = self.bw.samples_per_frame();
        let frame_start = (start_low * self.decim) % frame_len;
        // (5) Fine CFO by CP correlation at the input rate.
        let cfo = self.fine_cfo(samples, frame_start, cp, coarse);
        Ok(Some(CellSearchResult {
            cell,
            cp,
            frame_start,
            cfo_hz: cfo,
            pss_ratio,
            sss_ratio,
        }))
    }

    /// Low-pass filter and decimate to 1.92 Msps; output m is centred on input m·D.
    fn decimate(&self, x: &[Complex32]) -> Vec<Complex32> {
        if self.decim == 1 {
            return x.to_vec();
        }
        let d = self.decim;
        let half = self.fir.len() / 2;
        let n_out = x.len() / d;
        let mut y = Vec::with_capacity(n_out);
        for m in 0..n_out {
            let c = m * d;
            let mut acc = Complex32::new(0.0, 0.0);
            if c >= half && c + half < x.len() {
                for (j, &h) in self.fir.iter().enumerate() {
                    acc += x[c + j - half] * h;
                }
            } else {
                for (j, &h) in self.fir.iter().enumerate() {
                    if let Some(v) = (c + j).checked_sub(half).and_then(|i| x.get(i)) {
                        acc += v * h;
                    }
                }
            }
            y.push(acc);
        }
        y
    }

    /// Best (N_ID^(2), position within the half-frame, peak/mean ratio).
    fn detect_pss(&self, y: &[Complex32]) -> Option<(u8, usize, f32)> {
        let n_pos = y.len().saturating_sub(LOW_N - 1);
        let mut acc = vec![vec![0f32; HALF_FRAME]; 3];
        let valid = BLOCK - LOW_N + 1;
        let mut block = vec![Complex32::new(0.0, 0.0); BLOCK];
        let mut prod = vec![Complex32::new(0.0, 0.0); BLOCK];
        let mut c1 = vec![Complex32::new(0.0, 0.0); BLOCK];
        let mut start = 0;
        while start < n_pos {
            block.fill(Complex32::new(0.0, 0.0));
            let end = (start + BLOCK).min(y.len());
            block[..end - start].copy_from_slice(&y[start..end]);
            self.fwd.process(&mut block);
            let outs = valid.min(n_pos - start);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                for half in 0..2 {
                    for ((p, b), h) in prod.iter_mut().zip(&block).zip(&self.replica_f[r][half]) {
                        *p = b * h;
                    }
                    self.inv.process(&mut prod);
                    if half == 0 {
                        c1.copy_from_slice(&prod);
                    } else {
                        for n in 0..outs {
                            // Unnormalised IFFT: scale is common to all hypotheses.
                            let m = c1[n].norm() + prod[n].norm();
                            acc_r[(start + n) % HALF_FRAME] += m * m;
                        }
                    }
                }
            }
            start += valid;
        }
        let mut best = (0u8, 0usize, 0f32);
        let mut total = 0f64;
        for (r, acc_r) in acc.iter().enumerate() {
            for (t, &v) in acc_r.iter().enumerate() {
                total += f64::from(v);
                if v > best.2 {
                    best = (r as u8, t, v);
                }
            }
        }
        let mean = (total / (3 * HALF_FRAME) as f64) as f32;
        if !(mean > 0.0) {
            return None;
        }
        Some((best.0, best.1, best.2 / mean))
    }

    /// Extracts the 62 sync subcarriers of a 128-sample window at `pos`.
    fn sync_bins(&self, y: &[Complex32], pos: usize, out: &mut [Complex32; SYNC_LEN]) -> bool {
        let Some(win) = y.get(pos..pos + LOW_N) else {
            return false;
        };
        let mut buf = win.to_vec();
        self.fft128.process(&mut buf);
        for (n, o) in out.iter_mut().enumerate() {
            *o = buf[subcarrier_bin(sync_subcarrier(n, 72), 72, LOW_N)];
        }
        true
    }

    /// (N_ID^(1), parity: 0 if the first half-frame holds subframe 0, CP, score ratio).
    fn detect_sss(&self, y: &[Complex32], n2: u8, t: usize) -> (u16, usize, CyclicPrefix, f32) {
        let seqs: Vec<[[f32; SYNC_LEN]; 2]> = (0..168u16)
            .map(|n1| {
                [
                    sss(n1, n2, SssSubframe::Sf0).unwrap_or([0.0; SYNC_LEN]),
                    sss(n1, n2, SssSubframe::Sf5).unwrap_or([0.0; SYNC_LEN]),
                ]
            })
            .collect();
        let pss_d = &self.pss_f[usize::from(n2)];
        // scores[cp][n1][parity]
        let mut best = (0u16, 0usize, CyclicPrefix::Normal, f32::MIN);
        let mut second = f32::MIN;
        for cp in CyclicPrefix::ALL {
            let layout = SubframeLayout::new(Bandwidth::Mhz1_4, cp);
            let n = cp.symbols_per_slot();
            let dist = match self.duplex {
                DuplexKind::Fdd => layout.useful_start(n - 1) - layout.useful_start(n - 2),
                DuplexKind::Tdd => 1920 + layout.useful_start(2) - layout.useful_start(2 * n - 1),
            };
            let mut scores = vec![[0f32; 2]; 168];
            let mut yp = [Complex32::new(0.0, 0.0); SYNC_LEN];
            let mut ys = [Complex32::new(0.0, 0.0); SYNC_LEN];
            let mut eq = [0f32; SYNC_LEN];
            let mut eq_im = [0f32; SYNC_LEN];
            for h in 0..self.half_frames {
                let p = t + h * HALF_FRAME;
                let Some(s) = p.checked_sub(dist) else {
                    continue;
                };
                if !self.sync_bins(y, p, &mut yp) || !self.sync_bins(y, s, &mut ys) {
                    continue;
                }
                // SSS equalised by the PSS-derived channel: S·conj(Y_pss·conj(d_pss)).
                for k in 0..SYNC_LEN {
                    let v = ys[k] * (yp[k] * pss_d[k].conj()).conj();
                    eq[k] = v.re;
                    eq_im[k] = v.im;
                }
                for (n1, sc) in scores.iter_mut().enumerate() {
                    for (which, seq) in seqs[n1].iter().enumerate() {
                        let c: f32 = eq.iter().zip(seq).map(|(a, b)| a * b).sum();
                        // Parity 0: half-frame h is subframe 0 when h is even.
                        let parity = (h + which) % 2;
                        sc[parity] += c;
                    }
                }
            }
            for (n1, sc) in scores.iter().enumerate() {
                for (parity, &v) in sc.iter().enumerate() {
                    if v > best.3 {
                        second = second.max(best.3);
                        best = (n1 as u16, parity, cp, v);
                    } else {
                        second = second.max(v);
                    }
                }
            }
        }
        let ratio = if second > 0.0 { best.3 / second } else { f32::INFINITY };
        (best.0, best.1, best.2, ratio)
    }

    /// Coarse CFO plus the residual measured by CP correlation over the whole capture.
    fn fine_cfo(&self, x: &[Complex32], frame_start: usize, cp: CyclicPrefix, coarse: f64) -> f64 {
        let layout = SubframeLayout::new(self.bw, cp);
        let n = layout.fft;
        let sf_len = layout.len;
        let mut z = Complex32::new(0.0, 0.0);
        // Symbols of every subframe that fits, starting one frame before the found start.
        let first_sf = frame_start % sf_len;
        let mut sf_start = first_sf;
        while sf_start + sf_len <= x.len() {
            for &(c, off) in &layout.symbols {
                let s = sf_start + off;
                // Skip the first quarter of the CP: timing is only known to ±D/2 samples.
                for i in c / 4..c {
                    if let (Some(a), Some(b)) = (x.get(s + i), x.get(s + i + n)) {
                        z += b * a.conj();
                    }
                }
            }
            sf_start += sf_len;
        }
        let fs = self.bw.sample_rate_hz();
        let two_pi = 2.0 * std::f64::consts::PI;
        let mut resid = z.arg() as f64 - two_pi * coarse * n as f64 / fs;
        resid = (resid + std::f64::consts::PI).rem_euclid(two_pi) - std::f64::consts::PI;
        coarse + resid * fs / (two_pi * n as f64)
    }
}

/// Hamming-windowed sinc low-pass of `taps` taps, cutoff `fc` (fraction of the rate).
fn lowpass(taps: usize, fc: f64) -> Vec<f32> {
    let mid = (taps - 1) as f64 / 2.0;
    let mut h: Vec<f64> = (0..taps)
        .map(|i| {
            let x = i as f64 - mid;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
            };
            let w = 0.54 - 0.46 * (2.0 * std::f64::consts::PI * i as f64 / (taps - 1) as f64).cos();
            sinc * w
        })
        .collect();
    let s: f64 = h.iter().sum();
    h.iter_mut().for_each(|v| *v /= s);
    h.into_iter().map(|v| v as f32).collect()
}

//! OFDM modulation and demodulation of whole subframes with the standard LTE layout: the
//! N_RB·12 subcarriers sit around an unused DC subcarrier, CP lengths per 36.211 §6.12.
//! FFT plans and buffers are made once per (de)modulator; the per-subframe path does not
//! allocate. Both directions use 1/√N scaling, so a unit-power resource element gives a
//! unit-variance bin, and time-domain white noise of variance σ² shows up as σ² per bin.

use crate::numerology::{Bandwidth, CyclicPrefix, SubframeLayout};
use crate::{PhyError, Result};
use num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// FFT bin of occupied subcarrier `k` (0..n_sc): lower half below DC, upper half above it.
pub fn subcarrier_bin(k: usize, n_sc: usize, fft: usize) -> usize {
    if k < n_sc / 2 {
        fft - n_sc / 2 + k
    } else {
        k - n_sc / 2 + 1
    }
}

/// Signed frequency index (in subcarrier spacings) of occupied subcarrier `k`.
pub fn subcarrier_freq(k: usize, n_sc: usize) -> i64 {
    if k < n_sc / 2 {
        k as i64 - (n_sc / 2) as i64
    } else {
        k as i64 - (n_sc / 2) as i64 + 1
    }
}

/// Rotates `samples` by a frequency `hz` at sample rate `fs`, starting at `phase`
/// (radians); returns the phase after the last sample so calls can be chained.
pub fn frequency_shift(samples: &mut [Complex32], hz: f64, fs: f64, phase: f64) -> f64 {
    let step = 2.0 * std::f64::consts::PI * hz / fs;
    // Re-anchor the recursive rotation every block to keep f32 error from accumulating.
    let mut ph = phase;
    for chunk in samples.chunks_mut(256) {
        let mut rot = Complex32::new(ph.cos() as f32, ph.sin() as f32);
        let inc = Complex32::new(step.cos() as f32, step.sin() as f32);
        for s in chunk.iter_mut() {
            *s *= rot;
            rot *= inc;
        }
        ph = (ph + step * chunk.len() as f64) % (2.0 * std::f64::consts::PI);
    }
    ph
}

/// Turns a resource grid (symbols × subcarriers, symbol-major) into time-domain samples.
pub struct OfdmModulator {
    layout: SubframeLayout,
    n_sc: usize,
    ifft: Arc<dyn Fft<f32>>,
    buf: Vec<Complex32>,
    scratch: Vec<Complex32>,
    scale: f32,
}

impl OfdmModulator {
    /// Plans the IFFT for a bandwidth and CP.
    pub fn new(bw: Bandwidth, cp: CyclicPrefix) -> Self {
        let fft = bw.fft_size();
        let ifft = FftPlanner::new().plan_fft_inverse(fft);
        let scratch = vec![Complex32::new(0.0, 0.0); ifft.get_inplace_scratch_len()];
        OfdmModulator {
            layout: SubframeLayout::new(bw, cp),
            n_sc: bw.subcarriers(),
            ifft,
            buf: vec![Complex32::new(0.0, 0.0); fft],
            scratch,
            scale: 1.0 / (fft as f32).sqrt(),
        }
    }

    /// Samples per subframe.
    pub fn subframe_len(&self) -> usize {
        self.layout.len
    }

    /// Modulates a full grid (`symbols × n_sc` values) into one subframe of samples.
    pub fn modulate(&mut self, grid: &[Complex32], out: &mut [Complex32]) -> Result<()> {
        let n_sym = self.layout.symbols.len();
        if grid.len() != n_sym * self.n_sc {
            return Err(PhyError::InvalidLength {
                what: "resource grid",
                expected: n_sym * self.n_sc,
                got: grid.len(),
            });
        }
        if out.len() != self.layout.len {
            return Err(PhyError::InvalidLength {
                what: "subframe samples",
                expected: self.layout.len,
                got: out.len(),
            });
        }
        let fft = self.layout.fft;
        for (l, &(cp, start)) in self.layout.symbols.iter().enumerate() {
            self.buf.fill(Complex32::new(0.0, 0.0));
            let row = &grid[l * self.n_sc..(l + 1) * self.n_sc];
            for (k, &v) in row.iter().enumerate() {
                self.buf[subcarrier_bin(k, self.n_sc, fft)] = v;
            }
            self.ifft
                .process_with_scratch(&mut self.buf, &mut self.scratch);
            let sym = &mut out[start..start + cp + fft];
            for (o, v) in sym[cp..].iter_mut().zip(self.buf.iter()) {
                *o = v * self.scale;
            }
            sym.copy_within(fft..fft + cp, 0);
        }
        Ok(())
    }
}

/// Turns one subframe of time-domain samples back into a resource grid.
pub struct OfdmDemodulator {
    layout: SubframeLayout,
    n_sc: usize,
    fft: Arc<dyn Fft<f32>>,
    buf: Vec<Complex32>,
    scratch: Vec<Complex32>,
    /// Per subcarrier: undoes the linear phase of starting the FFT window early.
    derotate: Vec<Complex32>,
    backoff: usize,
}

impl OfdmDemodulator {
    /// Plans the FFT. The FFT window starts `backoff` samples before the end of each CP
    /// (half the shortest CP), so timing errors of either sign up to that stay ISI-free.
    pub fn new(bw: Bandwidth, cp: CyclicPrefix) -> Self {
        let n = bw.fft_size();
        let fft = FftPlanner::new().plan_fft_forward(n);
        let scratch = vec![Complex32::new(0.0, 0.0); fft.get_inplace_scratch_len()];
        let n_sc = bw.subcarriers();
        let backoff = cp.cp_len(1, n) / 2;
        let derotate = (0..n_sc)
            .map(|k| {
                let ph = 2.0 * std::f64::consts::PI * subcarrier_freq(k, n_sc) as f64
                    * backoff as f64
                    / n as f64;
                Complex32::new(ph.cos() as f32, ph.sin() as f32)
            })
            .collect();
        OfdmDemodulator {
            layout: SubframeLayout::new(bw, cp),
            n_sc,
            fft,
            buf: vec![Complex32::new(0.0, 0.0); n],
            scratch,
            derotate,
            backoff,
        }
    }

    /// Samples of timing advance tolerated (window backoff into the CP).
    pub fn backoff(&self) -> usize {
        self.backoff
    }

    /// Samples per subframe.
    pub fn subframe_len(&self) -> usize {
        self.layout.len
    }

    /// Demodulates symbols `0..n_symbols` of one subframe into `grid` (`n_symbols × n_sc`).
    pub fn demodulate(
        &mut self,
        samples: &[Complex32],
        n_symbols: usize,
        grid: &mut [Complex32],
    ) -> Result<()> {
        if samples.len() != self.layout.len {
            return Err(PhyError::InvalidLength {
                what: "subframe samples",
                expected: self.layout.len,
                got: samples.len(),
            });
        }
        let n_sym = n_symbols.min(self.layout.symbols.len());
        if grid.len() < n_sym * self.n_sc {
            return Err(PhyError::InvalidLength {
                what: "resource grid",
                expected: n_sym * self.n_sc,
                got: grid.len(),
            });
        }
        let n = self.layout.fft;
        let scale = 1.0 / (n as f32).sqrt();
        for l in 0..n_sym {
            let (cp, start) = self.layout.symbols[l];
            let s = start + cp - self.backoff;
            self.buf.copy_from_slice(&samples[s..s + n]);
            self.fft
                .process_with_scratch(&mut self.buf, &mut self.scratch);
            let row = &mut grid[l * self.n_sc..(l + 1) * self.n_sc];
            for (k, o) in row.iter_mut().enumerate() {
                *o = self.buf[subcarrier_bin(k, self.n_sc, n)] * self.derotate[k] * scale;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_bandwidth_and_cp() {
        for bw in Bandwidth::ALL {
            for cp in CyclicPrefix::ALL {
                let n_sym = cp.symbols_per_subframe();
                let n_sc = bw.subcarriers();
                let grid: Vec<Complex32> = (0..n_sym * n_sc)
                    .map(|i| Complex32::new(((i * 7) % 5) as f32 - 2.0, ((i * 3) % 4) as f32 - 1.5))
                    .collect();
                let mut m = OfdmModulator::new(bw, cp);
                let mut d = OfdmDemodulator::new(bw, cp);
                let mut t = vec![Complex32::new(0.0, 0.0); m.subframe_len()];
                m.modulate(&grid, &mut t).unwrap();
                // Unit-power REs give per-sample power n_sc/N.
                let mut back = vec![Complex32::new(0.0, 0.0); grid.len()];
                d.demodulate(&t, n_sym, &mut back).unwrap();
                let err: f32 = grid.iter().zip(&back).map(|(a, b)| (a - b).norm_sqr()).sum();
                assert!(err / (grid.len() as f32) < 1e-9, "{bw} {cp:?}: {err}");
                assert!(d.demodulate(&t[1..], n_sym, &mut back).is_err());
            }
        }
    }

    #[test]
    fn dc_is_unused_and_cp_is_a_copy() {
        let bw = Bandwidth::Mhz1_4;
        let cp = CyclicPrefix::Normal;
        let mut m = OfdmModulator::new(bw, cp);
        let grid = vec![Complex32::new(1.0, 0.0); 14 * 72];
        let mut t = vec![Complex32::new(0.0, 0.0); 1920];
        m.modulate(&grid, &mut t).unwrap();
        // Sum of a symbol's useful part = √N · DC bin = 0.
        let dc: Complex32 = t[10..138].iter().sum();
        assert!(dc.norm() < 1e-4);
        assert_eq!(&t[0..10], &t[128..138]);
        assert_eq!(subcarrier_bin(35, 72, 128), 128 - 1);
        assert_eq!(subcarrier_bin(36, 72, 128), 1);
        assert_eq!(subcarrier_freq(36, 72), 1);
    }

    #[test]
    fn frequency_shift_is_continuous() {
        let mut a = vec![Complex32::new(1.0, 0.0); 1000];
        let ph = frequency_shift(&mut a[..600], 1000.0, 1.92e6, 0.0);
        frequency_shift(&mut a[600..], 1000.0, 1.92e6, ph);
        let expect = 2.0 * std::f64::consts::PI * 1000.0 * 999.0 / 1.92e6;
        let want = Complex32::from_polar(1.0, expect as f32);
        assert!((a[999] - want).norm() < 1e-4);
    }
}

//! QPSK / 16QAM / 64QAM mapping per TS 36.211 §7.1 and soft (LLR) demapping.
//!
//! Conventions used across the PHY:
//! - bits are `u8` values 0 or 1, first bit first (b(i), b(i+1), … of §7.1);
//! - constellations have unit average power (the 1/√2, 1/√10, 1/√42 factors of §7.1);
//! - an LLR is `ln P(b=0) / P(b=1)`: positive means "bit 0 more likely".
//!
//! LTE's Gray mappings are separable: the in-phase axis carries b0, b2, b4 and the
//! quadrature axis b1, b3, b5, each as a Gray-coded PAM. Mapping and max-log demapping
//! therefore work per axis on 2, 4 or 8 amplitude levels instead of 4, 16 or 64 points.

use crate::{PhyError, Result};
use num_complex::Complex32;
use serde::{Deserialize, Serialize};

/// Modulation scheme; `type_mode` of the thesis' Control (1 QPSK, 2 16QAM, 3 64QAM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Modulation {
    /// 2 bits per symbol.
    Qpsk,
    /// 4 bits per symbol.
    Qam16,
    /// 6 bits per symbol.
    Qam64,
}

impl Modulation {
    /// All schemes, lowest order first.
    pub const ALL: [Modulation; 3] = [Modulation::Qpsk, Modulation::Qam16, Modulation::Qam64];

    /// Bits per symbol, Q_m.
    pub fn bits_per_symbol(self) -> usize {
        match self {
            Modulation::Qpsk => 2,
            Modulation::Qam16 => 4,
            Modulation::Qam64 => 6,
        }
    }

    /// From the thesis' `type_mode` (1 QPSK, 2 16QAM, 3 64QAM).
    pub fn from_type_mode(type_mode: u8) -> Result<Self> {
        match type_mode {
            1 => Ok(Modulation::Qpsk),
            2 => Ok(Modulation::Qam16),
            3 => Ok(Modulation::Qam64),
            other => Err(PhyError::invalid(
                "type_mode",
                other,
                "1 (QPSK), 2 (16QAM) or 3 (64QAM)",
            )),
        }
    }

    /// The thesis' `type_mode` value.
    pub fn type_mode(self) -> u8 {
        match self {
            Modulation::Qpsk => 1,
            Modulation::Qam16 => 2,
            Modulation::Qam64 => 3,
        }
    }

    /// From Q_m (2, 4 or 6 bits per symbol).
    pub fn from_bits_per_symbol(qm: usize) -> Result<Self> {
        match qm {
            2 => Ok(Modulation::Qpsk),
            4 => Ok(Modulation::Qam16),
            6 => Ok(Modulation::Qam64),
            other => Err(PhyError::invalid(
                "qm",
                other,
                "2 (QPSK), 4 (16QAM) or 6 (64QAM)",
            )),
        }
    }

    /// Per-axis amplitude levels indexed by the axis' bits read as a number
    /// (QPSK: b0; 16QAM: b0 b2; 64QAM: b0 b2 b4, b0 most significant), already scaled to
    /// unit average power. Read off tables 7.1.2-1, 7.1.3-1 and 7.1.4-1.
    fn axis_levels(self) -> &'static [f32] {
        match self {
            Modulation::Qpsk => &QPSK_LEVELS,
            Modulation::Qam16 => &QAM16_LEVELS,
            Modulation::Qam64 => &QAM64_LEVELS,
        }
    }
}

const S2: f32 = std::f32::consts::FRAC_1_SQRT_2;
// 1/√10 and 1/√42 rounded to f32.
const S10: f32 = 0.316_227_76;
const S42: f32 = 0.154_303_35;

/// QPSK: b0 = 0 → +1, 1 → −1.
const QPSK_LEVELS: [f32; 2] = [S2, -S2];
/// 16QAM: (b0 b2) 00 → 1, 01 → 3, 10 → −1, 11 → −3.
const QAM16_LEVELS: [f32; 4] = [S10, 3.0 * S10, -S10, -3.0 * S10];
/// 64QAM: (b0 b2 b4) 000 → 3, 001 → 1, 010 → 5, 011 → 7, then the same negated.
const QAM64_LEVELS: [f32; 8] = [
    3.0 * S42,
    S42,
    5.0 * S42,
    7.0 * S42,
    -3.0 * S42,
    -S42,
    -5.0 * S42,
    -7.0 * S42,
];

/// Maps `bits` (length a multiple of Q_m) to symbols, appending to `out`.
pub fn map(bits: &[u8], m: Modulation, out: &mut Vec<Complex32>) -> Result<()> {
    let qm = m.bits_per_symbol();
    if bits.len() % qm != 0 {
        return Err(PhyError::InvalidLength {
            what: "bits to modulate (multiple of Q_m)",
            expected: bits.len().div_ceil(qm) * qm,
            got: bits.len(),
        });
    }
    let levels = m.axis_levels();
    out.reserve(bits.len() / qm);
    for sym in bits.chunks_exact(qm) {
        // Even-indexed bits to I, odd-indexed to Q, first bit most significant.
        let (mut i_idx, mut q_idx) = (0usize, 0usize);
        for pair in sym.chunks_exact(2) {
            i_idx = (i_idx << 1) | usize::from(pair[0] & 1);
            q_idx = (q_idx << 1) | usize::from(pair[1] & 1);
        }
        out.push(Complex32::new(levels[i_idx], levels[q_idx]));
    }
    Ok(())
}

/// Smallest noise variance used by the demapper, so that a zero, negative or NaN estimate
/// gives large but finite LLRs.
pub const MIN_NOISE_VAR: f32 = 1e-6;

/// Max-log soft demapping: for each symbol `y` with noise variance `noise_var[i]`
/// (per-symbol, after equalisation), appends Q_m LLRs to `out`.
///
/// `noise_var` is the complex noise variance E|n|² (both axes together), so
/// LLR = (min_{s: b=1} |y−s|² − min_{s: b=0} |y−s|²) / noise_var. `noise_var` must have one
/// entry per symbol, or exactly one entry used for all. A non-finite symbol gives LLRs 0 (no information).
pub fn demap_soft(
    symbols: &[Complex32],
    noise_var: &[f32],
    m: Modulation,
    out: &mut Vec<f32>,
) -> Result<()> {
    if noise_var.len() != symbols.len() && noise_var.len() != 1 {
        return Err(PhyError::InvalidLength {
            what: "noise variances (one per symbol, or one for all)",
            expected: symbols.len(),
            got: noise_var.len(),
        });
    }
    let qm = m.bits_per_symbol();
    let start = out.len();
    out.resize(start + symbols.len() * qm, 0.0);
    let dst = &mut out[start..];
    for (i, (y, d)) in symbols.iter().zip(dst.chunks_exact_mut(qm)).enumerate() {
        let nv = if noise_var.len() == 1 {
            noise_var[0]
        } else {
            noise_var[i]
        };
        // NaN.max(x) is x: a NaN estimate becomes the floor.
        let inv = 1.0 / nv.max(MIN_NOISE_VAR);
        if !(y.re.is_finite() && y.im.is_finite()) {
            // No information in this symbol: every bit equally likely.
            d.fill(0.0);
            continue;
        }
        let (re, im) = (y.re.clamp(-1e6, 1e6), y.im.clamp(-1e6, 1e6));
        match m {
            Modulation::Qpsk => {
                d[0] = pam2(re) * inv;
                d[1] = pam2(im) * inv;
            }
            Modulation::Qam16 => {
                let (a0, a1) = pam4(re);
                let (b0, b1) = pam4(im);
                d[0] = a0 * inv;
                d[1] = b0 * inv;
                d[2] = a1 * inv;
                d[3] = b1 * inv;
            }
            Modulation::Qam64 => {
                let (a0, a1, a2) = pam8(re);
                let (b0, b1, b2) = pam8(im);
                d[0] = a0 * inv;
                d[1] = b0 * inv;
                d[2] = a1 * inv;
                d[3] = b1 * inv;
                d[4] = a2 * inv;
                d[5] = b2 * inv;
            }
        }
    }
    Ok(())
}

/// Max-log metric difference (d²(b=1) − d²(b=0)) for one bit given the per-level squared
/// distances and which levels carry a 1 in that bit.
#[inline]
fn bit_metric<const N: usize>(d2: &[f32; N], one_mask: usize) -> f32 {
    let (mut m0, mut m1) = (f32::INFINITY, f32::INFINITY);
    for (idx, &d) in d2.iter().enumerate() {
        if one_mask >> idx & 1 == 1 {
            m1 = m1.min(d);
        } else {
            m0 = m0.min(d);
        }
    }
    m1 - m0
}

/// QPSK axis: exact, d²(−a) − d²(+a) = 4·a·y.
#[inline]
fn pam2(y: f32) -> f32 {
    4.0 * S2 * y
}

#[inline]
fn pam4(y: f32) -> (f32, f32) {
    let mut d2 = [0f32; 4];
    for (d, &l) in d2.iter_mut().zip(QAM16_LEVELS.iter()) {
        *d = (y - l) * (y - l);
    }
    // Level index bits: (b0 b2); b0 is bit 1 of the index, b2 bit 0.
    (bit_metric(&d2, 0b1100), bit_metric(&d2, 0b1010))
}

#[inline]
fn pam8(y: f32) -> (f32, f32, f32) {
    let mut d2 = [0f32; 8];
    for (d, &l) in d2.iter_mut().zip(QAM64_LEVELS.iter()) {
        *d = (y - l) * (y - l);
    }
    // Level index bits: (b0 b2 b4) = index bits 2, 1, 0.
    (
        bit_metric(&d2, 0b1111_0000),
        bit_metric(&d2, 0b1100_1100),
        bit_metric(&d2, 0b1010_1010),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table 7.1.2-1 as printed: bits, I, Q (×√2).
    const QPSK_TABLE: [(&str, f32, f32); 4] = [
        ("00", 1.0, 1.0),
        ("01", 1.0, -1.0),
        ("10", -1.0, 1.0),
        ("11", -1.0, -1.0),
    ];

    /// Table 7.1.3-1 as printed: bits, I, Q (×√10).
    const QAM16_TABLE: [(&str, f32, f32); 16] = [
        ("0000", 1.0, 1.0),
        ("0001", 1.0, 3.0),
        ("0010", 3.0, 1.0),
        ("0011", 3.0, 3.0),
        ("0100", 1.0, -1.0),
        ("0101", 1.0, -3.0),
        ("0110", 3.0, -1.0),
        ("0111", 3.0, -3.0),
        ("1000", -1.0, 1.0),
        ("1001", -1.0, 3.0),
        ("1010", -3.0, 1.0),
        ("1011", -3.0, 3.0),
        ("1100", -1.0, -1.0),
        ("1101", -1.0, -3.0),
        ("1110", -3.0, -1.0),
        ("1111", -3.0, -3.0),
    ];

    /// Table 7.1.4-1 as printed: bits, I, Q (×√42).
    const QAM64_TABLE: [(&str, f32, f32); 64] = [
        ("000000", 3.0, 3.0),
        ("000001", 3.0, 1.0),
        ("000010", 1.0, 3.0),
        ("000011", 1.0, 1.0),
        ("000100", 3.0, 5.0),
        ("000101", 3.0, 7.0),
        ("000110", 1.0, 5.0),
        ("000111", 1.0, 7.0),
        ("001000", 5.0, 3.0),
        ("001001", 5.0, 1.0),
        ("001010", 7.0, 3.0),
        ("001011", 7.0, 1.0),
        ("001100", 5.0, 5.0),
        ("001101", 5.0, 7.0),
        ("001110", 7.0, 5.0),
        ("001111", 7.0, 7.0),
        ("010000", 3.0, -3.0),
        ("010001", 3.0, -1.0),
        ("010010", 1.0, -3.0),
        ("010011", 1.0, -1.0),
        ("010100", 3.0, -5.0),
        ("010101", 3.0, -7.0),
        ("010110", 1.0, -5.0),
        ("010111", 1.0, -7.0),
        ("011000", 5.0, -3.0),
        ("011001", 5.0, -1.0),
        ("011010", 7.0, -3.0),
        ("011011", 7.0, -1.0),
        ("011100", 5.0, -5.0),
        ("011101", 5.0, -7.0),
        ("011110", 7.0, -5.0),
        ("011111", 7.0, -7.0),
        ("100000", -3.0, 3.0),
        ("100001", -3.0, 1.0),
        ("100010", -1.0, 3.0),
        ("100011", -1.0, 1.0),
        ("100100", -3.0, 5.0),
        ("100101", -3.0, 7.0),
        ("100110", -1.0, 5.0),
        ("100111", -1.0, 7.0),
        ("101000", -5.0, 3.0),
        ("101001", -5.0, 1.0),
        ("101010", -7.0, 3.0),
        ("101011", -7.0, 1.0),
        ("101100", -5.0, 5.0),
        ("101101", -5.0, 7.0),
        ("101110", -7.0, 5.0),
        ("101111", -7.0, 7.0),
        ("110000", -3.0, -3.0),
        ("110001", -3.0, -1.0),
        ("110010", -1.0, -3.0),
        ("110011", -1.0, -1.0),
        ("110100", -3.0, -5.0),
        ("110101", -3.0, -7.0),
        ("110110", -1.0, -5.0),
        ("110111", -1.0, -7.0),
        ("111000", -5.0, -3.0),
        ("111001", -5.0, -1.0),
        ("111010", -7.0, -3.0),
        ("111011", -7.0, -1.0),
        ("111100", -5.0, -5.0),
        ("111101", -5.0, -7.0),
        ("111110", -7.0, -5.0),
        ("111111", -7.0, -7.0),
    ];

    fn bits_of(s: &str) -> Vec<u8> {
        s.bytes().map(|c| c - b'0').collect()
    }

    fn table(m: Modulation) -> (Vec<(Vec<u8>, Complex32)>, f32) {
        let (rows, scale): (&[(&str, f32, f32)], f32) = match m {
            Modulation::Qpsk => (&QPSK_TABLE, 2f32.sqrt()),
            Modulation::Qam16 => (&QAM16_TABLE, 10f32.sqrt()),
            Modulation::Qam64 => (&QAM64_TABLE, 42f32.sqrt()),
        };
        let pts = rows
            .iter()
            .map(|(b, i, q)| (bits_of(b), Complex32::new(i / scale, q / scale)))
            .collect();
        (pts, scale)
    }

    #[test]
    fn every_point_matches_the_36_211_tables() {
        for m in Modulation::ALL {
            let (pts, _) = table(m);
            assert_eq!(pts.len(), 1 << m.bits_per_symbol());
            for (bits, want) in pts {
                let mut out = Vec::new();
                map(&bits, m, &mut out).unwrap();
                assert_eq!(out.len(), 1);
                assert!(
                    (out[0] - want).norm() < 1e-6,
                    "{m:?} {bits:?}: {} vs {want}",
                    out[0]
                );
            }
        }
    }

    #[test]
    fn unit_average_power() {
        for m in Modulation::ALL {
            let (pts, _) = table(m);
            let p: f32 = pts.iter().map(|(_, s)| s.norm_sqr()).sum::<f32>() / pts.len() as f32;
            assert!((p - 1.0).abs() < 1e-5, "{m:?}: {p}");
        }
    }

    #[test]
    fn noiseless_round_trip_and_llr_signs() {
        for m in Modulation::ALL {
            let qm = m.bits_per_symbol();
            // Every constellation point once, in table order.
            let bits: Vec<u8> = (0..1usize << qm)
                .flat_map(|v| (0..qm).rev().map(move |b| (v >> b & 1) as u8))
                .collect();
            let mut syms = Vec::new();
            map(&bits, m, &mut syms).unwrap();
            let mut llr = Vec::new();
            demap_soft(&syms, &[0.1], m, &mut llr).unwrap();
            assert_eq!(llr.len(), bits.len());
            for (b, l) in bits.iter().zip(&llr) {
                assert!(if *b == 0 { *l > 0.0 } else { *l < 0.0 }, "{m:?}");
                // The closest competitor is at least one minimum distance away.
                assert!(l.abs() >= 0.99 * min_dist2(m) / 0.1, "{m:?}: {l}");
            }
        }
    }

    fn min_dist2(m: Modulation) -> f32 {
        let a = match m {
            Modulation::Qpsk => S2,
            Modulation::Qam16 => S10,
            Modulation::Qam64 => S42,
        };
        (2.0 * a) * (2.0 * a)
    }

    /// Brute force max-log over all 2^Qm points must equal the per-axis demapper.
    #[test]
    fn per_axis_demapper_equals_brute_force_max_log() {
        let ys = [
            -1.3f32, -0.9, -0.5, -0.21, -0.05, 0.0, 0.07, 0.33, 0.61, 1.1, 2.0,
        ];
        for m in Modulation::ALL {
            let (pts, _) = table(m);
            let qm = m.bits_per_symbol();
            for &re in &ys {
                for &im in &ys {
                    let y = Complex32::new(re, im);
                    let nv = 0.37;
                    let mut llr = Vec::new();
                    demap_soft(&[y], &[nv], m, &mut llr).unwrap();
                    for (b, l) in llr.iter().enumerate().take(qm) {
                        let best = |v: u8| {
                            pts.iter()
                                .filter(|(bits, _)| bits[b] == v)
                                .map(|(_, s)| (y - s).norm_sqr())
                                .fold(f32::INFINITY, f32::min)
                        };
                        let want = (best(1) - best(0)) / nv;
                        assert!((l - want).abs() < 1e-4 * (1.0 + want.abs()), "{m:?} b{b}");
                    }
                }
            }
        }
    }

    #[test]
    fn llr_scales_with_noise_and_survives_bad_input() {
        let y = [Complex32::new(0.3, -0.2)];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        demap_soft(&y, &[0.5], Modulation::Qam16, &mut a).unwrap();
        demap_soft(&y, &[1.0], Modulation::Qam16, &mut b).unwrap();
        for (x, z) in a.iter().zip(&b) {
            assert!((x - 2.0 * z).abs() < 1e-5);
        }
        let bad = [
            Complex32::new(f32::NAN, f32::INFINITY),
            Complex32::new(1e30, -1e30),
        ];
        let mut out = Vec::new();
        demap_soft(&bad, &[f32::NAN, -1.0], Modulation::Qam64, &mut out).unwrap();
        assert!(out.iter().all(|l| l.is_finite()));
        assert!(out[..6].iter().all(|l| *l == 0.0));
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut out = Vec::new();
        assert!(map(&[0, 1, 0], Modulation::Qpsk, &mut out).is_err());
        assert!(map(&[0, 1, 0, 1, 1], Modulation::Qam16, &mut out).is_err());
        let mut l = Vec::new();
        let y = [Complex32::new(0.0, 0.0); 3];
        assert!(demap_soft(&y, &[1.0, 1.0], Modulation::Qpsk, &mut l).is_err());
        assert!(Modulation::from_bits_per_symbol(3).is_err());
    }
}

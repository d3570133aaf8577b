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

/// Runs `f(re, im, 1/noise_var, llrs)` for every symbol, Q bits each.
#[inline(always)]
fn demap_with<const Q: usize>(
    symbols: &[Complex32],
    noise_var: &[f32],
    dst: &mut [f32],
    f: impl Fn(f32, f32, f32, &mut [f32; Q]),
) {
    let per_symbol = noise_var.len() != 1;
    for (i, (y, d)) in symbols.iter().zip(dst.chunks_exact_mut(Q)).enumerate() {
        let d: &mut [f32; Q] = match d.try_into() {
            Ok(d) => d,
            Err(_) => continue, // cannot happen: chunks_exact_mut(Q)
        };
        let nv = if per_symbol {
            noise_var.get(i).copied().unwrap_or(1.0)
        } else {
            noise_var[0]
        };
        // NaN.max(x) is x: a NaN estimate becomes the floor.
        let inv = 1.0 / nv.max(MIN_NOISE_VAR);
        if !(y.re.is_finite() && y.im.is_finite()) {
            // No information in this symbol: every bit equally likely.
            *d = [0.0; Q];
            continue;
        }
        f(y.re.clamp(-1e6, 1e6), y.im.clamp(-1e6, 1e6), inv, d);
    }
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
    // One loop per modulation with a fixed-size output chunk, so the per-symbol work has no
    // dispatch or bounds checks.
    match m {
        Modulation::Qpsk => demap_with::<2>(symbols, noise_var, dst, |re, im, inv, d| {
            *d = [pam2(re) * inv, pam2(im) * inv];
        }),
        Modulation::Qam16 => {
            let done = qam_avx2(4, symbols, noise_var, dst);
            let nv_rest = if noise_var.len() == 1 {
                noise_var
            } else {
                &noise_var[done..]
            };
            demap_with::<4>(
                &symbols[done..],
                nv_rest,
                &mut dst[4 * done..],
                |re, im, inv, d| {
                    let (a0, a1) = pam4(re);
                    let (b0, b1) = pam4(im);
                    *d = [a0 * inv, b0 * inv, a1 * inv, b1 * inv];
                },
            );
        }
        Modulation::Qam64 => {
            // Whole groups of 8 symbols in AVX2 when the CPU has it (the same arithmetic,
            // bit for bit), the rest below.
            let done = qam_avx2(6, symbols, noise_var, dst);
            let nv_rest = if noise_var.len() == 1 {
                noise_var
            } else {
                &noise_var[done..]
            };
            demap_with::<6>(
                &symbols[done..],
                nv_rest,
                &mut dst[6 * done..],
                |re, im, inv, d| {
                    let (a0, a1, a2) = pam8(re);
                    let (b0, b1, b2) = pam8(im);
                    *d = [a0 * inv, b0 * inv, a1 * inv, b1 * inv, a2 * inv, b2 * inv];
                },
            );
        }
    }
    Ok(())
}

/// 16QAM (`qm` 4) or 64QAM (`qm` 6) demapping of the first multiple of 8 symbols with AVX2
/// (0 when the CPU lacks it); returns how many symbols it did.
fn qam_avx2(qm: usize, symbols: &[Complex32], noise_var: &[f32], dst: &mut [f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present; lengths are checked inside.
        return unsafe { x86::qam(qm, symbols, noise_var, dst) };
    }
    let _ = (qm, symbols, noise_var, dst);
    0
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Complex32, MIN_NOISE_VAR, S10, S42};
    use std::arch::x86_64::*;

    /// [`super::pam8`] on 8 lanes: (b0, b2, b4) of one axis, the same operations in the
    /// same order as the scalar code (so the same bits).
    #[target_feature(enable = "avx2")]
    unsafe fn pam8(y: __m256) -> (__m256, __m256, __m256) {
        let a = _mm256_set1_ps(S42);
        let sign = _mm256_set1_ps(-0.0);
        let u = _mm256_andnot_ps(sign, y);
        let level = _mm256_min_epi32(
            _mm256_cvttps_epi32(_mm256_mul_ps(u, _mm256_set1_ps(0.5 / S42))),
            _mm256_set1_epi32(3),
        );
        let two_l1 = _mm256_add_epi32(_mm256_add_epi32(level, level), _mm256_set1_epi32(1));
        let p = _mm256_mul_ps(_mm256_cvtepi32_ps(two_l1), a);
        let ua = _mm256_add_ps(u, a);
        let up = _mm256_sub_ps(u, p);
        let b0 = _mm256_sub_ps(_mm256_mul_ps(ua, ua), _mm256_mul_ps(up, up));
        // copysign(b0, y)
        let b0 = _mm256_or_ps(_mm256_andnot_ps(sign, b0), _mm256_and_ps(sign, y));
        let sq = |k: f32| {
            let d = _mm256_sub_ps(u, _mm256_set1_ps(k * S42));
            _mm256_mul_ps(d, d)
        };
        let b2 = _mm256_sub_ps(
            _mm256_min_ps(sq(5.0), sq(7.0)),
            _mm256_min_ps(sq(1.0), sq(3.0)),
        );
        let d4 = _mm256_andnot_ps(sign, _mm256_sub_ps(u, _mm256_set1_ps(4.0 * S42)));
        let b4 = _mm256_mul_ps(
            _mm256_set1_ps(4.0 * S42),
            _mm256_sub_ps(_mm256_set1_ps(2.0 * S42), d4),
        );
        (b0, b2, b4)
    }

    /// [`super::pam4`] on 8 lanes: (b0, b2) of one axis, the scalar code's operations.
    #[target_feature(enable = "avx2")]
    unsafe fn pam4(y: __m256) -> (__m256, __m256) {
        let a = _mm256_set1_ps(S10);
        let sign = _mm256_set1_ps(-0.0);
        let u = _mm256_andnot_ps(sign, y);
        let inner = _mm256_cmp_ps::<_CMP_LT_OQ>(u, _mm256_set1_ps(2.0 * S10));
        let p = _mm256_blendv_ps(_mm256_set1_ps(3.0 * S10), a, inner);
        let ua = _mm256_add_ps(u, a);
        let up = _mm256_sub_ps(u, p);
        let b0 = _mm256_sub_ps(_mm256_mul_ps(ua, ua), _mm256_mul_ps(up, up));
        let b0 = _mm256_or_ps(_mm256_andnot_ps(sign, b0), _mm256_and_ps(sign, y));
        let b2 = _mm256_mul_ps(
            _mm256_set1_ps(4.0 * S10),
            _mm256_sub_ps(_mm256_set1_ps(2.0 * S10), u),
        );
        (b0, b2)
    }

    /// # Safety
    /// The CPU must support AVX2; `qm` is 4 or 6.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn qam(
        qm: usize,
        symbols: &[Complex32],
        noise_var: &[f32],
        dst: &mut [f32],
    ) -> usize {
        if qm != 4 && qm != 6 {
            return 0;
        }
        let per_symbol = noise_var.len() != 1;
        let mut n = symbols.len().min(dst.len() / qm) / 8 * 8;
        if per_symbol {
            n = n.min(noise_var.len() / 8 * 8);
        }
        let (lo, hi) = (_mm256_set1_ps(-1e6), _mm256_set1_ps(1e6));
        let inf = _mm256_set1_ps(f32::INFINITY);
        let sign = _mm256_set1_ps(-0.0);
        let floor = _mm256_set1_ps(MIN_NOISE_VAR);
        let one = _mm256_set1_ps(1.0);
        let mut out = [[0.0f32; 8]; 6];
        for g in (0..n).step_by(8) {
            // 8 complex symbols: re and im of each 4 in the two halves, then in order.
            let p = symbols.as_ptr().add(g).cast::<f32>();
            let v0 = _mm256_loadu_ps(p);
            let v1 = _mm256_loadu_ps(p.add(8));
            let re = _mm256_shuffle_ps::<0x88>(v0, v1);
            let im = _mm256_shuffle_ps::<0xDD>(v0, v1);
            let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
            let re = _mm256_permutevar8x32_ps(re, order);
            let im = _mm256_permutevar8x32_ps(im, order);
            let nv = if per_symbol {
                _mm256_loadu_ps(noise_var.as_ptr().add(g))
            } else {
                _mm256_set1_ps(noise_var[0])
            };
            // NaN.max(x) is x in Rust; maxps returns its second operand when one is NaN.
            let inv = _mm256_div_ps(one, _mm256_max_ps(nv, floor));
            let finite = _mm256_and_ps(
                _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_andnot_ps(sign, re), inf),
                _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_andnot_ps(sign, im), inf),
            );
            let re = _mm256_min_ps(_mm256_max_ps(re, lo), hi);
            let im = _mm256_min_ps(_mm256_max_ps(im, lo), hi);
            let z = _mm256_setzero_ps();
            let v = if qm == 6 {
                let (a0, a1, a2) = pam8(re);
                let (b0, b1, b2) = pam8(im);
                [a0, b0, a1, b1, a2, b2]
            } else {
                let (a0, a1) = pam4(re);
                let (b0, b1) = pam4(im);
                [a0, b0, a1, b1, z, z]
            };
            for (o, v) in out.iter_mut().zip(v).take(qm) {
                // A non-finite symbol carries no information: LLRs 0.
                _mm256_storeu_ps(o.as_mut_ptr(), _mm256_and_ps(_mm256_mul_ps(v, inv), finite));
            }
            let d = &mut dst[qm * g..qm * (g + 8)];
            for (i, chunk) in d.chunks_exact_mut(qm).enumerate() {
                for (j, x) in chunk.iter_mut().enumerate() {
                    *x = out[j][i];
                }
            }
        }
        n
    }
}

// Per-axis max-log metrics d²(b=1) − d²(b=0) in closed form. The axis is symmetric, so
// everything is computed on u = |y| and the sign bit's metric gets y's sign back.

/// QPSK axis: d²(−a) − d²(+a) = 4·a·y.
#[inline]
fn pam2(y: f32) -> f32 {
    4.0 * S2 * y
}

/// 16QAM axis, levels ±a, ±3a: (b0 b2) = (sign, outer).
#[inline]
fn pam4(y: f32) -> (f32, f32) {
    let a = S10;
    let u = y.abs();
    // Nearest level of the right sign; the nearest of the wrong sign is always −a.
    let p = if u < 2.0 * a { a } else { 3.0 * a };
    let b0 = ((u + a) * (u + a) - (u - p) * (u - p)).copysign(y);
    let b2 = 4.0 * a * (2.0 * a - u);
    (b0, b2)
}

/// 64QAM axis, levels ±a, ±3a, ±5a, ±7a: b0 sign, b2 = 1 on {5a, 7a}, b4 = 1 on {a, 7a}.
#[inline]
fn pam8(y: f32) -> (f32, f32, f32) {
    let a = S42;
    let u = y.abs();
    // Truncation is floor for u ≥ 0 (and avoids a libm call without SSE4.1); u ≤ 1e6.
    let level = ((u * (0.5 / a)) as i32).min(3);
    let p = (2 * level + 1) as f32 * a;
    let b0 = ((u + a) * (u + a) - (u - p) * (u - p)).copysign(y);
    let sq = |x: f32| x * x;
    let b2 = sq(u - 5.0 * a).min(sq(u - 7.0 * a)) - sq(u - a).min(sq(u - 3.0 * a));
    let b4 = 4.0 * a * (2.0 * a - (u - 4.0 * a).abs());
    (b0, b2, b4)
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
        // A fine grid across and beyond the constellations, including the decision
        // boundaries (multiples of the level spacing) and zero.
        let ys: Vec<f32> = (-60..=60)
            .map(|i| i as f32 * 0.025 + 0.0013 * (i % 3) as f32)
            .collect();
        for m in Modulation::ALL {
            let (pts, _) = table(m);
            let qm = m.bits_per_symbol();
            for &re in &ys {
                for &im in ys.iter().step_by(7) {
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

    /// The AVX2 16QAM and 64QAM paths give exactly the scalar LLRs, for finite symbols of every
    /// region, non-finite ones, huge ones, per-symbol and shared noise variances.
    #[test]
    fn avx2_qam_equals_the_scalar_demapper() {
        let mut syms: Vec<Complex32> = (0..203)
            .map(|i| {
                let x = (i as f32 * 0.6180339).fract() * 2.6 - 1.3;
                let y = (i as f32 * 0.4142135).fract() * 2.6 - 1.3;
                Complex32::new(x, y)
            })
            .collect();
        syms[3] = Complex32::new(f32::NAN, 0.1);
        syms[9] = Complex32::new(0.2, f32::INFINITY);
        syms[12] = Complex32::new(3.0e9, -3.0e9);
        syms[17] = Complex32::new(-0.0, 0.0);
        let nvs: Vec<f32> = (0..syms.len())
            .map(|i| match i % 11 {
                0 => f32::NAN,
                1 => -1.0,
                2 => 0.0,
                _ => 0.05 + (i % 7) as f32 * 0.1,
            })
            .collect();
        for nv in [&nvs[..], &[0.37][..]] {
            let mut fast = Vec::new();
            demap_soft(&syms, nv, Modulation::Qam16, &mut fast).unwrap();
            let mut slow = vec![0.0f32; syms.len() * 4];
            demap_with::<4>(&syms, nv, &mut slow, |re, im, inv, d| {
                let (a0, a1) = pam4(re);
                let (b0, b1) = pam4(im);
                *d = [a0 * inv, b0 * inv, a1 * inv, b1 * inv];
            });
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&slow), "16QAM");
            let mut fast = Vec::new();
            demap_soft(&syms, nv, Modulation::Qam64, &mut fast).unwrap();
            let mut slow = vec![0.0f32; syms.len() * 6];
            demap_with::<6>(&syms, nv, &mut slow, |re, im, inv, d| {
                let (a0, a1, a2) = pam8(re);
                let (b0, b1, b2) = pam8(im);
                *d = [a0 * inv, b0 * inv, a1 * inv, b1 * inv, a2 * inv, b2 * inv];
            });
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&slow));
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

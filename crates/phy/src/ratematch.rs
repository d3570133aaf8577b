//! Rate matching of turbo-coded transport channels, TS 36.212 §5.1.4.1: sub-block
//! interleaving of the three streams (32 columns, inter-column permutation, <NULL> dummy
//! bits), bit collection into the circular buffer, and selection of E bits from the
//! redundancy version's start k0 — plus the soft inverse that accumulates LLRs.
//!
//! The soft buffer is the full circular buffer, N_cb = K_w = 3·K_Π (as for UL-SCH, or a
//! DL-SCH UE whose N_IR is not limiting); limited-buffer rate matching is not modelled.
//!
//! A [`RateMatchPattern`] precomputes, for one (K, F), the circular buffer as the list of
//! its non-<NULL> entries (each an index into the turbo coder's d⁽⁰⁾ ‖ d⁽¹⁾ ‖ d⁽²⁾ buffer),
//! so selection and accumulation are straight loops without NULL tests.

use crate::turbo::{block_size_index, stream_len};
use crate::{PhyError, Result};

/// Number of columns of the sub-block interleaver.
const COLUMNS: usize = 32;

/// Inter-column permutation pattern of table 5.1.4-1.
pub const COLUMN_PERMUTATION: [usize; COLUMNS] = [
    0, 16, 8, 24, 4, 20, 12, 28, 2, 18, 10, 26, 6, 22, 14, 30, 1, 17, 9, 25, 5, 21, 13, 29, 3, 19,
    11, 27, 7, 23, 15, 31,
];

/// Marker for a <NULL> entry in the raw circular buffer.
pub const NULL: u32 = u32::MAX;

/// Sub-block interleaver output positions for one stream: `v_k` is `y[out[k]]` where
/// y = (N_D <NULL>s, then d). Returns, per k, the index into d or [`NULL`].
fn subblock_positions(d_len: usize, third_stream: bool, out: &mut Vec<u32>) {
    let rows = d_len.div_ceil(COLUMNS);
    let kpi = rows * COLUMNS;
    let nd = kpi - d_len;
    out.clear();
    for k in 0..kpi {
        let y = if third_stream {
            // π(k) = (P(⌊k/R⌋) + C·(k mod R) + 1) mod K_Π
            (COLUMN_PERMUTATION[k / rows] + COLUMNS * (k % rows) + 1) % kpi
        } else {
            // Column-by-column read of the column-permuted matrix.
            (k % rows) * COLUMNS + COLUMN_PERMUTATION[k / rows]
        };
        out.push(if y < nd { NULL } else { (y - nd) as u32 });
    }
}

/// The circular buffer of one code block size and filler count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateMatchPattern {
    k: usize,
    filler: usize,
    rows: usize,
    /// Non-<NULL> circular-buffer entries in order, as indices into d⁽⁰⁾ ‖ d⁽¹⁾ ‖ d⁽²⁾.
    order: Vec<u32>,
    /// Position in `order` where each redundancy version starts (k0 skipping NULLs).
    start: [usize; 4],
}

impl RateMatchPattern {
    /// Builds the pattern for code block size `k` whose first `filler` bits are filler.
    pub fn new(k: usize, filler: usize) -> Result<Self> {
        block_size_index(k).ok_or_else(|| {
            PhyError::invalid(
                "turbo block size K",
                k,
                "one of the 188 sizes of 36.212 table 5.1.3-3",
            )
        })?;
        if filler >= k {
            return Err(PhyError::invalid("filler bits F", filler, "fewer than K"));
        }
        let d = stream_len(k);
        let rows = d.div_ceil(COLUMNS);
        let kpi = rows * COLUMNS;
        let (mut v01, mut v2) = (Vec::new(), Vec::new());
        subblock_positions(d, false, &mut v01);
        subblock_positions(d, true, &mut v2);
        // w = v0, then v1 and v2 interleaved; <NULL> for dummy bits and for filler bits of
        // d⁽⁰⁾ and d⁽¹⁾.
        let kw = 3 * kpi;
        let mut raw = Vec::with_capacity(kw);
        let filler_null = |i: u32, base: usize| {
            if i == NULL || (i as usize) < filler {
                NULL
            } else {
                (base + i as usize) as u32
            }
        };
        raw.extend(v01.iter().map(|&i| filler_null(i, 0)));
        for (&a, &b) in v01.iter().zip(&v2) {
            raw.push(filler_null(a, d));
            raw.push(if b == NULL { NULL } else { (2 * d) as u32 + b });
        }
        let mut start = [0; 4];
        for (rv, s) in start.iter_mut().enumerate() {
            let k0 = k0(rows, kw, rv);
            *s = raw[..k0].iter().filter(|&&x| x != NULL).count();
        }
        let order: Vec<u32> = raw.into_iter().filter(|&x| x != NULL).collect();
        Ok(RateMatchPattern {
            k,
            filler,
            rows,
            order,
            start,
        })
    }

    /// Code block size K.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Filler bits F.
    pub fn filler(&self) -> usize {
        self.filler
    }

    /// Number of real (non-<NULL>) bits in the circular buffer: 3·(K+4) − 2·F.
    pub fn buffer_bits(&self) -> usize {
        self.order.len()
    }

    /// Rows R of the sub-block interleaver.
    pub fn rows(&self) -> usize {
        self.rows
    }

    fn check(&self, d_len: usize, rv: u8) -> Result<usize> {
        if rv > 3 {
            return Err(PhyError::invalid("redundancy version rv", rv, "0..=3"));
        }
        let want = 3 * stream_len(self.k);
        if d_len != want {
            return Err(PhyError::InvalidLength {
                what: "turbo streams d0‖d1‖d2",
                expected: want,
                got: d_len,
            });
        }
        Ok(self.start[usize::from(rv)])
    }

    /// Selects `e` bits from the turbo coder output `d` (3·(K+4) bits) for redundancy
    /// version `rv`, appending them to `out`.
    pub fn select(&self, d: &[u8], rv: u8, e: usize, out: &mut Vec<u8>) -> Result<()> {
        let mut pos = self.check(d.len(), rv)?;
        out.reserve(e);
        let mut left = e;
        while left > 0 {
            let run = left.min(self.order.len() - pos);
            out.extend(self.order[pos..pos + run].iter().map(|&i| d[i as usize]));
            left -= run;
            pos = 0;
        }
        Ok(())
    }

    /// The inverse of [`RateMatchPattern::select`] on soft bits: adds each of the E
    /// received LLRs to its place in `acc` (3·(K+4) LLRs, d⁽⁰⁾ ‖ d⁽¹⁾ ‖ d⁽²⁾). Repeated bits
    /// add up; punctured and <NULL> positions are left as they were (0 on a fresh buffer).
    /// NaN LLRs count as 0.
    pub fn accumulate(&self, llr: &[f32], rv: u8, acc: &mut [f32]) -> Result<()> {
        let mut pos = self.check(acc.len(), rv)?;
        let mut rest = llr;
        while !rest.is_empty() {
            let run = rest.len().min(self.order.len() - pos);
            for (&i, &l) in self.order[pos..pos + run].iter().zip(&rest[..run]) {
                let l = if l.is_nan() { 0.0 } else { l };
                acc[i as usize] += l;
            }
            rest = &rest[run..];
            pos = 0;
        }
        Ok(())
    }
}

/// Start of redundancy version `rv` in the circular buffer:
/// k0 = R·(2·⌈N_cb / (8R)⌉·rv + 2), here with N_cb = K_w.
fn k0(rows: usize, ncb: usize, rv: usize) -> usize {
    rows * (2 * ncb.div_ceil(8 * rows) * rv + 2)
}

/// E_r of §5.1.4.1.2 for code block `r` of `c` (one layer): the G/Q_m symbols are shared
/// out as evenly as possible, the last γ = (G/Q_m) mod C blocks taking one symbol more.
pub fn code_block_e(g: usize, qm: usize, c: usize, r: usize) -> usize {
    if qm == 0 || c == 0 {
        return 0;
    }
    let gp = g / qm;
    let gamma = gp % c;
    if r + gamma < c {
        qm * (gp / c)
    } else {
        qm * gp.div_ceil(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw circular buffer built literally as §5.1.4.1.1–2 write it (matrix of y with
    /// NULLs, column permutation, column-wise read; π(k) for the third stream).
    #[allow(clippy::needless_range_loop)] // index loops on purpose: it mirrors the spec text
    fn literal_buffer(k: usize, filler: usize) -> Vec<Option<usize>> {
        let d = k + 4;
        let r = d.div_ceil(32);
        let kpi = 32 * r;
        let nd = kpi - d;
        let y = |s: usize, idx: usize| -> Option<usize> {
            if idx < nd {
                return None;
            }
            let i = idx - nd;
            if s < 2 && i < filler {
                None
            } else {
                Some(s * d + i)
            }
        };
        let mut v = [Vec::new(), Vec::new(), Vec::new()];
        for s in 0..2 {
            // matrix[row][col] = y[row*32+col]; permuted column j is column P[j].
            for j in 0..32 {
                for row in 0..r {
                    v[s].push(y(s, row * 32 + COLUMN_PERMUTATION[j]));
                }
            }
        }
        for kk in 0..kpi {
            let p = (COLUMN_PERMUTATION[kk / r] + 32 * (kk % r) + 1) % kpi;
            v[2].push(y(2, p));
        }
        let mut w = v[0].clone();
        for kk in 0..kpi {
            w.push(v[1][kk]);
            w.push(v[2][kk]);
        }
        w
    }

    fn literal_select(k: usize, filler: usize, rv: usize, e: usize) -> Vec<usize> {
        let w = literal_buffer(k, filler);
        let ncb = w.len();
        let r = (k + 4).div_ceil(32);
        let k0 = r * (2 * ncb.div_ceil(8 * r) * rv + 2);
        let mut out = Vec::new();
        let mut j = 0;
        while out.len() < e {
            if let Some(x) = w[(k0 + j) % ncb] {
                out.push(x);
            }
            j += 1;
        }
        out
    }

    #[test]
    fn selection_matches_the_literal_procedure() {
        for &(k, f) in &[(40usize, 0usize), (40, 13), (512, 0), (1056, 40), (6144, 0)] {
            let p = RateMatchPattern::new(k, f).unwrap();
            assert_eq!(p.buffer_bits(), 3 * (k + 4) - 2 * f);
            // d filled with its own index mod 251 so that the selection is identifiable.
            let d: Vec<u8> = (0..3 * (k + 4)).map(|i| (i % 251) as u8).collect();
            for rv in 0..4u8 {
                for e in [1usize, 100, 3 * k + 12, 4 * k + 7] {
                    let mut out = Vec::new();
                    p.select(&d, rv, e, &mut out).unwrap();
                    let want: Vec<u8> = literal_select(k, f, rv as usize, e)
                        .into_iter()
                        .map(|i| (i % 251) as u8)
                        .collect();
                    assert_eq!(out, want, "K={k} F={f} rv={rv} E={e}");
                }
            }
        }
    }

    #[test]
    fn rv0_starts_at_two_rows_into_the_systematic_part() {
        // k0 = 2R for rv 0: the first two columns (2R bits) of v0 are skipped.
        let p = RateMatchPattern::new(6144, 0).unwrap();
        let r = p.rows();
        assert_eq!(r, 193);
        assert_eq!(k0(r, 96 * r, 0), 2 * r);
        assert_eq!(k0(r, 96 * r, 1), 26 * r);
        assert_eq!(k0(r, 96 * r, 2), 50 * r);
        assert_eq!(k0(r, 96 * r, 3), 74 * r);
    }

    #[test]
    fn soft_inverse_puts_every_llr_back_noiselessly() {
        for &(k, f) in &[(40usize, 8usize), (2048, 0), (6144, 0)] {
            let p = RateMatchPattern::new(k, f).unwrap();
            let n = 3 * (k + 4);
            let d: Vec<u8> = (0..n).map(|i| ((i * 31 + i / 7) % 2) as u8).collect();
            for rv in 0..4u8 {
                for e in [k / 2, p.buffer_bits(), 2 * p.buffer_bits() + 5] {
                    let mut tx = Vec::new();
                    p.select(&d, rv, e, &mut tx).unwrap();
                    let llr: Vec<f32> = tx
                        .iter()
                        .map(|&b| if b == 0 { 1.0 } else { -1.0 })
                        .collect();
                    let mut acc = vec![0.0f32; n];
                    p.accumulate(&llr, rv, &mut acc).unwrap();
                    let mut got = 0usize;
                    for (i, &a) in acc.iter().enumerate() {
                        if a != 0.0 {
                            assert_eq!(u8::from(a < 0.0), d[i], "K={k} rv={rv} E={e} i={i}");
                            got += a.abs() as usize;
                        }
                    }
                    assert_eq!(got, e, "every received LLR lands somewhere");
                    // Filler positions are never touched.
                    assert!(acc[..f].iter().all(|&a| a == 0.0));
                    assert!(acc[k + 4..k + 4 + f].iter().all(|&a| a == 0.0));
                }
            }
        }
    }

    #[test]
    fn e_shares_out_g_as_the_spec_says() {
        // G' = 100 symbols over C = 3: γ = 1, blocks 0 and 1 get 33, block 2 gets 34.
        assert_eq!(code_block_e(400, 4, 3, 0), 132);
        assert_eq!(code_block_e(400, 4, 3, 1), 132);
        assert_eq!(code_block_e(400, 4, 3, 2), 136);
        let total: usize = (0..7).map(|r| code_block_e(18_000, 6, 7, r)).sum();
        assert_eq!(total, 18_000);
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(RateMatchPattern::new(41, 0).is_err());
        assert!(RateMatchPattern::new(40, 40).is_err());
        let p = RateMatchPattern::new(40, 0).unwrap();
        let mut out = Vec::new();
        assert!(p.select(&[0; 132], 4, 10, &mut out).is_err());
        assert!(p.select(&[0; 131], 0, 10, &mut out).is_err());
        assert!(p.accumulate(&[0.0; 5], 0, &mut [0.0; 10]).is_err());
    }
}

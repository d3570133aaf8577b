//! Primary and secondary synchronisation signals exactly as TS 36.211 §6.11: PSS
//! (Zadoff–Chu roots 25/29/34 by N_ID^(2)), SSS (m-sequences by N_ID^(1), different in
//! subframes 0 and 5), and where they sit in the frame for FDD and TDD.

use crate::numerology::{CyclicPrefix, Duplex};
use crate::{PhyError, Result};
use num_complex::Complex32;

/// Length of both sequences.
pub const SYNC_LEN: usize = 62;

/// Zadoff–Chu root of the PSS for N_ID^(2) (table 6.11.1.1-1).
pub fn pss_root(n_id_2: u8) -> Result<u32> {
    match n_id_2 {
        0 => Ok(25),
        1 => Ok(29),
        2 => Ok(34),
        other => Err(PhyError::invalid("cell_ID", other, "0..=2")),
    }
}

/// The PSS d_u(0..61) of §6.11.1.1.
pub fn pss(n_id_2: u8) -> Result<[Complex32; SYNC_LEN]> {
    let u = pss_root(n_id_2)? as u64;
    let mut d = [Complex32::new(0.0, 0.0); SYNC_LEN];
    for (n, v) in d.iter_mut().enumerate() {
        let n = n as u64;
        // The central element (n = 31 of a 63-long sequence) is punctured: the second half
        // uses (n+1)(n+2). Integer arithmetic mod 126 keeps the phase exact.
        let e = if n <= 30 { n * (n + 1) } else { (n + 1) * (n + 2) };
        let phase = -std::f64::consts::PI * ((u * e) % 126) as f64 / 63.0;
        *v = Complex32::new(phase.cos() as f32, phase.sin() as f32);
    }
    Ok(d)
}

/// Which of the two SSS in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SssSubframe {
    /// The SSS of subframe 0.
    Sf0,
    /// The SSS of subframe 5.
    Sf5,
}

/// (m0, m1) of §6.11.2.1 for N_ID^(1).
pub fn sss_m0_m1(n_id_1: u16) -> Result<(usize, usize)> {
    if n_id_1 > 167 {
        return Err(PhyError::invalid("group_ID", n_id_1, "0..=167"));
    }
    let n = usize::from(n_id_1);
    let qp = n / 30;
    let q = (n + qp * (qp + 1) / 2) / 30;
    let mp = n + q * (q + 1) / 2;
    let m0 = mp % 31;
    let m1 = (m0 + mp / 31 + 1) % 31;
    Ok((m0, m1))
}

/// The 31-long ±1 base sequence of a length-5 LFSR `x(i+5) = Σ taps x(i+t)` with
/// x(0..3) = 0, x(4) = 1, mapped by 1 − 2x.
fn m_sequence(taps: &[usize]) -> [i8; 31] {
    let mut x = [0u8; 31];
    x[4] = 1;
    for i in 0..26 {
        x[i + 5] = taps.iter().map(|&t| x[i + t]).sum::<u8>() % 2;
    }
    let mut s = [0i8; 31];
    for (o, &b) in s.iter_mut().zip(x.iter()) {
        *o = 1 - 2 * b as i8;
    }
    s
}

/// The SSS d(0..61) of §6.11.2.1 (values ±1).
pub fn sss(n_id_1: u16, n_id_2: u8, which: SssSubframe) -> Result<[f32; SYNC_LEN]> {
    if n_id_2 > 2 {
        return Err(PhyError::invalid("cell_ID", n_id_2, "0..=2"));
    }
    let (m0, m1) = sss_m0_m1(n_id_1)?;
    let s_t = m_sequence(&[2, 0]);
    let c_t = m_sequence(&[3, 0]);
    let z_t = m_sequence(&[4, 2, 1, 0]);
    let n2 = usize::from(n_id_2);
    let mut d = [0f32; SYNC_LEN];
    for n in 0..31 {
        let s0 = s_t[(n + m0) % 31];
        let s1 = s_t[(n + m1) % 31];
        let c0 = c_t[(n + n2) % 31];
        let c1 = c_t[(n + n2 + 3) % 31];
        let z_m0 = z_t[(n + m0 % 8) % 31];
        let z_m1 = z_t[(n + m1 % 8) % 31];
        let (even, odd) = match which {
            SssSubframe::Sf0 => (s0 * c0, s1 * c1 * z_m0),
            SssSubframe::Sf5 => (s1 * c0, s0 * c1 * z_m1),
        };
        d[2 * n] = f32::from(even);
        d[2 * n + 1] = f32::from(odd);
    }
    Ok(d)
}

/// Subcarrier index k (0-based over the N_RB·12 occupied subcarriers) of element n of a
/// sync sequence: k = n − 31 + N_RB·12/2 (§6.11.1.2).
pub fn sync_subcarrier(n: usize, n_sc: usize) -> usize {
    n + n_sc / 2 - 31
}

/// Where the sync signals sit in one subframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncPlacement {
    /// Symbol index (within the subframe) carrying the PSS, if any.
    pub pss_symbol: Option<usize>,
    /// Symbol index (within the subframe) carrying the SSS, and which SSS it is.
    pub sss_symbol: Option<(usize, SssSubframe)>,
}

/// Sync placement in subframe `sf` (0..=9). FDD: PSS in the last symbol of slots 0 and 10,
/// SSS in the symbol before. TDD: PSS in the third symbol of subframes 1 and 6, SSS in the
/// last symbol of subframes 0 and 5.
pub fn placement(duplex: Duplex, cp: CyclicPrefix, sf: usize) -> SyncPlacement {
    let n = cp.symbols_per_slot();
    let which = |s| if s == 0 { SssSubframe::Sf0 } else { SssSubframe::Sf5 };
    match duplex {
        Duplex::Fdd => match sf % 10 {
            s @ (0 | 5) => SyncPlacement {
                pss_symbol: Some(n - 1),
                sss_symbol: Some((n - 2, which(s))),
            },
            _ => SyncPlacement::default(),
        },
        Duplex::Tdd(_) => match sf % 10 {
            s @ (0 | 5) => SyncPlacement {
                pss_symbol: None,
                sss_symbol: Some((2 * n - 1, which(s))),
            },
            1 | 6 => SyncPlacement {
                pss_symbol: Some(2),
                sss_symbol: None,
            },
            _ => SyncPlacement::default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerology::TddConfig;

    /// Independent transcription: the (m0, m1) table 6.11.2.1-1 is a sequence of diagonals
    /// m1 − m0 = 1, 2, …, 7 with m0 = 0, 1, … along each; the first diagonal has 30 entries
    /// and each next one one fewer, the last (m1 − m0 = 7) is cut after 3 entries.
    fn table_m0_m1() -> Vec<(usize, usize)> {
        let mut t = Vec::new();
        let mut d = 1;
        while t.len() < 168 {
            for m0 in 0..(31 - d) {
                if t.len() == 168 {
                    break;
                }
                t.push((m0, m0 + d));
            }
            d += 1;
        }
        t
    }

    #[test]
    fn m0_m1_match_table() {
        let t = table_m0_m1();
        for (n1, &pair) in t.iter().enumerate() {
            assert_eq!(sss_m0_m1(n1 as u16).unwrap(), pair, "N_ID1 {n1}");
        }
        // A few rows as printed in the standard.
        assert_eq!(sss_m0_m1(0).unwrap(), (0, 1));
        assert_eq!(sss_m0_m1(30).unwrap(), (0, 2));
        assert_eq!(sss_m0_m1(59).unwrap(), (0, 3));
        assert_eq!(sss_m0_m1(167).unwrap(), (2, 9));
        assert!(sss_m0_m1(168).is_err());
    }

    /// Direct floating-point transcription of the PSS formula.
    #[test]
    fn pss_matches_formula() {
        for (n2, u) in [(0u8, 25.0f64), (1, 29.0), (2, 34.0)] {
            let d = pss(n2).unwrap();
            for n in 0..62 {
                let nf = n as f64;
                let ph = if n <= 30 {
                    -std::f64::consts::PI * u * nf * (nf + 1.0) / 63.0
                } else {
                    -std::f64::consts::PI * u * (nf + 1.0) * (nf + 2.0) / 63.0
                };
                assert!((d[n].re as f64 - ph.cos()).abs() < 1e-5);
                assert!((d[n].im as f64 - ph.sin()).abs() < 1e-5);
                assert!((d[n].norm() - 1.0).abs() < 1e-5, "constant amplitude");
            }
        }
        assert!(pss(3).is_err());
    }

    #[test]
    fn pss_roots_have_low_cross_correlation() {
        let p: Vec<_> = (0..3).map(|i| pss(i).unwrap()).collect();
        for a in 0..3 {
            for b in 0..3 {
                let c: Complex32 = p[a].iter().zip(p[b].iter()).map(|(x, y)| x * y.conj()).sum();
                if a == b {
                    assert!((c.norm() - 62.0).abs() < 1e-3);
                } else {
                    // Not the ideal √63 of coprime roots: 34 − 25 = 9 shares a factor with 63.
                    assert!(c.norm() < 62.0 * 0.4, "roots {a},{b}: {}", c.norm());
                }
            }
        }
    }

    /// Independent transcription of the SSS with the recursions written out literally.
    fn sss_reference(n1: u16, n2: u8, sf5: bool) -> Vec<f32> {
        let (m0, m1) = table_m0_m1()[n1 as usize];
        let lfsr = |f: &dyn Fn(&[i32], usize) -> i32| {
            let mut x = vec![0i32, 0, 0, 0, 1];
            for i in 0..26 {
                let v = f(&x, i);
                x.push(v);
            }
            x.iter().map(|b| 1 - 2 * b).collect::<Vec<i32>>()
        };
        let st = lfsr(&|x, i| (x[i + 2] + x[i]) % 2);
        let ct = lfsr(&|x, i| (x[i + 3] + x[i]) % 2);
        let zt = lfsr(&|x, i| (x[i + 4] + x[i + 2] + x[i + 1] + x[i]) % 2);
        let n2 = n2 as usize;
        let mut d = vec![0f32; 62];
        for n in 0..31 {
            let s0 = st[(n + m0) % 31];
            let s1 = st[(n + m1) % 31];
            let c0 = ct[(n + n2) % 31];
            let c1 = ct[(n + n2 + 3) % 31];
            let z1m0 = zt[(n + (m0 % 8)) % 31];
            let z1m1 = zt[(n + (m1 % 8)) % 31];
            if !sf5 {
                d[2 * n] = (s0 * c0) as f32;
                d[2 * n + 1] = (s1 * c1 * z1m0) as f32;
            } else {
                d[2 * n] = (s1 * c0) as f32;
                d[2 * n + 1] = (s0 * c1 * z1m1) as f32;
            }
        }
        d
    }

    #[test]
    fn sss_matches_formula_for_all_ids() {
        for n1 in 0..168u16 {
            for n2 in 0..3u8 {
                for (which, sf5) in [(SssSubframe::Sf0, false), (SssSubframe::Sf5, true)] {
                    let d = sss(n1, n2, which).unwrap();
                    assert_eq!(d.to_vec(), sss_reference(n1, n2, sf5));
                    assert!(d.iter().all(|v| *v == 1.0 || *v == -1.0));
                }
            }
        }
        assert!(sss(168, 0, SssSubframe::Sf0).is_err());
        assert!(sss(0, 3, SssSubframe::Sf0).is_err());
    }

    #[test]
    fn sss_distinguishes_groups_and_subframes() {
        let n2 = 1;
        let a = sss(10, n2, SssSubframe::Sf0).unwrap();
        let dot = |x: &[f32; 62], y: &[f32; 62]| -> f32 { x.iter().zip(y).map(|(a, b)| a * b).sum() };
        assert_eq!(dot(&a, &a), 62.0);
        let mut worst = 0f32;
        for n1 in 0..168 {
            for w in [SssSubframe::Sf0, SssSubframe::Sf5] {
                if n1 == 10 && w == SssSubframe::Sf0 {
                    continue;
                }
                worst = worst.max(dot(&a, &sss(n1, n2, w).unwrap()).abs());
            }
        }
        assert!(worst <= 31.0, "worst cross-correlation {worst}");
    }

    #[test]
    fn placement_fdd_and_tdd() {
        let f = placement(Duplex::Fdd, CyclicPrefix::Normal, 5);
        assert_eq!(f.pss_symbol, Some(6));
        assert_eq!(f.sss_symbol, Some((5, SssSubframe::Sf5)));
        assert_eq!(placement(Duplex::Fdd, CyclicPrefix::Extended, 0).pss_symbol, Some(5));
        assert_eq!(placement(Duplex::Fdd, CyclicPrefix::Normal, 1), SyncPlacement::default());
        let tdd = Duplex::Tdd(TddConfig::new(1).unwrap());
        assert_eq!(placement(tdd, CyclicPrefix::Normal, 0).sss_symbol, Some((13, SssSubframe::Sf0)));
        assert_eq!(placement(tdd, CyclicPrefix::Extended, 5).sss_symbol, Some((11, SssSubframe::Sf5)));
        assert_eq!(placement(tdd, CyclicPrefix::Normal, 6).pss_symbol, Some(2));
        assert_eq!(placement(tdd, CyclicPrefix::Normal, 6).sss_symbol, None);
        assert_eq!(sync_subcarrier(0, 72), 5);
        assert_eq!(sync_subcarrier(61, 72), 66);
    }
}

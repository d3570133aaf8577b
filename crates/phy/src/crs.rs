//! Cell-specific reference signals of antenna ports 0 and 1 (TS 36.211 §6.10.1): QPSK values
//! from the Gold sequence with c_init = 2^10·(7(n_s+1)+l+1)(2N_ID+1) + 2N_ID + N_CP, every 6th
//! subcarrier shifted by v_shift = N_ID mod 6, in symbols 0 and N_symb−3 of each slot. Port 1
//! uses the same values on the subcarriers 3 away from port 0's (v = 3 in symbol 0, 0 in
//! symbol N_symb−3), so the two ports' CRS never share an RE.

use crate::gold::pseudo_random;
use crate::numerology::{Bandwidth, CellId, CyclicPrefix, MAX_RB};
use num_complex::Complex32;

/// Subframe symbol indices carrying port-0 CRS: l = 0 and N_symb − 3 of both slots.
pub fn crs_symbols(cp: CyclicPrefix) -> [usize; 4] {
    let n = cp.symbols_per_slot();
    [0, n - 3, n, 2 * n - 3]
}

/// An antenna port with cell-specific reference signals (ports 2 and 3 are not implemented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrsPort {
    /// Antenna port 0.
    Port0,
    /// Antenna port 1.
    Port1,
}

impl CrsPort {
    /// Ports 0 and 1 in order.
    pub const ALL: [CrsPort; 2] = [CrsPort::Port0, CrsPort::Port1];
}

/// The CRS of one antenna port (0 unless made by [`CellReference::for_port`]),
/// precomputed for all ten subframes of a cell.
#[derive(Debug, Clone)]
pub struct CellReference {
    n_sc: usize,
    cp: CyclicPrefix,
    v_shift: usize,
    /// 0 for port 0, 3 for port 1: added to v (§6.10.1.2).
    port_v: usize,
    /// [subframe][crs symbol 0..4][m 0..2N_RB]
    values: Vec<Vec<Vec<Complex32>>>,
}

impl CellReference {
    /// Generates the port-0 CRS of a cell for every subframe of a frame.
    pub fn new(bw: Bandwidth, cp: CyclicPrefix, cell: CellId) -> Self {
        Self::for_port(bw, cp, cell, CrsPort::Port0)
    }

    /// The CRS of antenna port 0 or 1. The values do not depend on the port, only the
    /// subcarriers do.
    pub fn for_port(bw: Bandwidth, cp: CyclicPrefix, cell: CellId, port: CrsPort) -> Self {
        let n_rb = bw.rb_count();
        let nid = u32::from(cell.pci());
        let n_cp = match cp {
            CyclicPrefix::Normal => 1,
            CyclicPrefix::Extended => 0,
        };
        let n_slot = cp.symbols_per_slot();
        let mut c = vec![0u8; 4 * MAX_RB];
        let values = (0..10)
            .map(|sf| {
                crs_symbols(cp)
                    .iter()
                    .map(|&l_sf| {
                        let ns = (2 * sf + l_sf / n_slot) as u32;
                        let l = (l_sf % n_slot) as u32;
                        let c_init =
                            (1 << 10) * (7 * (ns + 1) + l + 1) * (2 * nid + 1) + 2 * nid + n_cp;
                        pseudo_random(c_init, &mut c);
                        let r = std::f32::consts::FRAC_1_SQRT_2;
                        // m' = m + N_RB^max − N_RB: the carrier takes the middle of the sequence.
                        (0..2 * n_rb)
                            .map(|m| {
                                let mp = m + MAX_RB - n_rb;
                                Complex32::new(
                                    r * (1.0 - 2.0 * f32::from(c[2 * mp])),
                                    r * (1.0 - 2.0 * f32::from(c[2 * mp + 1])),
                                )
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        CellReference {
            n_sc: bw.subcarriers(),
            cp,
            v_shift: usize::from(cell.pci()) % 6,
            port_v: match port {
                CrsPort::Port0 => 0,
                CrsPort::Port1 => 3,
            },
            values,
        }
    }

    /// Subcarrier of CRS number m (0..2N_RB) in CRS symbol `i` (0..4) of the subframe:
    /// k = 6m + (v + v_shift) mod 6 with, for port 0, v = 0 in symbol 0 of a slot and 3
    /// otherwise (port 1: the other way round).
    pub fn subcarrier(&self, i: usize, m: usize) -> usize {
        let v = if i % 2 == 0 { 0 } else { 3 };
        6 * m + (v + self.port_v + self.v_shift) % 6
    }

    /// Whether (symbol `l`, subcarrier `k`) of a subframe carries a CRS.
    pub fn is_crs(&self, l: usize, k: usize) -> bool {
        match crs_symbols(self.cp).iter().position(|&s| s == l) {
            Some(i) => k % 6 == self.subcarrier(i, 0),
            None => false,
        }
    }

    /// CRS values of CRS symbol `i` (0..4) of subframe `sf`, m = 0..2N_RB.
    pub fn values(&self, sf: usize, i: usize) -> &[Complex32] {
        &self.values[sf % 10][i % 4]
    }

    /// Number of CRS per CRS symbol (2·N_RB).
    pub fn per_symbol(&self) -> usize {
        self.n_sc / 6
    }

    /// Writes the CRS of subframe `sf` into a grid (`symbols × n_sc`), up to `n_symbols`.
    pub fn insert(&self, sf: usize, grid: &mut [Complex32], n_symbols: usize) {
        for (i, &l) in crs_symbols(self.cp).iter().enumerate() {
            if l >= n_symbols {
                continue;
            }
            for (m, &v) in self.values(sf, i).iter().enumerate() {
                if let Some(g) = grid.get_mut(l * self.n_sc + self.subcarrier(i, m)) {
                    *g = v;
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // tests compare index-parallel tables
mod tests {
    use super::*;
    use crate::gold::pseudo_random_vec;

    #[test]
    fn matches_the_formula() {
        let cell = CellId::new(301).unwrap();
        let bw = Bandwidth::Mhz5;
        let r = CellReference::new(bw, CyclicPrefix::Normal, cell);
        // Subframe 3, second slot (n_s = 7), l = 4: direct transcription.
        let c_init = 1024 * (7 * 8 + 4 + 1) * (2 * 301 + 1) + 2 * 301 + 1;
        let c = pseudo_random_vec(c_init, 440);
        let vals = r.values(3, 3);
        for m in 0..50 {
            let mp = m + 110 - 25;
            let want = Complex32::new(
                (1.0 - 2.0 * c[2 * mp] as f32) / 2f32.sqrt(),
                (1.0 - 2.0 * c[2 * mp + 1] as f32) / 2f32.sqrt(),
            );
            assert!((vals[m] - want).norm() < 1e-6);
        }
        // v_shift = 301 mod 6 = 1; l = 4 has v = 3: k = 6m + 4.
        assert_eq!(r.subcarrier(3, 2), 16);
        assert_eq!(r.subcarrier(0, 2), 13);
        assert!(r.is_crs(0, 1) && r.is_crs(4, 4) && r.is_crs(7, 7) && r.is_crs(11, 10));
        assert!(!r.is_crs(1, 1) && !r.is_crs(0, 4));
        assert_eq!(crs_symbols(CyclicPrefix::Extended), [0, 3, 6, 9]);
    }

    #[test]
    fn extended_cp_uses_n_cp_zero() {
        let cell = CellId::new(7).unwrap();
        let a = CellReference::new(Bandwidth::Mhz1_4, CyclicPrefix::Extended, cell);
        // n_s = 0, l = 0, N_ID = 7, N_CP = 0: 2^10·(7·1 + 0 + 1)·15 + 14.
        let c_init = 1024 * 8 * 15 + 14;
        let c = pseudo_random_vec(c_init, 440);
        let mp = 110 - 6;
        assert_eq!(a.values(0, 0)[0].re > 0.0, c[2 * mp] == 0);
        assert_eq!(a.values(0, 0)[0].im > 0.0, c[2 * mp + 1] == 0);
    }

    #[test]
    fn port_one_sits_three_subcarriers_away() {
        let cell = CellId::new(301).unwrap(); // v_shift 1
        let bw = Bandwidth::Mhz1_4;
        let p0 = CellReference::new(bw, CyclicPrefix::Normal, cell);
        let p1 = CellReference::for_port(bw, CyclicPrefix::Normal, cell, CrsPort::Port1);
        // Port 1: v = 3 in symbol 0 of a slot, 0 in symbol 4 (36.211 §6.10.1.2).
        assert_eq!(p1.subcarrier(0, 2), 16);
        assert_eq!(p1.subcarrier(1, 2), 13);
        assert_eq!(p1.subcarrier(2, 0), 4);
        for i in 0..4 {
            assert_eq!(
                p0.values(3, i),
                p1.values(3, i),
                "same sequence on both ports"
            );
        }
        for &l in &crs_symbols(CyclicPrefix::Normal) {
            for k in 0..72 {
                assert!(
                    !(p0.is_crs(l, k) && p1.is_crs(l, k)),
                    "shared RE ({l}, {k})"
                );
            }
            let both = (0..72)
                .filter(|&k| p0.is_crs(l, k) || p1.is_crs(l, k))
                .count();
            assert_eq!(both, 24);
        }
    }
}

//! What a cell costs in CPU: the measured PHY figures of one subframe per bandwidth and
//! modulation (docs/BENCHMARKS.md), scaled by how many PRBs the cell uses.
//!
//! A base station in a pool decodes its uplink and encodes its downlink every subframe, so a
//! cell's CPU per 1 ms subframe is its OFDM front end (always paid: FFT and channel estimation
//! run whether or not PRBs carry data) plus, in proportion to the PRB use, the rest of the
//! full-band decode and the full-band encode. CPU µs per 1 ms subframe / 1000 = cores.

use serde::{Deserialize, Serialize};

/// LTE channel bandwidths (36.101 table 5.6-1), as the PHY benches measure them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Bandwidth {
    Mhz1_4,
    Mhz3,
    Mhz5,
    Mhz10,
    Mhz15,
    Mhz20,
}

/// The modulation of the cell's transport blocks at code rate ≤ 0.5 (the benches' operating
/// point): the MCS class that sets the decode cost per PRB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Modulation {
    Qpsk,
    Qam16,
    Qam64,
}

impl Bandwidth {
    pub const ALL: [Bandwidth; 6] = [
        Bandwidth::Mhz1_4,
        Bandwidth::Mhz3,
        Bandwidth::Mhz5,
        Bandwidth::Mhz10,
        Bandwidth::Mhz15,
        Bandwidth::Mhz20,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// "1.4", "3", "5", "10", "15" or "20": what [`Bandwidth::from_mhz`] parses.
    pub fn mhz_text(self) -> &'static str {
        ["1.4", "3", "5", "10", "15", "20"][self.index()]
    }

    /// Parses "1.4", "3", "5", "10", "15", "20" (MHz).
    pub fn from_mhz(text: &str) -> Option<Bandwidth> {
        match text.trim() {
            "1.4" => Some(Bandwidth::Mhz1_4),
            "3" => Some(Bandwidth::Mhz3),
            "5" => Some(Bandwidth::Mhz5),
            "10" => Some(Bandwidth::Mhz10),
            "15" => Some(Bandwidth::Mhz15),
            "20" => Some(Bandwidth::Mhz20),
            _ => None,
        }
    }
}

impl Modulation {
    pub const ALL: [Modulation; 3] = [Modulation::Qpsk, Modulation::Qam16, Modulation::Qam64];

    fn index(self) -> usize {
        self as usize
    }

    /// "qpsk", "16qam" or "64qam".
    pub fn text(self) -> &'static str {
        ["qpsk", "16qam", "64qam"][self.index()]
    }
}

/// Decode of one full-band subframe at the operating SNR, CPU µs (docs/BENCHMARKS.md,
/// "Decode of one subframe", columns QPSK / 16QAM / 64QAM).
const DECODE_US: [[f64; 3]; 6] = [
    [18.0, 42.0, 57.0],
    [59.0, 99.0, 168.0],
    [99.0, 181.0, 260.0],
    [197.0, 352.0, 562.0],
    [296.0, 516.0, 818.0],
    [376.0, 752.0, 1152.0],
];

/// Encode of one full-band subframe, CPU µs (docs/BENCHMARKS.md, "Encode of one subframe").
const ENCODE_US: [[f64; 3]; 6] = [
    [6.0, 9.0, 13.0],
    [15.0, 24.0, 35.0],
    [26.0, 43.0, 59.0],
    [55.0, 85.0, 118.0],
    [84.0, 133.0, 180.0],
    [110.0, 172.0, 238.0],
];

/// OFDM demodulation + channel estimation per subframe, CPU µs: measured 4 / 20 / 100 µs at
/// 1.4 / 5 / 20 MHz (docs/BENCHMARKS.md, "Cross-check without criterion"); 3, 10 and 15 MHz
/// are interpolated at ≈ 1 µs per PRB (15, 50, 75 PRBs), not measured.
const FRONT_END_US: [f64; 6] = [4.0, 12.0, 20.0, 50.0, 75.0, 100.0];

/// CPU µs per 1 ms subframe of a cell at `prb_use` (0..=1, clamped) of its PRBs.
pub fn cell_cpu_us(bandwidth: Bandwidth, modulation: Modulation, prb_use: f64) -> f64 {
    let use_ = if prb_use.is_finite() {
        prb_use.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (b, m) = (bandwidth.index(), modulation.index());
    let front = FRONT_END_US[b];
    let per_prb_part = (DECODE_US[b][m] - front) + ENCODE_US[b][m];
    front + use_ * per_prb_part
}

/// The same in cores (a 1 ms subframe every 1 ms: 1000 µs = one core).
pub fn cell_cores(bandwidth: Bandwidth, modulation: Modulation, prb_use: f64) -> f64 {
    cell_cpu_us(bandwidth, modulation, prb_use) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_band_is_decode_plus_encode_and_idle_is_the_front_end() {
        // 20 MHz 64QAM: 1152 decode + 238 encode: more than one core (BENCHMARKS.md says so).
        let full = cell_cpu_us(Bandwidth::Mhz20, Modulation::Qam64, 1.0);
        assert!((full - 1390.0).abs() < 1e-9);
        assert!((cell_cpu_us(Bandwidth::Mhz5, Modulation::Qpsk, 0.0) - 20.0).abs() < 1e-9);
        assert!(cell_cores(Bandwidth::Mhz1_4, Modulation::Qpsk, 1.0) < 0.03);
    }

    #[test]
    fn cost_grows_with_use_bandwidth_and_modulation() {
        for bw in Bandwidth::ALL {
            for m in Modulation::ALL {
                assert!(cell_cpu_us(bw, m, 0.5) < cell_cpu_us(bw, m, 0.9));
            }
            assert!(
                cell_cpu_us(bw, Modulation::Qpsk, 1.0) < cell_cpu_us(bw, Modulation::Qam64, 1.0)
            );
        }
        for pair in Bandwidth::ALL.windows(2) {
            assert!(
                cell_cpu_us(pair[0], Modulation::Qam16, 1.0)
                    < cell_cpu_us(pair[1], Modulation::Qam16, 1.0)
            );
        }
        // Bad input never yields NaN.
        assert_eq!(
            cell_cpu_us(Bandwidth::Mhz3, Modulation::Qpsk, f64::NAN),
            cell_cpu_us(Bandwidth::Mhz3, Modulation::Qpsk, 0.0)
        );
    }
}

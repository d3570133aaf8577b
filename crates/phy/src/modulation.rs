//! QPSK / 16QAM / 64QAM mapping per TS 36.211 §7.1 and soft (LLR) demapping.
//!
//! Conventions used across the PHY:
//! - bits are `u8` values 0 or 1, first bit first (b(i), b(i+1), … of §7.1);
//! - constellations have unit average power (the 1/√2, 1/√10, 1/√42 factors of §7.1);
//! - an LLR is `ln P(b=0) / P(b=1)`: positive means "bit 0 more likely".

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
}

/// Maps `bits` (length a multiple of Q_m) to symbols, appending to `out`.
pub fn map(_bits: &[u8], _m: Modulation, _out: &mut Vec<Complex32>) -> Result<()> {
    todo!("PHY-FEC helper")
}

/// Max-log soft demapping: for each symbol `y` with noise variance `noise_var[i]`
/// (per-symbol, after equalisation), appends Q_m LLRs to `out`.
pub fn demap_soft(
    _symbols: &[Complex32],
    _noise_var: &[f32],
    _m: Modulation,
    _out: &mut Vec<f32>,
) -> Result<()> {
    todo!("PHY-FEC helper")
}

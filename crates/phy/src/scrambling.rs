//! Bit-level scrambling of TS 36.211 §6.3.1 with the Gold sequence c(n) of §7.2, and the
//! matching LLR descrambling (sign flips) for the receiver.
//!
//! The sequence comes 28 bits at a time from [`crate::gold::Gold`] (no allocation).

use crate::gold::{Gold, W};
use crate::{PhyError, Result};

/// c_init of PDSCH (and PUSCH) scrambling, §6.3.1:
/// n_RNTI·2^14 + q·2^13 + ⌊n_s/2⌋·2^9 + N_ID_cell.
pub fn pdsch_c_init(rnti: u16, q: u8, slot: u8, cell_id: u16) -> Result<u32> {
    if q > 1 {
        return Err(PhyError::invalid("codeword q", q, "0 or 1"));
    }
    if slot > 19 {
        return Err(PhyError::invalid("slot n_s", slot, "0..=19"));
    }
    if cell_id > 503 {
        return Err(PhyError::invalid("phy_cell_ID", cell_id, "0..=503"));
    }
    Ok((u32::from(rnti) << 14)
        + (u32::from(q) << 13)
        + (u32::from(slot / 2) << 9)
        + u32::from(cell_id))
}

/// XORs `bits` (0/1 values) with c(0..len), in place.
pub fn scramble_bits(bits: &mut [u8], c_init: u32) {
    let mut g = Gold::new(c_init);
    for chunk in bits.chunks_mut(W) {
        let c = g.advance(chunk.len());
        for (i, b) in chunk.iter_mut().enumerate() {
            *b ^= (c >> i & 1) as u8;
        }
    }
}

/// Undoes [`scramble_bits`] on soft bits: flips the sign of LLR i where c(i) = 1.
pub fn descramble_llrs(llrs: &mut [f32], c_init: u32) {
    let mut g = Gold::new(c_init);
    for chunk in llrs.chunks_mut(W) {
        let c = g.advance(chunk.len());
        for (i, l) in chunk.iter_mut().enumerate() {
            *l = f32::from_bits(l.to_bits() ^ ((c >> i & 1) << 31));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gold::pseudo_random_vec;

    #[test]
    fn same_sequence_as_gold_module() {
        for c_init in [0u32, 1, 0x7fff_ffff, 0x1234_5678, 503 + (61 << 14)] {
            for len in [0usize, 1, 27, 28, 29, 100, 1000] {
                let c = pseudo_random_vec(c_init, len);
                let mut bits = vec![0u8; len];
                scramble_bits(&mut bits, c_init);
                assert_eq!(bits, c, "c_init {c_init} len {len}");
            }
        }
    }

    #[test]
    fn descrambling_llrs_matches_bits_and_round_trips() {
        let c_init = pdsch_c_init(0x1234, 0, 7, 301).unwrap();
        let bits: Vec<u8> = (0..500).map(|i| ((i * 7 + i / 3) % 2) as u8).collect();
        let mut tx = bits.clone();
        scramble_bits(&mut tx, c_init);
        assert_ne!(tx, bits);
        // Noiseless LLRs of the scrambled bits, descrambled, give the original bits.
        let mut llr: Vec<f32> = tx
            .iter()
            .map(|&b| if b == 0 { 2.5 } else { -2.5 })
            .collect();
        descramble_llrs(&mut llr, c_init);
        let back: Vec<u8> = llr.iter().map(|&l| u8::from(l < 0.0)).collect();
        assert_eq!(back, bits);
        scramble_bits(&mut tx, c_init);
        assert_eq!(tx, bits);
    }

    #[test]
    fn c_init_formula_and_ranges() {
        assert_eq!(
            pdsch_c_init(1, 1, 3, 5).unwrap(),
            (1 << 14) + (1 << 13) + (1 << 9) + 5
        );
        assert_eq!(
            pdsch_c_init(0xFFFF, 0, 19, 503).unwrap(),
            (0xFFFF << 14) + (9 << 9) + 503
        );
        assert!(pdsch_c_init(1, 2, 0, 0).is_err());
        assert!(pdsch_c_init(1, 0, 20, 0).is_err());
        assert!(pdsch_c_init(1, 0, 0, 504).is_err());
    }
}

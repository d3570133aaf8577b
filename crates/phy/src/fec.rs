//! Transport-block channel coding per TS 36.212 §5.1.1–5.1.4: CRC24A, code-block
//! segmentation (CRC24B), turbo coding, rate matching to exactly `g` bits, concatenation,
//! and the reverse with soft input.

use crate::Result;

/// Outcome of decoding one transport block.
#[derive(Debug, Clone, PartialEq)]
pub struct TbDecode {
    /// The transport block's bytes when CRC24A passed, `None` on CRC failure.
    pub payload: Option<Vec<u8>>,
    /// Number of code blocks.
    pub code_blocks: usize,
    /// Code blocks whose CRC24B (or, for one block, CRC24A) failed.
    pub failed_code_blocks: usize,
    /// Turbo iterations actually run, summed over code blocks (early stop on CRC).
    pub iterations: usize,
}

/// Encodes `tb` (a transport block of bytes) into exactly `g` coded bits (values 0/1) for
/// modulation order `qm`. `g` must be a multiple of `qm`. `rv` is the redundancy version 0..=3.
pub fn encode_transport_block(_tb: &[u8], _g: usize, _qm: usize, _rv: u8) -> Result<Vec<u8>> {
    todo!("PHY-FEC helper")
}

/// Decodes `llr` (exactly the `g` soft bits of [`encode_transport_block`], positive = 0)
/// back into a transport block of `tb_bytes` bytes.
pub fn decode_transport_block(
    _llr: &[f32],
    _tb_bytes: usize,
    _qm: usize,
    _rv: u8,
    _max_iterations: usize,
) -> Result<TbDecode> {
    todo!("PHY-FEC helper")
}

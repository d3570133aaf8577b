//! Transport-block coding round trips without noise: every modulation order, every
//! redundancy version, and transport-block sizes that need 1, 2, 3 and more code blocks.

use ferry_phy::crc::CRC24A;
use ferry_phy::fec::{
    decode_transport_block, encode_transport_block, max_tb_bytes, Segmentation, TbCodec,
};

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(73).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn llrs(bits: &[u8]) -> Vec<f32> {
    bits.iter()
        .map(|&b| if b == 0 { 3.0 } else { -3.0 })
        .collect()
}

#[test]
fn sizes_needing_one_to_four_code_blocks() {
    let mut codec = TbCodec::new();
    // (tb bytes, expected code blocks); g chosen for a code rate near 0.6.
    for &(n, c) in &[
        (1usize, 1usize),
        (2, 1),
        (40, 1),
        (765, 1), // B = 6144 exactly
        (766, 2), // B = 6152 → two blocks
        (1200, 2),
        (1600, 3),
        (2300, 4),
    ] {
        let seg = Segmentation::new(8 * n + 24).unwrap();
        assert_eq!(seg.c, c, "n={n}");
        let qm = 4;
        let g = ((seg.b_prime() as f64 / 0.6) as usize).div_ceil(qm) * qm;
        let tb = payload(n, n as u8);
        let coded = codec.encode(&tb, g, qm, 0).unwrap();
        assert_eq!(coded.len(), g);
        assert!(coded.iter().all(|&b| b <= 1));
        let out = codec.decode(&llrs(&coded), n, qm, 0, 8).unwrap();
        assert_eq!(out.code_blocks, c);
        assert_eq!(out.failed_code_blocks, 0);
        assert_eq!(out.payload.as_deref(), Some(&tb[..]), "n={n}");
        // Clean input: every code block passes its CRC after the first half-iteration.
        assert_eq!(out.iterations, c, "n={n}");
    }
}

#[test]
fn every_rv_and_modulation_order_round_trips() {
    let mut codec = TbCodec::new();
    for qm in [2usize, 4, 6] {
        for rv in 0..4u8 {
            for &(n, g) in &[(20usize, 600usize), (300, 4_800), (1_000, 14_400)] {
                let tb = payload(n, rv);
                let coded = codec.encode(&tb, g, qm, rv).unwrap();
                assert_eq!(coded.len(), g);
                let out = codec.decode(&llrs(&coded), n, qm, rv, 8).unwrap();
                assert_eq!(
                    out.payload.as_deref(),
                    Some(&tb[..]),
                    "qm={qm} rv={rv} n={n}"
                );
                // The free functions agree with the codec.
                assert_eq!(encode_transport_block(&tb, g, qm, rv).unwrap(), coded);
            }
        }
    }
}

#[test]
fn different_rvs_send_different_bits_and_wrong_rv_fails() {
    let tb = payload(300, 9);
    let g = 4_800;
    let a = encode_transport_block(&tb, g, 2, 0).unwrap();
    let b = encode_transport_block(&tb, g, 2, 2).unwrap();
    assert_ne!(a, b);
    // Decoding rv 2 bits as rv 0 puts every LLR in the wrong place: CRC must fail.
    let out = decode_transport_block(&llrs(&b), 300, 2, 0, 4).unwrap();
    assert_eq!(out.payload, None);
    assert_eq!(out.failed_code_blocks, 1);
    assert_eq!(out.iterations, 4);
}

#[test]
fn all_zero_block_decodes_but_silence_and_garbage_do_not() {
    let g = 2_000;
    // The all-zero TB is a valid codeword of all zeros (its CRC24A is zero too).
    assert_eq!(CRC24A.bytes(&[0u8; 100]), 0);
    let zeros = vec![5.0f32; g];
    let ok = decode_transport_block(&zeros, 100, 2, 0, 2).unwrap();
    assert_eq!(ok.payload, Some(vec![0u8; 100]));
    // Erased input (all LLRs 0, e.g. no signal) must not pass for that block.
    let erased = vec![0.0f32; g];
    let bad = decode_transport_block(&erased, 100, 2, 0, 2).unwrap();
    assert_eq!(bad.payload, None);
    assert_eq!(bad.failed_code_blocks, 1);
    let mut mixed = zeros.clone();
    for l in mixed.iter_mut().step_by(3) {
        *l = -5.0;
    }
    let bad = decode_transport_block(&mixed, 100, 2, 0, 3).unwrap();
    assert_eq!(bad.payload, None);
    assert_eq!(bad.iterations, 3);
}

#[test]
fn the_largest_block_at_max_rate_round_trips() {
    // A 5 MHz 64QAM stand-in allocation: 25 PRB × 12 subcarriers × ~10 data symbols × 6.
    let g = 25 * 12 * 10 * 6;
    let n = max_tb_bytes(g, 0.93);
    let tb = payload(n, 1);
    let coded = encode_transport_block(&tb, g, 6, 0).unwrap();
    let out = decode_transport_block(&llrs(&coded), n, 6, 0, 8).unwrap();
    assert_eq!(out.payload.as_deref(), Some(&tb[..]));
    assert!(out.code_blocks >= 3);
}

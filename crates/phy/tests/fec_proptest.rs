//! Robustness: decoding arbitrary soft input (NaN, ±inf, huge, tiny) with arbitrary sizes
//! and parameters returns a value or a typed error, never a panic.

use ferry_phy::fec::{decode_transport_block, encode_transport_block, TbCodec};
use ferry_phy::modulation::{demap_soft, Modulation};
use ferry_phy::ratematch::RateMatchPattern;
use ferry_phy::turbo::TurboDecoder;
use ferry_phy::turbo_fixed::{FixedTurboDecoder, Isa};
use num_complex::Complex32;
use proptest::prelude::*;

fn any_llr() -> impl Strategy<Value = f32> {
    prop_oneof![
        -50.0f32..50.0,
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(f32::MAX),
        Just(-f32::MAX),
        Just(1e-40f32),
        any::<f32>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn tb_decode_never_panics(
        llr in prop::collection::vec(any_llr(), 0..3000),
        tb_bytes in 0usize..400,
        qm in 0usize..8,
        rv in 0u8..6,
        max_it in 0usize..40,
    ) {
        if let Ok(out) = decode_transport_block(&llr, tb_bytes, qm, rv, max_it) {
            prop_assert!(out.code_blocks >= 1);
            prop_assert!(out.failed_code_blocks <= out.code_blocks);
            if let Some(p) = out.payload {
                prop_assert_eq!(p.len(), tb_bytes);
            }
        }
    }

    #[test]
    fn codec_survives_mixed_good_and_garbage_input(
        tb in prop::collection::vec(any::<u8>(), 1..200),
        qm_idx in 0usize..3,
        rv in 0u8..4,
        junk in prop::collection::vec((0usize..10_000, any_llr()), 0..50),
    ) {
        let qm = [2usize, 4, 6][qm_idx];
        let g = (8 * tb.len() + 200).div_ceil(qm) * qm * 2;
        let mut codec = TbCodec::new();
        let bits = codec.encode(&tb, g, qm, rv).unwrap();
        prop_assert_eq!(bits.len(), g);
        let mut llr: Vec<f32> = bits.iter().map(|&b| if b == 0 { 2.0 } else { -2.0 }).collect();
        for (i, v) in junk {
            let n = llr.len();
            llr[i % n] = v;
        }
        let out = codec.decode(&llr, tb.len(), qm, rv, 6).unwrap();
        if let Some(p) = out.payload {
            // A few corrupted LLRs among clean ones: if it decodes, it decodes right.
            prop_assert_eq!(p, tb.clone());
        }
        prop_assert_eq!(encode_transport_block(&tb, g, qm, rv).unwrap(), bits);
    }

    #[test]
    fn turbo_decoder_never_panics(
        d in prop::collection::vec(any_llr(), 0..700),
        k in 0usize..200,
        filler in 0usize..64,
        max_it in 0usize..6,
    ) {
        let mut dec = TurboDecoder::new();
        let _ = dec.decode(&d, k, filler, max_it, &mut |_: &[u8]| false);
        // The exact length for an allowed K, so the decoding path itself runs.
        let k = 40 + 8 * (k % 20);
        let mut d2 = d.clone();
        d2.resize(3 * (k + 4), f32::NAN);
        if let Ok(s) = dec.decode(&d2, k, filler.min(k - 1), max_it.max(1), &mut |_: &[u8]| false) {
            prop_assert_eq!(s.half_iterations, 2 * max_it.max(1));
        }
        // The fixed-point decoder, on every kernel this CPU runs, gives the same decisions.
        let mut outs = Vec::new();
        for isa in Isa::ALL.into_iter().filter(|i| i.available()) {
            let mut fixed = FixedTurboDecoder::with_isa(isa).unwrap();
            let _ = fixed.decode(&d, k, filler, max_it, &mut |_: &[u8]| false);
            if let Ok(s) = fixed.decode(&d2, k, filler.min(k - 1), max_it.max(1), &mut |_: &[u8]| false) {
                prop_assert_eq!(s.half_iterations, 2 * max_it.max(1));
                outs.push(fixed.hard_bits().to_vec());
            }
        }
        prop_assert!(outs.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn demapper_never_panics_and_stays_finite(
        re in prop::collection::vec(any_llr(), 1..40),
        nv in any_llr(),
        m in 0usize..3,
    ) {
        let syms: Vec<Complex32> = re.iter().map(|&x| Complex32::new(x, -x)).collect();
        let mut out = Vec::new();
        demap_soft(&syms, &[nv], Modulation::ALL[m], &mut out).unwrap();
        prop_assert_eq!(out.len(), syms.len() * Modulation::ALL[m].bits_per_symbol());
        prop_assert!(out.iter().all(|l| l.is_finite()));
    }

    #[test]
    fn rate_dematching_never_panics(
        llr in prop::collection::vec(any_llr(), 0..2000),
        kidx in 0usize..10,
        rv in 0u8..6,
        acc_len in 0usize..700,
    ) {
        let k = 40 + 8 * kidx;
        let p = RateMatchPattern::new(k, 0).unwrap();
        let mut acc = vec![0.0f32; acc_len];
        let _ = p.accumulate(&llr, rv, &mut acc);
    }
}

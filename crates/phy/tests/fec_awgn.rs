//! Error-correction performance over seeded AWGN: the turbo code must correct what it
//! should (rate 1/3, K = 6144 near 1 dB Eb/N0) and must fail where nothing can (below the
//! Shannon limit), so these tests can fail. The `#[ignore]`d `measure_*` tests print the
//! curves recorded in docs/PHY-FEC.md.

use ferry_phy::crc::CRC24A;
use ferry_phy::fec::{max_tb_bytes, DecoderKind, TbCodec};
use ferry_phy::modulation::{demap_soft, map, Modulation};
use ferry_phy::scrambling::{descramble_llrs, pdsch_c_init, scramble_bits};
use ferry_phy::turbo::{encode, qpp_interleaver, stream_len, TurboDecoder};
use ferry_phy::turbo_fixed::FixedTurboDecoder;

/// The decoder under test.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dec {
    /// f32, two AVX windows (or plain without AVX).
    FloatWindowed,
    /// f32, one window.
    FloatPlain,
    /// 16-bit fixed point (the default).
    Fixed,
}
use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    // Box–Muller (rand_distr is not a dependency).
    let u1: f32 = rng.random::<f32>().max(1e-12);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// Block errors of `blocks` rate-1/3 K = 6144 code blocks (6120 data bits + CRC24A) sent
/// over BPSK + AWGN at `ebn0_db`, decoded with at most `max_it` iterations and CRC early stop.
/// Returns (block errors, mean iterations).
fn turbo_bpsk(ebn0_db: f32, blocks: usize, max_it: usize, seed: u64, which: Dec) -> (usize, f32) {
    let k = 6144;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pi = Vec::new();
    qpp_interleaver(k, &mut pi).unwrap();
    let rate = k as f32 / (3 * k + 12) as f32;
    let sigma2 = 1.0 / (2.0 * rate * 10f32.powf(ebn0_db / 10.0));
    let sigma = sigma2.sqrt();
    let mut dec = TurboDecoder::new();
    dec.set_windowed(which == Dec::FloatWindowed);
    let mut fixed = FixedTurboDecoder::new();
    let mut d = vec![0u8; 3 * stream_len(k)];
    let (mut errors, mut iterations) = (0, 0);
    for _ in 0..blocks {
        let mut c: Vec<u8> = (0..k - 24).map(|_| rng.random::<u8>() & 1).collect();
        CRC24A.attach_bits(&mut c);
        encode(&c, 0, &pi, &mut d).unwrap();
        let llr: Vec<f32> = d
            .iter()
            .map(|&b| {
                let x = if b == 0 { 1.0 } else { -1.0 };
                2.0 * (x + sigma * gaussian(&mut rng)) / sigma2
            })
            .collect();
        let mut check = |h: &[u8]| CRC24A.check_bits(h);
        let (s, hard) = if which == Dec::Fixed {
            let s = fixed.decode(&llr, k, 0, max_it, &mut check).unwrap();
            (s, fixed.hard_bits())
        } else {
            let s = dec.decode(&llr, k, 0, max_it, &mut check).unwrap();
            (s, dec.hard_bits())
        };
        iterations += s.iterations();
        if hard != &c[..] {
            errors += 1;
        }
    }
    (errors, iterations as f32 / blocks as f32)
}

#[test]
fn rate_third_k6144_corrects_everything_at_1_2_db() {
    // Every decoder: f32 with two AVX windows and plain (used without AVX), fixed point.
    for which in [Dec::FloatWindowed, Dec::FloatPlain, Dec::Fixed] {
        let (errors, mean_it) = turbo_bpsk(1.2, 24, 8, 7, which);
        assert_eq!(errors, 0, "block errors at Eb/N0 = 1.2 dB, {which:?}");
        assert!(mean_it < 5.0, "early stopping must kick in, mean {mean_it}");
    }
}

#[test]
fn rate_third_k6144_fails_below_the_shannon_limit() {
    // The rate-1/3 BPSK Shannon limit is about −0.5 dB: at −1.5 dB nothing decodes.
    for which in [Dec::FloatWindowed, Dec::Fixed] {
        let (errors, mean_it) = turbo_bpsk(-1.5, 6, 4, 8, which);
        assert_eq!(errors, 6, "{which:?}");
        assert_eq!(mean_it, 4.0, "{which:?}");
    }
}

/// Transport block through scrambling, QAM and AWGN (Es/N0 = `snr_db`), back through the
/// max-log demapper, descrambling and the decoder. Returns (TB errors, mean iterations).
fn tb_over_awgn(
    m: Modulation,
    rate: f64,
    snr_db: f32,
    blocks: usize,
    seed: u64,
    decoder: DecoderKind,
) -> (usize, f32) {
    let qm = m.bits_per_symbol();
    // Stand-in for a 5 MHz subframe's data: 25 PRB × 12 subcarriers × 10 symbols.
    let g = 25 * 12 * 10 * qm;
    let n = max_tb_bytes(g, rate);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut codec = TbCodec::new();
    codec.decoder = decoder;
    let c_init = pdsch_c_init(0x3d, 0, 4, 301).unwrap();
    let n0 = 10f32.powf(-snr_db / 10.0);
    let s = (n0 / 2.0).sqrt();
    let (mut errors, mut iterations) = (0, 0);
    let (mut syms, mut llr) = (Vec::new(), Vec::new());
    for _ in 0..blocks {
        let tb: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        let mut bits = codec.encode(&tb, g, qm, 0).unwrap();
        scramble_bits(&mut bits, c_init);
        syms.clear();
        map(&bits, m, &mut syms).unwrap();
        for y in syms.iter_mut() {
            *y += Complex32::new(s * gaussian(&mut rng), s * gaussian(&mut rng));
        }
        llr.clear();
        demap_soft(&syms, &[n0], m, &mut llr).unwrap();
        descramble_llrs(&mut llr, c_init);
        let out = codec.decode(&llr, n, qm, 0, 8).unwrap();
        iterations += out.iterations;
        if out.payload.as_deref() != Some(&tb[..]) {
            errors += 1;
        }
    }
    (errors, iterations as f32 / blocks as f32)
}

#[test]
fn transport_blocks_decode_above_and_fail_below_their_threshold() {
    // Rate-0.5 blocks. `measure_tb_bler` (docs/PHY-FEC.md) found the first error-free
    // points (50 TBs) at 1.5 / 7.0 / 11.0 dB and all-fail up to 0.5 / 5.5 / 10.0 dB; test
    // ~1 dB above the former (must all pass) and ~1.5 dB below the latter (must all fail).
    for (m, good, bad) in [
        (Modulation::Qpsk, 2.5f32, -1.0f32),
        (Modulation::Qam16, 8.0, 4.0),
        (Modulation::Qam64, 12.0, 8.5),
    ] {
        for d in [DecoderKind::Fixed16, DecoderKind::Float] {
            let (e, _) = tb_over_awgn(m, 0.5, good, 6, 11, d);
            assert_eq!(e, 0, "{m:?} at {good} dB, {d:?}");
            let (e, _) = tb_over_awgn(m, 0.5, bad, 3, 12, d);
            assert_eq!(e, 3, "{m:?} at {bad} dB, {d:?}");
        }
    }
}

#[test]
#[ignore = "measurement: prints the curves for docs/PHY-FEC.md"]
fn measure_turbo_bler() {
    println!("K=6144 rate 1/3 BPSK, max 8 iterations, 200 blocks per point (same noise for all)");
    println!("Eb/N0 dB | f32 windowed: errors, mean it | f32 plain | fixed 16-bit");
    for ebn0 in [
        0.0f32, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0,
    ] {
        let seed = 100 + (ebn0 * 10.0) as u64;
        let (e, it) = turbo_bpsk(ebn0, 200, 8, seed, Dec::FloatWindowed);
        let (e2, it2) = turbo_bpsk(ebn0, 200, 8, seed, Dec::FloatPlain);
        let (e3, it3) = turbo_bpsk(ebn0, 200, 8, seed, Dec::Fixed);
        println!("{ebn0:>5.1} | {e:>3}/200 {it:.2} | {e2:>3}/200 {it2:.2} | {e3:>3}/200 {it3:.2}");
    }
}

#[test]
#[ignore = "measurement: prints the curves for docs/PHY-FEC.md"]
fn measure_tb_bler() {
    for rate in [0.5f64, 0.75] {
        for m in Modulation::ALL {
            println!("{m:?} rate {rate}, g = 3000 symbols, 200 TBs per point: f32 | fixed");
            let base = match m {
                Modulation::Qpsk => -2.0f32,
                Modulation::Qam16 => 3.0,
                Modulation::Qam64 => 8.0,
            } + if rate > 0.6 { 3.0 } else { 0.0 };
            for step in 0..24 {
                let snr = base + 0.25 * step as f32;
                let (e, it) = tb_over_awgn(m, rate, snr, 200, 1000 + step, DecoderKind::Float);
                let (e2, it2) = tb_over_awgn(m, rate, snr, 200, 1000 + step, DecoderKind::Fixed16);
                println!(
                    "  Es/N0 {snr:>5.2} dB | TB errors {e:>3}/200 it {it:.2} | {e2:>3}/200 it {it2:.2}"
                );
                if e == 0 && e2 == 0 {
                    break;
                }
            }
        }
    }
}

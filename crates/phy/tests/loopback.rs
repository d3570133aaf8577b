//! Loopback through the simulated channel: encode → AWGN + CFO residual + timing offset
//! inside the CP → decode. BLER thresholds come from the curves measured with
//! `ferry phy bler` (docs/PHY.md), with a margin of about 1 dB; each test also checks that
//! well below the threshold the BLER is high, so it can fail.

use ferry_phy::sim::{bler_point, Impairments};
use ferry_phy::{
    Bandwidth, CellId, CyclicPrefix, Duplex, Modulation, SubframeConfig, SubframeDecoder,
    SubframeEncoder, TddConfig,
};
use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Code rate used for the BLER figures (documented in docs/PHY.md).
const CODE_RATE: f64 = 0.5;

fn cfg5(m: Modulation) -> SubframeConfig {
    SubframeConfig::new(
        Bandwidth::Mhz5,
        CyclicPrefix::Normal,
        Duplex::Fdd,
        CellId::new(77).unwrap(),
        0x3e9,
        m,
    )
}

/// Measured 1 % BLER points (docs/PHY.md): QPSK 1.6 dB, 16QAM 6.8 dB, 64QAM 11.3 dB
/// (300 subframes per point). The tests assert ≤ 1 % about 1 dB above those, and ≥ 75 %
/// two dB below them.
fn check(m: Modulation, ok_snr: f64, bad_snr: f64) {
    let n = 100;
    let p = bler_point(
        cfg5(m),
        ok_snr,
        n,
        CODE_RATE,
        Impairments::typical(Bandwidth::Mhz5),
        1,
    )
    .unwrap();
    eprintln!(
        "{m:?} at {ok_snr} dB: {}/{n} block errors, estimated SNR {:.1} dB",
        p.block_errors, p.est_snr_db
    );
    assert!(
        p.block_errors <= 1,
        "{m:?}: BLER {}/{n} at {ok_snr} dB",
        p.block_errors
    );
    assert!(
        (f64::from(p.est_snr_db) - ok_snr).abs() < 1.0,
        "SNR estimate {} at {ok_snr}",
        p.est_snr_db
    );
    let p = bler_point(
        cfg5(m),
        bad_snr,
        20,
        CODE_RATE,
        Impairments::typical(Bandwidth::Mhz5),
        2,
    )
    .unwrap();
    assert!(
        p.block_errors >= 15,
        "{m:?}: BLER only {}/20 at {bad_snr} dB",
        p.block_errors
    );
}

#[test]
fn qpsk_bler() {
    check(Modulation::Qpsk, 2.75, -0.5);
}

#[test]
fn qam16_bler() {
    check(Modulation::Qam16, 8.0, 4.75);
}

#[test]
fn qam64_bler() {
    check(Modulation::Qam64, 12.5, 9.25);
}

fn run(cfg: SubframeConfig, snr_db: f64, n: usize, seed: u64, cfo: f64, delay: f64) -> usize {
    let imp = Impairments {
        cfo_hz: cfo,
        delay_samples: delay,
    };
    bler_point(cfg, snr_db, n, CODE_RATE, imp, seed)
        .unwrap()
        .block_errors
}

#[test]
fn clean_round_trip_every_bandwidth_cp_and_duplex() {
    for bw in Bandwidth::ALL {
        for cp in CyclicPrefix::ALL {
            for duplex in [Duplex::Fdd, Duplex::Tdd(TddConfig::new(2).unwrap())] {
                let mut cfg = SubframeConfig::new(
                    bw,
                    cp,
                    duplex,
                    CellId::new(500).unwrap(),
                    0xfff3,
                    Modulation::Qam64,
                );
                cfg.prb_start = bw.rb_count() / 3;
                cfg.prb_count = bw.rb_count() - cfg.prb_start;
                let err = run(cfg, 30.0, 10, 9, -40.0, 2.0);
                assert_eq!(err, 0, "{bw} {cp:?} {duplex:?}");
            }
        }
    }
}

#[test]
fn wrong_length_is_an_error_and_garbage_is_a_crc_failure() {
    let cfg = cfg5(Modulation::Qam16);
    let mut dec = SubframeDecoder::new(cfg).unwrap();
    assert!(dec
        .decode(0, &[Complex32::new(0.0, 0.0); 100], 100)
        .is_err());
    assert!(dec
        .decode(10, &vec![Complex32::new(0.0, 0.0); 7680], 100)
        .is_err());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let junk: Vec<Complex32> = (0..7680)
        .map(|_| Complex32::new(rng.random::<f32>() - 0.5, rng.random::<f32>() - 0.5))
        .collect();
    let r = dec.decode(3, &junk, 500).unwrap();
    assert!(r.payload.is_none());
    let nan = vec![Complex32::new(f32::NAN, f32::INFINITY); 7680];
    assert!(dec.decode(3, &nan, 500).unwrap().payload.is_none());
    // A TB too large for the subframe is a typed error.
    assert!(dec.decode(3, &junk, 100_000).is_err());
    let mut enc = SubframeEncoder::new(cfg).unwrap();
    let mut out = vec![Complex32::new(0.0, 0.0); 7680];
    assert!(enc.encode(1, &vec![0u8; 100_000], &mut out).is_err());
    assert!(enc.encode(1, &[1, 2, 3], &mut out[..10]).is_err());
}

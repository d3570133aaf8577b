//! Loopback through the simulated channel: encode → AWGN + CFO residual + timing offset
//! inside the CP → decode. BLER thresholds come from the curves measured with
//! `ferry phy bler` (docs/PHY.md), with a margin of about 1 dB; each test also checks that
//! well below the threshold the BLER is high, so it can fail.

use ferry_phy::channel::{Channel, ChannelParams};
use ferry_phy::{Bandwidth, CellId, CyclicPrefix, Duplex, Modulation, SubframeConfig, SubframeDecoder, SubframeEncoder, TddConfig};
use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Code rate used for the BLER figures (documented in docs/PHY.md).
const CODE_RATE: f64 = 0.5;

/// Runs `n` subframes at `snr_db`; returns (block errors, mean estimated SNR).
fn run(cfg: SubframeConfig, snr_db: f64, n: usize, seed: u64, cfo: f64, delay: f64) -> (usize, f32) {
    let mut enc = SubframeEncoder::new(cfg).unwrap();
    let mut dec = SubframeDecoder::new(cfg).unwrap();
    let len = cfg.samples_per_subframe();
    let params = ChannelParams {
        sample_rate_hz: cfg.bandwidth.sample_rate_hz(),
        snr_db: Some(snr_db),
        cfo_hz: cfo,
        delay_samples: delay,
        gain: Complex32::from_polar(2.0, 0.7),
    };
    let mut ch = Channel::new(params, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5a5a);
    // The channel delays by `delay`; the receiver cuts subframes at the nominal boundaries,
    // so the timing offset seen by the decoder is `delay` (within the CP).
    let mut tx = vec![Complex32::new(0.0, 0.0); len];
    let mut rx = Vec::new();
    let mut errors = 0;
    let mut snr_sum = 0.0;
    let mut sent: Vec<Vec<u8>> = Vec::new();
    for i in 0..=n {
        let sf = i % 10;
        let cap = cfg.capacity(sf, CODE_RATE).unwrap();
        let tb: Vec<u8> = (0..cap.max_tb_bytes).map(|_| rng.random()).collect();
        enc.encode(sf, &tb, &mut tx).unwrap();
        ch.process(&tx, &mut rx);
        sent.push(tb);
        if i == 0 {
            continue;
        }
        let r = dec.decode(sf, &rx, cap.max_tb_bytes).unwrap();
        snr_sum += r.quality.snr_db;
        match r.payload {
            Some(p) => assert_eq!(p, sent[i], "CRC passed with wrong payload"),
            None => errors += 1,
        }
    }
    (errors, snr_sum / n as f32)
}

fn cfg5(m: Modulation) -> SubframeConfig {
    SubframeConfig::new(Bandwidth::Mhz5, CyclicPrefix::Normal, Duplex::Fdd, CellId::new(77).unwrap(), 0x3e9, m)
}

fn check(m: Modulation, ok_snr: f64, bad_snr: f64) {
    let n = 100;
    let (err, est) = run(cfg5(m), ok_snr, n, 1, 80.0, 5.4);
    eprintln!("{m:?} at {ok_snr} dB: {err}/{n} block errors, estimated SNR {est:.1} dB");
    assert!(err <= 1, "{m:?}: BLER {err}/{n} at {ok_snr} dB");
    assert!((f64::from(est) - ok_snr).abs() < 1.5, "SNR estimate {est} at {ok_snr}");
    let (err, _) = run(cfg5(m), bad_snr, 20, 2, 80.0, 5.4);
    assert!(err >= 15, "{m:?}: BLER only {err}/20 at {bad_snr} dB");
}

#[test]
fn qpsk_bler() {
    check(Modulation::Qpsk, 3.0, -1.0);
}

#[test]
fn qam16_bler() {
    check(Modulation::Qam16, 9.0, 5.0);
}

#[test]
fn qam64_bler() {
    check(Modulation::Qam64, 14.0, 10.0);
}

#[test]
fn clean_round_trip_every_bandwidth_cp_and_duplex() {
    for bw in Bandwidth::ALL {
        for cp in CyclicPrefix::ALL {
            for duplex in [Duplex::Fdd, Duplex::Tdd(TddConfig::new(2).unwrap())] {
                let mut cfg = SubframeConfig::new(bw, cp, duplex, CellId::new(500).unwrap(), 0xfff3, Modulation::Qam64);
                cfg.prb_start = bw.rb_count() / 3;
                cfg.prb_count = bw.rb_count() - cfg.prb_start;
                let (err, _) = run(cfg, 30.0, 10, 9, -40.0, 2.0);
                assert_eq!(err, 0, "{bw} {cp:?} {duplex:?}");
            }
        }
    }
}

#[test]
fn wrong_length_is_an_error_and_garbage_is_a_crc_failure() {
    let cfg = cfg5(Modulation::Qam16);
    let mut dec = SubframeDecoder::new(cfg).unwrap();
    assert!(dec.decode(0, &[Complex32::new(0.0, 0.0); 100], 100).is_err());
    assert!(dec.decode(10, &vec![Complex32::new(0.0, 0.0); 7680], 100).is_err());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let junk: Vec<Complex32> = (0..7680).map(|_| Complex32::new(rng.random::<f32>() - 0.5, rng.random::<f32>() - 0.5)).collect();
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

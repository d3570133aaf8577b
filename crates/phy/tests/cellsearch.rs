//! Cell search from raw IQ: PCI, CP type, frame timing and CFO at 0 dB SNR (Es/N0 per RE)
//! with CFO up to ±7.5 kHz, over seeded trials with PCIs across 0..=503 and both CP types.

use ferry_phy::cellsearch::{CellSearcher, DuplexKind};
use ferry_phy::channel::{Channel, ChannelParams};
use ferry_phy::{Bandwidth, CellId, CyclicPrefix, Duplex, Modulation, SubframeConfig, SubframeEncoder, TddConfig};
use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Trial {
    pci: u16,
    cp: CyclicPrefix,
    cfo: f64,
    ok: bool,
    detail: String,
}

/// One trial: a fully loaded cell captured at a random point of its frame, through AWGN,
/// CFO and a fractional delay. Correct = PCI, CP, frame start (within the tolerance) and
/// CFO (within 200 Hz) all right.
fn trial(bw: Bandwidth, duplex: Duplex, searcher: &CellSearcher, rng: &mut ChaCha8Rng, cfo: f64, snr_db: f64) -> Trial {
    let pci = rng.random_range(0..504u16);
    let cp = if rng.random::<bool>() { CyclicPrefix::Normal } else { CyclicPrefix::Extended };
    let cfg = SubframeConfig::new(bw, cp, duplex, CellId::new(pci).unwrap(), 1, Modulation::Qpsk);
    let mut enc = SubframeEncoder::new(cfg).unwrap();
    let frame = bw.samples_per_frame();
    let sf_len = bw.samples_per_subframe();
    let off = rng.random_range(0..frame);
    let need = searcher.required_samples();
    let n_sf = (off + need + 64).div_ceil(sf_len);
    let mut tx = vec![Complex32::new(0.0, 0.0); n_sf * sf_len];
    let seed0: u32 = rng.random();
    for (i, chunk) in tx.chunks_mut(sf_len).enumerate() {
        enc.encode_random_load(i % 10, seed0.wrapping_add(i as u32) & 0x7fff_ffff, chunk).unwrap();
    }
    let delay = 7.0 + rng.random_range(0.0..30.0f64);
    let params = ChannelParams {
        sample_rate_hz: bw.sample_rate_hz(),
        snr_db: Some(snr_db),
        cfo_hz: cfo,
        delay_samples: delay,
        gain: Complex32::from_polar(0.3, rng.random_range(0.0..6.28f32)),
    };
    let mut ch = Channel::new(params, rng.random());
    let mut rx = Vec::new();
    ch.process(&tx, &mut rx);
    let capture = &rx[off..off + need];
    let d = ch.applied_delay();
    let expect_start = (d - off as f64).rem_euclid(frame as f64);
    let tol = (bw.fft_size() / 128 * 2) as f64 + 1.0;
    let res = searcher.search(capture).unwrap();
    let (ok, detail) = match res {
        None => (false, "nothing found".to_string()),
        Some(r) => {
            let mut terr = (r.frame_start as f64 - expect_start).abs();
            terr = terr.min(frame as f64 - terr);
            let ok = r.cell.pci() == pci && r.cp == cp && terr <= tol && (r.cfo_hz - cfo).abs() < 200.0;
            (ok, format!("{r:?} expected start {expect_start:.1}"))
        }
    };
    Trial { pci, cp, cfo, ok, detail }
}

#[test]
fn finds_the_cell_at_0_db_with_7_5_khz_cfo_1_4_mhz() {
    let bw = Bandwidth::Mhz1_4;
    let searcher = CellSearcher::new(bw, DuplexKind::Fdd, 8).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let trials = 120;
    let mut good = 0;
    let mut both_cp = [0usize; 2];
    for i in 0..trials {
        let cfo = if i % 2 == 0 { 7500.0 } else { -7500.0 };
        let t = trial(bw, Duplex::Fdd, &searcher, &mut rng, cfo, 0.0);
        both_cp[t.cp.cp_type() as usize] += 1;
        if t.ok {
            good += 1;
        } else {
            eprintln!("miss: pci {} {:?} cfo {}: {}", t.pci, t.cp, t.cfo, t.detail);
        }
    }
    eprintln!("cell search 1.4 MHz, 0 dB, ±7.5 kHz: {good}/{trials}");
    assert!(both_cp[0] > 20 && both_cp[1] > 20);
    assert!(good * 100 >= 95 * trials, "{good}/{trials}");
}

#[test]
fn other_cfos_and_tdd() {
    let bw = Bandwidth::Mhz1_4;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let fdd = CellSearcher::new(bw, DuplexKind::Fdd, 8).unwrap();
    let tdd = CellSearcher::new(bw, DuplexKind::Tdd, 8).unwrap();
    let tdd_mode = Duplex::Tdd(TddConfig::new(1).unwrap());
    let mut good = 0;
    let mut n = 0;
    for cfo in [0.0, 5000.0, -5000.0, 2345.0] {
        for _ in 0..5 {
            good += usize::from(trial(bw, Duplex::Fdd, &fdd, &mut rng, cfo, 0.0).ok);
            good += usize::from(trial(bw, tdd_mode, &tdd, &mut rng, cfo, 0.0).ok);
            n += 2;
        }
    }
    assert!(good * 100 >= 95 * n, "{good}/{n}");
}

#[test]
fn five_mhz_capture() {
    let bw = Bandwidth::Mhz5;
    let searcher = CellSearcher::new(bw, DuplexKind::Fdd, 8).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut good = 0;
    for cfo in [7500.0, -7500.0, 3000.0, 0.0] {
        let t = trial(bw, Duplex::Fdd, &searcher, &mut rng, cfo, 0.0);
        if !t.ok {
            eprintln!("miss: {}", t.detail);
        }
        good += usize::from(t.ok);
    }
    assert!(good >= 4, "{good}/4");
}

#[test]
fn noise_alone_finds_nothing_and_short_input_is_an_error() {
    let bw = Bandwidth::Mhz1_4;
    let searcher = CellSearcher::new(bw, DuplexKind::Fdd, 8).unwrap();
    let mut ch = Channel::new(ChannelParams { snr_db: Some(0.0), ..ChannelParams::ideal(bw.sample_rate_hz()) }, 3);
    let mut noise = Vec::new();
    ch.noise(searcher.required_samples(), &mut noise);
    assert_eq!(searcher.search(&noise).unwrap(), None);
    assert!(searcher.search(&noise[..1000]).is_err());
    assert!(CellSearcher::new(bw, DuplexKind::Fdd, 0).is_err());
}

/// The test must be able to fail: far below the working point the search breaks down.
#[test]
fn fails_far_below_the_working_point() {
    let bw = Bandwidth::Mhz1_4;
    let searcher = CellSearcher::new(bw, DuplexKind::Fdd, 8).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let good: usize = (0..10).map(|_| usize::from(trial(bw, Duplex::Fdd, &searcher, &mut rng, 7500.0, -20.0).ok)).sum();
    assert!(good <= 5, "{good}/10 at -20 dB");
}

//! Cell search from raw IQ: PCI, CP type, frame timing and CFO at 0 dB SNR (Es/N0 per RE)
//! with CFO up to ±7.5 kHz, over seeded trials with PCIs across 0..=503 and both CP types.

use ferry_phy::cellsearch::{CellSearcher, DuplexKind};
use ferry_phy::channel::{Channel, ChannelParams};
use ferry_phy::sim::cellsearch_trial;
use ferry_phy::{Bandwidth, Duplex, TddConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
fn finds_the_cell_at_0_db_with_7_5_khz_cfo_1_4_mhz() {
    let searcher = CellSearcher::new(Bandwidth::Mhz1_4, DuplexKind::Fdd, 8).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let trials = 120;
    let mut good = 0;
    let mut per_cp = [0usize; 2];
    let mut pcis = Vec::new();
    for i in 0..trials {
        let cfo = if i % 2 == 0 { 7500.0 } else { -7500.0 };
        let t = cellsearch_trial(&searcher, Duplex::Fdd, cfo, 0.0, &mut rng).unwrap();
        per_cp[usize::from(t.cp_type)] += 1;
        pcis.push(t.pci);
        if t.correct {
            good += 1;
        } else {
            eprintln!("miss: {t:?}");
        }
    }
    eprintln!("cell search 1.4 MHz, 0 dB, ±7.5 kHz: {good}/{trials}");
    // The trials really span both CP types and the PCI range.
    assert!(per_cp[0] > 30 && per_cp[1] > 30, "{per_cp:?}");
    assert!(pcis.iter().any(|&p| p < 50) && pcis.iter().any(|&p| p > 450));
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
    for cfo in [0.0, 5000.0, -5000.0, 2345.0, 7500.0] {
        for _ in 0..4 {
            good += usize::from(cellsearch_trial(&fdd, Duplex::Fdd, cfo, 0.0, &mut rng).unwrap().correct);
            good += usize::from(cellsearch_trial(&tdd, tdd_mode, cfo, 0.0, &mut rng).unwrap().correct);
            n += 2;
        }
    }
    assert!(good * 100 >= 95 * n, "{good}/{n}");
}

#[test]
fn five_mhz_capture() {
    let searcher = CellSearcher::new(Bandwidth::Mhz5, DuplexKind::Fdd, 8).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut good = 0;
    for cfo in [7500.0, -7500.0, 3000.0, 0.0] {
        let t = cellsearch_trial(&searcher, Duplex::Fdd, cfo, 0.0, &mut rng).unwrap();
        if !t.correct {
            eprintln!("miss: {t:?}");
        }
        good += usize::from(t.correct);
    }
    assert_eq!(good, 4);
}

#[test]
fn noise_alone_finds_nothing_and_short_input_is_an_error() {
    let bw = Bandwidth::Mhz1_4;
    let searcher = CellSearcher::new(bw, DuplexKind::Fdd, 8).unwrap();
    for seed in 0..5 {
        let mut ch = Channel::new(ChannelParams { snr_db: Some(0.0), ..ChannelParams::ideal(bw.sample_rate_hz()) }, seed);
        let mut noise = Vec::new();
        ch.noise(searcher.required_samples(), &mut noise);
        assert_eq!(searcher.search(&noise).unwrap(), None);
        assert!(searcher.search(&noise[..1000]).is_err());
    }
    assert!(CellSearcher::new(bw, DuplexKind::Fdd, 0).is_err());
}

/// The test must be able to fail: far below the working point the search breaks down.
#[test]
fn fails_far_below_the_working_point() {
    let searcher = CellSearcher::new(Bandwidth::Mhz1_4, DuplexKind::Fdd, 8).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let good: usize = (0..10)
        .map(|_| usize::from(cellsearch_trial(&searcher, Duplex::Fdd, 7500.0, -20.0, &mut rng).unwrap().correct))
        .sum();
    assert!(good <= 5, "{good}/10 at -20 dB");
}

//! PHY benchmarks: encode and decode of one full subframe for every bandwidth × modulation
//! (decode at the operating SNR of the loopback tests, so turbo early stopping behaves as in
//! operation), and blind cell search. Results and command: docs/BENCHMARKS.md.
//!
//! Every benchmark runs twice: `wall/…` (criterion's wall clock) and `cpu/…` (the thread's
//! own on-CPU time, CLOCK_THREAD_CPUTIME_ID): on a shared, overloaded machine the latter is
//! what one dedicated core would take. Filter with e.g. `-- cpu/decode`.

#[path = "support/cputime.rs"]
mod cputime;

use cputime::ThreadCpu as CpuTime;
use criterion::measurement::Measurement;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ferry_phy::cellsearch::{CellSearcher, DuplexKind};
use ferry_phy::channel::{Channel, ChannelParams};
use ferry_phy::sim::{cellsearch_capture, Impairments};
use ferry_phy::{
    Bandwidth, CellId, CyclicPrefix, Duplex, Modulation, SubframeConfig, SubframeDecoder,
    SubframeEncoder,
};
use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

/// Code rate of the benchmarked transport blocks (as the BLER tests).
const CODE_RATE: f64 = 0.5;
/// Subframe used (no sync signals: the most data REs).
const SF: usize = 3;

fn operating_snr(m: Modulation) -> f64 {
    match m {
        Modulation::Qpsk => 2.75,
        Modulation::Qam16 => 8.0,
        Modulation::Qam64 => 12.5,
    }
}

fn name(m: Modulation) -> &'static str {
    match m {
        Modulation::Qpsk => "QPSK",
        Modulation::Qam16 => "16QAM",
        Modulation::Qam64 => "64QAM",
    }
}

fn subframes_wall(c: &mut Criterion) {
    subframes(c, "wall");
}

fn subframes_cpu(c: &mut Criterion<CpuTime>) {
    subframes(c, "cpu");
}

fn search_wall(c: &mut Criterion) {
    cell_search(c, "wall");
}

fn search_cpu(c: &mut Criterion<CpuTime>) {
    cell_search(c, "cpu");
}

fn subframes<M: Measurement>(c: &mut Criterion<M>, clock: &str) {
    let mut enc_group = c.benchmark_group(format!("{clock}/encode"));
    for bw in Bandwidth::ALL {
        for m in Modulation::ALL {
            let cfg = SubframeConfig::new(
                bw,
                CyclicPrefix::Normal,
                Duplex::Fdd,
                CellId::new(77).unwrap(),
                0x3e9,
                m,
            );
            let cap = cfg.capacity(SF, CODE_RATE).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let tb: Vec<u8> = (0..cap.max_tb_bytes).map(|_| rng.random()).collect();
            let mut enc = SubframeEncoder::new(cfg).unwrap();
            let mut out = vec![Complex32::new(0.0, 0.0); cfg.samples_per_subframe()];
            enc_group.bench_function(BenchmarkId::new(format!("{}MHz", bw.mhz()), name(m)), |b| {
                b.iter(|| enc.encode(SF, black_box(&tb), &mut out).unwrap())
            });
        }
    }
    enc_group.finish();
    let mut dec_group = c.benchmark_group(format!("{clock}/decode"));
    for bw in Bandwidth::ALL {
        for m in Modulation::ALL {
            let cfg = SubframeConfig::new(
                bw,
                CyclicPrefix::Normal,
                Duplex::Fdd,
                CellId::new(77).unwrap(),
                0x3e9,
                m,
            );
            let cap = cfg.capacity(SF, CODE_RATE).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(2);
            let tb: Vec<u8> = (0..cap.max_tb_bytes).map(|_| rng.random()).collect();
            let mut enc = SubframeEncoder::new(cfg).unwrap();
            let mut tx = vec![Complex32::new(0.0, 0.0); cfg.samples_per_subframe()];
            enc.encode(SF, &tb, &mut tx).unwrap();
            let imp = Impairments::typical(bw);
            let params = ChannelParams {
                snr_db: Some(operating_snr(m)),
                cfo_hz: imp.cfo_hz,
                // The receiver skips 8 samples: the fractional-delay filter needs them.
                delay_samples: imp.delay_samples + 8.0,
                ..ChannelParams::ideal(bw.sample_rate_hz())
            };
            // A noise realisation at the operating SNR that decodes (smaller bandwidths have
            // shorter code blocks and a slightly later waterfall than the 5 MHz reference).
            let mut dec = SubframeDecoder::new(cfg).unwrap();
            let mut rx = Vec::new();
            tx.extend(std::iter::repeat_n(Complex32::new(0.0, 0.0), 8));
            let decoded = (3..40).any(|seed| {
                Channel::new(params, seed).process(&tx, &mut rx);
                rx.drain(..8);
                let r = dec.decode(SF, &rx, tb.len()).unwrap();
                r.payload.as_deref() == Some(&tb[..])
            });
            assert!(decoded, "no decodable bench input for {bw} {m:?}");
            dec_group.bench_function(BenchmarkId::new(format!("{}MHz", bw.mhz()), name(m)), |b| {
                b.iter(|| dec.decode(SF, black_box(&rx), tb.len()).unwrap())
            });
        }
    }
    dec_group.finish();
}

fn cell_search<M: Measurement>(c: &mut Criterion<M>, clock: &str) {
    let mut g = c.benchmark_group(format!("{clock}/cellsearch"));
    g.sample_size(10);
    for bw in [Bandwidth::Mhz1_4, Bandwidth::Mhz5, Bandwidth::Mhz20] {
        let searcher = CellSearcher::new(bw, DuplexKind::Fdd, 8).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (capture, truth) =
            cellsearch_capture(&searcher, Duplex::Fdd, 7500.0, 0.0, &mut rng).unwrap();
        let found = searcher.search(&capture).unwrap();
        assert_eq!(
            found.map(|f| f.cell.pci()),
            Some(truth.pci),
            "bench input must be found"
        );
        g.bench_function(
            BenchmarkId::new("8_half_frames", format!("{}MHz", bw.mhz())),
            |b| b.iter(|| searcher.search(black_box(&capture)).unwrap()),
        );
    }
    g.finish();
}

criterion_group!(wall, subframes_wall, search_wall);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(CpuTime);
    targets = subframes_cpu, search_cpu
}
criterion_main!(wall, cpu);

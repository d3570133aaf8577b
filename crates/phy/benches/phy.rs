//! PHY benchmarks: encode and decode of one full subframe for every bandwidth × modulation,
//! and blind cell search. Results and command: docs/BENCHMARKS.md.
//!
//! Decode is measured honestly: `decode/…` cycles through 16 seeded noise realisations at
//! the operating SNR of the loopback tests (none chosen for decoding, so early stopping and
//! the occasional failure count as they come), and `decode_failing/…` decodes a subframe
//! 6 dB below it, which fails and runs every turbo iteration of every code block (the
//! worst case). Both with the 16-bit fixed-point turbo decoder (`fixed16`, the default) and
//! the f32 reference (`f32`).
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
use ferry_phy::fec::DecoderKind;
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
    let benches: Vec<(Bandwidth, Modulation, DecodeBench)> = Bandwidth::ALL
        .into_iter()
        .flat_map(|bw| Modulation::ALL.map(|m| (bw, m, DecodeBench::new(bw, m))))
        .collect();
    let id = |bw: Bandwidth, m: Modulation, label: &str| {
        BenchmarkId::new(format!("{}MHz", bw.mhz()), format!("{}/{label}", name(m)))
    };
    let mut group = c.benchmark_group(format!("{clock}/decode"));
    for (bw, m, bench) in &benches {
        for (kind, label) in DECODERS {
            let mut dec = bench.decoder(kind);
            let mut i = 0;
            // Cycles through the realisations: every seed counts, decoded or not.
            group.bench_function(id(*bw, *m, label), |b| {
                b.iter(|| {
                    i = (i + 1) % bench.operating.len();
                    dec.decode(SF, black_box(&bench.operating[i]), bench.tb_len)
                        .unwrap()
                })
            });
        }
    }
    group.finish();
    // Worst case: a TB that fails runs every iteration of every code block.
    let mut group = c.benchmark_group(format!("{clock}/decode_failing"));
    for (bw, m, bench) in &benches {
        for (kind, label) in DECODERS {
            let mut dec = bench.decoder(kind);
            group.bench_function(id(*bw, *m, label), |b| {
                b.iter(|| {
                    let r = dec
                        .decode(SF, black_box(&bench.failing), bench.tb_len)
                        .unwrap();
                    assert!(r.payload.is_none(), "the failing input must fail");
                    r
                })
            });
        }
    }
    group.finish();
}

/// The two turbo decoders benchmarked side by side.
const DECODERS: [(DecoderKind, &str); 2] = [
    (DecoderKind::Fixed16, "fixed16"),
    (DecoderKind::Float, "f32"),
];

/// Noise realisations at the operating SNR (seeds 0..REALISATIONS, none picked for
/// decoding), and one far below it that cannot decode.
const REALISATIONS: usize = 16;
/// How far below the operating SNR the failing subframe is (no TB decodes there).
const FAIL_BELOW_DB: f64 = 6.0;

struct DecodeBench {
    cfg: SubframeConfig,
    tb_len: usize,
    operating: Vec<Vec<Complex32>>,
    failing: Vec<Complex32>,
}

impl DecodeBench {
    fn new(bw: Bandwidth, m: Modulation) -> Self {
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
        // The receiver skips 8 samples: the fractional-delay filter needs them.
        tx.extend(std::iter::repeat_n(Complex32::new(0.0, 0.0), 8));
        let imp = Impairments::typical(bw);
        let through = |snr: f64, seed: u64| {
            let params = ChannelParams {
                snr_db: Some(snr),
                cfo_hz: imp.cfo_hz,
                delay_samples: imp.delay_samples + 8.0,
                ..ChannelParams::ideal(bw.sample_rate_hz())
            };
            let mut rx = Vec::new();
            Channel::new(params, seed).process(&tx, &mut rx);
            rx.drain(..8);
            rx
        };
        let operating = (0..REALISATIONS as u64)
            .map(|seed| through(operating_snr(m), seed))
            .collect();
        let failing = through(operating_snr(m) - FAIL_BELOW_DB, 99);
        DecodeBench {
            cfg,
            tb_len: tb.len(),
            operating,
            failing,
        }
    }

    fn decoder(&self, kind: DecoderKind) -> SubframeDecoder {
        let mut d = SubframeDecoder::new(self.cfg).unwrap();
        d.set_turbo_decoder(kind);
        d
    }
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

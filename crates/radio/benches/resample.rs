//! The N210 resampler's cost: device-rate RX → LTE and LTE TX → device rate, per LTE
//! bandwidth, as throughput in input samples (criterion reports elements/s = sps per core).
//! `cargo bench -p ferry-radio --bench resample`; figures in docs/BENCH-RADIO.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferry_radio::resample::N210Plan;
use num_complex::Complex32;

fn noise(n: usize) -> Vec<Complex32> {
    // Deterministic wideband input (the filter's cost does not depend on the content).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a = (x & 0xffff) as f32 / 65536.0 - 0.5;
            let b = ((x >> 16) & 0xffff) as f32 / 65536.0 - 0.5;
            Complex32::new(a, b)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("n210_resample");
    for rate in [1_920_000u32, 23_040_000] {
        let plan = N210Plan::for_lte_rate(rate).expect("plan");
        // One millisecond of device samples per iteration.
        let n = (plan.device_rate_hz() / 1000.0) as usize;
        let input = noise(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("rx", rate), &input, |b, input| {
            let mut rs = plan.rx();
            let mut out = Vec::with_capacity(2 * n);
            b.iter(|| {
                out.clear();
                rs.process(input, &mut out);
                out.len()
            })
        });
        let lte = noise(rate as usize / 1000);
        g.throughput(Throughput::Elements(lte.len() as u64));
        g.bench_with_input(BenchmarkId::new("tx", rate), &lte, |b, input| {
            let mut rs = plan.tx();
            let mut out = Vec::with_capacity(2 * n);
            b.iter(|| {
                out.clear();
                rs.process(input, &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

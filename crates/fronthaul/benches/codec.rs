//! Fronthaul codec throughput: emitting and parsing VRT IF data packets of 364 sc16
//! samples (an N210's default for a 1500-byte MTU), in samples per second on one core.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferry_fronthaul::vrt::{emit_data_cf32, DataRepr, Direction, StreamId, Timestamp};
use num_complex::Complex32;

fn codec(c: &mut Criterion) {
    let n = 364;
    let samples: Vec<Complex32> = (0..n)
        .map(|k| Complex32::from_polar(0.5, k as f32 * 0.1))
        .collect();
    let sid = StreamId::new(1, Direction::Rx);
    let ts = Timestamp {
        secs: 12,
        frac: 3456,
    };
    let mut g = c.benchmark_group("vrt");
    g.throughput(Throughput::Elements(n as u64));
    let mut buf = Vec::with_capacity(2048);
    g.bench_function("emit_cf32_364", |b| {
        b.iter(|| {
            buf.clear();
            emit_data_cf32(sid, 1, ts, black_box(&samples), &mut buf).unwrap();
            black_box(buf.len())
        })
    });
    buf.clear();
    emit_data_cf32(sid, 1, ts, &samples, &mut buf).unwrap();
    let pkt = buf.clone();
    let mut out = Vec::with_capacity(n);
    g.bench_function("parse_to_cf32_364", |b| {
        b.iter(|| {
            out.clear();
            let d = DataRepr::parse_bytes(black_box(&pkt)).unwrap();
            d.samples_cf32_into(&mut out);
            black_box(out.len())
        })
    });
    g.bench_function("parse_header_only", |b| {
        b.iter(|| black_box(DataRepr::parse_bytes(black_box(&pkt)).unwrap().timestamp))
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);

//! Per-subframe cost of the MAC against the 1 ms subframe budget: packing 1500-byte IP
//! packets into TBs of LTE-like sizes, and receiving (parse + reassemble + deliver) them.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use ferry_mac::{Mac, MacConfig, NodeId, Role, Schedule};

fn node(id: u8, role: Role) -> Mac {
    let mut c = MacConfig::new(NodeId(id), role, Schedule::fdd());
    c.discovery.enabled = false;
    c.queue_depth = 1024;
    let mut m = Mac::new(c).unwrap_or_else(|e| panic!("{e}"));
    let peer = NodeId(3 - id);
    m.set_routes(0, &[(peer, peer)])
        .unwrap_or_else(|e| panic!("{e}"));
    m
}

/// TB sizes: 300 B (small), 2292 B (5 MHz, 25 PRB, 64QAM), 9422 B (20 MHz, 100 PRB, 64QAM).
const TB_SIZES: [usize; 3] = [300, 2292, 9422];

fn bench(c: &mut Criterion) {
    let packet = vec![0x45u8; 1500];
    let mut g = c.benchmark_group("mac_subframe");
    for cap in TB_SIZES {
        g.bench_with_input(
            BenchmarkId::new("on_subframe_pack", cap),
            &cap,
            |b, &cap| {
                let mut m = node(1, Role::Master);
                let mut n = 0u64;
                b.iter(|| {
                    while m.status().queue_len < 16 {
                        let _ = m.enqueue(&packet, NodeId(2));
                    }
                    n += 1;
                    black_box(m.on_subframe(n, cap))
                });
            },
        );
        // 2000 consecutive TBs of a saturated link, replayed in a loop.
        let mut tx = node(1, Role::Master);
        let mut tbs = Vec::new();
        for n in 0..2000u64 {
            while tx.status().queue_len < 16 {
                let _ = tx.enqueue(&packet, NodeId(2));
            }
            if let Some(t) = tx.on_subframe(n, cap) {
                tbs.push(t.bytes);
            }
        }
        g.bench_with_input(BenchmarkId::new("on_received_unpack", cap), &cap, |b, _| {
            let mut rx = node(2, Role::Slave);
            let mut i = 0usize;
            b.iter(|| {
                i += 1;
                let tb = &tbs[i % tbs.len()];
                black_box(rx.on_received(i as u64, tb))
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

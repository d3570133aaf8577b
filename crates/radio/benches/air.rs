//! Air costs: mixing one 1 ms tick (1920 samples at 1.92 Msps) for N radios with every
//! pair audible (gain, CFO, delay, noise), and the whole engine tick of the default
//! 4-radio topology with every radio linked (TX queue, mixing, VRT packetisation).

use std::net::SocketAddr;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferry_fronthaul::control::Request;
use ferry_fronthaul::vrt::{emit_data_cf32, Direction, StreamId, Timestamp};
use ferry_radio::air::{AirChannel, Path};
use ferry_radio::config::AirConfig;
use ferry_radio::engine::{AirEngine, TickOutput};
use num_complex::Complex32;

const TICK: usize = 1920;

fn mix(c: &mut Criterion) {
    let mut g = c.benchmark_group("air_mix_1ms");
    for n in [2usize, 4, 8] {
        let mut ch = AirChannel::new(n, 1_920_000, Some(-60.0), 1);
        for a in 0..n {
            for b in 0..n {
                ch.set_path(
                    a,
                    b,
                    Some(Path {
                        amplitude: 0.1,
                        cfo_hz: 150.0 + a as f64,
                        delay: 3,
                    }),
                );
            }
        }
        let tx: Vec<Vec<Complex32>> = (0..n)
            .map(|j| {
                (0..TICK)
                    .map(|k| Complex32::from_polar(0.3, (j * k) as f32 * 0.01))
                    .collect()
            })
            .collect();
        let mut rx = vec![Vec::new(); n];
        let mut t0 = 0u64;
        // Radio-samples per iteration: each of n radios receives TICK samples.
        g.throughput(Throughput::Elements((n * TICK) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                ch.mix(t0, black_box(&tx), &mut rx);
                t0 += TICK as u64;
            })
        });
    }
    g.finish();
}

/// Two radios hearing each other with one antenna each, with two each (four antenna-pair
/// paths per direction, a per-pair coefficient, noise per antenna), and with two each under
/// Rayleigh fading (16 sinusoids per pair, evaluated per 64-sample block).
fn mix_antennas(c: &mut Criterion) {
    let mut g = c.benchmark_group("air_mix_1ms_antennas");
    for (name, antennas, fading) in [
        ("1x1", vec![1usize, 1], None),
        ("2x2_static", vec![2, 2], None),
        ("2x2_fading_5hz", vec![2, 2], Some(5.0)),
    ] {
        let mut ch = AirChannel::with_antennas(&antennas, 1_920_000, Some(-60.0), 1, fading);
        ch.set_path(
            0,
            1,
            Some(Path {
                amplitude: 0.1,
                cfo_hz: 150.0,
                delay: 2,
            }),
        );
        ch.set_path(
            1,
            0,
            Some(Path {
                amplitude: 0.1,
                cfo_hz: -150.0,
                delay: 2,
            }),
        );
        let n = ch.antennas();
        let tx: Vec<Vec<Complex32>> = (0..n)
            .map(|j| {
                (0..TICK)
                    .map(|k| Complex32::from_polar(0.3, (j * k) as f32 * 0.01))
                    .collect()
            })
            .collect();
        let mut rx = vec![Vec::new(); n];
        let mut t0 = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                ch.mix(t0, black_box(&tx), &mut rx);
                t0 += TICK as u64;
            })
        });
    }
    g.finish();
}

/// Four radios, one path between carriers 300 kHz apart (shifted and band-pass filtered, 63
/// taps: the costliest kind of path), the others on carriers that do not overlap; and two
/// FDD pairs (8 same-centre paths, 4 uncoupled). Compare with `air_mix_1ms/4` (12 paths).
fn mix_carriers(c: &mut Criterion) {
    let mut g = c.benchmark_group("air_mix_1ms_carriers");
    let tx: Vec<Vec<Complex32>> = (0..4)
        .map(|j| {
            (0..TICK)
                .map(|k| Complex32::from_polar(0.3, (j * k) as f32 * 0.01))
                .collect()
        })
        .collect();
    let cases: [(&str, [(f64, f64); 4]); 2] = [
        // (tx, rx) per radio.
        (
            "partial_overlap_300khz",
            [
                (2140.3e6, 500e6),
                (600e6, 2140e6),
                (700e6, 800e6),
                (900e6, 1000e6),
            ],
        ),
        (
            "fdd_two_pairs",
            [
                (2140e6, 1950e6),
                (1950e6, 2140e6),
                (2140e6, 1950e6),
                (1950e6, 2140e6),
            ],
        ),
    ];
    for (name, tuning) in cases {
        let mut ch = AirChannel::new(4, 1_920_000, Some(-60.0), 1);
        for a in 0..4 {
            for b in 0..4 {
                let p = Path {
                    amplitude: 0.1,
                    cfo_hz: 150.0,
                    delay: 3,
                };
                ch.set_path(a, b, Some(p));
            }
        }
        for (i, (t, r)) in tuning.into_iter().enumerate() {
            ch.set_tuning(i, t, r);
        }
        let mut rx = vec![Vec::new(); 4];
        let mut t0 = 0u64;
        g.throughput(Throughput::Elements((4 * TICK) as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                ch.mix(t0, black_box(&tx), &mut rx);
                t0 += TICK as u64;
            })
        });
    }
    g.finish();
}

fn engine_tick(c: &mut Criterion) {
    let cfg = AirConfig::default().with_init_ms(0);
    let names: Vec<String> = cfg.radios.iter().map(|r| r.name.clone()).collect();
    let n = names.len();
    let mut e = AirEngine::new(cfg, None).unwrap();
    let hosts: Vec<SocketAddr> = (0..n)
        .map(|k| SocketAddr::from(([127, 0, 0, 1], 7000 + k as u16)))
        .collect();
    for (name, h) in names.iter().zip(&hosts) {
        e.control(&Request::Link {
            radio: name.clone(),
            endpoint: *h,
        });
    }
    let tone: Vec<Complex32> = (0..364)
        .map(|k| Complex32::from_polar(0.1, k as f32 * 0.2))
        .collect();
    let mut out = TickOutput::default();
    let mut g = c.benchmark_group("engine_tick_1ms");
    g.throughput(Throughput::Elements((n * TICK) as u64));
    g.bench_function("default_4_radios_linked", |b| {
        b.iter(|| {
            // Every host supplies this tick's TX ahead of time (as 364-sample packets).
            let t0 = e.now() + TICK as u64;
            for (r, h) in hosts.iter().enumerate() {
                let mut s = t0;
                while s < t0 + TICK as u64 {
                    let k = 364.min((t0 + TICK as u64 - s) as usize);
                    let mut p = Vec::new();
                    let ts = Timestamp::from_sample_time(s, 1_920_000).unwrap();
                    emit_data_cf32(
                        StreamId::new(r as u16, Direction::Tx),
                        0,
                        ts,
                        &tone[..k],
                        &mut p,
                    )
                    .unwrap();
                    e.on_datagram(r, *h, &p);
                    s += k as u64;
                }
            }
            e.tick(&mut out);
            black_box(out.packets.len());
            out.packets.clear();
        })
    });
    g.finish();
}

/// Fronthaul over real loopback UDP on one core: encode + send 32 packets of 364 samples,
/// then receive + decode all 32 (the bench aborts on any loss).
fn udp_loopback(c: &mut Criterion) {
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let _ = ferry_radio::sys::set_socket_buffers(&rx, 4 << 20);
    let dst = rx.local_addr().unwrap();
    let tone: Vec<Complex32> = (0..364)
        .map(|k| Complex32::from_polar(0.1, k as f32 * 0.2))
        .collect();
    let sid = StreamId::new(0, Direction::Rx);
    let mut pkt = Vec::with_capacity(2048);
    let mut buf = vec![0u8; 65536];
    let mut samples = Vec::with_capacity(364);
    let mut t = 0u64;
    let mut g = c.benchmark_group("fronthaul_udp_loopback");
    g.throughput(Throughput::Elements(32 * 364));
    g.bench_function("send_recv_32x364", |b| {
        b.iter(|| {
            for _ in 0..32 {
                pkt.clear();
                let ts = Timestamp::from_sample_time(t, 1_920_000).unwrap();
                emit_data_cf32(sid, (t % 16) as u8, ts, &tone, &mut pkt).unwrap();
                tx.send_to(&pkt, dst).unwrap();
                t += 364;
            }
            for _ in 0..32 {
                let (n, _) = rx.recv_from(&mut buf).unwrap();
                let d = ferry_fronthaul::vrt::DataRepr::parse_bytes(&buf[..n]).unwrap();
                samples.clear();
                d.samples_cf32_into(&mut samples);
                assert_eq!(samples.len(), 364);
            }
        })
    });
    // The same 32 packets, sent with one sendmmsg and received with recvmmsg (the air's
    // default since the batching change): the before/after of batching in one run.
    let mut rbatch = ferry_radio::batch::RecvBatch::new(65536);
    let mut pkts: Vec<Vec<u8>> = (0..32).map(|_| Vec::with_capacity(2048)).collect();
    g.bench_function("send_recv_32x364_batched", |b| {
        b.iter(|| {
            for p in pkts.iter_mut() {
                p.clear();
                let ts = Timestamp::from_sample_time(t, 1_920_000).unwrap();
                emit_data_cf32(sid, (t % 16) as u8, ts, &tone, p).unwrap();
                t += 364;
            }
            let batch: Vec<(&[u8], std::net::SocketAddr)> =
                pkts.iter().map(|p| (&p[..], dst)).collect();
            assert_eq!(
                ferry_radio::batch::send_batch(&tx, &batch, |_, e| panic!("{e}")),
                32
            );
            let mut got = 0;
            while got < 32 {
                let n = loop {
                    match rbatch.recv(&rx).unwrap() {
                        0 => std::hint::spin_loop(),
                        n => break n,
                    }
                };
                for k in 0..n {
                    let (bytes, _) = rbatch.get(k).unwrap();
                    let d = ferry_fronthaul::vrt::DataRepr::parse_bytes(bytes).unwrap();
                    samples.clear();
                    d.samples_cf32_into(&mut samples);
                    assert_eq!(samples.len(), 364);
                }
                got += n;
            }
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    mix,
    mix_carriers,
    mix_antennas,
    engine_tick,
    udp_loopback
);
criterion_main!(benches);

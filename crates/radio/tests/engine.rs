//! The air engine driven without sockets: hosts are plain addresses, datagrams are handed
//! in and taken out directly, time advances tick by tick.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use ferry_fronthaul::control::{Reply, Request};
use ferry_fronthaul::vrt::{emit_data_i16, DataRepr, Direction, StreamId, Timestamp};
use ferry_radio::config::{AirConfig, LinkConfig};
use ferry_radio::engine::{AirEngine, TickOutput};

const RATE: u32 = 1_920_000;

fn host(p: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], p))
}

/// Two radios (pool, far) plus relayrx blocked from far, ideal channel, no noise.
fn ideal_config() -> AirConfig {
    let mut c = AirConfig::default().with_init_ms(0);
    c.radios.truncate(3);
    c.noise_floor_dbfs = None;
    c.links = vec![
        LinkConfig {
            a: "pool".into(),
            b: "far".into(),
            gain_db: Some(0.0),
            cfo_hz: 0.0,
            delay_samples: 0,
        },
        LinkConfig {
            a: "pool".into(),
            b: "relayrx".into(),
            gain_db: Some(0.0),
            cfo_hz: 0.0,
            delay_samples: 0,
        },
        LinkConfig {
            a: "far".into(),
            b: "relayrx".into(),
            gain_db: None,
            cfo_hz: 0.0,
            delay_samples: 0,
        },
    ];
    c
}

fn counting(s: u64) -> (i16, i16) {
    ((s & 0x7fff) as i16, ((s >> 15) & 0x7fff) as i16)
}

fn tx_packet(radio: u16, t: u64, samples: &[(i16, i16)]) -> Vec<u8> {
    let mut b = Vec::new();
    let ts = Timestamp::from_sample_time(t, RATE).unwrap();
    emit_data_i16(StreamId::new(radio, Direction::Tx), 0, ts, samples, &mut b).unwrap();
    b
}

/// RX samples each host received, by sample time (duplicates counted).
type Received = BTreeMap<SocketAddr, Vec<(u64, (i16, i16))>>;

fn collect(out: &mut TickOutput, radio: usize, got: &mut Received) {
    for p in out.packets.drain(..) {
        if p.radio != radio {
            continue;
        }
        if let Ok(d) = DataRepr::parse_bytes(&p.bytes) {
            let t = d.timestamp.to_sample_time(RATE).unwrap();
            let e = got.entry(p.to).or_default();
            for (k, s) in d.samples_i16().enumerate() {
                e.push((t + k as u64, s));
            }
        }
    }
}

#[test]
fn switch_at_is_sample_exact_with_counting_waveform() {
    let mut e = AirEngine::new(ideal_config(), None).unwrap();
    let (pool, far) = (0usize, 1usize);
    let (old, new, far_host) = (host(1001), host(1002), host(1003));
    let tick = 1920u64;
    assert!(matches!(
        e.control(&Request::Link {
            radio: "pool".into(),
            endpoint: old
        }),
        Reply::Done { .. }
    ));
    assert!(matches!(
        e.control(&Request::Link {
            radio: "far".into(),
            endpoint: far_host
        }),
        Reply::Done { .. }
    ));
    // Not a tick boundary, not a packet boundary.
    let at = 5 * tick + 777;
    let mut rx_pool = Received::new();
    let mut rx_far = Received::new();
    for k in 0..12u64 {
        let t0 = k * tick;
        if k == 2 {
            let r = e.control(&Request::SwitchAt {
                radio: "pool".into(),
                at,
                endpoint: new,
            });
            assert!(matches!(r, Reply::Scheduled { .. }), "{r:?}");
        }
        // far transmits the counting waveform; old and new pool hosts each transmit their
        // own marker for the whole tick in 500-sample packets that straddle `at`.
        let mut s = t0;
        while s < t0 + tick {
            let n = 500.min(t0 + tick - s) as usize;
            let cnt: Vec<_> = (s..s + n as u64).map(counting).collect();
            e.on_datagram(far, far_host, &tx_packet(1, s, &cnt));
            let a: Vec<_> = (s..s + n as u64)
                .map(|x| ((x & 0x7fff) as i16, 1))
                .collect();
            let b: Vec<_> = (s..s + n as u64)
                .map(|x| ((x & 0x7fff) as i16, 2))
                .collect();
            e.on_datagram(pool, old, &tx_packet(0, s, &a));
            e.on_datagram(pool, new, &tx_packet(0, s, &b));
            s += n as u64;
        }
        let mut out = TickOutput::default();
        e.tick(&mut out);
        let mut o2 = TickOutput {
            packets: out.packets.clone(),
            captures: vec![],
        };
        collect(&mut out, pool, &mut rx_pool);
        collect(&mut o2, far, &mut rx_far);
    }
    let end = 12 * tick;
    // RX: union of old and new is every sample exactly once, with the far end's count.
    let o = &rx_pool[&old];
    let n = &rx_pool[&new];
    assert!(
        o.iter().all(|(t, _)| *t < at),
        "old host got samples at or after T"
    );
    assert!(
        n.iter().all(|(t, _)| *t >= at),
        "new host got samples before T"
    );
    let mut all: Vec<_> = o.iter().chain(n.iter()).copied().collect();
    all.sort();
    assert_eq!(all.len() as u64, end);
    for (i, (t, s)) in all.iter().enumerate() {
        assert_eq!(*t, i as u64, "sample missing or duplicated");
        assert_eq!(*s, counting(*t), "wrong sample value at {t}");
    }
    // TX: the far end heard old's marker before T and new's from T, every sample
    // (new host sent packets straddling T before the switch was even requested).
    let heard = &rx_far[&far_host];
    assert_eq!(heard.len() as u64, end);
    for (t, (i, q)) in heard {
        // Before the switch request at tick 2, `new` was a stranger: only old transmitted.
        assert_eq!(*i, (*t & 0x7fff) as i16);
        assert_eq!(*q, if *t < at { 1 } else { 2 }, "sample {t}");
    }
    let st = &e.radios()[pool].counters;
    assert_eq!(st.underflow_events, 0);
    assert_eq!(st.late_packets, 0);
    assert!(
        st.stranger_packets >= 1,
        "new host's TX before being announced is a stranger's"
    );
    assert_eq!(e.radios()[pool].linked(), Some(new));
}

#[test]
fn blocked_pair_carries_nothing_and_open_pair_carries_everything() {
    let mut e = AirEngine::new(ideal_config(), None).unwrap();
    let far_host = host(2001);
    e.control(&Request::Link {
        radio: "far".into(),
        endpoint: far_host,
    });
    let full: Vec<_> = (0..1920).map(|_| (10_000i16, -10_000i16)).collect();
    let mut out = TickOutput::default();
    for k in 0..3 {
        e.on_datagram(1, far_host, &tx_packet(1, k * 1920, &full));
        e.tick(&mut out);
        // relayrx (radio 2) cannot hear far; pool (radio 0) hears it exactly.
        assert!(e.last_rx(2).iter().all(|s| s.norm() == 0.0));
        assert!(e
            .last_rx(0)
            .iter()
            .all(|s| (s.re - 10_000.0 / 32768.0).abs() < 1e-7));
        assert!(e.last_tx(1).iter().all(|s| s.norm() > 0.0));
    }
}

#[test]
fn late_tx_and_strangers_are_counted_and_dropped() {
    let mut e = AirEngine::new(ideal_config(), None).unwrap();
    let h = host(3001);
    e.control(&Request::Link {
        radio: "pool".into(),
        endpoint: h,
    });
    let mut out = TickOutput::default();
    for _ in 0..5 {
        e.tick(&mut out);
    }
    let s: Vec<_> = (0..100).map(|_| (1i16, 1i16)).collect();
    // Entirely past, partly past, stranger, malformed.
    e.on_datagram(0, h, &tx_packet(0, 100, &s));
    e.on_datagram(0, h, &tx_packet(0, 5 * 1920 - 50, &s));
    e.on_datagram(0, host(9999), &tx_packet(0, 6 * 1920, &s));
    e.on_datagram(0, h, b"\x10\xd0\x00\x09garbage");
    e.on_datagram(0, h, &tx_packet(7, 6 * 1920, &s)); // wrong stream ID
    let c = &e.radios()[0].counters;
    assert_eq!(c.late_packets, 2);
    assert_eq!(c.late_samples, 150);
    assert_eq!(c.stranger_packets, 1);
    assert_eq!(c.malformed_packets, 2);
    assert_eq!(c.tx_packets, 1);
    e.tick(&mut out);
    // The 50 on-time samples of the partly late packet were transmitted.
    assert_eq!(e.radios()[0].counters.tx_samples, 50);
    assert!(e.last_tx(0)[..50].iter().all(|x| x.norm() > 0.0));
}

#[test]
fn probe_answered_only_when_initialised() {
    let mut c = ideal_config();
    c.radios[0].init_ms = 2; // 3840 samples = 2 ticks
    let mut e = AirEngine::new(c, None).unwrap();
    let probe = ferry_fronthaul::probe::encode_probe(5);
    assert!(e.on_datagram(0, host(1), &probe).is_none());
    assert!(matches!(
        e.control(&Request::Discover {
            radio: Some("pool".into())
        }),
        Reply::Error { .. }
    ));
    let mut out = TickOutput::default();
    e.tick(&mut out);
    e.tick(&mut out);
    e.tick(&mut out);
    let a = e.on_datagram(0, host(1), &probe).expect("answer");
    let (nonce, who) = ferry_fronthaul::probe::decode_answer(&a.bytes).unwrap();
    assert_eq!((nonce, who.radio.as_str()), (5, "pool"));
    assert_eq!(e.radios()[0].counters.init_count, 1);
    match e.control(&Request::Discover { radio: None }) {
        Reply::Found { radios } => assert_eq!(radios.len(), 3),
        r => panic!("{r:?}"),
    }
}

#[test]
fn context_packets_announce_rate_freq_gain() {
    let mut e = AirEngine::new(ideal_config(), None).unwrap();
    let h = host(4001);
    e.control(&Request::Link {
        radio: "pool".into(),
        endpoint: h,
    });
    let mut out = TickOutput::default();
    e.tick(&mut out);
    let ctx: Vec<_> = out
        .packets
        .iter()
        .filter_map(|p| ferry_fronthaul::vrt::ContextRepr::parse_bytes(&p.bytes).ok())
        .collect();
    assert_eq!(ctx.len(), 1);
    assert_eq!(ctx[0].sample_rate_hz, Some(1.92e6));
    assert_eq!(ctx[0].rf_freq_hz, Some(1.9e9));
    assert_eq!(ctx[0].stream_id, StreamId::new(0, Direction::Rx));
    // Data packets: 1920 samples in packets of at most 363 (a 1500-byte IP datagram, never
    // fragmented), counts 0,1,2,...
    let counts: Vec<_> = out
        .packets
        .iter()
        .filter_map(|p| {
            DataRepr::parse_bytes(&p.bytes)
                .ok()
                .map(|d| (d.count, d.num_samples()))
        })
        .collect();
    assert_eq!(
        counts,
        vec![(0, 363), (1, 363), (2, 363), (3, 363), (4, 363), (5, 105)]
    );
    for p in &out.packets {
        assert!(ferry_fronthaul::vrt::IPV4_UDP_OVERHEAD + p.bytes.len() <= 1500);
    }
}

fn tune_packet(radio: u16, dir: Direction, hz: f64) -> Vec<u8> {
    let c = ferry_fronthaul::vrt::ContextRepr {
        stream_id: StreamId::new(radio, dir),
        count: 0,
        timestamp: Timestamp { secs: 0, frac: 0 },
        changed: true,
        bandwidth_hz: None,
        rf_freq_hz: Some(hz),
        gain_db: None,
        sample_rate_hz: None,
    };
    let mut b = Vec::new();
    c.emit(&mut b).unwrap();
    b
}

/// Contexts sent to `to` in `out`: (stream direction, RF frequency).
fn contexts_to(out: &TickOutput, to: SocketAddr) -> Vec<(Option<Direction>, Option<f64>)> {
    out.packets
        .iter()
        .filter(|p| p.to == to)
        .filter_map(|p| ferry_fronthaul::vrt::ContextRepr::parse_bytes(&p.bytes).ok())
        .map(|c| (c.stream_id.direction(), c.rf_freq_hz))
        .collect()
}

/// FDD through the engine: hosts tune their radios with context packets; pool transmits on
/// the downlink carrier and far, listening there, hears it sample for sample; relayrx left
/// on the TDD carrier hears nothing; pool does not hear far's transmission on the uplink
/// carrier until it tunes its receiver there. Out-of-range and stranger requests change
/// nothing and the answer says where the LO stays.
#[test]
fn hosts_tune_their_radios_and_the_air_separates_carriers() {
    let mut e = AirEngine::new(ideal_config(), None).unwrap();
    let (hp, hf, hr) = (host(5001), host(5002), host(5003));
    for (r, h) in [("pool", hp), ("far", hf), ("relayrx", hr)] {
        e.control(&Request::Link {
            radio: r.into(),
            endpoint: h,
        });
    }
    let (dl, ul) = (2140e6, 1950e6);
    e.on_datagram(0, hp, &tune_packet(0, Direction::Tx, dl));
    e.on_datagram(0, hp, &tune_packet(0, Direction::Rx, ul));
    e.on_datagram(1, hf, &tune_packet(1, Direction::Tx, ul));
    e.on_datagram(1, hf, &tune_packet(1, Direction::Rx, dl));
    // A stranger cannot retune someone else's radio; a bad frequency is refused.
    e.on_datagram(2, hp, &tune_packet(2, Direction::Rx, dl));
    e.on_datagram(2, hr, &tune_packet(2, Direction::Tx, 5.8e9));
    let t0 = e.now();
    let mut out = TickOutput::default();
    let samples: Vec<(i16, i16)> = (0..1920).map(|k| counting(t0 + k)).collect();
    e.on_datagram(0, hp, &tx_packet(0, t0, &samples));
    e.on_datagram(1, hf, &tx_packet(1, t0, &samples));
    e.tick(&mut out);
    assert_eq!(
        contexts_to(&out, hp),
        vec![
            (Some(Direction::Tx), Some(dl)),
            (Some(Direction::Rx), Some(ul))
        ]
    );
    assert_eq!(
        contexts_to(&out, hf),
        vec![
            (Some(Direction::Tx), Some(ul)),
            (Some(Direction::Rx), Some(dl))
        ]
    );
    assert_eq!(
        contexts_to(&out, hr),
        vec![
            (Some(Direction::Tx), Some(1.9e9)),
            (Some(Direction::Rx), Some(1.9e9))
        ]
    );
    assert_eq!(e.radios()[2].rf.rx_freq_hz, 1.9e9);
    assert_eq!(
        (e.radios()[1].rf.tx_freq_hz, e.radios()[1].rf.rx_freq_hz),
        (ul, dl)
    );
    // Far (RX on the downlink) hears pool's TX exactly; pool (RX on the uplink) hears far's
    // TX exactly; relayrx, left on the TDD carrier, hears neither.
    for (radio, h) in [(1usize, hf), (0, hp)] {
        let mut got = Received::new();
        let mut o = TickOutput {
            packets: out.packets.clone(),
            ..Default::default()
        };
        collect(&mut o, radio, &mut got);
        let rx = &got[&h];
        assert_eq!(rx.len(), 1920);
        for (t, s) in rx {
            assert_eq!(*s, counting(*t), "radio {radio} sample {t}");
        }
    }
    assert!(e.last_rx(2).iter().all(|s| s.norm() == 0.0));
    assert_eq!(e.channel_mut().coupling_shift_hz(1, 0), Some(0.0));
    assert_eq!(e.channel_mut().coupling_shift_hz(0, 0), None);
    // A power cycle restores the configured tuning.
    e.control(&Request::Reset {
        radio: "far".into(),
    });
    assert_eq!(e.radios()[1].rf.rx_freq_hz, 1.9e9);
    assert_eq!(e.channel_mut().coupling_shift_hz(0, 1), None);
}

/// A radio head in front of hardware keeps its initialised LOs: tuning is answered with the
/// frequency in force and changes nothing.
#[test]
fn fixed_tuning_refuses_and_answers_with_the_frequency_in_force() {
    let mut e = AirEngine::new(ideal_config(), None).unwrap();
    e.set_fixed_tuning(true);
    let h = host(5101);
    e.control(&Request::Link {
        radio: "pool".into(),
        endpoint: h,
    });
    e.on_datagram(0, h, &tune_packet(0, Direction::Tx, 2140e6));
    e.on_datagram(0, h, &tune_packet(0, Direction::Rx, 1950e6));
    let mut out = TickOutput::default();
    e.tick(&mut out);
    assert_eq!(
        contexts_to(&out, h),
        vec![
            (Some(Direction::Tx), Some(1.9e9)),
            (Some(Direction::Rx), Some(1.9e9))
        ]
    );
    assert_eq!(e.radios()[0].rf.tx_freq_hz, 1.9e9);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever the packet sizes, tick size and switch instant, RX goes to exactly one
        /// host per sample and TX comes from the right host for every sample.
        #[test]
        fn switch_exact_for_any_sizes(pkt in 1usize..900, tick in 50usize..1500, at_frac in 0.0f64..1.0) {
            let mut c = ideal_config();
            c.tick_samples = tick;
            let mut e = AirEngine::new(c, None).unwrap();
            let (old, new, far_host) = (host(1), host(2), host(3));
            e.control(&Request::Link { radio: "pool".into(), endpoint: old });
            e.control(&Request::Link { radio: "far".into(), endpoint: far_host });
            let total = (tick * 8) as u64;
            let at = 1 + (at_frac * (total - tick as u64 - 2) as f64) as u64;
            let r = e.control(&Request::SwitchAt { radio: "pool".into(), at, endpoint: new });
            let scheduled = matches!(r, Reply::Scheduled { .. });
            prop_assert!(scheduled, "switch refused: {:?}", r);
            let mut s = 0;
            while s < total {
                let n = (pkt as u64).min(total - s) as usize;
                let a: Vec<_> = (s..s + n as u64).map(|x| ((x & 0x7fff) as i16, 1)).collect();
                let b: Vec<_> = (s..s + n as u64).map(|x| ((x & 0x7fff) as i16, 2)).collect();
                let cnt: Vec<_> = (s..s + n as u64).map(counting).collect();
                e.on_datagram(0, old, &tx_packet(0, s, &a));
                e.on_datagram(0, new, &tx_packet(0, s, &b));
                e.on_datagram(1, far_host, &tx_packet(1, s, &cnt));
                s += n as u64;
            }
            let (mut rx_pool, mut rx_far) = (Received::new(), Received::new());
            for _ in 0..8 {
                let mut out = TickOutput::default();
                e.tick(&mut out);
                let mut o2 = TickOutput { packets: out.packets.clone(), captures: vec![] };
                collect(&mut out, 0, &mut rx_pool);
                collect(&mut o2, 1, &mut rx_far);
            }
            let mut all: Vec<_> = rx_pool.values().flatten().copied().collect();
            all.sort();
            prop_assert_eq!(all.len() as u64, total);
            for (i, (t, v)) in all.iter().enumerate() {
                prop_assert_eq!(*t, i as u64);
                prop_assert_eq!(*v, counting(*t));
            }
            prop_assert!(rx_pool.get(&old).is_none_or(|v| v.iter().all(|g| g.0 < at)));
            prop_assert!(rx_pool.get(&new).is_none_or(|v| v.iter().all(|g| g.0 >= at)));
            for (t, (_, q)) in &rx_far[&far_host] {
                prop_assert_eq!(*q, if *t < at { 1 } else { 2 });
            }
        }

        /// No datagram from a linked host makes the engine panic.
        #[test]
        fn any_datagram_from_linked_host(bytes in proptest::collection::vec(any::<u8>(), 0..300), hdr in any::<u32>()) {
            let mut e = AirEngine::new(ideal_config(), None).unwrap();
            let h = host(5);
            e.control(&Request::Link { radio: "pool".into(), endpoint: h });
            let mut b = hdr.to_be_bytes().to_vec();
            b.extend_from_slice(&bytes);
            e.on_datagram(0, h, &bytes);
            e.on_datagram(0, h, &b);
            let mut out = TickOutput::default();
            e.tick(&mut out);
        }

        /// A two-channel radio takes a host's TX on channels 0 and 1, counts and drops any
        /// other channel, and never panics, whatever the packet's time and size.
        #[test]
        fn any_channel_to_a_two_channel_radio(channel in any::<u8>(), n in 0usize..400, t in 0u64..10_000, garbage in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut e = AirEngine::new(two_channel_config(), None).unwrap();
            let h = host(6);
            e.control(&Request::Link { radio: "pool".into(), endpoint: h });
            let mut b = Vec::new();
            let ts = Timestamp::from_sample_time(t, RATE).unwrap();
            let sid = StreamId::for_channel(0, channel, Direction::Tx);
            emit_data_i16(sid, 0, ts, &vec![(100, -100); n], &mut b).unwrap();
            e.on_datagram(0, h, &b);
            let wrong = e.radios()[0].counters.wrong_channel_packets;
            prop_assert_eq!(wrong, u64::from(channel >= 2));
            b.extend_from_slice(&garbage);
            e.on_datagram(0, h, &b);
            for _ in 0..3 {
                let mut out = TickOutput::default();
                e.tick(&mut out);
            }
        }
    }
}

/// pool and far as two-channel B210s (1.92 Msps from a 30.72 MHz clock), ideal path.
fn two_channel_config() -> AirConfig {
    let mut c = ideal_config();
    c.radios.truncate(2);
    c.links.truncate(1);
    for r in &mut c.radios {
        r.rf.model = ferry_radio::rf::RadioModel::B210;
        r.channels = 2;
    }
    c
}

#[test]
fn two_channels_each_their_stream_antenna_by_antenna_and_wrong_channels_counted() {
    let mut e = AirEngine::new(two_channel_config(), None).unwrap();
    let (pool, far) = (0usize, 1usize);
    let (pool_host, far_host) = (host(1101), host(1102));
    for (radio, h) in [("pool", pool_host), ("far", far_host)] {
        let r = e.control(&Request::Link {
            radio: radio.into(),
            endpoint: h,
        });
        assert!(matches!(r, Reply::Done { .. }), "{r:?}");
    }
    let tick = 1920u64;
    // pool sends a tone on channel 0 only, then on channel 1 only.
    let level = (8000i16, 0i16);
    let mut out = TickOutput::default();
    let mut by_channel: BTreeMap<u8, Vec<(u64, usize, f32)>> = BTreeMap::new();
    for k in 0..4u64 {
        let t0 = k * tick;
        let ch = if k < 2 { 0u8 } else { 1 };
        let mut b = Vec::new();
        let ts = Timestamp::from_sample_time(t0, RATE).unwrap();
        let sid = StreamId::for_channel(0, ch, Direction::Tx);
        emit_data_i16(sid, 0, ts, &vec![level; tick as usize], &mut b).unwrap();
        e.on_datagram(pool, pool_host, &b);
        e.tick(&mut out);
        // Both of far's antennas hear pool's active antenna at full gain; the idle one adds
        // nothing (per-pair coefficients are unit-modulus).
        for rx_ch in 0..2u8 {
            let p = ferry_radio::air::mean_power_of(e.last_rx_channel(far, rx_ch));
            let want = (8000.0f32 / 32768.0).powi(2);
            assert!((p - want).abs() < 1e-4, "tick {k} rx {rx_ch}: {p}");
        }
        assert!(e
            .last_tx_channel(pool, 1 - ch)
            .iter()
            .all(|s| s.norm() == 0.0));
        for p in out.packets.drain(..) {
            if p.radio != far || p.to != far_host {
                continue;
            }
            if let Ok(d) = DataRepr::parse_bytes(&p.bytes) {
                assert_eq!(d.stream_id.radio(), 1);
                let t = d.timestamp.to_sample_time(RATE).unwrap();
                by_channel.entry(d.stream_id.channel()).or_default().push((
                    t,
                    d.num_samples(),
                    0.0,
                ));
            }
        }
    }
    // One stream per channel, equal timestamps and lengths packet for packet.
    assert_eq!(by_channel.len(), 2);
    assert_eq!(by_channel[&0], by_channel[&1]);
    assert_eq!(
        by_channel[&0].iter().map(|x| x.1 as u64).sum::<u64>(),
        4 * tick
    );
    // A TX packet on a channel the radio does not have: dropped, counted, no panic.
    let mut b = Vec::new();
    let ts = Timestamp::from_sample_time(10 * tick, RATE).unwrap();
    emit_data_i16(
        StreamId::for_channel(0, 2, Direction::Tx),
        0,
        ts,
        &[level; 10],
        &mut b,
    )
    .unwrap();
    let before = e.radios()[pool].counters.tx_packets;
    e.on_datagram(pool, pool_host, &b);
    assert_eq!(e.radios()[pool].counters.wrong_channel_packets, 1);
    assert_eq!(e.radios()[pool].counters.tx_packets, before);
}

#[test]
fn a_one_channel_radio_drops_a_second_channel() {
    let mut e = AirEngine::new(ideal_config(), None).unwrap();
    let h = host(1201);
    e.control(&Request::Link {
        radio: "pool".into(),
        endpoint: h,
    });
    let mut b = Vec::new();
    let ts = Timestamp::from_sample_time(100, RATE).unwrap();
    emit_data_i16(
        StreamId::for_channel(0, 1, Direction::Tx),
        0,
        ts,
        &[(1, 1); 10],
        &mut b,
    )
    .unwrap();
    e.on_datagram(0, h, &b);
    let c = &e.radios()[0].counters;
    assert_eq!((c.wrong_channel_packets, c.tx_packets), (1, 0));
}

#[test]
fn two_channels_need_a_two_channel_model() {
    let mut c = two_channel_config();
    c.radios[0].rf.model = ferry_radio::rf::RadioModel::N210;
    let e = AirEngine::new(c, None).unwrap_err().to_string();
    assert!(
        e.contains("needs a two-channel radio") && e.contains("N210"),
        "{e}"
    );
    let mut c = two_channel_config();
    c.radios[0].channels = 3;
    let e = AirEngine::new(c, None).unwrap_err().to_string();
    assert!(e.contains("must be 1 or 2"), "{e}");
}

//! A radio head: the link-control server and VITA-49 fronthaul of `ferry air`, with the
//! emulated air replaced by a paced hardware medium — here the cabled-loopback model of a
//! USRP (TX/RX → attenuator → RX2). Real UDP and ZeroMQ on 127.0.0.1; a `RadioLink` host
//! sends a counting waveform and must get it back sample-exact after the cable's delay,
//! with TX taken `tx_advance` ahead of RX as real hardware needs.

use std::time::{Duration, Instant};

use ferry_radio::config::AirConfig;
use ferry_radio::medium::{Loopback, LoopbackConfig};
use ferry_radio::resample::{N210Plan, ResampledMedium};
use ferry_radio::{AirServer, ControlClient, RadioLink, RadioLinkConfig};
use num_complex::Complex32;

const RATE: u64 = 192_000;
/// Host TX lead over the newest RX (50 ms), as in the air's live tests.
const LEAD: u64 = 9_600;
const DELAY: u64 = 29;
const ADVANCE: u64 = 1_920;

fn config() -> AirConfig {
    config_at(RATE, 192)
}

/// One radio at `rate` in ticks of `tick` samples, private on loopback, no air impairments.
fn config_at(rate: u64, tick: usize) -> AirConfig {
    let mut c = AirConfig::default().with_init_ms(0);
    c.radios.truncate(1);
    c.sample_rate_hz = rate as u32;
    c.tick_samples = tick;
    c.max_catchup_ms = None;
    c.realtime_priority = None;
    c.links.clear();
    c.noise_floor_dbfs = None;
    c.control = "tcp://127.0.0.1:*".into();
    for r in &mut c.radios {
        r.fronthaul = "127.0.0.1:0".parse().unwrap();
        r.rf.rate_hz = rate as u32;
    }
    c
}

fn counting(s: u64) -> (i16, i16) {
    ((s & 0x7fff) as i16, ((s >> 15) & 0x7fff) as i16)
}

#[test]
fn loopback_head_returns_the_waveform_sample_exact() {
    let medium = Loopback::new(LoopbackConfig {
        rate_hz: RATE as u32,
        gain_db: 0.0,
        delay_samples: DELAY,
        tx_advance: ADVANCE,
    });
    let head = AirServer::spawn_with(config(), Some(Box::new(medium)), || Ok(())).unwrap();
    let mut host = RadioLink::create(&RadioLinkConfig::new(&head.control, "pool")).unwrap();
    host.link().unwrap();
    let mut got: Vec<(u64, (i16, i16))> = Vec::new();
    let mut sent_from: Option<u64> = None;
    let mut sent_until = 0u64;
    let end = Instant::now() + Duration::from_millis(600);
    while Instant::now() < end {
        let Ok((t, s)) = host.recv_i16(Duration::from_millis(5)) else {
            continue;
        };
        got.extend(s.iter().enumerate().map(|(k, v)| (t + k as u64, *v)));
        let newest = got.last().map_or(0, |g| g.0 + 1);
        let from = sent_until.max(newest + LEAD / 2);
        let to = newest + LEAD;
        if to > from {
            let s: Vec<_> = (from..to).map(counting).collect();
            host.send_i16(from, &s).unwrap();
            sent_from.get_or_insert(from);
            sent_until = to;
        }
    }
    let first = sent_from.expect("sent something") + DELAY;
    let mut checked = 0;
    for (t, v) in &got {
        if *t >= first && *t < sent_until + DELAY {
            assert_eq!(*v, counting(t - DELAY), "sample {t}");
            checked += 1;
        } else if *t < first {
            assert_eq!(*v, (0, 0), "sample {t} before any TX");
        }
    }
    assert!(
        checked > RATE as usize / 10,
        "only {checked} samples checked"
    );
    let ctl = ControlClient::new(head.control.clone(), Duration::from_secs(1));
    let (_, st) = ctl.status("pool").unwrap();
    assert_eq!(st.counters.late_packets, 0, "{:?}", st.counters);
    assert_eq!(st.counters.hw_rx_lost_samples, 0);
    // A packet for a time inside the advance window is late for hardware that already
    // took TX that far: counted, like an N210's late packets.
    let (now, _) = ctl.status("pool").unwrap();
    host.send_i16(now + ADVANCE / 4, &[(1, 1); 64]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let (_, st) = ctl.status("pool").unwrap();
    assert_eq!(st.counters.late_packets, 1, "{:?}", st.counters);
    let summary = head.stop().unwrap();
    assert!(summary.ticks > 0);
    assert_eq!(
        summary.clock_slips, 0,
        "a paced medium never slips the clock"
    );
}

// The radio head with an N210 behind the rational resampler: the head serves LTE's 1.92
// Msps while the modelled device runs at 100 MHz / 52, its cable delaying by 625 device
// samples (= 624 LTE samples). A host sends a tone stamped in LTE sample time over real
// UDP/ZeroMQ and must get it back at exactly that time plus 624 samples: the phase of the
// tone resolves a fraction of a sample, so a timestamp off by one fails (the same path a real
// N210 takes through `uhd::open_lte`, up to libuhd).

const N210_RATE: u64 = 1_920_000;
const N210_LEAD: u64 = 48_000;
const F: f64 = 211e3;

fn tone(t: u64) -> Complex32 {
    let a = 2.0 * std::f64::consts::PI * F * t as f64 / N210_RATE as f64;
    Complex32::new(0.5 * a.cos() as f32, 0.5 * a.sin() as f32)
}

#[test]
fn n210_head_returns_a_tone_at_the_exact_lte_sample_time() {
    let plan = N210Plan::for_lte_rate(N210_RATE as u32).unwrap();
    let device = Loopback::new(LoopbackConfig {
        rate_hz: plan.device_rate_hz().round() as u32,
        gain_db: 0.0,
        delay_samples: 625,
        tx_advance: 2_000,
    });
    let medium = ResampledMedium::new(Box::new(device), &plan, 1_924);
    let c = config_at(N210_RATE, 1_920);
    let head = AirServer::spawn_with(c, Some(Box::new(medium)), || Ok(())).unwrap();
    let mut host = RadioLink::create(&RadioLinkConfig::new(&head.control, "pool")).unwrap();
    host.link().unwrap();
    let mut got: Vec<(u64, Complex32)> = Vec::new();
    let mut sent: Option<(u64, u64)> = None;
    let end = Instant::now() + Duration::from_millis(800);
    while Instant::now() < end {
        let Ok(b) = host.recv(Duration::from_millis(5)) else {
            continue;
        };
        got.extend(
            b.samples
                .iter()
                .enumerate()
                .map(|(k, v)| (b.time + k as u64, *v)),
        );
        let newest = got.last().map_or(0, |g| g.0 + 1);
        let from = sent.map_or(newest + N210_LEAD / 2, |s| s.1);
        let to = newest + N210_LEAD;
        if to > from {
            let s: Vec<_> = (from..to).map(tone).collect();
            for (k, chunk) in s.chunks(300).enumerate() {
                host.send(from + 300 * k as u64, chunk).unwrap();
            }
            sent = Some((sent.map_or(from, |s| s.0), to));
        }
    }
    let (first, last) = sent.expect("sent something");
    // Skip the filters' start-up (a few dozen samples) at the first TX.
    let (lo, hi) = (first + 624 + 200, last + 624 - 200);
    let (mut e, mut p, mut e1, mut n) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    for (t, v) in got.iter().filter(|(t, _)| (lo..hi).contains(t)) {
        e += f64::from((v - tone(t - 624)).norm_sqr());
        e1 += f64::from((v - tone(t - 623)).norm_sqr());
        p += f64::from(tone(*t).norm_sqr());
        n += 1;
    }
    assert!(n > N210_RATE as usize / 10, "only {n} samples checked");
    let evm = 10.0 * (e / p).log10();
    let off_by_one = 10.0 * (e1 / p).log10();
    assert!(evm < -40.0, "EVM {evm:.1} dB at the exact time");
    assert!(
        off_by_one > -20.0,
        "a one-sample error must show: {off_by_one:.1} dB"
    );
    let ctl = ControlClient::new(head.control.clone(), Duration::from_secs(1));
    let (_, st) = ctl.status("pool").unwrap();
    assert_eq!(st.counters.late_packets, 0, "{:?}", st.counters);
    let summary = head.stop().unwrap();
    assert_eq!(summary.clock_slips, 0);
}

/// A radio head streams one channel per radio: a two-channel radio in its configuration is
/// refused at start with the reason, not run on one antenna.
#[test]
fn a_head_refuses_two_channel_radios() {
    let mut c = config_at(1_920_000, 1920);
    c.radios[0].rf.model = ferry_radio::rf::RadioModel::B210;
    c.radios[0].channels = 2;
    c.validate().expect("a valid air configuration");
    let medium = Loopback::new(LoopbackConfig {
        rate_hz: 1_920_000,
        gain_db: 0.0,
        delay_samples: DELAY,
        tx_advance: ADVANCE,
    });
    let e = AirServer::spawn_with(c, Some(Box::new(medium)), || Ok(()))
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("one channel per radio"), "{e}");
}

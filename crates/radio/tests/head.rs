//! A radio head: the link-control server and VITA-49 fronthaul of `ferry air`, with the
//! emulated air replaced by a paced hardware medium — here the cabled-loopback model of a
//! USRP (TX/RX → attenuator → RX2). Real UDP and ZeroMQ on 127.0.0.1; a `RadioLink` host
//! sends a counting waveform and must get it back sample-exact after the cable's delay,
//! with TX taken `tx_advance` ahead of RX as real hardware needs.

use std::time::{Duration, Instant};

use ferry_radio::config::AirConfig;
use ferry_radio::medium::{Loopback, LoopbackConfig};
use ferry_radio::{AirServer, ControlClient, RadioLink, RadioLinkConfig};

const RATE: u64 = 192_000;
/// Host TX lead over the newest RX (50 ms), as in the air's live tests.
const LEAD: u64 = 9_600;
const DELAY: u64 = 29;
const ADVANCE: u64 = 1_920;

fn config() -> AirConfig {
    let mut c = AirConfig::default().with_init_ms(0);
    c.radios.truncate(1);
    c.sample_rate_hz = RATE as u32;
    c.tick_samples = 192;
    c.max_catchup_ms = None;
    c.realtime_priority = None;
    c.links.clear();
    c.noise_floor_dbfs = None;
    c.control = "tcp://127.0.0.1:*".into();
    for r in &mut c.radios {
        r.fronthaul = "127.0.0.1:0".parse().unwrap();
        r.rf.rate_hz = RATE as u32;
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

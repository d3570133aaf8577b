//! `ferry air` in-process with real UDP fronthaul and real ZeroMQ link control on
//! 127.0.0.1 ephemeral ports; hosts are `RadioLink`s. Each test starts its own air and
//! stops it when the handle drops.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use ferry_fronthaul::control::{CaptureFormat, CaptureStream, ErrorCode, Reply, Request};
use ferry_fronthaul::vrt::{emit_data_i16, Direction, StreamId, Timestamp};
use ferry_radio::config::{AirConfig, LinkConfig};
use ferry_radio::{AirServer, ControlClient, RadioError, RadioLink, RadioLinkConfig};

/// A tenth of the LTE rate (30.72 MHz / 160) keeps these tests light on a loaded 2-core
/// machine; the real-time budget at 1.92 Msps is measured by the benches instead.
const RATE: u64 = 192_000;
/// TX is sent this far ahead of the newest RX (50 ms), like a UHD application's lead time.
const LEAD: u64 = 9_600;

fn config() -> AirConfig {
    let mut c = AirConfig::default().with_init_ms(0);
    c.radios.truncate(3);
    c.sample_rate_hz = RATE as u32;
    c.tick_samples = 192;
    // Never skip air time when the machine is busy: every sample must reach the hosts.
    c.max_catchup_ms = None;
    for r in &mut c.radios {
        r.fronthaul = "127.0.0.1:0".parse().unwrap();
        r.rf.rate_hz = RATE as u32;
    }
    c.control = "tcp://127.0.0.1:*".into();
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

fn marker(tag: i16) -> impl Fn(u64) -> (i16, i16) {
    move |s| ((s & 0x7fff) as i16, tag)
}

fn link(control: &str, radio: &str) -> RadioLink {
    RadioLink::create(&RadioLinkConfig::new(control, radio)).expect("create radio link")
}

/// What a host transmits at each sample time.
type Pattern = Box<dyn Fn(u64) -> (i16, i16)>;

/// A host in the test: its link, what it received, and what it transmits.
struct Host {
    link: RadioLink,
    got: Vec<(u64, (i16, i16))>,
    pattern: Option<Pattern>,
    sent_until: u64,
}

impl Host {
    fn new(link: RadioLink, pattern: Option<Pattern>) -> Self {
        Self {
            link,
            got: Vec::new(),
            pattern,
            sent_until: 0,
        }
    }
    fn latest(&self) -> u64 {
        self.got.last().map_or(0, |g| g.0 + 1)
    }
}

/// Receives on every host for `dur`; whenever RX up to time t arrives anywhere, every
/// transmitting host sends its pattern up to t + LEAD (each span once).
fn pump(hosts: &mut [Host], dur: Duration) {
    let end = Instant::now() + dur;
    while Instant::now() < end {
        let mut newest = 0;
        for h in hosts.iter_mut() {
            // Bounded, so one busy host cannot starve the others' TX.
            for _ in 0..64 {
                let Ok((t, s)) = h.link.recv_i16(Duration::from_micros(200)) else {
                    break;
                };
                h.got
                    .extend(s.iter().enumerate().map(|(k, v)| (t + k as u64, *v)));
            }
            newest = newest.max(h.latest());
        }
        if newest == 0 {
            continue;
        }
        for h in hosts.iter_mut() {
            let Some(p) = &h.pattern else { continue };
            let from = h.sent_until.max(newest + LEAD / 2);
            let to = newest + LEAD;
            if to > from {
                let s: Vec<_> = (from..to).map(p).collect();
                h.link.send_i16(from, &s).expect("send");
                h.sent_until = to;
            }
        }
    }
}

#[test]
fn switch_at_over_sockets_is_sample_exact() {
    let air = AirServer::spawn(config(), || Ok(())).unwrap();
    let mut far = link(&air.control, "far");
    far.link().unwrap();
    let mut old = link(&air.control, "pool");
    old.link().unwrap();
    let new = link(&air.control, "pool");
    let mut hosts = vec![
        Host::new(far, Some(Box::new(counting))),
        Host::new(old, Some(Box::new(marker(1)))),
        Host::new(new, None),
    ];
    pump(&mut hosts, Duration::from_millis(150));
    let ctl = ControlClient::new(air.control.clone(), Duration::from_secs(1));
    let (now, _) = ctl.status("pool").unwrap();
    // 100 ms ahead, deliberately off any tick or packet boundary.
    let at = now + RATE / 10 + 123;
    hosts[2].link.take_over_at(at).unwrap();
    hosts[2].pattern = Some(Box::new(marker(2)));
    pump(&mut hosts, Duration::from_millis(250));
    let (_, st) = ctl.status("pool").unwrap();
    drop(air);

    let (far, old, new) = (&hosts[0], &hosts[1], &hosts[2]);
    assert!(
        new.latest() > at + 20_000,
        "air did not run long enough past T"
    );
    assert!(old.got.len() > 20_000);
    assert!(
        old.got.iter().all(|g| g.0 < at),
        "old host received samples from T on"
    );
    assert!(
        new.got.iter().all(|g| g.0 >= at),
        "new host received samples before T"
    );
    assert_eq!(
        old.got.last().map(|g| g.0),
        Some(at - 1),
        "old host's last sample is T-1"
    );
    assert_eq!(
        new.got.first().map(|g| g.0),
        Some(at),
        "new host's first sample is T"
    );
    let mut all: Vec<_> = old.got.iter().chain(&new.got).copied().collect();
    all.sort();
    let first = all[0].0;
    for (k, (t, v)) in all.iter().enumerate() {
        assert_eq!(*t, first + k as u64, "sample missing or duplicated");
        assert!(
            *v == counting(*t) || *v == (0, 0),
            "pool RX at {t} is {v:?}"
        );
    }
    // Around T the far end is streaming its count (zeros only where a busy test thread
    // made its TX late, which the radio counts).
    let near: Vec<_> = all
        .iter()
        .filter(|g| g.0 + 5_000 >= at && g.0 < at + 5_000)
        .collect();
    assert!(near.iter().filter(|(t, v)| *v == counting(*t)).count() > near.len() / 2);
    // The far end heard the pool radio: old's marker before T, new's from T, never the
    // other way round.
    let (mut before, mut after) = (0, 0);
    for (t, v) in far
        .got
        .iter()
        .filter(|g| g.0 + 5_000 >= at && g.0 < at + 5_000)
    {
        let want = if *t < at {
            marker(1)(*t)
        } else {
            marker(2)(*t)
        };
        assert!(*v == want || *v == (0, 0), "far heard {v:?} at {t}");
        if *v == want {
            if *t < at {
                before += 1
            } else {
                after += 1
            }
        }
    }
    assert!(before > 2_500 && after > 2_500, "{before} {after}");
    assert_eq!(old.link.stats.rx_gap_samples, 0);
    assert_eq!(new.link.stats.rx_gap_samples, 0);
    assert_eq!(st.counters.init_count, 1);
    assert_eq!(st.linked, Some(new.link.endpoint()));
    assert!(st.counters.switch_trimmed_samples > 0);
}

#[test]
fn shadow_copy_unlink_relink_without_reinit() {
    let air = AirServer::spawn(config(), || Ok(())).unwrap();
    let mut far = link(&air.control, "far");
    far.link().unwrap();
    let mut a = link(&air.control, "pool");
    a.link().unwrap();
    let mut b = link(&air.control, "pool");
    b.shadow().unwrap();
    let mut hosts = vec![
        Host::new(far, Some(Box::new(counting))),
        Host::new(a, None),
        Host::new(b, None),
    ];
    pump(&mut hosts, Duration::from_millis(150));
    let (pa, pb) = (&hosts[1].got, &hosts[2].got);
    assert!(
        pa.len() > 10_000 && pb.len() > 10_000,
        "{} {}",
        pa.len(),
        pb.len()
    );
    // Shadow samples are identical to the primary's at the same times.
    let common: std::collections::HashMap<u64, (i16, i16)> = pa.iter().copied().collect();
    let mut matched = 0;
    for (t, v) in pb {
        if let Some(w) = common.get(t) {
            assert_eq!(v, w, "shadow differs at {t}");
            matched += 1;
        }
    }
    assert!(matched > 10_000);
    assert_eq!(hosts[2].link.stats.rx_gap_samples, 0);

    // Unlink and relink many times: the radio never re-initialises.
    let ctl = ControlClient::new(air.control.clone(), Duration::from_secs(1));
    for _ in 0..5 {
        hosts[1].link.unlink().unwrap();
        hosts[1].link.link().unwrap();
    }
    let (_, st) = ctl.status("pool").unwrap();
    assert_eq!(st.counters.init_count, 1);
    assert_eq!(st.linked, Some(hosts[1].link.endpoint()));
    assert_eq!(st.shadow, Some(hosts[2].link.endpoint()));
    assert!(st.counters.shadow_samples > 0);
    // A host that does not hold the link cannot unlink it.
    assert!(matches!(
        hosts[2].link.unlink(),
        Err(RadioError::Refused { .. })
    ));
    hosts[1].link.unlink().unwrap();
    // After unlinking, the old primary stops receiving (drain what was in flight first).
    std::thread::sleep(Duration::from_millis(20));
    while hosts[1].link.recv_i16(Duration::from_millis(1)).is_ok() {}
    assert!(matches!(
        hosts[1].link.recv_i16(Duration::from_millis(50)),
        Err(RadioError::RxTimeout(_))
    ));
    // A reset is a power cycle: counted.
    ctl.call(&Request::Reset {
        radio: "pool".into(),
    })
    .unwrap();
    let (_, st) = ctl.status("pool").unwrap();
    assert_eq!(st.counters.init_count, 2);
}

#[test]
fn errors_strangers_late_and_malformed_control() {
    let air = AirServer::spawn(config(), || Ok(())).unwrap();
    let ctl = ControlClient::new(air.control.clone(), Duration::from_secs(1));
    // Garbage and unknown requests get error replies; the server keeps serving.
    let ctx = zmq::Context::new();
    for junk in [&b"\xff\x00garbage"[..], br#"{"op":"self_destruct"}"#, b""] {
        let s = ctx.socket(zmq::REQ).unwrap();
        s.set_rcvtimeo(1000).unwrap();
        s.set_linger(0).unwrap();
        s.connect(&air.control).unwrap();
        s.send(junk, 0).unwrap();
        let r = Reply::from_bytes(&s.recv_bytes(0).unwrap()).unwrap();
        assert!(
            matches!(
                r,
                Reply::Error {
                    code: ErrorCode::BadRequest,
                    ..
                }
            ),
            "{r:?}"
        );
    }
    assert!(matches!(
        ctl.call(&Request::Link {
            radio: "nope".into(),
            endpoint: "127.0.0.1:9".parse().unwrap()
        }),
        Err(RadioError::NotFound { .. })
    ));
    assert!(matches!(
        RadioLink::create(&RadioLinkConfig::new(air.control.clone(), "nope")),
        Err(RadioError::NotFound { .. })
    ));

    let mut h = link(&air.control, "pool");
    h.link().unwrap();
    let (t, _) = h.recv_i16(Duration::from_secs(1)).unwrap();
    // Late: timestamps already on the air.
    h.send_i16(t.saturating_sub(1000), &[(1, 1); 100]).unwrap();
    // Stranger: a valid TX packet from a socket that is not linked.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut pkt = Vec::new();
    let ts = Timestamp::from_sample_time(t + LEAD, RATE as u32).unwrap();
    emit_data_i16(
        StreamId::new(0, Direction::Tx),
        0,
        ts,
        &[(5, 5); 10],
        &mut pkt,
    )
    .unwrap();
    stranger.send_to(&pkt, h.info().fronthaul).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let (_, st) = ctl.status("pool").unwrap();
    assert_eq!(st.counters.late_packets, 1);
    assert_eq!(st.counters.late_samples, 100);
    assert_eq!(st.counters.stranger_packets, 1);
    assert_eq!(st.counters.tx_packets, 0);
    // Switching to a time already past is refused.
    assert!(matches!(
        ctl.call(&Request::SwitchAt {
            radio: "pool".into(),
            at: 1,
            endpoint: "127.0.0.1:9".parse().unwrap()
        }),
        Err(RadioError::Refused { .. })
    ));
    drop(air);

    // Nobody listening: a clear timeout, not a hang.
    let dead = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let start = Instant::now();
    let mut cfg = RadioLinkConfig::new(format!("tcp://{dead}"), "pool");
    cfg.timeout = Duration::from_millis(200);
    assert!(matches!(
        RadioLink::create(&cfg),
        Err(RadioError::Timeout { .. })
    ));
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn discover_waits_for_init_and_probe_answers_over_fronthaul() {
    let mut c = config();
    c.radios[0].init_ms = 300;
    let air = AirServer::spawn(c, || Ok(())).unwrap();
    let e = RadioLink::create(&RadioLinkConfig::new(air.control.clone(), "pool")).unwrap_err();
    assert!(matches!(e, RadioError::NotFound { .. }), "{e}");
    assert!(
        e.to_string().contains("initialising") || e.to_string().contains("not powered"),
        "{e}"
    );
    std::thread::sleep(Duration::from_millis(400));
    let l = link(&air.control, "pool");
    let a = l.probe(8, Duration::from_millis(100)).unwrap();
    assert_eq!(a.radio, "pool");
    let ctl = ControlClient::new(air.control.clone(), Duration::from_secs(1));
    let (_, st) = ctl.status("pool").unwrap();
    assert_eq!(st.counters.init_count, 1);
    assert!(st.ready);
}

#[test]
fn capture_by_control_command_writes_sigmf() {
    let dir = std::env::temp_dir().join(format!("ferry-cap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = config();
    cfg.capture_dir = Some(dir.clone());
    let air = AirServer::spawn(cfg, || Ok(())).unwrap();
    let ctl = ControlClient::new(air.control.clone(), Duration::from_secs(1));
    let mut far = link(&air.control, "far");
    far.link().unwrap();
    let mut hosts = vec![Host::new(far, Some(Box::new(counting)))];
    pump(&mut hosts, Duration::from_millis(150));
    let r = ctl
        .call(&Request::Capture {
            radio: "pool".into(),
            stream: CaptureStream::Rx,
            format: CaptureFormat::Ci16Le,
            samples: 4000,
        })
        .unwrap();
    let ferry_fronthaul::control::Reply::Capturing { file, .. } = r else {
        panic!("{r:?}")
    };
    let base = dir.join(file);
    pump(&mut hosts, Duration::from_millis(100));
    drop(air);
    let (meta, s) = ferry_radio::sigmf::read(&base).unwrap();
    assert_eq!(s.len(), 4000);
    assert_eq!(meta["global"]["ferry:samples"], 4000);
    assert_eq!(meta["global"]["core:sample_rate"], RATE);
    let t0 = meta["captures"][0]["ferry:sample_time"].as_u64().unwrap();
    // The pool radio received the far end's count exactly (zeros only if TX was late).
    let mut exact = 0;
    for (k, v) in s.iter().enumerate() {
        let (i, q) = counting(t0 + k as u64);
        let got = (v.re * 32768.0, v.im * 32768.0);
        assert!(
            got == (f32::from(i), f32::from(q)) || got == (0.0, 0.0),
            "{got:?} at {k}"
        );
        exact += usize::from(got != (0.0, 0.0));
    }
    assert!(exact > 2000);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn capture_from_configuration_records_tx() {
    let dir = std::env::temp_dir().join(format!("ferry-cfgcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("far-tx");
    let mut c = config();
    c.captures.push(ferry_radio::config::CaptureConfig {
        radio: "far".into(),
        stream: CaptureStream::Tx,
        format: CaptureFormat::Cf32Le,
        path: base.to_string_lossy().into_owned(),
        samples: 96_000,
    });
    let air = AirServer::spawn(c, || Ok(())).unwrap();
    let mut far = link(&air.control, "far");
    far.link().unwrap();
    let mut hosts = vec![Host::new(far, Some(Box::new(counting)))];
    pump(&mut hosts, Duration::from_millis(700));
    drop(air);
    let (meta, s) = ferry_radio::sigmf::read(&base).unwrap();
    assert_eq!(meta["global"]["core:datatype"], "cf32_le");
    assert_eq!(meta["captures"][0]["ferry:sample_time"], 0);
    assert_eq!(s.len(), 96_000);
    // What the far radio transmitted is the host's count wherever the host was streaming.
    let mut exact = 0;
    for (t, v) in s.iter().enumerate() {
        let (i, q) = counting(t as u64);
        let got = (v.re * 32768.0, v.im * 32768.0);
        assert!(
            got == (f32::from(i), f32::from(q)) || got == (0.0, 0.0),
            "{got:?} at {t}"
        );
        exact += usize::from(got != (0.0, 0.0));
    }
    assert!(exact > 40_000, "{exact}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Tuning over the fronthaul: the linked host's context packets move its radio's LOs and
/// the radio's answers confirm them; an out-of-range frequency is refused with the
/// frequency the LO keeps; a shadow cannot tune; the air then separates the carriers:
/// pool transmitting on 2140 MHz reaches far only while far listens there.
#[test]
fn tune_over_fronthaul_confirms_refuses_and_separates_carriers() {
    let air = AirServer::spawn(config(), || Ok(())).unwrap();
    let mut pool = link(&air.control, "pool");
    pool.link().unwrap();
    let mut far = link(&air.control, "far");
    far.link().unwrap();
    pool.tune(2140e6, 1950e6, Duration::from_secs(2)).unwrap();
    assert_eq!(
        pool.last_tx_context.as_ref().and_then(|c| c.rf_freq_hz),
        Some(2140e6)
    );
    assert_eq!(
        pool.last_context.as_ref().and_then(|c| c.rf_freq_hz),
        Some(1950e6)
    );
    match far.tune(5.8e9, 2140e6, Duration::from_secs(2)) {
        Err(RadioError::Tuning { lo, wanted, got }) => {
            assert_eq!((lo, wanted, got), ("TX", 5.8e9, Some(1.9e9)));
        }
        r => panic!("{r:?}"),
    }
    let mut shadow = link(&air.control, "pool");
    shadow.shadow().unwrap();
    assert!(shadow.tune(1e9, 1e9, Duration::from_millis(300)).is_err());
    // Each LO is its own request: far's valid RX tuning went through although its TX was
    // refused. Tune both validly; far now listens on pool's 2140 MHz and hears it.
    far.tune(1950e6, 2140e6, Duration::from_secs(2)).unwrap();
    let mut hosts = vec![
        Host::new(pool, Some(Box::new(counting))),
        Host::new(far, None),
    ];
    pump(&mut hosts, Duration::from_millis(150));
    let heard = hosts[1].got.iter().filter(|(_, s)| *s != (0, 0)).count();
    assert!(heard > 10_000, "far on pool's carrier hears it: {heard}");
    // Far moves its receiver 1 MHz (> the 192 kHz sample rate) away: silence.
    hosts[1]
        .link
        .tune(1950e6, 2141e6, Duration::from_secs(2))
        .unwrap();
    hosts[1].got.clear();
    pump(&mut hosts, Duration::from_millis(100));
    assert!(hosts[1].got.len() > 5_000);
    assert!(
        hosts[1].got.iter().all(|(_, s)| *s == (0, 0)),
        "far off pool's carrier hears nothing"
    );
}

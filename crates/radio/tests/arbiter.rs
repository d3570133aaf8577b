//! The radio as arbiter, through the engine's link control and fronthaul (no sockets):
//! protection and failover on a silent primary, fallback after a planned switch whose new
//! primary dies, cancel before T, fencing of a deposed primary, and the authenticated
//! in-band notices each change sends to the hosts concerned.

use std::net::SocketAddr;

use ferry_fronthaul::control::{Reply, Request};
use ferry_fronthaul::notice::{NoticeKind, NoticeRepr};
use ferry_fronthaul::vrt::{emit_data_i16, Direction, StreamId, Timestamp};
use ferry_radio::config::AirConfig;
use ferry_radio::engine::{AirEngine, TickOutput};

const RATE: u32 = 1_920_000;
const TICK: u64 = 1920;
const KEY: &[u8] = b"the radio room's key, 32 bytes!!";

fn host(p: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], p))
}

fn engine() -> AirEngine {
    let mut c = AirConfig::default().with_init_ms(0);
    c.noise_floor_dbfs = None;
    c.liveness_subframes = 3;
    let mut e = AirEngine::new(c, None).unwrap();
    e.set_notice_key(Some(KEY.to_vec()));
    e
}

fn tx(t: u64, tag: i16) -> Vec<u8> {
    let mut b = Vec::new();
    let ts = Timestamp::from_sample_time(t, RATE).unwrap();
    let s = vec![(tag, 0i16); TICK as usize];
    emit_data_i16(StreamId::new(0, Direction::Tx), 0, ts, &s, &mut b).unwrap();
    b
}

/// Runs ticks until `until`; each host in `senders` that `alive` says is alive sends the
/// pool radio one tick of TX two ticks ahead. Returns the notices each host received.
fn run(
    e: &mut AirEngine,
    until: u64,
    senders: &[(SocketAddr, i16)],
    alive: impl Fn(SocketAddr, u64) -> bool,
) -> Vec<(SocketAddr, NoticeRepr)> {
    let mut notices = Vec::new();
    let mut out = TickOutput::default();
    while e.now() < until {
        let now = e.now();
        for &(h, tag) in senders {
            if alive(h, now) {
                e.on_datagram(0, h, &tx(now + 2 * TICK, tag));
            }
        }
        e.tick(&mut out);
        for p in out.packets.drain(..) {
            if NoticeRepr::is_notice(&p.bytes) {
                let n = NoticeRepr::parse_bytes(&p.bytes, KEY).expect("authentic notice");
                notices.push((p.to, n));
            }
        }
        out.captures.clear();
    }
    notices
}

fn status(e: &mut AirEngine) -> ferry_fronthaul::control::StatusReport {
    match e.control(&Request::Status {
        radio: Some("pool".into()),
    }) {
        Reply::Status { mut radios, .. } => radios.remove(0),
        r => panic!("{r:?}"),
    }
}

#[test]
fn a_protected_primary_that_dies_fails_over_and_is_fenced() {
    let mut e = engine();
    let (primary, standby) = (host(1001), host(1002));
    e.control(&Request::Link {
        radio: "pool".into(),
        endpoint: primary,
    });
    let r = e.control(&Request::Protect {
        radio: "pool".into(),
        endpoint: Some(standby),
    });
    assert!(matches!(r, Reply::Done { .. }), "{r:?}");
    assert_eq!(status(&mut e).arbiter.standby, Some(standby));
    // The primary dies at 100 ms; the standby stays alive.
    let died = 100 * TICK;
    let notices = run(
        &mut e,
        200 * TICK,
        &[(primary, 1), (standby, 2)],
        |h, now| h == standby || now < died,
    );
    let st = status(&mut e);
    assert_eq!(st.linked, Some(standby));
    assert_eq!(st.arbiter.failovers, 1);
    assert_eq!(st.arbiter.standby, None, "unprotected until re-protected");
    // Both the standby and the dead primary were told, with the same newer epoch.
    let fo: Vec<_> = notices
        .iter()
        .filter(|(_, n)| n.kind == NoticeKind::Failover)
        .collect();
    assert!(fo.iter().any(|(to, _)| *to == standby));
    assert!(fo.iter().any(|(to, _)| *to == primary));
    let n = fo[0].1;
    assert_eq!(n.primary, Some(standby));
    assert_eq!(n.epoch, st.arbiter.epoch);
    // Detected within liveness (3 subframes) + one tick of the last TX arrival, at a
    // subframe boundary.
    assert_eq!(n.from_sample % TICK, 0);
    let last_heard = died - TICK;
    assert!(
        n.from_sample <= last_heard + 5 * TICK,
        "{} vs {}",
        n.from_sample,
        last_heard
    );
    // The old primary resumes (it was only paused): its TX is dropped and counted.
    run(&mut e, 210 * TICK, &[(primary, 1)], |_, _| true);
    assert!(status(&mut e).arbiter.fenced_packets >= 5);
    assert_eq!(status(&mut e).linked, Some(standby));
}

#[test]
fn a_planned_switch_whose_new_primary_dies_falls_back() {
    let mut e = engine();
    let (src, dst) = (host(1001), host(1002));
    e.control(&Request::Link {
        radio: "pool".into(),
        endpoint: src,
    });
    run(&mut e, 10 * TICK, &[(src, 1)], |_, _| true);
    let at = 30 * TICK;
    let r = e.control(&Request::SwitchAtFallback {
        radio: "pool".into(),
        at,
        endpoint: dst,
        grace_ms: 500,
    });
    assert!(matches!(r, Reply::Scheduled { .. }), "{r:?}");
    // The destination dies right at T; the source stands by in its grace period.
    let notices = run(&mut e, 100 * TICK, &[(src, 1), (dst, 2)], |h, now| {
        h == src || now < at
    });
    let st = status(&mut e);
    assert_eq!(st.linked, Some(src), "the source serves again");
    assert_eq!(st.arbiter.fallbacks, 1);
    let kinds: Vec<_> = notices
        .iter()
        .filter(|(to, _)| *to == src)
        .map(|(_, n)| n.kind)
        .collect();
    assert!(kinds.contains(&NoticeKind::Planned) && kinds.contains(&NoticeKind::Fallback));
}

#[test]
fn cancel_before_t_keeps_the_source_and_sends_no_notice() {
    let mut e = engine();
    let (src, dst) = (host(1001), host(1002));
    e.control(&Request::Link {
        radio: "pool".into(),
        endpoint: src,
    });
    run(&mut e, 5 * TICK, &[(src, 1)], |_, _| true);
    let epoch = status(&mut e).arbiter.epoch;
    e.control(&Request::SwitchAt {
        radio: "pool".into(),
        at: 50 * TICK,
        endpoint: dst,
    });
    run(&mut e, 20 * TICK, &[(src, 1), (dst, 2)], |_, _| true);
    let r = e.control(&Request::CancelSwitch {
        radio: "pool".into(),
    });
    assert!(matches!(r, Reply::Done { .. }), "{r:?}");
    let notices = run(&mut e, 80 * TICK, &[(src, 1), (dst, 2)], |_, _| true);
    let st = status(&mut e);
    assert_eq!(st.linked, Some(src));
    assert_eq!(st.arbiter.epoch, epoch);
    assert_eq!(st.arbiter.cancelled_switches, 1);
    assert_eq!(st.counters.underflow_events, 0, "no TX gap for the source");
    assert!(notices.iter().all(|(_, n)| n.epoch == epoch), "{notices:?}");
    // Nothing to cancel now; a stranger's TX is still a stranger's.
    assert!(matches!(
        e.control(&Request::CancelSwitch {
            radio: "pool".into()
        }),
        Reply::Error { .. }
    ));
}

#[test]
fn without_a_key_no_notices_are_sent() {
    let mut c = AirConfig::default().with_init_ms(0);
    c.noise_floor_dbfs = None;
    let mut e = AirEngine::new(c, None).unwrap();
    e.control(&Request::Link {
        radio: "pool".into(),
        endpoint: host(1001),
    });
    let mut out = TickOutput::default();
    for _ in 0..5 {
        e.tick(&mut out);
    }
    assert!(out.packets.iter().all(|p| !NoticeRepr::is_notice(&p.bytes)));
}

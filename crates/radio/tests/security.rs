//! A stranger on the management LAN against `ferry air`'s link control, over real ZeroMQ
//! and UDP on 127.0.0.1 (docs/SECURITY.md): every state-changing request without the key,
//! with the wrong key, or for another radio room is refused with an `unauthorized` reply and
//! counted, and nothing changes; captures stay inside their directory, never follow a
//! planted symlink, are capped and can be stopped; an oversized request is cut off by
//! ZeroMQ while the air's clock runs on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_auth::AuthKey;
use ferry_fronthaul::control::{CaptureFormat, CaptureStream, ErrorCode, Reply, Request};
use ferry_radio::config::AirConfig;
use ferry_radio::{AirServer, ControlClient, LinkAuth, RadioLink, RadioLinkConfig};

const RATE: u32 = 192_000;

fn auth() -> LinkAuth {
    LinkAuth {
        key: AuthKey::new(b"the radio room's link-control key").expect("key"),
        identity: "air".into(),
    }
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ferry-sec-{}-{tag}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).expect("dir");
    d
}

fn config(capture_dir: &std::path::Path) -> AirConfig {
    let mut c = AirConfig::default().with_init_ms(0);
    c.radios.truncate(2);
    c.sample_rate_hz = RATE;
    c.tick_samples = 192;
    c.max_catchup_ms = None;
    for r in &mut c.radios {
        r.fronthaul = "127.0.0.1:0".parse().expect("addr");
        r.rf.rate_hz = RATE;
    }
    c.links.clear();
    c.control = "tcp://127.0.0.1:*".into();
    c.noise_floor_dbfs = None;
    c.capture_dir = Some(capture_dir.to_path_buf());
    c.max_capture_samples = 100_000;
    c.auth = Some(auth());
    c
}

fn owner(control: &str) -> ControlClient {
    ControlClient::new(control, Duration::from_secs(2)).with_auth(Some(auth()))
}

fn every_request(radio: &str, to: SocketAddr) -> Vec<Request> {
    vec![
        Request::Link {
            radio: radio.into(),
            endpoint: to,
        },
        Request::Shadow {
            radio: radio.into(),
            endpoint: Some(to),
        },
        Request::Unshadow {
            radio: radio.into(),
            endpoint: to,
        },
        Request::SwitchAt {
            radio: radio.into(),
            at: 1 << 40,
            endpoint: to,
        },
        Request::Unlink {
            radio: radio.into(),
            endpoint: None,
        },
        Request::Reset {
            radio: radio.into(),
        },
        Request::Capture {
            radio: radio.into(),
            stream: CaptureStream::Rx,
            format: CaptureFormat::Ci16Le,
            samples: 1000,
        },
        Request::StopCapture {
            radio: radio.into(),
        },
        Request::Discover { radio: None },
        Request::Status { radio: None },
    ]
}

#[test]
fn strangers_are_refused_counted_and_change_nothing() {
    let dir = tmpdir("stranger");
    let air = AirServer::spawn(config(&dir), || Ok(())).expect("air");
    let mut cfg = RadioLinkConfig::new(air.control.clone(), "pool").with_auth(Some(auth()));
    cfg.timeout = Duration::from_secs(2);
    let mut host = RadioLink::create(&cfg).expect("owner's link");
    host.link().expect("owner links");
    let ctl = owner(&air.control);
    let (_, before) = ctl.status("pool").expect("status");
    let linked = before.linked.expect("linked");

    let thief: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    let wrong_key = LinkAuth {
        key: AuthKey::new(b"a stranger's guess at the key").expect("key"),
        identity: "air".into(),
    };
    let other_room = LinkAuth {
        identity: "air2".into(),
        ..auth()
    };
    let strangers = [
        ControlClient::new(air.control.clone(), Duration::from_secs(2)),
        ControlClient::new(air.control.clone(), Duration::from_secs(2)).with_auth(Some(wrong_key)),
    ];
    let mut refused = 0;
    for s in &strangers {
        for req in every_request("pool", thief) {
            match s.request(&req) {
                Ok(Reply::Error { code, message }) => {
                    assert_eq!(code, ErrorCode::Unauthorized, "{req:?}: {message}");
                    assert!(message.contains("unauthenticated"), "{message}");
                }
                // The wrong-key client cannot verify the air's signed refusal.
                Err(e) => assert!(e.to_string().contains("does not verify"), "{req:?}: {e}"),
                Ok(r) => panic!("{req:?} accepted from a stranger: {r:?}"),
            }
            refused += 1;
        }
    }
    // Signed with the key but for another radio room (a request replayed across rooms).
    let elsewhere =
        ControlClient::new(air.control.clone(), Duration::from_secs(2)).with_auth(Some(other_room));
    for req in every_request("pool", thief) {
        assert!(elsewhere.request(&req).is_err(), "{req:?}");
        refused += 1;
    }

    let (_, after) = ctl.status("pool").expect("status");
    assert_eq!(after.linked, Some(linked));
    assert_eq!(after.shadow, None);
    assert_eq!(after.pending_switch, None);
    assert_eq!(after.counters.init_count, before.counters.init_count);
    let Reply::Status { control, .. } = ctl
        .request(&Request::Status { radio: None })
        .expect("status")
    else {
        panic!("status")
    };
    assert_eq!(control.unauthenticated, refused);
    assert_eq!(
        std::fs::read_dir(&dir).expect("dir").count(),
        0,
        "no file written"
    );
    // The owner's stream still flows.
    let t = Instant::now();
    let mut got = 0;
    while got < 2000 && t.elapsed() < Duration::from_secs(10) {
        if let Ok(b) = host.recv(Duration::from_millis(100)) {
            got += b.samples.len();
        }
    }
    assert!(got >= 2000, "RX stopped after the stranger's requests");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn captures_stay_in_their_directory_are_capped_and_stop() {
    let dir = tmpdir("capture");
    let outside = tmpdir("outside");
    let victim = outside.join("victim");
    std::fs::write(&victim, b"precious").expect("victim");
    let air = AirServer::spawn(config(&dir), || Ok(())).expect("air");
    let ctl = owner(&air.control);
    let capture = |samples| {
        ctl.request(&Request::Capture {
            radio: "pool".into(),
            stream: CaptureStream::Rx,
            format: CaptureFormat::Ci16Le,
            samples,
        })
        .expect("reply")
    };
    // Over the cap: refused.
    match capture(100_001) {
        Reply::Error { code, message } => {
            assert_eq!(code, ErrorCode::Refused);
            assert!(message.contains("cap"), "{message}");
        }
        r => panic!("{r:?}"),
    }
    // The cap itself: accepted, named by the air, inside the directory.
    let Reply::Capturing { file, .. } = capture(100_000) else {
        panic!("capture refused")
    };
    assert!(!file.contains('/') && !file.contains(".."), "{file}");
    std::thread::sleep(Duration::from_millis(50));
    match ctl
        .request(&Request::StopCapture {
            radio: "pool".into(),
        })
        .expect("reply")
    {
        Reply::Done { .. } => {}
        r => panic!("{r:?}"),
    }
    // Stopped: the file is finished (sample count in the metadata) and grows no more.
    let base = dir.join(&file);
    let t = Instant::now();
    let meta = loop {
        let m = ferry_radio::sigmf::read(&base).map(|(m, _)| m);
        if let Ok(m) = m.as_ref() {
            if m["global"].get("ferry:samples").is_some() {
                break m.clone();
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "capture never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let n = meta["global"]["ferry:samples"].as_u64().expect("count");
    assert!(n < 100_000, "stop_capture did not stop it ({n} samples)");
    let len = std::fs::metadata(base.with_extension("sigmf-data"))
        .map(|m| m.len())
        .unwrap_or(0);
    std::thread::sleep(Duration::from_millis(100));
    let len2 = std::fs::metadata(base.with_extension("sigmf-data"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(len, len2, "still writing after stop_capture");
    assert_eq!(len, n * 4);
    // Nothing outside the directory was touched.
    assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
    drop(air);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&outside);
}

#[test]
fn capture_files_never_follow_a_planted_symlink() {
    let dir = tmpdir("symlink");
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").expect("victim");
    let base = dir.join("cap");
    std::os::unix::fs::symlink(&victim, dir.join("cap.sigmf-data")).expect("plant data link");
    let r = ferry_radio::sigmf::SigMfWriter::create(
        &base,
        CaptureFormat::Ci16Le,
        RATE,
        1e9,
        0,
        std::time::SystemTime::now(),
        "test",
    );
    assert!(r.is_err(), "created through a symlink");
    std::os::unix::fs::symlink(&victim, dir.join("m.sigmf-meta")).expect("plant meta link");
    assert!(ferry_radio::sigmf::SigMfWriter::create(
        &dir.join("m"),
        CaptureFormat::Ci16Le,
        RATE,
        1e9,
        0,
        std::time::SystemTime::now(),
        "test",
    )
    .is_err());
    assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_oversized_request_is_cut_off_and_the_clock_runs_on() {
    let dir = tmpdir("big");
    let air = AirServer::spawn(config(&dir), || Ok(())).expect("air");
    let ctl = owner(&air.control);
    let Reply::Status {
        sample_time: t0, ..
    } = ctl
        .request(&Request::Status { radio: None })
        .expect("status")
    else {
        panic!()
    };
    // 4 MB in one frame: ZeroMQ drops the peer before buffering it; no reply comes.
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::REQ).expect("socket");
    s.set_linger(0).expect("linger");
    s.set_rcvtimeo(500).expect("timeo");
    s.connect(&air.control).expect("connect");
    s.send(vec![b' '; 4 << 20], 0).expect("send");
    assert!(
        s.recv_bytes(0).is_err(),
        "the air answered an oversized request"
    );
    let t = Instant::now();
    let (t1, control) = loop {
        let Reply::Status {
            sample_time,
            control,
            ..
        } = ctl
            .request(&Request::Status { radio: None })
            .expect("status")
        else {
            panic!()
        };
        if control.disconnects >= 1 || t.elapsed() > Duration::from_secs(10) {
            break (sample_time, control);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(control.disconnects >= 1, "{control:?}");
    assert_eq!(control.unauthenticated, 0);
    assert!(t1 > t0, "the air's clock stopped");
    let _ = std::fs::remove_dir_all(&dir);
}

//! The MPEG-TS receiver against real ffmpeg output: frames counted from a generated file
//! (MPEG-2 and H.264), losses and stalls detected when datagrams are dropped or delayed,
//! property tests for the parser, and live ffmpeg → UDP → receiver runs (loopback and inside
//! a namespace).

use ferry_testbed::video::{
    ffmpeg_available, SendPath, TsPacket, VideoLog, VideoReceiver, VideoSender, VideoSpec, TS_LEN,
};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn skip_without_ffmpeg(test: &str) -> bool {
    if ffmpeg_available() {
        return false;
    }
    eprintln!("==============================================================");
    eprintln!("SKIPPED (needs ffmpeg): {test}");
    eprintln!("  install it with scripts/deps (Debian package ffmpeg).");
    eprintln!("==============================================================");
    true
}

/// Makes `seconds` of 25 fps test video as MPEG-TS with `codec`; returns its bytes.
fn make_ts(codec: &str, seconds: u32) -> Vec<u8> {
    // Tests run in parallel: each file needs its own name.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path: PathBuf = std::env::temp_dir().join(format!(
        "ferry-video-{}-{n}-{codec}-{seconds}.ts",
        std::process::id()
    ));
    let st = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=size=320x240:rate=25")
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            codec,
            "-bf",
            "0",
            "-g",
            "25",
            "-b:v",
            "500k",
        ])
        .args(["-f", "mpegts"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(st.success(), "ffmpeg failed");
    let bytes = std::fs::read(&path).expect("read ts");
    let _ = std::fs::remove_file(&path);
    bytes
}

/// Feeds `ts` as 1316-byte datagrams, one every `dt_ms`, skipping those `drop` says.
fn feed(
    ts: &[u8],
    dt_ms: f64,
    drop: impl Fn(usize) -> bool,
    delay: impl Fn(usize) -> f64,
) -> VideoLog {
    let mut log = VideoLog::new();
    for (i, d) in ts.chunks(7 * TS_LEN).enumerate() {
        if !drop(i) {
            log.on_datagram(i as f64 * dt_ms + delay(i), d);
        }
    }
    log
}

#[test]
fn counts_every_frame_of_an_mpeg2_file() {
    if skip_without_ffmpeg("counts_every_frame_of_an_mpeg2_file") {
        return;
    }
    let ts = make_ts("mpeg2video", 2);
    assert_eq!(ts.len() % TS_LEN, 0);
    let r = feed(&ts, 1.0, |_| false, |_| 0.0).report(25.0, Some(2000.0), 200.0);
    assert_eq!(r.stream_type, Some(0x02));
    assert_eq!(r.video_pid, Some(0x100));
    assert_eq!(r.frames, 50);
    assert_eq!(r.pictures_confirmed, 50);
    assert_eq!(r.expected_frames, 50);
    assert_eq!(
        (
            r.frames_lost,
            r.frames_missing_by_pts,
            r.cc_errors,
            r.bad_packets
        ),
        (0, 0, 0, 0)
    );
}

#[test]
fn counts_every_frame_of_an_h264_file() {
    if skip_without_ffmpeg("counts_every_frame_of_an_h264_file") {
        return;
    }
    let has_x264 = Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("libx264"));
    if !has_x264 {
        eprintln!("SKIPPED: this ffmpeg has no libx264");
        return;
    }
    let ts = make_ts("libx264", 2);
    let r = feed(&ts, 1.0, |_| false, |_| 0.0).report(25.0, Some(2000.0), 200.0);
    assert_eq!(r.stream_type, Some(0x1b));
    assert_eq!(r.frames, 50);
    assert_eq!((r.frames_missing_by_pts, r.cc_errors), (0, 0));
}

#[test]
fn dropped_datagrams_show_as_cc_errors_and_missing_frames() {
    if skip_without_ffmpeg("dropped_datagrams_show_as_cc_errors_and_missing_frames") {
        return;
    }
    let ts = make_ts("mpeg2video", 2);
    let n = ts.chunks(7 * TS_LEN).count();
    // Drop a run of datagrams in the middle (an outage of the path).
    let (a, b) = (n / 3, n / 3 + n / 4);
    let whole = feed(&ts, 1.0, |_| false, |_| 0.0);
    let cut = feed(&ts, 1.0, |i| (a..b).contains(&i), |_| 0.0);
    let r = cut.report(25.0, Some(2000.0), 200.0);
    assert!(r.cc_errors >= 1, "cc errors {}", r.cc_errors);
    let missing = whole.frames() - cut.frames();
    assert!(missing >= 5, "missing {missing}");
    assert_eq!(r.frames_lost, missing);
    // The PTS sequence shows the same hole.
    assert_eq!(r.frames_missing_by_pts, missing);
}

#[test]
fn a_stall_is_the_longest_frame_gap() {
    if skip_without_ffmpeg("a_stall_is_the_longest_frame_gap") {
        return;
    }
    let ts = make_ts("mpeg2video", 2);
    let n = ts.chunks(7 * TS_LEN).count();
    // Spread evenly over 2 s (so an I-frame's datagrams alone take a few hundred ms), with
    // everything after the middle held back 1.5 s.
    let dt = 2000.0 / n as f64;
    let r = feed(
        &ts,
        dt,
        |_| false,
        |i| if i >= n / 2 { 1500.0 } else { 0.0 },
    )
    .report(25.0, None, 1000.0);
    assert_eq!(r.frames, 50);
    assert_eq!(r.stalls.len(), 1, "{:?}", r.stalls);
    assert!(
        r.longest_frame_gap_ms > 1500.0 && r.longest_frame_gap_ms < 2000.0,
        "{}",
        r.longest_frame_gap_ms
    );
    assert_eq!(r.stalls[0].gap_ms, r.longest_frame_gap_ms);
    assert_eq!(r.frame_times_ms.len(), 50);
}

#[test]
fn stray_bytes_are_counted_not_fatal() {
    let mut log = VideoLog::new();
    log.on_datagram(0.0, &[0x47; 100]);
    log.on_datagram(1.0, &[0u8; 188]);
    let r = log.report(25.0, Some(1000.0), 100.0);
    assert_eq!((r.bad_packets, r.frames, r.frames_lost), (2, 0, 25));
}

proptest! {
    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let mut log = VideoLog::new();
        log.on_datagram(0.0, &bytes);
        let _ = TsPacket::parse(&bytes);
        let _ = log.report(25.0, None, 100.0);
    }

    #[test]
    fn synced_garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), TS_LEN * 7)) {
        for p in bytes.chunks_mut(TS_LEN) {
            p[0] = 0x47;
        }
        let mut log = VideoLog::new();
        // Valid sync bytes: the garbage reaches the header, PAT/PMT and continuity paths.
        for (i, d) in bytes.chunks(TS_LEN).enumerate() {
            log.on_packet(i as f64, d);
        }
        let r = log.report(25.0, None, 100.0);
        prop_assert!(r.frames <= 7);
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port")
}

#[test]
fn live_ffmpeg_to_receiver_over_loopback() {
    if skip_without_ffmpeg("live_ffmpeg_to_receiver_over_loopback") {
        return;
    }
    for path in [SendPath::Pipe, SendPath::FfmpegUdp] {
        let bind: SocketAddr = format!("127.0.0.1:{}", free_udp_port())
            .parse()
            .expect("addr");
        let rx = VideoReceiver::start(None, bind).expect("receiver");
        let spec = VideoSpec {
            seconds: Some(2.0),
            path,
            ..VideoSpec::default()
        };
        let tx = VideoSender::start(None, &spec, rx.local).expect("ffmpeg");
        let (ok, stats, err) = tx.wait(Duration::from_secs(15)).expect("wait");
        assert!(ok, "ffmpeg failed: {err}");
        std::thread::sleep(Duration::from_millis(200));
        let r = rx.stop().report(25.0, Some(2000.0), 200.0);
        eprintln!(
            "live {path:?}: {} frames of {}, longest gap {:.1} ms, cc errors {}, {stats:?}",
            r.frames, r.expected_frames, r.longest_frame_gap_ms, r.cc_errors
        );
        if path == SendPath::Pipe {
            assert!(stats.datagrams > 50 && stats.send_errors == 0, "{stats:?}");
        }
        // Loss is checked exactly (continuity, PTS); the count and gap leave room for a
        // loaded 2-core CI machine delaying ffmpeg's start or a send.
        assert!(
            (47..=51).contains(&r.frames),
            "{path:?}: frames {}",
            r.frames
        );
        assert_eq!(r.cc_errors, 0, "{path:?}");
        assert_eq!(r.frames_missing_by_pts, 0, "{path:?}");
        assert!(
            r.longest_frame_gap_ms < 400.0,
            "{path:?}: gap {}",
            r.longest_frame_gap_ms
        );
    }
}

struct Ns(String);
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn live_receiver_and_sender_inside_a_namespace() {
    if !ferry_testbed::root_or_skip("live_receiver_and_sender_inside_a_namespace")
        || skip_without_ffmpeg("live_receiver_and_sender_inside_a_namespace")
    {
        return;
    }
    let ns = Ns(format!("frvid{}", std::process::id() % 100_000));
    for args in [
        vec!["netns", "add", &ns.0],
        vec!["-n", &ns.0, "link", "set", "lo", "up"],
    ] {
        assert!(Command::new("ip")
            .args(&args)
            .status()
            .is_ok_and(|s| s.success()));
    }
    // Same port as a socket outside the namespace: only the namespaced receiver may get it.
    let outside = std::net::UdpSocket::bind("127.0.0.1:0").expect("outside");
    let bind = outside.local_addr().expect("addr");
    let rx = VideoReceiver::start(Some(&ns.0), bind).expect("receiver in ns");
    let spec = VideoSpec {
        seconds: Some(1.0),
        ..VideoSpec::default()
    };
    let tx = VideoSender::start(Some(&ns.0), &spec, bind).expect("ffmpeg in ns");
    let (ok, _, err) = tx.wait(Duration::from_secs(15)).expect("wait");
    assert!(ok, "ffmpeg failed: {err}");
    std::thread::sleep(Duration::from_millis(100));
    let r = rx.stop().report(25.0, Some(1000.0), 200.0);
    assert!((22..=26).contains(&r.frames), "frames {}", r.frames);
    assert_eq!((r.cc_errors, r.frames_missing_by_pts), (0, 0));
    outside.set_nonblocking(true).expect("nb");
    let mut buf = [0u8; 2048];
    assert!(
        outside.recv(&mut buf).is_err(),
        "video leaked out of the namespace"
    );
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args:?} failed");
}

#[test]
fn ffmpeg_udp_output_dies_without_a_route_but_the_pipe_rides_it_out() {
    if !ferry_testbed::root_or_skip(
        "ffmpeg_udp_output_dies_without_a_route_but_the_pipe_rides_it_out",
    ) || skip_without_ffmpeg("ffmpeg_udp_output_dies_without_a_route_but_the_pipe_rides_it_out")
    {
        return;
    }
    let id = std::process::id() % 100_000;
    let (a, b) = (Ns(format!("frvr{id}a")), Ns(format!("frvr{id}b")));
    ip(&["netns", "add", &a.0]);
    ip(&["netns", "add", &b.0]);
    let (va, vb) = (format!("fvra{id}"), format!("fvrb{id}"));
    ip(&[
        "link", "add", &va, "netns", &a.0, "type", "veth", "peer", "name", &vb, "netns", &b.0,
    ]);
    ip(&["-n", &a.0, "addr", "add", "10.252.0.1/24", "dev", &va]);
    ip(&["-n", &b.0, "addr", "add", "10.252.0.2/24", "dev", &vb]);
    ip(&["-n", &a.0, "link", "set", &va, "up"]);
    ip(&["-n", &b.0, "link", "set", &vb, "up"]);
    let dest: SocketAddr = "10.252.0.2:47010".parse().expect("addr");
    let rx =
        VideoReceiver::start(Some(&b.0), "0.0.0.0:47010".parse().expect("addr")).expect("receiver");
    let spec = |path| VideoSpec {
        seconds: Some(3.0),
        path,
        ..VideoSpec::default()
    };
    let pipe = VideoSender::start(Some(&a.0), &spec(SendPath::Pipe), dest).expect("pipe");
    let mut direct = VideoSender::start(
        Some(&a.0),
        &spec(SendPath::FfmpegUdp),
        "10.252.0.2:47011".parse().expect("addr"),
    )
    .expect("direct");
    std::thread::sleep(Duration::from_millis(1000));
    // The sender's route disappears for 500 ms: sends fail with "Network is unreachable".
    ip(&["-n", &a.0, "addr", "del", "10.252.0.1/24", "dev", &va]);
    std::thread::sleep(Duration::from_millis(500));
    ip(&["-n", &a.0, "addr", "add", "10.252.0.1/24", "dev", &va]);
    let direct_alive = direct.running();
    let (ok, stats, err) = pipe.wait(Duration::from_secs(15)).expect("wait pipe");
    let (direct_ok, _, direct_err) = direct.wait(Duration::from_secs(15)).expect("wait direct");
    std::thread::sleep(Duration::from_millis(100));
    let r = rx.stop().report(25.0, Some(3000.0), 200.0);
    eprintln!("pipe: {stats:?}, {} frames, longest gap {:.0} ms; ffmpeg udp: alive after outage {direct_alive}, ok {direct_ok}, {direct_err:?}", r.frames, r.longest_frame_gap_ms);
    // ffmpeg's own UDP output gives up on the first failed send.
    assert!(
        !direct_alive && !direct_ok,
        "ffmpeg udp survived: {direct_err}"
    );
    assert!(direct_err.contains("unreachable"), "{direct_err}");
    // The pipe path counts the failed sends and carries on: frames arrive after the outage.
    assert!(ok, "ffmpeg under the pipe failed: {err}");
    assert!(stats.send_errors >= 5, "{stats:?}");
    assert!(
        (400.0..=900.0).contains(&r.longest_frame_gap_ms),
        "gap {}",
        r.longest_frame_gap_ms
    );
    let last = r.frame_times_ms.last().copied().unwrap_or(0.0);
    let gap_end = r.longest_frame_gap_at_ms.unwrap_or(f64::MAX);
    assert!(
        last > gap_end + 500.0,
        "no frames after the outage: last {last}, gap end {gap_end}"
    );
    assert!((55..=70).contains(&r.frames), "frames {}", r.frames);
}

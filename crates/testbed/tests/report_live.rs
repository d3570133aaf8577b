//! End to end, as the demo will do it (root): real ping, the 1 ms probe and ffmpeg video run
//! across a link that is cut for 800 ms while a timeline records the "migration"; the report
//! must charge the losses to that migration on one time axis and write all plots.

use ferry_migrate::timeline::Timeline;
use ferry_testbed::ping::PingRun;
use ferry_testbed::probe;
use ferry_testbed::report::{
    write_outputs, DemoReport, Experiment, Method, MethodReport, MigrationReport, RunMeta, Series,
    DEFAULT_TAIL_MS,
};
use ferry_testbed::video::{
    enter_netns, ffmpeg_available, unix_ms, VideoReceiver, VideoSender, VideoSpec,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Pair(String, String);
impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.0, &self.1] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args:?} failed");
}

#[test]
fn outage_is_measured_by_ping_probe_and_video_on_one_axis() {
    if !ferry_testbed::root_or_skip("outage_is_measured_by_ping_probe_and_video_on_one_axis") {
        return;
    }
    if !ffmpeg_available() {
        eprintln!("SKIPPED: ffmpeg missing (scripts/deps installs it)");
        return;
    }
    let id = std::process::id() % 100_000;
    let pair = Pair(format!("frlv{id}a"), format!("frlv{id}b"));
    let (a, b) = (pair.0.clone(), pair.1.clone());
    ip(&["netns", "add", &a]);
    ip(&["netns", "add", &b]);
    let (va, vb) = (format!("flva{id}"), format!("flvb{id}"));
    ip(&[
        "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vb, "netns", &b,
    ]);
    ip(&["-n", &a, "addr", "add", "10.251.0.1/24", "dev", &va]);
    ip(&["-n", &b, "addr", "add", "10.251.0.2/24", "dev", &vb]);
    ip(&["-n", &a, "link", "set", &va, "up"]);
    ip(&["-n", &b, "link", "set", &vb, "up"]);
    let far = Ipv4Addr::new(10, 251, 0, 2);

    let origin = unix_ms();
    let now = || unix_ms() - origin;
    // Echo in b, video receiver in b (threads moved into the namespace).
    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let (stop, b) = (Arc::clone(&stop), b.clone());
        std::thread::spawn(move || {
            enter_netns(&b).expect("setns b");
            probe::run_echo("0.0.0.0:47001".parse().expect("addr"), &stop)
        })
    };
    let rx = VideoReceiver::start(Some(&b), "0.0.0.0:47002".parse().expect("addr"))
        .expect("video receiver");
    let video = VideoSender::start(
        Some(&a),
        &VideoSpec::default(),
        SocketAddr::new(IpAddr::V4(far), 47002),
    )
    .expect("ffmpeg");
    let ping = PingRun::start(Some(&a), IpAddr::V4(far), 100).expect("ping");
    std::thread::sleep(Duration::from_millis(100));
    let probe_start = now();
    let sender = {
        let (stop, a) = (Arc::clone(&stop), a.clone());
        std::thread::spawn(move || {
            enter_netns(&a).expect("setns a");
            probe::run_sender(
                SocketAddr::new(IpAddr::V4(far), 47001),
                Duration::from_millis(1),
                3_000,
                Duration::from_millis(200),
                &stop,
            )
        })
    };
    std::thread::sleep(Duration::from_millis(1_000));
    // The "migration": the far end loses its address for 800 ms.
    let mut tl = Timeline::new("M", now() as u64);
    tl.begin(now() as u64, "prepare", false);
    std::thread::sleep(Duration::from_millis(50));
    tl.begin(now() as u64, "change eth3 address", true);
    ip(&["-n", &b, "addr", "del", "10.251.0.2/24", "dev", &vb]);
    std::thread::sleep(Duration::from_millis(800));
    tl.begin(now() as u64, "link USRP object to the device", true);
    ip(&["-n", &b, "addr", "add", "10.251.0.2/24", "dev", &vb]);
    tl.finish(now() as u64, true);
    let log = sender.join().expect("sender thread").expect("sender");
    std::thread::sleep(Duration::from_millis(300));
    let ping = ping.stop().expect("ping stop");
    video.stop().expect("ffmpeg stop");
    std::thread::sleep(Duration::from_millis(100));
    // The receiver's clock starts at its own Unix time: shift onto the run's axis.
    let rx_start = rx.started_unix_ms - origin;
    let vlog = rx.stop();
    stop.store(true, Ordering::Relaxed);
    let _ = echo.join();

    let probe_report = log.report();
    let video_report = vlog.report(25.0, None, 200.0);
    let series = Series {
        probe: Series::shift_probe(&log.samples(), probe_start),
        ping: Series::ping_on_axis(&ping, origin),
        ..Series::video_on_axis(&video_report, rx_start)
    };
    let mut migrations = vec![MigrationReport::from_timeline(
        &tl,
        "b → b",
        tl.started_at_ms as f64,
    )];
    series.charge(&mut migrations, ping.interval_ms, DEFAULT_TAIL_MS);
    let method = MethodReport::new(
        Method::Legacy,
        migrations,
        Some(&probe_report),
        Some(&ping),
        Some(&video_report),
    );
    let report = DemoReport::new(Experiment::Relay, RunMeta::collect(origin), vec![method]);
    println!("{}", report.render_text());
    let m = &report.methods[0].migrations[0];
    // 800 ms cut: 7–10 pings, ~800 probes, a gap of ~800 ms seen by all three.
    let lost = m.ping_lost.expect("ping");
    assert!((6..=10).contains(&lost), "ping lost {lost}");
    assert_eq!(
        lost, ping.lost,
        "every lost ping falls in the migration window"
    );
    let probes = m.probe_lost.expect("probe");
    assert!((700..=950).contains(&probes), "probes lost {probes}");
    let gap = m.probe_longest_gap_ms.expect("gap");
    assert!((750.0..=1000.0).contains(&gap), "probe gap {gap}");
    let [g0, g1] = m.probe_gap_window_ms.expect("window");
    let (w0, w1) = (m.start_ms, m.start_ms + m.total_ms);
    assert!(
        g0 >= w0 && g1 <= w1 + 50.0,
        "gap {g0}..{g1} outside {w0}..{w1}"
    );
    let vgap = m.video_longest_gap_ms.expect("video");
    assert!((700.0..=1200.0).contains(&vgap), "video gap {vgap}");

    let dir = std::env::temp_dir().join(format!("ferry-live-report-{id}"));
    let _ = std::fs::remove_dir_all(&dir);
    let w = write_outputs(&report, &series, &dir, None).expect("write");
    // video_losses.csv comes with the cut's PTS holes and continuity errors.
    assert!(
        !series.video_losses.is_empty(),
        "the cut lost no frame by PTS"
    );
    assert_eq!(w.files.len(), 9, "{:?}", w.files);
    assert!(dir.join("video_losses.csv").is_file());
    if std::env::var_os("FERRY_KEEP_PLOTS").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("plots kept in {}", dir.display());
    }
    drop(pair);
}

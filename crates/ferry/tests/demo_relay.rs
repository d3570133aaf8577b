//! `ferry demo relay` end to end (needs root and ffmpeg; skipped loudly otherwise): a quick
//! run migrates the relay task (a base station forwarding server3's video to server4) with
//! both methods while ffmpeg streams through it; the report must hold both methods with
//! the route-transfer phase and the video figures, make-before-break must show no stall,
//! and nothing may be left behind; a run interrupted with SIGINT while the video flows
//! must clean up just as well.

mod support;

use ferry_testbed::report::{DemoReport, Experiment, Method};
use ferry_testbed::root_or_skip;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::FERRY;

fn assert_clean(prefix: &str) {
    // The demo's ffmpeg sender is recognisable by its test picture size.
    support::assert_clean(prefix, Some("testsrc=size=160x120"));
}

fn demo(prefix: &str, out: &Path) -> Command {
    let mut c = Command::new(FERRY);
    c.args(["demo", "relay", "--quick", "--prefix", prefix, "--out"])
        .arg(out)
        .env("RUST_LOG", "warn");
    c
}

#[test]
fn demo_relay_runs_both_methods_then_survives_sigint() {
    if !root_or_skip("demo_relay_runs_both_methods_then_survives_sigint (network namespaces, TUN)")
    {
        return;
    }
    if !ferry_testbed::video::ffmpeg_available() {
        eprintln!("SKIPPED demo_relay_runs_both_methods_then_survives_sigint: no ffmpeg (apt-get install ffmpeg)");
        return;
    }
    let prefix = format!("frt{}", std::process::id() % 100_000);
    let out = std::env::temp_dir().join(format!("ferry-demo-relay-test-{}", std::process::id()));

    // 1. A quick run to the end.
    let o = demo(&prefix, &out).output().expect("ferry demo relay");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "ferry demo relay failed:\n{stdout}\n{stderr}"
    );
    println!("{stderr}\n{stdout}");
    let json = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    let rep = DemoReport::from_json(&json).expect("report JSON");
    assert_eq!(rep.experiment, Experiment::Relay);
    let methods: Vec<_> = rep.methods.iter().map(|m| m.method).collect();
    assert_eq!(methods, [Method::Legacy, Method::Mbb]);
    for m in &rep.methods {
        assert_eq!(m.migrations.len(), 2, "{:?}", m.method);
        assert!(m.ping.is_none() && m.probe.is_none(), "video only");
        let v = m.video.as_ref().expect("video summary");
        // 25 fps for ~6 s: the video plays through the relay across both migrations.
        assert!(v.frames >= 100, "{:?}: only {} frames", m.method, v.frames);
        assert!(
            v.frames + v.lost >= v.expected_frames,
            "{:?}: {v:?}",
            m.method
        );
        for g in &m.migrations {
            assert!(g.ok, "{:?} {}: not ok", m.method, g.route);
            assert!(g.total_ms > 0.0);
            assert!(
                g.video_longest_gap_ms.is_some(),
                "{:?}: no video gap",
                m.method
            );
            assert!(g.video_frames_lost.is_some() && g.video_cc_errors.is_some());
        }
    }
    // The route list moves with the relay: the legacy M collects and sets it first, and
    // make-before-break sets it on the destination before starting it.
    let phases = |m: usize, k: usize| -> Vec<String> {
        rep.methods[m].migrations[k]
            .phases
            .iter()
            .map(|p| p.name.clone())
            .collect()
    };
    let m = phases(0, 0);
    assert!(m.first().is_some_and(|p| p.contains("set_route")), "{m:?}");
    for k in 0..2 {
        let p = phases(1, k);
        let set = p.iter().position(|n| n == "set_route on destination");
        let start = p
            .iter()
            .position(|n| n.starts_with("start destination modem"));
        assert!(set.is_some() && set < start, "{p:?}");
    }
    // Make-before-break: no interrupting phase and no stall. A stall is a gap over the
    // demo's 250 ms threshold (the relay restarted without grant state gave ~1 s; normal
    // spacing is 40 ms with jitter up to ~100 ms from the TDD frame and queueing).
    let mbb = &rep.methods[1];
    for g in &mbb.migrations {
        assert_eq!(g.phase_interruption_ms, 0.0);
        let gap = g.video_longest_gap_ms.unwrap_or(f64::INFINITY);
        assert!(gap < 250.0, "mbb {}: video stalled {gap} ms", g.route);
    }
    // Nothing lost by make-before-break: every frame's PTS from the migration's start to
    // 1 s after its end arrives (the source's held data forwarded at the cutover may
    // arrive a frame late: counted apart, not lost). The whole run is not asserted: the
    // loaded 2-core air loses a datagram now and then with no migration near
    // (docs/EXPERIMENTS.md).
    for g in &mbb.migrations {
        assert_eq!(g.video_frames_lost, Some(0), "mbb {}: frames lost", g.route);
    }
    for f in [
        "report.txt",
        "timeline.svg",
        "video.svg",
        "video_frames.csv",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(
        stdout.contains("2173") && stdout.contains("1858"),
        "{stdout}"
    );
    assert_clean(&prefix);

    // 2. SIGINT while the video flows through the relay: says so, exits non-zero, leaves
    // nothing (ffmpeg included).
    let (status, seen) = support::interrupt_at(
        demo(&prefix, &out),
        "legacy: M ",
        Duration::from_millis(300),
    );
    assert!(!status.success(), "interrupted demo exited 0:\n{seen}");
    assert!(seen.contains("interrupted"), "{seen}");
    assert_clean(&prefix);
    let _ = std::fs::remove_dir_all(&out);
}

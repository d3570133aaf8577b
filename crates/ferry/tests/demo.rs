//! `ferry demo` end to end (needs root; skipped loudly otherwise): a quick run must finish
//! with a JSON report holding both methods with their phases and traffic figures, and leave
//! no namespace with its prefix, no `ferry` process and no TUN device behind; a run
//! interrupted with SIGINT in the middle of its migrations must clean up just as well.

mod support;

use ferry_testbed::root_or_skip;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::FERRY;

fn assert_clean(prefix: &str) {
    support::assert_clean(prefix, None);
}

fn demo(prefix: &str, out: &Path) -> Command {
    let mut c = Command::new(FERRY);
    c.args(["demo", "--quick", "--prefix", prefix, "--out"])
        .arg(out)
        .env("RUST_LOG", "warn");
    c
}

#[test]
fn demo_runs_both_methods_then_survives_sigint() {
    if !root_or_skip("demo_runs_both_methods_then_survives_sigint (network namespaces, TUN)") {
        return;
    }
    let prefix = format!("fdt{}", std::process::id() % 100_000);
    let out = std::env::temp_dir().join(format!("ferry-demo-test-{}", std::process::id()));

    // 1. A quick run to the end.
    let o = demo(&prefix, &out).output().expect("ferry demo");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "ferry demo failed:\n{stdout}\n{stderr}");
    println!("{stdout}");
    let json = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    let rep = ferry_testbed::report::DemoReport::from_json(&json).expect("report JSON");
    let methods: Vec<_> = rep.methods.iter().map(|m| m.method).collect();
    use ferry_testbed::report::Method;
    assert_eq!(methods, [Method::Legacy, Method::Mbb]);
    for m in &rep.methods {
        assert_eq!(m.migrations.len(), 2, "{:?}", m.method);
        let ping = m.ping.as_ref().expect("ping summary");
        assert!(ping.sent >= 20, "{:?}: ping sent {}", m.method, ping.sent);
        assert!(ping.lost < ping.sent, "{:?}: every ping lost", m.method);
        for g in &m.migrations {
            assert!(g.ok, "{:?} {}: not ok", m.method, g.route);
            assert!(
                !g.phases.is_empty(),
                "{:?} {}: no phases",
                m.method,
                g.route
            );
            assert!(g.total_ms > 0.0);
            assert!(g.ping_lost.is_some() && g.probe_lost.is_some());
        }
    }
    // The legacy method's M has the thesis' phases; mbb has no service-interrupting phase.
    let names: Vec<&str> = rep.methods[0].migrations[0]
        .phases
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert!(
        names.contains(&"link USRP object to the device"),
        "{names:?}"
    );
    assert!(rep.methods[1]
        .migrations
        .iter()
        .all(|g| g.phase_interruption_ms == 0.0));
    // The demo's defaults (3 MHz carrier, 1 ms probe): make-before-break loses nothing.
    for g in &rep.methods[1].migrations {
        assert_eq!(
            (g.ping_lost, g.probe_lost),
            (Some(0), Some(0)),
            "mbb {} lost packets:\n{stdout}",
            g.route
        );
    }
    for f in ["report.txt", "timeline.svg", "ping.svg", "probe.svg"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(stdout.contains("total migration") && stdout.contains("1969"));
    // The probe's measured RTT beside the link's floor (3 MHz, TDD configuration 1, lead
    // 8 ms: the probe fits one TB each way, 19–24 ms). The measured median cannot beat it.
    let floor = rep
        .rtt_floor
        .iter()
        .find(|f| f.packet == "probe")
        .expect("the probe's RTT floor in the report");
    assert!((floor.median_ms - 21.5).abs() < 0.02, "{floor:?}");
    assert!(stdout.contains("link RTT floor for the probe"), "{stdout}");
    let rtt = rep.methods[1].probe.as_ref().and_then(|p| p.rtt_median_ms);
    assert!(
        rtt.is_some_and(|r| r >= floor.min_ms),
        "probe RTT median {rtt:?} below the floor {floor:?}"
    );
    assert_clean(&prefix);

    // 2. SIGINT while migrating: the demo says so, exits non-zero and leaves nothing.
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

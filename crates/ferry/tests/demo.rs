//! `ferry demo` end to end (needs root; skipped loudly otherwise): a quick run must finish
//! with a JSON report holding both methods with their phases and traffic figures, and leave
//! no namespace with its prefix, no `ferry` process and no TUN device behind; a run
//! interrupted with SIGINT in the middle of its migrations must clean up just as well.

use ferry_testbed::root_or_skip;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// Processes running this test's `ferry` binary.
fn ferry_processes() -> Vec<i32> {
    let me = std::fs::canonicalize(FERRY).expect("ferry path");
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == me))
                .collect()
        })
        .unwrap_or_default()
}

fn assert_clean(prefix: &str) {
    // Processes get a moment to be reaped after the demo exits.
    let t0 = Instant::now();
    while !ferry_processes().is_empty() && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ferry_processes(), Vec::<i32>::new(), "ferry processes left");
    let nss = ferry_testbed::netns::testbed_namespaces(prefix);
    assert!(nss.is_empty(), "namespaces left: {nss:?}");
    let tuns = Command::new("ip")
        .args(["-o", "link", "show", "type", "tun"])
        .output()
        .expect("ip");
    let tuns = String::from_utf8_lossy(&tuns.stdout);
    assert!(!tuns.contains("ferry"), "TUN devices left: {tuns}");
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
    for f in ["report.txt", "timeline.svg", "ping.svg", "probe.svg"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(stdout.contains("total migration") && stdout.contains("1969"));
    assert_clean(&prefix);

    // 2. SIGINT while migrating: the demo says so, exits non-zero and leaves nothing.
    let mut child = demo(&prefix, &out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferry demo");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    let mut seen = String::new();
    while !seen.contains("legacy: M ") {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(l) => {
                seen.push_str(&l);
                seen.push('\n');
            }
            Err(_) => assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the demo never reached M:\n{seen}"
            ),
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t1 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(20),
            "the demo did not stop within 20 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.push_str(&l);
        seen.push('\n');
    }
    assert!(!status.success(), "interrupted demo exited 0:\n{seen}");
    assert!(seen.contains("interrupted"), "{seen}");
    assert_clean(&prefix);
    let _ = std::fs::remove_dir_all(&out);
}

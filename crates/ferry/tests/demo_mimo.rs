//! `ferry demo mimo` (needs root; skipped loudly otherwise): the pool and far radios as
//! two-channel B210s in the real air, the far radio's two receivers made noisy beyond the
//! single antenna's threshold (−27 dBFS per antenna: ≈ −3 dB SNR, where 1×1 loses about
//! every block). A 2×2 link (SFBC from two TX ports, MRC over two RX antennas, one VITA-49
//! stream per antenna) carries the pings from server3 to the task through real TUNs where the
//! same link with one antenna does not.

mod support;

use ferry_testbed::root_or_skip;
use std::process::Command;
use support::FERRY;

/// One testbed at a time: the tests of this file would otherwise run in parallel (and each
/// checks that no `ferry` process is left when it ends).
static ONE_TESTBED: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn two_antennas_carry_pings_where_one_does_not() {
    if !root_or_skip("two_antennas_carry_pings_where_one_does_not (network namespaces, TUN)") {
        return;
    }
    let _one = ONE_TESTBED.lock().unwrap_or_else(|e| e.into_inner());
    let prefix = format!("fdm{}", std::process::id() % 100_000);
    let out = std::env::temp_dir().join(format!("ferry-demo-mimo-{}", std::process::id()));
    let o = Command::new(FERRY)
        .args([
            "demo",
            "mimo",
            "--noise-dbfs=-27",
            "--antennas",
            "2x2,1x1",
            "--seconds",
            "6",
        ])
        .args(["--prefix", &prefix])
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "warn")
        .output()
        .expect("ferry demo mimo");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "demo mimo failed:\n{stdout}\n{stderr}");
    support::assert_clean(&prefix, None);
    let rep: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("mimo.json")).expect("mimo.json"))
            .expect("mimo.json is JSON");
    let (two, one) = (&rep["runs"][0], &rep["runs"][1]);
    let n = |r: &serde_json::Value, k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert_eq!(
        (two["antennas_tx"].as_u64(), two["antennas_rx"].as_u64()),
        (Some(2), Some(2))
    );
    // Two antennas: the link is up, nearly every block and ping passes.
    assert_eq!(two["link_up"], true, "{two}\n{stdout}");
    assert!(n(two, "far_decode_ok") > 1500, "{two}");
    assert!(two["bler"].as_f64().unwrap() < 0.05, "{two}");
    assert!(n(two, "sent") > 150, "{two}");
    assert!(
        n(two, "lost") * 20 <= n(two, "sent"),
        "{} of {} pings lost with 2x2:\n{stdout}",
        n(two, "lost"),
        n(two, "sent")
    );
    // One antenna at the same noise: the noise is really there (blocks fail, or the far end
    // never even holds the cell), and most pings are lost.
    let one_bad = one["link_up"] == false
        || one["bler"].as_f64().unwrap() > 0.3
        || n(one, "lost") * 2 > n(one, "sent");
    assert!(one_bad, "1x1 passes at -27 dBFS: {one}\n{stdout}");
    let _ = std::fs::remove_dir_all(&out);
}

/// A two-antenna task (both radios two-channel B210s, every modem 2×2) migrates by make-
/// before-break like a one-antenna one: the destination's shadow gets both channels, the
/// radio switches both TX streams at T, nothing is lost.
#[test]
fn a_two_antenna_task_migrates_without_loss() {
    if !root_or_skip("a_two_antenna_task_migrates_without_loss (network namespaces, TUN)") {
        return;
    }
    let _one = ONE_TESTBED.lock().unwrap_or_else(|e| e.into_inner());
    let prefix = format!("fdn{}", std::process::id() % 100_000);
    let out = std::env::temp_dir().join(format!("ferry-demo-2ant-{}", std::process::id()));
    let o = Command::new(FERRY)
        .args(["demo", "--quick", "--method", "mbb", "--two-antennas"])
        .args(["--prefix", &prefix])
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "warn")
        .output()
        .expect("ferry demo --two-antennas");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "demo failed:\n{stdout}\n{stderr}");
    // The progress lines (stderr) say what the air runs.
    assert!(stderr.contains("two-channel B210s"), "{stderr}");
    support::assert_clean(&prefix, None);
    let json = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    let rep = ferry_testbed::report::DemoReport::from_json(&json).expect("report JSON");
    let m = &rep.methods[0];
    assert_eq!(m.migrations.len(), 2);
    let ping = m.ping.as_ref().expect("ping summary");
    assert!(ping.sent >= 20, "ping sent {}", ping.sent);
    for g in &m.migrations {
        assert!(g.ok, "{}: not ok", g.route);
        // A real-time testbed on a shared machine: allow a stray probe, no ping.
        assert_eq!(g.ping_lost, Some(0), "{}:\n{stdout}", g.route);
        assert!(
            g.probe_lost.is_some_and(|p| p <= 2),
            "{}:\n{stdout}",
            g.route
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

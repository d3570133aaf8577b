//! `ferry demo --bw 20` (needs root; skipped loudly otherwise): the N210 cannot stream
//! 30.72 Msps, so the demo runs its air on B210 models and says so, and gets past the air's
//! start-up to the cell search (that run is then interrupted); forced onto N210s, the demo
//! stops with the air's own reason in its error line, not backtrace frames, even with
//! `RUST_BACKTRACE=1`. Then the whole quick demo at 20 MHz, with the jumbo frames it uses by
//! default from 10 MHz: both make-before-break migrations done, no ping lost.

mod support;

use ferry_testbed::root_or_skip;
use std::process::Command;
use std::time::Duration;
use support::FERRY;

fn demo(prefix: &str, extra: &[&str]) -> Command {
    let out = std::env::temp_dir().join(format!("ferry-demo-wide-{}", std::process::id()));
    let mut c = Command::new(FERRY);
    c.args([
        "demo", "--quick", "--method", "mbb", "--bw", "20", "--prefix", prefix,
    ])
    .arg("--out")
    .arg(out)
    .args(extra)
    .env("RUST_LOG", "warn")
    .env("RUST_BACKTRACE", "1");
    c
}

#[test]
fn demo_at_20_mhz_uses_b210_models_and_an_n210_says_why_not() {
    if !root_or_skip(
        "demo_at_20_mhz_uses_b210_models_and_an_n210_says_why_not (network namespaces, TUN)",
    ) {
        return;
    }
    let prefix = format!("fdw{}", std::process::id() % 100_000);

    // 1. Forced N210: the air refuses, and the demo's error line says why.
    let o = demo(&prefix, &["--radio-model", "n210"])
        .output()
        .expect("ferry demo");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "an N210 demo at 20 MHz succeeded:\n{stderr}"
    );
    let error_line = stderr
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(error_line.contains("air exited"), "{error_line}");
    assert!(
        error_line.contains("beyond the 25000000 sps the N210 streams over gigabit Ethernet"),
        "{error_line}"
    );
    assert!(!error_line.contains("backtrace"), "{error_line}");
    support::assert_clean(&prefix, None);

    // 2. Auto: B210s at 30.72 MHz, said in the output; the air runs and the demo reaches
    // the far end's cell search (after its liveness check of the air), then is interrupted.
    let (status, seen) = support::interrupt_at(
        demo(&prefix, &[]),
        "waiting for the far end's cell search",
        Duration::from_secs(2),
    );
    assert!(
        seen.contains(
            "ferry air: radios at 30.72 Msps: B210, master clock 30.72 MHz, instead of N210"
        ),
        "{seen}"
    );
    assert!(!seen.contains("air exited"), "{seen}");
    assert!(!status.success(), "interrupted demo exited 0:\n{seen}");
    assert!(seen.contains("interrupted"), "{seen}");
    support::assert_clean(&prefix, None);
    // 3. The whole quick demo at 20 MHz: jumbo frames by default, the far end synchronises,
    // both migrations go through and no ping is lost (probes are reported, not asserted:
    // a starved real-time loop on a shared host is not a migration's fault).
    let o = demo(&prefix, &[]).output().expect("ferry demo");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    println!("{stdout}");
    assert!(
        o.status.success(),
        "20 MHz demo failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("fronthaul LAN MTU 9000") || stderr.contains("fronthaul LAN MTU 9000"),
        "no jumbo frames said:\n{stdout}\n{stderr}"
    );
    let ping = stdout
        .lines()
        .find(|l| l.contains("ping over the whole make-before-break"))
        .unwrap_or_else(|| panic!("no ping summary:\n{stdout}"));
    assert!(ping.contains(", 0 lost"), "{ping}");
    support::assert_clean(&prefix, None);
}

//! `ferry demo harq` (needs root; skipped loudly otherwise): the far radio's receiver made
//! noisy enough that about one downlink block in ten fails (−28.5 dBFS in this testbed), the
//! task and the far end running HARQ over the real air: the task retransmits, the far end
//! recovers blocks by soft combining, no block is given up and (nearly) every ping passes.
//! The same noise without HARQ is measured by the demo itself (docs/MODEM.md) and, without
//! the real-time testbed, by the modem's loopback test `harq_recovers_what_a_noisy_downlink_loses`.

mod support;

use ferry_testbed::root_or_skip;
use std::process::Command;
use support::FERRY;

#[test]
fn harq_recovers_downlink_blocks_over_the_real_air() {
    if !root_or_skip("harq_recovers_downlink_blocks_over_the_real_air (network namespaces, TUN)") {
        return;
    }
    let prefix = format!("fdh{}", std::process::id() % 100_000);
    let out = std::env::temp_dir().join(format!("ferry-demo-harq-{}", std::process::id()));
    let o = Command::new(FERRY)
        .args([
            "demo",
            "harq",
            "--noise-dbfs=-28.5",
            "--seconds",
            "6",
            "--only",
            "on",
        ])
        .args(["--prefix", &prefix])
        .arg("--out")
        .arg(&out)
        .env("RUST_LOG", "warn")
        .output()
        .expect("ferry demo harq");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "demo harq failed:\n{stdout}\n{stderr}");
    support::assert_clean(&prefix, None);
    let rep: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("harq.json")).expect("harq.json"))
            .expect("harq.json is JSON");
    let r = &rep["runs"][0];
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert_eq!(r["harq"], true, "{r}");
    // The noise is really there: blocks fail on the downlink.
    assert!(
        r["bler"].as_f64().unwrap() > 0.02,
        "no block errors at -28.5 dBFS: {r}"
    );
    // HARQ did the work: retransmissions, blocks recovered by combining, none given up.
    assert!(n("retransmissions") > 0 && n("recovered") > 0, "{r}");
    assert_eq!(n("gave_up"), 0, "{r}");
    // At ~10 % block errors without HARQ ~20 % of 84-byte pings are lost; with it at most
    // a stray one (a real-time testbed on a shared machine).
    assert!(n("sent") > 150, "{r}");
    assert!(
        n("lost") <= 2,
        "{} of {} pings lost with HARQ:\n{stdout}",
        n("lost"),
        n("sent")
    );
    let _ = std::fs::remove_dir_all(&out);
}

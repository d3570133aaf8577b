//! `ferry demo failover` end to end (issue #12; needs root, skipped loudly otherwise): the
//! unprotected baseline (kill -9 of the serving modem, restarted by hand), then with a hot
//! standby kept by the re-protection controller (`ferry ctl protect --auto`): kill -9 of the
//! serving modem, kill -9 of every process of the serving server, SIGSTOP of the serving
//! modem for 1 s, and a partition of the serving server. Asserts who
//! serves after each event (the standby took over), that no probe was ever echoed twice
//! (never two servers delivering), that every protected event lost far fewer probes than
//! the unprotected one (the standby served within milliseconds, not after a restart), that
//! the controller re-protected after each failover, that the partitioned primary did not
//! serve again and stepped down by itself, and that nothing is left behind.

mod support;

use ferry_testbed::root_or_skip;
use std::process::Command;
use support::FERRY;

#[test]
fn failover_demo_takes_over_fences_and_reprotects() {
    if !root_or_skip("failover_demo_takes_over_fences_and_reprotects (network namespaces, TUN)") {
        return;
    }
    let prefix = format!("ffo{}", std::process::id() % 100_000);
    let out = std::env::temp_dir().join(format!("ferry-failover-test-{}", std::process::id()));
    let o = Command::new(FERRY)
        .args(["demo", "failover", "--quick", "--operator-ms", "1000"])
        .args(["--prefix", &prefix, "--out"])
        .arg(&out)
        .env("RUST_LOG", "warn")
        .output()
        .expect("ferry demo failover");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    println!("{stdout}");
    assert!(
        o.status.success(),
        "ferry demo failover failed:\n{stdout}\n{stderr}"
    );
    let json = std::fs::read_to_string(out.join("failover.json")).expect("failover.json");
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let events = v["events"].as_array().expect("events");
    let kinds: Vec<(&str, bool)> = events
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or(""),
                e["protected"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("kill-modem", false),
            ("kill-modem", true),
            ("kill-server", true),
            ("pause", true),
            ("partition", true)
        ]
    );
    let baseline = &events[0];
    let base_lost = baseline["probes_lost"].as_u64().expect("probes_lost");
    // Without a standby the task is down until the operator restarts it (1 s here).
    assert!(
        base_lost > 500,
        "baseline lost only {base_lost}: {baseline}"
    );
    for e in &events[1..] {
        // The standby took over: the task serves from the other server.
        assert_ne!(e["from"], e["to"], "no failover: {e}");
        assert!(e["detect_ms"].is_number(), "the radio did not switch: {e}");
        // Never two servers delivering.
        assert_eq!(e["duplicates"], 0, "{e}");
        assert_eq!(e["split_brain"], false, "{e}");
        let lost = e["probes_lost"].as_u64().expect("probes_lost");
        assert!(
            lost * 10 < base_lost,
            "protected event lost {lost} probes, the unprotected one {base_lost}: {e}"
        );
        // Protected again from the new serving server, by the controller.
        assert!(e["reprotect_ms"].is_number(), "not re-protected: {e}");
    }
    // The partitioned primary ran on and did not serve again (the standby kept serving, no
    // duplicate above); it stepped down by itself when the radio's notice of the new epoch
    // reached it. Whatever late TX it sent was counted as fenced (its TX is clocked by the
    // radio's RX, which no longer comes to it, so there may be none).
    let partition = &events[4];
    assert_eq!(partition["stepped_down"], true, "{partition}");
    assert!(partition["fenced_packets"].is_u64(), "{partition}");
    let log = std::fs::read_to_string(out.join("protect-auto.log")).expect("controller log");
    // The first protection, then one per failover (more if the radio failed over on its
    // own between events).
    assert!(
        log.matches("unprotected for").count() >= 5,
        "the controller reports each failover's unprotected time:\n{log}"
    );
    assert_eq!(v["probe"]["duplicates"], 0);
    assert!(out.join("failover.svg").exists());
    support::assert_clean(&prefix, None);
    let _ = std::fs::remove_dir_all(&out);
}

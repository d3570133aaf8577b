//! A stranger on the management LAN against a serving task in the namespace testbed (needs
//! root; skipped loudly otherwise): `ferry air` (pool radio address-bound, far radio under
//! link control), the far-end `ferry modem` in server3 and the task started by the `ferry
//! ctl` console (`DS`) in server1, all with the run's random key. While server3 pings the
//! task, a stranger in server2 sends every link-control request (`link`, `shadow`,
//! `switch_at`, `unlink`, `reset`, `capture`, `stop_capture`, `discover`, `status`) for both
//! radios, unsigned and signed with a wrong key. Every one must be refused, the air must
//! count each refusal, and no ping may be lost (docs/SECURITY.md).

use ferry_testbed::ping::PingRun;
use ferry_testbed::root_or_skip;
use ferry_testbed::session::{write_random_key, Bed, RADIO_CTL};
use ferry_testbed::topology::POOL_TUN;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

#[test]
fn a_stranger_without_the_key_takes_no_radio_and_no_ping_is_lost() {
    if !root_or_skip("a_stranger_without_the_key_takes_no_radio_and_no_ping_is_lost (namespaces)") {
        return;
    }
    let prefix = format!("fs{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    bed.start_air(true).expect("air");
    bed.start_far().expect("far-end modem");
    bed.start_agent(true, 2).expect("agent");
    std::thread::sleep(Duration::from_millis(500));
    let mut console = bed.start_console().expect("console");
    let (ok, _) = console.run("DS", Duration::from_secs(30)).expect("DS");
    assert!(ok, "DS failed:\n{}", console.transcript);
    bed.wait_first_ping(Duration::from_secs(60))
        .expect("first ping after DS");
    // Let route discovery settle, then ping through the stranger's attempts.
    std::thread::sleep(Duration::from_millis(2000));
    let ping = PingRun::start(Some(&bed.ns("server3")), IpAddr::V4(POOL_TUN), 100).expect("ping");
    std::thread::sleep(Duration::from_millis(1000));
    // Refusals counted before the stranger starts: a genuine client racing the air's start
    // (a request ZeroMQ queued before the air bound, signed before its start) is refused
    // once and signs anew, and counts here too.
    let owner_status = |bed: &Bed| -> serde_json::Value {
        let o = bed
            .ferry_in("server1")
            .args(["radio", "--control", RADIO_CTL, "--key"])
            .arg(bed.key())
            .arg("status")
            .output()
            .expect("ferry radio status");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("status JSON")
    };
    let refused_before = owner_status(&bed)["control"]["unauthenticated"]
        .as_u64()
        .unwrap_or(0);

    let wrong = std::env::temp_dir().join(format!("ferry-{prefix}-stranger.key"));
    let _ = std::fs::remove_file(&wrong);
    write_random_key(&wrong).expect("stranger's key");
    let thief = "10.99.0.2:40000";
    let mut sent = 0u64;
    for key in [None, Some(&wrong)] {
        for radio in ["pool", "far"] {
            let ops: Vec<Vec<&str>> = vec![
                vec!["link", radio, thief],
                vec!["shadow", radio, thief],
                vec!["switch-at", radio, thief, "--at", "1"],
                vec!["unlink", radio],
                vec!["reset", radio],
                vec!["capture", radio, "--samples", "1000000"],
                vec!["stop-capture", radio],
                vec!["discover", radio],
                vec!["status", radio],
            ];
            for op in ops {
                let mut c = bed.ferry_in("server2");
                c.args(["radio", "--control", RADIO_CTL]);
                if let Some(k) = key {
                    c.arg("--key").arg(k);
                }
                let o = c.args(&op).output().expect("ferry radio");
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                assert!(
                    !o.status.success(),
                    "{op:?} succeeded for a stranger: {text}"
                );
                assert!(
                    text.contains("unauthenticated") || text.contains("does not verify"),
                    "{op:?}: {text}"
                );
                sent += 1;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    let report = ping.stop().expect("ping report");
    println!(
        "pings: sent {}, received {}, lost {} (seqs {:?})",
        report.sent, report.received, report.lost, report.lost_seqs
    );

    // The owner (with the run's key) sees every refusal counted and nothing changed.
    let st = owner_status(&bed);
    assert_eq!(
        st["control"]["unauthenticated"].as_u64(),
        Some(refused_before + sent),
        "{st}"
    );
    for r in st["radios"].as_array().expect("radios") {
        assert_eq!(
            r["counters"]["init_count"].as_u64(),
            Some(1),
            "reset by a stranger: {r}"
        );
        assert!(r["shadow"].is_null(), "{r}");
        assert!(r["pending_switch"].is_null(), "{r}");
        assert_ne!(r["linked"].as_str(), Some(thief), "{r}");
    }
    let (ok, _) = console.run("q", Duration::from_secs(30)).expect("q");
    assert!(ok, "q failed:\n{}", console.transcript);
    let _ = std::fs::remove_file(&wrong);
    assert!(report.sent >= 20, "{report:?}");
    // The last ping may still be in flight when ping is stopped: not a loss.
    let lost: Vec<u64> = report
        .lost_seqs
        .iter()
        .filter(|&&q| q < report.sent)
        .copied()
        .collect();
    assert_eq!(
        lost,
        Vec::<u64>::new(),
        "pings lost while a stranger sent link control: {report:?}"
    );
}

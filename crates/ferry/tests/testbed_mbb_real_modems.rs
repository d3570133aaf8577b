//! Make-before-break in the namespace testbed with every real piece as a process (needs
//! root; skipped loudly otherwise): `ferry air` in the radio namespace with the pool and far
//! radios under link control, the far-end `ferry modem` (slave) in server3, a `ferry agent`
//! in server1 and in server2 each supervising a `ferry modem` master bound to its permanent
//! fronthaul address, and `ferry ctl migrate --method mbb` over the mgmt LAN moving the task
//! server1 → server2 → server1 twice while server3 pings the task. Asserts every migration
//! succeeds with no service-interrupting phase and the radio then streams to the new side;
//! prints the pings lost (make-before-break should lose none; see docs/EXPERIMENTS.md).
//! The processes are started by `ferry_testbed::session` (shared with `ferry demo`).

use ferry_testbed::netns::command_in;
use ferry_testbed::ping::PingRun;
use ferry_testbed::root_or_skip;
use ferry_testbed::session::{Bed, RADIO_CTL};
use ferry_testbed::topology::POOL_TUN;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

#[test]
fn mbb_round_trips_with_real_modems_in_the_testbed() {
    if !root_or_skip(
        "mbb_round_trips_with_real_modems_in_the_testbed (agents and modems in network namespaces)",
    ) {
        return;
    }
    let prefix = format!("fb{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    bed.start_air(false).expect("air");
    bed.start_far().expect("far-end modem");
    for n in [1, 2] {
        bed.start_agent(false, n).expect("agent");
    }
    std::thread::sleep(Duration::from_millis(500));
    bed.send(1, "set_tun_ip", r#"{"tun_ip":"192.168.40.9"}"#)
        .expect("set_tun_ip");
    bed.send(1, "start_d2d", r#"{"control_flag":0}"#)
        .expect("start_d2d");
    bed.wait_first_ping(Duration::from_secs(30))
        .expect("first ping through the task");
    let ping = PingRun::start(Some(&bed.ns("server3")), IpAddr::V4(POOL_TUN), 100).expect("ping");
    std::thread::sleep(Duration::from_millis(1000));
    let mut totals = Vec::new();
    for (from, to) in [(1u8, 2u8), (2, 1), (1, 2), (2, 1)] {
        let (t, _) = bed
            .migrate_mbb(from, to)
            .unwrap_or_else(|e| panic!("server{from} -> server{to}: {e}"));
        assert!(t.phases.iter().all(|p| p.ok), "{t:?}");
        assert_eq!(t.interruption_ms, 0, "{t:?}");
        totals.push(t.total_ms);
        let r = command_in(&bed.ns("radio"), FERRY)
            .args(["radio", "--control", RADIO_CTL, "status", "pool"])
            .output()
            .expect("radio");
        let st: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap_or_default();
        let linked = st["radios"][0]["linked"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(linked, format!("192.168.10.1{to}:49200"), "{st}");
        std::thread::sleep(Duration::from_millis(1000));
    }
    let report = ping.stop().expect("ping report");
    let missing: Vec<u64> = report
        .samples
        .iter()
        .filter(|s| s.rtt_ms.is_none())
        .map(|s| s.seq)
        .collect();
    println!("mbb totals (ms): {totals:?}");
    println!(
        "ping from server3: {} sent, {} lost | missing seqs {missing:?}",
        report.sent, report.lost
    );
    assert!(
        report.sent.saturating_sub(report.lost) > 10,
        "traffic stopped: {report:?}"
    );
}

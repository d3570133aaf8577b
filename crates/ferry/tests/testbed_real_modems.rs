//! The thesis session with every real piece in the namespace testbed (needs root; skipped
//! loudly otherwise): `ferry air` in the radio namespace (address-bound pool radio
//! 192.168.10.2 and far radio 192.168.13.2), the far-end `ferry modem` (slave) in server3,
//! `ferry agent` in server2 and the `ferry ctl` console in server1, both supervising real
//! `ferry modem` masters on the legacy radio. `DS, M, MB, KL, KR, q` must all succeed,
//! 192.168.10.1 must sit on exactly the right server after each, the TUN address must follow
//! the task, and nothing may be left running. A ping from server3 to the task's TUN address
//! must be answered before M, by server2 after M, and by server1 again after MB; the losses
//! around each migration are printed. The processes are started by
//! `ferry_testbed::session` (shared with `ferry demo`).

use ferry_testbed::netns;
use ferry_testbed::ping::PingRun;
use ferry_testbed::root_or_skip;
use ferry_testbed::session::Bed;
use ferry_testbed::topology::POOL_TUN;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn holds(ns: &str, iface: &str, addr: &str) -> bool {
    addr.parse().is_ok_and(|a| netns::holds_addr(ns, iface, a))
}

#[test]
fn thesis_session_with_real_modems_in_the_testbed() {
    if !root_or_skip(
        "thesis_session_with_real_modems_in_the_testbed (agents and modems in network namespaces)",
    ) {
        return;
    }
    let prefix = format!("fm{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    bed.start_air(true).expect("air");
    bed.start_far().expect("far-end modem");
    bed.start_agent(true, 2).expect("agent");
    std::thread::sleep(Duration::from_millis(500));
    let mut console = bed.start_console().expect("console");
    let (s1, s2) = (bed.ns("server1"), bed.ns("server2"));
    let mut seen = Vec::new();
    let mut ping: Option<(PingRun, Instant)> = None;
    let mut sent_at = Vec::new();
    let step = Duration::from_secs(30);
    for (line, settle_ms) in [("DS", 0), ("M", 1500), ("MB", 1500), ("KL", 0), ("KR", 0)] {
        if line == "M" {
            // The far end's cold cell search and route discovery take a while (longer on a
            // loaded machine): wait until one ping gets through before migrating.
            let took = bed
                .wait_first_ping(Duration::from_secs(30))
                .expect("first ping after DS");
            println!("first ping through after {took:?}");
            let p =
                PingRun::start(Some(&bed.ns("server3")), IpAddr::V4(POOL_TUN), 100).expect("ping");
            ping = Some((p, Instant::now()));
            std::thread::sleep(Duration::from_millis(1500));
        }
        if line == "KL" {
            // Let the service come back after MB (route discovery) before stopping.
            std::thread::sleep(Duration::from_millis(2500));
        }
        if let Some((_, t0)) = &ping {
            sent_at.push((line, t0.elapsed().as_secs_f64() * 1000.0));
        }
        let (ok, _) = console.run(line, step).expect("console line");
        assert!(ok, "{line} did not succeed:\n{}", console.transcript);
        std::thread::sleep(Duration::from_millis(settle_ms));
        seen.push((
            line,
            holds(&s1, "eth3", "192.168.10.1"),
            holds(&s2, "eth3", "192.168.10.1"),
            holds(&s1, "ferry0", "192.168.40.9"),
            holds(&s2, "ferry0", "192.168.40.9"),
        ));
        if line == "KL" {
            if let Some((p, _)) = ping.take() {
                let r = p.stop().expect("ping report");
                let at = |l: &str| {
                    sent_at
                        .iter()
                        .find(|(x, _)| *x == l)
                        .map(|(_, t)| *t)
                        .expect("line")
                };
                let (m, mb, kl) = (at("M"), at("MB"), at("KL"));
                let answered = |a: f64, b: f64| {
                    r.samples
                        .iter()
                        .any(|s| s.rtt_ms.is_some() && s.t_ms >= a && s.t_ms < b)
                };
                let lost = |a: f64, b: f64| {
                    r.samples
                        .iter()
                        .filter(|s| s.rtt_ms.is_none() && s.t_ms >= a && s.t_ms < b)
                        .count()
                };
                println!(
                    "pings lost: before M {}, M..MB {}, MB..KL {} (of {} sent)",
                    lost(0.0, m),
                    lost(m, mb),
                    lost(mb, kl),
                    r.sent
                );
                // Traffic flows before M, again on server2 after M, and on server1 after MB.
                assert!(answered(0.0, m), "no ping answered before M: {r:?}");
                assert!(answered(m + 1000.0, mb), "no ping answered after M: {r:?}");
                assert!(
                    answered(mb + 1000.0, kl),
                    "no ping answered after MB: {r:?}"
                );
            }
        }
    }
    let (ok, _) = console.run("q", step).expect("q");
    assert!(ok, "q did not succeed:\n{}", console.transcript);
    println!("{}", console.transcript);
    println!("(line, s1 eth3 .10.1, s2 eth3 .10.1, s1 tun .40.9, s2 tun .40.9): {seen:?}");
    assert_eq!(
        seen,
        [
            ("DS", true, false, true, false),
            ("M", false, true, false, true),
            ("MB", true, false, true, false),
            ("KL", false, false, false, false),
            ("KR", false, false, false, false),
        ]
    );
    // Nothing left: the agent exited on q; no ferry process in the pool namespaces.
    let t0 = Instant::now();
    while !(netns::pids_in(&s1).is_empty() && netns::pids_in(&s2).is_empty()) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "processes left: {:?} {:?}",
            netns::pids_in(&s1),
            netns::pids_in(&s2)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

//! Issue #11: agents adopt their modems. The serving server's agent is killed (`kill -9`,
//! then `SIGTERM` on the next round) while its modem serves the task: the modem keeps
//! serving (the probe passes), a restarted agent finds it through its pidfile and control
//! socket, reports it in `status` (same pid, active, the task's TUN address), and a
//! make-before-break migration of the adopted task to the other server succeeds. Needs
//! root; skipped loudly otherwise.

use ferry_testbed::netns;
use ferry_testbed::root_or_skip;
use ferry_testbed::session::{Bed, Traffic};
use std::path::Path;
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// `status` of server `n`'s agent (its `result` object).
fn agent_status(bed: &Bed, n: u8) -> serde_json::Value {
    let o = bed
        .ferry_in(&format!("server{n}"))
        .arg("ctl")
        .arg("--key")
        .arg(bed.key())
        .args([
            "send",
            "status",
            "--to",
            &format!("server{n}=tcp://10.99.0.{n}:5555"),
        ])
        .output()
        .expect("ferry ctl send status");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["result"].clone()
}

/// Pids in server `n`'s namespace whose argv[1] is `what`.
fn pids(bed: &Bed, n: u8, what: &str) -> Vec<i32> {
    netns::pids_in(&bed.ns(&format!("server{n}")))
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).nth(1) == Some(what.as_bytes()))
        })
        .collect()
}

#[test]
fn a_restarted_agent_adopts_its_serving_modem() {
    if !root_or_skip("a_restarted_agent_adopts_its_serving_modem") {
        return;
    }
    let prefix = format!("fr{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    bed.start_air(false).expect("air");
    bed.start_far().expect("far-end modem");
    bed.start_agent(false, 1).expect("agent 1");
    bed.start_agent(false, 2).expect("agent 2");
    std::thread::sleep(Duration::from_millis(500));
    bed.send(1, "set_tun_ip", r#"{"tun_ip":"192.168.40.9"}"#)
        .expect("set_tun_ip");
    bed.send(1, "start_d2d", r#"{"control_flag":0}"#)
        .expect("start_d2d");
    bed.wait_first_ping(Duration::from_secs(30))
        .expect("first ping");
    let traffic = Traffic::start(&bed, Some(Duration::from_millis(10))).expect("traffic");
    std::thread::sleep(Duration::from_millis(500));
    let modem_pid = agent_status(&bed, 1)["modem_pid"]
        .as_u64()
        .expect("modem pid");
    for signal in [libc::SIGKILL, libc::SIGTERM] {
        let agents = pids(&bed, 1, "agent");
        assert_eq!(agents.len(), 1, "{agents:?}");
        // SAFETY: kill(2) on the agent's pid, just read from its namespace.
        unsafe { libc::kill(agents[0], signal) };
        let t0 = Instant::now();
        while netns::pids_in(&bed.ns("server1")).contains(&agents[0]) {
            assert!(t0.elapsed() < Duration::from_secs(5), "agent did not die");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The modem serves on without its agent.
        let before = traffic.ping_snapshot().expect("ping").received;
        std::thread::sleep(Duration::from_millis(800));
        let after = traffic.ping_snapshot().expect("ping").received;
        assert!(after > before + 4, "the orphaned modem stopped serving");
        assert!(pids(&bed, 1, "modem").contains(&(modem_pid as i32)));
        bed.restart_agent(1).expect("agent restart");
        std::thread::sleep(Duration::from_millis(700));
        let st = agent_status(&bed, 1);
        println!("restarted agent (after signal {signal}): {st}");
        assert_eq!(st["d2d"], true, "{st}");
        assert_eq!(st["modem_pid"].as_u64(), Some(modem_pid), "{st}");
        assert_eq!(st["modem"]["mode"], "active", "{st}");
        assert_eq!(st["collector"], true, "{st}");
        assert_eq!(st["tun_ip"], "192.168.40.9", "{st}");
    }
    // The adopted task migrates like any other.
    let (tl, _) = bed.migrate_mbb(1, 2).expect("migrating the adopted task");
    assert_eq!(tl.interruption_ms, 0);
    assert_eq!(agent_status(&bed, 1)["d2d"], false);
    assert_eq!(agent_status(&bed, 2)["modem"]["mode"], "active");
    std::thread::sleep(Duration::from_millis(500));
    let r = traffic.stop().expect("traffic");
    let probe = r.probe.report();
    println!(
        "probe: {} sent, {} lost, {} duplicates; ping: {} sent, {} lost",
        probe.sent, probe.lost, probe.duplicates, r.ping.sent, r.ping.lost
    );
    // Losing the agent costs the task nothing.
    assert_eq!(probe.lost, 0, "{probe:?}");
    bed.stop_all();
}

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

#[test]
fn a_restarted_agent_adopts_its_serving_modem() {
    if !root_or_skip("a_restarted_agent_adopts_its_serving_modem") {
        return;
    }
    let prefix = format!("fr{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    bed.serving_task().expect("the task serving on server1");
    let traffic = Traffic::start(&bed, Some(Duration::from_millis(10))).expect("traffic");
    std::thread::sleep(Duration::from_millis(500));
    let modem_pid = bed.agent_status(1)["modem_pid"]
        .as_u64()
        .expect("modem pid");
    for signal in [libc::SIGKILL, libc::SIGTERM] {
        let agents = bed.pids(1, "agent");
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
        assert!(bed.pids(1, "modem").contains(&(modem_pid as i32)));
        bed.restart_agent(1).expect("agent restart");
        std::thread::sleep(Duration::from_millis(700));
        let st = bed.agent_status(1);
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
    assert_eq!(bed.agent_status(1)["d2d"], false);
    assert_eq!(bed.agent_status(2)["modem"]["mode"], "active");
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

//! The namespace testbed for real: build, check, reach the radio room, rebuild idempotently,
//! tear down, leave nothing. Needs root; skipped loudly otherwise.

use ferry_testbed::netns::{self, command_in};
use ferry_testbed::{root_or_skip, Topology, UpOutcome};

/// Unique per test process so parallel runs and a running demo never collide.
fn prefix() -> String {
    format!("ft{}", std::process::id() % 1_000_000)
}

struct Teardown(String);
impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = netns::down(&self.0);
    }
}

fn ping(ns: &str, addr: &str) -> bool {
    command_in(ns, "ping")
        .args(["-c", "1", "-W", "2", addr])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn testbed_up_status_down() {
    if !root_or_skip("testbed_up_status_down (ferry testbed up/down in network namespaces)") {
        return;
    }
    let p = prefix();
    let _guard = Teardown(p.clone());
    let topo = Topology::thesis(&p).unwrap();

    assert_eq!(ferry_testbed::up(&topo).unwrap(), UpOutcome::Created);
    let st = ferry_testbed::check(&topo);
    assert!(st.healthy(), "{st:#?}");

    // Fronthaul: every pool server reaches the N210's address; the far end its own radio.
    let s1 = &topo.host("server1").unwrap().ns;
    let s3 = &topo.host("server3").unwrap().ns;
    let s2 = &topo.host("server2").unwrap().ns;
    assert!(
        ping(s1, "192.168.10.2"),
        "server1 eth3 cannot reach the pool radio"
    );
    assert!(ping(s3, "192.168.13.2"), "server3 cannot reach its radio");
    // Management LAN between agents.
    assert!(
        ping(s1, "10.99.0.2"),
        "server1 cannot reach server2 on the management LAN"
    );
    // Parked addresses are on another subnet: the radio room cannot reach them.
    let rr = &topo.host("radio").unwrap().ns;
    assert!(
        !ping(rr, "192.168.20.2"),
        "parked address reachable from the radio room"
    );

    // Idempotent: a second `up` leaves a healthy testbed (and its processes) alone.
    let mut sleeper = command_in(s2, "sleep").arg("30").spawn().unwrap();
    assert_eq!(ferry_testbed::up(&topo).unwrap(), UpOutcome::AlreadyUp);
    assert_eq!(netns::pids_in(s2), vec![sleeper.id() as i32]);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();

    // A damaged testbed (as after a crash) is rebuilt.
    netns::ip(&["netns", "del", s3.as_str()]).unwrap();
    assert!(!ferry_testbed::check(&topo).healthy());
    assert_eq!(ferry_testbed::up(&topo).unwrap(), UpOutcome::Rebuilt);
    assert!(ferry_testbed::check(&topo).healthy());

    // Down removes every namespace and stops what ran inside.
    let removed = ferry_testbed::down(&p).unwrap();
    assert_eq!(removed.len(), 6);
    assert!(ferry_testbed::check(&topo).absent());
    assert!(netns::testbed_namespaces(&p).is_empty());
}

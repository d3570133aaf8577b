//! Every branch of the destination controller's flowcharts (figures 3-17 to 3-26, relay
//! 4-4): requests as bytes through the authenticated envelope into the agent, local steps on
//! a simulated host, one reply each; unknown and malformed requests never stop the agent.

mod harness;

use ferry_migrate::console::{ACTIVE_ADDR, PARKED_ADDR};
use ferry_migrate::machine::{Event, LocalOp, LocalValue};
use ferry_migrate::protocol::{ErrorKind, ModemMode, Reply};
use ferry_migrate::{Agent, AgentAction, AgentConfig};
use harness::{sample_control, FaultKind, Usrp, World};
use serde_json::json;

fn call(w: &mut World, body: serde_json::Value) -> Reply {
    w.call_agent(1, body.to_string().as_bytes())
        .unwrap_or_else(|| panic!("no reply to {body}"))
}

fn cmd(w: &mut World, c: &str) -> Reply {
    call(w, json!({ "cmd": c }))
}

/// Next action that is not a log line.
fn next(a: &mut Agent) -> Option<AgentAction> {
    loop {
        match a.poll_action() {
            Some(AgentAction::Report(_)) => continue,
            other => return other,
        }
    }
}

fn warm_start() -> serde_json::Value {
    json!({"cmd": "start_d2d", "control_flag": 1, "Control": sample_control().to_value()})
}

#[test]
fn start_usrp_branches() {
    let mut w = World::new();
    assert!(cmd(&mut w, "start_usrp").ok);
    assert_eq!(
        w.trace_from(0),
        ["D:eth3=10.1", "D:probe1", "D:start_usrp(init)"]
    );
    assert_eq!(w.hosts[1].usrp, Usrp::Running);

    let mut w = World::new();
    w.fail(1, "eth3=10.1");
    let r = cmd(&mut w, "start_usrp");
    assert_eq!((r.ok, r.kind), (false, Some(ErrorKind::Failed)));
    assert_eq!(w.trace_from(0), ["D:eth3=10.1"]);

    let mut w = World::new();
    w.fail(1, "probe");
    let r = cmd(&mut w, "start_usrp");
    assert!(
        !r.ok && r.describe().contains("after 8 tries"),
        "{}",
        r.describe()
    );
    assert_eq!(w.trace_from(0).len(), 1 + 8 + 1);
    assert_eq!(w.trace_from(9), ["D:eth3=20.2"]);

    let mut w = World::new();
    w.fail(1, "start_usrp");
    let r = cmd(&mut w, "start_usrp");
    assert!(!r.ok);
    assert_eq!(
        w.trace_from(0),
        [
            "D:eth3=10.1",
            "D:probe1",
            "D:start_usrp(init)",
            "D:eth3=20.2"
        ]
    );
    assert!(w.hosts[1].is_clean());
}

#[test]
fn make_usrp_and_link_usrp_branches() {
    let mut w = World::new();
    w.fail(1, "make_usrp");
    assert!(!cmd(&mut w, "make_usrp").ok);
    w.faults.clear();
    assert!(cmd(&mut w, "make_usrp").ok);
    assert_eq!(w.hosts[1].usrp, Usrp::Object);

    w.trace.clear();
    assert!(cmd(&mut w, "link_usrp").ok);
    assert_eq!(w.trace_from(0), ["D:eth3=10.1", "D:probe1", "D:link_usrp"]);
    assert_eq!(w.hosts[1].usrp, Usrp::Running);

    // link: eth3 failure reports without further steps.
    let mut w = World::new();
    assert!(cmd(&mut w, "make_usrp").ok);
    w.trace.clear();
    w.fail(1, "eth3=10.1");
    assert!(!cmd(&mut w, "link_usrp").ok);
    assert_eq!(w.trace_from(0), ["D:eth3=10.1"]);

    // link: radio busy with another holder of .10.1 → probes fail → eth3 back.
    let mut w = World::new();
    assert!(cmd(&mut w, "make_usrp").ok);
    w.hosts[0].eth3 = ACTIVE_ADDR;
    w.trace.clear();
    let r = cmd(&mut w, "link_usrp");
    assert!(!r.ok);
    assert_eq!(w.trace_from(0).last().copied(), Some("D:eth3=20.2"));
    assert_eq!(w.hosts[1].eth3, PARKED_ADDR);

    // link: get_device fails → eth3 back.
    let mut w = World::new();
    assert!(cmd(&mut w, "make_usrp").ok);
    w.trace.clear();
    w.fail(1, "link_usrp");
    assert!(!cmd(&mut w, "link_usrp").ok);
    assert_eq!(
        w.trace_from(0),
        ["D:eth3=10.1", "D:probe1", "D:link_usrp", "D:eth3=20.2"]
    );
}

#[test]
fn start_d2d_branches() {
    let mut w = World::new();
    let r = call(&mut w, json!({"cmd": "start_d2d", "control_flag": 0}));
    assert!(r.ok);
    assert_eq!(w.trace_from(0), ["D:start_d2d(cold)", "D:start_collector"]);
    assert_eq!(w.hosts[1].d2d_warm, Some(false));

    let mut w = World::new();
    assert!(call(&mut w, warm_start()).ok);
    assert_eq!(w.hosts[1].d2d_warm, Some(true));
    let r = cmd(&mut w, "get_control");
    assert_eq!(r.control(), Ok(sample_control()));

    let mut w = World::new();
    w.fail(1, "start_d2d");
    let r = call(&mut w, warm_start());
    assert!(!r.ok);
    assert_eq!(w.trace_from(0), ["D:start_d2d(warm)"]);
    assert!(!w.hosts[1].collector);
    // The received Control is kept even though the start failed (thesis stores it first).
    assert!(w.agents[1].control().is_some());

    let mut w = World::new();
    w.fail(1, "start_collector");
    let r = call(&mut w, warm_start());
    assert!(r.ok, "collector failure is not fatal");
    assert!(w.reported("collector did not start"));
}

#[test]
fn relay_set_route_then_start_fills_routes() {
    let mut w = World::new();
    let r = call(
        &mut w,
        json!({"cmd": "set_route", "route_list": [[3, 2], [4, 4]]}),
    );
    assert!(r.ok);
    assert!(w.trace_from(0).is_empty(), "set_route needs no local step");
    assert!(call(&mut w, warm_start()).ok);
    assert_eq!(w.hosts[1].d2d_routes, Some(harness::sample_routes()));
    assert_eq!(
        cmd(&mut w, "get_route").routes(),
        Ok(harness::sample_routes())
    );
}

#[test]
fn kill_usrp_kill_d2d_double_kill_branches() {
    // kill_usrp: eth3 first; its failure stops before killing.
    let mut w = World::new();
    assert!(cmd(&mut w, "start_usrp").ok);
    w.trace.clear();
    w.fail(1, "eth3=20.2");
    assert!(!cmd(&mut w, "kill_usrp").ok);
    assert_eq!(w.trace_from(0), ["D:eth3=20.2"]);
    assert_eq!(w.hosts[1].usrp, Usrp::Running);
    w.faults.clear();
    w.trace.clear();
    assert!(cmd(&mut w, "kill_usrp").ok);
    assert_eq!(w.trace_from(0), ["D:eth3=20.2", "D:kill_usrp"]);
    assert!(!cmd(&mut w, "kill_usrp").ok, "no USRP left to kill");

    // kill_d2d: collector stopped even when the kill fails; reply is the kill's result.
    let mut w = World::new();
    assert!(call(&mut w, warm_start()).ok);
    w.trace.clear();
    w.fail(1, "kill_d2d");
    let r = cmd(&mut w, "kill_d2d");
    assert!(!r.ok);
    assert_eq!(w.trace_from(0), ["D:kill_d2d", "D:stop_collector"]);
    assert!(!w.hosts[1].collector);

    // double_kill: all three run, success only if all succeed, collector stopped.
    let mut w = World::new();
    assert!(call(&mut w, warm_start()).ok);
    assert!(cmd(&mut w, "start_usrp").ok);
    w.trace.clear();
    w.fail(1, "kill_usrp");
    let r = cmd(&mut w, "double_kill");
    assert!(!r.ok);
    assert_eq!(
        w.trace_from(0),
        [
            "D:kill_d2d",
            "D:kill_usrp",
            "D:eth3=20.2",
            "D:stop_collector"
        ]
    );
    assert!(!w.hosts[1].d2d && w.hosts[1].eth3 == PARKED_ADDR && !w.hosts[1].collector);
}

#[test]
fn tun_ip_get_and_set() {
    let mut w = World::new();
    assert!(!cmd(&mut w, "get_tun_ip").ok, "no address yet");
    assert!(
        call(
            &mut w,
            json!({"cmd": "set_tun_ip", "tun_ip": "192.168.40.9"})
        )
        .ok
    );
    assert_eq!(cmd(&mut w, "get_tun_ip").tun_ip(), Ok(harness::TUN_IP));
    assert_eq!(w.agents[1].tun_ip(), Some(harness::TUN_IP));
    w.fail(1, "set_tun_ip");
    assert!(!call(&mut w, json!({"cmd": "set_tun_ip", "tun_ip": "10.0.0.1"})).ok);
}

#[test]
fn wrong_and_malformed_commands_get_documented_replies_and_agent_survives() {
    let mut w = World::new();
    let r = cmd(&mut w, "format_disk");
    assert_eq!(
        String::from_utf8_lossy(&r.encode()),
        r#"{"ok":false,"cmd":"format_disk","kind":"wrong_command","error":"wrong command"}"#
    );
    for bad in [&b"not json"[..], b"{}", b"[]", b"{\"cmd\":7}", b"\x00\xff"] {
        let r = w.call_agent(1, bad).unwrap_or_else(|| panic!("no reply"));
        assert_eq!(r.kind, Some(ErrorKind::BadRequest));
    }
    let r = call(
        &mut w,
        json!({"cmd": "start_d2d", "control_flag": 1, "Control": {"phy_cell_ID": 504}}),
    );
    assert!(
        r.describe().contains("phy_cell_ID = 504: must be 0..=503"),
        "{}",
        r.describe()
    );
    assert!(cmd(&mut w, "status").ok, "agent still serving");
}

#[test]
fn status_reports_processes_and_modem() {
    let mut w = World::new();
    assert!(call(&mut w, json!({"cmd":"start_d2d","control_flag":1,"Control":sample_control().to_value(),"mode":"shadow"})).ok);
    let st = cmd(&mut w, "status")
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(st.d2d && !st.usrp);
    assert_eq!(st.modem.map(|m| m.mode), Some(ModemMode::Shadow));
    assert!(
        call(
            &mut w,
            json!({"cmd":"takeover_at","at_sample": 1_000_000_000, "forward_token": "abababababababababababababababababababababababababababababababab"})
        )
        .ok
    );
    let st = cmd(&mut w, "status")
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(st.modem.and_then(|m| m.cutover_at), Some(1_000_000_000));
    assert!(cmd(&mut w, "cancel_cutover").ok);
    // release_at needs an active modem.
    let r = call(
        &mut w,
        json!({"cmd":"release_at","at_sample":5,"forward_to":"10.0.0.2:7000", "forward_token": "abababababababababababababababababababababababababababababababab"}),
    );
    assert!(!r.ok);
}

#[test]
fn end_replies_then_exits() {
    let mut a = Agent::new(AgentConfig::default());
    a.receive(0, br#"{"cmd":"end"}"#);
    assert_eq!(
        a.poll_action(),
        Some(AgentAction::Reply(Reply::ok("end", None)))
    );
    assert_eq!(a.poll_action(), Some(AgentAction::Exit));
}

#[test]
fn busy_agent_refuses_a_second_request_and_finishes_the_first() {
    let mut a = Agent::new(AgentConfig::default());
    a.receive(0, br#"{"cmd":"make_usrp"}"#);
    assert_eq!(next(&mut a), Some(AgentAction::Local(LocalOp::MakeUsrp)));
    a.receive(1, br#"{"cmd":"status"}"#);
    match next(&mut a) {
        Some(AgentAction::Reply(r)) => {
            assert_eq!((r.cmd.as_str(), r.kind), ("status", Some(ErrorKind::Busy)))
        }
        other => panic!("expected busy reply, got {other:?}"),
    }
    a.handle(2, Event::LocalDone(Ok(LocalValue::Unit)));
    let mut replies = Vec::new();
    while let Some(x) = a.poll_action() {
        if let AgentAction::Reply(r) = x {
            replies.push(r);
        }
    }
    assert_eq!(replies, [Reply::ok("make_usrp", None)]);
    assert!(!a.is_busy());
}

#[test]
fn hung_local_step_times_out_into_a_failed_reply() {
    let mut w = World::new();
    w.fault(1, "make_usrp", 0, 1, FaultKind::Hang);
    let t0 = w.now;
    let r = cmd(&mut w, "make_usrp");
    assert!(
        !r.ok && r.describe().contains("timed out"),
        "{}",
        r.describe()
    );
    assert!(w.now >= t0 + AgentConfig::default().timeouts.local_ms);
    assert!(cmd(&mut w, "make_usrp").ok, "agent serves again");
}

#[test]
fn raised_handler_replies_command_raised_and_agent_serves_on() {
    let mut a = Agent::new(AgentConfig::default());
    a.receive(0, br#"{"cmd":"kill_d2d"}"#);
    assert_eq!(next(&mut a), Some(AgentAction::Local(LocalOp::KillD2d)));
    a.raised("permission denied");
    match next(&mut a) {
        Some(AgentAction::Reply(r)) => {
            assert_eq!(r.kind, Some(ErrorKind::Raised));
            assert_eq!(r.describe(), "command raised: permission denied");
        }
        other => panic!("expected raised reply, got {other:?}"),
    }
    assert!(!a.is_busy());
    a.receive(1, br#"{"cmd":"get_tun_ip"}"#);
    assert_eq!(next(&mut a), Some(AgentAction::Local(LocalOp::GetTunIp)));
}

#[test]
fn link_usrp_timeline_splits_eth3_probe_and_link() {
    let mut w = World::new();
    assert!(cmd(&mut w, "make_usrp").ok);
    assert!(cmd(&mut w, "link_usrp").ok);
    let t = w.agents[1]
        .last_timeline()
        .cloned()
        .unwrap_or_else(|| panic!("no timeline"));
    let names: Vec<&str> = t.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "set eth3 to the radio subnet",
            "probe radio",
            "link USRP object to the device"
        ]
    );
}

#[test]
fn machines_are_send() {
    fn is_send<T: Send>() {}
    is_send::<Agent>();
    is_send::<ferry_migrate::Sequence>();
}

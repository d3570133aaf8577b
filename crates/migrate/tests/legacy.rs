//! Every branch of the thesis' source-side flowcharts (figures 3-10 to 3-16, relay 4-3)
//! driven against simulated hosts, agent and radio: exact step order including rollbacks,
//! final state, and "never two hosts on 192.168.10.1".

mod harness;

use ferry_migrate::console::{ConsoleCommand, LegacyConfig, ACTIVE_ADDR, PARKED_ADDR};
use ferry_migrate::machine::{Outcome, Pause, PausePoint, PAUSE_PHASE};
use ferry_migrate::timeline::{
    PHASE_ETH3, PHASE_LINK, PHASE_MAKE_USRP, PHASE_RESYNC, PHASE_ROUTES, PHASE_START_D2D,
    PHASE_TUN_IP,
};
use harness::{sample_routes, FaultKind, Usrp, World, TUN_IP};

fn cfg() -> LegacyConfig {
    LegacyConfig {
        confirm_resync: false,
        ..LegacyConfig::default()
    }
}

fn run(w: &mut World, line: &str, cfg: &LegacyConfig) -> Outcome {
    let now = w.now;
    let seq = ConsoleCommand::parse(line)
        .start(cfg, now)
        .unwrap_or_else(|e| panic!("{line} is not a sequence: {e}"));
    let o = w.run(seq);
    assert!(w.max_active_holders <= 1, "two hosts held 192.168.10.1");
    o
}

/// Steps of a successful M, without resync polling.
const M_OK: [&str; 19] = [
    "S:get_tun_ip",
    "->D:set_tun_ip",
    "D:set_tun_ip",
    "S:read_control",
    "->D:start_d2d",
    "D:start_d2d(warm)",
    "D:start_collector",
    "->D:make_usrp",
    "D:make_usrp",
    "->D:status",
    "D:status",
    "S:kill_d2d",
    "S:kill_usrp",
    "S:stop_collector",
    "S:eth3=20.2",
    "->D:link_usrp",
    "D:eth3=10.1",
    "D:probe1",
    "D:link_usrp",
];

// ---------------------------------------------------------------- DS (fig. 3-10)

#[test]
fn ds_success_starts_everything_in_order() {
    let mut w = World::new();
    let o = run(&mut w, "DS", &cfg());
    assert!(o.ok, "{}", o.summary);
    assert_eq!(
        w.trace_from(0),
        [
            "S:eth3=10.1",
            "S:start_d2d(cold)",
            "S:probe1",
            "S:start_usrp(init)",
            "S:start_collector"
        ]
    );
    assert!(w.hosts[0].is_serving() && w.hosts[0].collector);
}

#[test]
fn ds_eth3_failure_stops_at_once() {
    let mut w = World::new();
    w.fail(0, "eth3=10.1");
    let o = run(&mut w, "DS", &cfg());
    assert!(!o.ok);
    assert_eq!(w.trace_from(0), ["S:eth3=10.1"]);
    assert!(w.hosts[0].is_clean());
}

#[test]
fn ds_d2d_failure_parks_eth3() {
    let mut w = World::new();
    w.fail(0, "start_d2d");
    let o = run(&mut w, "DS", &cfg());
    assert!(!o.ok);
    assert_eq!(
        w.trace_from(0),
        ["S:eth3=10.1", "S:start_d2d(cold)", "S:eth3=20.2"]
    );
    assert!(w.hosts[0].is_clean());
}

#[test]
fn ds_radio_missing_after_8_probes_parks_and_kills() {
    let mut w = World::new();
    w.fail(0, "probe");
    let o = run(&mut w, "DS", &cfg());
    assert!(!o.ok);
    assert!(o.summary.contains("after 8 tries"), "{}", o.summary);
    let mut want = vec!["S:eth3=10.1", "S:start_d2d(cold)"];
    let probes: Vec<String> = (1..=8).map(|i| format!("S:probe{i}")).collect();
    want.extend(probes.iter().map(String::as_str));
    want.extend(["S:eth3=20.2", "S:kill_d2d"]);
    assert_eq!(w.trace_from(0), want);
    assert!(w.hosts[0].is_clean());
}

#[test]
fn ds_probe_found_on_third_try() {
    let mut w = World::new();
    w.fault(0, "probe", 0, 2, FaultKind::Fail("not yet".into()));
    let o = run(&mut w, "DS", &cfg());
    assert!(o.ok);
    assert_eq!(
        w.trace_from(0),
        [
            "S:eth3=10.1",
            "S:start_d2d(cold)",
            "S:probe1",
            "S:probe2",
            "S:probe3",
            "S:start_usrp(init)",
            "S:start_collector"
        ]
    );
}

#[test]
fn ds_usrp_failure_parks_then_kills_d2d() {
    let mut w = World::new();
    w.fail(0, "start_usrp");
    let o = run(&mut w, "DS", &cfg());
    assert!(!o.ok);
    assert_eq!(
        w.trace_from(0),
        [
            "S:eth3=10.1",
            "S:start_d2d(cold)",
            "S:probe1",
            "S:start_usrp(init)",
            "S:eth3=20.2",
            "S:kill_d2d"
        ]
    );
    assert!(w.hosts[0].is_clean());
}

#[test]
fn ds_hung_usrp_start_times_out_and_rolls_back() {
    let mut w = World::new();
    w.hang(0, "start_usrp");
    let t0 = w.now;
    let o = run(&mut w, "DS", &cfg());
    assert!(!o.ok);
    assert!(o.summary.contains("timed out"), "{}", o.summary);
    assert!(w.now >= t0 + cfg().timeouts.local_ms);
    assert!(!w.hosts[0].d2d && w.hosts[0].eth3 == PARKED_ADDR);
}

// ---------------------------------------------------------------- KL (fig. 3-11)

#[test]
fn kl_kills_parks_and_stops_collector() {
    let mut w = World::serving_on_source();
    let o = run(&mut w, "KL", &cfg());
    assert!(o.ok);
    assert_eq!(
        w.trace_from(0),
        [
            "S:kill_d2d",
            "S:kill_usrp",
            "S:eth3=20.2",
            "S:stop_collector"
        ]
    );
    assert!(w.hosts[0].is_clean());
}

#[test]
fn kl_runs_all_three_even_if_one_fails_and_reports_failure() {
    let mut w = World::serving_on_source();
    w.fail(0, "kill_d2d");
    let o = run(&mut w, "KL", &cfg());
    assert!(!o.ok);
    assert!(o.summary.contains("kill D2D"), "{}", o.summary);
    assert_eq!(
        w.trace_from(0),
        [
            "S:kill_d2d",
            "S:kill_usrp",
            "S:eth3=20.2",
            "S:stop_collector"
        ]
    );
    assert!(!w.hosts[0].collector && w.hosts[0].usrp == Usrp::None);
}

// ---------------------------------------------------------------- M (fig. 3-12)

#[test]
fn m_success_moves_task_tun_and_control() {
    let mut w = World::serving_on_source();
    let o = run(&mut w, "M", &cfg());
    assert!(o.ok, "{}", o.summary);
    assert_eq!(w.trace_from(0), M_OK);
    assert!(w.hosts[0].is_clean());
    assert!(w.hosts[1].is_serving() && w.hosts[1].collector);
    assert_eq!(w.hosts[1].tun_ip, Some(TUN_IP));
    assert_eq!(w.hosts[1].d2d_warm, Some(true));
    assert_eq!(w.agents[1].control(), w.hosts[0].collected.as_ref());
    let names: Vec<&str> = o.timeline.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            PHASE_TUN_IP,
            PHASE_START_D2D,
            PHASE_MAKE_USRP,
            PHASE_ETH3,
            PHASE_LINK
        ]
    );
}

#[test]
fn m_timeline_has_table_3_4_rows_and_interruption() {
    let mut w = World::serving_on_source();
    let c = LegacyConfig::default();
    let o = run(&mut w, "Migration", &c);
    assert!(o.ok, "{}", o.summary);
    let t = &o.timeline;
    let names: Vec<&str> = t.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            PHASE_TUN_IP,
            PHASE_START_D2D,
            PHASE_MAKE_USRP,
            PHASE_ETH3,
            PHASE_LINK,
            PHASE_RESYNC
        ]
    );
    let sum: u64 = t.phases.iter().map(|p| p.duration_ms).sum();
    assert_eq!(Some(sum), t.total_ms);
    let resync = t.duration_of(PHASE_RESYNC).unwrap_or(0);
    // The simulated modem needs 106 ms after linking; polls every 10 ms (+2 ms LAN).
    assert!((106..=106 + 12 + 2).contains(&resync), "resync {resync}");
    let intr =
        t.duration_of(PHASE_ETH3).unwrap_or(0) + t.duration_of(PHASE_LINK).unwrap_or(0) + resync;
    assert_eq!(t.interruption_ms, intr);
    assert!(t
        .render_table()
        .contains("signal-processing resynchronisation"));
}

#[test]
fn m_set_tun_ip_failure_aborts_with_nothing_started() {
    let mut w = World::serving_on_source();
    w.fail(1, "set_tun_ip");
    let o = run(&mut w, "M", &cfg());
    assert!(!o.ok);
    assert_eq!(
        w.trace_from(0),
        ["S:get_tun_ip", "->D:set_tun_ip", "D:set_tun_ip"]
    );
    assert!(w.hosts[0].is_serving() && w.hosts[1].is_clean());
}

#[test]
fn m_local_tun_read_failure_aborts() {
    let mut w = World::serving_on_source();
    w.fail(0, "get_tun_ip");
    let o = run(&mut w, "M", &cfg());
    assert!(!o.ok);
    assert_eq!(w.trace_from(0), ["S:get_tun_ip"]);
    assert!(w.hosts[0].is_serving());
}

#[test]
fn m_without_collected_control_aborts() {
    let mut w = World::serving_on_source();
    w.hosts[0].collected = None;
    let o = run(&mut w, "M", &cfg());
    assert!(!o.ok);
    assert!(o.summary.contains("no Control"), "{}", o.summary);
    assert_eq!(w.trace_from(3), ["S:read_control"]);
    assert!(w.hosts[0].is_serving() && !w.hosts[1].d2d);
}

#[test]
fn m_start_d2d_failure_aborts() {
    let mut w = World::serving_on_source();
    w.fail(1, "start_d2d");
    let o = run(&mut w, "M", &cfg());
    assert!(!o.ok);
    assert_eq!(w.trace_from(4), ["->D:start_d2d", "D:start_d2d(warm)"]);
    assert!(w.hosts[0].is_serving() && w.hosts[1].is_clean());
}

#[test]
fn m_make_usrp_failure_sends_kill_d2d() {
    let mut w = World::serving_on_source();
    w.fail(1, "make_usrp");
    let o = run(&mut w, "M", &cfg());
    assert!(!o.ok);
    assert_eq!(
        w.trace_from(7),
        [
            "->D:make_usrp",
            "D:make_usrp",
            "->D:kill_d2d",
            "D:kill_d2d",
            "D:stop_collector"
        ]
    );
    assert!(w.hosts[0].is_serving() && w.hosts[1].is_clean());
}

#[test]
fn m_destination_d2d_dying_before_the_source_stops_leaves_the_source_serving() {
    // (Ferry) The destination's D2D program dies at any moment up to the source's kill
    // (make_usrp included): the thesis killed the source anyway and nobody served. Now M
    // asks the destination's status after make_usrp and aborts: the source serves.
    let mut after_make_usrp = 0;
    for t in 0..400 {
        let mut w = World::serving_on_source();
        w.modem_dies_at_ms[1] = Some(w.now + t);
        let o = run(&mut w, "M", &cfg());
        let trace = w.trace_from(0);
        let died = trace.iter().position(|s| *s == "D:modem died");
        let kill = trace.iter().position(|s| *s == "S:kill_d2d");
        let Some(died) = died else { continue };
        let checked = trace.iter().rposition(|s| *s == "D:status");
        if checked.is_some_and(|c| c < died) || kill.is_some_and(|k| k < died) {
            // The destination answered alive: from here the source stops (the thesis'
            // break-before-make; a death after the link is the next test's).
            break;
        }
        assert!(!o.ok, "t={t}: {} {trace:?}", o.summary);
        assert!(
            w.hosts[0].is_serving(),
            "t={t}: the source must serve: {trace:?}"
        );
        assert!(!w.hosts[1].d2d, "t={t}");
        assert_eq!(w.hosts[1].eth3, PARKED_ADDR, "t={t}");
        if trace
            .iter()
            .position(|s| *s == "D:make_usrp")
            .is_some_and(|m| m < died)
        {
            after_make_usrp += 1;
            assert!(
                o.summary.contains("source keeps serving"),
                "t={t}: {}",
                o.summary
            );
        }
    }
    assert!(
        after_make_usrp > 0,
        "no death time fell between make_usrp and the check"
    );
}

#[test]
fn m_destination_d2d_dying_after_the_link_is_a_failure_not_a_success() {
    // Break-before-make: once the source is stopped, a dead destination means nobody
    // serves. M must say so (and park the destination's eth3), never "task runs".
    let c = LegacyConfig::default(); // confirms the resynchronisation (the default)
    let mut probe = World::serving_on_source();
    let _ = run(&mut probe, "M", &c);
    let linked = probe.hosts[1].linked_at_ms.expect("linked");
    // Die just after the link, while M polls for the resynchronisation.
    let mut w = World::serving_on_source();
    w.modem_dies_at_ms[1] = Some(linked + 1);
    let o = run(&mut w, "M", &c);
    let trace = w.trace_from(0);
    assert!(trace.contains(&"D:modem died"), "{trace:?}");
    assert!(!o.ok, "{} {trace:?}", o.summary);
    assert!(o.summary.contains("nobody serves"), "{}", o.summary);
    assert_eq!(w.hosts[1].eth3, PARKED_ADDR);
    assert!(!w.hosts[0].is_serving() && !w.hosts[1].is_serving());
}

#[test]
fn m_destination_agent_silent_after_make_usrp_leaves_the_source_serving() {
    let mut w = World::serving_on_source();
    w.fail(1, "status");
    let o = run(&mut w, "M", &cfg());
    assert!(!o.ok);
    assert!(
        o.summary.contains("did not confirm its D2D program"),
        "{}",
        o.summary
    );
    assert!(w.hosts[0].is_serving());
    assert!(!w.trace_from(0).contains(&"S:kill_d2d"));
}

#[test]
fn m_stops_a_leftover_d2d_on_the_destination_once_and_migrates() {
    // An earlier M's console was killed after the destination's start_d2d: the destination
    // still runs that D2D program (not serving: the source holds the active address).
    let mut w = World::serving_on_source();
    w.hosts[1].d2d = true;
    w.hosts[1].d2d_warm = Some(true);
    w.hosts[1].modem = Some(harness::ModemSim::active());
    let o = run(&mut w, "M", &cfg());
    assert!(o.ok, "{}", o.summary);
    let trace = w.trace_from(0);
    let dk = trace
        .iter()
        .position(|s| *s == "->D:double_kill")
        .expect("leftover stopped");
    let start = trace
        .iter()
        .rposition(|s| *s == "D:start_d2d(warm)")
        .expect("started");
    assert!(dk < start, "{trace:?}");
    assert_eq!(trace.iter().filter(|s| **s == "->D:double_kill").count(), 1);
    assert!(w.hosts[1].is_serving() && w.hosts[0].is_clean());
}

#[test]
fn m_gives_up_when_the_destination_refuses_twice() {
    let mut w = World::serving_on_source();
    w.fault(
        1,
        "start_d2d",
        0,
        2,
        FaultKind::Fail("D2D already running".into()),
    );
    let o = run(&mut w, "M", &cfg());
    assert!(!o.ok);
    assert!(o.summary.contains("start_d2d failed"), "{}", o.summary);
    assert!(w.hosts[0].is_serving());
}

#[test]
fn m_local_kill_failure_stops_collector_and_sends_double_kill() {
    let mut w = World::serving_on_source();
    w.fail(0, "kill_usrp");
    let o = run(&mut w, "M", &cfg());
    assert!(!o.ok);
    assert_eq!(
        w.trace_from(11),
        [
            "S:kill_d2d",
            "S:kill_usrp",
            "S:stop_collector",
            "->D:double_kill",
            "D:kill_d2d",
            "D:kill_usrp",
            "D:eth3=20.2",
            "D:stop_collector"
        ]
    );
    assert!(w.hosts[1].is_clean());
    assert!(!w.hosts[0].collector);
    // The source still holds .10.1 (eth3 is parked only after successful kills).
    assert_eq!(w.hosts[0].eth3, ACTIVE_ADDR);
}

#[test]
fn m_park_failure_cleans_destination_instead_of_linking() {
    let mut w = World::serving_on_source();
    w.fail(0, "eth3=20.2");
    let o = run(&mut w, "M", &cfg());
    assert!(!o.ok);
    assert_eq!(
        w.trace_from(14),
        [
            "S:eth3=20.2",
            "->D:double_kill",
            "D:kill_d2d",
            "D:kill_usrp",
            "D:eth3=20.2",
            "D:stop_collector"
        ]
    );
    assert_eq!(w.hosts[1].eth3, PARKED_ADDR);
}

#[test]
fn m_link_failure_on_destination_rolls_back_with_double_kill() {
    let mut w = World::serving_on_source();
    w.fail(1, "probe");
    let o = run(&mut w, "M", &cfg());
    assert!(!o.ok);
    assert!(o.summary.contains("link_usrp"), "{}", o.summary);
    let tail = w.trace_from(15);
    assert_eq!(tail.first().copied(), Some("->D:link_usrp"));
    assert_eq!(tail.iter().filter(|s| s.starts_with("D:probe")).count(), 8);
    assert_eq!(
        &tail[tail.len() - 6..],
        [
            "D:eth3=20.2",
            "->D:double_kill",
            "D:kill_d2d",
            "D:kill_usrp",
            "D:eth3=20.2",
            "D:stop_collector"
        ]
    );
    // Thesis behaviour: the source was already stopped, nobody serves.
    assert!(w.hosts[0].is_clean() && w.hosts[1].is_clean());
}

#[test]
fn m_dead_destination_times_out_and_source_keeps_serving() {
    let mut w = World::serving_on_source();
    w.dead[1] = true;
    let t0 = w.now;
    let c = cfg();
    let o = run(&mut w, "M", &c);
    assert!(!o.ok);
    assert!(
        o.summary.contains("set_tun_ip request timed out"),
        "{}",
        o.summary
    );
    assert_eq!(w.trace_from(0), ["S:get_tun_ip", "->D:set_tun_ip"]);
    assert!(w.now - t0 >= c.timeouts.request_ms && w.now - t0 < c.timeouts.request_ms + 100);
    assert!(w.hosts[0].is_serving());
}

#[test]
fn m_destination_dying_before_link_is_a_clear_failure() {
    let mut w = World::serving_on_source();
    // Agent answers make_usrp, then dies.
    w.hang(1, "eth3=10.1");
    let o = run(&mut w, "M", &cfg());
    assert!(!o.ok);
    assert!(o.summary.contains("link_usrp"), "{}", o.summary);
    // The agent's own local deadline fired; rollback double_kill was still attempted.
    assert!(w.trace_from(13).contains(&"->D:double_kill"));
}

#[test]
fn m_relay_sends_routes_first_and_destination_uses_them() {
    let mut w = World::serving_on_source();
    w.hosts[0].collected_routes = Some(sample_routes());
    let c = LegacyConfig {
        relay: true,
        ..cfg()
    };
    let o = run(&mut w, "M", &c);
    assert!(o.ok, "{}", o.summary);
    assert_eq!(w.trace_from(0)[..2], ["S:read_routes", "->D:set_route"]);
    assert_eq!(w.trace_from(2), M_OK);
    assert_eq!(w.hosts[1].d2d_routes, Some(sample_routes()));
    assert_eq!(
        o.timeline.phases.first().map(|p| p.name.as_str()),
        Some(PHASE_ROUTES)
    );
    // The destination's route collector took over.
    assert_eq!(w.agents[1].routes(), Some(&sample_routes()));
}

#[test]
fn m_relay_set_route_failure_aborts_before_anything() {
    let mut w = World::serving_on_source();
    w.hosts[0].collected_routes = Some(sample_routes());
    w.dead[1] = true;
    let c = LegacyConfig {
        relay: true,
        ..cfg()
    };
    let o = run(&mut w, "M", &c);
    assert!(!o.ok);
    assert_eq!(w.trace_from(0), ["S:read_routes", "->D:set_route"]);
    assert!(w.hosts[0].is_serving());
}

// ---------------------------------------------------------------- MB (fig. 3-13)

fn migrated() -> World {
    let mut w = World::serving_on_source();
    let o = run(&mut w, "M", &cfg());
    assert!(o.ok);
    w.trace.clear();
    w
}

const MB_OK: [&str; 16] = [
    "->D:get_tun_ip",
    "D:get_tun_ip",
    "->D:get_control",
    "S:set_tun_ip",
    "S:start_d2d(warm)",
    "S:make_usrp",
    "->D:kill_usrp",
    "D:eth3=20.2",
    "D:kill_usrp",
    "S:eth3=10.1",
    "S:probe1",
    "S:link_usrp",
    "->D:kill_d2d",
    "D:kill_d2d",
    "D:stop_collector",
    "S:start_collector",
];

#[test]
fn mb_success_moves_back() {
    let mut w = migrated();
    let o = run(&mut w, "MB", &cfg());
    assert!(o.ok, "{}", o.summary);
    assert_eq!(w.trace_from(0), MB_OK);
    assert!(w.hosts[0].is_serving() && w.hosts[0].collector);
    assert!(w.hosts[1].is_clean());
    assert_eq!(w.hosts[0].d2d_warm, Some(true));
}

#[test]
fn mb_with_resync_confirms_locally() {
    let mut w = migrated();
    let o = run(&mut w, "MB", &LegacyConfig::default());
    assert!(o.ok, "{}", o.summary);
    assert!(o
        .timeline
        .duration_of(PHASE_RESYNC)
        .is_some_and(|d| d >= 106));
}

#[test]
fn mb_get_control_failure_aborts() {
    let mut w = migrated();
    // An agent that never collected Control answers get_control with an error.
    w.agents[1] = ferry_migrate::Agent::new(Default::default());
    let o = run(&mut w, "MB", &cfg());
    assert!(!o.ok);
    assert!(o.summary.contains("no Control"), "{}", o.summary);
    assert_eq!(
        w.trace_from(0),
        ["->D:get_tun_ip", "D:get_tun_ip", "->D:get_control"]
    );
    assert!(w.hosts[1].is_serving());
}

#[test]
fn mb_get_tun_ip_failure_aborts() {
    let mut w = migrated();
    w.fail(1, "get_tun_ip");
    let o = run(&mut w, "MB", &cfg());
    assert!(!o.ok);
    assert_eq!(w.trace_from(0), ["->D:get_tun_ip", "D:get_tun_ip"]);
    assert!(w.hosts[1].is_serving());
}

#[test]
fn mb_local_d2d_failure_aborts() {
    let mut w = migrated();
    w.fail(0, "start_d2d");
    let o = run(&mut w, "MB", &cfg());
    assert!(!o.ok);
    assert_eq!(w.trace_from(3), ["S:set_tun_ip", "S:start_d2d(warm)"]);
    assert!(w.hosts[1].is_serving() && !w.hosts[0].d2d);
}

#[test]
fn mb_make_usrp_failure_kills_local_d2d() {
    let mut w = migrated();
    w.fail(0, "make_usrp");
    let o = run(&mut w, "MB", &cfg());
    assert!(!o.ok);
    assert_eq!(w.trace_from(5), ["S:make_usrp", "S:kill_d2d"]);
    assert!(w.hosts[1].is_serving() && w.hosts[0].is_clean());
}

#[test]
fn mb_remote_kill_usrp_failure_kills_local_both() {
    let mut w = migrated();
    w.fail(1, "kill_usrp");
    let o = run(&mut w, "MB", &cfg());
    assert!(!o.ok);
    assert_eq!(
        w.trace_from(6),
        [
            "->D:kill_usrp",
            "D:eth3=20.2",
            "D:kill_usrp",
            "S:kill_d2d",
            "S:kill_usrp"
        ]
    );
    assert!(w.hosts[0].is_clean());
}

#[test]
fn mb_probe_failure_kills_both_and_parks() {
    let mut w = migrated();
    w.fail(0, "probe");
    let o = run(&mut w, "MB", &cfg());
    assert!(!o.ok);
    let t = w.trace_from(9);
    assert_eq!(t.first().copied(), Some("S:eth3=10.1"));
    assert_eq!(t.iter().filter(|s| s.starts_with("S:probe")).count(), 8);
    assert_eq!(
        &t[t.len() - 3..],
        ["S:kill_d2d", "S:kill_usrp", "S:eth3=20.2"]
    );
    assert!(w.hosts[0].is_clean());
}

#[test]
fn mb_link_failure_kills_both_and_parks() {
    let mut w = migrated();
    w.fail(0, "link_usrp");
    let o = run(&mut w, "MB", &cfg());
    assert!(!o.ok);
    assert_eq!(
        w.trace_from(11),
        ["S:link_usrp", "S:kill_d2d", "S:kill_usrp", "S:eth3=20.2"]
    );
    assert!(w.hosts[0].is_clean());
}

#[test]
fn mb_remote_kill_d2d_failure_still_succeeds() {
    let mut w = migrated();
    w.fail(1, "kill_d2d");
    let o = run(&mut w, "MB", &cfg());
    assert!(o.ok, "{}", o.summary);
    assert!(w.reported("kill_d2d on the destination failed"));
    assert!(w.hosts[0].is_serving());
}

#[test]
fn m_then_mb_twenty_times_keeps_invariants() {
    let mut w = World::serving_on_source();
    for i in 0..20 {
        let o = run(&mut w, "M", &cfg());
        assert!(o.ok, "M #{i}: {}", o.summary);
        assert!(w.hosts[1].is_serving() && w.hosts[0].is_clean());
        let o = run(&mut w, "MB", &cfg());
        assert!(o.ok, "MB #{i}: {}", o.summary);
        assert!(w.hosts[0].is_serving() && w.hosts[1].is_clean());
    }
    assert_eq!(w.max_active_holders, 1);
}

// ---------------------------------------------------------------- DSR, KR, end, q (3-14..3-16)

#[test]
fn dsr_success_and_failures() {
    let mut w = World::new();
    let o = run(&mut w, "DSR", &cfg());
    assert!(o.ok, "{}", o.summary);
    assert_eq!(
        w.trace_from(0),
        [
            "->D:start_d2d",
            "D:start_d2d(cold)",
            "D:start_collector",
            "->D:start_usrp",
            "D:eth3=10.1",
            "D:probe1",
            "D:start_usrp(init)"
        ]
    );
    assert!(w.hosts[1].is_serving());

    let mut w = World::new();
    w.fail(1, "start_d2d");
    let o = run(&mut w, "DSR", &cfg());
    assert!(!o.ok);
    assert_eq!(w.trace_from(0), ["->D:start_d2d", "D:start_d2d(cold)"]);

    let mut w = World::new();
    w.fail(1, "start_usrp");
    let o = run(&mut w, "DSR", &cfg());
    assert!(!o.ok);
    assert_eq!(
        w.trace_from(3),
        [
            "->D:start_usrp",
            "D:eth3=10.1",
            "D:probe1",
            "D:start_usrp(init)",
            "D:eth3=20.2",
            "->D:kill_d2d",
            "D:kill_d2d",
            "D:stop_collector"
        ]
    );
    assert!(w.hosts[1].is_clean());
}

#[test]
fn kr_success_and_partial_failure() {
    let mut w = World::new();
    assert!(run(&mut w, "DSR", &cfg()).ok);
    w.trace.clear();
    let o = run(&mut w, "KR", &cfg());
    assert!(o.ok);
    assert_eq!(
        w.trace_from(0),
        [
            "->D:double_kill",
            "D:kill_d2d",
            "D:kill_usrp",
            "D:eth3=20.2",
            "D:stop_collector"
        ]
    );
    assert!(w.hosts[1].is_clean());
    // Nothing left to kill: double_kill fails (kill of a missing process), collector still stopped.
    let o = run(&mut w, "KR", &cfg());
    assert!(!o.ok);
}

#[test]
fn end_makes_agent_exit_and_later_requests_time_out() {
    let mut w = World::new();
    let o = run(&mut w, "end", &cfg());
    assert!(o.ok);
    assert!(w.agent_exited[1]);
    let o = run(&mut w, "q", &cfg());
    assert!(!o.ok);
    assert!(o.summary.contains("timed out"), "{}", o.summary);
}

#[test]
fn help_unknown_and_blank_only_print() {
    let c = cfg();
    assert!(ConsoleCommand::parse("h")
        .start(&c, 0)
        .is_err_and(|t| t.contains("DSR")));
    assert!(ConsoleCommand::parse("help")
        .start(&c, 0)
        .is_err_and(|t| t.contains("MB")));
    assert!(ConsoleCommand::parse("xyz")
        .start(&c, 0)
        .is_err_and(|t| t.contains("unknown command")));
    assert_eq!(ConsoleCommand::parse("  "), ConsoleCommand::Empty);
    assert_eq!(ConsoleCommand::parse("migration"), ConsoleCommand::Migrate);
    assert_eq!(ConsoleCommand::parse("QUIT"), ConsoleCommand::Quit);
}

// ------------------------------------------- destination modem dying, operator hold

/// An operator hold after `start_d2d` (`--pause-after started`) is a phase of its own and
/// changes nothing else.
#[test]
fn m_operator_hold_after_start_d2d_changes_nothing_else() {
    let mut w = World::serving_on_source();
    let c = LegacyConfig {
        pause: Some(Pause {
            after: PausePoint::DestinationStarted,
            ms: 500,
        }),
        ..cfg()
    };
    let o = run(&mut w, "M", &c);
    assert!(o.ok, "{}", o.summary);
    assert_eq!(w.trace_from(0), M_OK);
    let names: Vec<&str> = o.timeline.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names[..4],
        [PHASE_TUN_IP, PHASE_START_D2D, PAUSE_PHASE, PHASE_MAKE_USRP]
    );
    assert_eq!(o.timeline.duration_of(PAUSE_PHASE), Some(500));
}

/// The destination's D2D program is killed during the hold. With the USRP object in the
/// modem (`ferry agent --usrp-in-modem`), `make_usrp` fails, `kill_d2d` cleans the
/// destination (nothing left to kill: a warning), and the source never stopped serving.
#[test]
fn m_destination_modem_killed_before_make_usrp_leaves_the_source_serving() {
    let mut w = World::serving_on_source();
    w.usrp_in_modem = true;
    w.modem_dies_at_ms[1] = Some(w.now + 200);
    let c = LegacyConfig {
        pause: Some(Pause {
            after: PausePoint::DestinationStarted,
            ms: 1_000,
        }),
        ..cfg()
    };
    let o = run(&mut w, "M", &c);
    assert!(!o.ok, "{}", o.summary);
    assert!(o.summary.contains("make_usrp failed"), "{}", o.summary);
    assert!(w.trace_from(0).ends_with(&[
        "D:modem died",
        "->D:make_usrp",
        "D:make_usrp",
        "->D:kill_d2d",
        "D:kill_d2d",
        "D:stop_collector"
    ]));
    assert!(w.hosts[0].is_serving(), "{:?}", w.hosts[0]);
    assert!(w.hosts[1].is_clean(), "{:?}", w.hosts[1]);
    assert_eq!(w.max_active_holders, 1);
}

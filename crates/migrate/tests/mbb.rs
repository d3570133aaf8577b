//! Make-before-break: the full cutover against simulated agents and radio, and every phase
//! failing before T → source untouched (still serving, never released), destination cleaned
//! (no modem, no shadow, no armed switch).

mod harness;

use ferry_migrate::machine::{Outcome, Pause, PausePoint, Peer, PAUSE_PHASE};
use ferry_migrate::mbb::{self, MbbConfig, MBB_PHASES};
use ferry_migrate::protocol::ModemMode;
use ferry_migrate::Agent;
use harness::{sample_routes, FaultKind, World, SPMS, TUN_IP};

fn cfg() -> MbbConfig {
    MbbConfig::new(
        Peer::Local,
        Peer::Remote,
        "server2",
        "10.0.0.2:7000".parse().unwrap_or_else(|e| panic!("{e}")),
    )
}

/// When phase `name` started in a clean run of `c` from a fresh world (the simulation is
/// deterministic: a second world reaches it at the same time).
fn phase_start(c: MbbConfig, name: &str) -> (u64, u64) {
    let mut w = World::serving_on_source();
    let t0 = w.now;
    let o = run(&mut w, c);
    let at = o
        .timeline
        .phases
        .iter()
        .find(|p| p.name == name)
        .map(|p| p.start_ms)
        .unwrap_or_else(|| panic!("no phase {name:?}"));
    (t0, at)
}

fn run(w: &mut World, c: MbbConfig) -> Outcome {
    let now = w.now;
    w.run(mbb::migrate(c, now))
}

/// The source serves exactly as before and the destination holds nothing.
fn assert_source_untouched_dest_clean(w: &World) {
    let s = &w.hosts[0];
    let m = s
        .modem
        .as_ref()
        .unwrap_or_else(|| panic!("source modem gone"));
    assert_eq!(m.mode, ModemMode::Active, "source modem not serving");
    assert!(!m.ever_released, "source stopped delivering at some point");
    assert!(s.d2d, "source D2D killed");
    assert_eq!(w.radio.primary.as_deref(), Some("server1"), "radio moved");
    assert!(
        w.radio.shadows.is_empty(),
        "shadow left: {:?}",
        w.radio.shadows
    );
    assert!(w.radio.armed.is_none(), "switch left armed");
    assert!(w.radio.switches.is_empty());
    assert!(!w.hosts[1].d2d, "destination modem left running");
    assert!(w.cutovers.is_empty(), "cutover happened: {:?}", w.cutovers);
}

#[test]
fn mbb_success_switches_once_at_a_subframe_boundary() {
    let mut w = World::serving_on_source();
    let o = run(&mut w, cfg());
    assert!(o.ok, "{}", o.summary);
    // One switch, and radio, source and destination all used the same T.
    let (t, to) = w.radio.switches.first().cloned().unwrap_or_default();
    assert_eq!(w.radio.switches.len(), 1);
    assert_eq!(to, "server2");
    assert_eq!(w.cutovers.len(), 2);
    assert!(w.cutovers.contains(&("D", "takeover", t)));
    assert!(w.cutovers.contains(&("S", "release", t)));
    // T is on the cell's subframe grid (frame start 1234 in the Control's warm start).
    assert_eq!((t - 1234) % SPMS, 0);
    assert_eq!(
        o.result.as_ref().and_then(|r| r["cutover_sample"].as_u64()),
        Some(t)
    );
    // Destination serves with the moved tun address; source cleaned.
    assert_eq!(
        w.hosts[1].modem.as_ref().map(|m| m.mode),
        Some(ModemMode::Active)
    );
    assert_eq!(w.hosts[1].tun_ip, Some(TUN_IP));
    assert_eq!(w.hosts[1].d2d_warm, Some(true));
    assert!(w.hosts[0].is_clean());
    assert_eq!(w.radio.primary.as_deref(), Some("server2"));
    // Timeline: Ferry's phases in order (no relay: no set_route phase), no interruption.
    let names: Vec<&str> = o.timeline.phases.iter().map(|p| p.name.as_str()).collect();
    let want: Vec<&str> = MBB_PHASES
        .iter()
        .copied()
        .filter(|p| *p != MBB_PHASES[2])
        .collect();
    assert_eq!(names, want);
    assert_eq!(o.timeline.interruption_ms, 0);
    // Arming order: destination, source, radio (the radio's switch is the commit).
    let arm: Vec<&str> = w
        .trace
        .iter()
        .map(String::as_str)
        .filter(|s| {
            [
                "->D:takeover_at",
                "radio:switch_at(server2)",
                "->S:release_at",
            ]
            .contains(s)
        })
        .collect();
    assert_eq!(
        arm,
        [
            "->D:takeover_at",
            "->S:release_at",
            "radio:switch_at(server2)"
        ]
    );
}

#[test]
fn mbb_back_and_forth_twenty_times() {
    let mut w = World::serving_on_source();
    for i in 0..20 {
        let (c, from, to) = if i % 2 == 0 {
            (cfg(), 0, 1)
        } else {
            let mut c = cfg();
            c.source = Peer::Remote;
            c.destination = Peer::Local;
            c.destination_port = "server1".into();
            (c, 1, 0)
        };
        w.cutovers.clear();
        let o = run(&mut w, c);
        assert!(o.ok, "#{i}: {}", o.summary);
        assert!(w.hosts[from].is_clean(), "#{i}");
        assert_eq!(
            w.hosts[to].modem.as_ref().map(|m| m.mode),
            Some(ModemMode::Active)
        );
        // Exactly one release and one takeover, at the same sample.
        assert_eq!(w.cutovers.len(), 2, "#{i}: {:?}", w.cutovers);
        assert_eq!(w.cutovers[0].2, w.cutovers[1].2);
    }
    assert_eq!(w.radio.switches.len(), 20);
}

#[test]
fn mbb_relay_carries_routes() {
    let mut w = World::serving_on_source();
    w.agents[0].collected_routes(sample_routes());
    let mut c = cfg();
    c.relay = true;
    let o = run(&mut w, c);
    assert!(o.ok, "{}", o.summary);
    assert_eq!(w.hosts[1].d2d_routes, Some(sample_routes()));
    let sr = w.trace.iter().position(|s| s == "->D:set_route");
    let sd = w.trace.iter().position(|s| s == "->D:start_d2d");
    assert!(sr.is_some() && sr < sd, "set_route must precede start_d2d");
    assert!(o.timeline.duration_of(MBB_PHASES[2]).is_some());
}

/// A plain D2D task's MAC routes move too: without them the destination drops its traffic
/// until the far end's next discovery beacon (≈ 7 pings per migration in the testbed).
#[test]
fn mbb_plain_task_carries_the_source_routes() {
    let mut w = World::serving_on_source();
    w.agents[0].collected_routes(sample_routes());
    let o = run(&mut w, cfg());
    assert!(o.ok, "{}", o.summary);
    assert_eq!(w.hosts[1].d2d_routes, Some(sample_routes()));
    let gr = w.trace.iter().position(|s| s == "->S:get_route");
    let sr = w.trace.iter().position(|s| s == "->D:set_route");
    let sd = w.trace.iter().position(|s| s == "->D:start_d2d");
    assert!(gr.is_some() && gr < sr, "get_route must precede set_route");
    assert!(sr.is_some() && sr < sd, "set_route must precede start_d2d");
}

/// A plain task whose source has no route list yet still moves (relays abort instead,
/// `fail_reading_source_routes`).
#[test]
fn mbb_plain_task_without_routes_still_moves() {
    let mut w = World::serving_on_source();
    let o = run(&mut w, cfg());
    assert!(o.ok, "{}", o.summary);
    assert!(w.trace.iter().any(|s| s == "->S:get_route"));
    assert!(!w.trace.iter().any(|s| s == "->D:set_route"));
    assert!(w.reported("no route list from the source"));
}

/// Each injected failure and the rollback that must follow it (trace suffix).
fn failing(setup: impl FnOnce(&mut World), want_tail: &[&str]) -> Outcome {
    let mut w = World::serving_on_source();
    setup(&mut w);
    let o = run(&mut w, cfg());
    assert!(!o.ok, "expected failure");
    assert!(o.summary.contains("source untouched"), "{}", o.summary);
    let trace = w.trace_from(0);
    assert!(
        trace.ends_with(want_tail),
        "trace {trace:?}\n does not end with {want_tail:?}"
    );
    assert_source_untouched_dest_clean(&w);
    o
}

const KILL_DEST: [&str; 3] = ["->D:kill_d2d", "D:kill_d2d", "D:stop_collector"];

#[test]
fn fail_reading_source_tun_ip() {
    failing(
        |w| w.fail(0, "get_tun_ip"),
        &["->S:get_tun_ip", "S:get_tun_ip"],
    );
}

#[test]
fn fail_reading_source_control() {
    failing(
        |w| w.agents[0] = Agent::new(Default::default()),
        &["->S:get_control"],
    );
}

#[test]
fn fail_reading_source_routes() {
    let mut w = World::serving_on_source();
    let mut c = cfg();
    c.relay = true;
    let o = run(&mut w, c);
    assert!(!o.ok && o.summary.contains("get_route"), "{}", o.summary);
    assert_source_untouched_dest_clean(&w);
}

#[test]
fn fail_setting_destination_tun_ip() {
    failing(
        |w| w.fail(1, "set_tun_ip"),
        &["->D:set_tun_ip", "D:set_tun_ip"],
    );
}

#[test]
fn fail_starting_destination() {
    let mut tail = vec![
        "->D:start_d2d",
        "D:start_d2d(shadow)",
        "->D:kill_d2d",
        "D:kill_d2d",
    ];
    tail.push("D:stop_collector");
    failing(|w| w.fail(1, "start_d2d"), &tail);
}

#[test]
fn fail_radio_shadow() {
    let mut tail = vec!["radio:shadow(server2)", "radio:unshadow(server2)"];
    tail.extend(KILL_DEST);
    failing(|w| w.radio.refuse.push("shadow"), &tail);
}

#[test]
fn fail_destination_never_synchronises() {
    let o = failing(|w| w.sync_ms = None, &KILL_DEST);
    assert!(
        o.summary.contains("no sync within 5000 ms"),
        "{}",
        o.summary
    );
    let sync = o.timeline.duration_of(MBB_PHASES[5]).unwrap_or(0);
    assert!((5_000..5_050).contains(&sync), "sync phase {sync} ms");
}

#[test]
fn fail_radio_clock() {
    let mut tail = vec!["radio:clock", "radio:unshadow(server2)"];
    tail.extend(KILL_DEST);
    failing(|w| w.radio.refuse.push("clock"), &tail);
}

#[test]
fn fail_arming_destination() {
    let mut tail = vec![
        "->D:takeover_at",
        "D:takeover_at",
        "radio:unshadow(server2)",
    ];
    tail.extend(KILL_DEST);
    failing(|w| w.fail(1, "takeover_at"), &tail);
}

#[test]
fn fail_arming_radio() {
    // The radio refuses: nothing to cancel there; the source is disarmed.
    let mut tail = vec![
        "->S:release_at",
        "S:release_at",
        "radio:switch_at(server2)",
        "->S:cancel_cutover",
        "S:cancel_cutover",
        "radio:unshadow(server2)",
    ];
    tail.extend(KILL_DEST);
    failing(|w| w.radio.refuse.push("switch_at"), &tail);
}

#[test]
fn fail_arming_source() {
    // The radio was never armed: no cancel needed (ferry air has none).
    let mut tail = vec![
        "->S:release_at",
        "S:release_at",
        "->S:cancel_cutover",
        "S:cancel_cutover",
        "radio:unshadow(server2)",
    ];
    tail.extend(KILL_DEST);
    failing(|w| w.fail(0, "release_at"), &tail);
}

#[test]
fn slow_source_reply_aborts_before_t_and_disarms() {
    // The source arms but its reply would arrive after T − guard: abort, disarm it.
    let mut tail = vec![
        "->S:release_at",
        "S:release_at",
        "->S:cancel_cutover",
        "S:cancel_cutover",
        "radio:unshadow(server2)",
    ];
    tail.extend(KILL_DEST);
    let o = failing(|w| w.reply_delay[0] = 60, &tail);
    assert!(
        o.summary.contains("release_at request timed out"),
        "{}",
        o.summary
    );
}

#[test]
fn dead_destination_is_a_clean_failure() {
    let mut w = World::serving_on_source();
    w.dead[1] = true;
    let t0 = w.now;
    let c = cfg();
    let o = run(&mut w, c.clone());
    assert!(
        !o.ok && o.summary.contains("set_tun_ip request timed out"),
        "{}",
        o.summary
    );
    assert!(w.now - t0 < c.timeouts.request_ms + 100, "wedged");
    assert_source_untouched_dest_clean(&w);
}

#[test]
fn destination_dying_after_start_is_cleaned_as_far_as_possible() {
    let mut w = World::serving_on_source();
    // Destination answers until the shadow starts, then stops answering.
    w.fault(1, "status", 0, u32::MAX, FaultKind::Hang);
    let o = run(&mut w, cfg());
    assert!(
        !o.ok && o.summary.contains("source untouched"),
        "{}",
        o.summary
    );
    let s = &w.hosts[0];
    assert_eq!(s.modem.as_ref().map(|m| m.mode), Some(ModemMode::Active));
    assert!(w.radio.shadows.is_empty() && w.radio.armed.is_none());
    assert!(w.trace_from(0).contains(&"->D:kill_d2d"));
}

#[test]
fn radio_cancel_failure_leaves_the_decision_to_the_radio() {
    let mut w = World::serving_on_source();
    // The switch is armed but its reply is lost, and the radio cannot cancel.
    w.radio.lose_reply.push("switch_at");
    w.radio.refuse.push("cancel_switch");
    let o = run(&mut w, cfg());
    assert!(!o.ok);
    assert!(
        o.summary.contains("could not be cancelled"),
        "{}",
        o.summary
    );
    // Nothing after the failed cancel: the destination stays armed, so when the radio does
    // switch at T the destination takes over (no outage).
    assert_eq!(
        w.trace.last().map(String::as_str),
        Some("radio:cancel_switch(server2)")
    );
    w.advance_to(w.now + 100);
    assert_eq!(w.radio.primary.as_deref(), Some("server2"));
    assert_eq!(
        w.hosts[1].modem.as_ref().map(|m| m.mode),
        Some(ModemMode::Active)
    );
}

#[test]
fn failure_after_t_falls_back_and_stops_only_the_destination() {
    let mut w = World::serving_on_source();
    // The destination modem fails to take over at T (the radio did switch): it sends no
    // TX, so within the grace the radio hands the task back to the warm source.
    w.takeover_broken[1] = true;
    let o = run(&mut w, cfg());
    assert!(!o.ok);
    assert!(o.summary.contains("rolled back after T"), "{}", o.summary);
    assert!(
        o.summary.contains("destination did not confirm"),
        "{}",
        o.summary
    );
    assert!(
        w.trace.iter().any(|t| t == "radio:fallback"),
        "{:?}",
        w.trace
    );
    assert_eq!(w.radio.primary.as_deref(), Some(w.hosts[0].port));
    assert!(w.hosts[0].d2d, "the source serves again");
    assert_eq!(
        w.hosts[0].modem.as_ref().map(|m| m.mode),
        Some(ModemMode::Active)
    );
    assert!(!w.hosts[1].d2d, "the destination was stopped");
}

#[test]
fn failure_after_t_without_grace_is_reported_as_committed_and_nothing_is_killed() {
    let mut w = World::serving_on_source();
    w.takeover_broken[1] = true;
    let mut c = cfg();
    c.fallback_grace_ms = 0;
    let o = run(&mut w, c);
    assert!(!o.ok);
    assert!(o.summary.contains("committed at T"), "{}", o.summary);
    assert!(
        w.hosts[0].d2d && w.hosts[1].d2d,
        "both modems must be left running"
    );
}

#[test]
fn every_phase_has_a_deadline_no_wedge_on_hung_radio() {
    let mut w = World::serving_on_source();
    w.radio.hang.push("clock");
    let t0 = w.now;
    let o = run(&mut w, cfg());
    assert!(
        !o.ok && o.summary.contains("radio command timed out"),
        "{}",
        o.summary
    );
    assert!(w.now - t0 < 10_000);
}

// ------------------------------------------- destination modem dying, operator holds

/// The destination's modem dies (SIGKILL) while the sequence waits for it to synchronise:
/// its agent reaps it, the next `status` says `d2d: false`, and the migration aborts at
/// once instead of waiting out the 5 s sync deadline. The source is never touched.
#[test]
fn destination_modem_dying_while_syncing_aborts_at_once() {
    let mut w = World::serving_on_source();
    w.sync_ms = Some(200);
    let t0 = w.now;
    // `start_d2d` reaches the destination within a few ms; the modem dies 50 ms later.
    w.modem_dies_at_ms[1] = Some(t0 + 50);
    let o = run(&mut w, cfg());
    assert!(!o.ok, "{}", o.summary);
    assert!(
        o.summary.contains("source untouched")
            && o.summary.contains("destination modem is not running"),
        "{}",
        o.summary
    );
    assert!(
        w.now - t0 < 1_000,
        "waited {} ms for a dead modem",
        w.now - t0
    );
    assert!(w.trace_from(0).contains(&"D:modem died"));
    assert!(w.trace_from(0).ends_with(&[
        "radio:unshadow(server2)",
        "->D:kill_d2d",
        "D:kill_d2d",
        "D:stop_collector"
    ]));
    assert_source_untouched_dest_clean(&w);
    assert!(w.hosts[1].is_clean());
}

fn paused(after: PausePoint, ms: u64) -> MbbConfig {
    let mut c = cfg();
    c.pause = Some(Pause { after, ms });
    c
}

/// An operator hold changes nothing but time: the migration succeeds and the timeline shows
/// the hold as its own phase, at the chosen point; at `synced` the sync is confirmed again.
#[test]
fn operator_hold_is_a_timeline_phase_and_changes_nothing_else() {
    for (after, before, next) in [
        (PausePoint::DestinationStarted, MBB_PHASES[3], MBB_PHASES[4]),
        (PausePoint::DestinationSynced, MBB_PHASES[5], MBB_PHASES[5]),
    ] {
        let mut w = World::serving_on_source();
        let o = run(&mut w, paused(after, 700));
        assert!(o.ok, "{after:?}: {}", o.summary);
        let names: Vec<&str> = o.timeline.phases.iter().map(|p| p.name.as_str()).collect();
        let at = names
            .iter()
            .position(|n| *n == PAUSE_PHASE)
            .unwrap_or_else(|| panic!("no pause phase: {names:?}"));
        assert_eq!((names[at - 1], names[at + 1]), (before, next), "{names:?}");
        assert_eq!(o.timeline.duration_of(PAUSE_PHASE), Some(700));
        assert_eq!(o.timeline.interruption_ms, 0);
        assert_eq!(w.radio.switches.len(), 1);
        assert!(w.reported("paused 700 ms after"));
    }
}

/// During a hold the destination is asked its status every `keepalive_ms`, which renews
/// its agent's lease on the warm modem (a controller killed in the hold stops renewing and
/// the agent stops the shadow a lease later, `ferry_migrate::lease`); the migration itself
/// goes on as without the keepalives.
#[test]
fn a_hold_renews_the_destinations_lease_every_keepalive() {
    for after in [
        PausePoint::DestinationStarted,
        PausePoint::DestinationSynced,
    ] {
        let mut c = paused(after, 10_000);
        c.keepalive_ms = 1_000;
        let mut w = World::serving_on_source();
        let t0 = w.now;
        let o = run(&mut w, c);
        assert!(o.ok, "{after:?}: {}", o.summary);
        let hold = o
            .timeline
            .phases
            .iter()
            .find(|p| p.name == PAUSE_PHASE)
            .expect("the hold");
        assert_eq!(o.timeline.duration_of(PAUSE_PHASE), Some(10_000));
        let (from, to) = (hold.start_ms, hold.start_ms + 10_000);
        let to_dest: Vec<u64> = w
            .requests
            .iter()
            .filter(|(_, h, _)| *h == "D")
            .map(|(t, _, _)| t - t0)
            .collect();
        let kept: Vec<u64> = to_dest
            .iter()
            .copied()
            .filter(|t| (from..to).contains(t))
            .collect();
        assert!(kept.len() >= 9, "{after:?}: keepalives {kept:?}");
        // No gap of more than a keepalive (plus a round trip) with the destination.
        let mut last = from;
        for t in kept.iter().copied().chain([to]) {
            assert!(t - last <= 1_050, "{after:?}: {last} -> {t}: {kept:?}");
            last = t;
        }
        assert!(
            w.requests
                .iter()
                .filter(|(t, h, _)| *h == "D" && (from..to).contains(&(t - t0)))
                .all(|(_, _, cmd)| *cmd == "status"),
            "{after:?}: only status in the hold"
        );
        assert_eq!(w.radio.switches.len(), 1);
    }
}

/// The destination modem is killed during a hold at either point: abort before T, the
/// source untouched, the destination cleaned (no modem, no collector, no shadow).
#[test]
fn destination_modem_killed_during_a_hold_leaves_the_source_serving() {
    for after in [
        PausePoint::DestinationStarted,
        PausePoint::DestinationSynced,
    ] {
        let mut w = World::serving_on_source();
        let t0 = w.now;
        // Sync takes 30 ms: the hold at `synced` starts around t0 + 40 ms.
        w.modem_dies_at_ms[1] = Some(t0 + 300);
        let o = run(&mut w, paused(after, 1_000));
        assert!(!o.ok, "{after:?}: {}", o.summary);
        assert!(
            o.summary.contains("destination modem is not running"),
            "{after:?}: {}",
            o.summary
        );
        assert_source_untouched_dest_clean(&w);
        assert!(w.hosts[1].is_clean(), "{after:?}: {:?}", w.hosts[1]);
        // Nothing after the hold waited on the dead modem.
        assert!(w.now - t0 < 1_500, "{after:?}: took {} ms", w.now - t0);
    }
}

/// After T a dead destination is detected at once; the radio falls back to the warm source.
#[test]
fn destination_modem_dead_after_t_is_reported_at_once() {
    // The simulation is deterministic: a clean run tells when "cutover at T" starts.
    let (t0, armed) = phase_start(cfg(), MBB_PHASES[10]);
    let mut w = World::serving_on_source();
    assert_eq!(w.now, t0);
    // Everything is armed; the destination dies before T and cannot take over.
    w.modem_dies_at_ms[1] = Some(t0 + armed + 1);
    let c = cfg();
    let grace = c.fallback_grace_ms;
    let o = run(&mut w, c);
    assert!(!o.ok);
    assert!(
        o.summary.contains("rolled back after T")
            && o.summary.contains("destination modem is not running"),
        "{}",
        o.summary
    );
    // Detected at once; settled once the fallback grace is over.
    assert!(w.now - t0 < armed + grace + 200, "waited {} ms", w.now - t0);
    // The radio fell back to the warm source, which serves again; it was never killed.
    assert!(w.hosts[0].d2d);
    assert_eq!(w.radio.primary.as_deref(), Some(w.hosts[0].port));
}

/// The margin before T follows the round trips this migration measured: twice the
/// largest to each of source, destination and radio, plus the TX lead (8) and the guard
/// (2), between the floor (20) and `margin_ms` (40); fixed when the floor is raised to
/// it.
#[test]
fn the_margin_follows_the_measured_round_trips() {
    let margin = |delay: u64, floor: Option<u64>| {
        let mut w = World::serving_on_source();
        w.reply_delay[1] = delay;
        let mut c = cfg();
        if let Some(f) = floor {
            c.margin_floor_ms = f;
        }
        let o = run(&mut w, c);
        assert!(o.ok, "{}", o.summary);
        let r = o.result.unwrap_or_default();
        let rtts: Vec<u64> = (0..3)
            .map(|i| r["rtt_max_ms"][i].as_u64().unwrap_or(u64::MAX))
            .collect();
        let m = r["margin_ms"].as_u64().unwrap_or(0);
        (m, rtts)
    };
    let want = |r: &[u64]| (2 * r.iter().sum::<u64>() + 8 + 2).clamp(20, 40);
    let (fast, rtts) = margin(0, None);
    assert_eq!(fast, want(&rtts), "{rtts:?}");
    assert!(rtts.iter().all(|&r| r <= 4), "{rtts:?}");
    let (slow, slow_rtts) = margin(6, None);
    assert!(
        slow_rtts[1] >= rtts[1] + 6,
        "the destination answers 6 ms later: {slow_rtts:?}"
    );
    assert_eq!(slow, want(&slow_rtts));
    assert!(slow > fast);
    assert_eq!(margin(0, Some(40)).0, 40, "floor = ceiling: fixed");
    assert_eq!(margin(8, None).0, 40, "never above margin_ms");
    let mut c = cfg();
    c.margin_floor_ms = 35;
    let mut w = World::serving_on_source();
    let o = run(&mut w, c);
    assert_eq!(
        o.result.unwrap_or_default()["margin_ms"].as_u64(),
        Some(35),
        "never under the floor"
    );
}

/// A destination slow to arm leaves too little time for the radio and the source: abort
/// before the radio is armed (its switch may not be cancellable), so nothing needs cancelling.
#[test]
fn slow_destination_arming_aborts_before_the_radio_is_armed() {
    let o = failing(|w| w.reply_delay[1] = 15, &{
        let mut t = vec![
            "->D:takeover_at",
            "D:takeover_at",
            "radio:unshadow(server2)",
        ];
        t.extend(KILL_DEST);
        t
    });
    assert!(
        o.summary.contains("raise --margin-floor-ms"),
        "{}",
        o.summary
    );
}

/// A one-off slow arming of the destination (a hiccup on a shared host): its takeover is
/// cancelled and a later T chosen with a margin sized by that round trip, once; the
/// migration then succeeds with nothing lost.
#[test]
fn a_one_off_slow_destination_arming_chooses_a_later_t_once() {
    let mut w = World::serving_on_source();
    w.delay_once = Some((1, "takeover_at", 12));
    let o = run(&mut w, cfg());
    assert!(o.ok, "{}", o.summary);
    let trace: Vec<&str> = w.trace.iter().map(String::as_str).collect();
    let takeovers = trace.iter().filter(|t| **t == "->D:takeover_at").count();
    assert_eq!(takeovers, 2, "{trace:?}");
    let cancel = trace
        .iter()
        .position(|t| *t == "->D:cancel_cutover")
        .expect("cancelled");
    let second = trace
        .iter()
        .rposition(|t| *t == "->D:takeover_at")
        .expect("re-armed");
    assert!(cancel < second, "{trace:?}");
    let margin = o.result.unwrap_or_default()["margin_ms"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        margin >= 2 * 12,
        "the new T's margin covers the hiccup: {margin}"
    );
    assert_eq!(
        w.radio.primary.as_deref(),
        Some(w.hosts[1].port),
        "the radio switched"
    );
    assert!(w.hosts[1].d2d, "the destination serves");
}

/// `protect`: the first half of make-before-break, then the radio takes the warm
/// destination as the task's standby; the source serves on untouched.
#[test]
fn protect_starts_a_hot_standby_and_moves_nothing() {
    use ferry_migrate::protect;
    let mut w = World::serving_on_source();
    let now = w.now;
    let o = w.run(protect::protect(cfg(), now));
    assert!(o.ok, "{}", o.summary);
    assert_eq!(w.radio.standby.as_deref(), Some("server2"));
    assert!(w.radio.shadows.is_empty(), "the shadow slot is freed");
    assert!(w.radio.switches.is_empty(), "nothing moved");
    assert!(
        w.trace.iter().any(|t| t.contains("start_d2d(standby)")),
        "{:?}",
        w.trace
    );
    let s = w.hosts[0].modem.as_ref().map(|m| m.mode);
    assert_eq!(s, Some(ModemMode::Active));
    let d = w.hosts[1].modem.as_ref().map(|m| m.mode);
    assert_eq!(d, Some(ModemMode::Shadow));
    assert!(o.timeline.duration_of(protect::PROTECT_PHASE).is_some());
    // Unprotect: the radio drops the standby, then its modem stops.
    let now = w.now;
    let o = w.run(protect::unprotect(Peer::Remote, cfg().timeouts, now));
    assert!(o.ok, "{}", o.summary);
    assert_eq!(w.radio.standby, None);
    assert!(!w.hosts[1].d2d);
    assert!(w.hosts[0].d2d);
}

/// A radio that refuses `protect` leaves nothing behind: the standby is stopped and the
/// shadow copy removed, the source untouched.
#[test]
fn protect_refused_by_the_radio_rolls_back() {
    use ferry_migrate::protect;
    let mut w = World::serving_on_source();
    w.radio.refuse.push("protect");
    let now = w.now;
    let o = w.run(protect::protect(cfg(), now));
    assert!(!o.ok);
    assert_eq!(w.radio.standby, None);
    assert!(w.radio.shadows.is_empty());
    assert_source_untouched_dest_clean(&w);
}

/// If the radio does not drop the standby, `unprotect` leaves it running (it still
/// protects the task) and says so.
#[test]
fn unprotect_keeps_the_standby_when_the_radio_refuses() {
    use ferry_migrate::protect;
    let mut w = World::serving_on_source();
    let now = w.now;
    assert!(w.run(protect::protect(cfg(), now)).ok);
    w.radio.refuse.push("protect");
    let now = w.now;
    let o = w.run(protect::unprotect(Peer::Remote, cfg().timeouts, now));
    assert!(!o.ok);
    assert!(o.summary.contains("still protects"), "{}", o.summary);
    assert!(w.hosts[1].d2d);
}

/// SIGINT before the radio's switch is armed: the migration is undone (the source serves
/// as before, the destination holds nothing) and the summary says so.
#[test]
fn interrupt_before_the_radio_is_armed_undoes_the_migration() {
    let (t0, shadowing) = phase_start(cfg(), MBB_PHASES[4]);
    let mut w = World::serving_on_source();
    // While the destination synchronises on the radio's copy.
    w.interrupt_at_ms = Some(t0 + shadowing + 1);
    let o = run(&mut w, cfg());
    assert!(!o.ok);
    assert!(
        o.summary.contains("interrupted by the operator"),
        "{}",
        o.summary
    );
    assert!(o.summary.contains("undone"), "{}", o.summary);
    assert!(w.trace.iter().any(|t| t == "SIGINT"));
    assert_source_untouched_dest_clean(&w);
    assert!(w.radio.switches.is_empty());
}

/// SIGINT after the radio's switch is armed: the migration is finished, consistently.
#[test]
fn interrupt_after_the_radio_is_armed_finishes_the_migration() {
    // A clean run tells when "cutover at T" starts.
    let (t0, armed) = phase_start(cfg(), MBB_PHASES[10]);
    let mut w = World::serving_on_source();
    w.interrupt_at_ms = Some(t0 + armed + 1);
    let o = run(&mut w, cfg());
    assert!(o.ok, "{}", o.summary);
    assert!(w.trace.iter().any(|t| t == "SIGINT"));
    assert!(w
        .reports
        .iter()
        .any(|r| r.text.contains("finishing the migration")));
    assert_eq!(w.radio.primary.as_deref(), Some("server2"));
    assert!(!w.hosts[0].d2d, "source cleaned");
}

/// The source's modem dies during an operator hold (destination synchronised): rolling
/// back would leave nobody serving, so the warm destination is promoted — the radio
/// switches to it at T without a fallback — and the migration says so.
#[test]
fn source_dead_during_the_hold_promotes_the_destination() {
    let (t0, hold) = phase_start(paused(PausePoint::DestinationSynced, 1_000), PAUSE_PHASE);
    let mut w = World::serving_on_source();
    w.modem_dies_at_ms[0] = Some(t0 + hold + 100);
    let o = run(&mut w, paused(PausePoint::DestinationSynced, 1_000));
    assert!(o.ok, "{}", o.summary);
    assert!(o.summary.contains("promoted"), "{}", o.summary);
    assert_eq!(w.radio.primary.as_deref(), Some("server2"));
    assert_eq!(
        w.hosts[1].modem.as_ref().map(|m| m.mode),
        Some(ModemMode::Active)
    );
    assert!(!w.hosts[0].d2d);
    assert!(w
        .reports
        .iter()
        .any(|r| r.text.contains("promoting the warm destination")));
}

/// The destination's *agent* dies at T (its modem runs on and takes over). The sequence
/// cannot hear the destination confirm; once the fallback grace is over the radio, the
/// arbiter, still names the destination: the move is done, the released source is cleaned
/// (not left for an operator), and the outcome says the radio confirmed it.
#[test]
fn destination_agent_dead_at_t_is_settled_by_the_radio_and_the_source_cleaned() {
    let (t0, armed) = phase_start(cfg(), MBB_PHASES[10]);
    let mut w = World::serving_on_source();
    assert_eq!(w.now, t0);
    w.agent_dies_at_ms[1] = Some(t0 + armed + 1);
    let o = run(&mut w, cfg());
    assert!(o.ok, "{}", o.summary);
    assert!(
        o.summary
            .contains("confirmed by the radio after the fallback grace"),
        "{}",
        o.summary
    );
    assert_eq!(w.radio.primary.as_deref(), Some(w.hosts[1].port));
    assert_eq!(
        w.hosts[1].modem.as_ref().map(|m| m.mode),
        Some(ModemMode::Active),
        "the destination serves"
    );
    assert!(!w.hosts[0].d2d, "the released source was cleaned");
    assert_eq!(w.max_active_holders, 1);
}

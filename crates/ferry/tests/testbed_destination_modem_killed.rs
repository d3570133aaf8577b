//! Failure injection in the namespace testbed (issue 5): the destination's modem process is
//! killed (SIGKILL) in the middle of a migration while server3 pings the task. The kill
//! lands in an operator hold (`ferry ctl --pause-after`, docs/CTL.md): for make-before-break
//! once after the destination started warm in shadow and once after it synchronised (both
//! before T), for the legacy `M` after `start_d2d` succeeded on the destination (before
//! `make_usrp`). The migration must fail
//! clearly, the source must keep serving (make-before-break: not one ping or probe lost),
//! the destination must be left with nothing (no modem process, no collector, no TUN, eth3
//! parked, no radio shadow), and a later migration to the same destination must succeed.
//! Needs root; skipped loudly otherwise.

use ferry_testbed::netns;
use ferry_testbed::ping::PingRun;
use ferry_testbed::root_or_skip;
use ferry_testbed::session::{Bed, Traffic};
use ferry_testbed::topology::POOL_TUN;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// One testbed at a time: each runs the air and three real-time modems, and two at once
/// saturate a 2-core runner (late TX, lost transport blocks) for reasons of their own.
static ONE_BED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_bed() -> std::sync::MutexGuard<'static, ()> {
    ONE_BED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Pings lost, not counting those sent in the last `tail_ms` before ping was stopped: their
/// answers were still on the way when SIGINT ended it.
fn pings_lost_before_tail(r: &ferry_testbed::ping::PingReport, tail_ms: f64) -> Vec<u64> {
    let end = r.samples.last().map_or(0.0, |s| s.t_ms);
    r.samples
        .iter()
        .filter(|s| s.rtt_ms.is_none() && s.t_ms < end - tail_ms)
        .map(|s| s.seq)
        .collect()
}

fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn holds(ns: &str, iface: &str, addr: &str) -> bool {
    addr.parse().is_ok_and(|a| netns::holds_addr(ns, iface, a))
}

fn sigkill(pid: u64) {
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: kill(2) on the destination modem's pid, read from its agent's status a moment
    // ago; the agent (its parent) has not reaped it, so the pid cannot have been reused.
    let r = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(r, 0, "kill -9 {pid} failed");
}

/// Server2 holds nothing of the task: only its agent runs, which reports no modem and no
/// collector; no TUN with the task's address; eth3 on its parked address, not the active one.
fn assert_destination_clean(bed: &Bed) {
    let s2 = bed.ns("server2");
    let t0 = Instant::now();
    while netns::pids_in(&s2).len() > 1 && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pids = netns::pids_in(&s2);
    assert_eq!(
        pids.len(),
        1,
        "processes besides the agent on server2: {pids:?}"
    );
    let st = bed.agent_status(2);
    assert_eq!(st["d2d"], false, "{st}");
    assert_eq!(st["collector"], false, "collector still running: {st}");
    assert!(st["modem"].is_null() && st["modem_pid"].is_null(), "{st}");
    assert!(
        !holds(&s2, "ferry0", "192.168.40.9"),
        "a TUN is left on server2"
    );
    assert!(
        holds(&s2, "eth3", "192.168.20.2"),
        "server2's eth3 is not parked"
    );
    assert!(
        !holds(&s2, "eth3", "192.168.10.1"),
        "server2 holds 192.168.10.1"
    );
}

#[test]
fn mbb_destination_modem_killed_before_t_leaves_the_source_serving() {
    if !root_or_skip("mbb_destination_modem_killed_before_t_leaves_the_source_serving") {
        return;
    }
    let _one = one_bed();
    let prefix = format!("fk{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    bed.serving_task().expect("the task serving on server1");
    let traffic = Traffic::start(&bed, Some(Duration::from_millis(10))).expect("traffic");
    std::thread::sleep(Duration::from_millis(1000));
    let source_port = "192.168.10.11:49200";
    assert_eq!(bed.radio_status()["radios"][0]["linked"], source_port);

    // make-before-break server1 → server2, held 3 s once the destination runs warm in
    // shadow (`started`, before the radio shadows to it) and, on the second attempt, once
    // it is synchronised (`synced`, before T is chosen); its modem is killed in the hold.
    let mut killed_at = Vec::new();
    for point in ["started", "synced"] {
        let mut ctl = bed
            .spawn_mbb(&["--pause-after", point, "--pause-ms", "3000"])
            .expect("ferry ctl migrate");
        let err = BufReader::new(ctl.stderr.take().expect("stderr"));
        let mut log = Vec::new();
        let mut held = false;
        let mut lines = err.lines();
        for l in lines.by_ref().map_while(Result::ok) {
            log.push(l.clone());
            if l.contains("paused 3000 ms after") {
                held = true;
                break;
            }
        }
        assert!(held, "no hold reported:\n{}", log.join("\n"));
        // The destination runs warm in shadow beside the serving source: kill it.
        let st = bed.agent_status(2);
        assert_eq!(st["modem"]["mode"], "shadow", "{st}");
        if point == "synced" {
            assert_eq!(st["modem"]["synced"], true, "{st}");
        }
        let radio = bed.radio_status();
        assert_eq!(radio["radios"][0]["linked"], source_port, "{radio}");
        killed_at.push(unix_ms());
        sigkill(st["modem_pid"].as_u64().expect("modem_pid"));
        log.extend(lines.map_while(Result::ok));
        let out = ctl.wait_with_output().expect("ctl");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), log.join("\n"));
        println!("{text}");
        assert!(!out.status.success(), "migration succeeded?\n{text}");
        assert!(
            text.contains("mbb aborted before T, source untouched")
                && text.contains("destination modem is not running"),
            "{text}"
        );

        // The source serves on, untouched: radio still on server1, no shadow left.
        let radio = bed.radio_status();
        println!("radio after the failed migration ({point}): {radio}");
        assert_eq!(radio["radios"][0]["linked"], source_port, "{radio}");
        assert!(
            radio["radios"][0]["shadow"].is_null(),
            "shadow left: {radio}"
        );
        assert!(holds(&bed.ns("server1"), "ferry0", "192.168.40.9"));
        assert_destination_clean(&bed);
        let before = traffic.ping_snapshot().expect("ping").sent;
        std::thread::sleep(Duration::from_millis(1000));
        let after = traffic.ping_snapshot().expect("ping");
        assert!(after.sent > before + 5, "ping stalled");
    }

    // A later migration to the same destination succeeds, still without a loss.
    let late_before = bed.radio_status()["radios"][0]["counters"]["late_packets"].as_u64();
    let (tl, second_at) = bed.migrate_mbb(1, 2).expect("second migration");
    assert_eq!(tl.interruption_ms, 0);
    assert_eq!(
        bed.radio_status()["radios"][0]["linked"],
        "192.168.10.12:49200"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let late_after = bed.radio_status()["radios"][0]["counters"]["late_packets"].as_u64();
    let r = traffic.stop().expect("traffic");
    let probe = r.probe.report();
    // Place any loss against the kill and the second migration (ms since the probe began).
    let rel = |t: f64| t - r.probe_started_unix_ms;
    for p in r.probe.samples().iter().filter(|p| p.rtt_ms.is_none()) {
        println!(
            "probe seq {} sent at {:.0} ms lost (kills at {:?} ms; migration {:.0}..{:.0} ms)",
            p.seq,
            p.sent_ms,
            killed_at
                .iter()
                .map(|t| rel(*t).round())
                .collect::<Vec<_>>(),
            rel(second_at),
            rel(second_at) + tl.total_ms.unwrap_or(0) as f64
        );
    }
    println!("radio late TX packets over the second migration: {late_before:?} -> {late_after:?}");
    println!(
        "ping: {} sent, {} lost; probe: {} sent, {} lost, longest gap {:.1} ms",
        r.ping.sent, r.ping.lost, probe.sent, probe.lost, probe.longest_gap_ms
    );
    let lost = pings_lost_before_tail(&r.ping, 500.0);
    assert_eq!(lost, Vec::<u64>::new(), "pings lost: {:?}", r.ping);
    assert_eq!(probe.lost, 0, "probes lost: {probe:?}");
    bed.stop_all();
}

#[test]
fn legacy_destination_modem_killed_before_make_usrp_leaves_the_source_serving() {
    if !root_or_skip("legacy_destination_modem_killed_before_make_usrp_leaves_the_source_serving") {
        return;
    }
    let _one = one_bed();
    let prefix = format!("fl{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    bed.start_air(true).expect("air");
    bed.start_far().expect("far-end modem");
    bed.start_agent(true, 2).expect("agent");
    bed.console_args = vec!["--pause-after=started".into(), "--pause-ms=3000".into()];
    std::thread::sleep(Duration::from_millis(500));
    let mut console = bed.start_console().expect("console");
    let (s1, s2) = (bed.ns("server1"), bed.ns("server2"));
    let step = Duration::from_secs(60);
    let (ok, _) = console.run("DS", step).expect("DS");
    assert!(ok, "DS failed:\n{}", console.transcript);
    bed.wait_first_ping(Duration::from_secs(30))
        .expect("first ping after DS");
    let ping = PingRun::start(
        Some(&s1.replace("server1", "server3")),
        IpAddr::V4(POOL_TUN),
        100,
    )
    .expect("ping");
    std::thread::sleep(Duration::from_millis(1000));

    // While M holds after start_d2d, kill the destination's modem.
    let killer = {
        let (ferry, key, ns) = (bed.ferry.clone(), bed.key(), s2.clone());
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(20) {
                let o = netns::command_in(&ns, &ferry.to_string_lossy())
                    .arg("ctl")
                    .arg("--key")
                    .arg(&key)
                    .args(["send", "status", "--to", "server2=tcp://10.99.0.2:5555"])
                    .output();
                let v: serde_json::Value = o
                    .ok()
                    .and_then(|o| serde_json::from_slice(&o.stdout).ok())
                    .unwrap_or_default();
                if let Some(pid) = v["result"]["modem_pid"].as_u64() {
                    sigkill(pid);
                    return Some(pid);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            None
        })
    };
    let (ok, _) = console.run("M", step).expect("M gave an outcome");
    let killed = killer.join().expect("killer thread");
    println!("{}", console.transcript);
    assert!(killed.is_some(), "the destination modem never showed up");
    assert!(!ok, "M succeeded with a dead destination?");
    assert!(
        console.transcript.contains("make_usrp failed")
            && console.transcript.contains("exited on its own"),
        "{}",
        console.transcript
    );
    // The source never stopped: it holds the radio's address and the task's TUN address.
    assert!(
        holds(&s1, "eth3", "192.168.10.1"),
        "server1 lost 192.168.10.1"
    );
    assert!(holds(&s1, "ferry0", "192.168.40.9"), "server1 lost the TUN");
    assert_destination_clean(&bed);
    std::thread::sleep(Duration::from_millis(1000));
    let r = ping.snapshot();
    println!("pings over the failed M: {} sent, {} lost", r.sent, r.lost);
    assert!(r.sent > 20, "ping stalled: {r:?}");
    assert_eq!(r.lost, 0, "pings lost while the source kept serving: {r:?}");

    // A later M to the same destination succeeds (after the same hold).
    let (ok, _) = console.run("M", step).expect("second M");
    assert!(ok, "second M failed:\n{}", console.transcript);
    assert!(holds(&s2, "eth3", "192.168.10.1") && !holds(&s1, "eth3", "192.168.10.1"));
    assert!(holds(&s2, "ferry0", "192.168.40.9"));
    // Served from server2 once the far end's next discovery beacon found it (≤ 1 s).
    std::thread::sleep(Duration::from_millis(2500));
    let before = ping.snapshot().samples.len();
    std::thread::sleep(Duration::from_millis(1000));
    let r = ping.stop().expect("ping");
    let answered = r
        .samples
        .iter()
        .skip(before)
        .filter(|s| s.rtt_ms.is_some())
        .count();
    assert!(answered > 5, "server2 does not serve after M: {r:?}");
    console.close();
    bed.stop_all();
}

/// Issue #11: the destination modem is killed once the radio's switch is armed (around T)
/// and once right after T (while the destination confirms). The radio switched, or is about
/// to, to a host that sends nothing: within its fallback grace it hands the task back to the
/// warm source at a subframe boundary, `ferry ctl` reports a rollback (not success) and stops
/// only the destination, the source serves again within the probe's next few packets, and a
/// later migration to the same destination succeeds.
#[test]
fn mbb_destination_modem_killed_at_or_after_t_falls_back_to_the_source() {
    if !root_or_skip("mbb_destination_modem_killed_at_or_after_t_falls_back_to_the_source") {
        return;
    }
    let _one = one_bed();
    let prefix = format!("fa{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    bed.serving_task().expect("the task serving on server1");
    let traffic = Traffic::start(&bed, Some(Duration::from_millis(10))).expect("traffic");
    std::thread::sleep(Duration::from_millis(1000));
    let source_port = "192.168.10.11:49200";
    let mut kills = Vec::new();
    for phase in ["mbb: cutover at T", "mbb: destination confirms serving"] {
        let mut ctl = bed.spawn_mbb(&[]).expect("ferry ctl migrate");
        let err = BufReader::new(ctl.stderr.take().expect("stderr"));
        let mut log = Vec::new();
        let mut lines = err.lines();
        let mut pid = None;
        let mut killed = false;
        for l in lines.by_ref().map_while(Result::ok) {
            log.push(l.clone());
            if l.contains("arm destination takeover at T") {
                pid = bed.agent_status(2)["modem_pid"].as_u64();
            }
            if l.contains(phase) {
                kills.push(unix_ms());
                sigkill(pid.expect("destination modem pid"));
                killed = true;
                break;
            }
        }
        assert!(
            killed,
            "phase {phase:?} never reported:\n{}",
            log.join("\n")
        );
        log.extend(lines.map_while(Result::ok));
        let out = ctl.wait_with_output().expect("ctl");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), log.join("\n"));
        println!("{text}");
        assert!(!out.status.success(), "migration reported success?\n{text}");
        assert!(text.contains("rolled back after T"), "{text}");
        // The radio fell back: the source is primary again, nobody else is.
        let radio = bed.radio_status();
        println!("radio after the kill at {phase:?}: {radio}");
        assert_eq!(radio["radios"][0]["linked"], source_port, "{radio}");
        assert!(
            radio["radios"][0]["arbiter"]["fallbacks"].as_u64() >= Some(1),
            "{radio}"
        );
        assert!(holds(&bed.ns("server1"), "ferry0", "192.168.40.9"));
        assert_eq!(bed.agent_status(1)["modem"]["mode"], "active");
        assert_destination_clean(&bed);
        let before = traffic.ping_snapshot().expect("ping").received;
        std::thread::sleep(Duration::from_millis(1000));
        let after = traffic.ping_snapshot().expect("ping").received;
        assert!(
            after > before + 5,
            "the source does not serve: {before} -> {after}"
        );
    }
    // A later migration to the same destination succeeds.
    let (tl, _) = bed
        .migrate_mbb(1, 2)
        .expect("migration after the fallbacks");
    assert_eq!(tl.interruption_ms, 0);
    assert_eq!(
        bed.radio_status()["radios"][0]["linked"],
        "192.168.10.12:49200"
    );
    std::thread::sleep(Duration::from_millis(1000));
    let r = traffic.stop().expect("traffic");
    let rel = |t: f64| t - r.probe_started_unix_ms;
    let mut lost_near_kills = 0;
    for p in r.probe.samples().iter().filter(|p| p.rtt_ms.is_none()) {
        println!(
            "probe seq {} sent at {:.0} ms lost (kills at {:?} ms)",
            p.seq,
            p.sent_ms,
            kills.iter().map(|t| rel(*t).round()).collect::<Vec<_>>()
        );
        if kills.iter().any(|k| (p.sent_ms - rel(*k)).abs() < 1000.0) {
            lost_near_kills += 1;
        }
    }
    let probe = r.probe.report();
    println!(
        "ping: {} sent, {} lost; probe: {} sent, {} lost, {} duplicates, longest gap {:.1} ms",
        r.ping.sent, r.ping.lost, probe.sent, probe.lost, probe.duplicates, probe.longest_gap_ms
    );
    // Never two servers delivering; the fallback costs a few 10 ms probes, not seconds.
    assert_eq!(probe.duplicates, 0);
    assert!(
        lost_near_kills <= 20,
        "{lost_near_kills} probes lost around the kills"
    );
    assert_eq!(
        probe.lost, lost_near_kills,
        "probes lost away from the kills"
    );
    bed.stop_all();
}

/// Issue #11: the *source* modem is killed while a make-before-break holds with the
/// destination synchronised. Rolling back would stop the only live copy of the task; the
/// warm destination is promoted instead (the radio switches to it at T), the migration
/// succeeds and says so, and the probe passes through the task again.
#[test]
fn mbb_source_modem_killed_in_the_hold_promotes_the_destination() {
    if !root_or_skip("mbb_source_modem_killed_in_the_hold_promotes_the_destination") {
        return;
    }
    let _one = one_bed();
    let prefix = format!("fp{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    bed.serving_task().expect("the task serving on server1");
    let traffic = Traffic::start(&bed, Some(Duration::from_millis(10))).expect("traffic");
    std::thread::sleep(Duration::from_millis(500));
    let mut ctl = bed
        .spawn_mbb(&["--pause-after", "synced", "--pause-ms", "2000"])
        .expect("ferry ctl migrate");
    let err = BufReader::new(ctl.stderr.take().expect("stderr"));
    let mut log = Vec::new();
    let mut lines = err.lines();
    let mut held = false;
    for l in lines.by_ref().map_while(Result::ok) {
        log.push(l.clone());
        if l.contains("paused 2000 ms after") {
            held = true;
            break;
        }
    }
    assert!(held, "no hold:\n{}", log.join("\n"));
    let killed = unix_ms();
    sigkill(
        bed.agent_status(1)["modem_pid"]
            .as_u64()
            .expect("source modem pid"),
    );
    log.extend(lines.map_while(Result::ok));
    let out = ctl.wait_with_output().expect("ctl");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), log.join("\n"));
    println!("{text}");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("promoted"), "{text}");
    let radio = bed.radio_status();
    assert_eq!(
        radio["radios"][0]["linked"], "192.168.10.12:49200",
        "{radio}"
    );
    assert_eq!(bed.agent_status(2)["modem"]["mode"], "active");
    assert_eq!(bed.agent_status(1)["d2d"], false);
    // The far end lost its master for the rest of the hold and may be searching the cell
    // again: pings come back once it hears the promoted destination.
    let before = traffic.ping_snapshot().expect("ping").received;
    let t0 = Instant::now();
    while traffic.ping_snapshot().expect("ping").received < before + 5 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the destination does not serve 10 s after its promotion"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "pings flow again {} ms after the migration",
        t0.elapsed().as_millis()
    );
    let r = traffic.stop().expect("traffic");
    let probe = r.probe.report();
    println!(
        "source killed at {:.0} ms; probe: {} sent, {} lost, longest gap {:.1} ms; {} duplicates",
        killed - r.probe_started_unix_ms,
        probe.sent,
        probe.lost,
        probe.longest_gap_ms,
        probe.duplicates
    );
    assert_eq!(probe.duplicates, 0);
    bed.stop_all();
}

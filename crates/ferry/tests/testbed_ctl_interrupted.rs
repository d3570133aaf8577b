//! Issue #11, the `ferry ctl` row of the fault matrix in the real testbed: the operator's
//! SIGINT (Ctrl-C) in a make-before-break migration's `--pause-after synced` hold, and
//! SIGTERM once the radio's switch is armed, while server3 pings and probes the task.
//! Before the radio is armed, ctl undoes the migration (the source serves as before, the
//! destination's modem and TUN are gone, the radio shadows nobody) and exits 1; once armed,
//! it finishes it (the radio decides at T; the source is cleaned) and exits 0. Either way
//! exactly one server serves, ctl's exit status matches the radio's primary, nothing is
//! lost or echoed twice, and the next migration succeeds. Needs root; skipped loudly
//! otherwise.
//!
//! `kill -9` of ctl cannot be answered by ctl: in the hold it leaves a warm destination
//! nobody armed, after T a released source nobody cleans. The agents' lease
//! (`ferry_migrate::lease`) ends both: each leftover is stopped once no controller has
//! spoken to its agent for a lease (5 s), and the next migration succeeds.

use ferry_testbed::root_or_skip;
use ferry_testbed::session::{Bed, Traffic};
use std::path::Path;
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// One cell: a migration server1 → server2, `signal` sent to ctl at the first stderr line
/// containing `marker`. Returns (ctl succeeded, its output).
fn cell(bed: &Bed, options: &[&str], marker: &str, signal: i32) -> (bool, String) {
    let (status, text) = bed
        .mbb_acting_at(
            options,
            |l| l.contains(marker),
            // SAFETY: kill(2) on ctl, the testbed's child, not yet reaped.
            |pid| assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0),
        )
        .unwrap_or_else(|e| panic!("{marker:?}: {e}"));
    println!(
        "--- signal {signal} at {marker:?}: exit {:?}\n{text}",
        status.code()
    );
    (status.success(), text)
}

/// Exactly one server serves, the one ctl's exit status names; the other holds no modem,
/// no TUN address, and the radio shadows nobody.
fn one_serves(bed: &Bed, traffic: &Traffic, ok: bool, text: &str) {
    std::thread::sleep(Duration::from_millis(1000));
    let serving = bed.primary_server().expect("the radio names no primary");
    assert_eq!(
        serving,
        if ok { 2 } else { 1 },
        "ctl {} but the radio serves server{serving}:\n{text}",
        if ok { "succeeded" } else { "failed" }
    );
    only_one_serves(bed, traffic, serving, text);
}

/// Server `serving` serves (pings pass, its modem is active); the other holds no modem, no
/// TUN address, and the radio shadows nobody.
fn only_one_serves(bed: &Bed, traffic: &Traffic, serving: u8, text: &str) {
    assert!(
        traffic.pings_flow(Duration::from_secs(10)),
        "pings do not pass:\n{text}"
    );
    let st = bed.agent_status(serving);
    assert_eq!(st["modem"]["mode"], "active", "server{serving}: {st}");
    let other = 3 - serving;
    assert_eq!(bed.leftovers_off_duty(other), Vec::<String>::new());
}

/// How long until server `n` runs no modem and the radio shadows nobody (watching the
/// processes and the radio, never the agent), `None` after 20 s.
fn leftover_gone(bed: &Bed, n: u8) -> Option<Duration> {
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if bed.pids(n, "modem").is_empty() && bed.radio_status()["radios"][0]["shadow"].is_null() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// kill -9 of ctl at `marker`: ctl exits by the signal, server `left.0`'s leftover (what
/// `left.1` names) is stopped by its agent's lease, and server `serving` serves alone.
fn killed(
    bed: &Bed,
    traffic: &Traffic,
    options: &[&str],
    marker: &str,
    left: (u8, &str),
    serving: u8,
) {
    let (ok, text) = cell(bed, options, marker, libc::SIGKILL);
    assert!(!ok, "a killed ctl exited 0:\n{text}");
    let (n, what) = left;
    let gone = leftover_gone(bed, n).unwrap_or_else(|| {
        panic!("server{n}'s {what} still runs 20 s after ctl was killed:\n{text}")
    });
    println!("kill -9 at {marker:?}: server{n}'s agent stopped the {what} {gone:?} after");
    assert_eq!(bed.primary_server(), Some(serving), "{text}");
    only_one_serves(bed, traffic, serving, &text);
}

#[test]
fn ctl_interrupted_undoes_before_the_radio_is_armed_and_finishes_after() {
    if !root_or_skip("ctl_interrupted_undoes_before_the_radio_is_armed_and_finishes_after") {
        return;
    }
    let prefix = format!("fi{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    bed.serving_task().expect("the task serving on server1");
    let traffic = Traffic::start(&bed, Some(Duration::from_millis(10))).expect("traffic");
    std::thread::sleep(Duration::from_millis(800));

    // 1. Ctrl-C in the hold: undone.
    let (ok, text) = cell(
        &bed,
        &["--pause-after", "synced", "--pause-ms", "3000"],
        "paused 3000 ms after",
        libc::SIGINT,
    );
    assert!(!ok, "an interrupted migration reported success:\n{text}");
    assert!(
        text.contains("interrupted by the operator: mbb undone, the source serves as before"),
        "{text}"
    );
    one_serves(&bed, &traffic, ok, &text);

    // 2. SIGTERM once the radio's switch is armed: finished.
    let (ok, text) = cell(&bed, &[], "mbb: cutover at T", libc::SIGTERM);
    assert!(
        text.contains("finishing the migration") || !text.contains("interrupted"),
        "{text}"
    );
    assert!(
        ok,
        "a migration the radio had armed did not finish:\n{text}"
    );
    one_serves(&bed, &traffic, ok, &text);

    // 3. The next migration (back) succeeds.
    bed.migrate_mbb(2, 1).expect("the next migration");
    assert_eq!(bed.primary_server(), Some(1));

    // 4. kill -9 in the hold: ctl cannot answer it. The source serves on; the warm
    //    destination is a leftover nobody armed, and server2's agent stops it (modem, TUN,
    //    the radio's RX copy) one lease after ctl's last request. Nothing here speaks to
    //    the agents while waiting (a request would renew the lease): processes and the
    //    radio are watched instead.
    killed(
        &bed,
        &traffic,
        &["--pause-after", "synced", "--pause-ms", "60000"],
        "paused 60000 ms after",
        (2, "warm destination"),
        1,
    );

    // 5. kill -9 once the radio's switch is armed: the radio switches at T and the
    //    destination serves; the released source outlives its fallback grace uncleaned,
    //    and server1's agent stops it a lease later.
    killed(
        &bed,
        &traffic,
        &[],
        "mbb: cutover at T",
        (1, "released source"),
        2,
    );

    // 6. And the next migration succeeds (the leftovers blocked it before the lease).
    bed.migrate_mbb(2, 1)
        .expect("the migration after the leases");
    assert_eq!(bed.primary_server(), Some(1));

    let r = traffic.stop().expect("traffic");
    // Nothing lost, nothing echoed twice, whatever died.
    assert_eq!(r.losses(), None);
    bed.stop_all();
}

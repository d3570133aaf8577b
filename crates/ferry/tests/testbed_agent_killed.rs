//! Issue #11, the agent rows of the fault matrix: an *agent* (not its modem) is killed
//! (`kill -9`) in the middle of a make-before-break migration while server3 pings the task —
//! the destination's agent or the source's, in the `--pause-after synced` hold (before T is
//! chosen), once the radio's switch is armed (around T), and after T (the destination's
//! agent once it confirmed serving, the source's once its fallback grace began). Whatever
//! the sequence then does,
//! afterwards exactly one server serves: the radio names a live, active modem, pings pass,
//! no probe comes back twice, and `ferry ctl`'s exit status tells the truth (success only if
//! the radio and the destination say the destination serves). The killed agent is then
//! restarted (a rebooted agent): it adopts what runs on its server, nothing is left that
//! nobody owns, and a later migration succeeds. Needs root; skipped loudly otherwise.

use ferry_testbed::netns;
use ferry_testbed::root_or_skip;
use ferry_testbed::session::{Bed, Traffic};
use std::path::Path;
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

static ONE_BED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_bed() -> std::sync::MutexGuard<'static, ()> {
    ONE_BED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// kill -9 of server `n`'s agent; returns once it is gone.
fn kill_agent(bed: &Bed, n: u8) {
    let agents = bed.pids(n, "agent");
    assert_eq!(agents.len(), 1, "agents on server{n}: {agents:?}");
    // SAFETY: kill(2) on the agent's pid, just read from its namespace; the testbed (its
    // parent) has not reaped it, so the pid cannot have been reused.
    assert_eq!(unsafe { libc::kill(agents[0], libc::SIGKILL) }, 0);
    let t0 = Instant::now();
    while netns::pids_in(&bed.ns(&format!("server{n}"))).contains(&agents[0]) {
        assert!(t0.elapsed() < Duration::from_secs(5), "agent did not die");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One cell: a migration server1 → server2, the agent of `victim` killed at `when`
/// (`synced`: in a 2 s hold after the destination synchronised; `armed`: at the cutover
/// line; `after`: after T — the destination's agent at "source forwards held data" (the
/// destination confirmed serving), the source's at "source warm for the fallback grace").
/// Returns what the cell ended in, for the caller's table.
fn cell(bed: &mut Bed, traffic: &Traffic, victim: u8, when: &str) -> String {
    let options: &[&str] = if when == "synced" {
        &["--pause-after", "synced", "--pause-ms", "2000"]
    } else {
        &[]
    };
    let at = |l: &str| match (when, victim) {
        ("synced", _) => l.contains("paused 2000 ms after"),
        ("after", 2) => l.contains("mbb: source forwards held data"),
        ("after", _) => l.contains("mbb: source warm for the fallback grace"),
        _ => l.contains("mbb: cutover at T"),
    };
    let (status, text) = bed
        .mbb_acting_at(options, at, |_| kill_agent(bed, victim))
        .unwrap_or_else(|e| panic!("{when}: {e}"));
    println!("--- server{victim}'s agent killed at {when}:\n{text}");

    // Exactly one server serves, and ctl's word matches the radio's.
    std::thread::sleep(Duration::from_millis(1500));
    let serving = bed.primary_server().expect("the radio names no primary");
    println!(
        "ctl exit {:?}; radio primary server{serving}",
        status.code()
    );
    if status.success() {
        assert_eq!(
            serving, 2,
            "ctl succeeded but the radio serves server{serving}\n{text}"
        );
    } else {
        assert_eq!(
            serving, 1,
            "ctl failed but the radio serves server{serving}\n{text}"
        );
    }
    assert!(
        traffic.pings_flow(Duration::from_secs(10)),
        "nobody serves after server{victim}'s agent died at {when}"
    );
    // The dead agent restarts and adopts what runs on its server.
    let orphans = bed.pids(victim, "modem");
    println!("modems on server{victim} before its agent restarts: {orphans:?}");
    bed.restart_agent(victim).expect("agent restart");
    std::thread::sleep(Duration::from_millis(800));
    let st = bed.agent_status(victim);
    println!("restarted server{victim} agent: {st}");
    let other = 3 - serving;
    let so = bed.agent_status(other);
    println!("server{other} agent: {so}");
    let ss = bed.agent_status(serving);
    assert_eq!(
        ss["modem"]["mode"], "active",
        "serving server{serving}: {ss}"
    );
    assert_eq!(ss["tun_ip"], "192.168.40.9", "{ss}");
    if victim == other {
        // The killed agent's server does not serve: what its modem was doing (a warm
        // destination, a released source) ended with the migration, and nobody else could
        // stop it. The restarted agent did.
        assert_eq!(orphans.len(), 1, "expected the orphan modem: {orphans:?}");
        assert!(bed.pids(victim, "modem").is_empty(), "orphan left running");
    }
    // The server that does not serve holds no modem: a restarted agent stops an adopted
    // modem the radio has no role for; a live agent was told by ctl's rollback or cleanup.
    assert_eq!(bed.leftovers_off_duty(other), Vec::<String>::new(), "{so}");
    let expect = match (victim, when) {
        (_, "synced") => "mbb aborted before T, source untouched",
        // The destination had confirmed: nothing more is asked of its agent.
        (2, "after") => "task serves from the destination since sample",
        (2, _) => "confirmed by the radio after the fallback grace",
        _ => "the source was not cleaned",
    };
    if (victim, when) == (2, "after") {
        assert!(
            !text.contains("not cleaned") && !text.contains("confirmed by the radio"),
            "{text}"
        );
    }
    assert!(text.contains(expect), "expected {expect:?}:\n{text}");
    format!(
        "ctl {} (exit {:?}), radio serves server{serving}; modems on server{victim} \
         before its agent restarted: {}",
        if status.success() { "ok" } else { "failed" },
        status.code(),
        orphans.len()
    )
}

#[test]
fn agents_killed_mid_migration_leave_exactly_one_server_serving() {
    if !root_or_skip("agents_killed_mid_migration_leave_exactly_one_server_serving") {
        return;
    }
    let _one = one_bed();
    let prefix = format!("fg{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    bed.serving_task().expect("the task serving on server1");
    let traffic = Traffic::start(&bed, Some(Duration::from_millis(10))).expect("traffic");
    std::thread::sleep(Duration::from_millis(800));
    let mut table = Vec::new();
    for (victim, when) in [
        (2u8, "synced"),
        (1, "synced"),
        (2, "armed"),
        (1, "armed"),
        (2, "after"),
        (1, "after"),
    ] {
        if bed.primary_server() != Some(1) {
            // Bring the task home first so that every cell starts from server1.
            let (_tl, _) = bed.migrate_mbb(2, 1).expect("migrating back to server1");
        }
        table.push(format!(
            "server{victim} agent @ {when}: {}",
            cell(&mut bed, &traffic, victim, when)
        ));
    }
    let r = traffic.stop().expect("traffic");
    for l in &table {
        println!("{l}");
    }
    // Nothing lost, nothing echoed twice, whatever died.
    assert_eq!(r.losses(), None);
    bed.stop_all();
}

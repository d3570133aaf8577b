//! Issue #11, the legacy console's own end: the thesis console (`ferry ctl console`) runs on
//! server1 and starts the task there itself (DS). When its input ends (EOF) or it gets
//! SIGINT/SIGTERM at its prompt, it used to kill the task it had started and leave server1
//! holding 192.168.10.1 with no modem (nobody served). Now the task keeps running, a new
//! console on the same host adopts it (pidfile + control socket), migrates it (M, MB) and
//! stops it (KL), after which nothing is left. Needs root; skipped loudly otherwise.

use ferry_testbed::netns;
use ferry_testbed::ping::PingRun;
use ferry_testbed::root_or_skip;
use ferry_testbed::session::{Bed, Console};
use ferry_testbed::topology::POOL_TUN;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// One testbed at a time: two at once saturate a 2-core runner.
static ONE_BED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_bed() -> std::sync::MutexGuard<'static, ()> {
    ONE_BED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn holds(ns: &str, iface: &str, addr: &str) -> bool {
    addr.parse().is_ok_and(|a| netns::holds_addr(ns, iface, a))
}

/// Pings answered in the next `over`, and lost among them.
fn answered_over(ping: &PingRun, over: Duration) -> (usize, usize) {
    let before = ping.snapshot().samples.len();
    std::thread::sleep(over);
    let r = ping.snapshot();
    let new: Vec<_> = r.samples.iter().skip(before).collect();
    // The last few may still be on their way.
    let settled = new.len().saturating_sub(3);
    let ok = new[..settled].iter().filter(|s| s.rtt_ms.is_some()).count();
    (ok, settled - ok)
}

/// A legacy testbed serving from server1: air, far end, server2's agent, a console on
/// server1 (with `console_args`) that ran DS, the first ping through, and ping -i 0.1
/// running from server3.
fn legacy_serving(tag: &str, console_args: &[&str]) -> (Bed, Console, PingRun) {
    let prefix = format!("{tag}{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    bed.start_air(true).expect("air");
    bed.start_far().expect("far-end modem");
    bed.start_agent(true, 2).expect("agent");
    std::thread::sleep(Duration::from_millis(500));
    bed.console_args = console_args.iter().map(|a| a.to_string()).collect();
    let mut console = bed.start_console().expect("console");
    let (ok, _) = console.run("DS", STEP).expect("DS");
    assert!(ok, "DS failed:\n{}", console.transcript);
    bed.wait_first_ping(Duration::from_secs(30))
        .expect("first ping after DS");
    let ping = PingRun::start(Some(&bed.ns("server3")), IpAddr::V4(POOL_TUN), 100).expect("ping");
    (bed, console, ping)
}

/// Runs `act` (on a thread) as soon as server2's agent reports a modem pid: in M's hold
/// after the destination's start_d2d. The handle yields `act`'s result, false if no modem
/// showed up within 20 s.
fn when_destination_modem_runs(
    bed: &Bed,
    act: impl FnOnce() -> bool + Send + 'static,
) -> std::thread::JoinHandle<bool> {
    let (ferry, key, ns) = (bed.ferry.clone(), bed.key(), bed.ns("server2"));
    std::thread::spawn(move || {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            let v: serde_json::Value = netns::command_in(&ns, &ferry.to_string_lossy())
                .arg("ctl")
                .arg("--key")
                .arg(&key)
                .args(["send", "status", "--to", "server2=tcp://10.99.0.2:5555"])
                .output()
                .ok()
                .and_then(|o| serde_json::from_slice(&o.stdout).ok())
                .unwrap_or_default();
            if v["result"]["modem_pid"].as_u64().is_some() {
                return act();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    })
}

fn sigkill(pid: i32) -> bool {
    // SAFETY: kill(2) on a child of this test (the console) or of its bed (an agent), not
    // yet reaped, so the pid is still that process's.
    unsafe { libc::kill(pid, libc::SIGKILL) == 0 }
}

const STEP: Duration = Duration::from_secs(60);

#[test]
fn legacy_console_end_leaves_the_task_serving_and_a_new_console_adopts_it() {
    if !root_or_skip("legacy_console_end_leaves_the_task_serving_and_a_new_console_adopts_it") {
        return;
    }
    let _one = one_bed();
    let (mut bed, mut console, ping) = legacy_serving("lc", &[]);
    let s1 = bed.ns("server1");
    let step = STEP;
    let log = bed.dir.join("console.log");
    let modem = bed.pids(1, "modem");
    assert_eq!(modem.len(), 1, "one modem on server1: {modem:?}");

    // 1. EOF on the console's input: it exits, the task runs on.
    let st = console.end(None, Duration::from_secs(5));
    assert!(st.is_some_and(|s| s.success()), "console on EOF: {st:?}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    println!("console log:\n{text}");
    assert!(
        text.contains("input ended; the task keeps running on this host"),
        "{text}"
    );
    assert_eq!(bed.pids(1, "modem"), modem, "the modem did not survive EOF");
    assert!(holds(&s1, "eth3", "192.168.10.1") && holds(&s1, "ferry0", "192.168.40.9"));
    let (ok, lost) = answered_over(&ping, Duration::from_secs(2));
    assert!(
        ok > 10 && lost == 0,
        "after EOF: {ok} answered, {lost} lost"
    );

    // 2. A new console adopts the task and migrates it away and back.
    let mut console = bed.start_console().expect("second console");
    std::thread::sleep(Duration::from_millis(500));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("adopted the running modem"), "{text}");
    let (ok, _) = console.run("M", step).expect("M");
    assert!(ok, "M of the adopted task failed:\n{}", console.transcript);
    assert!(
        bed.pids(1, "modem").is_empty(),
        "server1 kept a modem after M"
    );
    let (ok, _) = console.run("MB", step).expect("MB");
    assert!(ok, "MB failed:\n{}", console.transcript);
    std::thread::sleep(Duration::from_millis(2500));
    let (ok, _) = answered_over(&ping, Duration::from_secs(2));
    assert!(ok > 10, "server1 does not serve after MB: {ok} answered");

    // 3. SIGINT at the prompt: the console ends within a second or so; the task runs on.
    let modem = bed.pids(1, "modem");
    assert_eq!(modem.len(), 1, "{modem:?}");
    let st = console.end(Some(libc::SIGINT), Duration::from_secs(5));
    assert!(
        st.is_some(),
        "the console did not end on SIGINT at its prompt"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("interrupted (SIGINT/SIGTERM); the task keeps running"),
        "{text}"
    );
    assert_eq!(
        bed.pids(1, "modem"),
        modem,
        "the modem did not survive SIGINT"
    );
    let (ok, lost) = answered_over(&ping, Duration::from_secs(2));
    assert!(
        ok > 10 && lost == 0,
        "after SIGINT: {ok} answered, {lost} lost"
    );

    // 4. A third console adopts it and stops it on purpose: nothing is left.
    let mut console = bed.start_console().expect("third console");
    let (ok, _) = console.run("KL", step).expect("KL");
    assert!(ok, "KL of the adopted task failed:\n{}", console.transcript);
    std::thread::sleep(Duration::from_millis(300));
    assert!(bed.pids(1, "modem").is_empty(), "KL left a modem");
    assert!(!holds(&s1, "eth3", "192.168.10.1"), "KL left 192.168.10.1");
    assert!(!holds(&s1, "ferry0", "192.168.40.9"), "KL left the TUN");
    let st = console.end(None, Duration::from_secs(5));
    assert!(st.is_some());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("no task runs on this host"), "{text}");
    let _ = ping.stop();
    bed.stop_all();
}

/// The console is killed (-9) during M, after the destination's D2D program started
/// (`--pause-after=started`): nothing can clean up. The source's modem (the dead console's
/// child) serves on — 0 pings lost — and the destination keeps a started D2D program. A new
/// console adopts the task, and its M stops the destination's leftover once and migrates.
#[test]
fn legacy_console_killed_mid_migration_leaves_the_source_serving_and_the_next_m_succeeds() {
    if !root_or_skip(
        "legacy_console_killed_mid_migration_leaves_the_source_serving_and_the_next_m_succeeds",
    ) {
        return;
    }
    let _one = one_bed();
    let (mut bed, mut console, ping) =
        legacy_serving("lk", &["--pause-after=started", "--pause-ms=5000"]);
    let (s1, s2) = (bed.ns("server1"), bed.ns("server2"));
    let step = STEP;
    std::thread::sleep(Duration::from_millis(1000));

    // M, and kill -9 the console once the destination's D2D program runs (in the hold).
    let pid = libc::pid_t::try_from(console.pid().expect("console pid")).expect("pid");
    let killer = when_destination_modem_runs(&bed, move || sigkill(pid));
    let r = console.run("M", step);
    assert!(
        killer.join().expect("killer"),
        "the destination's modem never showed up"
    );
    assert!(
        r.is_err(),
        "M gave an outcome although its console was killed: {r:?}"
    );
    drop(console);
    // The source serves on: its modem outlived the console that started it.
    assert_eq!(
        bed.pids(1, "modem").len(),
        1,
        "server1's modem died with the console"
    );
    assert!(holds(&s1, "eth3", "192.168.10.1") && !holds(&s2, "eth3", "192.168.10.1"));
    let (ok, lost) = answered_over(&ping, Duration::from_secs(2));
    assert!(
        ok > 10 && lost == 0,
        "after the console's death: {ok} answered, {lost} lost"
    );
    let st = bed.agent_status(2);
    assert_eq!(st["d2d"], true, "the destination's leftover: {st}");

    // A new console adopts the task; its M stops the leftover once and migrates.
    bed.console_args.clear();
    let mut console = bed.start_console().expect("second console");
    let (ok, _) = console.run("M", step).expect("M");
    println!("{}", console.transcript);
    assert!(
        ok,
        "M after the killed console failed:\n{}",
        console.transcript
    );
    assert!(
        console
            .transcript
            .contains("left by an interrupted migration"),
        "{}",
        console.transcript
    );
    assert!(
        bed.pids(1, "modem").is_empty(),
        "server1 kept a modem after M"
    );
    assert!(holds(&s2, "eth3", "192.168.10.1") && holds(&s2, "ferry0", "192.168.40.9"));
    std::thread::sleep(Duration::from_millis(2500));
    let (ok, _) = answered_over(&ping, Duration::from_secs(2));
    assert!(ok > 10, "server2 does not serve after M: {ok} answered");
    let _ = ping.stop();
    console.close();
    bed.stop_all();
}

/// The destination's agent is killed (-9) during M, after its D2D program started: M fails
/// within its request deadlines (seconds), the source serves on (0 pings lost), and after the
/// agent's restart (it adopts the modem its predecessor left) the next M succeeds.
#[test]
fn legacy_destination_agent_killed_mid_migration_leaves_the_source_serving() {
    if !root_or_skip("legacy_destination_agent_killed_mid_migration_leaves_the_source_serving") {
        return;
    }
    let _one = one_bed();
    let (mut bed, mut console, ping) =
        legacy_serving("la", &["--pause-after=started", "--pause-ms=2000"]);
    let (s1, s2) = (bed.ns("server1"), bed.ns("server2"));
    let step = STEP;
    std::thread::sleep(Duration::from_millis(1000));
    let agents = bed.pids(2, "agent");
    assert_eq!(agents.len(), 1, "{agents:?}");
    let agent = agents[0];
    let killer = when_destination_modem_runs(&bed, move || sigkill(agent));
    let t0 = std::time::Instant::now();
    let (ok, _) = console.run("M", step).expect("M gave an outcome");
    let took = t0.elapsed();
    assert!(
        killer.join().expect("killer"),
        "the destination's modem never showed up"
    );
    println!("{}\nM took {took:?}", console.transcript);
    assert!(!ok, "M succeeded with a dead destination agent");
    // The 2 s hold, make_usrp's 4 s deadline, the rollback's 4 s: well under 30 s.
    assert!(took < Duration::from_secs(15), "M took {took:?}");
    assert!(holds(&s1, "eth3", "192.168.10.1") && holds(&s1, "ferry0", "192.168.40.9"));
    let r = ping.snapshot();
    let lost: Vec<_> = r.samples[..r.samples.len().saturating_sub(3)]
        .iter()
        .filter(|s| s.rtt_ms.is_none())
        .collect();
    assert!(
        lost.is_empty(),
        "pings lost while the source served: {lost:?}"
    );

    // The agent comes back (adopting the modem it left); the next M succeeds.
    bed.restart_agent_as(2, true).expect("agent restart");
    std::thread::sleep(Duration::from_millis(700));
    bed.console_args.clear();
    let (ok, _) = console.run("M", step).expect("second M");
    println!("{}", console.transcript);
    assert!(
        ok,
        "M after the agent's restart failed:\n{}",
        console.transcript
    );
    assert!(holds(&s2, "eth3", "192.168.10.1") && !holds(&s1, "eth3", "192.168.10.1"));
    std::thread::sleep(Duration::from_millis(2500));
    let (ok, _) = answered_over(&ping, Duration::from_secs(2));
    assert!(ok > 10, "server2 does not serve after M: {ok} answered");
    let _ = ping.stop();
    console.close();
    bed.stop_all();
}

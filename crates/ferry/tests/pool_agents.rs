//! The pool's agent-backed executor in the pool testbed (needs root and etcd; skipped loudly
//! otherwise): one cell on server1 of two, a real single-node etcd on the management
//! network, `ferry pool register` on both servers with their agent slots, and `ferry pool
//! run --key` (policy static). The operator drains server1 while the destination's agent
//! (server2-cell1) is down: the make-before-break fails, and etcd must keep saying server1
//! (desired = actual; epoch bumped by the begin and the abort) while server1 really serves
//! (the far end's ping answers). Then the agent comes back: the drain's move goes through
//! as a real make-before-break, etcd says server2, the radio streams to server2's fronthaul
//! address, the ping answers through server2 and server1 ends off.

use ferry_pool_etcd::layout::CellRecord;
use ferry_pool_etcd::{LocalEtcd, PoolStore};
use ferry_testbed::netns::command_in;
use ferry_testbed::pool_bed::{pool_ip, send, slot_arg, start_agent, start_air, start_far};
use ferry_testbed::session::{Bed, RADIO_CTL};
use ferry_testbed::{root_or_skip, Topology};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// The pool's state, read from a thread inside the control namespace.
fn read(ns: &str, url: &str) -> ferry_pool_etcd::PoolState {
    let (ns, url) = (ns.to_string(), url.to_string());
    std::thread::spawn(move || {
        ferry_testbed::video::enter_netns(&ns).expect("setns");
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let mut store = PoolStore::connect(&[url]).await.unwrap();
                store.read().await.unwrap()
            })
    })
    .join()
    .expect("reader")
}

fn wait_cell(
    ns: &str,
    url: &str,
    timeout: Duration,
    what: &str,
    ok: impl Fn(&CellRecord) -> bool,
) -> CellRecord {
    let t0 = Instant::now();
    loop {
        if let Some(c) = read(ns, url).cells.get("cell1") {
            if ok(c) {
                return c.clone();
            }
            assert!(t0.elapsed() < timeout, "{what}: cell1 is {c:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ping(bed: &Bed) -> bool {
    command_in(&bed.ns("farend"), "ping")
        .args(["-c", "1", "-W", "1", &pool_ip(1).to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn wait_ping(bed: &Bed, timeout: Duration) {
    let t0 = Instant::now();
    while !ping(bed) {
        assert!(
            t0.elapsed() < timeout,
            "no ping reached cell1 in {timeout:?}"
        );
    }
}

fn ferry_ok(bed: &Bed, host: &str, args: &[&str]) {
    let o = bed.ferry_in(host).args(args).output().expect("ferry");
    assert!(
        o.status.success(),
        "ferry {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_failed_move_stays_at_the_source_and_a_retried_one_moves_the_cell_through_the_agents() {
    let test =
        "a_failed_move_stays_at_the_source_and_a_retried_one_moves_the_cell_through_the_agents";
    if !root_or_skip(test) {
        return;
    }
    if ferry_pool_etcd::local::etcd_binary().is_none() {
        eprintln!("SKIPPED (needs the etcd binary: scripts/deps installs etcd-server): {test}");
        return;
    }
    let prefix = format!("fpa{}", std::process::id() % 100_000);
    let topo = Topology::pool(&prefix, 2).expect("topology");
    let mut bed = Bed::up_with(Path::new(FERRY), topo).expect("testbed");
    let control = bed.ns("control");
    let etcd = LocalEtcd::start_in(&control, "10.99.0.9", Duration::from_secs(20)).expect("etcd");
    let url = etcd.client_url.clone();
    start_air(&mut bed, 1).expect("air");
    start_far(&mut bed, 1).expect("far modem");
    for n in [1, 2] {
        start_agent(&mut bed, n, 1).expect("agent");
        let mut c = bed.ferry_in(&format!("server{n}"));
        c.args(["probe", "echo", "--bind", "0.0.0.0:7777"]);
        bed.spawn(&format!("echo{n}"), c).expect("echo");
    }
    std::thread::sleep(Duration::from_millis(800));
    send(
        &bed,
        1,
        1,
        "set_tun_ip",
        &format!(r#"{{"tun_ip":"{}"}}"#, pool_ip(1)),
    )
    .expect("tun");
    send(&bed, 1, 1, "start_d2d", r#"{"control_flag":0}"#).expect("start_d2d");
    wait_ping(&bed, Duration::from_secs(60));

    let key = bed.key().to_string_lossy().into_owned();
    for n in [1u8, 2] {
        let mut c = bed.ferry_in(&format!("server{n}"));
        c.args([
            "pool", "register", "--etcd", &url, "--cores", "1", "--boot-s", "1",
        ])
        .args(["--server", &format!("server{n}"), "--slot", &slot_arg(n, 1)])
        .args(["--key", &key]);
        bed.spawn(&format!("register{n}"), c).expect("register");
    }
    ferry_ok(
        &bed,
        "control",
        &[
            "pool",
            "cell",
            "cell1",
            "--etcd",
            &url,
            "--on",
            "server1",
            "--demand",
            "0.1",
            "--radio-control",
            RADIO_CTL,
            "--radio-name",
            "cell1",
        ],
    );
    ferry_ok(
        &bed,
        "control",
        &["pool", "policy", "static", "--etcd", &url],
    );
    let t0 = Instant::now();
    while read(&control, &url).servers.len() < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "servers never registered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The destination's agent is down: the drain's move must fail and stay at the source.
    bed.stop_named("agent-server2-cell1");
    let mut c = bed.ferry_in("control");
    c.args([
        "pool",
        "run",
        "--etcd",
        &url,
        "--name",
        "a",
        "--interval-ms",
        "500",
    ])
    .args(["--key", &key, "--radio-key", &key, "--timeout-ms", "2000"])
    .env("RUST_LOG", "info");
    bed.spawn("pool-run", c).expect("pool run");
    ferry_ok(
        &bed,
        "control",
        &["pool", "drain", "server1", "--etcd", &url],
    );
    let rec = wait_cell(
        &control,
        &url,
        Duration::from_secs(60),
        "an aborted move",
        |c| c.epoch >= 3 && c.desired == c.actual,
    );
    eprintln!("after the failed move: {rec:?}");
    assert_eq!(rec.actual, "server1", "{rec:?}");
    assert_eq!(rec.epoch % 2, 1, "begins and aborts come in pairs: {rec:?}");
    assert!(ping(&bed) || ping(&bed), "server1 no longer serves");
    let log = std::fs::read_to_string(bed.dir.join("pool-run.log")).unwrap_or_default();
    assert!(log.contains("move failed"), "{log}");
    assert!(log.contains("aborting the move"), "{log}");

    // The agent comes back: the move goes through.
    start_agent(&mut bed, 2, 1).expect("agent back");
    let rec = wait_cell(
        &control,
        &url,
        Duration::from_secs(90),
        "the move to server2",
        |c| c.actual == "server2" && c.desired == "server2",
    );
    eprintln!("after the retried move: {rec:?}");
    assert!(rec.epoch > 3, "{rec:?}");
    let st = bed
        .ferry_in("radio")
        .args([
            "radio",
            "--control",
            RADIO_CTL,
            "--key",
            &key,
            "status",
            "cell1",
        ])
        .output()
        .expect("ferry radio status");
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).expect("radio status JSON");
    assert_eq!(
        st["radios"][0]["linked"], "192.168.10.12:49201",
        "the radio streams to server2: {st}"
    );
    wait_ping(&bed, Duration::from_secs(10));
    let t0 = Instant::now();
    while read(&control, &url).power.get("server1") != Some(&ferry_pool::Power::Off) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "server1 never switched off"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    bed.stop_all();
    drop(etcd);
}

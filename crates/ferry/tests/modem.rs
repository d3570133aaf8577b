//! `ferry modem` end to end: ping through TUN → modem → fronthaul → air → fronthaul → modem →
//! TUN in the namespace testbed, relay after route discovery, cold vs warm start, and the
//! control socket's refusals (that one on loopback, no root needed).

use ferry_modem::{ModemClient, ModemRequest, ModemState, ModemStatus};
use ferry_testbed::{netns, root_or_skip, Topology};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// One real-time scenario at a time: the 2-core CI machine cannot run several airs and
/// modems in parallel without missing deadlines.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
const RADIO_CTL: &str = "tcp://10.99.0.10:5550";

/// Children and namespaces torn down on drop, even when the test fails.
struct Bed {
    prefix: Option<String>,
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Bed {
    fn new(tag: &str, netns_up: bool) -> Bed {
        let pid = std::process::id() % 100_000;
        let prefix = format!("m{tag}{pid}");
        let dir = std::env::temp_dir().join(format!("ferry-modem-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let prefix = if netns_up {
            let topo = Topology::thesis(&prefix).unwrap();
            netns::up(&topo).unwrap();
            Some(prefix)
        } else {
            None
        };
        Bed {
            prefix,
            dir,
            children: Vec::new(),
        }
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix.as_deref().unwrap_or(""))
    }

    fn spawn(&mut self, name: &str, host: Option<&str>, args: &[String]) {
        let mut c = match host {
            Some(h) => netns::command_in(&self.ns(h), FERRY),
            None => Command::new(FERRY),
        };
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let out = std::fs::File::create(self.dir.join(format!("{name}.out"))).unwrap();
        c.args(args).stdout(out).stderr(log).stdin(Stdio::null());
        self.children.push((name.to_string(), c.spawn().unwrap()));
    }

    fn sock(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sock"))
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Quit a modem over its socket and wait for its exit; returns its JSON summary.
    fn quit(&mut self, name: &str) -> Value {
        if let Ok(mut c) = ModemClient::connect(self.sock(name), Duration::from_secs(2)) {
            let _ = c.request(&ModemRequest::Quit);
        }
        if let Some(pos) = self.children.iter().position(|(n, _)| n == name) {
            let (_, mut ch) = self.children.remove(pos);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = ch.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = ch.kill();
            let _ = ch.wait();
        }
        let text =
            std::fs::read_to_string(self.dir.join(format!("{name}.out"))).unwrap_or_default();
        serde_json::from_str(text.trim()).unwrap_or(Value::Null)
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(p) = &self.prefix {
            let _ = netns::down(p);
        }
    }
}

/// The default air with radios bound to the radio room's fronthaul addresses and link
/// control on the management LAN (or on loopback with the given ports).
fn air_config(dir: &Path, loopback_base: Option<u16>) -> PathBuf {
    air_config_with(dir, loopback_base, false)
}

/// As [`air_config`]; `legacy` makes the pool radio address-bound to 192.168.10.1:49200.
fn air_config_with(dir: &Path, loopback_base: Option<u16>, legacy: bool) -> PathBuf {
    let out = Command::new(FERRY)
        .args(["air", "--print-default-config"])
        .output()
        .unwrap();
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let addrs = match loopback_base {
        None => {
            v["control"] = RADIO_CTL.into();
            [
                "192.168.10.2:49201",
                "192.168.13.2:49202",
                "192.168.14.2:49203",
                "192.168.10.2:49204",
            ]
            .map(String::from)
        }
        Some(b) => {
            v["control"] = format!("tcp://127.0.0.1:{b}").into();
            [1, 2, 3, 4].map(|k| format!("127.0.0.1:{}", b + k))
        }
    };
    if let Some(radios) = v["radios"].as_array_mut() {
        for (r, a) in radios.iter_mut().zip(addrs) {
            r["fronthaul"] = a.into();
        }
    }
    if legacy {
        v["radios"][0]["legacy_host"] = "192.168.10.1:49200".into();
    }
    let p = dir.join("air.json");
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn modem_args(
    bed: &Bed,
    name: &str,
    workmode: u8,
    radio: &str,
    bind: &str,
    tun_addr: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut a = s(&[
        "modem",
        "--workmode",
        &workmode.to_string(),
        "--radio-control",
        RADIO_CTL,
        "--radio",
        radio,
        "--bind",
        bind,
        "--tun",
        "ferry0",
        "--tun-addr",
        tun_addr,
        "--discovery-period-ms",
        "500",
        "--key",
        &radio_key(bed),
        "--control-socket",
    ]);
    a.push(bed.sock(name).display().to_string());
    a.extend(s(extra));
    a
}

fn status(bed: &Bed, name: &str) -> Option<ModemStatus> {
    ModemClient::connect(bed.sock(name), Duration::from_secs(1))
        .ok()?
        .status()
        .ok()
}

fn routes(bed: &Bed, name: &str) -> Option<Value> {
    let mut c = ModemClient::connect(bed.sock(name), Duration::from_secs(1)).ok()?;
    c.request(&ModemRequest::GetRoutes).ok()?.result
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// `ping` inside a namespace: (transmitted, received).
fn ping(bed: &Bed, host: &str, dst: &str, count: u32, interval: &str) -> (u32, u32) {
    let out = netns::command_in(&bed.ns(host), "ping")
        .args([
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            "-W",
            "2",
            dst,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("");
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse().ok())
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
    )
}

/// The air's late/underflow counters per radio (diagnostics in failure output).
fn air_late(bed: &Bed) -> String {
    let out = netns::command_in(&bed.ns("server1"), FERRY)
        .args([
            "radio",
            "--control",
            RADIO_CTL,
            "--key",
            &radio_key(bed),
            "status",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    let mut r = String::new();
    for radio in v["radios"].as_array().into_iter().flatten() {
        r += &format!(
            "{}: late_packets {} late_samples {}; ",
            radio["info"]["radio"],
            radio["counters"]["late_packets"],
            radio["counters"]["late_samples"]
        );
    }
    if r.is_empty() {
        out
    } else {
        r
    }
}

/// The radio room's link-control key (mode 0600) for this bed: make-before-break needs
/// the radio's authenticated in-band switch notices.
fn radio_key(bed: &Bed) -> String {
    let key = bed.dir.join("radio.key");
    if !key.exists() {
        std::fs::write(&key, format!("{}\n", "5a".repeat(32))).expect("key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod key");
    }
    key.display().to_string()
}

fn start_air(bed: &mut Bed) {
    let cfg = air_config(&bed.dir, None);
    let key = radio_key(bed);
    let args = s(&[
        "air",
        "--fast-init",
        "--key",
        &key,
        "--config",
        &cfg.display().to_string(),
    ]);
    bed.spawn("air", Some("radio"), &args);
    std::thread::sleep(Duration::from_millis(400));
}

/// Starts a master on server1 (pool radio) and a slave on server3 (far radio), both with
/// `extra` flags, and waits until both are active.
fn start_master_and_far_slave(bed: &mut Bed, extra: &[&str], what: &str) {
    let a = modem_args(
        bed,
        "s1",
        0,
        "pool",
        "192.168.10.11:0",
        "192.168.40.9/24",
        extra,
    );
    bed.spawn("s1", Some("server1"), &a);
    let a = modem_args(
        bed,
        "s3",
        1,
        "far",
        "192.168.13.1:0",
        "192.168.40.8/24",
        extra,
    );
    bed.spawn("s3", Some("server3"), &a);
    wait_for(what, Duration::from_secs(15), || {
        [status(bed, "s1"), status(bed, "s3")]
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.state == ModemState::Active))
    });
}

/// Pings server1's TUN address from server3 every 10 ms — 200 times in CI, or
/// `FERRY_MODEM_PINGS` (1000 is the issue's figure, docs/MODEM.md) — and asserts that none
/// was lost. Returns the two modems' status after the pings (server1, server3).
fn ping_far_to_pool_without_loss(bed: &Bed) -> (u32, ModemStatus, ModemStatus) {
    let count: u32 = std::env::var("FERRY_MODEM_PINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let (tx, rx) = ping(bed, "server3", "192.168.40.9", count, "0.01");
    let s3 = status(bed, "s3").unwrap();
    let s1 = status(bed, "s1").unwrap();
    eprintln!("server3: {s3:?}\nserver1: {s1:?}");
    eprintln!("air: {}", air_late(bed));
    assert_eq!(tx, count);
    assert_eq!(
        rx,
        count,
        "lost pings; logs:\n{}\n{}",
        bed.log("s3"),
        bed.log("s1")
    );
    (count, s1, s3)
}

#[test]
fn ping_from_the_far_end_crosses_the_air_without_loss() {
    if !root_or_skip("ping_from_the_far_end_crosses_the_air_without_loss") {
        return;
    }
    let _one = serial();
    let mut bed = Bed::new("p", true);
    start_air(&mut bed);
    start_master_and_far_slave(&mut bed, &[], "both modems active");
    let (count, s1, s3) = ping_far_to_pool_without_loss(&bed);
    // The slave found the master's cell and frequency offset by itself (cold start).
    assert!(s3.synced);
    assert!((s3.cfo_hz - 150.0).abs() < 30.0, "CFO {}", s3.cfo_hz);
    assert!(s3.counters.tun_in >= u64::from(count) && s1.counters.tun_out >= u64::from(count));
    assert_eq!(s3.counters.drop_no_route + s1.counters.drop_no_route, 0);
    let sum1 = bed.quit("s1");
    let sum3 = bed.quit("s3");
    assert!(
        sum1["status"]["counters"]["tun_in"].as_u64() >= Some(u64::from(count)),
        "{sum1}"
    );
    assert!(sum3["sync_ms"].as_f64().is_some(), "{sum3}");
}

#[test]
fn relay_forwards_between_terminals_that_cannot_hear_each_other() {
    if !root_or_skip("relay_forwards_between_terminals_that_cannot_hear_each_other") {
        return;
    }
    relay_scenario("r", &[]);
}

/// The same relay in FDD: the base station transmits on the downlink carrier and hears both
/// terminals on the uplink carrier, granting each its uplink subframes by RNTI.
#[test]
fn fdd_base_station_relays_between_terminals() {
    if !root_or_skip("fdd_base_station_relays_between_terminals") {
        return;
    }
    relay_scenario("q", &["--duplex-mode", "1"]);
}

fn relay_scenario(tag: &str, extra: &[&str]) {
    let _one = serial();
    let mut bed = Bed::new(tag, true);
    start_air(&mut bed);
    // server1 = node 9 (relay, base station), server3 = node 8, server4 = node 10;
    // far–relayrx is blocked in the default air.
    let a = modem_args(
        &bed,
        "s1",
        2,
        "pool",
        "192.168.10.11:0",
        "192.168.40.9/24",
        extra,
    );
    bed.spawn("s1", Some("server1"), &a);
    let a = modem_args(
        &bed,
        "s3",
        1,
        "far",
        "192.168.13.1:0",
        "192.168.40.8/24",
        extra,
    );
    bed.spawn("s3", Some("server3"), &a);
    let a = modem_args(
        &bed,
        "s4",
        1,
        "relayrx",
        "192.168.14.1:0",
        "192.168.40.10/24",
        extra,
    );
    bed.spawn("s4", Some("server4"), &a);
    let want = [
        ("s1", json!([[8, 8], [10, 10]])),
        ("s3", json!([[9, 9], [10, 9]])),
        ("s4", json!([[8, 9], [9, 9]])),
    ];
    let t0 = Instant::now();
    wait_for(
        "route tables equal to the topology",
        Duration::from_secs(20),
        || {
            want.iter()
                .all(|(n, r)| routes(&bed, n).as_ref() == Some(r))
        },
    );
    eprintln!(
        "routes converged {:?} after the modems were started",
        t0.elapsed()
    );
    let (tx, rx) = ping(&bed, "server3", "192.168.40.10", 100, "0.05");
    let s1 = status(&bed, "s1").unwrap();
    eprintln!("relay: {s1:?}");
    assert_eq!(tx, 100);
    assert_eq!(rx, 100, "logs:\n{}", bed.log("s1"));
    // Every echo request and reply went through the relay's MAC forwarding.
    assert!(
        s1.counters.relayed >= 200,
        "relayed {}",
        s1.counters.relayed
    );
    assert_eq!(s1.counters.tun_out, 0, "nothing was for the relay itself");
}

/// Process start → first delivered packet, cold (cell search + route discovery) vs warm
/// (Control with frame timing and CFO, and routes, from the running instance).
#[test]
fn warm_start_skips_search_and_discovery() {
    if !root_or_skip("warm_start_skips_search_and_discovery") {
        return;
    }
    let _one = serial();
    let mut bed = Bed::new("w", true);
    start_air(&mut bed);
    let a = modem_args(
        &bed,
        "s1",
        0,
        "pool",
        "192.168.10.11:0",
        "192.168.40.9/24",
        &[],
    );
    bed.spawn("s1", Some("server1"), &a);
    wait_for("master active", Duration::from_secs(10), || {
        status(&bed, "s1").is_some_and(|s| s.synced)
    });
    // Traffic towards the far end: 5 ms pings from server1 for the whole test.
    let mut pinger = netns::command_in(&bed.ns("server1"), "ping")
        .args(["-q", "-i", "0.005", "-W", "1", "192.168.40.8"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let a = modem_args(
        &bed,
        "cold",
        1,
        "far",
        "192.168.13.1:0",
        "192.168.40.8/24",
        &[],
    );
    bed.spawn("cold", Some("server3"), &a);
    wait_for("cold slave delivered", Duration::from_secs(15), || {
        status(&bed, "cold").is_some_and(|s| s.counters.tun_out > 0)
    });
    let control = ModemClient::connect(bed.sock("cold"), Duration::from_secs(1))
        .unwrap()
        .request(&ModemRequest::GetControl)
        .unwrap()
        .result
        .unwrap();
    assert!(control["frame_start_sample"].is_u64(), "{control}");
    let cold_routes = routes(&bed, "cold").unwrap();
    let cold = bed.quit("cold");
    let file = bed.dir.join("control.json");
    std::fs::write(&file, control.to_string()).unwrap();
    let mut a = modem_args(
        &bed,
        "warm",
        1,
        "far",
        "192.168.13.1:0",
        "192.168.40.8/24",
        &[],
    );
    a.extend(s(&[
        "--control-file",
        &file.display().to_string(),
        "--start",
        "warm",
        "--routes",
        &cold_routes.to_string(),
    ]));
    bed.spawn("warm", Some("server3"), &a);
    wait_for("warm slave delivered", Duration::from_secs(15), || {
        status(&bed, "warm").is_some_and(|s| s.counters.tun_out > 0)
    });
    let warm = bed.quit("warm");
    let _ = pinger.kill();
    let _ = pinger.wait();
    let (c_sync, c_first) = (cold["sync_ms"].as_f64(), cold["first_delivery_ms"].as_f64());
    let (w_sync, w_first) = (warm["sync_ms"].as_f64(), warm["first_delivery_ms"].as_f64());
    eprintln!(
        "START FIGURES: cold sync {c_sync:?} ms, first delivery {c_first:?} ms; \
         warm sync {w_sync:?} ms, first delivery {w_first:?} ms"
    );
    let (Some(cf), Some(wf), Some(cs), Some(ws)) = (c_first, w_first, c_sync, w_sync) else {
        panic!("missing figures: {cold} {warm}");
    };
    // Warm: no search (it synchronises as soon as the radio link is up) and no discovery.
    assert!(ws < cs, "warm sync {ws} ms vs cold {cs} ms");
    assert!(wf < cf, "warm first delivery {wf} ms vs cold {cf} ms");
}

/// Bad Control values and malformed messages get clear errors; the modem keeps running.
#[test]
fn control_socket_refuses_bad_input_and_keeps_serving() {
    let _one = serial();
    let mut bed = Bed::new("c", false);
    // Loopback air on ports derived from the pid so parallel runs do not collide.
    let base = 20_000 + (std::process::id() % 2000) as u16 * 10;
    let cfg = air_config(&bed.dir, Some(base));
    bed.spawn(
        "air",
        None,
        &s(&[
            "air",
            "--fast-init",
            "--open-control",
            "--config",
            &cfg.display().to_string(),
        ]),
    );
    std::thread::sleep(Duration::from_millis(400));
    let ctl = format!("tcp://127.0.0.1:{base}");
    let mut a = s(&[
        "modem",
        "--workmode",
        "0",
        "--radio-control",
        &ctl,
        "--radio",
        "pool",
        "--no-tun",
        "--start",
        "wait",
        "--control-socket",
    ]);
    a.push(bed.sock("m").display().to_string());
    bed.spawn("m", None, &a);
    wait_for("control socket", Duration::from_secs(10), || {
        bed.sock("m").exists()
    });
    let mut c = ModemClient::connect(bed.sock("m"), Duration::from_secs(2)).unwrap();
    let r = c.request_line("{not json").unwrap();
    assert!(
        !r.ok && r.error.as_deref().unwrap().starts_with("malformed JSON"),
        "{r:?}"
    );
    let r = c.request_line(r#"{"cmd":"fly"}"#).unwrap();
    assert_eq!((r.ok, r.error.as_deref()), (false, Some("wrong command")));
    let bad = json!({"cmd": "set_control", "control": {
        "workmode": 0, "phy_cell_ID": 504, "group_ID": 0, "cell_ID": 0, "CPtype": 0,
        "BW": 7, "RBIdx": 6, "duplexMode": 0, "numAntennaTX": 1, "numAntennaRX": 1,
        "DLULAssign": 9, "trans_mode": 1, "type_mode": 4, "RNTI": 265}});
    let r = c.request_line(&bad.to_string()).unwrap();
    let e = r.error.clone().unwrap_or_default();
    for f in [
        "phy_cell_ID = 504",
        "BW = 7",
        "type_mode = 4",
        "DLULAssign = 9",
    ] {
        assert!(e.contains(f), "{f} missing from {e}");
    }
    // Valid in table 3-3 but not here: two TX antennas with trans_mode 1 (one port).
    let control = |duplex: u8, antennas: u8| {
        json!({"cmd": "set_control", "control": {
        "workmode": 0, "phy_cell_ID": 1, "group_ID": 0, "cell_ID": 1, "CPtype": 0,
        "BW": 1.4, "RBIdx": 6, "duplexMode": duplex, "numAntennaTX": antennas,
        "numAntennaRX": 1, "DLULAssign": 1, "trans_mode": 1, "type_mode": 1, "RNTI": 265}})
        .to_string()
    };
    let r = c.request_line(&control(0, 2)).unwrap();
    assert!(
        r.error.as_deref().unwrap_or("").contains("numAntennaTX"),
        "{r:?}"
    );
    // FDD is accepted while idle (two carriers, docs/MODEM.md); then back to TDD.
    assert!(c.request_line(&control(1, 1)).unwrap().ok);
    assert!(c.request_line(&control(0, 1)).unwrap().ok);
    let r = c
        .request_line(r#"{"cmd":"start","control_flag":2}"#)
        .unwrap();
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .contains("control_flag = 2"),
        "{r:?}"
    );
    let r = c
        .request_line(r#"{"cmd":"takeover_at","at_sample":100}"#)
        .unwrap();
    assert!(r.error.as_deref().unwrap_or("").contains("shadow"), "{r:?}");
    let r = c
        .request_line(r#"{"cmd":"set_routes","routes":[[4,1],[4,2]]}"#)
        .unwrap();
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .contains("already has a route"),
        "{r:?}"
    );
    // Still alive and still idle; then it starts and runs.
    assert_eq!(c.status().unwrap().state, ModemState::Idle);
    let r = c.request(&ModemRequest::Start { control_flag: 0 }).unwrap();
    assert!(r.ok, "{r:?}");
    wait_for("subframes flowing", Duration::from_secs(5), || {
        c.status().is_ok_and(|s| s.counters.subframes > 100)
    });
    let r = c.request(&ModemRequest::Start { control_flag: 0 }).unwrap();
    assert!(
        r.error.as_deref().unwrap_or("").contains("already started"),
        "{r:?}"
    );
    let ctl = c
        .request(&ModemRequest::GetControl)
        .unwrap()
        .result
        .unwrap();
    assert_eq!(
        ctl["frame_start_sample"].as_u64().map(|f| f % 19_200),
        Some(0),
        "{ctl}"
    );
    let r = c
        .request_line(r#"{"cmd":"takeover_at","at_sample":1}"#)
        .unwrap();
    assert!(!r.ok);
    let r = c
        .request_line(r#"{"cmd":"release_at","at_sample":1,"forward_to":"127.0.0.1:9"}"#)
        .unwrap();
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("needs forward_token")),
        "{r:?}"
    );
    let r = c
        .request_line(
            r#"{"cmd":"release_at","at_sample":1,"forward_to":"127.0.0.1:9","forward_token":"abababababababababababababababababababababababababababababababab"}"#,
        )
        .unwrap();
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .contains("subframe boundary"),
        "{r:?}"
    );
    assert!(c.request(&ModemRequest::Quit).unwrap().ok);
    drop(c);
    let sum = bed.quit("m");
    // Alone on the air it stays in route discovery (no neighbour yet), synchronised.
    assert_eq!(sum["status"]["state"], "discovering", "{sum}");
    assert_eq!(sum["status"]["synced"], true, "{sum}");
    // A bad Control on the command line is a clear error before anything starts.
    let out = Command::new(FERRY)
        .args(["modem", "--pci", "504", "--no-tun"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("phy_cell_ID = 504"), "{err}");
}

/// Make-before-break through the control-socket hooks: server2 shadows the pool radio warm,
/// the radio switches at T, server1 releases at T (forwarding what it holds), server2 takes
/// over at T; pings from the far end keep flowing.
#[test]
fn make_before_break_hooks_keep_pings_flowing() {
    if !root_or_skip("make_before_break_hooks_keep_pings_flowing") {
        return;
    }
    let _one = serial();
    let mut bed = Bed::new("b", true);
    start_air(&mut bed);
    let a = modem_args(
        &bed,
        "s1",
        0,
        "pool",
        "192.168.10.11:0",
        "192.168.40.9/24",
        &[],
    );
    bed.spawn("s1", Some("server1"), &a);
    let a = modem_args(
        &bed,
        "s3",
        1,
        "far",
        "192.168.13.1:0",
        "192.168.40.8/24",
        &[],
    );
    bed.spawn("s3", Some("server3"), &a);
    let a = modem_args(
        &bed,
        "s2",
        0,
        "pool",
        "192.168.10.12:40000",
        "192.168.40.9/24",
        &["--start", "wait", "--forward-bind", "10.99.0.2:7700"],
    );
    bed.spawn("s2", Some("server2"), &a);
    wait_for("source and far end active", Duration::from_secs(15), || {
        [status(&bed, "s1"), status(&bed, "s3")]
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.state == ModemState::Active))
    });
    let mut src = ModemClient::connect(bed.sock("s1"), Duration::from_secs(2)).unwrap();
    let mut dst = ModemClient::connect(bed.sock("s2"), Duration::from_secs(2)).unwrap();
    let control = src
        .request(&ModemRequest::GetControl)
        .unwrap()
        .result
        .unwrap();
    let routes = src
        .request(&ModemRequest::GetRoutes)
        .unwrap()
        .result
        .unwrap();
    let r = dst
        .request_line(&json!({"cmd": "set_control", "control": control}).to_string())
        .unwrap();
    assert!(r.ok, "{r:?}");
    let r = dst
        .request_line(&json!({"cmd": "set_routes", "routes": routes}).to_string())
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert!(dst.request(&ModemRequest::Shadow).unwrap().ok);
    let t0 = Instant::now();
    loop {
        let st = dst.status().unwrap();
        if st.state == ModemState::Shadow && st.counters.subframes > 300 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "shadow not decoding: {st:?}\n{}",
            air_late(&bed)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Pings at 10 ms for 3 s; the cutover happens 1 s in.
    let pinger = std::thread::spawn({
        let ns = bed.ns("server3");
        move || {
            netns::command_in(&ns, "ping")
                .args(["-q", "-c", "300", "-i", "0.01", "-W", "2", "192.168.40.9"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        }
    });
    std::thread::sleep(Duration::from_millis(1000));
    let now = src.status().unwrap().sample_time;
    let t = (now / 1920 + 200) * 1920; // ≈ 200 ms ahead, on a subframe boundary
    let token = ferry_migrate::ForwardToken::random();
    let r = dst
        .request(&ModemRequest::TakeoverAt {
            at_sample: t,
            forward_token: Some(token.clone()),
        })
        .unwrap();
    assert!(r.ok, "{r:?}");
    // A T inside the TX the source already built is refused: the packets in those
    // subframes would be lost when the radio switches. `status` lags the radio by a few
    // ms under load, so the first tries may name a T already past; the built TX reaches
    // ~6 subframes past the radio's time, so a later one lands inside it.
    let mut refused = None;
    for k in 3..16u64 {
        let soon = (src.status().unwrap().sample_time / 1920 + k) * 1920;
        let r = src
            .request(&ModemRequest::ReleaseAt {
                at_sample: soon,
                forward_to: "10.99.0.2:7700".parse().unwrap(),
                forward_token: Some(token.clone()),
            })
            .unwrap();
        assert!(!r.ok, "a release inside built TX was armed: {r:?}");
        let e = r.error.unwrap_or_default();
        if e.contains("already built") {
            refused = Some(e);
            break;
        }
        assert!(e.contains("in the past"), "{e}");
    }
    assert!(refused.is_some(), "no T inside the built TX was tried");
    let r = src
        .request(&ModemRequest::ReleaseAt {
            at_sample: t,
            forward_to: "10.99.0.2:7700".parse().unwrap(),
            forward_token: Some(token),
        })
        .unwrap();
    assert!(r.ok, "{r:?}");
    let out = netns::command_in(&bed.ns("server1"), FERRY)
        .args([
            "radio",
            "--control",
            RADIO_CTL,
            "--key",
            &radio_key(&bed),
            "switch-at",
            "pool",
            "192.168.10.12:40000",
            "--at",
            &t.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = pinger.join().unwrap();
    eprintln!("{text}");
    let s1 = src.status().unwrap();
    let s2 = dst.status().unwrap();
    eprintln!("source: {s1:?}\ndestination: {s2:?}");
    assert_eq!(s1.state, ModemState::Released);
    assert_eq!(s2.state, ModemState::Active);
    assert!(
        s2.counters.tun_out > 50,
        "destination delivered {}",
        s2.counters.tun_out
    );
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("");
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|x| x.parse().ok())
        .collect();
    eprintln!("CUTOVER: {line}");
    assert_eq!(nums.first(), Some(&300));
    // Measured: 299–300 of 300 (one echo can be lost at T: the MAC's transmit state is not
    // handed over between the modems yet, docs/MODEM.md). The thesis lost 19 of ~20.
    assert!(
        nums.get(1).is_some_and(|&r| r >= 299),
        "pings lost across the cutover: {line}"
    );
}

/// The thesis' address-bound radio: the pool radio streams only to 192.168.10.1; server1
/// holds that address and runs the master against it without link control.
#[test]
fn legacy_address_bound_radio_carries_pings() {
    if !root_or_skip("legacy_address_bound_radio_carries_pings") {
        return;
    }
    let _one = serial();
    let mut bed = Bed::new("l", true);
    let cfg = air_config_with(&bed.dir, None, true);
    let key = radio_key(&bed);
    let args = s(&[
        "air",
        "--fast-init",
        "--key",
        &key,
        "--config",
        &cfg.display().to_string(),
    ]);
    bed.spawn("air", Some("radio"), &args);
    let ok = Command::new("ip")
        .args([
            "-n",
            &bed.ns("server1"),
            "addr",
            "add",
            "192.168.10.1/24",
            "dev",
            "eth3",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    std::thread::sleep(Duration::from_millis(400));
    let mut a = modem_args(
        &bed,
        "s1",
        0,
        "pool",
        "192.168.10.1:49200",
        "192.168.40.9/24",
        &[],
    );
    a.extend(s(&[
        "--legacy-radio",
        "192.168.10.2:49201",
        "--legacy-number",
        "0",
    ]));
    bed.spawn("s1", Some("server1"), &a);
    let a = modem_args(
        &bed,
        "s3",
        1,
        "far",
        "192.168.13.1:0",
        "192.168.40.8/24",
        &[],
    );
    bed.spawn("s3", Some("server3"), &a);
    wait_for("both modems active", Duration::from_secs(15), || {
        [status(&bed, "s1"), status(&bed, "s3")]
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.state == ModemState::Active))
    });
    let (tx, rx) = ping(&bed, "server3", "192.168.40.9", 100, "0.01");
    assert_eq!(
        (tx, rx),
        (100, 100),
        "logs:\n{}\n{}",
        bed.log("s1"),
        bed.log("s3")
    );
}

/// The radios' RX centre frequencies as the air reports them (`info.freq_hz`).
fn air_rx_freqs(bed: &Bed) -> Vec<(String, f64)> {
    let out = netns::command_in(&bed.ns("server1"), FERRY)
        .args([
            "radio",
            "--control",
            RADIO_CTL,
            "--key",
            &radio_key(bed),
            "status",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    v["radios"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["info"]["radio"].as_str().unwrap_or("").to_string(),
                r["info"]["freq_hz"].as_f64().unwrap_or(0.0),
            )
        })
        .collect()
}

/// FDD (duplexMode 1) on two carriers: the master tunes the pool radio to TX 2140 / RX
/// 1950 MHz (band 1), the slave the far radio to TX 1950 / RX 2140 MHz; cold cell search on
/// the downlink carrier; real ping across both carriers without loss.
#[test]
fn fdd_ping_over_two_carriers_without_loss() {
    if !root_or_skip("fdd_ping_over_two_carriers_without_loss") {
        return;
    }
    let _one = serial();
    let mut bed = Bed::new("f", true);
    start_air(&mut bed);
    start_master_and_far_slave(&mut bed, &["--duplex-mode", "1"], "both FDD modems active");
    let freqs = air_rx_freqs(&bed);
    eprintln!("air RX tuning: {freqs:?}");
    let rx_of = |name: &str| freqs.iter().find(|(n, _)| n == name).map(|f| f.1);
    assert_eq!(rx_of("pool"), Some(1950e6), "master receives the uplink");
    assert_eq!(rx_of("far"), Some(2140e6), "slave receives the downlink");
    assert_eq!(rx_of("relayrx"), Some(1.9e9), "untouched radios stay put");
    // The carrier travels with the Control (a migration destination tunes the same).
    let ctl = ModemClient::connect(bed.sock("s1"), Duration::from_secs(1))
        .unwrap()
        .request(&ModemRequest::GetControl)
        .unwrap()
        .result
        .unwrap();
    assert_eq!(
        (ctl["EARFCN"].as_u64(), ctl["duplexMode"].as_u64()),
        (Some(300), Some(1))
    );
    let (_, _, s3) = ping_far_to_pool_without_loss(&bed);
    assert!(s3.synced);
    assert!((s3.cfo_hz - 150.0).abs() < 30.0, "CFO {}", s3.cfo_hz);
    // The master's carrier is on air in every subframe: the slave decodes (data or
    // filler) nearly every subframe it processes (TDD configuration 1: at most 6 in 10).
    assert!(
        s3.counters.decode_ok * 10 >= s3.counters.subframes * 9,
        "{:?}",
        s3.counters
    );
    let sum3 = bed.quit("s3");
    let sum1 = bed.quit("s1");
    assert_eq!(sum3["carrier"]["ul_hz"].as_f64(), Some(1950e6), "{sum3}");
    assert_eq!(sum1["carrier"]["dl_hz"].as_f64(), Some(2140e6), "{sum1}");
}

/// The air really separates carriers: a slave tuned to a downlink 5 MHz away (EARFCN 350)
/// never finds the master's cell, while a slave on the right one (EARFCN 300, on server4's
/// radio, which hears the pool radio too) does, at the same time.
#[test]
fn fdd_slave_on_the_wrong_downlink_finds_no_cell() {
    if !root_or_skip("fdd_slave_on_the_wrong_downlink_finds_no_cell") {
        return;
    }
    let _one = serial();
    let mut bed = Bed::new("g", true);
    start_air(&mut bed);
    let a = modem_args(
        &bed,
        "s1",
        0,
        "pool",
        "192.168.10.11:0",
        "192.168.40.9/24",
        &["--duplex-mode", "1", "--earfcn", "300"],
    );
    bed.spawn("s1", Some("server1"), &a);
    let a = modem_args(
        &bed,
        "s3",
        1,
        "far",
        "192.168.13.1:0",
        "192.168.40.8/24",
        &["--duplex-mode", "1", "--earfcn", "350"],
    );
    bed.spawn("s3", Some("server3"), &a);
    let a = modem_args(
        &bed,
        "s4",
        1,
        "relayrx",
        "192.168.14.1:0",
        "192.168.40.10/24",
        &["--duplex-mode", "1", "--earfcn", "300"],
    );
    bed.spawn("s4", Some("server4"), &a);
    wait_for(
        "the right-carrier slave synced",
        Duration::from_secs(15),
        || status(&bed, "s4").is_some_and(|s| s.synced),
    );
    // As long again as the right one needed, and then some: still nothing.
    std::thread::sleep(Duration::from_secs(2));
    let s3 = status(&bed, "s3").expect("wrong-carrier slave still serving its socket");
    eprintln!("wrong carrier: {s3:?}");
    assert!(!s3.synced, "found a cell on an empty carrier");
    assert_eq!(s3.state, ModemState::Searching);
    assert_eq!(s3.counters.tun_out, 0);
    let freqs = air_rx_freqs(&bed);
    assert!(freqs.contains(&("far".to_string(), 2145e6)), "{freqs:?}");
    let sum3 = bed.quit("s3");
    assert!(sum3["sync_ms"].is_null(), "{sum3}");
}

/// A carrier that contradicts duplexMode is refused before the modem touches a radio, with
/// a message naming the band (no root, no air needed).
#[test]
fn carrier_and_duplex_mode_must_agree() {
    for (args, want) in [
        (
            &["--duplex-mode", "1", "--earfcn", "38450"][..],
            "TDD band 39",
        ),
        (&["--duplex-mode", "0", "--earfcn", "300"][..], "FDD band 1"),
        (
            &["--duplex-mode", "1", "--earfcn", "3800"][..],
            "not a downlink EARFCN",
        ),
        (&["--duplex-mode", "2"][..], "duplexMode"),
        (&["--earfcn", "300000"][..], "EARFCN = 300000"),
    ] {
        let out = Command::new(FERRY)
            .args(["modem", "--no-tun", "--radio-control", "tcp://127.0.0.1:1"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// Resident memory of a process, kB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Runs `f` on a thread inside testbed host `host`'s network namespace.
fn in_host<T: Send + 'static>(bed: &Bed, host: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = bed.ns(host);
    std::thread::spawn(move || {
        ferry_testbed::video::enter_netns(&ns).expect("enter namespace");
        f()
    })
    .join()
    .expect("sender thread")
}

/// One UDP datagram with a forged source address and port (a raw IPv4 socket: the kernel
/// fills in the IP checksum and length; UDP checksum 0 = none).
fn send_forged_udp(src: std::net::SocketAddrV4, dst: std::net::SocketAddrV4, payload: &[u8]) {
    let total = 28 + payload.len();
    let mut pkt = vec![0u8; total];
    pkt[0] = 0x45;
    pkt[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    pkt[8] = 64;
    pkt[9] = 17;
    pkt[12..16].copy_from_slice(&src.ip().octets());
    pkt[16..20].copy_from_slice(&dst.ip().octets());
    pkt[20..22].copy_from_slice(&src.port().to_be_bytes());
    pkt[22..24].copy_from_slice(&dst.port().to_be_bytes());
    pkt[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    pkt[28..].copy_from_slice(payload);
    // SAFETY: plain socket calls on a descriptor we own, with a valid sockaddr_in.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW);
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(*dst.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let n = libc::sendto(
            fd,
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(n, pkt.len() as isize, "{}", std::io::Error::last_os_error());
        libc::close(fd);
    }
}

/// A 100-sample RX data packet of radio `number` stamped `t`.
fn rx_packet(number: u16, t: u64) -> Vec<u8> {
    use ferry_fronthaul::vrt::{emit_data_i16, Direction, StreamId, Timestamp};
    let mut out = Vec::new();
    emit_data_i16(
        StreamId::new(number, Direction::Rx),
        0,
        Timestamp::from_sample_time(t, 1_920_000).unwrap(),
        &[(3000i16, -3000i16); 100],
        &mut out,
    )
    .unwrap();
    out
}

#[test]
fn hostile_input_does_not_stop_a_serving_modem() {
    use std::io::Write;
    use std::net::{SocketAddrV4, UdpSocket};
    if !root_or_skip("hostile_input_does_not_stop_a_serving_modem") {
        return;
    }
    let _one = serial();
    let mut bed = Bed::new("h", true);
    start_air(&mut bed);
    // Fixed fronthaul and forward ports, so the attacker knows where to aim.
    let a = modem_args(
        &bed,
        "s1",
        0,
        "pool",
        "192.168.10.11:40011",
        "192.168.40.9/24",
        &["--forward-bind", "10.99.0.1:7700"],
    );
    bed.spawn("s1", Some("server1"), &a);
    let a = modem_args(
        &bed,
        "s3",
        1,
        "far",
        "192.168.13.1:0",
        "192.168.40.8/24",
        &[],
    );
    bed.spawn("s3", Some("server3"), &a);
    wait_for("both modems active", Duration::from_secs(15), || {
        [status(&bed, "s1"), status(&bed, "s3")]
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.state == ModemState::Active))
    });
    std::thread::sleep(Duration::from_millis(500));
    let pid = bed
        .children
        .iter()
        .find(|(n, _)| n == "s1")
        .map(|(_, c)| c.id())
        .unwrap();
    let rss_before = rss_kb(pid);
    let before = status(&bed, "s1").unwrap();
    eprintln!("air before: {}", air_late(&bed));
    let pings = std::thread::spawn({
        let ns = bed.ns("server3");
        move || {
            let out = netns::command_in(&ns, "ping")
                .args(["-q", "-c", "400", "-i", "0.01", "-W", "2", "192.168.40.9"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    });
    std::thread::sleep(Duration::from_millis(300));

    // 1. Fronthaul: forged RX packets an hour ahead, from a stranger, from the radio's
    // address with another stream id, and from the radio's address and port with the
    // pool radio's own stream id (radio 0).
    let modem_fh: SocketAddrV4 = "192.168.10.11:40011".parse().unwrap();
    let radio_fh: SocketAddrV4 = "192.168.10.2:49201".parse().unwrap();
    let hour_ahead = before.sample_time + 3600 * 1_920_000;
    in_host(&bed, "server2", move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for k in 0..20 {
            s.send_to(&rx_packet(0, hour_ahead + k), modem_fh).unwrap();
        }
    });
    let forged = 20u64;
    for k in 0..forged {
        in_host(&bed, "radio", move || {
            send_forged_udp(radio_fh, modem_fh, &rx_packet(7, hour_ahead + k));
            send_forged_udp(radio_fh, modem_fh, &rx_packet(0, hour_ahead + k));
        });
        std::thread::sleep(Duration::from_millis(20));
    }

    // 2. Forward port: the old unauthenticated format and a forged MAC, from another host,
    // outside any migration.
    in_host(&bed, "server2", || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let mut ip = vec![0x45u8; 60];
        ip[1] = 0;
        for seq in 0u32..50 {
            let mut d = b"FFWD".to_vec();
            d.extend(seq.to_be_bytes());
            d.extend(&ip);
            s.send_to(&d, "10.99.0.1:7700").unwrap();
            let mut d = b"FFW2".to_vec();
            d.extend(u64::from(seq).to_be_bytes());
            d.extend(&ip);
            d.extend([0u8; 16]);
            s.send_to(&d, "10.99.0.1:7700").unwrap();
        }
    });

    // 3. Control socket: a client pipelining requests that never reads its replies, an
    // over-long line, and more idle connections than the cap.
    let mut flood = std::os::unix::net::UnixStream::connect(bed.sock("s1")).unwrap();
    flood
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let line = "{\"cmd\":\"status\"}\n".repeat(1000);
    let _ = flood.write_all(line.as_bytes());
    let mut long = std::os::unix::net::UnixStream::connect(bed.sock("s1")).unwrap();
    long.set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    long.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let routes: Vec<String> = (0..40_000).map(|k| format!("[{},1]", k % 200)).collect();
    let big = format!(
        "{{\"cmd\":\"set_routes\",\"routes\":[{}]}}\n",
        routes.join(",")
    );
    let _ = long.write_all(big.as_bytes());
    let mut reply = String::new();
    let _ = std::io::Read::read_to_string(&mut long, &mut reply);
    assert!(
        reply.contains("longer than") && reply.lines().count() == 1,
        "over-long line: {reply:.300}"
    );
    let idle: Vec<_> = (0..20)
        .map(|_| std::os::unix::net::UnixStream::connect(bed.sock("s1")).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The agent (a fresh connection) is still served.
    let mut agent = ModemClient::connect(bed.sock("s1"), Duration::from_secs(2)).unwrap();
    let mid = agent.status().expect("the agent still gets answers");
    assert!(mid.synced, "{mid:?}");

    let text = pings.join().unwrap();
    eprintln!("{text}");
    let after = status(&bed, "s1").unwrap();
    eprintln!("air: {}", air_late(&bed));
    let rss_after = rss_kb(pid);
    eprintln!("before: {before:?}\nafter: {after:?}\nRSS {rss_before} -> {rss_after} kB");
    drop(idle);
    let (b, a) = (&before.counters, &after.counters);
    assert!(
        text.contains("400 packets transmitted, 400 received"),
        "pings lost under attack: {text}\n{}",
        bed.log("s1")
    );
    assert!(after.synced && after.state == ModemState::Active);
    // The attacks arrived and were refused.
    assert!(
        a.rx_dropped_stranger - b.rx_dropped_stranger >= 20 + forged,
        "strangers and foreign stream ids: {} -> {}",
        b.rx_dropped_stranger,
        a.rx_dropped_stranger
    );
    assert!(
        a.rx_dropped_horizon - b.rx_dropped_horizon >= forged,
        "forged timestamps: {} -> {}",
        b.rx_dropped_horizon,
        a.rx_dropped_horizon
    );
    assert_eq!(a.forward_in, b.forward_in, "nothing forged was injected");
    assert!(a.forward_rejected - b.forward_rejected >= 100);
    assert!(
        a.control_dropped > b.control_dropped,
        "the non-reading client was dropped"
    );
    assert!(a.control_refused > b.control_refused);
    assert!(a.control_evicted > b.control_evicted);
    // The old blocking replies stalled the loop for every subframe of a flood (13 873
    // misses in 13.9 s). 0 on a quiet machine; the bound leaves room for the misses a loaded
    // 2-core machine causes without any attack (the ping-only tests above show 10–50).
    let subframes = a.subframes - b.subframes;
    let misses = a.deadline_misses - b.deadline_misses;
    assert!(
        misses * 100 <= subframes,
        "the real-time loop stalled under attack: {misses} deadline misses in {subframes} subframes"
    );
    assert!(
        rss_after < rss_before + 8 * 1024,
        "memory grew: {rss_before} -> {rss_after} kB"
    );

    // 4. Status tells the truth: with the radio gone, nothing decodes and nobody is synced.
    if let Some(pos) = bed.children.iter().position(|(n, _)| n == "air") {
        let (_, mut air) = bed.children.remove(pos);
        let _ = air.kill();
        let _ = air.wait();
    }
    wait_for(
        "synced: false without a radio",
        Duration::from_secs(3),
        || {
            [status(&bed, "s1"), status(&bed, "s3")]
                .iter()
                .all(|s| s.as_ref().is_some_and(|s| !s.synced))
        },
    );
}

/// Every TX datagram the modem's radio link emits fits a 1500-byte IP MTU unfragmented
/// (no root: real UDP sockets on loopback).
#[test]
fn modem_tx_datagrams_fit_the_mtu() {
    use ferry_fronthaul::vrt::{samples_per_packet_for_mtu, IPV4_UDP_OVERHEAD};
    let radio = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    radio
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut link = ferry_radio::RadioLink::create_legacy(
        "127.0.0.1:0".parse().unwrap(),
        radio.local_addr().unwrap(),
        0,
        1_920_000,
    )
    .unwrap();
    // One subframe, as the modem sends it.
    let samples = vec![num_complex::Complex32::new(0.1, -0.1); 1920];
    link.send(19_200, &samples).unwrap();
    let mut buf = [0u8; 65_536];
    let mut sizes = Vec::new();
    while let Ok(n) = radio.recv(&mut buf) {
        sizes.push(n + IPV4_UDP_OVERHEAD);
    }
    let spp = samples_per_packet_for_mtu(1500);
    assert_eq!(sizes.len(), 1920_usize.div_ceil(spp), "{sizes:?}");
    assert!(sizes.iter().all(|&s| s <= 1500), "{sizes:?}");
    assert_eq!(sizes[0], 1500, "full packets use the whole MTU");
}

//! Master election on the air (needs root; skipped loudly otherwise): three `ferry modem
//! --workmode auto` terminals (server1 on the pool radio = node 9, server3 on far = node 8,
//! server4 on relayrx = node 10) on one `ferry air` where all three hear each other. None is
//! told its role: they must elect one master and two synchronised slaves; then the master
//! is killed with SIGKILL and the two survivors must re-elect and carry pings between them.
//! Prints the election and re-election times (docs/MODEM.md, "Master election").
//! A second scenario migrates an elected master make-before-break (server1 → server2 on
//! the pool radio): the destination resumes as master from the Control it is given
//! (`workmode` 3, `elected_master`), without an election, and its slave never loses it.

use ferry_modem::{ElectedRoleName, ModemClient, ModemRequest, ModemState, ModemStatus};
use ferry_testbed::root_or_skip;
use ferry_testbed::session::{Bed, RADIO_CTL};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// One real-time scenario at a time (2 cores: two airs and five modems would miss deadlines).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// (name, namespace, radio, fronthaul bind, TUN address, node).
const TERMINALS: [(&str, &str, &str, &str, &str, u16); 3] = [
    (
        "s1",
        "server1",
        "pool",
        "192.168.10.11:0",
        "192.168.40.9",
        9,
    ),
    ("s3", "server3", "far", "192.168.13.1:0", "192.168.40.8", 8),
    (
        "s4",
        "server4",
        "relayrx",
        "192.168.14.1:0",
        "192.168.40.10",
        10,
    ),
];

/// The default air with the three terminals' radios only, every pair in earshot.
fn write_air_config(dir: &Path) -> PathBuf {
    let out = std::process::Command::new(FERRY)
        .args(["air", "--print-default-config"])
        .output()
        .expect("ferry air --print-default-config");
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("air config");
    let keep = |n: &serde_json::Value| n == "pool" || n == "far" || n == "relayrx";
    let radios: Vec<serde_json::Value> = v["radios"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| keep(&r["name"]))
        .map(|mut r| {
            r["init_ms"] = 0.into();
            r["fronthaul"] = match r["name"].as_str() {
                Some("pool") => "192.168.10.2:49156",
                Some("far") => "192.168.13.2:49157",
                _ => "192.168.14.2:49158",
            }
            .into();
            r
        })
        .collect();
    let links: Vec<serde_json::Value> = v["links"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|l| keep(&l["a"]) && keep(&l["b"]))
        .map(|mut l| {
            // The default air blocks far–relayrx (the relay chapter); here they hear each
            // other like the other pairs.
            if l["gain_db"].is_null() {
                l["gain_db"] = (-20.0).into();
                l["cfo_hz"] = 120.0.into();
                l["delay_samples"] = 2.into();
            }
            l
        })
        .collect();
    v["radios"] = radios.into();
    v["links"] = links.into();
    v["control"] = RADIO_CTL.into();
    let p = dir.join("air-election.json");
    std::fs::write(&p, v.to_string()).expect("air config");
    p
}

/// Starts the air with the three terminals' radios (all in earshot).
fn start_air(bed: &mut Bed) {
    let cfg = write_air_config(&bed.dir);
    let mut air = bed.ferry_in("radio");
    air.args(["air", "--fast-init", "--config"])
        .arg(&cfg)
        .arg("--key")
        .arg(bed.key());
    bed.spawn("air", air).expect("air");
    std::thread::sleep(Duration::from_millis(400));
}

/// `ferry modem --workmode auto` in `host` (log `name.log`, socket `name.sock`).
fn spawn_auto(
    bed: &Bed,
    name: &str,
    host: &str,
    radio: &str,
    bind: &str,
    tun: &str,
    extra: &[&str],
) -> Child {
    let log = std::fs::File::create(bed.dir.join(format!("{name}.log"))).expect("log");
    let mut c = bed.ferry_in(host);
    c.args([
        "modem",
        "--workmode",
        "auto",
        "--radio-control",
        RADIO_CTL,
        "--radio",
        radio,
        "--bind",
        bind,
        "--tun",
        "ferry0",
        "--tun-addr",
        &format!("{tun}/24"),
        "--discovery-period-ms",
        "300",
    ])
    .args(extra)
    .arg("--key")
    .arg(bed.key())
    .arg("--control-socket")
    .arg(bed.dir.join(format!("{name}.sock")))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(log);
    c.spawn().expect("modem")
}

fn status(sock: &Path) -> Option<ModemStatus> {
    ModemClient::connect(sock, Duration::from_millis(500))
        .ok()?
        .status()
        .ok()
}

/// Among the live terminals: the node ID of the one master, if exactly one is master and
/// every other is its synchronised slave.
fn settled(socks: &[(u16, PathBuf)]) -> Option<u16> {
    let st: Vec<(u16, ModemStatus)> = socks
        .iter()
        .map(|(n, s)| Some((*n, status(s)?)))
        .collect::<Option<_>>()?;
    let masters: Vec<u16> = st
        .iter()
        .filter(|(_, s)| {
            s.election
                .as_ref()
                .is_some_and(|e| e.role == ElectedRoleName::Master)
        })
        .map(|(n, _)| *n)
        .collect();
    let [m] = masters[..] else {
        return None;
    };
    st.iter()
        .all(|(n, s)| {
            *n == m
                || (s.synced
                    && s.election
                        .as_ref()
                        .is_some_and(|e| e.role == ElectedRoleName::Slave && e.master == Some(m)))
        })
        .then_some(m)
}

fn wait_settled(socks: &[(u16, PathBuf)], limit: Duration) -> Option<(u16, Duration)> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if let Some(m) = settled(socks) {
            return Some((m, t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn logs(dir: &Path) -> String {
    TERMINALS
        .iter()
        .map(|t| {
            let l = std::fs::read_to_string(dir.join(format!("{}.log", t.0))).unwrap_or_default();
            let tail: Vec<&str> = l.lines().rev().take(25).collect();
            format!(
                "--- {} ---\n{}\n",
                t.0,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect()
}

#[test]
fn three_auto_terminals_elect_a_master_and_reelect_after_it_is_killed() {
    if !root_or_skip(
        "three_auto_terminals_elect_a_master_and_reelect_after_it_is_killed (namespaces, TUN)",
    ) {
        return;
    }
    let _one = serial();
    let prefix = format!("fe{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    start_air(&mut bed);
    let dir = bed.dir.clone();
    let t_start = Instant::now();
    let mut kids: Vec<(u16, Child)> = TERMINALS
        .iter()
        .map(|&(name, host, radio, bind, tun, node)| {
            (node, spawn_auto(&bed, name, host, radio, bind, tun, &[]))
        })
        .collect();
    let socks: Vec<(u16, PathBuf)> = TERMINALS
        .iter()
        .map(|t| (t.5, dir.join(format!("{}.sock", t.0))))
        .collect();

    // 1. Election: nobody is told a role.
    let Some((master, _)) = wait_settled(&socks, Duration::from_secs(10)) else {
        panic!(
            "no single master with two synced slaves in 10 s\n{}",
            logs(&dir)
        );
    };
    let elected = t_start.elapsed();
    let st: Vec<ModemStatus> = socks.iter().filter_map(|(_, s)| status(s)).collect();
    let claims: u64 = st
        .iter()
        .filter_map(|s| s.election.as_ref())
        .map(|e| e.claims)
        .sum();
    let step_downs: u64 = st
        .iter()
        .filter_map(|s| s.election.as_ref())
        .map(|e| e.step_downs)
        .sum();
    let changes_ms: Vec<Option<f64>> = st
        .iter()
        .map(|s| s.election.as_ref().and_then(|e| e.last_change_ms))
        .collect();
    let lost_before: u64 = st
        .iter()
        .filter(|s| s.node_id != master)
        .filter_map(|s| s.election.as_ref())
        .map(|e| e.masters_lost)
        .sum();
    eprintln!(
        "ELECTION master={master} elected_after_ms={} claims={claims} step_downs={step_downs} \
         role_change_ms(per modem, from its process start)={changes_ms:?}",
        elected.as_millis()
    );
    assert!(claims >= 1);
    assert_eq!(claims - step_downs, 1, "one claim survives");

    // 2. kill -9 of the master.
    let i = kids.iter().position(|(n, _)| *n == master).expect("master");
    let (_, mut victim) = kids.remove(i);
    let t_kill = Instant::now();
    victim.kill().expect("SIGKILL");
    let _ = victim.wait();
    let survivors: Vec<(u16, PathBuf)> = socks
        .iter()
        .filter(|(n, _)| *n != master)
        .cloned()
        .collect();
    // Still settled on the dead master until its slaves notice the silence: wait for a new one.
    let t0 = Instant::now();
    let mut re = None;
    while t0.elapsed() < Duration::from_secs(10) {
        if let Some(m) = settled(&survivors).filter(|m| *m != master) {
            re = Some((m, t_kill.elapsed()));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Some((new_master, reelected)) = re else {
        panic!("the survivors did not re-elect in 10 s\n{}", logs(&dir));
    };
    let lost: u64 = survivors
        .iter()
        .filter_map(|(_, s)| status(s))
        .filter_map(|s| s.election.map(|e| e.masters_lost))
        .sum();
    eprintln!(
        "RE-ELECTION master={new_master} after_kill_ms={} masters_lost={lost}",
        reelected.as_millis()
    );
    assert_eq!(
        lost - lost_before,
        2,
        "both survivors noticed their master's silence"
    );

    // 3. Pings between the survivors once route discovery has run.
    let t_routes = Instant::now();
    while t_routes.elapsed() < Duration::from_secs(5) {
        let active = survivors
            .iter()
            .all(|(_, s)| status(s).is_some_and(|s| s.state == ferry_modem::ModemState::Active));
        if active {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (slave, _) = survivors
        .iter()
        .find(|(n, _)| *n != new_master)
        .cloned()
        .expect("slave");
    let host = |node: u16| {
        TERMINALS
            .iter()
            .find(|t| t.5 == node)
            .map(|t| (t.1, t.4))
            .expect("terminal")
    };
    let (from_ns, _) = host(slave);
    let (_, to_addr) = host(new_master);
    let out = ferry_testbed::netns::command_in(&bed.ns(from_ns), "ping")
        .args(["-q", "-c", "20", "-i", "0.05", "-W", "2", to_addr])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    let got = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|x| x.split(' ').next())
        .and_then(|x| x.parse::<u32>().ok())
        .unwrap_or(0);
    eprintln!(
        "PINGS {} (node {slave}) -> {to_addr} (node {new_master}): {got}/20",
        from_ns
    );
    assert_eq!(got, 20, "pings between the survivors\n{}", logs(&dir));
    for (_, mut k) in kids {
        let _ = k.kill();
        let _ = k.wait();
    }
}

#[test]
fn a_migrated_master_stays_master_without_an_election() {
    if !root_or_skip("a_migrated_master_stays_master_without_an_election (namespaces, TUN)") {
        return;
    }
    let _one = serial();
    let prefix = format!("fm{}", std::process::id() % 1_000_000);
    let mut bed = Bed::up(Path::new(FERRY), &prefix).expect("testbed up");
    start_air(&mut bed);
    let dir = bed.dir.clone();
    let (s1, s2, s3) = (
        dir.join("s1.sock"),
        dir.join("s2.sock"),
        dir.join("s3.sock"),
    );
    // server1 alone claims the master role; server3 then joins as its slave.
    let mut kids = vec![spawn_auto(
        &bed,
        "s1",
        "server1",
        "pool",
        "192.168.10.11:0",
        "192.168.40.9",
        &[],
    )];
    let t0 = Instant::now();
    while !status(&s1)
        .and_then(|s| s.election)
        .is_some_and(|e| e.role == ElectedRoleName::Master)
    {
        assert!(t0.elapsed() < Duration::from_secs(5), "{}", logs(&dir));
        std::thread::sleep(Duration::from_millis(20));
    }
    kids.push(spawn_auto(
        &bed,
        "s3",
        "server3",
        "far",
        "192.168.13.1:0",
        "192.168.40.8",
        &[],
    ));
    kids.push(spawn_auto(
        &bed,
        "s2",
        "server2",
        "pool",
        "192.168.10.12:40000",
        "192.168.40.9",
        &["--start", "wait", "--forward-bind", "10.99.0.2:7700"],
    ));
    let t0 = Instant::now();
    while !(status(&s1).is_some_and(|s| s.state == ModemState::Active)
        && status(&s3).is_some_and(|s| {
            s.state == ModemState::Active && s.election.is_some_and(|e| e.master == Some(9))
        }))
    {
        assert!(t0.elapsed() < Duration::from_secs(8), "{}", logs(&dir));
        std::thread::sleep(Duration::from_millis(50));
    }
    // The Control carries the role: still auto, the master elected is server1's node.
    let mut src = ModemClient::connect(&s1, Duration::from_secs(2)).expect("s1");
    let mut dst = ModemClient::connect(&s2, Duration::from_secs(2)).expect("s2");
    let control = src
        .request(&ModemRequest::GetControl)
        .expect("get_control")
        .result
        .expect("control");
    assert_eq!(control["workmode"], 3, "{control}");
    assert_eq!(control["elected_master"], 9, "{control}");
    let routes = src
        .request(&ModemRequest::GetRoutes)
        .expect("get_routes")
        .result
        .expect("routes");
    for req in [
        serde_json::json!({"cmd": "set_control", "control": control}),
        serde_json::json!({"cmd": "set_routes", "routes": routes}),
    ] {
        let r = dst.request_line(&req.to_string()).expect("request");
        assert!(r.ok, "{r:?}");
    }
    assert!(dst.request(&ModemRequest::Shadow).expect("shadow").ok);
    let t0 = Instant::now();
    while !dst
        .status()
        .is_ok_and(|s| s.state == ModemState::Shadow && s.counters.subframes > 300)
    {
        assert!(t0.elapsed() < Duration::from_secs(5), "{}", logs(&dir));
        std::thread::sleep(Duration::from_millis(50));
    }
    let now = src.status().expect("status").sample_time;
    let t = (now / 1920 + 200) * 1920;
    let token = ferry_migrate::ForwardToken::random();
    let r = dst
        .request(&ModemRequest::TakeoverAt {
            at_sample: t,
            forward_token: Some(token.clone()),
        })
        .expect("takeover_at");
    assert!(r.ok, "{r:?}");
    let r = src
        .request(&ModemRequest::ReleaseAt {
            at_sample: t,
            forward_to: "10.99.0.2:7700".parse().expect("addr"),
            forward_token: Some(token),
        })
        .expect("release_at");
    assert!(r.ok, "{r:?}");
    let out = bed
        .ferry_in("server1")
        .args(["radio", "--control", RADIO_CTL, "--key"])
        .arg(bed.key())
        .args([
            "switch-at",
            "pool",
            "192.168.10.12:40000",
            "--at",
            &t.to_string(),
        ])
        .output()
        .expect("ferry radio switch-at");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Well past T and past a master-lost interval: the destination serves as the master it
    // was told it is, and the slave never listened again.
    std::thread::sleep(Duration::from_millis(800));
    let out = ferry_testbed::netns::command_in(&bed.ns("server3"), "ping")
        .args(["-q", "-c", "20", "-i", "0.05", "-W", "2", "192.168.40.9"])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    let d = dst.status().expect("destination status");
    let f = status(&s3).expect("slave status");
    eprintln!(
        "MIGRATED destination: {:?}\nslave: {:?}",
        d.election, f.election
    );
    assert_eq!(d.state, ModemState::Active, "{}", logs(&dir));
    let de = d.election.expect("destination election");
    assert_eq!(de.role, ElectedRoleName::Master);
    assert_eq!(de.master, Some(9));
    assert_eq!(de.claims, 0, "resumed, not elected");
    let fe = f.election.expect("slave election");
    assert_eq!(fe.master, Some(9));
    assert_eq!(fe.masters_lost, 0, "the slave never lost its master");
    assert!(
        text.contains(" 20 received"),
        "pings after the migration: {text}\n{}",
        logs(&dir)
    );
    for mut k in kids {
        let _ = k.kill();
        let _ = k.wait();
    }
}

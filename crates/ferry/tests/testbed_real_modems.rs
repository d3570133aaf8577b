//! The thesis session with every real piece in the namespace testbed (needs root; skipped
//! loudly otherwise): `ferry air` in the radio namespace (address-bound pool radio
//! 192.168.10.2 and far radio 192.168.13.2), the far-end `ferry modem` (slave) in server3,
//! `ferry agent` in server2 and the `ferry ctl` console in server1, both supervising real
//! `ferry modem` masters on the legacy radio. `DS, M, MB, KL, KR, q` must all succeed,
//! 192.168.10.1 must sit on exactly the right server after each, the TUN address must follow
//! the task, and nothing may be left running. A ping from server3 to the task's TUN address
//! must be answered before M, by server2 after M, and by server1 again after MB; the losses
//! around each migration are printed.

use ferry_testbed::netns::{self, command_in};
use ferry_testbed::{root_or_skip, Topology};
use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

struct Teardown(String, Vec<Child>);
impl Drop for Teardown {
    fn drop(&mut self) {
        for c in &mut self.1 {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = netns::down(&self.0);
    }
}

fn holds(ns: &str, iface: &str, addr: &str) -> bool {
    command_in(ns, "ip")
        .args(["-4", "-o", "addr", "show", "dev", iface])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {addr}/")))
        .unwrap_or(false)
}

#[test]
fn thesis_session_with_real_modems_in_the_testbed() {
    if !root_or_skip(
        "thesis_session_with_real_modems_in_the_testbed (agents and modems in network namespaces)",
    ) {
        return;
    }
    let prefix = format!("fm{}", std::process::id() % 1_000_000);
    let topo = Topology::thesis(&prefix).expect("topology");
    let mut td = Teardown(prefix.clone(), Vec::new());
    ferry_testbed::up(&topo).expect("testbed up");
    let ns = |h: &str| topo.host(h).expect("host").ns.clone();
    let dir = std::env::temp_dir().join(format!("ferry-tb-real-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = dir.join("agent.key");
    std::fs::write(
        &key,
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
    )
    .expect("key");

    // The radio room: the default air with only the pool and far radios, address-bound.
    let out = std::process::Command::new(FERRY)
        .args(["air", "--print-default-config"])
        .output()
        .expect("air config");
    let mut cfg: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let radios: Vec<serde_json::Value> = cfg["radios"]
        .as_array()
        .expect("radios")
        .iter()
        .filter(|r| r["name"] == "pool" || r["name"] == "far")
        .cloned()
        .map(|mut r| {
            let pool = r["name"] == "pool";
            r["init_ms"] = 0.into();
            r["fronthaul"] = (if pool {
                "192.168.10.2:49156"
            } else {
                "192.168.13.2:49157"
            })
            .into();
            // Only the pool radio is address-bound (the thesis' N210); the far end's radio
            // is reached through link control.
            r["legacy_host"] = if pool {
                "192.168.10.1:49200".into()
            } else {
                serde_json::Value::Null
            };
            r
        })
        .collect();
    cfg["radios"] = radios.into();
    let links: Vec<serde_json::Value> = cfg["links"]
        .as_array()
        .expect("links")
        .iter()
        .filter(|l| (l["a"] == "pool" && l["b"] == "far") || (l["a"] == "far" && l["b"] == "pool"))
        .cloned()
        .collect();
    cfg["links"] = links.into();
    cfg["control"] = "tcp://10.99.0.10:5550".into();
    let air_cfg = dir.join("air.json");
    std::fs::write(&air_cfg, cfg.to_string()).expect("air.json");
    let quiet = |mut c: std::process::Command| {
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    };
    let mut c = command_in(&ns("radio"), FERRY);
    c.arg("air").arg("--config").arg(&air_cfg);
    td.1.push(quiet(c));
    let mut c = command_in(&ns("server3"), FERRY);
    c.args([
        "modem",
        "--workmode",
        "1",
        "--radio",
        "far",
        "--radio-control",
        "tcp://10.99.0.10:5550",
        "--bind",
        "192.168.13.1:49200",
        "--tun-addr",
        "192.168.40.8/24",
    ]);
    c.arg("--control-socket").arg(dir.join("far.sock"));
    td.1.push(quiet(c));

    let modem_args: Vec<String> = [
        "modem",
        "--workmode=0",
        "--legacy-radio=192.168.10.2:49156",
        "--bind=0.0.0.0:49200",
    ]
    .iter()
    .map(|a| format!("--modem-arg={a}"))
    .collect();
    let host = |c: &mut std::process::Command, name: &str, parked: &str| {
        c.arg("--key")
            .arg(&key)
            .args([
                "--parked",
                parked,
                "--radio",
                "legacy",
                "--usrp-in-modem",
                "--tun",
                "ferry0",
                "--modem",
                FERRY,
            ])
            .args(&modem_args)
            .arg("--modem-socket")
            .arg(dir.join(format!("{name}.sock")));
    };
    let mut c = command_in(&ns("server2"), FERRY);
    c.args(["agent", "--bind", "tcp://10.99.0.2:5555"]);
    host(&mut c, "s2", "192.168.20.2");
    td.1.push(quiet(c));
    std::thread::sleep(Duration::from_millis(500));

    let mut c = command_in(&ns("server1"), FERRY);
    c.arg("ctl");
    host(&mut c, "s1", "192.168.20.1");
    c.args([
        "--peer",
        "server2=tcp://10.99.0.2:5555",
        "--remote",
        "server2",
        "console",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut console = c.spawn().expect("ctl console");
    let mut stdin = console.stdin.take().expect("stdin");
    let (s1, s2) = (ns("server1"), ns("server2"));
    let mut seen = Vec::new();
    let mut ping: Option<(Child, Instant)> = None;
    let mut sent_at = Vec::new();
    // Feed one line at a time and look at the addresses in between; ping from server3 once
    // the task runs, through M and MB.
    for (line, wait_ms) in [
        ("DS", 2500),
        ("M", 3000),
        ("MB", 3000),
        ("KL", 800),
        ("KR", 800),
    ] {
        if line == "M" {
            // The far end's cold cell search and route discovery take a while (longer on a
            // loaded machine): wait until one ping gets through before migrating.
            let t0 = Instant::now();
            while !command_in(&ns("server3"), "ping")
                .args(["-c", "1", "-W", "1", "192.168.40.9"])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                let far = std::os::unix::net::UnixStream::connect(dir.join("far.sock"))
                    .ok()
                    .map(|mut sock| {
                        use std::io::{BufRead, BufReader};
                        let _ = sock.write_all(b"{\"cmd\":\"status\"}\n");
                        let mut l = String::new();
                        let _ = BufReader::new(sock).read_line(&mut l);
                        l
                    });
                assert!(
                    t0.elapsed() < Duration::from_secs(30),
                    "no ping through the task after DS in 30 s; far-end modem: {far:?}"
                );
            }
            println!("first ping through after {:?}", t0.elapsed());
            let mut p = command_in(&ns("server3"), "ping");
            p.args(["-i", "0.1", "-W", "1", "192.168.40.9"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            ping = Some((p.spawn().expect("ping"), Instant::now()));
            std::thread::sleep(Duration::from_millis(1500));
        }
        if line == "KL" {
            if let Some((p, _)) = &ping {
                // SIGINT: ping prints its summary and exits.
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(p.id() as i32, libc::SIGINT) };
            }
        }
        if let Some((_, t0)) = &ping {
            sent_at.push((line, t0.elapsed()));
        }
        writeln!(stdin, "{line}").expect("write");
        stdin.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(wait_ms));
        seen.push((
            line,
            holds(&s1, "eth3", "192.168.10.1"),
            holds(&s2, "eth3", "192.168.10.1"),
            holds(&s1, "ferry0", "192.168.40.9"),
            holds(&s2, "ferry0", "192.168.40.9"),
        ));
    }
    writeln!(stdin, "q").expect("write");
    drop(stdin);
    let out = console.wait_with_output().expect("console output");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    let (ping, _) = ping.expect("ping ran");
    let pings =
        String::from_utf8_lossy(&ping.wait_with_output().expect("ping").stdout).into_owned();
    let got: Vec<u64> = pings
        .split("icmp_seq=")
        .skip(1)
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect();
    // ping sends seq n at about (n - 1) * 100 ms after it started.
    let seq_at = |line: &str| {
        sent_at
            .iter()
            .find(|(l, _)| *l == line)
            .map(|(_, d)| d.as_millis() as u64 / 100 + 1)
            .expect("line")
    };
    let (m, mb, kl) = (seq_at("M"), seq_at("MB"), seq_at("KL"));
    let lost = |from: u64, to: u64| (from..to).filter(|s| !got.contains(s)).count();
    println!(
        "ping from server3: {}",
        pings.lines().rev().take(2).collect::<Vec<_>>().join(" | ")
    );
    println!(
        "pings lost: before M {} of {}, M..MB {} of {}, MB..KL {} of {}",
        lost(1, m),
        m - 1,
        lost(m, mb),
        mb - m,
        lost(mb, kl),
        kl - mb
    );
    println!("(line, s1 eth3 .10.1, s2 eth3 .10.1, s1 tun .40.9, s2 tun .40.9): {seen:?}");
    // Traffic flows before M, again on server2 after M, and on server1 after MB.
    for (what, from, to) in [
        ("before M", 1, m),
        ("after M (server2)", m + 20, mb),
        ("after MB (server1)", mb + 20, kl),
    ] {
        assert!(
            (from..to).any(|s| got.contains(&s)),
            "no ping answered {what} (seq {from}..{to}): {pings}"
        );
    }
    for cmd in ["DS", "M", "MB", "KL", "KR", "q"] {
        assert!(
            text.contains(&format!("{cmd} succeeded")),
            "{cmd} did not succeed:\n{text}"
        );
    }
    assert_eq!(
        seen,
        [
            ("DS", true, false, true, false),
            ("M", false, true, false, true),
            ("MB", true, false, true, false),
            ("KL", false, false, false, false),
            ("KR", false, false, false, false),
        ]
    );
    // Nothing left: the agent exited on q; no ferry process in the pool namespaces.
    let t0 = Instant::now();
    while !(netns::pids_in(&s1).is_empty() && netns::pids_in(&s2).is_empty()) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "processes left: {:?} {:?}",
            netns::pids_in(&s1),
            netns::pids_in(&s2)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(td);
    let _ = std::fs::remove_dir_all(&dir);
}

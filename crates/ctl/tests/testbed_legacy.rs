//! The thesis' legacy migration in the namespace testbed (needs root; skipped loudly
//! otherwise): a real `ferry air` (address-bound radio 192.168.10.2 streaming to whoever
//! holds 192.168.10.1) in the radio namespace, an agent in server2, the console's own host in
//! server1. DS on server1, then M: 192.168.10.1 moves from server1 to server2 and is never
//! on both; the stream reaches server2's USRP object; MB brings it back; KL and KR leave no
//! process behind.

mod common;

use common::*;
use ferry_agent::{Addressing, AgentServer, AgentSettings, HostConfig, HostExec, RadioAccess};
use ferry_ctl::{AgentClient, ConsoleOptions, Driver};
use ferry_migrate::{AgentConfig, LegacyConfig, LocalOp, Outcome};
use ferry_netif::{enter_netns, Netlink};
use ferry_radio::config::AirConfig;
use ferry_radio::AirServer;
use ferry_testbed::{netns, root_or_skip, Topology};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const RATE: u32 = 192_000;
const ACTIVE: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 1);

struct Teardown(String);
impl Drop for Teardown {
    fn drop(&mut self) {
        let _ = netns::down(&self.0);
    }
}

fn host(dir: &std::path::Path, name: &str, parked: Ipv4Addr) -> HostConfig {
    let mut h = dry_host(dir, name, &[]);
    h.addressing = Addressing::Netlink;
    h.parked_addr = parked;
    h.radio = RadioAccess::Legacy {
        radio: "192.168.10.2:49156".parse().expect("addr"),
        bind: "0.0.0.0:49200".parse().expect("addr"),
        rate_hz: RATE,
    };
    h
}

#[test]
fn legacy_m_moves_the_radio_address_between_pool_servers() {
    if !root_or_skip(
        "legacy_m_moves_the_radio_address_between_pool_servers (agents in the namespace testbed)",
    ) {
        return;
    }
    let prefix = format!("fa{}", std::process::id() % 1_000_000);
    let _down = Teardown(prefix.clone());
    let topo = Topology::thesis(&prefix).expect("topology");
    ferry_testbed::up(&topo).expect("testbed up");
    let ns = |h: &str| topo.host(h).expect("host").ns.clone();
    let dir = tmpdir("testbed");

    // The radio room: one address-bound radio.
    let mut cfg = AirConfig::default().with_init_ms(0);
    cfg.radios.truncate(1);
    cfg.links.clear();
    cfg.sample_rate_hz = RATE;
    cfg.tick_samples = 192;
    cfg.radios[0].rf.rate_hz = RATE;
    cfg.radios[0].fronthaul = "192.168.10.2:49156".parse().expect("addr");
    cfg.radios[0].legacy_host = Some("192.168.10.1:49200".parse().expect("addr"));
    cfg.control = format!("ipc://{}", dir.join("air.ipc").display());
    let rns = ns("radio");
    let air = AirServer::spawn(cfg, move || {
        enter_netns(&rns).map_err(std::io::Error::other)
    })
    .expect("air in the radio namespace");

    // server2's agent on the mgmt LAN.
    let s2 = host(&dir, "s2", Ipv4Addr::new(192, 168, 20, 2));
    let stop = Arc::new(AtomicBool::new(false));
    let (s2ns, stop2, s2cfg) = (ns("server2"), stop.clone(), s2.clone());
    let agent = std::thread::spawn(move || {
        enter_netns(&s2ns).expect("enter server2");
        let server = AgentServer::bind(AgentSettings {
            name: ferry_ctl::DEFAULT_AGENT_NAME.into(),
            endpoint: "tcp://10.99.0.2:5555".into(),
            key: key(),
            window_ms: 30_000,
            lease_ms: ferry_migrate::lease::LEASE_MS,
            agent: AgentConfig {
                parked_addr: s2cfg.parked_addr,
                ..AgentConfig::default()
            },
            host: s2cfg,
        })
        .expect("agent binds");
        server.serve(&stop2)
    });

    // Who holds 192.168.10.1, sampled every ~1 ms through netlink in both namespaces.
    let (n1, n2) = (ns("server1"), ns("server2"));
    let watching = Arc::new(AtomicBool::new(true));
    let w = watching.clone();
    let watcher = std::thread::spawn(move || {
        enter_netns(&n1).expect("ns1");
        let a = Netlink::new().expect("netlink 1");
        enter_netns(&n2).expect("ns2");
        let b = Netlink::new().expect("netlink 2");
        let (mut samples, mut both, mut a_held, mut b_held) = (0u64, 0u64, 0u64, 0u64);
        while w.load(Ordering::Relaxed) {
            // b, a, b: a sample counts as "both" only if b held before and after a did.
            let b1 = b.has_ipv4("eth3", ACTIVE).unwrap_or(false);
            let a1 = a.has_ipv4("eth3", ACTIVE).unwrap_or(false);
            let b2 = b.has_ipv4("eth3", ACTIVE).unwrap_or(false);
            samples += 1;
            both += u64::from(b1 && a1 && b2);
            a_held += u64::from(a1);
            b_held += u64::from(b1 && b2);
            std::thread::sleep(Duration::from_millis(1));
        }
        (samples, both, a_held, b_held)
    });

    // The console on server1.
    let s1 = host(&dir, "s1", Ipv4Addr::new(192, 168, 20, 1));
    let s1ns = ns("server1");
    let console = std::thread::spawn(move || {
        enter_netns(&s1ns).expect("enter server1");
        let mut h = HostExec::new(s1);
        h.perform(&LocalOp::SetTunIp(Ipv4Addr::new(192, 168, 40, 9)))
            .expect("tun address");
        let remote = AgentClient::new("tcp://10.99.0.2:5555", key(), Duration::from_secs(15));
        let mut driver = Driver::new(Some(h), None, Some(remote), None);
        let opts = ConsoleOptions {
            legacy: LegacyConfig {
                parked_addr: Ipv4Addr::new(192, 168, 20, 1),
                ..LegacyConfig::default()
            },
            json: false,
            prompt: false,
        };
        let mut out = Vec::new();
        let mut outcomes: Vec<Outcome> = Vec::new();
        let mut holders = Vec::new();
        for line in ["DS", "M", "MB", "M", "KR", "KL"] {
            let (o, _) = ferry_ctl::run_line(line, &mut driver, &opts, &mut out).expect("line");
            outcomes.extend(o);
            let local = driver
                .host
                .as_mut()
                .expect("host")
                .eth3_addr()
                .expect("eth3");
            holders.push((line, local));
        }
        let _ = ferry_ctl::run_line("end", &mut driver, &opts, &mut out);
        (
            outcomes,
            holders,
            String::from_utf8_lossy(&out).into_owned(),
        )
    });
    let (outcomes, holders, text) = console.join().expect("console thread");
    watching.store(false, Ordering::Relaxed);
    let (samples, both, a_held, b_held) = watcher.join().expect("watcher");
    stop.store(true, Ordering::Relaxed);
    let summary = agent.join().expect("agent thread");
    println!("{text}");
    println!(
        "holder samples: {samples}, server1 held {a_held}, server2 held {b_held}, both {both}"
    );

    let got: Vec<(&str, bool)> = outcomes
        .iter()
        .map(|o| (o.command.as_str(), o.ok))
        .collect();
    assert_eq!(
        got,
        [
            ("DS", true),
            ("M", true),
            ("MB", true),
            ("M", true),
            ("KR", true),
            ("KL", true)
        ],
        "{text}"
    );
    let parked1 = Some(Ipv4Addr::new(192, 168, 20, 1));
    assert_eq!(
        holders,
        [
            ("DS", Some(ACTIVE)),
            ("M", parked1),
            ("MB", Some(ACTIVE)),
            ("M", parked1),
            ("KR", parked1),
            ("KL", parked1)
        ]
    );
    assert_eq!(both, 0, "192.168.10.1 seen on both pool servers");
    assert!(
        a_held > 0 && b_held > 0,
        "the address never moved ({a_held}, {b_held})"
    );
    assert_eq!(summary.unauthorized, 0);
    // Linking on server2 needs the radio's stream to arrive there: the legacy link step
    // succeeded only if it did (see HostExec::link_usrp).
    let m = &outcomes[1];
    println!("legacy M timeline:\n{}", m.timeline.render_table());
    // Nothing left behind: no modem, no process in the pool namespaces.
    for name in ["s1", "s2"] {
        if let Some(pid) = modem_pid(&dir.join(format!("{name}.sock"))) {
            assert!(!alive(pid), "{name}'s modem {pid} left running");
        }
    }
    for h in ["server1", "server2"] {
        assert!(netns::pids_in(&ns(h)).is_empty(), "processes left in {h}");
    }
    drop(air);
    let _ = std::fs::remove_dir_all(&dir);
}

//! `ferry ctl protect --auto`'s shell against real parts on 127.0.0.1: two dry agents with
//! stand-in modems and a real `ferry air` link control (liveness off: the failover is
//! caused by a `primary_dead` report, so it happens exactly once). The controller protects
//! the task at start, and after the failover stops the deposed primary's modem and
//! protects the new primary with it; an interrupt then stops the controller and leaves the
//! protection in place.

mod common;

use common::*;
use ferry_ctl::auto_protect::{self, AgentFactory, AutoProtect, RadioFactory};
use ferry_ctl::RadioControl;
use ferry_fronthaul::control::Request as RadioRequest;
use ferry_migrate::reprotect::{ReprotectConfig, Server};
use ferry_radio::config::AirConfig;
use ferry_radio::{AirServer, ControlClient};
use serde_json::json;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn the_controller_protects_and_reprotects_after_a_failover() {
    let dir = tmpdir("auto");
    let mut cfg = AirConfig::default().with_init_ms(0);
    cfg.radios.truncate(1);
    cfg.links.clear();
    cfg.sample_rate_hz = 192_000;
    cfg.tick_samples = 192;
    cfg.liveness_subframes = 0;
    cfg.radios[0].rf.rate_hz = 192_000;
    cfg.radios[0].fronthaul = "127.0.0.1:0".parse().expect("addr");
    cfg.control = format!("ipc://{}", dir.join("air.ipc").display());
    let radio = cfg.radios[0].name.clone();
    let air = AirServer::spawn(cfg, || Ok(())).expect("air");
    let ctl = ControlClient::new(air.control.clone(), Duration::from_secs(1));
    let fh1 = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let fh2 = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let (ep1, ep2) = (fh1.local_addr().expect("a"), fh2.local_addr().expect("a"));
    ctl.call(&RadioRequest::Link {
        radio: radio.clone(),
        endpoint: ep1,
    })
    .expect("link server1");

    let a1 = start_named_agent("server1", "tcp://127.0.0.1:0", dry_host(&dir, "s1", &[]));
    let a2 = start_named_agent("server2", "tcp://127.0.0.1:0", dry_host(&dir, "s2", &[]));
    let mut c1 = a1.client(5_000);
    for body in [
        json!({"cmd":"set_tun_ip","tun_ip":"192.168.40.9"}),
        json!({"cmd":"start_d2d","control_flag":0}),
    ] {
        let r = c1
            .call_body(body.to_string().as_bytes(), Duration::from_secs(5))
            .expect("reply");
        assert!(r.ok, "{r:?}");
    }
    let endpoints = [
        ("server1".to_string(), a1.endpoint.clone()),
        ("server2".to_string(), a2.endpoint.clone()),
    ];
    let agents: AgentFactory = Box::new(move |name: &str| {
        let (n, e) = endpoints
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("no agent {name}"))?;
        Ok(ferry_ctl::AgentClient::named(
            n.clone(),
            e.clone(),
            key(),
            Duration::from_secs(2),
        ))
    });
    let control = air.control.clone();
    let r = radio.clone();
    let radios: RadioFactory = Box::new(move || RadioControl {
        client: ControlClient::new(control.clone(), Duration::from_millis(500)),
        radio: r.clone(),
    });
    let core = ReprotectConfig::new(
        radio.clone(),
        vec![
            Server {
                name: "server1".into(),
                endpoint: ep1.to_string(),
            },
            Server {
                name: "server2".into(),
                endpoint: ep2.to_string(),
            },
        ],
    );
    let opts = AutoProtect {
        core,
        poll: Duration::from_millis(10),
        relay: false,
        stop_timeout: Duration::from_millis(1500),
        health_every: Duration::from_millis(100),
        health_timeout: Duration::from_millis(500),
        agents: Arc::new(agents),
        radio: Arc::new(radios),
    };
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = lines.clone();
    let controller = std::thread::spawn(move || {
        auto_protect::run(opts, &move |l| {
            println!("{l}");
            seen.lock().expect("lines").push(l);
        })
    });

    let wait_for = |what: &str, ok: &dyn Fn(&ferry_fronthaul::control::StatusReport) -> bool| {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, st) = ctl.status(&radio).expect("status");
            if ok(&st) {
                return st;
            }
            assert!(Instant::now() < end, "{what}: {st:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("server1 protected by server2", &|st| {
        st.linked == Some(ep1) && st.arbiter.standby == Some(ep2)
    });
    // The controller polls the radio every 10 ms; a failover before it has seen the
    // protection would hide the first one from it (it would only see epoch 2 unprotected).
    let end = Instant::now() + Duration::from_secs(20);
    while !lines
        .lock()
        .expect("lines")
        .iter()
        .any(|l| l.starts_with("protected: server1 by server2"))
    {
        assert!(
            Instant::now() < end,
            "the controller never saw the protection"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // server1's modem dies (as the agent's death watch would report it).
    ctl.call(&RadioRequest::PrimaryDead {
        radio: radio.clone(),
        endpoint: ep1,
    })
    .expect("primary_dead");
    let st = wait_for("server2 protected by server1", &|st| {
        st.linked == Some(ep2) && st.arbiter.standby == Some(ep1)
    });
    assert_eq!(st.arbiter.failovers, 1);
    ferry_ctl::interrupt::request();
    let summary = controller.join().expect("controller");
    let log = lines.lock().expect("lines").join("\n");
    assert_eq!(summary.reprotected.len(), 2, "{log}");
    assert_eq!(
        (
            summary.reprotected[1].serving.as_str(),
            summary.reprotected[1].standby.as_str()
        ),
        ("server2", "server1")
    );
    assert!(log.contains("server1: stopping its modem"), "{log}");
    assert_eq!(summary.counts.protects, 2, "{log}");
    assert_eq!(summary.counts.protects_failed, 0, "{log}");
    // Stopping left the protection in place.
    let (_, st) = ctl.status(&radio).expect("status");
    assert_eq!((st.linked, st.arbiter.standby), (Some(ep2), Some(ep1)));
    // Both servers run a modem: server2 serving, server1 the hot standby.
    for c in [a1.client(2_000), a2.client(2_000)] {
        let mut c = c;
        let s = c
            .call(&ferry_migrate::Request::Status)
            .expect("status")
            .status()
            .expect("status result");
        assert!(s.d2d, "{s:?}");
    }
    drop((a1, a2, air));
    let _ = std::fs::remove_dir_all(&dir);
}

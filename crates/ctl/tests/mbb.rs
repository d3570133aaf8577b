//! `ferry ctl`'s make-before-break driver against real parts on 127.0.0.1: two agents (dry
//! addresses, stand-in modems whose armed cutover fires 40 ms later) and a real `ferry air`
//! whose link control shadows and switches the radio at the chosen sample T.

mod common;

use common::*;
use ferry_ctl::{Driver, RadioControl};
use ferry_fronthaul::control::Request as RadioRequest;
use ferry_migrate::{mbb, MbbConfig, Peer};
use ferry_radio::config::AirConfig;
use ferry_radio::{AirServer, ControlClient};
use serde_json::json;
use std::net::UdpSocket;
use std::time::Duration;

#[test]
fn make_before_break_moves_the_radio_link_at_t() {
    let dir = tmpdir("mbb");
    let mut cfg = AirConfig::default().with_init_ms(0);
    cfg.radios.truncate(1);
    cfg.links.clear();
    cfg.sample_rate_hz = 192_000;
    cfg.tick_samples = 192;
    cfg.radios[0].rf.rate_hz = 192_000;
    cfg.radios[0].fronthaul = "127.0.0.1:0".parse().expect("addr");
    cfg.control = format!("ipc://{}", dir.join("air.ipc").display());
    let radio = cfg.radios[0].name.clone();
    let air = AirServer::spawn(cfg, || Ok(())).expect("air");
    let ctl = ControlClient::new(air.control.clone(), Duration::from_secs(1));
    // The two modems' fronthaul sockets (nobody needs to read them for the switch).
    let src_fh = UdpSocket::bind("127.0.0.1:0").expect("src socket");
    let dst_fh = UdpSocket::bind("127.0.0.1:0").expect("dst socket");
    let (src_ep, dst_ep) = (
        src_fh.local_addr().expect("a"),
        dst_fh.local_addr().expect("a"),
    );
    ctl.call(&RadioRequest::Link {
        radio: radio.clone(),
        endpoint: src_ep,
    })
    .expect("link the source");

    let src = start_agent("tcp://127.0.0.1:0", dry_host(&dir, "src", &[]));
    let dst = start_agent("tcp://127.0.0.1:0", dry_host(&dir, "dst", &[]));
    let mut s = src.client(5_000);
    for body in [
        json!({"cmd":"set_tun_ip","tun_ip":"192.168.40.9"}),
        json!({"cmd":"start_d2d","control_flag":0}),
    ] {
        let r = s
            .call_body(body.to_string().as_bytes(), Duration::from_secs(5))
            .expect("reply");
        assert!(r.ok, "{r:?}");
    }

    let mut driver = Driver::new(
        None,
        Some(src.client(2_000)),
        Some(dst.client(2_000)),
        Some(RadioControl {
            client: ControlClient::new(air.control.clone(), Duration::from_millis(500)),
            radio: radio.clone(),
        }),
    );
    let cfg = MbbConfig::new(
        Peer::Local,
        Peer::Remote,
        dst_ep.to_string(),
        "127.0.0.1:7000".parse().expect("a"),
    );
    let seq = mbb::migrate(cfg, driver.now());
    let mut reports = Vec::new();
    let o = driver.run(seq, &mut |r| reports.push(r.text.clone()));
    println!("{}\n{}", reports.join("\n"), o.timeline.render_table());
    assert!(o.ok, "{}", o.summary);
    for phase in mbb::MBB_PHASES.iter().filter(|p| !p.contains("set_route")) {
        assert!(
            o.timeline.duration_of(phase).is_some(),
            "phase {phase} missing"
        );
    }
    assert_eq!(o.timeline.interruption_ms, 0);
    // The radio now streams to the destination, and no switch is left pending.
    let (_, st) = ctl.status(&radio).expect("radio status");
    assert_eq!(st.linked, Some(dst_ep));
    assert_eq!(st.pending_switch, None);
    // Source stopped and cleaned; destination serving with the task's tun address.
    let st = |c: &mut ferry_ctl::AgentClient| {
        c.call(&ferry_migrate::Request::Status)
            .expect("status")
            .status()
            .expect("status result")
    };
    let (a, b) = (st(&mut src.client(2_000)), st(&mut dst.client(2_000)));
    assert!(!a.d2d && b.d2d, "src {a:?} dst {b:?}");
    assert_eq!(b.tun_ip, Some("192.168.40.9".parse().expect("ip")));
    assert_eq!(
        b.modem.map(|m| m.mode),
        Some(ferry_migrate::ModemMode::Active)
    );
    drop((src, dst, air));
    let _ = std::fs::remove_dir_all(&dir);
}

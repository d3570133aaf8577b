//! `ferry agent` over real ZeroMQ on 127.0.0.1 (dry addresses, the stand-in modem as a real
//! child process): every command's reply shape, unknown / malformed / unauthenticated
//! requests, modem supervision, and the agent serving on after each.

mod common;

use common::*;
use ferry_migrate::auth;
use ferry_migrate::{ErrorKind, Reply};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn call(c: &mut ferry_ctl::AgentClient, v: Value) -> Reply {
    c.call_body(v.to_string().as_bytes(), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn control() -> Value {
    json!({"workmode":1,"phy_cell_ID":301,"group_ID":100,"cell_ID":1,"CPtype":0,"BW":5,
           "RBIdx":25,"duplexMode":0,"numAntennaTX":1,"numAntennaRX":1,"DLULAssign":1,
           "trans_mode":1,"type_mode":2,"RNTI":4660})
}

fn status(c: &mut ferry_ctl::AgentClient) -> Value {
    let r = call(c, json!({"cmd":"status"}));
    assert!(r.ok, "{r:?}");
    r.result.expect("status result")
}

#[test]
fn every_command_answers_in_the_documented_shape() {
    let dir = tmpdir("shape");
    let host = dry_host(&dir, "m", &[]);
    let sock = dir.join("m.sock");
    let a = start_agent("tcp://127.0.0.1:0", host);
    let mut c = a.client(10_000);

    let st = status(&mut c);
    assert_eq!(st["d2d"], false);
    assert_eq!(st["eth3"], "192.168.20.2");
    let r = call(&mut c, json!({"cmd":"get_control"}));
    assert_eq!(
        (r.ok, r.kind, r.error.as_deref()),
        (false, Some(ErrorKind::Failed), Some("no Control yet"))
    );
    let r = call(&mut c, json!({"cmd":"get_tun_ip"}));
    assert_eq!(r.kind, Some(ErrorKind::Failed));
    let r = call(&mut c, json!({"cmd":"set_tun_ip","tun_ip":"192.168.40.9"}));
    assert!(r.ok && r.result.is_none(), "{r:?}");
    let r = call(&mut c, json!({"cmd":"get_tun_ip"}));
    assert_eq!(r.result, Some(json!("192.168.40.9")));
    let r = call(
        &mut c,
        json!({"cmd":"set_route","route_list":[[3,1],[4,1]]}),
    );
    assert!(r.ok);
    assert_eq!(
        call(&mut c, json!({"cmd":"get_route"})).result,
        Some(json!([[3, 1], [4, 1]]))
    );

    // Cold start: a real child process, then the collector fills Control.
    let r = call(&mut c, json!({"cmd":"start_d2d","control_flag":0}));
    assert!(r.ok, "{r:?}");
    let pid = modem_pid(&sock).expect("modem wrote its pid");
    assert!(alive(pid));
    let st = status(&mut c);
    assert_eq!(st["d2d"], true);
    assert_eq!(st["modem"]["mode"], "active");
    let t0 = Instant::now();
    let ctl = loop {
        let r = call(&mut c, json!({"cmd":"get_control"}));
        if r.ok {
            break r.result.expect("Control");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "collector never delivered"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        ctl["phy_cell_ID"], 7,
        "the modem's own Control, read by the collector"
    );
    // A second start while one runs fails; the first keeps running.
    let r = call(&mut c, json!({"cmd":"start_d2d","control_flag":0}));
    assert_eq!(r.kind, Some(ErrorKind::Failed), "{r:?}");
    assert!(alive(pid));

    for cmd in ["make_usrp", "link_usrp"] {
        let r = call(&mut c, json!({"cmd":cmd}));
        assert!(r.ok && r.result.is_none(), "{cmd}: {r:?}");
    }
    let st = status(&mut c);
    assert_eq!(
        (st["eth3"].as_str(), st["usrp"].as_bool()),
        (Some("192.168.10.1"), Some(true))
    );
    for (cmd, extra) in [
        (
            "takeover_at",
            json!({"at_sample": 19200, "forward_token": "abababababababababababababababababababababababababababababababab"}),
        ),
        ("cancel_cutover", json!({})),
        (
            "release_at",
            json!({"at_sample": 38400, "forward_to": "10.99.0.2:7000", "forward_token": "abababababababababababababababababababababababababababababababab"}),
        ),
    ] {
        let mut v = extra.clone();
        v["cmd"] = json!(cmd);
        let r = call(&mut c, v);
        assert!(r.ok, "{cmd}: {r:?}");
    }
    assert_eq!(status(&mut c)["modem"]["mode"], "release_armed");
    assert_eq!(status(&mut c)["modem"]["cutover_at"], 38400);
    let r = call(&mut c, json!({"cmd":"kill_usrp"}));
    assert!(r.ok);
    assert_eq!(status(&mut c)["eth3"], "192.168.20.2");
    let r = call(&mut c, json!({"cmd":"start_usrp"}));
    assert!(r.ok);
    let r = call(&mut c, json!({"cmd":"kill_d2d"}));
    assert!(r.ok);
    assert!(!alive(pid), "kill_d2d left the modem running (or unreaped)");
    assert_eq!(status(&mut c)["d2d"], false);

    // Warm shadow start with a Control: stored at once, passed to the modem.
    let r = call(
        &mut c,
        json!({"cmd":"start_d2d","control_flag":1,"Control":control(),"mode":"shadow"}),
    );
    assert!(r.ok, "{r:?}");
    assert_eq!(status(&mut c)["modem"]["mode"], "shadow");
    assert_eq!(
        call(&mut c, json!({"cmd":"get_control"}))
            .result
            .expect("ctl")["phy_cell_ID"],
        301
    );
    let pid2 = modem_pid(&sock).expect("pid");
    let r = call(&mut c, json!({"cmd":"double_kill"}));
    assert!(r.ok, "{r:?}");
    let st = status(&mut c);
    assert_eq!(
        (
            st["d2d"].as_bool(),
            st["usrp"].as_bool(),
            st["eth3"].as_str()
        ),
        (Some(false), Some(false), Some("192.168.20.2"))
    );
    assert!(!alive(pid2));

    // end: replied, then the agent exits.
    let r = call(&mut c, json!({"cmd":"end"}));
    assert_eq!(r, Reply::ok("end", None));
    let s = a.join();
    assert_eq!(s.unauthorized, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_malformed_and_unauthenticated_requests_get_documented_replies() {
    let dir = tmpdir("bad");
    let a = start_agent("tcp://127.0.0.1:0", dry_host(&dir, "m", &[]));
    let mut c = a.client(5_000);
    let r = call(&mut c, json!({"cmd":"format_disk"}));
    assert_eq!(
        String::from_utf8_lossy(&r.encode()),
        r#"{"ok":false,"cmd":"format_disk","kind":"wrong_command","error":"wrong command"}"#
    );
    let r = c
        .call_body(b"\xff\xfenot json", Duration::from_secs(5))
        .expect("reply");
    assert_eq!((r.cmd.as_str(), r.kind), ("", Some(ErrorKind::BadRequest)));
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.starts_with("not JSON")),
        "{r:?}"
    );
    for bad in [
        json!({"cmd":"set_tun_ip","tun_ip":"1.2.3"}),
        // Addresses that would hijack or cut off the host (issue #10).
        json!({"cmd":"set_tun_ip","tun_ip":"0.0.0.0"}),
        json!({"cmd":"set_tun_ip","tun_ip":"255.255.255.255"}),
        json!({"cmd":"set_tun_ip","tun_ip":"224.0.0.1"}),
        json!({"cmd":"set_tun_ip","tun_ip":"127.0.0.1"}),
        json!({"cmd":"set_tun_ip","tun_ip":"169.254.0.1"}),
        json!({"cmd":"set_tun_ip","tun_ip":"10.99.0.1"}),
        json!({"cmd":"set_tun_ip","tun_ip":"192.168.10.1"}),
        json!({"cmd":"set_tun_ip","tun_ip":"8.8.8.8"}),
        json!({"cmd":"kill_d2d","now":true}),
        json!({"cmd":"start_d2d","control_flag":1}),
        json!({"cmd":"start_d2d","control_flag":1,"Control":{"workmode":9}}),
        json!({"cmd":"set_route","route_list":[[1]]}),
        json!([1, 2]),
    ] {
        let r = call(&mut c, bad.clone());
        assert_eq!(r.kind, Some(ErrorKind::BadRequest), "{bad}: {r:?}");
    }

    // Raw frames: a stranger's key, a replay, a short message.
    let ctx = zmq::Context::new();
    let raw = |frames: Vec<Vec<u8>>| -> Vec<Vec<u8>> {
        let s = ctx.socket(zmq::REQ).expect("socket");
        s.set_linger(0).expect("linger");
        s.set_rcvtimeo(5000).expect("timeo");
        s.connect(&a.endpoint).expect("connect");
        s.send_multipart(frames, 0).expect("send");
        s.recv_multipart(0).expect("a reply")
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    };
    let stranger = ferry_migrate::auth::AuthKey::new(b"a stranger's key 123").expect("key");
    let me = a.name.as_str();
    let nonce = [7u8; 16];
    let req = auth::seal_request(
        &stranger,
        now(),
        nonce,
        "ctl",
        me,
        br#"{"cmd":"double_kill"}"#,
    );
    let rep = raw(req);
    // The reply is sealed with the agent's key and addressed to the stranger's nonce.
    let o = auth::open_reply(&key(), &rep, "ctl", me, &auth::hex_encode(&nonce))
        .expect("agent-signed reply");
    let r = Reply::decode(&o.body).expect("reply");
    assert_eq!(
        (r.cmd.as_str(), r.kind),
        ("", Some(ErrorKind::Unauthorized))
    );

    // A retry (the same frames again) gets the same reply, not "replay".
    let req = auth::seal_request(&key(), now(), [9u8; 16], "ctl", me, br#"{"cmd":"status"}"#);
    let first = raw(req.clone());
    assert!(
        Reply::decode(&auth::open(&key(), &first).expect("open").body)
            .expect("r")
            .ok
    );
    assert_eq!(
        raw(req.clone()),
        first,
        "a retry is answered from the cache"
    );
    // The same nonce with another (signed) body is a replay.
    let reused = auth::seal_request(
        &key(),
        now(),
        [9u8; 16],
        "ctl",
        me,
        br#"{"cmd":"get_tun_ip"}"#,
    );
    let again = Reply::decode(&auth::open(&key(), &raw(reused)).expect("open").body).expect("r");
    assert_eq!(again.kind, Some(ErrorKind::Unauthorized));
    assert!(
        again
            .error
            .as_deref()
            .is_some_and(|e| e.contains("replayed")),
        "{again:?}"
    );

    let stale = auth::seal_request(
        &key(),
        now() - 120_000,
        [10u8; 16],
        "ctl",
        me,
        br#"{"cmd":"status"}"#,
    );
    let r = Reply::decode(&auth::open(&key(), &raw(stale)).expect("open").body).expect("r");
    assert_eq!(r.kind, Some(ErrorKind::Unauthorized));

    let rep = raw(vec![b"ferry/2".to_vec(), b"{}".to_vec()]);
    let o = auth::open_reply(&key(), &rep, "unknown", me, &"0".repeat(32)).expect("reply to zeros");
    assert_eq!(
        Reply::decode(&o.body).expect("r").kind,
        Some(ErrorKind::Unauthorized)
    );

    // Many frames: refused after reading (and dropping) all past the fourth.
    let mut many = auth::seal_request(
        &key(),
        now(),
        [11u8; 16],
        "ctl",
        me,
        br#"{"cmd":"double_kill"}"#,
    );
    many.extend((0..200).map(|_| vec![0u8; 1000]));
    let o = auth::open(&key(), &raw(many)).expect("open");
    let r = Reply::decode(&o.body).expect("r");
    assert_eq!(r.kind, Some(ErrorKind::Unauthorized));
    assert!(
        r.error.as_deref().is_some_and(|e| e.contains("204 frames")),
        "{r:?}"
    );

    // Still serving, and nothing was executed: eth3 parked, no modem.
    let st = status(&mut c);
    assert_eq!(
        (st["d2d"].as_bool(), st["eth3"].as_str()),
        (Some(false), Some("192.168.20.2"))
    );
    drop(c);
    a.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let s = a.join();
    assert_eq!((s.unauthorized, s.retries, s.too_many_frames), (5, 1, 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failing_steps_roll_back_and_a_dying_modem_is_noticed() {
    let dir = tmpdir("fail");
    // No radio: link_usrp probes 8 times, fails, and puts eth3 back.
    let mut host = dry_host(&dir, "m", &["--die-after-ms", "300"]);
    host.radio = ferry_agent::RadioAccess::Dry { present: false };
    let sock = dir.join("m.sock");
    let a = start_agent("tcp://127.0.0.1:0", host);
    let mut c = a.client(10_000);
    let r = call(&mut c, json!({"cmd":"link_usrp"}));
    assert_eq!(r.kind, Some(ErrorKind::Failed));
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("after 8 tries")),
        "{r:?}"
    );
    assert_eq!(status(&mut c)["eth3"], "192.168.20.2");
    // The modem dies on its own after 300 ms: status says so, and the child was reaped.
    assert!(call(&mut c, json!({"cmd":"start_d2d","control_flag":0})).ok);
    let pid = modem_pid(&sock).expect("pid");
    let t0 = Instant::now();
    while status(&mut c)["d2d"] == true {
        assert!(t0.elapsed() < Duration::from_secs(3), "death not noticed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "dead modem not reaped");
    // No modem program at all: start_d2d fails cleanly.
    drop(c);
    drop(a);
    let mut host = dry_host(&dir, "n", &[]);
    host.modem = None;
    let a = start_agent("tcp://127.0.0.1:0", host);
    let mut c = a.client(5_000);
    let r = call(&mut c, json!({"cmd":"start_d2d","control_flag":0}));
    assert_eq!(r.kind, Some(ErrorKind::Failed));
    assert!(status(&mut c)["d2d"] == false);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_step_that_raises_is_answered_and_the_agent_serves_on() {
    // Real netlink, but the configured fronthaul interface does not exist: the thesis'
    // controller would have raised; the agent answers "command raised" and goes on.
    let dir = tmpdir("raise");
    let mut host = dry_host(&dir, "m", &[]);
    host.addressing = ferry_agent::Addressing::Netlink;
    host.eth3 = "ferrynoif0".into();
    let a = start_agent("tcp://127.0.0.1:0", host);
    let mut c = a.client(5_000);
    for cmd in ["link_usrp", "kill_usrp", "start_usrp"] {
        let r = call(&mut c, json!({ "cmd": cmd }));
        assert_eq!(
            (r.cmd.as_str(), r.kind),
            (cmd, Some(ErrorKind::Raised)),
            "{r:?}"
        );
        assert!(
            r.error
                .as_deref()
                .is_some_and(|e| e.starts_with("command raised: eth3: no network interface")),
            "{r:?}"
        );
    }
    let st = status(&mut c);
    assert_eq!(st["eth3"], Value::Null);
    assert!(call(&mut c, json!({"cmd":"set_tun_ip","tun_ip":"192.168.40.9"})).ok);
    drop(c);
    a.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(a.join().raised, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

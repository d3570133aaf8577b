//! The agents' signed envelope against a hostile peer on the management LAN, over real
//! ZeroMQ on 127.0.0.1 (dry addresses, the stand-in modem as a real child process): a
//! genuine request to an idle agent replayed to the serving agent, a reply fed back as a
//! request, and a request from before an agent's restart replayed into it. Each is refused
//! and nothing runs: the serving agent's modem stays alive.

mod common;

use common::*;
use ferry_migrate::auth;
use ferry_migrate::{ErrorKind, Reply};
use serde_json::json;
use std::time::Duration;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Send frames as they are (an attacker's REQ socket) and return the reply frames.
fn raw(endpoint: &str, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let ctx = zmq::Context::new();
    let s = ctx.socket(zmq::REQ).expect("socket");
    s.set_linger(0).expect("linger");
    s.set_rcvtimeo(10_000).expect("timeo");
    s.connect(endpoint).expect("connect");
    s.send_multipart(frames.iter(), 0).expect("send");
    s.recv_multipart(0).expect("a reply")
}

fn reply_of(frames: &[Vec<u8>]) -> Reply {
    Reply::decode(&auth::open(&key(), frames).expect("agent-signed").body).expect("reply")
}

#[test]
fn requests_replayed_to_another_agent_or_replies_as_requests_are_refused() {
    let dir = tmpdir("envelope");
    let idle = start_named_agent("server1", "tcp://127.0.0.1:0", dry_host(&dir, "m1", &[]));
    let serving = start_named_agent("server2", "tcp://127.0.0.1:0", dry_host(&dir, "m2", &[]));
    let mut c2 = serving.client(10_000);
    let r = c2
        .call_body(
            br#"{"cmd":"start_d2d","control_flag":0}"#,
            Duration::from_secs(10),
        )
        .expect("start_d2d");
    assert!(r.ok, "{r:?}");
    let pid = modem_pid(&dir.join("m2.sock")).expect("modem pid");
    assert!(alive(pid));

    // The operator's genuine kill_d2d to the idle agent, captured on the wire.
    let kill = auth::seal_request(
        &key(),
        now(),
        rand::random(),
        "ctl",
        "server1",
        br#"{"cmd":"kill_d2d"}"#,
    );
    let first = raw(&idle.endpoint, &kill);
    let nonce = auth::open(&key(), &kill).expect("open").header.nonce;
    assert!(auth::open_reply(&key(), &first, "ctl", "server1", &nonce).is_ok());

    // Replayed verbatim to the serving agent: refused, the modem lives.
    let r = reply_of(&raw(&serving.endpoint, &kill));
    assert_eq!(r.kind, Some(ErrorKind::Unauthorized), "{r:?}");
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("not to \"server2\"")),
        "{r:?}"
    );
    assert!(alive(pid), "the replayed kill_d2d killed the serving modem");

    // The idle agent's reply fed to both agents as a request: refused.
    for a in [&idle, &serving] {
        let r = reply_of(&raw(&a.endpoint, &first));
        assert_eq!(r.kind, Some(ErrorKind::Unauthorized), "{r:?}");
        assert!(
            r.error.as_deref().is_some_and(|e| e.contains("Reply")),
            "{r:?}"
        );
    }

    // Still serving.
    let st = c2
        .call_body(br#"{"cmd":"status"}"#, Duration::from_secs(10))
        .expect("status");
    assert_eq!(
        st.result.as_ref().map(|v| v["d2d"].clone()),
        Some(json!(true))
    );
    assert!(alive(pid));
    let _ = c2.call_body(br#"{"cmd":"kill_d2d"}"#, Duration::from_secs(10));
    drop(c2);
    serving
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    idle.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (s2, s1) = (serving.join(), idle.join());
    assert_eq!((s1.unauthorized, s2.unauthorized), (1, 2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_restarted_agent_refuses_requests_from_before_its_start() {
    let dir = tmpdir("restart");
    let a = start_named_agent("server2", "tcp://127.0.0.1:0", dry_host(&dir, "m", &[]));
    let req = auth::seal_request(
        &key(),
        now(),
        rand::random(),
        "ctl",
        "server2",
        br#"{"cmd":"set_tun_ip","tun_ip":"192.168.40.9"}"#,
    );
    assert!(reply_of(&raw(&a.endpoint, &req)).ok);
    a.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(a);
    std::thread::sleep(Duration::from_millis(5));
    // The agent restarts (its replay memory is new): the old request is still refused.
    let b = start_named_agent("server2", "tcp://127.0.0.1:0", dry_host(&dir, "m", &[]));
    let r = reply_of(&raw(&b.endpoint, &req));
    assert_eq!(r.kind, Some(ErrorKind::Unauthorized), "{r:?}");
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("before this receiver started")),
        "{r:?}"
    );
    let mut c = b.client(10_000);
    let r = c
        .call_body(br#"{"cmd":"get_tun_ip"}"#, Duration::from_secs(10))
        .expect("get_tun_ip");
    assert_eq!(r.kind, Some(ErrorKind::Failed), "nothing was set: {r:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_lazy_pirate_retry_is_run_once_and_answered_from_the_cache() {
    let dir = tmpdir("retry");
    let a = start_named_agent("server2", "tcp://127.0.0.1:0", dry_host(&dir, "m", &[]));
    let start = auth::seal_request(
        &key(),
        now(),
        rand::random(),
        "ctl",
        "server2",
        br#"{"cmd":"start_d2d","control_flag":0}"#,
    );
    // First try: sent, then the client gives up (its socket closes before the reply).
    {
        let ctx = zmq::Context::new();
        let s = ctx.socket(zmq::REQ).expect("socket");
        s.set_linger(-1).expect("linger");
        s.connect(&a.endpoint).expect("connect");
        s.send_multipart(start.iter(), 0).expect("send");
    }
    // The retry (the same signed frames, a fresh socket) gets the one run's reply.
    let r = reply_of(&raw(&a.endpoint, &start));
    assert!(r.ok, "{r:?}");
    let pid = modem_pid(&dir.join("m.sock")).expect("modem pid");
    assert!(alive(pid));
    // And again: still the cached reply, still one modem.
    assert!(reply_of(&raw(&a.endpoint, &start)).ok);
    assert_eq!(modem_pid(&dir.join("m.sock")), Some(pid));
    let mut c = a.client(10_000);
    let _ = c.call_body(br#"{"cmd":"kill_d2d"}"#, Duration::from_secs(10));
    drop(c);
    a.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let s = a.join();
    assert_eq!((s.retries, s.unauthorized), (2, 0), "{s:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

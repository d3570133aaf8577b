//! Make-before-break with the real pieces, all as child processes on 127.0.0.1: `ferry air`
//! (link control), two `ferry agent`s each supervising a real `ferry modem` (no TUN), and
//! `ferry ctl migrate --method mbb` moving the task back and forth. Checks every migration
//! succeeded with no service-interrupting phase, the radio streams to the new side, both
//! modems agreed on T, and no modem is left when the agents end.

use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}
fn udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port")
}

struct Kill(Vec<Child>);
impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ctl(key: &std::path::Path, args: &[&str]) -> Output {
    Command::new(FERRY)
        .arg("ctl")
        .arg("--key")
        .arg(key)
        .args(args)
        .output()
        .expect("ferry ctl")
}

#[test]
fn mbb_round_trips_with_real_modems() {
    let dir = std::env::temp_dir().join(format!("ferry-mbb-real-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let key = dir.join("agent.key");
    std::fs::write(
        &key,
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
    )
    .expect("key");
    // Key files readable by others are refused (like ssh).
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod key");
    let radio_ctl = format!("tcp://127.0.0.1:{}", tcp_port());
    let mut kids = Kill(Vec::new());
    kids.0.push(
        Command::new(FERRY)
            .args([
                "air",
                "--fast-init",
                "--duration",
                "60",
                "--control",
                &radio_ctl,
                // Keyed: make-before-break needs the radio's authenticated switch notices.
                "--key",
            ])
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ferry air"),
    );
    // side: (agent endpoint, modem fronthaul, modem forward port, socket)
    let sides: Vec<(String, String, String, String)> = ["a", "b"]
        .iter()
        .map(|n| {
            (
                format!("tcp://127.0.0.1:{}", tcp_port()),
                format!("127.0.0.1:{}", udp_port()),
                format!("127.0.0.1:{}", udp_port()),
                dir.join(format!("{n}.sock")).display().to_string(),
            )
        })
        .collect();
    for (ep, fh, fwd, sock) in &sides {
        let mut cmd = Command::new(FERRY);
        cmd.args([
            "agent",
            "--dry",
            "--usrp-in-modem",
            "--collector-ms",
            "300",
            "--bind",
            ep,
        ])
        .arg("--key")
        .arg(&key)
        .arg("--radio-key")
        .arg(&key)
        .args(["--modem", FERRY, "--modem-socket", sock])
        .args(
            ["modem", "--no-tun", "--workmode", "0", "--radio", "pool"]
                .map(|a| format!("--modem-arg={a}")),
        )
        .args(
            [
                "--radio-control",
                &radio_ctl,
                "--bind",
                fh,
                "--forward-bind",
                fwd,
            ]
            .map(|a| format!("--modem-arg={a}")),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        kids.0.push(cmd.spawn().expect("ferry agent"));
    }
    std::thread::sleep(Duration::from_millis(300));
    let (a, b) = (&sides[0], &sides[1]);
    // The task starts on side a, cold.
    for (cmd, json) in [
        ("set_tun_ip", r#"{"tun_ip":"192.168.40.9"}"#),
        ("start_d2d", r#"{"control_flag":0}"#),
    ] {
        let o = ctl(&key, &["send", cmd, json, "--to", &a.0]);
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    let t0 = Instant::now();
    loop {
        let o = ctl(&key, &["send", "status", "--to", &a.0]);
        if String::from_utf8_lossy(&o.stdout).contains("\"synced\":true") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "source modem never synced"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut cutovers = Vec::new();
    for (from, to) in [(a, b), (b, a), (a, b), (b, a)] {
        let o = ctl(
            &key,
            &[
                "--local",
                &from.0,
                "--peer",
                // Both agents have the default name `agent`.
                &format!("agent={}", to.0),
                "--radio-control",
                &radio_ctl,
                "--radio-key",
                &key.display().to_string(),
                "--radio-name",
                "pool",
                "migrate",
                "--to",
                "agent",
                "--method",
                "mbb",
                "--json",
                "--dest-port",
                &to.1,
                "--forward-to",
                &to.2,
            ],
        );
        let text = String::from_utf8_lossy(&o.stdout);
        println!("{text}");
        assert!(
            o.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(text.contains("mbb succeeded"), "{text}");
        let json_line = text
            .lines()
            .find(|l| l.starts_with("{\"label\""))
            .expect("timeline JSON");
        let t: serde_json::Value = serde_json::from_str(json_line).expect("JSON");
        assert_eq!(t["interruption_ms"], 0, "{t}");
        let result = text
            .lines()
            .find(|l| l.starts_with("result: "))
            .expect("result line");
        cutovers.push(result.to_string());
        // The radio now streams to the destination modem only.
        let r = Command::new(FERRY)
            .args(["radio", "--control", &radio_ctl, "--key"])
            .arg(&key)
            .arg("status")
            .output()
            .expect("radio");
        let st: serde_json::Value = serde_json::from_slice(&r.stdout).expect("radio status JSON");
        assert_eq!(st["radios"][0]["linked"], to.1.as_str(), "{st}");
        assert_eq!(st["radios"][0]["shadow"], serde_json::Value::Null);
        // Source stopped, destination serving.
        let s = ctl(&key, &["send", "status", "--to", &from.0]);
        assert!(String::from_utf8_lossy(&s.stdout).contains("\"d2d\":false"));
        let d = ctl(&key, &["send", "status", "--to", &to.0]);
        let d = String::from_utf8_lossy(&d.stdout);
        assert!(
            d.contains("\"d2d\":true") && d.contains("\"mode\":\"active\""),
            "{d}"
        );
    }
    cutovers.dedup();
    assert_eq!(
        cutovers.len(),
        4,
        "every migration has its own T: {cutovers:?}"
    );
    for (ep, ..) in &sides {
        assert!(ctl(&key, &["send", "end", "--to", ep]).status.success());
    }
    let t0 = Instant::now();
    for c in kids.0.iter_mut().skip(1) {
        loop {
            if c.try_wait().expect("wait").is_some() {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "agent did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Nothing answers on the modem sockets any more.
    for (.., sock) in &sides {
        assert!(
            std::os::unix::net::UnixStream::connect(sock).is_err(),
            "{sock} still served"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

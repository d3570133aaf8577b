//! `ferry web` as a user starts it: it refuses a non-loopback address without
//! `--allow-remote` and agents without a key, and otherwise serves the page on loopback
//! (polling a link-control endpoint nobody answers shows as a poll error, not a crash).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

#[test]
fn refuses_remote_addresses_and_keyless_agents() {
    let o = Command::new(FERRY)
        .args(["web", "--http", "0.0.0.0:0"])
        .output()
        .expect("ferry web");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--allow-remote"), "{err}");
    let o = Command::new(FERRY)
        .args(["web", "--agent", "server1=tcp://127.0.0.1:1"])
        .output()
        .expect("ferry web");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--key"), "{err}");
}

/// Kills the child on drop.
struct Running(std::process::Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn serves_the_page_and_reports_an_unanswered_radio_as_a_poll_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    // Nobody listens on this link-control endpoint.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let _web = Running(
        Command::new(FERRY)
            .args(["web", "--http", &format!("127.0.0.1:{port}")])
            .args(["--radio-control", &format!("tcp://127.0.0.1:{dead}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ferry web"),
    );
    let t0 = Instant::now();
    let page = loop {
        if let Some(p) = get(port, "/") {
            break p;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "never served");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Ferry"));
    let t0 = Instant::now();
    loop {
        let state = get(port, "/state").expect("state");
        if state.contains("link control: ") {
            assert!(
                state.contains(&format!("tcp://127.0.0.1:{dead}")),
                "{state}"
            );
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no poll error: {state}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

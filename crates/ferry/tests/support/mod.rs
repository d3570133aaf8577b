//! What the demo tests share: finding what a demo left behind, and running a demo until a
//! progress line then interrupting it with SIGINT as a terminal's Ctrl-C would.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// Processes running this test's `ferry` binary, and those whose command line starts with
/// `ffmpeg` and contains `ffmpeg_marker` (the demo's video sender), as (pid, command line).
pub fn leftovers(ffmpeg_marker: Option<&str>) -> Vec<(i32, String)> {
    let me = std::fs::canonicalize(FERRY).expect("ferry path");
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter_map(|pid| {
                    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                    let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                    let ours = std::fs::read_link(format!("/proc/{pid}/exe"))
                        .is_ok_and(|p| p == me)
                        || ffmpeg_marker
                            .is_some_and(|m| cmd.starts_with("ffmpeg") && cmd.contains(m));
                    ours.then_some((pid, cmd))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// No process (see [`leftovers`]), no namespace with `prefix` and no ferry TUN device left.
pub fn assert_clean(prefix: &str, ffmpeg_marker: Option<&str>) {
    // Processes get a moment to be reaped after the demo exits.
    let t0 = Instant::now();
    while !leftovers(ffmpeg_marker).is_empty() && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(leftovers(ffmpeg_marker), Vec::new(), "processes left");
    let nss = ferry_testbed::netns::testbed_namespaces(prefix);
    assert!(nss.is_empty(), "namespaces left: {nss:?}");
    let tuns = Command::new("ip")
        .args(["-o", "link", "show", "type", "tun"])
        .output()
        .expect("ip");
    let tuns = String::from_utf8_lossy(&tuns.stdout);
    assert!(!tuns.contains("ferry"), "TUN devices left: {tuns}");
}

/// Runs `cmd` until its stderr shows `marker`, waits `after`, sends SIGINT and waits (at
/// most 20 s) for it to exit. Returns its exit status and everything it printed on stderr.
#[allow(dead_code)] // not every test file interrupts a demo
pub fn interrupt_at(mut cmd: Command, marker: &str, after: Duration) -> (ExitStatus, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    let mut seen = String::new();
    while !seen.contains(marker) {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(l) => {
                seen.push_str(&l);
                seen.push('\n');
            }
            Err(_) => assert!(
                t0.elapsed() < Duration::from_secs(60),
                "never reached {marker:?}:\n{seen}"
            ),
        }
    }
    std::thread::sleep(after);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t1 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(20),
            "did not stop within 20 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        seen.push_str(&l);
        seen.push('\n');
    }
    (status, seen)
}

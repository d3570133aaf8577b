//! The `ferry agent` and `ferry ctl` command lines end to end: a dry agent as a child
//! process on 127.0.0.1, driven by `ferry ctl send` / `status` / `run`; exit statuses and
//! output as documented in docs/AGENT.md and docs/CTL.md.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn ctl(key: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(FERRY)
        .arg("ctl")
        .arg("--key")
        .arg(key)
        .args(args)
        .output()
        .expect("ferry ctl runs")
}

#[test]
fn agent_and_ctl_command_lines() {
    let dir = std::env::temp_dir().join(format!("ferry-cli-{}", std::process::id()));
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
    let mut agent = Command::new(FERRY)
        .args([
            "agent",
            "--dry",
            "--bind",
            "tcp://127.0.0.1:0",
            "--print-endpoint",
            "--key",
        ])
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ferry agent starts");
    let mut line = String::new();
    BufReader::new(agent.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("endpoint line");
    let ep = line.trim().to_string();
    assert!(ep.starts_with("tcp://127.0.0.1:"), "{ep:?}");

    let o = ctl(&key, &["send", "status", "--to", &ep]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON reply");
    assert_eq!(
        (v["ok"].as_bool(), v["result"]["d2d"].as_bool()),
        (Some(true), Some(false))
    );

    let o = ctl(&key, &["send", "format_disk", "--to", &ep]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        r#"{"ok":false,"cmd":"format_disk","kind":"wrong_command","error":"wrong command"}"#
    );
    let o = ctl(
        &key,
        &[
            "send",
            "set_tun_ip",
            r#"{"tun_ip":"192.168.40.9"}"#,
            "--to",
            &ep,
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    // run: DSR on the remote needs a modem, which this agent does not have: DSR fails, and
    // `run` stops there with a non-zero status.
    // The agent's name is the default, `agent`: requests must be addressed to it.
    let peer = format!("agent={ep}");
    let o = ctl(
        &key,
        &[
            "--dry", "--peer", &peer, "--remote", "agent", "run", "KR", "DSR", "KR",
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success());
    assert!(
        text.contains("KR succeeded") && text.contains("DSR FAILED"),
        "{text}"
    );
    assert_eq!(
        text.matches("ferry> KR").count(),
        1,
        "run went on after a failure: {text}"
    );

    let o = ctl(&key, &["--peer", &peer, "status"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"tun_ip\":\"192.168.40.9\""));

    // A dead agent: a clear error within the timeout.
    let t0 = Instant::now();
    let o = ctl(
        &key,
        &[
            "--timeout-ms",
            "300",
            "send",
            "status",
            "--to",
            "tcp://127.0.0.1:1",
        ],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("no reply from tcp://127.0.0.1:1 within 300 ms"));
    assert!(t0.elapsed() < Duration::from_secs(5));

    // A wrong key: the agent refuses; ctl cannot even verify the reply.
    let bad = dir.join("bad.key");
    std::fs::write(&bad, "ffffffffffffffffffffffffffffffff\n").expect("key");
    // Readable by others (0644): refused before anything is sent, with the fix named.
    let o = ctl(&bad, &["send", "double_kill", "--to", &ep]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("too open") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod key");
    let o = ctl(&bad, &["send", "double_kill", "--to", &ep]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bad MAC"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = ctl(&key, &["send", "end", "--to", &ep]);
    assert!(o.status.success());
    let t0 = Instant::now();
    loop {
        if let Some(st) = agent.try_wait().expect("wait") {
            assert!(st.success());
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "agent did not exit on end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

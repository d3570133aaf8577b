//! `ferry demo --web` in a real browser (needs root and Debian's chromium; skipped loudly
//! otherwise): a quick make-before-break run serves the live view; headless Chromium, driven through the
//! DevTools protocol over a pipe, keeps one page open while the demo runs and must see the
//! servers, the primary, and a migration arrive live in that same page (its DOM before and
//! after); it saves screenshots at 1280×800 and at 400 px wide, where the page must not
//! overflow horizontally. The screenshots land in the test's output dir
//! (`target/tmp/web-demo/`).
//!
//! The pool check: `ferry demo pool --web` (a short day, needs etcd too) in the same way:
//! the page shows the four pool servers with their cells and power, then a move arrives
//! live (the moves counter and the servers' cells change in the same page); its 1280×800
//! screenshot is saved as `docs/web-pool.png`. The two checks run one after the other.

#[allow(dead_code)]
mod support;

use ferry_testbed::root_or_skip;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};
use support::FERRY;

/// Headless Chromium with the DevTools protocol on fds 3 (commands in) and 4 (replies out),
/// NUL-separated JSON, as `--remote-debugging-pipe` defines.
struct Browser {
    child: Child,
    to_browser: File,
    from_browser: Receiver<Value>,
    next_id: u64,
    session: Option<String>,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two new descriptors we then own.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2");
    // SAFETY: both are fresh descriptors owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    fn start(profile: &Path) -> Browser {
        use std::os::fd::AsRawFd;
        let (cmd_read, cmd_write) = pipe();
        let (reply_read, reply_write) = pipe();
        let (cr, rw) = (cmd_read.as_raw_fd(), reply_write.as_raw_fd());
        let mut c = Command::new("chromium");
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
            "--window-size=1280,800",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe dup2 calls between fork and exec.
        unsafe {
            c.pre_exec(move || {
                // Move both ends above 4 first: if a pipe end already is fd 3 or 4,
                // dup2 onto itself would keep its close-on-exec flag (and the other end
                // could be overwritten), and Chromium would start without its pipe.
                let a = libc::fcntl(cr, libc::F_DUPFD, 10);
                let b = libc::fcntl(rw, libc::F_DUPFD, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c.spawn().expect("start chromium");
        drop(cmd_read);
        drop(reply_write);
        let (tx, rx) = channel();
        let reader = File::from(reply_read);
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            let mut buf = Vec::new();
            while r.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Browser {
            child,
            to_browser: File::from(cmd_write),
            from_browser: rx,
            next_id: 0,
            session: None,
        }
    }

    /// Sends a command (to the attached page when there is one) and waits for its reply.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let (Some(s), false) = (&self.session, method.starts_with("Target.")) {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .expect("write to chromium");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no reply to {method}"));
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Opens `url` in a new page and attaches to it.
    fn open(&mut self, url: &str) {
        let t = self.call("Target.createTarget", json!({ "url": url }));
        let target = t["targetId"].as_str().expect("target id").to_string();
        let a = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        self.session = Some(a["sessionId"].as_str().expect("session").to_string());
        self.call("Runtime.enable", json!({}));
    }

    /// Evaluates `expr` in the page; its value (JSON-serialisable).
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true }),
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` until it is `true`; panics with `what` after `timeout`.
    fn wait_for(&mut self, expr: &str, timeout: Duration, what: &str) {
        let t0 = Instant::now();
        while self.eval(expr) != json!(true) {
            assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = decode_base64(r["data"].as_str().expect("png data"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (the screenshot's encoding).
fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_http(port: u16, timeout: Duration) {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < timeout, "the web view never listened");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Text of the element with `id`.
fn text_of(id: &str) -> String {
    format!("(document.getElementById('{id}')||{{}}).textContent")
}

/// The two checks each bring up a testbed: one at a time.
static ONE_TESTBED: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn demo_web_view_shows_servers_primary_and_a_live_migration_in_chromium() {
    let _one = ONE_TESTBED.lock().unwrap_or_else(|e| e.into_inner());
    if !root_or_skip("demo_web_view_shows_servers_primary_and_a_live_migration_in_chromium") {
        return;
    }
    if Command::new("chromium").arg("--version").output().is_err() {
        eprintln!("SKIPPED: chromium missing (scripts/deps installs it)");
        return;
    }
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-demo");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).expect("out dir");
    let prefix = format!("fwb{}", std::process::id() % 100_000);
    let port = free_port();
    let mut demo = Command::new(FERRY)
        .args(["demo", "--quick", "--method", "mbb", "--prefix", &prefix])
        .arg("--out")
        .arg(out_dir.join("report"))
        .args(["--web", &format!("127.0.0.1:{port}"), "--web-linger-s", "5"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferry demo");
    let stderr = demo.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    wait_http(port, Duration::from_secs(60));

    let mut b = Browser::start(&out_dir.join("profile"));
    b.open(&format!("http://127.0.0.1:{port}/"));
    // One document for the whole run: a mark set now must survive to the end (no reload).
    // The new target starts on about:blank: wait for our page itself.
    b.wait_for(
        "location.protocol === 'http:' && document.readyState === 'complete' \
         && !!document.getElementById('status')",
        Duration::from_secs(20),
        "the page to load",
    );
    b.eval("window.__ferryTestMark = 42");
    b.wait_for(
        "document.getElementById('status').dataset.state === 'live'",
        Duration::from_secs(20),
        "the live stream",
    );
    let servers = b.eval("[...document.querySelectorAll('.server')].map(e => e.id)");
    assert_eq!(
        servers,
        json!([
            "server-server1",
            "server-server2",
            "server-server3",
            "server-server4"
        ])
    );
    // Before the migration: server1 serves (the task started there), nothing migrated.
    b.wait_for(
        &format!("{} === 'server1'", text_of("primary")),
        Duration::from_secs(150),
        "server1 as the primary",
    );
    let before = b.eval(&format!(
        "[{}, {}, document.querySelectorAll('#chart .mark').length]",
        text_of("migration-count"),
        text_of("primary")
    ));
    assert_eq!(
        before,
        json!(["0", "server1", 0]),
        "DOM before the migration"
    );
    // The primary as link control reports it: the pool radio streams to server1.
    b.wait_for(
        "!!document.querySelector('#server-server1 .badge[data-radio=pool][data-role=primary]')",
        Duration::from_secs(20),
        "link control's primary badge on server1",
    );
    let radio = b.eval("document.getElementById('radio-pool').textContent");
    assert!(
        radio.as_str().is_some_and(|r| r.contains("server1")),
        "{radio}"
    );
    // A migration arrives live: marked on the chart, logged, its phases drawn.
    b.wait_for(
        &format!("{} === '1'", text_of("migration-count")),
        Duration::from_secs(120),
        "the first migration to arrive",
    );
    let after = b.eval(&format!(
        "[{}, {}, document.querySelectorAll('#chart .mark').length, \
          document.querySelector('#migration-log li').dataset.label, \
          document.querySelectorAll('#timeline .phase').length, window.__ferryTestMark]",
        text_of("migration-count"),
        text_of("primary"),
    ));
    assert_eq!(after[0], "1");
    assert_eq!(after[1], "server2", "the primary moved: {after}");
    assert!(after[2].as_u64() >= Some(1), "{after}");
    assert!(after[3].as_str().is_some_and(|l| !l.is_empty()), "{after}");
    assert!(
        after[4].as_u64() >= Some(10),
        "make-before-break's phases: {after}"
    );
    assert_eq!(after[5], 42, "the same page saw it live: {after}");
    let phases =
        b.eval("[...document.querySelectorAll('#timeline .phase')].map(e => e.dataset.name)");
    assert!(
        phases
            .as_array()
            .is_some_and(|p| p.contains(&json!("cutover at T"))),
        "{phases}"
    );
    // Link control follows: the pool radio now streams to server2 (unless the quick run's
    // migration back already began).
    b.wait_for(
        "!!document.querySelector('#server-server2 .badge[data-radio=pool][data-role=primary]') \
         || document.querySelectorAll('#migration-log li').length > 1",
        Duration::from_secs(20),
        "link control's primary badge on server2",
    );
    // The 1 ms probe's seconds arrive live: the last second's figures and the gap line.
    b.wait_for(
        "document.getElementById('second-source').textContent.includes('UDP probe') \
         && document.querySelector('#chart .gaps').getAttribute('d').length > 0",
        Duration::from_secs(20),
        "the probe's seconds",
    );
    let lost = b.eval(&text_of("lost"));
    assert!(lost.as_str().is_some_and(|l| l.contains(" of ")), "{lost}");
    let widths =
        b.eval("[document.documentElement.clientWidth, document.documentElement.scrollWidth]");
    assert!(
        widths[1].as_u64() <= widths[0].as_u64(),
        "horizontal overflow at 1280 px: {widths}"
    );
    b.screenshot(&out_dir.join("web-1280x800.png"));

    // A narrow screen: 400 px wide, no horizontal overflow.
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 400, "height": 800, "deviceScaleFactor": 1, "mobile": true }),
    );
    std::thread::sleep(Duration::from_millis(500));
    b.eval("window.dispatchEvent(new Event('resize'))");
    let widths = b.eval(
        "[document.documentElement.clientWidth, document.documentElement.scrollWidth, \
          +document.getElementById('layout').dataset.scrollWidth]",
    );
    assert_eq!(widths[0], 400, "{widths}");
    assert!(
        widths[1].as_u64() <= Some(400) && widths[2].as_u64() <= Some(400),
        "horizontal overflow at 400 px: {widths}"
    );
    b.screenshot(&out_dir.join("web-400.png"));
    drop(b);

    let status = demo.wait().expect("demo exit");
    let log = log.join().unwrap_or_default();
    assert!(status.success(), "ferry demo --web failed:\n{log}");
    support::assert_clean(&prefix, None);
    eprintln!("screenshots in {}", out_dir.display());
}

#[test]
fn pool_web_view_shows_pool_servers_and_a_live_move_in_chromium() {
    let _one = ONE_TESTBED.lock().unwrap_or_else(|e| e.into_inner());
    if !root_or_skip("pool_web_view_shows_pool_servers_and_a_live_move_in_chromium") {
        return;
    }
    if Command::new("chromium").arg("--version").output().is_err() {
        eprintln!("SKIPPED: chromium missing (scripts/deps installs it)");
        return;
    }
    if ferry_pool_etcd::local::etcd_binary().is_none() {
        eprintln!("SKIPPED (needs the etcd binary: scripts/deps installs etcd-server): pool web");
        return;
    }
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-pool");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).expect("out dir");
    let prefix = format!("fwp{}", std::process::id() % 100_000);
    let port = free_port();
    let mut demo = Command::new(FERRY)
        .args(["demo", "pool", "--day-seconds", "60", "--web-wait-s", "20"])
        .args(["--prefix", &prefix])
        .arg("--out")
        .arg(out_dir.join("report"))
        .args(["--web", &format!("127.0.0.1:{port}"), "--web-linger-s", "5"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferry demo pool");
    let stderr = demo.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    wait_http(port, Duration::from_secs(60));
    let mut b = Browser::start(&out_dir.join("profile"));
    b.open(&format!("http://127.0.0.1:{port}/"));
    b.wait_for(
        "location.protocol === 'http:' && document.readyState === 'complete' \
         && !!document.getElementById('status')",
        Duration::from_secs(20),
        "the page to load",
    );
    b.eval("window.__ferryTestMark = 7");
    // Before the day: the four pool servers, a cell on each of server1..3, no move yet.
    b.wait_for(
        "!document.getElementById('pool').hidden \
         && document.querySelectorAll('#pool-servers .pool-server').length === 4",
        Duration::from_secs(90),
        "the pool's servers",
    );
    let before = b.eval(
        "[...document.querySelectorAll('#pool-servers .pool-server')]\
         .map(e => [e.id, e.dataset.power, e.dataset.cells])",
    );
    assert_eq!(
        before,
        json!([
            ["pool-server-server1", "on", "cell1"],
            ["pool-server-server2", "on", "cell2"],
            ["pool-server-server3", "on", "cell3"],
            ["pool-server-server4", "on", ""]
        ]),
        "the pool before the day"
    );
    assert_eq!(b.eval(&text_of("pool-moves")), "0");
    // A move arrives live: the counter and the placement change in the same page.
    b.wait_for(
        &format!("+{} >= 1", text_of("pool-moves")),
        Duration::from_secs(60),
        "the first move",
    );
    b.wait_for(
        "[...document.querySelectorAll('#pool-servers .pool-server')]\
         .some(e => e.dataset.cells.split(' ').filter(c => c).length >= 2)",
        Duration::from_secs(30),
        "two cells on one server",
    );
    b.wait_for(
        "[...document.querySelectorAll('#pool-servers .pool-server')]\
         .some(e => e.dataset.power === 'off')",
        Duration::from_secs(30),
        "a server switched off",
    );
    assert_eq!(
        b.eval("window.__ferryTestMark"),
        7,
        "the same page saw it live"
    );
    let widths =
        b.eval("[document.documentElement.clientWidth, document.documentElement.scrollWidth]");
    assert!(
        widths[1].as_u64() <= widths[0].as_u64(),
        "horizontal overflow at 1280 px: {widths}"
    );
    // A third of the day on, for the picture.
    b.wait_for(
        "parseFloat(document.getElementById('pool-hour').textContent) >= 8",
        Duration::from_secs(40),
        "hour 8 of the day",
    );
    // Scroll the pool section into view for the picture.
    b.eval("document.getElementById('pool').scrollIntoView()");
    let shot = out_dir.join("web-pool.png");
    b.screenshot(&shot);
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/web-pool.png");
    std::fs::copy(&shot, &docs).expect("docs/web-pool.png");
    drop(b);
    let status = demo.wait().expect("demo exit");
    let log = log.join().unwrap_or_default();
    assert!(status.success(), "ferry demo pool --web failed:\n{log}");
    support::assert_clean(&prefix, None);
}

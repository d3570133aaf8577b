//! The web view's HTTP server on a loopback port, spoken to with plain HTTP/1.1 over TCP:
//! the page and its assets are served, `/events` streams the view and then a demo's event
//! as it arrives, unknown paths are 404, and live clients over the cap are refused.

use ferry_testbed::live::{LiveEvent, Second, Source};
use ferry_web::{Hub, View, WebServer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read");
    let code = body
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    (code, body)
}

/// An open `/events` stream: the status code and a reader positioned after the headers.
fn open_events(addr: SocketAddr) -> (u16, BufReader<TcpStream>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("send");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("status");
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("code");
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    (code, r)
}

/// The next `state` event's data (skipping keep-alives and chunk framing).
fn next_state(r: &mut BufReader<TcpStream>) -> serde_json::Value {
    let mut line = String::new();
    let mut in_state = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        line.clear();
        if r.read_line(&mut line).expect("read") == 0 {
            panic!("stream ended");
        }
        let l = line.trim_end();
        if l == "event: state" {
            in_state = true;
        } else if let (true, Some(d)) = (in_state, l.strip_prefix("data: ")) {
            return serde_json::from_str(d).expect("json");
        }
    }
    panic!("no state event");
}

fn start(max_live: usize) -> (Hub, WebServer) {
    let hub = Hub::start(View::thesis(), None);
    let server = WebServer::start("127.0.0.1:0".parse().expect("addr"), hub.clone(), max_live)
        .expect("server");
    (hub, server)
}

#[test]
fn page_and_assets_are_served_from_the_binary_and_unknown_paths_are_404() {
    let (_hub, server) = start(4);
    let (code, page) = get(server.addr(), "/");
    assert_eq!(code, 200);
    assert!(page.contains("text/html"));
    assert!(page.contains(r#"<script src="/app.js">"#));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no outside asset"
    );
    let (code, js) = get(server.addr(), "/app.js");
    assert_eq!(code, 200);
    assert!(js.contains("new EventSource(\"/events\")"));
    let (code, css) = get(server.addr(), "/app.css");
    assert_eq!(code, 200);
    assert!(css.contains("text/css"));
    let (code, state) = get(server.addr(), "/state");
    assert_eq!(code, 200);
    assert!(state.contains(r#""name":"server1""#));
    assert_eq!(get(server.addr(), "/nope").0, 404);
    assert_eq!(get(server.addr(), "/../etc/passwd").0, 404);
}

#[test]
fn events_stream_the_view_then_a_migration_as_it_arrives() {
    let (hub, server) = start(4);
    let (code, mut r) = open_events(server.addr());
    assert_eq!(code, 200);
    let first = next_state(&mut r);
    let servers = first["view"]["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 4);
    assert_eq!(
        first["view"]["migrations"].as_array().map(Vec::len),
        Some(0)
    );
    let sink = hub.sink();
    sink.emit(LiveEvent::Serving {
        server: "server1".into(),
    });
    sink.emit(LiveEvent::Second(Second {
        source: Source::Probe,
        t_ms: 3000.0,
        sent: 10,
        lost: 2,
        rtt_avg_ms: Some(3.5),
        rtt_max_ms: Some(5.0),
        longest_gap_ms: Some(1.0),
    }));
    sink.emit(LiveEvent::MigrationStarted {
        label: "M".into(),
        method: "legacy".into(),
        from: "server1".into(),
        to: "server2".into(),
        t_ms: 4000.0,
    });
    // Views are published as they change: read until the migration shows.
    let mut seen = None;
    for _ in 0..20 {
        let v = next_state(&mut r);
        if v["view"]["migrations"].as_array().map(Vec::len) == Some(1) {
            seen = Some(v);
            break;
        }
    }
    let v = seen.expect("the migration arrived");
    assert_eq!(v["view"]["migrations"][0]["label"], "M");
    assert_eq!(v["view"]["servers"][0]["power"], "draining");
    assert_eq!(v["view"]["last_second"]["lost"], 2);
    assert!(v["seq"].as_u64() > first["seq"].as_u64());
}

#[test]
fn live_clients_over_the_cap_are_refused() {
    let (_hub, server) = start(1);
    let (code, mut held) = open_events(server.addr());
    assert_eq!(code, 200);
    let _ = next_state(&mut held);
    let (code, _) = open_events(server.addr());
    assert_eq!(code, 503, "a second live client over a cap of one");
    // The page itself is still served.
    assert_eq!(get(server.addr(), "/").0, 200);
    drop(held);
    // The slot is freed when the client goes (the server notices on its next write or
    // keep-alive); poll until a new client gets in.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _) = open_events(server.addr());
        if code == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_live_client_that_stops_reading_is_dropped() {
    let (hub, server) = start(4);
    let sink = hub.sink();
    // A large view (five minutes of seconds) so the socket buffers fill quickly.
    for i in 0..300 {
        sink.emit(LiveEvent::Second(Second {
            source: Source::Probe,
            t_ms: f64::from(i) * 1000.0,
            sent: 10,
            lost: 0,
            rtt_avg_ms: Some(3.5),
            rtt_max_ms: Some(5.0),
            longest_gap_ms: Some(1.0),
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut s = TcpStream::connect(server.addr()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    // Flood it with views it does not read (a serving change is published at once).
    let published: usize = 3000;
    for i in 0..published {
        sink.emit(LiveEvent::Serving {
            server: format!("server{}", 1 + i % 2),
        });
        if i % 200 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    // Now read: the server must have given up on this client long before the last view.
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut states = 0;
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => states += usize::from(line.trim_end() == "event: state"),
            Err(e) => panic!("the stream was not ended: {e}"),
        }
    }
    let snapshot: serde_json::Value = serde_json::from_str(&hub.snapshot()).expect("json");
    let views = snapshot["seq"].as_u64().expect("seq") as usize;
    eprintln!(
        "{views} views published, {states} read by the stalled client, {} inputs dropped",
        hub.dropped()
    );
    assert!(views > 100, "{views} views published");
    assert!(
        states > 0 && states < views / 2,
        "{states} of {views} views read"
    );
    // Its slot is free again.
    let (code, _) = open_events(server.addr());
    assert_eq!(code, 200);
}

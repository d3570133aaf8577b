//! ping output parsing against real captures (loopback, a veth whose peer went down, a peer
//! whose address was removed, an unreachable address), crafted loss patterns, property
//! tests, and live runs of the real ping (as root).

use ferry_testbed::ping::{parse_line, parse_output, PingLog, PingRun};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::Duration;

const LOOPBACK: &str = include_str!("data/ping_loopback.txt");
const QUEUED: &str = include_str!("data/ping_link_down_queued.txt");
const REMOVED: &str = include_str!("data/ping_addr_removed_loss.txt");
const UNREACHABLE: &str = include_str!("data/ping_unreachable.txt");
const SOURCE_GONE: &str = include_str!("data/ping_source_addr_removed.txt");

#[test]
fn loopback_capture_has_no_loss_and_100ms_spacing() {
    let r = parse_output(LOOPBACK, 100.0);
    assert_eq!((r.sent, r.received, r.lost), (11, 11, 0));
    assert!(r.summary_seen);
    assert_eq!(r.interruption_ms, 0.0);
    assert_eq!(r.samples.len(), 11);
    assert_eq!(r.samples[0].t_ms, 0.0);
    // ping's timer slack makes the real spacing 100..112 ms.
    for w in r.samples.windows(2) {
        let d = w[1].t_ms - w[0].t_ms;
        assert!((95.0..=115.0).contains(&d), "spacing {d}");
    }
    assert_eq!(r.samples[0].rtt_ms, Some(0.070));
    let first = r.first_sent_unix_ms.expect("stamped");
    assert!((first - 1_795_999_706_087.058).abs() < 0.01, "{first}");
}

#[test]
fn queued_answers_count_as_received_but_show_as_silence() {
    // The peer's link went down for 1.5 s; the requests were queued and answered late.
    let r = parse_output(QUEUED, 100.0);
    assert_eq!((r.sent, r.received, r.lost), (29, 29, 0));
    assert!(
        (r.longest_silence_ms - 2140.0).abs() < 1.0,
        "{}",
        r.longest_silence_ms
    );
    assert_eq!(r.samples[10].rtt_ms, Some(1030.0));
    // Send time = arrival − rtt: seq 11 left 1110 ms after seq 10 (ping's send stalled
    // while the link was down), and seq 12 about 100 ms after it.
    let d = r.samples[10].t_ms - r.samples[9].t_ms;
    assert!((1100.0..=1120.0).contains(&d), "{d}");
    let d = r.samples[11].t_ms - r.samples[10].t_ms;
    assert!((95.0..=115.0).contains(&d), "{d}");
}

#[test]
fn removed_address_loses_fifteen_pings() {
    let r = parse_output(REMOVED, 100.0);
    assert_eq!((r.sent, r.received, r.lost), (34, 19, 15));
    assert_eq!(r.lost_seqs, (11..=25).collect::<Vec<u64>>());
    assert_eq!(r.longest_loss_run, 15);
    assert_eq!(r.interruption_ms, 1500.0);
    // Lost requests get interpolated send times between their answered neighbours.
    let t: Vec<f64> = r.samples.iter().map(|s| s.t_ms).collect();
    assert!(t.windows(2).all(|w| w[1] > w[0]));
    assert!(r.samples[10..25].iter().all(|s| s.rtt_ms.is_none()));
}

#[test]
fn removed_source_address_loses_eight_and_ping_carries_on() {
    // The sender's own address was removed for 0.8 s: ping kept running (no exit, nothing on
    // stderr), reported each missing answer, and its summary agrees with the parse.
    let r = parse_output(SOURCE_GONE, 100.0);
    assert_eq!((r.sent, r.received, r.lost), (20, 12, 8));
    assert_eq!(r.lost_seqs, (7..=14).collect::<Vec<u64>>());
    assert_eq!(r.interruption_ms, 800.0);
}

#[test]
fn unreachable_host_counts_errors_and_total_loss() {
    let r = parse_output(UNREACHABLE, 100.0);
    assert_eq!((r.sent, r.received, r.lost, r.errors), (24, 0, 24, 12));
    assert_eq!(r.longest_loss_run, 24);
    assert_eq!(r.first_sent_unix_ms, None);
    assert_eq!(r.samples[23].t_ms, 2300.0);
}

#[test]
fn thesis_case_nineteen_lost_pings() {
    // 10 answered, 19 lost, 10 answered, then ping stopped without a summary.
    let mut text = String::new();
    for s in 1..=39u32 {
        let t = 1000.0 + f64::from(s) * 0.1;
        if (11..=29).contains(&s) {
            text += &format!("[{t:.6}] no answer yet for icmp_seq={s}\n");
        } else {
            text +=
                &format!("[{t:.6}] 64 bytes from 192.168.40.9: icmp_seq={s} ttl=64 time=0.5 ms\n");
        }
    }
    let r = parse_output(&text, 100.0);
    assert!(!r.summary_seen);
    assert_eq!((r.sent, r.lost, r.longest_loss_run), (39, 19, 19));
    assert_eq!(r.interruption_ms, 1900.0);
    assert!((r.longest_silence_ms - 2000.0).abs() < 0.01);
}

#[test]
fn summary_counts_a_trailing_outage_but_not_a_request_in_flight() {
    // The last request was sent but neither answered nor reported before SIGINT: its reply
    // was on its way when the run was stopped (ping::IN_FLIGHT_MS), not lost.
    let text = "[1.0] 64 bytes from a: icmp_seq=1 ttl=64 time=0.1 ms\n\
                [1.1] 64 bytes from a: icmp_seq=2 ttl=64 time=0.1 ms\n\
                \n--- a ping statistics ---\n\
                3 packets transmitted, 2 received, 33.3333% packet loss, time 201ms\n";
    let r = parse_output(text, 100.0);
    assert_eq!((r.sent, r.lost), (2, 0));
    // Eight requests (800 ms) without a line before the summary: the end was an outage.
    let text = "[1.0] 64 bytes from a: icmp_seq=1 ttl=64 time=0.1 ms\n\
                [1.1] 64 bytes from a: icmp_seq=2 ttl=64 time=0.1 ms\n\
                \n--- a ping statistics ---\n\
                10 packets transmitted, 2 received, 80% packet loss, time 901ms\n";
    let r = parse_output(text, 100.0);
    assert_eq!(
        (r.sent, r.lost, r.lost_seqs.clone()),
        (10, 8, (3..=10).collect())
    );
}

#[test]
fn duplicates_are_not_double_counted() {
    let mut log = PingLog::new(100.0);
    log.on_line("64 bytes from a: icmp_seq=1 ttl=64 time=0.1 ms");
    log.on_line("64 bytes from a: icmp_seq=1 ttl=64 time=0.2 ms (DUP!)");
    log.on_line("64 bytes from a: icmp_seq=2 ttl=64 time=0.1 ms");
    let r = log.report();
    assert_eq!((r.sent, r.received, r.duplicates), (2, 2, 1));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ping_like_garbage_never_panics_and_stays_consistent(
        lines in proptest::collection::vec(
            "(\\[[0-9]{1,11}\\.[0-9]{1,6}\\] )?(64 bytes from a: icmp_seq=[0-9]{1,5} ttl=64 time=[0-9.]{1,7} ms( \\(DUP!\\))?|no answer yet for icmp_seq=[0-9]{1,5}|From b icmp_seq=[0-9]{1,5} Destination Host Unreachable|[0-9]{1,22} packets transmitted, [0-9]{1,22} received(, \\+[0-9]{1,3} errors)?, 1% packet loss)",
            0..8,
        )
    ) {
        let mut log = PingLog::new(100.0);
        for l in &lines {
            log.on_line(l);
        }
        let r = log.report();
        prop_assert_eq!(r.received + r.lost, r.sent);
        prop_assert_eq!(r.lost_seqs.len() as u64, r.lost);
        prop_assert_eq!(r.samples.len() as u64, r.sent);
        prop_assert!(r.lost_seqs.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(r.samples.iter().all(|s| s.t_ms.is_finite()));
    }
}

proptest! {
    #[test]
    fn any_line_parses_without_panic(line in ".{0,120}") {
        let _ = parse_line(&line);
    }

    #[test]
    fn loss_pattern_is_recovered_exactly(pattern in proptest::collection::vec(any::<bool>(), 1..300)) {
        let mut log = PingLog::new(100.0);
        for (i, ok) in pattern.iter().enumerate() {
            let seq = i + 1;
            let t = 1_700_000_000.0 + i as f64 * 0.1;
            if *ok {
                log.on_line(&format!("[{t:.6}] 64 bytes from 10.0.0.1: icmp_seq={seq} ttl=64 time=0.3 ms"));
            } else {
                log.on_line(&format!("[{t:.6}] no answer yet for icmp_seq={seq}"));
            }
        }
        let received = pattern.iter().filter(|&&ok| ok).count() as u64;
        log.on_line(&format!("{} packets transmitted, {received} received, 0% packet loss, time 1ms", pattern.len()));
        let r = log.report();
        let lost: Vec<u64> = pattern.iter().enumerate().filter(|(_, ok)| !**ok).map(|(i, _)| i as u64 + 1).collect();
        prop_assert_eq!(r.sent, pattern.len() as u64);
        prop_assert_eq!(r.received, received);
        prop_assert_eq!(&r.lost_seqs, &lost);
        prop_assert_eq!(r.interruption_ms, lost.len() as f64 * 100.0);
        let mut run = 0u64;
        let mut longest = 0u64;
        for ok in &pattern { run = if *ok { 0 } else { run + 1 }; longest = longest.max(run); }
        prop_assert_eq!(r.longest_loss_run, longest);
        prop_assert!(r.samples.windows(2).all(|w| w[1].t_ms > w[0].t_ms));
    }
}

fn have_ping() -> bool {
    Command::new("ping")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn live_ping_on_loopback_stops_cleanly() {
    if !ferry_testbed::root_or_skip("live_ping_on_loopback_stops_cleanly") {
        return;
    }
    if !have_ping() {
        eprintln!("SKIPPED: ping (iputils-ping) not installed; scripts/deps installs it");
        return;
    }
    let run = PingRun::start(None, IpAddr::V4(Ipv4Addr::LOCALHOST), 100).expect("start");
    std::thread::sleep(Duration::from_millis(750));
    let progress = run.snapshot();
    let r = run.stop().expect("stop");
    assert!(r.summary_seen, "SIGINT must make ping print its summary");
    assert!((4..=10).contains(&r.sent), "sent {}", r.sent);
    assert!(r.sent >= progress.sent);
    assert_eq!(r.lost, 0);
    assert!(r.first_sent_unix_ms.is_some());
}

/// Two namespaces joined by a veth; removed on drop.
struct Pair(String, String);

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.0, &self.1] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {args:?} failed");
}

#[test]
fn live_ping_in_namespace_sees_an_outage() {
    if !ferry_testbed::root_or_skip("live_ping_in_namespace_sees_an_outage") {
        return;
    }
    if !have_ping() {
        eprintln!("SKIPPED: ping (iputils-ping) not installed; scripts/deps installs it");
        return;
    }
    let id = std::process::id() % 100_000;
    let pair = Pair(format!("frpt{id}a"), format!("frpt{id}b"));
    let (a, b) = (pair.0.as_str(), pair.1.as_str());
    ip(&["netns", "add", a]);
    ip(&["netns", "add", b]);
    let (va, vb) = (format!("fra{id}"), format!("frb{id}"));
    ip(&[
        "link", "add", &va, "netns", a, "type", "veth", "peer", "name", &vb, "netns", b,
    ]);
    ip(&["-n", a, "addr", "add", "10.250.0.1/24", "dev", &va]);
    ip(&["-n", b, "addr", "add", "10.250.0.2/24", "dev", &vb]);
    ip(&["-n", a, "link", "set", &va, "up"]);
    ip(&["-n", b, "link", "set", &vb, "up"]);
    let target = IpAddr::V4(Ipv4Addr::new(10, 250, 0, 2));
    let run = PingRun::start(Some(a), target, 100).expect("start");
    std::thread::sleep(Duration::from_millis(600));
    // The far end loses its address for 1 s: requests go unanswered (ARP still resolves
    // from the cache, the peer drops them).
    ip(&["-n", b, "addr", "del", "10.250.0.2/24", "dev", &vb]);
    std::thread::sleep(Duration::from_millis(1000));
    ip(&["-n", b, "addr", "add", "10.250.0.2/24", "dev", &vb]);
    std::thread::sleep(Duration::from_millis(600));
    let r = run.stop().expect("stop");
    assert!(r.summary_seen);
    // About 10 of ~22 lost; allow timer slack.
    assert!(
        (7..=12).contains(&r.lost),
        "lost {} of {}: {:?}",
        r.lost,
        r.sent,
        r.lost_seqs
    );
    assert!(r.longest_loss_run >= 7);
    assert_eq!(r.interruption_ms, r.lost as f64 * 100.0);
    // No route at all: ping gives up at once, and its own words come back as the error.
    let run = PingRun::start(Some(a), IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)), 100).expect("start");
    std::thread::sleep(Duration::from_millis(300));
    match run.stop() {
        Err(ferry_testbed::ping::PingError::Exited { stderr, .. }) => {
            assert!(stderr.contains("unreachable"), "{stderr}")
        }
        other => panic!("expected an early exit, got {other:?}"),
    }
    drop(pair);
}
